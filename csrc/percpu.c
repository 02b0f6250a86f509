/*
 * percpu.c - alloc_percpu / free_percpu (mm/percpu.c) with the memcg hooks
 * pcpu_memcg_pre_alloc_hook(), pcpu_memcg_post_alloc_hook() and
 * pcpu_memcg_free_hook().
 *
 * Model choices (simplifications of the kernel):
 *  - no chunks: percpu memory takes no simulated frames (chunk pages are
 *    never page-charged in the kernel either: pcpu_gfp drops
 *    __GFP_ACCOUNT), addresses are bump-allocated from a model-only range
 *    and never reused;
 *  - the v5.11 chunk types (ROOT vs MEMCG) change no number, so they are
 *    not modelled;
 *  - every allocation records its objcg (the chunk's obj_cgroups slot);
 *  - an array of n equal areas (bm_alloc_percpu_array(), the preallocated
 *    per-cpu values of a BPF map) is one host record: charged and accounted
 *    as n allocations, freed together, so its host memory does not grow with n.
 */
#include <stdlib.h>

#include "mm_internal.h"

#define PCPU_MIN_ALLOC_SHIFT 2
#define PCPU_MIN_ALLOC_SIZE (1u << PCPU_MIN_ALLOC_SHIFT)
#define PCPU_MIN_UNIT_SIZE (32u << 10)      /* PFN_ALIGN(32 << 10) */

struct pcpu_alloc {
    uint64_t size;                          /* ALIGN(size, PCPU_MIN_ALLOC_SIZE) */
    uint64_t charged;                       /* pcpu_obj_full_size() of each, 0 if uncharged */
    uint64_t nr;                            /* areas, one after another */
    struct obj_cgroup *objcg;               /* one reference per area */
};

/* pcpu_obj_full_size(): size on every possible cpu, plus (2022+) the objcg
   pointer array slots of the allocation */
static uint64_t pcpu_obj_full_size(const struct bm_system *sys, uint64_t size)
{
    uint64_t full = size * sys->cfg.nr_cpus;

    if (sys->cfg.profile.percpu_ptr_overhead)
        full += (size / PCPU_MIN_ALLOC_SIZE) * sizeof(struct obj_cgroup *);
    return full;
}

/* the charges of n areas taken so far go back, with the pre-hook reference */
static void pcpu_uncharge_areas(struct bm_system *sys, int cpu, struct obj_cgroup *objcg,
                                uint64_t full, uint64_t n)
{
    if (!objcg)
        return;
    for (uint64_t i = 0; i < n; i++)
        obj_cgroup_uncharge(sys, cpu, objcg, full);
    obj_cgroup_put_cpu(objcg, cpu);
}

/*
 * pcpu_alloc(), n times in a row: align < 4 is raised to 4 and size rounded
 * up to 4; size 0, size > PCPU_MIN_UNIT_SIZE, align > PAGE_SIZE or not a
 * power of two make the kernel WARN and return NULL (-EINVAL here).  With
 * __GFP_ACCOUNT each area's full size is charged to
 * get_obj_cgroup_from_current() (pcpu_memcg_pre_alloc_hook(); a failure
 * gives back what was taken: -ENOMEM, as the map's prealloc loop frees the
 * areas before it), then MEMCG_PERCPU_B grows on the objcg's memcg
 * (pcpu_memcg_post_alloc_hook()), each area holding an objcg reference.
 */
