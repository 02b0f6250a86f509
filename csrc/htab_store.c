/*
 * htab_store.c - the element store behind the model's BPF hash maps
 * (pybpfmem/bpf/hashtab.py), plus the stop-at-first-failure bulk kmalloc that
 * bpf_mem_alloc refills use.
 *
 * The store is host-side bookkeeping only: it holds each element's key, value
 * and the simulated addresses of its allocations ("aux" words), so a million
 * elements cost tens of bytes each instead of several Python objects.  It
 * charges nothing: every simulated allocation an element needs is still made
 * by the Python layer through the mm core, in the order the kernel makes it.
 *
 * What it mirrors, and where it simplifies:
 *  - the update decisions of htab_map_update_elem() / htab_lru_map_update_elem()
 *    / __htab_percpu_map_update_elem() (kernel/bpf/hashtab.c): check_flags(),
 *    -EEXIST / -ENOENT, and the max_entries test of alloc_htab_elem() (-E2BIG);
 *  - LRU maps (BM_HTAB_LRU, set up by bm_htab_lru_init()): the updates of
 *    htab_lru_map_update_elem() / __htab_lru_percpu_map_update_elem(), which
 *    take a node from the LRU lists of bpf_lru_list.c (evicting if they must)
 *    before they check the flags; program lookups set the node's reference
 *    bit; deletes return the node with bpf_lru_push_free().  Slot i of the
 *    store is LRU node i;
 *  - iteration order (htab_map_get_next_key()) is insertion order, not bucket
 *    order (simplified, as the Python model always did); an LRU update that
 *    replaces a key puts the new element in the old one's place;
 *  - the table is open addressing with linear probing and backward-shift
 *    deletion, keyed by a seeded 64-bit multiply-xor hash (the kernel: jhash
 *    buckets with per-bucket locks; nothing observable depends on this).
 *
 * Handles: a store is an opaque pointer created by bm_htab_new(); every entry
 * point checks for NULL and a magic word and validates its arguments.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bpf_lru_list.h"
#include "bpfmem.h"
#include "mm_internal.h"

#define HTAB_MAGIC 0x6874616273746f72ULL   /* "htabstor" */
#define NONE UINT32_MAX
#define HTAB_MAX_SLOTS (1u << 31)
#define HTAB_MAX_KEY (1u << 20)
#define HTAB_MAX_VALUE (1u << 26)

/* uapi flags (include/uapi/linux/bpf.h) */
#define BPF_NOEXIST 1
#define BPF_EXIST 2
#define BPF_F_LOCK 4

struct bm_htab {
    uint64_t magic;
    uint32_t key_size, value_size, naux;
    uint32_t mode;          /* BM_HTAB_* */
    uint64_t max_entries;
    uint32_t count;         /* live elements */
    uint32_t cap;           /* slots allocated in the arrays below */
    uint32_t used;          /* slots ever handed out (0..used-1) */
    uint32_t free_head;     /* freed slots, linked through next[] */
    uint32_t head, tail;    /* insertion order list */
    uint32_t idx_mask;      /* index table size - 1 (0: no table yet) */
    uint64_t *idx;          /* (key hash << 32) | (slot + 1); 0 = empty */
    uint32_t *next, *prev;  /* per slot: insertion order links */
    uint8_t *keys, *vals;   /* per slot: key_size / value_size bytes */
    uint64_t *aux;          /* per slot: naux words */
    struct bpf_lru *lru;    /* LRU maps, once bm_htab_lru_init() ran: node i = slot i */
    uint32_t lru_flags;     /* BM_LRU_* */
};

static bool htab_ok(const bm_htab *h)
{
    return h && h->magic == HTAB_MAGIC;
}

/* 64-bit multiply-xor hash over the key, 8 bytes at a time. */
static uint32_t key_hash(const uint8_t *key, uint32_t len)
{
    uint64_t h = 0x243f6a8885a308d3ULL ^ len;
    uint32_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, key + i, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
    }
    if (i < len) {
        uint64_t w = 0;
        memcpy(&w, key + i, len - i);
        h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
    }
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return (uint32_t)h;
}

