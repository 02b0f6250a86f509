/*
 * addr_map.c - the map from a simulated address to the host object behind
 * it (vmalloc areas, percpu allocations): open addressing with linear
 * probing and backward-shift delete.  No kernel counterpart (the kernel
 * finds a vmalloc area in a tree of vmap_areas and a percpu allocation
 * through its chunk); host bookkeeping only.
 */
#include <stdlib.h>
#include <string.h>

#include "mm_internal.h"

static inline uint64_t addr_hash(uint64_t key, uint64_t mask)
{
    return ((key >> 2) * 0x9e3779b97f4a7c15ULL >> 17) & mask;
}

void *addr_map_get(const struct addr_map *m, uint64_t key)
{
    uint64_t mask, i;

    if (!m->cap || !key)
        return NULL;
    mask = m->cap - 1;
    for (i = addr_hash(key, mask);; i = (i + 1) & mask) {
        if (m->keys[i] == key)
            return m->vals[i];
        if (!m->keys[i])
            return NULL;
    }
}

static int addr_map_grow(struct addr_map *m)
{
    uint64_t ncap = m->cap ? m->cap * 2 : 64, i, j, mask = ncap - 1;
    uint64_t *keys = calloc(ncap, sizeof(*keys));
    void **vals = calloc(ncap, sizeof(*vals));

    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -ENOMEM;
    }
    for (i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        for (j = addr_hash(m->keys[i], mask); keys[j]; j = (j + 1) & mask)
            ;
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = ncap;
    return 0;
}

int addr_map_put(struct addr_map *m, uint64_t key, void *val)
{
    uint64_t mask, i;

    if (!key)
        return -EINVAL;
    if ((m->nr + 1) * 4 > m->cap * 3 && addr_map_grow(m))
        return -ENOMEM;
    mask = m->cap - 1;
    for (i = addr_hash(key, mask); m->keys[i] && m->keys[i] != key; i = (i + 1) & mask)
        ;
    if (!m->keys[i])
        m->nr++;
    m->keys[i] = key;
    m->vals[i] = val;
    return 0;
}

void *addr_map_del(struct addr_map *m, uint64_t key)
{
    uint64_t mask, i, j;
    void *val;

    if (!m->cap || !key)
        return NULL;
    mask = m->cap - 1;
    for (i = addr_hash(key, mask); m->keys[i] != key; i = (i + 1) & mask)
        if (!m->keys[i])
            return NULL;
    val = m->vals[i];
    m->keys[i] = 0;
    m->vals[i] = NULL;
    m->nr--;
    /* shift later members of the cluster back into the hole */
    for (j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
        uint64_t home = addr_hash(m->keys[j], mask);
        bool movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            m->keys[j] = 0;
            m->vals[j] = NULL;
            i = j;
        }
    }
    return val;
}

/* frees the map and every value in it (each one malloc()ed) */
void addr_map_free(struct addr_map *m)
{
    for (uint64_t i = 0; i < m->cap; i++)
        free(m->vals[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}
