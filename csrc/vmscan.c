/*
 * vmscan.c - memcg reclaim, after mm/vmscan.c: try_to_free_mem_cgroup_pages()
 * -> do_try_to_free_pages() -> shrink_node_memcgs(), which walks the target's
 * subtree top-down, computes each memcg's effective protection, skips those
 * below memory.min (and below memory.low until nothing else is left), and
 * reclaims from the rest: shrink_lruvec() for the page cache, shrink_slab()
 * for the unused objects of reclaimable slab caches (shrinker.c).
 *
 * What the model can reclaim: the simulated page cache (file pages charged
 * with bm_charge_user(file=1)) and the objects on the list_lrus of
 * reclaimable kmem caches.  Anonymous and kernel memory are never reclaimed
 * (no swap: get_scan_count() chooses SCAN_FILE).
 *
 * Simplifications (listed in docs/model.md):
 *  - get_scan_count(): one inactive file list per memcg; its scan target is
 *    the list's size, scaled down by apply_proportional_protection(), then
 *    shifted right by the priority.  No active list, no anon/file balance,
 *    no MGLRU (lru_gen);
 *  - shrink_lruvec() / shrink_inactive_list(): every page scanned is clean,
 *    unmapped and unreferenced, so it is reclaimed (pgscan == pgsteal);
 *  - no reclaim cookie: every walk starts at the target (the kernel's
 *    partial walks, reclaim_partial_walk, resume where the last reclaimer of
 *    that target stopped);
 *  - one node; reclaim runs on the calling cpu (its object stock takes the
 *    uncharges of the slab objects a shrinker frees).
 */
#include "internal.h"

#define DEF_PRIORITY 12
#define SWAP_CLUSTER_MAX 32UL

/* struct scan_control, reduced to what memcg reclaim reads */
struct scan_control {
    struct mem_cgroup *target;        /* target_mem_cgroup */
    unsigned long nr_to_reclaim;
    unsigned long nr_reclaimed;
    uint32_t gfp;
    int cpu;
    int priority;
    bool memcg_low_reclaim;           /* second pass: memory.low is breached */
    bool memcg_low_skipped;           /* a memcg was skipped for memory.low */
    bool memcg_full_walk;             /* no partial walk (the retry before giving up) */
};

static inline unsigned long min_ul(unsigned long a, unsigned long b) { return a < b ? a : b; }
static inline unsigned long max_ul(unsigned long a, unsigned long b) { return a > b ? a : b; }

static inline unsigned long memcg_usage(struct mem_cgroup *memcg)
{
    long v = atomic_load(&memcg->memory.usage);

    return v > 0 ? (unsigned long)v : 0;
}

/* mirrors mem_cgroup_calculate_protection(): the memory_recursiveprot mount
   option is a flag of the cgroup2 root (cgrp_dfl_root), so cgroup v1 never
   has it (and has no memory.min / memory.low files either) */
static void mem_cgroup_calculate_protection(struct bm_system *sys, struct mem_cgroup *target,
                                            struct mem_cgroup *memcg)
{
    bool recursive = !sys->cfg.cgroup_v1 && sys->cfg.memory_recursiveprot;

    page_counter_calculate_protection(&target->memory, &memcg->memory, recursive);
}

/* mirrors mem_cgroup_unprotected() (v6.3+) / !mem_cgroup_supports_protection():
   root never has protection; since adb8213014b2 neither has the reclaim
   target (before, its stale emin / elow were checked: reclaim_target_unprotected) */
static bool mem_cgroup_unprotected(struct bm_system *sys, struct mem_cgroup *target, struct mem_cgroup *memcg)
{
    return mem_cgroup_is_root(memcg) || (sys->cfg.profile.reclaim_target_unprotected && memcg == target);
}

/* mirrors mem_cgroup_below_min() / mem_cgroup_below_low(): the usage is
   within the effective protection (an empty memcg is "below" both) */
static bool mem_cgroup_below_min(struct bm_system *sys, struct mem_cgroup *target, struct mem_cgroup *memcg)
{
    return !mem_cgroup_unprotected(sys, target, memcg) &&
           (unsigned long)atomic_load(&memcg->memory.emin) >= memcg_usage(memcg);
}