static inline uint8_t *slot_key(const bm_htab *h, uint32_t s)
{
    return h->keys + (size_t)s * h->key_size;
}

static inline uint8_t *slot_val(const bm_htab *h, uint32_t s)
{
    return h->vals + (size_t)s * h->value_size;
}

#define E_SLOT(e) ((uint32_t)(e) - 1)
#define E_HASH(e) ((uint32_t)((e) >> 32))
#define MK_E(hv, s) (((uint64_t)(hv) << 32) | ((uint64_t)(s) + 1))

/* index position of key (its slot in *slot), or NONE in *slot and the empty
   position where it would go */
static uint32_t find(const bm_htab *h, const uint8_t *key, uint32_t hv, uint32_t *slot)
{
    uint32_t pos;

    *slot = NONE;
    if (!h->idx_mask)
        return 0;
    pos = hv & h->idx_mask;
    for (;;) {
        uint64_t e = h->idx[pos];
        if (!e)
            return pos;
        if (E_HASH(e) == hv && !memcmp(slot_key(h, E_SLOT(e)), key, h->key_size)) {
            *slot = E_SLOT(e);
            return pos;
        }
        pos = (pos + 1) & h->idx_mask;
    }
}

/* the first empty index position for a key known to be absent */
static inline uint32_t empty_pos(const bm_htab *h, uint32_t hv)
{
    uint32_t pos = hv & h->idx_mask;

    while (h->idx[pos])
        pos = (pos + 1) & h->idx_mask;
    return pos;
}

static int grow_index(bm_htab *h, uint32_t want)
{
    uint32_t size = h->idx_mask ? h->idx_mask + 1 : 16, mask, i;
    uint64_t *idx;

    while ((uint64_t)want * 2 > size) {
        if (size >= (1u << 31))
            return -ENOMEM;
        size <<= 1;
    }
    if (h->idx_mask && size == h->idx_mask + 1)
        return 0;
    idx = calloc(size, sizeof(*idx));
    if (!idx)
        return -ENOMEM;
    mask = size - 1;
    for (i = 0; h->idx_mask && i <= h->idx_mask; i++) {
        uint64_t e = h->idx[i];
        uint32_t pos;
        if (!e)
            continue;
        pos = E_HASH(e) & mask;
        while (idx[pos])
            pos = (pos + 1) & mask;
        idx[pos] = e;
    }
    free(h->idx);
    h->idx = idx;
    h->idx_mask = mask;
    return 0;
}

/* room for `want` slots, the capacity doubled as often as needed, in one
 * reallocation per array (one insert, an LRU reservation or a bulk insert) */
static int reserve_slots(bm_htab *h, uint64_t want)
{
    uint64_t cap = h->cap ? h->cap : 16;
    void *p;

    if (want <= h->cap)
        return 0;
    while (cap < want)
        cap *= 2;
    if (cap > HTAB_MAX_SLOTS)
        return -ENOMEM;
#define RESERVE(field, per)                                                   \
    do {                                                                      \
        p = realloc(h->field, (size_t)cap * (per));                           \
        if (!p)                                                               \
            return -ENOMEM;                                                   \
        h->field = p;                                                         \
    } while (0)
    RESERVE(next, sizeof(uint32_t));
    RESERVE(prev, sizeof(uint32_t));
    RESERVE(keys, h->key_size);
    RESERVE(vals, h->value_size);
    if (h->naux)
        RESERVE(aux, sizeof(uint64_t) * h->naux);
#undef RESERVE
    h->cap = (uint32_t)cap;
    return 0;
}

/* slot s (free) holds a new element at the tail of the insertion order; the
   index has room and the key is absent */