int __alloc_percpu_array(struct bm_system *sys, int cpu, uint64_t size, uint64_t align, uint32_t gfp,
                         uint64_t n, uint64_t *addr)
{
    struct mm_state *mm = sys->mm;
    struct obj_cgroup *objcg = NULL;
    struct pcpu_alloc *pa;
    uint64_t full = 0, base, stride, i;

    if (align < PCPU_MIN_ALLOC_SIZE)
        align = PCPU_MIN_ALLOC_SIZE;
    if (size > PCPU_MIN_UNIT_SIZE || !n)
        return -EINVAL;
    size = (size + PCPU_MIN_ALLOC_SIZE - 1) & ~(uint64_t)(PCPU_MIN_ALLOC_SIZE - 1);
    if (!size || align > mm->page_size || (align & (align - 1)))
        return -EINVAL;
    stride = (size + align - 1) & ~(align - 1);
    base = (mm->pcpu_next + align - 1) & ~(align - 1);
    if (base < mm->pcpu_next || base > BM_PERCPU_END || n > (BM_PERCPU_END - base) / stride)
        return -ENOMEM;

    if (gfp & __GFP_ACCOUNT) {                 /* pcpu_memcg_pre_alloc_hook() */
        objcg = get_obj_cgroup_from_current(sys, cpu);
        full = objcg ? pcpu_obj_full_size(sys, size) : 0;
    }
    for (i = 0; i < n; i++) {
        if (should_fail_alloc(sys) || (objcg && obj_cgroup_charge(sys, cpu, objcg, gfp, full))) {
            pcpu_uncharge_areas(sys, cpu, objcg, full, i);
            return -ENOMEM;
        }
    }
    pa = malloc(sizeof(*pa));
    if (!pa || addr_map_put(&mm->pcpu, base, pa)) {
        free(pa);
        pcpu_uncharge_areas(sys, cpu, objcg, full, n);   /* post hook, failed allocation */
        return -ENOMEM;
    }
    pa->size = size;
    pa->charged = full;
    pa->nr = n;
    pa->objcg = objcg;
    if (objcg) {                               /* pcpu_memcg_post_alloc_hook() */
        for (i = 1; i < n; i++)                /* the pre-hook reference is the first's */
            obj_cgroup_tryget(objcg);
        mod_memcg_state(obj_cgroup_memcg(objcg), BM_STAT_PERCPU_B, (long)(full * n));
    }
    mm->pcpu_next = base + (n - 1) * stride + size;
    *addr = base;
    return 0;
}

int __alloc_percpu(struct bm_system *sys, int cpu, uint64_t size, uint64_t align, uint32_t gfp, uint64_t *addr)
{
    return __alloc_percpu_array(sys, cpu, size, align, gfp, 1, addr);
}

/* free_percpu() + pcpu_memcg_free_hook(): uncharge the recorded objcg;
   free_percpu(NULL) is a no-op, an unknown address is refused (the kernel
   would corrupt its chunk bitmap) */
int __free_percpu(struct bm_system *sys, int cpu, uint64_t addr)
{
    struct pcpu_alloc *pa;

    if (!addr)
        return 0;
    if (!is_percpu_addr(addr))
        return -EINVAL;
    pa = addr_map_del(&sys->mm->pcpu, addr);
    if (!pa)
        return -EINVAL;
    if (pa->objcg) {
        mod_memcg_state(obj_cgroup_memcg(pa->objcg), BM_STAT_PERCPU_B, -(long)(pa->charged * pa->nr));
        for (uint64_t i = 0; i < pa->nr; i++) {
            obj_cgroup_uncharge(sys, cpu, pa->objcg, pa->charged);
            obj_cgroup_put_cpu(pa->objcg, cpu);
        }
    }
    free(pa);
    return 0;
}

int __percpu_obj_cgroup(struct bm_system *sys, uint64_t addr, struct obj_cgroup **objcg)
{
    struct pcpu_alloc *pa = addr_map_get(&sys->mm->pcpu, addr);

    if (!pa)
        return -ENOENT;
    *objcg = pa->objcg;
    return 0;
}

/* ---- set-up and teardown (called by mm_init.c) ---- */

void mm_percpu_init(struct mm_state *mm)
{
    mm->pcpu_next = BM_PERCPU_START;
}

void mm_percpu_destroy(struct mm_state *mm)
{
    addr_map_free(&mm->pcpu);
}

int bm_alloc_percpu(bm_system *sys, int32_t cpu, uint64_t size, uint64_t align, uint32_t gfp, uint64_t *addr)
{
    BM_RCU_READ_SECTION(sys, cpu);
    BM_USER_CALL(sys, cpu);
    int ret;

    if (!mm_args_ok(sys, cpu, gfp) || !addr)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = __alloc_percpu(sys, cpu, size, align, gfp, addr);
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

int bm_alloc_percpu_array(bm_system *sys, int32_t cpu, uint64_t size, uint64_t align, uint32_t gfp,
                          int64_t n, uint64_t *addr)
{
    BM_RCU_READ_SECTION(sys, cpu);
    BM_USER_CALL(sys, cpu);
    int ret;

    if (!mm_args_ok(sys, cpu, gfp) || !addr || n < 1)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = __alloc_percpu_array(sys, cpu, size, align, gfp, (uint64_t)n, addr);
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

int bm_free_percpu(bm_system *sys, int32_t cpu, uint64_t addr)
{
    BM_RCU_READ_SECTION(sys, cpu);
    int ret;

    if (!mm_args_ok(sys, cpu, 0))
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = __free_percpu(sys, cpu, addr);
    pthread_mutex_unlock(&sys->lock);
    return ret;
}
