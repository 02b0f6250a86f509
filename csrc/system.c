/*
 * system.c - bm_system lifecycle and handle tables.
 *
 * One bm_system is one simulated machine; nothing is shared between
 * systems.  The memcg and objcg id tables have MEM_CGROUP_ID_MAX + 1 slots;
 * a handle is a slot and a generation (handles.c), so a stale handle does
 * not name a newer cgroup.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm_internal.h"

int bm_config_check(const struct bm_config *cfg)
{
    const struct bm_profile *p;

    if (!cfg)
        return -EINVAL;
    p = &cfg->profile;
    if (cfg->nr_cpus < 1 || cfg->nr_cpus > BM_MAX_CPUS)
        return -EINVAL;
    if (cfg->page_size != 4096 && cfg->page_size != 16384 && cfg->page_size != 65536)
        return -EINVAL;
    if (p->nr_memcg_stock < 1 || p->nr_memcg_stock > 7)
        return -EINVAL;
    /* the current stock keeps a slot's pages in a uint8: BATCH <= 127 */
    if (p->charge_batch < 1 || p->charge_batch > 127)
        return -EINVAL;
    if (cfg->ram_pages < 1)
        return -EINVAL;
    if (cfg->nr_memcg_allocs > BM_MEMCG_ALLOC_MAX)
        return -EINVAL;
    for (uint32_t i = 0; i < cfg->nr_memcg_allocs; i++) {
        const struct bm_alloc_spec *a = &cfg->memcg_allocs[i];
        /* a kmalloc up to KMALLOC_MAX_CACHE_SIZE, a percpu area up to PCPU_MIN_UNIT_SIZE */
        if ((a->kind != BM_ALLOC_KMALLOC && a->kind != BM_ALLOC_PERCPU) || !a->size ||
            a->size > (a->kind == BM_ALLOC_KMALLOC ? 2 * cfg->page_size : 32768u))
            return -EINVAL;
    }
    /* page_alloc.c: frame numbers fit 32 bits and the direct map is 64 TiB */
    if (cfg->ram_pages > BM_MAX_RAM_PAGES || cfg->ram_pages > BM_DIRECT_MAP_SIZE / cfg->page_size)
        return -EINVAL;
    return 0;
}

#define ID_TABLE_BYTES ((MEM_CGROUP_ID_MAX + 1) * sizeof(void *))

static unsigned int ilog2_u32(uint32_t v)
{
    unsigned int s = 0;

    while ((1u << s) < v)
        s++;
    return s;
}

static void system_free_tables(struct bm_system *sys)
{
    if (sys->memcgs) {
        for (int32_t i = 0; i < sys->memcg_ids.nr_fresh; i++)
            free(sys->memcgs[i]);
        bm_table_free(sys->memcgs, ID_TABLE_BYTES);
    }
    if (sys->objcgs) {
        for (int32_t i = 0; i < sys->objcg_ids.nr_fresh; i++)
            free(sys->objcgs[i]);
        bm_table_free(sys->objcgs, ID_TABLE_BYTES);
    }
    while (sys->css_free_list) {      /* freed memcgs whose structures went with the mm */
        struct mem_cgroup *m = sys->css_free_list;
        sys->css_free_list = m->css_free_next;
        free(m);
    }
    rcu_barrier_free(sys);
    bm_ids_destroy(&sys->memcg_ids);
    bm_ids_destroy(&sys->objcg_ids);
    free(sys->rcu.wait);
    free(sys->cpus);
}

bm_system *bm_system_new(const struct bm_config *cfg)
{
    struct bm_system *sys;
    struct mem_cgroup *root;

    if (bm_config_check(cfg))
        return NULL;
    sys = aligned_alloc(64, sizeof(*sys));   /* nr_anon_readers has a cache line of its own */
    if (!sys)
        return NULL;
    memset(sys, 0, sizeof(*sys));
    sys->cfg = *cfg;
    sys->page_shift = ilog2_u32(cfg->page_size);
    sys->page_counter_max = page_counter_max_pages(cfg->page_size);
    sys->cpus = aligned_alloc(64, sizeof(struct bm_cpu) * cfg->nr_cpus);
    sys->memcgs = bm_table_alloc(ID_TABLE_BYTES);
    sys->objcgs = bm_table_alloc(ID_TABLE_BYTES);
    sys->rcu.wait = calloc(cfg->nr_cpus + 1, 1);
    if (!sys->cpus || !sys->memcgs || !sys->objcgs || !sys->rcu.wait ||
        bm_ids_init(&sys->memcg_ids) || bm_ids_init(&sys->objcg_ids)) {
        system_free_tables(sys);
        free(sys);
        return NULL;
    }
    memset(sys->cpus, 0, sizeof(struct bm_cpu) * cfg->nr_cpus);
    for (uint32_t i = 0; i < cfg->nr_cpus; i++) {
        atomic_flag_clear(&sys->cpus[i].lock);
        sys->cpus[i].last_failure.memcg = -1;
    }
    {   /* recursive: see the locking rule at struct bm_system */
        pthread_mutexattr_t attr;
        pthread_mutexattr_init(&attr);
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
        pthread_mutex_init(&sys->lock, &attr);
        pthread_mutexattr_destroy(&attr);
    }
    pthread_mutex_init(&sys->tree_lock, NULL);
    atomic_flag_clear(&sys->percpu_charge_mutex);
    atomic_flag_clear(&sys->rcu.lock);
    atomic_init(&sys->rcu.pending, 0);
    atomic_init(&sys->nr_anon_readers, 0);
    atomic_init(&sys->fail_nth, 0);
    atomic_init(&sys->nr_dying, 0);
    atomic_init(&sys->nr_objcg_release_warns, 0);

    /* the root memcg: id 0, unlimited, no objcg (memcg_online_kmem is not
       run for root in the profiles modelled) */
    if (mem_cgroup_css_online(sys, NULL, NULL, &root))
        goto fail;
    if (bm_mm_init(sys))
        goto fail;
    return sys;
fail:
    pthread_mutex_destroy(&sys->lock);
    pthread_mutex_destroy(&sys->tree_lock);
    system_free_tables(sys);
    free(sys);
    return NULL;
}

void bm_system_free(bm_system *sys)
{
    if (!sys)
        return;
    bm_mm_destroy(sys);
    pthread_mutex_destroy(&sys->lock);
    pthread_mutex_destroy(&sys->tree_lock);
    system_free_tables(sys);
    free(sys);
}

int64_t bm_fail_nth_alloc(bm_system *sys, int64_t n)
{
    if (!sys || n < 0)
        return -EINVAL;
    return atomic_exchange(&sys->fail_nth, n);
}

int bm_system_nr_dying(bm_system *sys)
{
    if (!sys)
        return -EINVAL;
    return atomic_load(&sys->nr_dying);
}

int bm_system_check(bm_system *sys, char *msg, size_t msglen)
{
    BM_RCU_READ_SECTION(sys, -1);
    int ret;

    if (!sys)
        return -EINVAL;
    ret = memcg_check(sys, msg, msglen);
    if (ret)
        return ret;
    pthread_mutex_lock(&sys->lock);
    ret = mm_check(sys, msg, msglen);    /* page frames and slabs (mm_inspect.c) */
    pthread_mutex_unlock(&sys->lock);
    return ret;
}