static void place_new(bm_htab *h, uint32_t s, const uint8_t *key, uint32_t hv,
                      const uint8_t *value, const uint64_t *aux)
{
    h->idx[empty_pos(h, hv)] = MK_E(hv, s);
    memcpy(slot_key(h, s), key, h->key_size);
    if (value)
        memcpy(slot_val(h, s), value, h->value_size);
    else
        memset(slot_val(h, s), 0, h->value_size);
    if (h->naux) {
        if (aux)
            memcpy(h->aux + (size_t)s * h->naux, aux, sizeof(uint64_t) * h->naux);
        else
            memset(h->aux + (size_t)s * h->naux, 0, sizeof(uint64_t) * h->naux);
    }
    h->next[s] = NONE;
    h->prev[s] = h->tail;
    if (h->tail != NONE)
        h->next[h->tail] = s;
    else
        h->head = s;
    h->tail = s;
    h->count++;
}

/* a new element at the tail of the insertion order; caller checked absence */
static int insert_new(bm_htab *h, const uint8_t *key, uint32_t hv, const uint8_t *value,
                      const uint64_t *aux)
{
    uint32_t s;
    int rc;

    if (h->count >= HTAB_MAX_SLOTS - 1)
        return -ENOMEM;
    rc = grow_index(h, h->count + 1);
    if (rc)
        return rc;
    if (h->free_head != NONE) {
        s = h->free_head;
        h->free_head = h->next[s];
    } else {
        if (h->used == h->cap && (rc = reserve_slots(h, (uint64_t)h->cap + 1)))
            return rc;
        s = h->used++;
    }
    place_new(h, s, key, hv, value, aux);
    return 0;
}

/* take the element in slot s found at index position pos out of the index
   (backward shift) and the insertion order */
static void unlink_at(bm_htab *h, uint32_t pos, uint32_t s)
{
    uint32_t mask = h->idx_mask, hole = pos, j = pos;

    for (;;) {
        uint64_t e;
        uint32_t home;
        j = (j + 1) & mask;
        e = h->idx[j];
        if (!e)
            break;
        home = E_HASH(e) & mask;
        /* e may move into the hole if its home is not cyclically in (hole, j] */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            h->idx[hole] = e;
            hole = j;
        }
    }
    h->idx[hole] = 0;
    if (h->prev[s] != NONE)
        h->next[h->prev[s]] = h->next[s];
    else
        h->head = h->next[s];
    if (h->next[s] != NONE)
        h->prev[h->next[s]] = h->prev[s];
    else
        h->tail = h->prev[s];
    h->count--;
}

/* remove the element in slot s found at index position pos; the slot is free */
static void remove_at(bm_htab *h, uint32_t pos, uint32_t s)
{
    unlink_at(h, pos, s);
    h->next[s] = h->free_head;
    h->free_head = s;
}

static void copy_aux(const bm_htab *h, uint32_t s, uint64_t *out)
{
    if (out && h->naux)
        memcpy(out, h->aux + (size_t)s * h->naux, sizeof(uint64_t) * h->naux);
}

bm_htab *bm_htab_new(uint32_t key_size, uint32_t value_size, uint32_t naux, uint64_t max_entries,
                     uint32_t mode)
{
    bm_htab *h;

    if (key_size == 0 || key_size > HTAB_MAX_KEY || value_size == 0 ||
        value_size > HTAB_MAX_VALUE || naux > BM_HTAB_MAX_AUX ||
        (mode & ~(uint32_t)BM_HTAB_MODE_MASK))
        return NULL;
    h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->magic = HTAB_MAGIC;
    h->key_size = key_size;
    h->value_size = value_size;
    h->naux = naux;
    h->mode = mode;
    h->max_entries = max_entries;
    h->free_head = h->head = h->tail = NONE;
    return h;
}

void bm_htab_free(bm_htab *h)
{
    if (!htab_ok(h))
        return;
    h->magic = 0;
    if (h->lru) {
        bpf_lru_destroy(h->lru);
        free(h->lru);
    }
    free(h->idx);
    free(h->next);
    free(h->prev);
    free(h->keys);
    free(h->vals);
    free(h->aux);
    free(h);
}

int64_t bm_htab_count(const bm_htab *h)
{
    return htab_ok(h) ? (int64_t)h->count : -EINVAL;
}