static bool mem_cgroup_below_low(struct bm_system *sys, struct mem_cgroup *target, struct mem_cgroup *memcg)
{
    return !mem_cgroup_unprotected(sys, target, memcg) &&
           (unsigned long)atomic_load(&memcg->memory.elow) >= memcg_usage(memcg);
}

/* mirrors apply_proportional_protection() (the protection half of
   get_scan_count()): with any protection the scan shrinks by the protected
   share of the memcg's usage, memory.low counting until the low-reclaim
   pass, and never below SWAP_CLUSTER_MAX.  mem_cgroup_protection(): the
   target's own protection is never applied. */
static unsigned long apply_proportional_protection(struct mem_cgroup *memcg, struct scan_control *sc,
                                                   unsigned long scan)
{
    unsigned long min, low, protection, cgroup_size;

    if (memcg == sc->target)
        return scan;
    min = (unsigned long)atomic_load(&memcg->memory.emin);
    low = (unsigned long)atomic_load(&memcg->memory.elow);
    if (!min && !low)
        return scan;
    if (!sc->memcg_low_reclaim && low > min) {
        protection = low;
        sc->memcg_low_skipped = true;
    } else {
        protection = min;
    }
    cgroup_size = max_ul(memcg_usage(memcg), protection);   /* mem_cgroup_size(), TOCTOU guard */
    scan -= scan * protection / (cgroup_size + 1);
    return max_ul(scan, SWAP_CLUSTER_MAX);
}

/* isolate up to `want` pages from the memcg's (inactive file) list: a CAS,
   so racing reclaimers never take the same page twice */
static unsigned long isolate_file_pages(struct mem_cgroup *m, unsigned long want)
{
    long have = atomic_load(&m->file_pages);

    for (;;) {
        long take = have < (long)want ? have : (long)want;
        if (take <= 0)
            return 0;
        if (atomic_compare_exchange_weak(&m->file_pages, &have, have - take))
            return (unsigned long)take;
    }
}

/* mirrors shrink_lruvec() for a memcg's file list: the get_scan_count()
   target (simplified, see the header), scanned in batches of
   SWAP_CLUSTER_MAX; limit reclaim stops once this list alone gave
   nr_to_reclaim pages.  Reclaimed pages are uncharged at once, as
   uncharge_batch() does; PGSCAN_DIRECT / PGSTEAL_DIRECT count them. */
static void shrink_lruvec(struct bm_system *sys, struct mem_cgroup *memcg, struct scan_control *sc)
{
    unsigned long size = (unsigned long)atomic_load(&memcg->file_pages);
    unsigned long scan = apply_proportional_protection(memcg, sc, size) >> sc->priority;
    unsigned long reclaimed = 0;

    /* a deleted cgroup's cache is scraped out however small */
    if (!scan && atomic_load(&memcg->state) != BM_MEMCG_ONLINE)
        scan = min_ul(size, SWAP_CLUSTER_MAX);
    while (scan) {
        unsigned long n = min_ul(scan, SWAP_CLUSTER_MAX);
        unsigned long got = isolate_file_pages(memcg, n);

        scan -= n;
        if (got) {
            memcg_uncharge(sys, memcg, got);
            mod_memcg_state(memcg, BM_STAT_FILE, -(long)got);
            mod_memcg_state(memcg, BM_STAT_PGSCAN, (long)got);
            mod_memcg_state(memcg, BM_STAT_PGSTEAL, (long)got);
            user_pages_sub(memcg, (long)got);
            reclaimed += got;
        }
        if (reclaimed >= sc->nr_to_reclaim)
            break;
    }
    sc->nr_reclaimed += reclaimed;
}

/* mirrors shrink_node_memcgs(): the target's subtree pre-order (dying
   memcgs included, as mem_cgroup_iter() finds them), each with its
   protection computed first.  Below memory.min: skipped.  Below memory.low:
   skipped on the first pass (memcg_low_skipped), reclaimed on the
   low-reclaim pass with a MEMCG_LOW event.  With partial walks
   (reclaim_partial_walk) the walk stops once the goal is met. */