int bm_htab_lookup(const bm_htab *h, const char *key, char *value, uint64_t *aux)
{
    uint32_t s;

    if (!htab_ok(h) || !key)
        return -EINVAL;
    find(h, (const uint8_t *)key, key_hash((const uint8_t *)key, h->key_size), &s);
    if (s == NONE)
        return -ENOENT;
    if (value)
        memcpy(value, slot_val(h, s), h->value_size);
    copy_aux(h, s, aux);
    return 0;
}

/* The decision part of htab_map_update_elem() and friends, kernel/bpf/hashtab.c:
   check_flags(), then replace in place or a new element (-E2BIG
   at max_entries, as alloc_htab_elem()).  Returns 1 without changing anything
   when the caller must allocate the element first (mode says when) and then
   call bm_htab_commit().  max_entries and the mode were given to bm_htab_new().
   LRU stores update through bm_htab_lru_update() (-EINVAL here). */
int bm_htab_update(bm_htab *h, const char *key, const char *value, uint64_t flags)
{
    const uint8_t *k = (const uint8_t *)key;
    uint32_t s, hv, mode;
    uint64_t max_entries;

    if (!htab_ok(h) || !key || !value || (h->mode & BM_HTAB_LRU))
        return -EINVAL;
    mode = h->mode;
    max_entries = h->max_entries;
    if ((flags & ~(uint64_t)BPF_F_LOCK) > BPF_EXIST)
        return -EINVAL;
    hv = key_hash(k, h->key_size);
    find(h, k, hv, &s);
    if (s != NONE) {
        if (flags & BPF_NOEXIST)
            return -EEXIST;
        if (mode & BM_HTAB_ALLOC_REPLACE)
            return 1;
        memcpy(slot_val(h, s), value, h->value_size);
        return 0;
    }
    if (flags & BPF_EXIST)
        return -ENOENT;
    if (h->count >= max_entries)
        return -E2BIG;
    if (mode & BM_HTAB_ALLOC_NEW)
        return 1;
    return insert_new(h, k, hv, (const uint8_t *)value, NULL);
}

/* Second half of an update that needed an allocation: replace (returns 1, the
   old aux words in old_aux) or insert at the tail (returns 0). */
int bm_htab_commit(bm_htab *h, const char *key, const char *value, const uint64_t *aux,
                   uint64_t *old_aux)
{
    const uint8_t *k = (const uint8_t *)key;
    uint32_t s, hv;

    if (!htab_ok(h) || !key || !value || (h->mode & BM_HTAB_LRU))
        return -EINVAL;
    hv = key_hash(k, h->key_size);
    find(h, k, hv, &s);
    if (s != NONE) {
        copy_aux(h, s, old_aux);
        memcpy(slot_val(h, s), value, h->value_size);
        if (h->naux) {
            if (aux)
                memcpy(h->aux + (size_t)s * h->naux, aux, sizeof(uint64_t) * h->naux);
            else
                memset(h->aux + (size_t)s * h->naux, 0, sizeof(uint64_t) * h->naux);
        }
        return 1;
    }
    return insert_new(h, k, hv, (const uint8_t *)value, aux);
}

/* htab_map_delete_elem()'s unlink: the element's aux words go to aux.  An LRU
   store's node goes back with bpf_lru_push_free() (htab_lru_map_delete_elem()). */
int bm_htab_delete(bm_htab *h, const char *key, uint64_t *aux)
{
    uint32_t s, pos;

    if (!htab_ok(h) || !key || ((h->mode & BM_HTAB_LRU) && !h->lru))
        return -EINVAL;
    pos = find(h, (const uint8_t *)key, key_hash((const uint8_t *)key, h->key_size), &s);
    if (s == NONE)
        return -ENOENT;
    copy_aux(h, s, aux);
    if (h->lru) {
        unlink_at(h, pos, s);
        bpf_lru_push_free(h->lru, s);
        return 0;
    }
    remove_at(h, pos, s);
    return 0;
}

/* htab_map_get_next_key() in insertion order: NULL or an absent key gives the
   first key; the last key -ENOENT. */
int bm_htab_next_key(const bm_htab *h, const char *key, char *next)
{
    uint32_t s = NONE;

    if (!htab_ok(h) || !next)
        return -EINVAL;
    if (h->head == NONE)
        return -ENOENT;
    if (key)
        find(h, (const uint8_t *)key, key_hash((const uint8_t *)key, h->key_size), &s);
    if (s == NONE)
        s = h->head;
    else if ((s = h->next[s]) == NONE)
        return -ENOENT;
    memcpy(next, slot_key(h, s), h->key_size);
    return 0;
}

/* ---- LRU maps: kernel/bpf/hashtab.c over bpf_lru_list.c ---- */

/* htab_lru_map_delete_node(): the LRU evicts node s; true if its element was
   in the table (and is now out of it) */
static bool htab_lru_map_delete_node(void *arg, uint32_t s)
{
    bm_htab *h = arg;
    uint32_t pos, found;

    pos = find(h, slot_key(h, s), key_hash(slot_key(h, s), h->key_size), &found);
    if (found != s)
        return false;
    unlink_at(h, pos, s);
    return true;
}

/* prealloc_init() -> bpf_lru_init() + bpf_lru_populate() for an LRU store */
int bm_htab_lru_init(bm_htab *h, uint32_t nr_cpus, uint32_t flags)
{
    bool percpu = flags & BM_HTAB_LRU_NO_COMMON;
    int rc;

    if (!htab_ok(h) || !(h->mode & BM_HTAB_LRU) || h->lru || (flags & ~(uint32_t)BM_HTAB_LRU_FLAGS_MASK) ||
        nr_cpus == 0 || nr_cpus > BM_MAX_CPUS || h->max_entries == 0 ||
        h->max_entries >= HTAB_MAX_SLOTS || (percpu && h->max_entries % nr_cpus) ||
        ((flags & BM_HTAB_LRU_PERCPU_VALUES) && h->value_size % nr_cpus))
        return -EINVAL;
    h->lru = calloc(1, sizeof(*h->lru));
    if (!h->lru)
        return -ENOMEM;
    rc = bpf_lru_init(h->lru, percpu, nr_cpus, htab_lru_map_delete_node, h);
    if (rc) {
        free(h->lru);
        h->lru = NULL;
        return rc;
    }
    bpf_lru_populate(h->lru, (uint32_t)h->max_entries, flags & BM_HTAB_LRU_TARGET_FREE_CLAMP);
    h->lru_flags = flags;
    return 0;
}

/* Room for the nodes the next pop may make (slots and LRU entries) and for
   one more element in the index, so an update fails before it changes
   anything when the host runs out. */
static int lru_reserve(bm_htab *h)
{
    uint32_t want = bpf_lru_reserve(h->lru);
    int rc;

    if (want == BPF_LRU_NONE)
        return -ENOMEM;
    if ((rc = reserve_slots(h, want)))
        return rc;
    return grow_index(h, h->count + 1);
}

/* prealloc_lru_pop(): a free node (an eviction when it must) for key */
static uint32_t prealloc_lru_pop(bm_htab *h, uint32_t cpu, const uint8_t *key)
{
    uint32_t s = bpf_lru_pop_free(h->lru, cpu);

    if (s != BPF_LRU_NONE)
        memcpy(slot_key(h, s), key, h->key_size);
    return s;
}

/* pcpu_copy_value(): all of value into slot s, or (a program's update,
   onallcpus false) only cpu's part of it */
static void lru_copy_value(bm_htab *h, uint32_t s, const char *value, uint32_t cpu,
                           bool onallcpus)
{
    size_t part = h->value_size / h->lru->nr_cpus;

    if (onallcpus)
        memcpy(slot_val(h, s), value, h->value_size);
    else
        memcpy(slot_val(h, s) + part * cpu, value + part * cpu, part);
}