static void shrink_node_memcgs(struct bm_system *sys, struct scan_control *sc)
{
    bool partial = sys->cfg.profile.reclaim_partial_walk && !sc->memcg_full_walk;

    for (struct mem_cgroup *m = sc->target; m; m = next_descendant_pre(m, sc->target)) {
        if (!css_tryget(m))
            continue;
        mem_cgroup_calculate_protection(sys, sc->target, m);
        if (mem_cgroup_below_min(sys, sc->target, m)) {
            css_put(m);
            continue;
        }
        if (mem_cgroup_below_low(sys, sc->target, m)) {
            if (!sc->memcg_low_reclaim) {
                sc->memcg_low_skipped = true;
                css_put(m);
                continue;
            }
            memcg_memory_event(sys, m, BM_MEMCG_LOW);
        }
        shrink_lruvec(sys, m, sc);
        shrink_slab(sys, sc->cpu, sc->gfp, m, sc->priority);
        css_put(m);
        if (partial && sc->nr_reclaimed >= sc->nr_to_reclaim)
            break;
    }
}

/* mirrors do_try_to_free_pages() for one node: priorities DEF_PRIORITY down
   to 0 until the goal is met.  Slab pages freed by the shrinkers count as
   reclaimed only where the profile says so (memcg_reclaim_counts_slab: the
   reclaim_state of kernels before v6.4).  Nothing reclaimed: retry once with
   a full walk (reclaim_partial_walk), then, if a memcg was skipped for
   memory.low, retry breaching it (memcg_low_reclaim). */
static unsigned long do_try_to_free_pages(struct bm_system *sys, struct scan_control *sc)
{
retry:
    sc->priority = DEF_PRIORITY;
    do {
        unsigned long slab_pages = 0;
        unsigned long *outer = bm_reclaim_state;

        bm_reclaim_state = &slab_pages;   /* current->reclaim_state */
        shrink_node_memcgs(sys, sc);
        bm_reclaim_state = outer;
        if (sys->cfg.profile.memcg_reclaim_counts_slab)
            sc->nr_reclaimed += slab_pages;
        if (sc->nr_reclaimed >= sc->nr_to_reclaim)
            break;
    } while (--sc->priority >= 0);

    if (sc->nr_reclaimed)
        return sc->nr_reclaimed;
    if (sys->cfg.profile.reclaim_partial_walk && !sc->memcg_full_walk) {
        sc->memcg_full_walk = true;
        goto retry;
    }
    if (sc->memcg_low_skipped) {
        sc->memcg_low_reclaim = true;
        sc->memcg_low_skipped = false;
        goto retry;
    }
    return 0;
}

unsigned long try_to_free_mem_cgroup_pages(struct bm_system *sys, int cpu, struct mem_cgroup *memcg,
                                           unsigned long nr_pages, uint32_t gfp)
{
    struct scan_control sc = {
        .target = memcg,
        .nr_to_reclaim = max_ul(nr_pages, SWAP_CLUSTER_MAX),
        .gfp = gfp,
        .cpu = cpu,
    };
    unsigned long ret;

    css_get(memcg);
    ret = do_try_to_free_pages(sys, &sc);
    css_put(memcg);
    return ret;
}

/* mirrors drop_slab() (echo 2 > /proc/sys/vm/drop_caches): shrink_slab() at
   priority 0 of every memcg, root first, in passes until a pass frees little
   ((freed >> pass) <= 1, the v6.x rule; v5.10 stops at 10 or fewer: the
   passes after the first free nothing here either way) */
unsigned long drop_slab(struct bm_system *sys, int cpu)
{
    struct mem_cgroup *root = bm_memcg_lookup(sys, 0);
    unsigned long freed, total = 0;
    int shift = 0;

    do {
        freed = 0;
        for (struct mem_cgroup *m = root; m; m = next_descendant_pre(m, root)) {
            if (!css_tryget(m))
                continue;
            freed += shrink_slab(sys, cpu, GFP_KERNEL, m, 0);
            css_put(m);
        }
        total += freed;
    } while ((freed >> shift++) > 1);
    return total;
}

int64_t bm_drop_slab(bm_system *sys, int32_t cpu)
{
    BM_RCU_READ_SECTION(sys, cpu);
    if (!sys || !bm_cpu_valid(sys, cpu))
        return -EINVAL;
    return (int64_t)drop_slab(sys, cpu);
}