/* htab_lru_map_update_elem(): the node first, then check_flags(); a failed
   check returns the node, a replace marks the new node referenced and frees
   the old one. */
static int htab_lru_map_update_elem(bm_htab *h, uint32_t cpu, const uint8_t *key, uint32_t hv,
                                    const char *value, uint64_t flags)
{
    uint32_t s, old, pos;

    s = prealloc_lru_pop(h, cpu, key);
    if (s == BPF_LRU_NONE)
        return -ENOMEM;
    pos = find(h, key, hv, &old);
    if ((old != NONE && (flags & BPF_NOEXIST)) || (old == NONE && (flags & BPF_EXIST))) {
        bpf_lru_push_free(h->lru, s);
        return old != NONE ? -EEXIST : -ENOENT;
    }
    if (old == NONE) {
        place_new(h, s, key, hv, (const uint8_t *)value, NULL);
        return 0;
    }
    /* the new element takes the old one's index entry and place in the order */
    memcpy(slot_val(h, s), value, h->value_size);
    h->idx[pos] = MK_E(hv, s);
    h->prev[s] = h->prev[old];
    h->next[s] = h->next[old];
    if (h->prev[old] != NONE)
        h->next[h->prev[old]] = s;
    else
        h->head = s;
    if (h->next[old] != NONE)
        h->prev[h->next[old]] = s;
    else
        h->tail = s;
    bpf_lru_node_set_ref(h->lru, s);
    bpf_lru_push_free(h->lru, old);
    return 0;
}

/* __htab_lru_percpu_map_update_elem(): a node unless flags is exactly
   BPF_EXIST; an existing element is marked referenced and updated in place,
   and the node goes back. */
static int htab_lru_percpu_map_update_elem(bm_htab *h, uint32_t cpu, const uint8_t *key,
                                           uint32_t hv, const char *value, uint64_t flags,
                                           bool onallcpus)
{
    uint32_t s = BPF_LRU_NONE, old;
    int ret = 0;

    if (flags != BPF_EXIST) {
        s = prealloc_lru_pop(h, cpu, key);
        if (s == BPF_LRU_NONE)
            return -ENOMEM;
    }
    find(h, key, hv, &old);
    if (old != NONE && (flags & BPF_NOEXIST)) {
        ret = -EEXIST;
    } else if (old == NONE && (flags & BPF_EXIST)) {
        ret = -ENOENT;
    } else if (old != NONE) {
        bpf_lru_node_set_ref(h->lru, old);
        lru_copy_value(h, old, value, cpu, onallcpus);
    } else {
        place_new(h, s, key, hv, NULL, NULL);   /* pcpu_init_value(): zeroed, then ours */
        lru_copy_value(h, s, value, cpu, onallcpus);
        s = BPF_LRU_NONE;
    }
    if (s != BPF_LRU_NONE)
        bpf_lru_push_free(h->lru, s);
    return ret;
}

int bm_htab_lru_update(bm_htab *h, int32_t cpu, const char *key, const char *value,
                       uint64_t flags, int32_t onallcpus)
{
    const uint8_t *k = (const uint8_t *)key;
    uint32_t hv;
    int rc;

    if (!htab_ok(h) || !h->lru || !key || !value || cpu < 0 || (uint32_t)cpu >= h->lru->nr_cpus)
        return -EINVAL;
    if (flags > BPF_EXIST)
        return -EINVAL;     /* unknown flags, BPF_F_LOCK included */
    if ((rc = lru_reserve(h)))
        return rc;
    hv = key_hash(k, h->key_size);
    if (h->lru_flags & BM_HTAB_LRU_PERCPU_VALUES)
        return htab_lru_percpu_map_update_elem(h, (uint32_t)cpu, k, hv, value, flags,
                                               onallcpus != 0);
    return htab_lru_map_update_elem(h, (uint32_t)cpu, k, hv, value, flags);
}

/* htab_lru_map_lookup_elem() / htab_lru_percpu_map_lookup_elem(): a program's
   lookup marks the node referenced (the syscall's does not: bm_htab_lookup()) */
int bm_htab_lru_lookup(bm_htab *h, const char *key, char *value)
{
    uint32_t s;

    if (!htab_ok(h) || !h->lru || !key)
        return -EINVAL;
    find(h, (const uint8_t *)key, key_hash((const uint8_t *)key, h->key_size), &s);
    if (s == NONE)
        return -ENOENT;
    bpf_lru_node_set_ref(h->lru, s);
    if (value)
        memcpy(value, slot_val(h, s), h->value_size);
    return 0;
}

int64_t bm_htab_lru_list(const bm_htab *h, int32_t cpu, int32_t type, char *keys,
                         uint8_t *refs, int64_t n)
{
    const struct bpf_lru *lru;
    uint32_t head, fresh, e;
    int64_t len = 0;

    if (!htab_ok(h) || !h->lru || cpu < 0 || type < 0 || n < 0)
        return -EINVAL;
    lru = h->lru;
    head = bpf_lru_list_head(lru, (uint32_t)cpu, (uint32_t)type, &fresh);
    if (head == BPF_LRU_NONE)
        return -EINVAL;
    for (e = lru->e[head].next; e != head; e = lru->e[e].next, len++) {
        bool is_free = lru->e[e].type == BPF_LRU_LIST_T_FREE ||
                       lru->e[e].type == BPF_LRU_LOCAL_LIST_T_FREE;
        if (len >= n || is_free)
            continue;
        if (keys)
            memcpy(keys + (size_t)len * h->key_size, slot_key(h, e - lru->nr_heads), h->key_size);
        if (refs)
            refs[len] = lru->e[e].ref;
    }
    return len + fresh;
}

#define PF_BLOCK 16

/* 1 if none of the n keys is in the store and no key repeats, else 0.
   Hashes a block of keys ahead and prefetches their index lines: the probes of
   a big batch are cache misses, and this overlaps them. */
int64_t bm_htab_all_new(const bm_htab *h, const char *keys, int64_t n)
{
    const uint8_t *k = (const uint8_t *)keys;
    uint64_t *seen;
    uint32_t mask, size = 16, s, hvs[PF_BLOCK];
    int64_t i, b, ret = 1;

    if (!htab_ok(h) || n < 0 || (n > 0 && !keys) || n >= (int64_t)HTAB_MAX_SLOTS)
        return -EINVAL;
    while ((uint64_t)size < (uint64_t)n * 2)
        size <<= 1;
    seen = calloc(size, sizeof(*seen));
    if (!seen)
        return -ENOMEM;
    mask = size - 1;
    for (b = 0; b < n && ret; b += PF_BLOCK) {
        int64_t m = n - b < PF_BLOCK ? n - b : PF_BLOCK;
        for (i = 0; i < m; i++) {
            hvs[i] = key_hash(k + (size_t)(b + i) * h->key_size, h->key_size);
            __builtin_prefetch(&seen[hvs[i] & mask]);
            if (h->idx_mask)
                __builtin_prefetch(&h->idx[hvs[i] & h->idx_mask]);
        }
        for (i = 0; i < m; i++) {
            const uint8_t *key = k + (size_t)(b + i) * h->key_size;
            uint32_t hv = hvs[i], pos = hv & mask;
            find(h, key, hv, &s);
            if (s != NONE) {
                ret = 0;
                break;
            }
            for (; seen[pos]; pos = (pos + 1) & mask) {
                if (E_HASH(seen[pos]) == hv &&
                    !memcmp(k + (size_t)E_SLOT(seen[pos]) * h->key_size, key, h->key_size)) {
                    ret = 0;
                    break;
                }
            }
            if (!ret)
                break;
            seen[pos] = MK_E(hv, b + i);
        }
    }
    free(seen);
    return ret;
}

/* n updates of keys that bm_htab_all_new() said are new: inserted in order.
   aux (n x naux words) may be NULL.  Returns n, or -errno (-EEXIST: a key was
   not new; the ones before it stay inserted). */
int64_t bm_htab_insert_bulk(bm_htab *h, const char *keys, const char *values,
                            const uint64_t *aux, int64_t n)
{
    uint32_t hvs[PF_BLOCK];
    int64_t i, b;
    int rc;

    if (!htab_ok(h) || n < 0 || (n > 0 && (!keys || !values)) ||
        (uint64_t)n + h->count >= HTAB_MAX_SLOTS || (h->mode & BM_HTAB_LRU))
        return -EINVAL;
    if (n == 0)
        return 0;
    if ((rc = grow_index(h, h->count + (uint32_t)n)))
        return rc;
    if ((rc = reserve_slots(h, (uint64_t)h->used + (uint64_t)n)))
        return rc;
    for (b = 0; b < n; b += PF_BLOCK) {
        int64_t m = n - b < PF_BLOCK ? n - b : PF_BLOCK;
        for (i = 0; i < m; i++) {
            hvs[i] = key_hash((const uint8_t *)keys + (size_t)(b + i) * h->key_size, h->key_size);
            __builtin_prefetch(&h->idx[hvs[i] & h->idx_mask], 1);
        }
        for (i = 0; i < m; i++) {
            const uint8_t *key = (const uint8_t *)keys + (size_t)(b + i) * h->key_size;
            uint32_t s;
            find(h, key, hvs[i], &s);
            if (s != NONE)
                return -EEXIST;     /* broken precondition; never after bm_htab_all_new() */
            rc = insert_new(h, key, hvs[i], (const uint8_t *)values + (size_t)(b + i) * h->value_size,
                            aux ? aux + (size_t)(b + i) * h->naux : NULL);
            if (rc)
                return rc;
        }
    }
    return n;
}

/* Up to n elements in insertion order into keys / values / aux (any may be
   NULL).  Returns how many were written. */
int64_t bm_htab_dump(const bm_htab *h, char *keys, char *values, uint64_t *aux, int64_t n)
{
    uint32_t s;
    int64_t i = 0;

    if (!htab_ok(h) || n < 0)
        return -EINVAL;
    for (s = h->head; s != NONE && i < n; s = h->next[s], i++) {
        if (keys)
            memcpy(keys + (size_t)i * h->key_size, slot_key(h, s), h->key_size);
        if (values)
            memcpy(values + (size_t)i * h->value_size, slot_val(h, s), h->value_size);
        if (aux && h->naux)
            memcpy(aux + (size_t)i * h->naux, h->aux + (size_t)s * h->naux,
                   sizeof(uint64_t) * h->naux);
    }
    return i;
}

/* Host memory the store holds, in bytes (for the benchmarks). */
int64_t bm_htab_host_bytes(const bm_htab *h)
{
    if (!htab_ok(h))
        return -EINVAL;
    return (int64_t)(sizeof(*h) + (h->idx_mask ? ((size_t)h->idx_mask + 1) * 8 : 0) +
                     (size_t)h->cap * (8 + h->key_size + h->value_size + 8 * h->naux) +
                     (h->lru ? sizeof(*h->lru) + (size_t)h->lru->cap * sizeof(*h->lru->e) : 0));
}

/* Mirrors alloc_bulk(), kernel/bpf/memalloc.c: n kmallocs of `size` on `cpu`
   that stop at the first failure (unlike bm_kmalloc_bulk(), which tries every
   op).  Returns how many succeeded; addrs[0..ret-1] get the objects. */
int64_t bm_memalloc_bulk(bm_system *sys, int32_t cpu, uint64_t size, int64_t n, uint32_t gfp,
                         uint64_t *addrs)
{
    BM_RCU_READ_SECTION(sys, cpu);
    BM_USER_CALL(sys, cpu);
    int64_t i;

    if (!mm_args_ok(sys, cpu, gfp) || n < 0 || (n > 0 && !addrs))
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    for (i = 0; i < n; i++) {
        uint64_t a = 0;
        if (__kmalloc(sys, cpu, size, gfp, &a))
            break;
        addrs[i] = a;
    }
    pthread_mutex_unlock(&sys->lock);
    return i;
}
