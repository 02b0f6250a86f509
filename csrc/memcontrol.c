/*
 * memcontrol.c - the mirror of mm/memcontrol.c (+ memcontrol-v1.c):
 * mem_cgroup charging, per-cpu page and object stocks, obj_cgroup, kmem page
 * charging, events, statistics, reclaim of the simulated page cache,
 * memory.high, the memcg lifecycle and the cgroup file write handlers, and
 * which memcg `current` charges.  The bm_* entry points that reach this are
 * in cgroup_api.c, context_api.c and charge_api.c; inspection and invariant
 * checks in memcg_inspect.c.
 *
 * Behaviour differences between kernel releases are selected only by the
 * switches of struct bm_profile (never by a version number).
 *
 * Model-wide simplifications (each function notes its own):
 *  - Reclaim is vmscan.c's (try_to_free_mem_cgroup_pages()): the simulated
 *    page cache and the unused objects of reclaimable slab caches.
 *  - __mem_cgroup_free(), which the kernel runs from a workqueue after an
 *    RCU grace period, frees the memcg's accounted structures at the next
 *    flush point after the last css_put() (css_free_work(): a cgroup
 *    operation, a memcg or objcg put, drain_all_stock, drain_local_stock),
 *    on cpu 0; the struct itself then waits for its grace period.
 *  - drain_all_stock() is synchronous for every cpu (the kernel's remote
 *    drains are queued work); its percpu_charge_mutex trylock is kept.
 *  - No swap / memsw / tcpmem counters.
 *  - User pages hold one css reference per memcg while any are charged
 *    (the kernel holds one per page), so refcounts stay small.
 *  - obj_cgroup_release() runs on the cpu of the put that dropped the last
 *    reference; a put with no cpu (the objcg reference Python holds, the
 *    initial reference dropped at offline: the kernel's RCU callback) uncharges
 *    the leftover pages directly, also where objcg_release_via_stock would
 *    go through a page stock.
 *  - Throttling at return to user (mem_cgroup_handle_over_high) runs at the
 *    end of the entry point that charged (BM_USER_CALL), or of a longer
 *    system call (bm_syscall_enter/exit), and never sleeps: the penalty is
 *    kept as data.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm_internal.h"

_Thread_local unsigned long *bm_reclaim_state;
_Thread_local unsigned bm_over_high_deferred;

#define SWAP_CLUSTER_MAX 32
#define HZ 1000                          /* model HZ for the memory.high penalty */
#define MEMCG_DELAY_PRECISION_SHIFT 20
#define MEMCG_DELAY_SCALING_SHIFT 14
#define MEMCG_MAX_HIGH_DELAY_JIFFIES (2L * HZ)

/* ------------------------------------------------------------------ */
/* small helpers                                                       */
/* ------------------------------------------------------------------ */

static inline bool clamp_of(struct bm_system *sys) { return sys->cfg.profile.clamp_underflow != 0; }
static inline bool multi_stock(struct bm_system *sys) { return sys->cfg.profile.nr_memcg_stock > 1; }

static inline struct mem_cgroup *memcg_from_memory_counter(struct page_counter *c)
{
    return (struct mem_cgroup *)(void *)((char *)c - offsetof(struct mem_cgroup, memory));
}

static inline struct mem_cgroup *memcg_from_kmem_counter(struct page_counter *c)
{
    return (struct mem_cgroup *)(void *)((char *)c - offsetof(struct mem_cgroup, kmem));
}

/* css_next_descendant_pre(): pre-order walk of root's subtree */
struct mem_cgroup *next_descendant_pre(struct mem_cgroup *pos, struct mem_cgroup *root)
{
    struct mem_cgroup *next = load_child(pos);

    if (next)
        return next;
    while (pos != root) {
        next = load_sibling(pos);
        if (next)
            return next;
        pos = pos->parent;
    }
    return NULL;
}

/* mem_cgroup_is_descendant() */
static bool mem_cgroup_is_descendant(struct mem_cgroup *memcg, struct mem_cgroup *root)
{
    for (; memcg; memcg = memcg->parent)
        if (memcg == root)
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* css references and memcg freeing                                    */
/* ------------------------------------------------------------------ */

/* mirrors mem_cgroup_css_free()/__mem_cgroup_free(): the last css reference
   of an offlined memcg went.  Under tree_lock it leaves the id table (its id
   is free again: mem_cgroup_id_remove()) and its parent's children, its
   local stats and own charges fold into the parent (so the parent's recursive
   sums stay right, and a reader holding the lock sees either the child or its
   folded counts, never both or neither), and the struct is freed after a
   grace period (handles.c: lock-free readers stay safe), once its accounted
   structures, if it has any, are freed (css_free_work()); then the parent's
   pin is dropped. */
static bool memcg_has_structs(struct bm_system *sys, struct mem_cgroup *memcg)
{
    for (unsigned i = 0; i < sys->cfg.nr_memcg_allocs; i++)
        if (memcg->alloc_addrs[i])
            return true;
    return false;
}

static void mem_cgroup_free(struct mem_cgroup *memcg)
{
    struct bm_system *sys = memcg->sys;
    struct mem_cgroup *parent = memcg->parent;
    struct obj_cgroup *orig_objcg = memcg->orig_objcg;

    pthread_mutex_lock(&sys->tree_lock);
    __atomic_store_n(&sys->memcgs[BM_HANDLE_SLOT(memcg->id)], NULL, __ATOMIC_SEQ_CST);
    bm_ids_free(&sys->memcg_ids, memcg->id);
    if (parent) {
        struct mem_cgroup **pp = &parent->first_child, *prev = NULL;
        while (*pp && *pp != memcg) {
            prev = *pp;
            pp = &(*pp)->next_sibling;
        }
        if (*pp) {
            __atomic_store_n(pp, memcg->next_sibling, __ATOMIC_SEQ_CST);
            if (parent->last_child == memcg)
                parent->last_child = prev;
        }
        for (int i = 0; i < BM_NR_STATS; i++)
            atomic_fetch_add(&parent->stat[i], atomic_load(&memcg->stat[i]));
        atomic_fetch_add(&parent->own_pages, atomic_load(&memcg->own_pages));
        atomic_fetch_add(&parent->own_kmem_pages, atomic_load(&memcg->own_kmem_pages));
    }
    if (memcg_has_structs(sys, memcg)) {   /* css_free_work() frees them, then queues the struct */
        memcg->css_free_next = sys->css_free_list;
        sys->css_free_list = memcg;
        atomic_fetch_add(&sys->nr_css_free_pending, 1);
    } else {
        call_rcu_free(sys, &memcg->rcu, memcg);
    }
    atomic_fetch_sub(&sys->nr_dying, 1);
    pthread_mutex_unlock(&sys->tree_lock);
    /* __mem_cgroup_free() drops orig_objcg: a reparented objcg nothing else holds is
       released now, its parked bytes uncharged (no cpu: directly) */
    obj_cgroup_put(orig_objcg);
    if (parent)
        css_put(parent);
}

void css_get(struct mem_cgroup *memcg)
{
    if (memcg)
        atomic_fetch_add(&memcg->refcnt, 1);
}

/* atomic_long_add_unless(v, n, 0) for a count that never goes negative:
   add n unless it is zero; true if added */
static bool add_unless_zero(_Atomic long *v, long n)
{
    long old = atomic_load_explicit(v, memory_order_relaxed);

    while (old > 0)
        if (atomic_compare_exchange_weak(v, &old, old + n))
            return true;
    return false;
}

/* css_tryget(): a reference unless the count already reached zero (the
   memcg is being freed: a lock-free lookup can still find it) */
bool css_tryget(struct mem_cgroup *memcg)
{
    return add_unless_zero(&memcg->refcnt, 1);
}

void css_put(struct mem_cgroup *memcg)
{
    if (!memcg)
        return;
    if (atomic_fetch_sub(&memcg->refcnt, 1) == 1)
        mem_cgroup_free(memcg);
}

/* ------------------------------------------------------------------ */
/* events and statistics                                               */
/* ------------------------------------------------------------------ */

/* mirrors memcg_memory_event(): local always; hierarchical walk up, stopping
   before root; cgroup v1 stops after the first level */
void memcg_memory_event(struct bm_system *sys, struct mem_cgroup *memcg, int event)
{
    atomic_fetch_add(&memcg->memory_events_local[event], 1);
    do {
        atomic_fetch_add(&memcg->memory_events[event], 1);
        if (sys->cfg.cgroup_v1)
            break;
    } while ((memcg = parent_mem_cgroup(memcg)) && !mem_cgroup_is_root(memcg));
}

/* mirrors mod_memcg_state(): local atomics; memory.stat sums the subtree */
void mod_memcg_state(struct mem_cgroup *memcg, int idx, long val)
{
    if (!memcg || idx < 0 || idx >= BM_NR_STATS)
        return;
    atomic_fetch_add(&memcg->stat[idx], val);
}

/* mirrors mod_objcg_state(): the stat goes to the objcg's current memcg */
static void mod_objcg_state(struct obj_cgroup *objcg, int idx, long val)
{
    if (!objcg)
        return;
    mod_memcg_state(obj_cgroup_memcg(objcg), idx, val);
}

/* ------------------------------------------------------------------ */
/* direct counter moves (leaf bookkeeping for bm_system_check)          */
/* ------------------------------------------------------------------ */

/* mirrors memcg_uncharge()/cancel_charge(): direct, skipping root */
void memcg_uncharge(struct bm_system *sys, struct mem_cgroup *memcg, unsigned long nr)
{
    if (!nr || mem_cgroup_is_root(memcg))
        return;
    page_counter_uncharge(&memcg->memory, nr, clamp_of(sys));
    atomic_fetch_sub(&memcg->own_pages, (long)nr);
}

/* the memory-counter half of a kernel-memory uncharge.  Unlike user pages,
   kernel memory can reach root through a reparented objcg: those pages were
   charged at a child (so root's counter has them).  Up to v6.14 they leave
   root's counter (through refill_stock(root) and its drain, see
   memcg_kmem_uncharge(); directly here); v6.15+ skip root in
   obj_cgroup_uncharge_pages() and drain_obj_stock(), so root's counter keeps
   them (kmem_uncharge_skips_root). */
static void kmem_memcg_uncharge(struct bm_system *sys, struct mem_cgroup *memcg, unsigned long nr)
{
    if (!nr)
        return;
    if (mem_cgroup_is_root(memcg)) {
        if (sys->cfg.profile.kmem_uncharge_skips_root)
            return;
        page_counter_uncharge(&memcg->memory, nr, clamp_of(sys));
        atomic_fetch_sub(&memcg->own_pages, (long)nr);
        return;
    }
    memcg_uncharge(sys, memcg, nr);
}

/* memcg1_account_kmem() / the v1 half of __memcg_kmem_uncharge() */
static void memcg1_uncharge_kmem(struct bm_system *sys, struct mem_cgroup *memcg, unsigned long nr)
{
    if (!sys->cfg.cgroup_v1 || !nr)
        return;
    page_counter_uncharge(&memcg->kmem, nr, clamp_of(sys));
    atomic_fetch_sub(&memcg->own_kmem_pages, (long)nr);
}

/* ------------------------------------------------------------------ */
/* per-cpu stock lock                                                  */
/* ------------------------------------------------------------------ */

/* local_lock_irqsave (v5.x: spin) or local_trylock (current: may fail).
   The nospin_no_batch switch marks the profile whose stocks use trylock. */
static bool stock_lock(struct bm_system *sys, struct bm_cpu *c, bool may_fail)
{
    if (may_fail && sys->cfg.profile.nospin_no_batch)
        return bm_cpu_trylock(c);
    bm_cpu_lock(c);
    return true;
}

static void stock_unlock(struct bm_cpu *c)
{
    bm_cpu_unlock(c);
}

/* ------------------------------------------------------------------ */
/* the bm_try_charge ledger (model bookkeeping, no kernel counterpart)  */
/* ------------------------------------------------------------------ */

/* memcg->charged_pages holds one css ref while non-zero.  The ref is taken
   before the 0 -> n transition and dropped after n -> 0, so a racing
   uncharge on another cpu can never drop it early.  While the ledger is
   already non-zero one CAS suffices (it cannot reach zero under us: that
   CAS would fail). */
void ledger_add(_Atomic long *ledger, struct mem_cgroup *memcg, long n)
{
    if (add_unless_zero(ledger, n))
        return;
    css_get(memcg);
    if (atomic_fetch_add(ledger, n) != 0)
        css_put(memcg);
}

bool ledger_sub(_Atomic long *ledger, long n, bool *now_zero)
{
    long v = atomic_load(ledger);

    do {
        if (v < n)
            return false;
    } while (!atomic_compare_exchange_weak(ledger, &v, v - n));
    *now_zero = (v == n);
    return true;
}

/* Perf (model only): a cpu's stock slot also keeps that cpu's share of the
   slot memcg's ledger, so a stock hit touches no shared cache line.  The
   share goes to memcg->charged_pages before the slot lets go of its css
   reference, so the memcg stays pinned exactly as long as before. */
void ledger_flush_slot(struct memcg_stock_pcp *stock, unsigned i)
{
    if (stock->ledger[i]) {
        ledger_add(&stock->cached[i]->charged_pages, stock->cached[i], stock->ledger[i]);
        stock->ledger[i] = 0;
    }
}

/* ------------------------------------------------------------------ */
/* per-cpu page stock                                                  */
/* ------------------------------------------------------------------ */

/* mirrors drain_stock() for one slot: give the pages back, drop the css ref.
   The css_put may free the memcg; freeing takes no stock lock.  A slot of
   root (kernel memory refilled into root's stock before v6.15) uncharges
   root's counter, as page_counter_uncharge() does in the kernel. */
static void drain_stock_slot(struct bm_system *sys, struct memcg_stock_pcp *stock, unsigned i)
{
    struct mem_cgroup *old = stock->cached[i];

    if (!old)
        return;
    ledger_flush_slot(stock, i);
    if (stock->nr_pages[i]) {
        if (mem_cgroup_is_root(old))
            kmem_memcg_uncharge(sys, old, stock->nr_pages[i]);
        else
            memcg_uncharge(sys, old, stock->nr_pages[i]);
        stock->nr_pages[i] = 0;
    }
    stock->cached[i] = NULL;
    css_put(old);
}

static void drain_stock_all_slots(struct bm_system *sys, struct memcg_stock_pcp *stock)
{
    for (unsigned i = 0; i < sys->cfg.profile.nr_memcg_stock; i++)
        drain_stock_slot(sys, stock, i);
}

/* mirrors consume_stock(): take nr pages from this cpu's slot for memcg */
static bool consume_stock(struct bm_system *sys, int cpu, struct mem_cgroup *memcg, unsigned long nr)
{
    struct bm_cpu *c = cpu_of(sys, cpu);
    bool ret = false;

    if (nr > charge_batch(sys))
        return false;
    if (!stock_lock(sys, c, true))
        return false;
    for (unsigned i = 0; i < sys->cfg.profile.nr_memcg_stock; i++) {
        if (c->stock.cached[i] == memcg) {
            if (c->stock.nr_pages[i] >= nr) {
                c->stock.nr_pages[i] -= (unsigned)nr;
                ret = true;
            }
            break;
        }
    }
    stock_unlock(c);
    return ret;
}

/* mirrors refill_stock() with the cpu's stock lock held.
 * nr_memcg_stock == 1 (v5.11): switch the one cached memcg, add, and drain the
 *   whole stock once it holds more than a batch.
 * nr_memcg_stock > 1 (current): refills above a batch bypass the stock; add to
 *   the memcg's slot (draining that slot if it overflows), else an empty slot,
 *   else evict one.  Eviction is round-robin, standing in for f17b474e's
 *   random choice so runs are reproducible. */
void __refill_stock(struct bm_system *sys, struct bm_cpu *c, struct mem_cgroup *memcg,
                           unsigned long nr)
{
    struct memcg_stock_pcp *stock = &c->stock;
    unsigned long batch = charge_batch(sys);
    unsigned n = sys->cfg.profile.nr_memcg_stock;

    /* root: only kernel memory of a reparented objcg before v6.15 comes here
       (memcg_kmem_uncharge()); the multi-slot stocks never see root */
    if (mem_cgroup_is_root(memcg) && (multi_stock(sys) || sys->cfg.profile.kmem_uncharge_skips_root)) {
        kmem_memcg_uncharge(sys, memcg, nr);
        return;
    }
    if (!multi_stock(sys)) {
        unsigned long total;
        if (stock->cached[0] != memcg) {
            drain_stock_slot(sys, stock, 0);
            css_get(memcg);
            stock->cached[0] = memcg;
        }
        total = stock->nr_pages[0] + nr;
        if (total > batch) {
            ledger_flush_slot(stock, 0);
            stock->nr_pages[0] = 0;
            if (mem_cgroup_is_root(memcg))
                kmem_memcg_uncharge(sys, memcg, total);
            else
                memcg_uncharge(sys, memcg, total);
            stock->cached[0] = NULL;
            css_put(memcg);
        } else {
            stock->nr_pages[0] = (unsigned)total;
        }
        return;
    }
    if (nr > batch) {
        memcg_uncharge(sys, memcg, nr);
        return;
    }
    unsigned empty = n;
    for (unsigned i = 0; i < n; i++) {
        if (stock->cached[i] == memcg) {
            stock->nr_pages[i] += (unsigned)nr;
            if (stock->nr_pages[i] > batch)
                drain_stock_slot(sys, stock, i);
            return;
        }
        if (!stock->cached[i] && empty == n)
            empty = i;
    }
    if (empty == n) {
        empty = stock->drain_idx % n;
        stock->drain_idx = (empty + 1) % n;
        drain_stock_slot(sys, stock, empty);
    }
    css_get(memcg);
    stock->cached[empty] = memcg;
    stock->nr_pages[empty] = (unsigned)nr;
}

/* mirrors refill_stock(): current profiles uncharge directly when the
   trylock fails */
void refill_stock(struct bm_system *sys, int cpu, struct mem_cgroup *memcg, unsigned long nr)
{
    struct bm_cpu *c = cpu_of(sys, cpu);

    /* current kernels test the batch before taking the lock (same result
       as __refill_stock's bypass, one lock fewer) */
    if ((multi_stock(sys) && nr > charge_batch(sys)) || !stock_lock(sys, c, true)) {
        if (mem_cgroup_is_root(memcg))
            kmem_memcg_uncharge(sys, memcg, nr);
        else
            memcg_uncharge(sys, memcg, nr);
        return;
    }
    __refill_stock(sys, c, memcg, nr);
    stock_unlock(c);
}

/* ------------------------------------------------------------------ */
/* obj_cgroup basics                                                   */
/* ------------------------------------------------------------------ */

struct mem_cgroup *obj_cgroup_memcg(struct obj_cgroup *objcg)
{
    return objcg ? atomic_load(&objcg->memcg) : NULL;
}

/* mirrors get_mem_cgroup_from_objcg(): the objcg's memcg with a reference.
   A lock-free reader may load a memcg that rmdir has just reparented the objcg
   away from and whose last reference then went: css_tryget() fails on it and
   the objcg's memcg, by then an ancestor, is loaded again.  Inside a read-side
   section (the memcg's memory stays until the grace period). */
static struct mem_cgroup *get_mem_cgroup_from_objcg(struct obj_cgroup *objcg)
{
    struct mem_cgroup *memcg;

    do
        memcg = obj_cgroup_memcg(objcg);
    while (!css_tryget(memcg));
    return memcg;
}

static void obj_cgroup_get(struct obj_cgroup *objcg)
{
    if (objcg)
        atomic_fetch_add(&objcg->refcnt, 1);
}

/* mirrors obj_cgroup_release(), run when the last reference of a killed
   objcg goes, on the cpu that dropped it: the parked whole pages leave the
   objcg's current memcg (KERNEL stat, v1 kmem counter, memory counter), a
   warning is recorded if the remainder is not page aligned, the objcg leaves
   its memcg's list and the id table, is freed after a grace period
   (kfree_rcu()) and drops its css reference.  objcg_release_via_stock
   (<= v6.15: __memcg_kmem_uncharge() / obj_cgroup_uncharge_pages()): the
   memory counter through cpu's page stock; v6.16+ uncharges it directly.
   cpu < 0 (a put with no cpu context, e.g. bm_obj_cgroup_put()): directly. */
static void obj_cgroup_release(struct obj_cgroup *objcg, int cpu)
{
    struct bm_system *sys = objcg->sys;
    struct mem_cgroup *memcg;
    long nr_bytes = atomic_exchange(&objcg->nr_charged_bytes, 0);
    unsigned long nr_pages;
    bool via_stock;

    if (nr_bytes & (page_size_of(sys) - 1))
        atomic_fetch_add(&sys->nr_objcg_release_warns, 1);
    nr_pages = nr_bytes > 0 ? (unsigned long)nr_bytes >> sys->page_shift : 0;

    pthread_mutex_lock(&sys->tree_lock);
    memcg = obj_cgroup_memcg(objcg);
    via_stock = nr_pages && sys->cfg.profile.objcg_release_via_stock && cpu >= 0;
    if (nr_pages) {
        mod_memcg_state(memcg, BM_STAT_KERNEL, -(long)nr_pages);
        memcg1_uncharge_kmem(sys, memcg, nr_pages);
        if (!via_stock)
            kmem_memcg_uncharge(sys, memcg, nr_pages);
    }
    for (struct obj_cgroup **pp = &memcg->objcg_list; *pp; pp = &(*pp)->list_next) {
        if (*pp == objcg) {
            *pp = objcg->list_next;
            break;
        }
    }
    objcg->list_next = NULL;
    atomic_store(&objcg->released, true);
    __atomic_store_n(&sys->objcgs[BM_HANDLE_SLOT(objcg->id)], NULL, __ATOMIC_SEQ_CST);
    bm_ids_free(&sys->objcg_ids, objcg->id);
    call_rcu_free(sys, &objcg->rcu, objcg);
    pthread_mutex_unlock(&sys->tree_lock);
    if (via_stock)
        refill_stock(sys, cpu, memcg, nr_pages);   /* memcg pinned by our css ref */
    css_put(memcg);
}

/* obj_cgroup_put() on cpu (the cpu a release would run on; -1: none) */
void obj_cgroup_put_cpu(struct obj_cgroup *objcg, int cpu)
{
    if (!objcg)
        return;
    if (atomic_fetch_sub(&objcg->refcnt, 1) == 1)
        obj_cgroup_release(objcg, cpu);
}

void obj_cgroup_put(struct obj_cgroup *objcg)
{
    obj_cgroup_put_cpu(objcg, -1);
}

/* obj_cgroup_tryget(): fails once the count reached zero */
bool obj_cgroup_tryget(struct obj_cgroup *objcg)
{
    return add_unless_zero(&objcg->refcnt, 1);
}

/* ------------------------------------------------------------------ */
/* kmem uncharge of whole pages                                        */
/* ------------------------------------------------------------------ */

/* mirrors __memcg_kmem_uncharge() (v5.10.y/v5.11, through refill_stock() since
   3de7d4f25a74) / obj_cgroup_uncharge_pages() (v5.13+) for a memcg: KERNEL
   stat, v1 kmem counter, then the memory counter through cpu's page stock
   (root: see kmem_memcg_uncharge()).  stock_locked: the caller holds cpu's
   stock lock (v5.11 drain_obj_stock). */
static void memcg_kmem_uncharge(struct bm_system *sys, int cpu, struct mem_cgroup *memcg,
                                unsigned long nr, bool stock_locked)
{
    mod_memcg_state(memcg, BM_STAT_KERNEL, -(long)nr);
    memcg1_uncharge_kmem(sys, memcg, nr);
    if (mem_cgroup_is_root(memcg) && sys->cfg.profile.kmem_uncharge_skips_root)
        return;           /* v6.15+: root's counter is left alone */
    if (stock_locked)
        __refill_stock(sys, cpu_of(sys, cpu), memcg, nr);
    else
        refill_stock(sys, cpu, memcg, nr);
}

/* mirrors obj_cgroup_uncharge_pages() */
static void obj_cgroup_uncharge_pages(struct bm_system *sys, int cpu, struct obj_cgroup *objcg,
                               unsigned long nr_pages)
{
    struct mem_cgroup *memcg;

    if (!objcg || !nr_pages)
        return;
    memcg = get_mem_cgroup_from_objcg(objcg);
    memcg_kmem_uncharge(sys, cpu, memcg, nr_pages, false);
    css_put(memcg);
}

/* ------------------------------------------------------------------ */
/* per-cpu object stock                                                */
/* ------------------------------------------------------------------ */

/* mirrors __account_obj_stock() (mm/memcontrol.c, v5.14+), with cpu's stock
   lock held and objcg cached in it: an item's first delta is only kept in the
   stock; later deltas add to it, and the sum goes to the memcg once it passes
   PAGE_SIZE either way.  stock NULL (the trylock failed): straight to the
   memcg.  Simplified: one node, so no cached_pgdat and no pgdat switch. */
static void __account_obj_stock(struct bm_system *sys, struct obj_stock_pcp *stock,
                                struct obj_cgroup *objcg, long nr, int idx)
{
    if (stock) {
        long *bytes = idx == BM_STAT_SLAB_RECLAIMABLE_B ? &stock->nr_slab_reclaimable_b
                                                         : &stock->nr_slab_unreclaimable_b;
        if (!*bytes) {
            *bytes = nr;
            nr = 0;
        } else {
            *bytes += nr;
            nr = 0;
            if (labs(*bytes) > page_size_of(sys)) {
                nr = *bytes;
                *bytes = 0;
            }
        }
    }
    if (nr)
        mod_objcg_state(objcg, idx, nr);
}

/* the statistics half of drain_obj_stock(): cached slab deltas go to the
   cached objcg's current memcg */
static void flush_obj_stock_stats(struct obj_stock_pcp *stock, struct obj_cgroup *objcg)
{
    if (stock->nr_slab_reclaimable_b) {
        mod_objcg_state(objcg, BM_STAT_SLAB_RECLAIMABLE_B, stock->nr_slab_reclaimable_b);
        stock->nr_slab_reclaimable_b = 0;
    }
    if (stock->nr_slab_unreclaimable_b) {
        mod_objcg_state(objcg, BM_STAT_SLAB_UNRECLAIMABLE_B, stock->nr_slab_unreclaimable_b);
        stock->nr_slab_unreclaimable_b = 0;
    }
}

/* mirrors drain_obj_stock() with the stock lock held.  Whole pages go back
   (drain_obj_stock_direct: MEMCG_KMEM/v1 kmem then a direct uncharge, as
   current kernels; else __memcg_kmem_uncharge -> refill_stock as v5.11), the
   remainder is parked in objcg->nr_charged_bytes.  Returns the objcg whose
   stock reference the caller must drop after unlocking (a put can release
   the objcg, and releasing must not run under a stock lock).  stock is one
   of cpu's object stocks. */
static struct obj_cgroup *__drain_obj_stock(struct bm_system *sys, int cpu, struct obj_stock_pcp *stock)
{
    struct obj_cgroup *old = stock->cached_objcg;
    unsigned long nr_bytes, nr_pages, rem;

    if (!old)
        return NULL;
    nr_bytes = stock->nr_bytes;
    nr_pages = nr_bytes >> sys->page_shift;
    rem = nr_bytes & ((unsigned long)page_size_of(sys) - 1);
    if (nr_pages) {
        struct mem_cgroup *memcg = get_mem_cgroup_from_objcg(old);
        if (sys->cfg.profile.drain_obj_stock_direct) {
            mod_memcg_state(memcg, BM_STAT_KERNEL, -(long)nr_pages);
            memcg1_uncharge_kmem(sys, memcg, nr_pages);
            kmem_memcg_uncharge(sys, memcg, nr_pages);
        } else {
            memcg_kmem_uncharge(sys, cpu, memcg, nr_pages, true);
        }
        css_put(memcg);
    }
    if (rem)
        atomic_fetch_add(&old->nr_charged_bytes, (long)rem);
    flush_obj_stock_stats(stock, old);
    if (stock->nr_objcg_refs) {
        /* spare references back (never the last: the stock's own stays) */
        atomic_fetch_sub(&old->refcnt, (long)stock->nr_objcg_refs);
        stock->nr_objcg_refs = 0;
    }
    stock->nr_bytes = 0;
    stock->cached_objcg = NULL;
    return old;
}

/* mirrors consume_obj_stock(); idx >= 0: the slab statistic of a hit goes
   through __account_obj_stock() */
static bool consume_obj_stock(struct bm_system *sys, int cpu, struct obj_cgroup *objcg, size_t nr_bytes,
                              int idx)
{
    struct bm_cpu *c = cpu_of(sys, cpu);
    struct obj_stock_pcp *stock;
    bool ret = false;

    if (!stock_lock(sys, c, true))
        return false;
    stock = get_obj_stock(sys, c);
    if (stock->cached_objcg == objcg && stock->nr_bytes >= nr_bytes) {
        stock->nr_bytes -= (unsigned)nr_bytes;
        if (idx >= 0)
            __account_obj_stock(sys, stock, objcg, (long)nr_bytes, idx);
        ret = true;
    }
    stock_unlock(c);
    return ret;
}

/* mirrors refill_obj_stock().
 * obj_stock_split_pages (current): a stock switch adopts the parked
 *   nr_charged_bytes and forces allow_uncharge; above PAGE_SIZE with
 *   allow_uncharge only the whole pages are split off and uncharged, the objcg
 *   stays cached.  Trylock failure parks the bytes in nr_charged_bytes.
 * else (v5.11): switch + adopt, add, and drain the whole stock above PAGE_SIZE.
 * idx >= 0: nr_acct bytes of that slab statistic go through
 *   __account_obj_stock() once objcg is the cached one.
 * Trylock failure (current profiles only): the statistic goes to the memcg,
 *   whole pages are uncharged and the remainder parked in nr_charged_bytes.
 */
static void refill_obj_stock(struct bm_system *sys, int cpu, struct obj_cgroup *objcg,
                             size_t nr_bytes, bool allow_uncharge, long nr_acct, int idx)
{
    struct bm_cpu *c = cpu_of(sys, cpu);
    struct obj_stock_pcp *stock = get_obj_stock(sys, c);
    struct obj_cgroup *to_put = NULL;
    unsigned long page = (unsigned long)page_size_of(sys);
    unsigned long nr_pages = 0;
    unsigned long total;

    if (!stock_lock(sys, c, true)) {
        if (idx >= 0)
            __account_obj_stock(sys, NULL, objcg, nr_acct, idx);
        nr_pages = (unsigned long)nr_bytes >> sys->page_shift;
        if (nr_bytes & (page - 1))
            atomic_fetch_add(&objcg->nr_charged_bytes, (long)(nr_bytes & (page - 1)));
        if (nr_pages)
            obj_cgroup_uncharge_pages(sys, cpu, objcg, nr_pages);
        return;
    }
    if (stock->cached_objcg != objcg) {
        to_put = __drain_obj_stock(sys, cpu, stock);
        obj_cgroup_get(objcg);
        stock->cached_objcg = objcg;
        stock->nr_bytes = (unsigned)atomic_exchange(&objcg->nr_charged_bytes, 0);
        allow_uncharge = true;
    }
    if (idx >= 0)
        __account_obj_stock(sys, stock, objcg, nr_acct, idx);
    total = stock->nr_bytes + (unsigned long)nr_bytes;
    if (sys->cfg.profile.obj_stock_split_pages) {
        if (allow_uncharge && total > page) {
            nr_pages = total >> sys->page_shift;
            total &= page - 1;
        }
        stock->nr_bytes = (unsigned)total;
    } else if (total > page) {
        /* v5.11: above a page the whole stock is drained (whole pages via
           __memcg_kmem_uncharge, the remainder parked in nr_charged_bytes);
           the total is split first so a huge refill cannot overflow nr_bytes */
        unsigned long pages = total >> sys->page_shift;
        stock->nr_bytes = (unsigned)(total & (page - 1));
        struct mem_cgroup *memcg = get_mem_cgroup_from_objcg(objcg);
        memcg_kmem_uncharge(sys, cpu, memcg, pages, true);
        css_put(memcg);
        struct obj_cgroup *o = __drain_obj_stock(sys, cpu, stock);
        stock_unlock(c);
        obj_cgroup_put_cpu(to_put, cpu);
        obj_cgroup_put_cpu(o, cpu);
        return;
    } else {
        stock->nr_bytes = (unsigned)total;
    }
    stock_unlock(c);
    obj_cgroup_put_cpu(to_put, cpu);
    if (nr_pages)
        obj_cgroup_uncharge_pages(sys, cpu, objcg, nr_pages);
}

/* ------------------------------------------------------------------ */
/* drains                                                              */
/* ------------------------------------------------------------------ */

/* Before v5.19 (objcg_put_after_stock_drain off) drain_obj_stock() itself drops
   the drained objcgs, before drain_local_stock() / the drain work drains the page
   stock: a release that refills the stock (objcg_release_via_stock) is drained
   right after.  Since v5.19 the puts come after the page drain (outside the
   stock lock), so such pages stay in the stock.  Called with c's stock locked;
   leaves it locked, the puts done and the pointers cleared. */
static void put_before_stock_drain(struct bm_system *sys, struct bm_cpu *c, int cpu,
                                   struct obj_cgroup **a, struct obj_cgroup **b)
{
    if (sys->cfg.profile.objcg_put_after_stock_drain || (!*a && !*b))
        return;
    stock_unlock(c);
    obj_cgroup_put_cpu(*a, cpu);
    obj_cgroup_put_cpu(*b, cpu);
    *a = *b = NULL;
    stock_lock(sys, c, false);
}

/* mirrors drain_local_stock(): the object stock (v5.14-v5.17: irq_obj, and
   task_obj unless in an interrupt), then every page slot */
void drain_local_stock(struct bm_system *sys, int cpu)
{
    struct bm_cpu *c = cpu_of(sys, cpu);
    struct obj_cgroup *o, *irq = NULL;

    stock_lock(sys, c, false);
    if (sys->cfg.profile.obj_stock_task_irq_split)
        irq = __drain_obj_stock(sys, cpu, &c->stock.obj[OBJ_STOCK_IRQ]);
    o = c->in_interrupt && sys->cfg.profile.obj_stock_task_irq_split ? NULL
        : __drain_obj_stock(sys, cpu, &c->stock.obj[OBJ_STOCK_TASK]);
    put_before_stock_drain(sys, c, cpu, &irq, &o);
    drain_stock_all_slots(sys, &c->stock);
    stock_unlock(c);
    obj_cgroup_put_cpu(o, cpu);
    obj_cgroup_put_cpu(irq, cpu);
}

/* mirrors drain_all_stock(root): every cpu whose stock caches a descendant of
   root with pages (or whose object stock caches an objcg of one) is drained.
   Synchronous here (the kernel queues work on remote cpus).  The kernel's
   percpu_charge_mutex trylock is kept: a concurrent caller returns at once.
   v5.11 drains the whole cpu stock; multi-slot profiles drain the page slots
   and the object stock separately, each when it needs it. */
void drain_all_stock(struct bm_system *sys, struct mem_cgroup *root)
{
    if (atomic_flag_test_and_set(&sys->percpu_charge_mutex))
        return;
    for (uint32_t cpu = 0; cpu < sys->cfg.nr_cpus; cpu++) {
        struct bm_cpu *c = cpu_of(sys, (int)cpu);
        struct obj_cgroup *o[2] = {NULL, NULL};
        bool page_flush = false, obj_flush = false;

        stock_lock(sys, c, false);
        for (unsigned i = 0; i < sys->cfg.profile.nr_memcg_stock; i++) {
            struct mem_cgroup *m = c->stock.cached[i];
            if (m && c->stock.nr_pages[i] && mem_cgroup_is_descendant(m, root))
                page_flush = true;
        }
        /* obj_stock_flush_required(): either object stock (v5.14-v5.17) */
        for (int k = 0; k < 2; k++) {
            struct obj_cgroup *cached = c->stock.obj[k].cached_objcg;
            if (cached && mem_cgroup_is_descendant(obj_cgroup_memcg(cached), root))
                obj_flush = true;
        }
        if (!multi_stock(sys) && (page_flush || obj_flush))
            page_flush = obj_flush = true;
        if (obj_flush) {
            /* the drain work runs in a task on that cpu: both object stocks */
            o[0] = __drain_obj_stock(sys, (int)cpu, &c->stock.obj[OBJ_STOCK_TASK]);
            o[1] = __drain_obj_stock(sys, (int)cpu, &c->stock.obj[OBJ_STOCK_IRQ]);
            put_before_stock_drain(sys, c, (int)cpu, &o[0], &o[1]);
        }
        if (page_flush)
            drain_stock_all_slots(sys, &c->stock);
        stock_unlock(c);
        obj_cgroup_put_cpu(o[0], (int)cpu);
        obj_cgroup_put_cpu(o[1], (int)cpu);
    }
    atomic_flag_clear(&sys->percpu_charge_mutex);
}

/* ------------------------------------------------------------------ */
/* reclaim                                                             */
/* ------------------------------------------------------------------ */

/* drop n user pages' worth of the "user pages" css pin */
void user_pages_sub(struct mem_cgroup *m, long n)
{
    if (atomic_fetch_sub(&m->user_pages, n) == n)
        css_put(m);
}

/* mem_cgroup_margin(): room left below max */
static unsigned long mem_cgroup_margin(struct mem_cgroup *memcg)
{
    long count = atomic_load(&memcg->memory.usage);
    long limit = atomic_load(&memcg->memory.max);

    return count < limit ? (unsigned long)(limit - count) : 0;
}

/* ------------------------------------------------------------------ */
/* memory.high                                                         */
/* ------------------------------------------------------------------ */

/* mirrors reclaim_high(): every over-high non-root level from memcg up gets
   a MEMCG_HIGH event and a reclaim of nr pages */
static long reclaim_high(struct bm_system *sys, int cpu, struct mem_cgroup *memcg, unsigned long nr)
{
    long total = 0;

    do {
        if (atomic_load(&memcg->memory.usage) <= atomic_load(&memcg->memory.high))
            continue;
        memcg_memory_event(sys, memcg, BM_MEMCG_HIGH);
        total += (long)try_to_free_mem_cgroup_pages(sys, cpu, memcg, nr, GFP_KERNEL);
    } while ((memcg = parent_mem_cgroup(memcg)) && !mem_cgroup_is_root(memcg));
    return total;
}

/* mirrors calculate_high_delay() over mem_find_max_overage() (no swap) */
static long calculate_high_delay(struct bm_system *sys, struct mem_cgroup *memcg, long nr_pages)
{
    uint64_t max_overage = 0, penalty;

    do {
        long usage = atomic_load(&memcg->memory.usage);
        long high = atomic_load(&memcg->memory.high);
        if (usage > high) {
            /* calculate_overage(): high counts as at least one page, for the
               difference as well as the division */
            long h = high > 1 ? high : 1;
            uint64_t over = (uint64_t)(usage - h) << MEMCG_DELAY_PRECISION_SHIFT;
            uint64_t ov = over / (uint64_t)h;
            if (ov > max_overage)
                max_overage = ov;
        }
    } while ((memcg = parent_mem_cgroup(memcg)) && !mem_cgroup_is_root(memcg));
    if (!max_overage)
        return 0;
    if (max_overage >= (1ULL << 26))   /* would overflow; far above the clamp anyway */
        return MEMCG_MAX_HIGH_DELAY_JIFFIES;
    penalty = max_overage * max_overage * HZ;
    penalty >>= MEMCG_DELAY_PRECISION_SHIFT;
    penalty >>= MEMCG_DELAY_SCALING_SHIFT;
    penalty = penalty * (uint64_t)nr_pages / charge_batch(sys);
    return penalty > (uint64_t)MEMCG_MAX_HIGH_DELAY_JIFFIES ? MEMCG_MAX_HIGH_DELAY_JIFFIES : (long)penalty;
}

/* mirrors mem_cgroup_handle_over_high(), run as the task returns to user
   (here: at the end of the entry point, return_to_user()).  kthreads (no task memcg) never return
   to user, so their debt stays unpaid.  The sleep is not taken: the penalty
   only decides whether to reclaim again. */
void mem_cgroup_handle_over_high(struct bm_system *sys, int cpu)
{
    struct bm_cpu *c = cpu_of(sys, cpu);
    struct mem_cgroup *memcg = atomic_load_explicit(&c->task_memcg, memory_order_relaxed);
    int nr_retries = MAX_RECLAIM_RETRIES;
    bool in_retry = false;
    long nr_pages, penalty;

    if (!memcg || atomic_load_explicit(&c->in_interrupt, memory_order_relaxed) ||
        !atomic_load_explicit(&c->memcg_nr_pages_over_high, memory_order_relaxed))
        return;
    nr_pages = atomic_exchange_explicit(&c->memcg_nr_pages_over_high, 0, memory_order_relaxed);
    if (!nr_pages)
        return;
    for (;;) {
        long reclaimed = reclaim_high(sys, cpu, memcg,
                                      in_retry ? SWAP_CLUSTER_MAX : (unsigned long)nr_pages);
        penalty = calculate_high_delay(sys, memcg, nr_pages);
        if (penalty <= HZ / 100)
            break;
        if (reclaimed || nr_retries--) {
            in_retry = true;
            continue;
        }
        break;
    }
}

/* ------------------------------------------------------------------ */
/* try_charge                                                          */
/* ------------------------------------------------------------------ */

static inline bool gfpflags_allow_blocking(uint32_t gfp) { return (gfp & __GFP_DIRECT_RECLAIM) != 0; }
static inline bool gfpflags_allow_spinning(uint32_t gfp) { return (gfp & __GFP_RECLAIM) != 0; }

static inline bool cpu_in_interrupt(struct bm_cpu *c)
{
    return atomic_load_explicit(&c->in_interrupt, memory_order_relaxed) != 0;
}

static inline struct mem_cgroup *cpu_task_memcg(struct bm_cpu *c)
{
    return atomic_load_explicit(&c->task_memcg, memory_order_relaxed);
}

static inline bool current_is_task(struct bm_cpu *c) { return !cpu_in_interrupt(c) && cpu_task_memcg(c); }

/* tsk_is_oom_victim(current) etc.: only a task can be dying */
static inline bool current_dying(struct bm_cpu *c)
{
    return current_is_task(c) && atomic_load_explicit(&c->oom_victim, memory_order_relaxed);
}

static int get_order_pages(unsigned long nr)
{
    int order = 0;

    while ((1UL << order) < nr)
        order++;
    return order;
}

/* mirrors mem_cgroup_oom() + mem_cgroup_out_of_memory(): costly orders are
   skipped; otherwise MEMCG_OOM on memcg, and with cfg.oom_kill_current the
   victim is current when it is a task (MEMCG_OOM_KILL on the task's memcg,
   the cpu's victim flag set for bm_take_oom_victim).  A task that is already
   a victim counts as progress without a new kill (task_will_free_mem).
   Returns 1 (OOM_SUCCESS), 0 (OOM_FAILED: nothing to kill), -1 (skipped). */
static int mem_cgroup_oom(struct bm_system *sys, int cpu, struct mem_cgroup *memcg, unsigned long nr)
{
    struct bm_cpu *c = cpu_of(sys, cpu);

    if (get_order_pages(nr) > PAGE_ALLOC_COSTLY_ORDER)
        return -1;
    memcg_memory_event(sys, memcg, BM_MEMCG_OOM);
    if (!sys->cfg.oom_kill_current || !current_is_task(c))
        return 0;
    if (!atomic_exchange_explicit(&c->oom_victim, 1, memory_order_relaxed))
        memcg_memory_event(sys, cpu_task_memcg(c), BM_MEMCG_OOM_KILL);
    return 1;
}

/* Remember why a charge failed so errors can name the limit (no kernel
   counterpart: the kernel only returns -ENOMEM). */
static void record_charge_failure(struct bm_cpu *c, struct mem_cgroup *over, struct page_counter *counter,
                                  int reason, unsigned long nr_pages, uint32_t gfp)
{
    struct bm_charge_failure rec = {
        .memcg = over ? over->id : -1,
        .reason = reason,
        .nr_pages = (int64_t)nr_pages,
        .usage = atomic_load(&counter->usage),
        .max = atomic_load(&counter->max),
        .gfp = gfp,
    };

    bm_cpu_lock(c);
    c->last_failure = rec;
    bm_cpu_unlock(c);
}

/* mirrors try_charge_memcg() (v5.11 try_charge) step by step; see memcg.md
   section 2.2 for the numbered steps. */
static int try_charge_memcg(struct bm_system *sys, int cpu, struct mem_cgroup *memcg,
                            uint32_t gfp, unsigned long nr_pages)
{
    const struct bm_profile *p = &sys->cfg.profile;
    struct bm_cpu *c = cpu_of(sys, cpu);
    unsigned long batch = charge_batch(sys) > nr_pages ? charge_batch(sys) : nr_pages;
    int nr_retries = MAX_RECLAIM_RETRIES;
    struct mem_cgroup *mem_over_limit = NULL;
    struct page_counter *counter;
    bool drained = false, raised_max_event = false, passed_oom = false;
    long nr_reclaimed;
    int reason = 0;

    if (mem_cgroup_is_root(memcg))
        return 0;
    if (p->nospin_no_batch && !gfpflags_allow_spinning(gfp))
        batch = nr_pages;

retry:
    if (consume_stock(sys, cpu, memcg, nr_pages))
        return 0;
    if (page_counter_try_charge(&memcg->memory, batch, &counter))
        goto done_restock;
    mem_over_limit = memcg_from_memory_counter(counter);

    if (batch > nr_pages) {
        batch = nr_pages;
        goto retry;
    }
    /* v5.x: __GFP_ATOMIC forces; v5.11 (dying_task_forces): so does a dying
       current (should_force_charge()) */
    if (p->gfp_atomic_forces && (gfp & __GFP_ATOMIC))
        goto force;
    if (p->dying_task_forces && current_dying(c))
        goto force;
    reason = BM_FAIL_NOBLOCK;
    if (!gfpflags_allow_blocking(gfp))
        goto nomem;

    memcg_memory_event(sys, mem_over_limit, BM_MEMCG_MAX);
    raised_max_event = true;

    nr_reclaimed = (long)try_to_free_mem_cgroup_pages(sys, cpu, mem_over_limit, nr_pages, gfp);
    if (mem_cgroup_margin(mem_over_limit) >= nr_pages)
        goto retry;
    if (!drained) {
        drain_all_stock(sys, mem_over_limit);
        drained = true;
        goto retry;
    }
    reason = BM_FAIL_NORETRY;
    if (gfp & __GFP_NORETRY)
        goto nomem;
    if (nr_reclaimed && nr_pages <= (1UL << PAGE_ALLOC_COSTLY_ORDER))
        goto retry;
    if (nr_retries--)
        goto retry;
    reason = BM_FAIL_RETRY_MAYFAIL;
    if (gfp & __GFP_RETRY_MAYFAIL)
        goto nomem;
    reason = BM_FAIL_OOM;
    /* v5.10/v5.11: __GFP_NOFAIL forces here, before the OOM killer */
    if (p->nofail_forces_before_oom && (gfp & __GFP_NOFAIL))
        goto force;
    /* v5.11: a fatal signal forces; a4ebf1b6ca1e (v5.16, 5.10.y, 5.15.y):
       a dying task that passed the OOM killer gives up */
    if (p->dying_task_forces) {
        if (current_dying(c))
            goto force;
    } else if (passed_oom && current_dying(c)) {
        goto nomem;
    }

    switch (mem_cgroup_oom(sys, cpu, mem_over_limit, nr_pages)) {
    case 1:   /* OOM_SUCCESS / true */
        passed_oom = true;
        nr_retries = MAX_RECLAIM_RETRIES;
        goto retry;
    case 0:   /* OOM_FAILED: v5.11 forces, later kernels give up */
        if (p->dying_task_forces)
            goto force;
        goto nomem;
    default:  /* skipped (costly order) */
        reason = BM_FAIL_COSTLY;
        goto nomem;
    }

nomem:
    if (!(gfp & __GFP_NOFAIL) && !(p->gfp_high_forces && (gfp & __GFP_HIGH))) {
        record_charge_failure(c, mem_over_limit, &mem_over_limit->memory, reason, nr_pages, gfp);
        return -ENOMEM;
    }
force:
    if (p->max_event_on_force && !raised_max_event)
        memcg_memory_event(sys, mem_over_limit, BM_MEMCG_MAX);
    page_counter_charge(&memcg->memory, nr_pages);
    atomic_fetch_add(&memcg->own_pages, (long)nr_pages);
    return 0;

done_restock:
    atomic_fetch_add(&memcg->own_pages, (long)batch);
    if (batch > nr_pages)
        refill_stock(sys, cpu, memcg, batch - nr_pages);

    /* the memory.high walk, up to and including root */
    for (struct mem_cgroup *m = memcg; m; m = parent_mem_cgroup(m)) {
        bool mem_high = atomic_load(&m->memory.usage) > atomic_load(&m->memory.high);
        if (cpu_in_interrupt(c)) {
            if (mem_high) {
                /* schedule_work(&high_work): high_work_func runs reclaim_high */
                reclaim_high(sys, cpu, m, charge_batch(sys));
                break;
            }
            continue;
        }
        if (mem_high) {
            atomic_fetch_add_explicit(&c->memcg_nr_pages_over_high, (long)batch, memory_order_relaxed);
            break;
        }
    }
    /* set_notify_resume(): the return to user pays (return_to_user(); a charge
       outside any entry point's call pays here); v5.18+ pays a debt past a
       charge batch at once (sync_high_over_batch) */
    if (!bm_over_high_deferred ||
        (sys->cfg.profile.sync_high_over_batch && gfpflags_allow_blocking(gfp) &&
         atomic_load_explicit(&c->memcg_nr_pages_over_high, memory_order_relaxed) > (long)charge_batch(sys)))
        mem_cgroup_handle_over_high(sys, cpu);
    return 0;
}

int try_charge(struct bm_system *sys, int cpu, struct mem_cgroup *memcg, uint32_t gfp,
               unsigned long nr_pages)
{
    if (!memcg)
        return 0;
    return try_charge_memcg(sys, cpu, memcg, gfp, nr_pages);
}

/* ------------------------------------------------------------------ */
/* kmem charging                                                       */
/* ------------------------------------------------------------------ */

/* mirrors __memcg_kmem_charge() (v5.11) / the memcg half of
   obj_cgroup_charge_pages(): try_charge, then the v1 kmem counter
   (kmem_limit_enforced: try-charged with rollback unless __GFP_NOFAIL, as
   v5.11; else charged unconditionally, as memcg1_account_kmem), then the
   KERNEL (MEMCG_KMEM) stat. */
static int memcg_kmem_charge(struct bm_system *sys, int cpu, struct mem_cgroup *memcg,
                             uint32_t gfp, unsigned long nr_pages)
{
    int ret = try_charge(sys, cpu, memcg, gfp, nr_pages);

    if (ret)
        return ret;
    if (sys->cfg.cgroup_v1) {
        struct page_counter *counter;
        if (sys->cfg.profile.kmem_limit_enforced &&
            !page_counter_try_charge(&memcg->kmem, nr_pages, &counter)) {
            if (!(gfp & __GFP_NOFAIL)) {
                memcg_uncharge(sys, memcg, nr_pages);   /* cancel_charge() */
                record_charge_failure(cpu_of(sys, cpu), memcg_from_kmem_counter(counter),
                                      counter, BM_FAIL_KMEM_LIMIT, nr_pages, gfp);
                return -ENOMEM;
            }
            page_counter_charge(&memcg->kmem, nr_pages);
        } else if (!sys->cfg.profile.kmem_limit_enforced) {
            page_counter_charge(&memcg->kmem, nr_pages);
        }
        atomic_fetch_add(&memcg->own_kmem_pages, (long)nr_pages);
    }
    mod_memcg_state(memcg, BM_STAT_KERNEL, (long)nr_pages);
    return 0;
}

/* mirrors obj_cgroup_charge_pages(): pin objcg->memcg and charge it */
static int obj_cgroup_charge_pages(struct bm_system *sys, int cpu, struct obj_cgroup *objcg, uint32_t gfp,
                            unsigned long nr_pages)
{
    struct mem_cgroup *memcg;
    int ret;

    if (!objcg)
        return 0;
    memcg = get_mem_cgroup_from_objcg(objcg);
    ret = memcg_kmem_charge(sys, cpu, memcg, gfp, nr_pages);
    css_put(memcg);
    return ret;
}

/* mirrors obj_cgroup_charge_account() (v6.x; obj_cgroup_charge() of v5.11):
   object stock first, else whole pages through the page path with the unused
   tail of the last page refilled into the object stock (allow_uncharge=false).
   idx >= 0 names the slab statistic of size bytes: cached in the stock with
   obj_stock_slab_stats (__account_obj_stock), else applied at once as v5.11's
   slab hook does with mod_objcg_state(). */
static int obj_cgroup_charge_account(struct bm_system *sys, int cpu, struct obj_cgroup *objcg, uint32_t gfp,
                              size_t size, int idx)
{
    unsigned long page = (unsigned long)page_size_of(sys);
    unsigned long nr_pages, rem;
    int ret;

    if (!objcg)
        return 0;
    if (idx >= 0 && !sys->cfg.profile.obj_stock_slab_stats) {
        ret = obj_cgroup_charge_account(sys, cpu, objcg, gfp, size, -1);
        if (!ret)
            mod_objcg_state(objcg, idx, (long)size);
        return ret;
    }
    if (consume_obj_stock(sys, cpu, objcg, size, idx))
        return 0;
    nr_pages = (unsigned long)size >> sys->page_shift;
    rem = (unsigned long)size & (page - 1);
    if (rem)
        nr_pages++;
    ret = obj_cgroup_charge_pages(sys, cpu, objcg, gfp, nr_pages);
    if (!ret && (rem || idx >= 0))
        refill_obj_stock(sys, cpu, objcg, rem ? page - rem : 0, false, (long)size, idx);
    return ret;
}

int obj_cgroup_charge(struct bm_system *sys, int cpu, struct obj_cgroup *objcg, uint32_t gfp, size_t size)
{
    return obj_cgroup_charge_account(sys, cpu, objcg, gfp, size, -1);
}

/* mirrors the slab free hook's refill_obj_stock(allow_uncharge=true, -size,
   idx) (v6.x); without obj_stock_slab_stats the v5.11 hook's
   obj_cgroup_uncharge() then mod_objcg_state() */
static void obj_cgroup_uncharge_account(struct bm_system *sys, int cpu, struct obj_cgroup *objcg, size_t size,
                                 int idx)
{
    if (!objcg || !size)
        return;
    if (idx >= 0 && !sys->cfg.profile.obj_stock_slab_stats) {
        refill_obj_stock(sys, cpu, objcg, size, true, 0, -1);
        mod_objcg_state(objcg, idx, -(long)size);
        return;
    }
    refill_obj_stock(sys, cpu, objcg, size, true, -(long)size, idx);
}

/* Spare objcg references of a cpu's object stock (model perf, see struct
   memcg_stock_pcp): with the stock lock held and objcg the cached one, whose
   own stock reference keeps it alive, so taking a batch needs no tryget and
   giving one back is never the last put. */
#define OBJCG_REF_BATCH 32u

static inline void stock_objcg_ref_get(struct obj_stock_pcp *stock, struct obj_cgroup *objcg)
{
    if (!stock->nr_objcg_refs) {
        atomic_fetch_add_explicit(&objcg->refcnt, (long)OBJCG_REF_BATCH, memory_order_relaxed);
        stock->nr_objcg_refs = OBJCG_REF_BATCH;
    }
    stock->nr_objcg_refs--;
}

static inline void stock_objcg_ref_put(struct obj_stock_pcp *stock, struct obj_cgroup *objcg)
{
    if (stock->nr_objcg_refs < 2 * OBJCG_REF_BATCH)
        stock->nr_objcg_refs++;
    else
        atomic_fetch_sub(&objcg->refcnt, 1);
}

static struct mem_cgroup *current_charge_memcg(struct bm_cpu *c);
static struct mem_cgroup *get_mem_cgroup_from_current(struct bm_system *sys, int cpu);

/* current_obj_cgroup(): the objcg get_obj_cgroup_from_current() would pick,
   without a reference (the caller only uses it while a stock pins it) */
static struct obj_cgroup *current_obj_cgroup(struct bm_system *sys, int cpu)
{
    struct mem_cgroup *memcg = current_charge_memcg(cpu_of(sys, cpu));

    for (; memcg && !mem_cgroup_is_root(memcg); memcg = parent_mem_cgroup(memcg)) {
        struct obj_cgroup *objcg = atomic_load(&memcg->objcg);
        if (objcg)
            return objcg;
    }
    return NULL;
}

/* The slab hooks (memcg_slab_pre/post_alloc_hook(): get_obj_cgroup_from_current(),
   obj_cgroup_charge_account(), obj_cgroup_get() for the object).  A hit in
   the object stock of current's objcg is done under one stock lock: the
   consume_obj_stock() hit, its __account_obj_stock() (v5.11: mod_objcg_state())
   and the object's reference from the stock's spares.  Anything else takes
   the general path.  0 with *objcgp = the objcg the object now references
   (NULL: not accounted), or -ENOMEM. */
int memcg_slab_charge_get(struct bm_system *sys, int cpu, uint32_t gfp, size_t size, int idx,
                          struct obj_cgroup **objcgp)
{
    struct obj_cgroup *objcg;
    struct bm_cpu *c;

    *objcgp = NULL;
    if (!bm_cpu_valid(sys, cpu))
        return 0;
    objcg = current_obj_cgroup(sys, cpu);
    if (!objcg)
        return 0;
    c = cpu_of(sys, cpu);
    if (stock_lock(sys, c, true)) {
        struct obj_stock_pcp *stock = get_obj_stock(sys, c);
        if (stock->cached_objcg == objcg && stock->nr_bytes >= size) {
            stock->nr_bytes -= (unsigned)size;
            if (sys->cfg.profile.obj_stock_slab_stats)
                __account_obj_stock(sys, stock, objcg, (long)size, idx);
            else
                mod_objcg_state(objcg, idx, (long)size);
            stock_objcg_ref_get(stock, objcg);
            stock_unlock(c);
            *objcgp = objcg;
            return 0;
        }
        stock_unlock(c);
    }
    objcg = get_obj_cgroup_from_current(sys, cpu);
    if (!objcg)
        return 0;
    if (obj_cgroup_charge_account(sys, cpu, objcg, gfp, size, idx)) {
        obj_cgroup_put_cpu(objcg, cpu);
        return -ENOMEM;
    }
    *objcgp = objcg;
    return 0;
}

/* memcg_slab_free_hook(): refill_obj_stock(allow_uncharge) of the object's
   bytes with its statistic, then obj_cgroup_put().  When objcg is the
   cached one and the refill stays within a page (no drain, no split in any
   profile) that is done under one stock lock, the reference going to the
   stock's spares. */
void memcg_slab_uncharge_put(struct bm_system *sys, int cpu, struct obj_cgroup *objcg, size_t size, int idx)
{
    struct bm_cpu *c = cpu_of(sys, cpu);

    if (stock_lock(sys, c, true)) {
        struct obj_stock_pcp *stock = get_obj_stock(sys, c);
        if (stock->cached_objcg == objcg && stock->nr_bytes + size <= (unsigned long)page_size_of(sys)) {
            if (sys->cfg.profile.obj_stock_slab_stats)
                __account_obj_stock(sys, stock, objcg, -(long)size, idx);
            else
                mod_objcg_state(objcg, idx, -(long)size);
            stock->nr_bytes += (unsigned)size;
            stock_objcg_ref_put(stock, objcg);
            stock_unlock(c);
            return;
        }
        stock_unlock(c);
    }
    obj_cgroup_uncharge_account(sys, cpu, objcg, size, idx);
    obj_cgroup_put_cpu(objcg, cpu);
}

/* mirrors obj_cgroup_uncharge() = refill_obj_stock(allow_uncharge=true) */
void obj_cgroup_uncharge(struct bm_system *sys, int cpu, struct obj_cgroup *objcg, size_t size)
{
    obj_cgroup_uncharge_account(sys, cpu, objcg, size, -1);
}

/* mirrors __memcg_kmem_charge_page().
   kmem_page_objcg=0 (v5.11): memcg | KMEM, keeping the css reference.
   kmem_page_objcg=1 (v5.13+): objcg | KMEM, keeping an objcg reference. */
int __memcg_kmem_charge_page(struct bm_system *sys, int cpu, struct page *page, uint32_t gfp, int order)
{
    unsigned long nr = 1UL << order;
    int ret;

    if (!sys->cfg.profile.kmem_page_objcg) {
        struct mem_cgroup *memcg = get_mem_cgroup_from_current(sys, cpu);
        if (!memcg)
            return 0;
        if (mem_cgroup_is_root(memcg)) {
            css_put(memcg);
            return 0;
        }
        ret = memcg_kmem_charge(sys, cpu, memcg, gfp, nr);
        if (!ret) {
            page->memcg_data = (uint64_t)(uintptr_t)memcg | MEMCG_DATA_KMEM;
            return 0;
        }
        css_put(memcg);
        return ret;
    } else {
        struct obj_cgroup *objcg = get_obj_cgroup_from_current(sys, cpu);
        if (!objcg)
            return 0;
        ret = obj_cgroup_charge_pages(sys, cpu, objcg, gfp, nr);
        if (!ret) {
            page->memcg_data = (uint64_t)(uintptr_t)objcg | MEMCG_DATA_KMEM;
            return 0;
        }
        obj_cgroup_put_cpu(objcg, cpu);
        return ret;
    }
}

/* mirrors __memcg_kmem_uncharge_page(): uncharge whoever the page records */
void __memcg_kmem_uncharge_page(struct bm_system *sys, int cpu, struct page *page, int order)
{
    unsigned long nr = 1UL << order;

    if (!page->memcg_data || !(page->memcg_data & MEMCG_DATA_KMEM))
        return;
    if (!sys->cfg.profile.kmem_page_objcg) {
        struct mem_cgroup *memcg = page_memcg(page);
        memcg_kmem_uncharge(sys, cpu, memcg, nr, false);
        page->memcg_data = 0;
        css_put(memcg);
    } else {
        struct obj_cgroup *objcg = __page_objcg(page);
        obj_cgroup_uncharge_pages(sys, cpu, objcg, nr);
        page->memcg_data = 0;
        obj_cgroup_put_cpu(objcg, cpu);
    }
}

/* mirrors page_memcg_check() / folio_memcg_check(): owner of any page, NULL
   for slab pages; a v5.13+ KMEM page resolves its objcg's current memcg */
struct mem_cgroup *page_memcg_check(struct bm_system *sys, const struct page *page)
{
    uint64_t d = page->memcg_data;

    if (!d || (d & MEMCG_DATA_OBJCGS))
        return NULL;
    if ((d & MEMCG_DATA_KMEM) && sys->cfg.profile.kmem_page_objcg)
        return obj_cgroup_memcg(__page_objcg(page));
    return page_memcg(page);
}

/* ------------------------------------------------------------------ */
/* current context                                                     */
/* ------------------------------------------------------------------ */

/* active_memcg(): int_active_memcg in interrupt context, else current's */
static struct mem_cgroup *active_memcg(struct bm_cpu *c)
{
    return atomic_load_explicit(cpu_in_interrupt(c) ? &c->int_active_memcg : &c->task_active_memcg,
                                memory_order_relaxed);
}

/* memcg_kmem_bypass() + the memcg choice: the active memcg wins in any
   context; otherwise interrupts and kthreads (task memcg NULL) are bypassed */
static struct mem_cgroup *current_charge_memcg(struct bm_cpu *c)
{
    struct mem_cgroup *memcg = active_memcg(c);

    if (memcg)
        return memcg;
    if (cpu_in_interrupt(c))
        return NULL;
    return cpu_task_memcg(c);
}

/* mirrors get_obj_cgroup_from_current(): walk up to the first non-root level
   with an objcg; NULL at root (root has no objcg in our profiles) */
struct obj_cgroup *get_obj_cgroup_from_current(struct bm_system *sys, int cpu)
{
    struct mem_cgroup *memcg;

    if (!bm_cpu_valid(sys, cpu))
        return NULL;
    memcg = current_charge_memcg(cpu_of(sys, cpu));
    for (; memcg && !mem_cgroup_is_root(memcg); memcg = parent_mem_cgroup(memcg)) {
        struct obj_cgroup *objcg = atomic_load(&memcg->objcg);
        if (objcg && obj_cgroup_tryget(objcg))
            return objcg;
    }
    return NULL;
}

/* mirrors get_mem_cgroup_from_current(): same bypass, css reference taken */
static struct mem_cgroup *get_mem_cgroup_from_current(struct bm_system *sys, int cpu)
{
    struct mem_cgroup *memcg;

    if (!bm_cpu_valid(sys, cpu))
        return NULL;
    memcg = current_charge_memcg(cpu_of(sys, cpu));
    css_get(memcg);
    return memcg;
}

/* ------------------------------------------------------------------ */
/* memcg and objcg lifecycle                                           */
/* ------------------------------------------------------------------ */

/* mirrors mem_cgroup_alloc() + mem_cgroup_css_alloc(): a memcg not yet in
   the tree (no id, no parent pin) */
static struct mem_cgroup *mem_cgroup_alloc(struct bm_system *sys, struct mem_cgroup *parent)
{
    struct mem_cgroup *memcg = calloc(1, sizeof(*memcg));
    bool track_failcnt = !sys->cfg.profile.failcnt_v1_only || sys->cfg.cgroup_v1;

    if (!memcg)
        return NULL;
    memcg->sys = sys;
    memcg->parent = parent;
    atomic_init(&memcg->state, BM_MEMCG_ONLINE);
    atomic_init(&memcg->refcnt, 1);   /* the online base reference */
    page_counter_init(&memcg->memory, parent ? &parent->memory : NULL, sys->page_counter_max,
                      true, track_failcnt);
    page_counter_init(&memcg->kmem, parent ? &parent->kmem : NULL, sys->page_counter_max,
                      false, track_failcnt);
    atomic_store(&memcg->memory.high, sys->page_counter_max);
    atomic_init(&memcg->objcg, NULL);
    return memcg;
}

/* mirrors obj_cgroup_alloc(): an objcg of memcg, not yet in the id table */
static struct obj_cgroup *obj_cgroup_alloc(struct bm_system *sys, struct mem_cgroup *memcg)
{
    struct obj_cgroup *objcg = calloc(1, sizeof(*objcg));

    if (!objcg)
        return NULL;
    objcg->sys = sys;
    atomic_init(&objcg->refcnt, 1);
    atomic_init(&objcg->dead, false);
    atomic_init(&objcg->memcg, memcg);
    atomic_init(&objcg->nr_charged_bytes, 0);
    atomic_init(&objcg->ext_refs, 0);
    atomic_init(&objcg->released, false);
    return objcg;
}

/* mirrors mem_cgroup_css_alloc() + mem_cgroup_css_online(): a memcg under
   parent, online, with its objcg pinning it (memcg_online_kmem(); root,
   parent NULL, gets none).  The ids (idr_alloc() up to MEM_CGROUP_ID_MAX,
   handles.c), the link into the parent's children and the id-table slots are
   made under tree_lock, the slots last, so a lock-free lookup that finds the
   memcg finds it whole.  alloc_addrs (or NULL): the structures
   memcg_alloc_structs() allocated for it.  0, -ENOMEM or -ENOSPC (ids
   exhausted). */
int mem_cgroup_css_online(struct bm_system *sys, struct mem_cgroup *parent, uint64_t *alloc_addrs,
                          struct mem_cgroup **out)
{
    struct mem_cgroup *memcg = mem_cgroup_alloc(sys, parent);
    struct obj_cgroup *objcg = memcg && parent ? obj_cgroup_alloc(sys, memcg) : NULL;
    int ret = 0;

    if (!memcg || (parent && !objcg)) {
        free(memcg);
        free(objcg);
        return -ENOMEM;
    }
    pthread_mutex_lock(&sys->tree_lock);
    memcg->id = bm_ids_alloc(&sys->memcg_ids);
    if (memcg->id < 0) {
        ret = memcg->id;
        goto out;
    }
    if (objcg) {
        objcg->id = bm_ids_alloc(&sys->objcg_ids);
        if (objcg->id < 0) {
            ret = objcg->id;
            bm_ids_free(&sys->memcg_ids, memcg->id);
            goto out;
        }
    }
    if (parent) {   /* css_next_descendant_pre() visits children oldest first */
        css_get(parent);
        memcg->next_sibling = NULL;
        __atomic_store_n(parent->last_child ? &parent->last_child->next_sibling : &parent->first_child,
                         memcg, __ATOMIC_SEQ_CST);
        parent->last_child = memcg;
    }
    if (objcg) {
        css_get(memcg);
        if (sys->cfg.profile.memcg_orig_objcg) {   /* memcg_online_kmem(): orig_objcg */
            obj_cgroup_get(objcg);
            memcg->orig_objcg = objcg;
        }
        atomic_store(&memcg->objcg, objcg);
        __atomic_store_n(&sys->objcgs[BM_HANDLE_SLOT(objcg->id)], objcg, __ATOMIC_SEQ_CST);
    }
    if (alloc_addrs)
        memcpy(memcg->alloc_addrs, alloc_addrs, sizeof(memcg->alloc_addrs));
    __atomic_store_n(&sys->memcgs[BM_HANDLE_SLOT(memcg->id)], memcg, __ATOMIC_SEQ_CST);
out:
    pthread_mutex_unlock(&sys->tree_lock);
    if (ret) {
        free(memcg);
        free(objcg);
        memcg = NULL;
    }
    *out = memcg;
    return ret;
}

/* mirrors memcg_reparent_objcgs(): the memcg's objcg and every objcg parked
   on its list now point at parent (css refs move with them) and join the
   parent's list; memcg->objcg is cleared; the objcg's base ref is killed */
static void memcg_reparent_objcgs(struct bm_system *sys, struct mem_cgroup *memcg,
                                  struct mem_cgroup *parent)
{
    struct obj_cgroup *objcg = atomic_exchange(&memcg->objcg, NULL);
    struct obj_cgroup *iter, *last = NULL;

    if (!objcg)
        return;
    pthread_mutex_lock(&sys->tree_lock);
    css_get(parent);
    atomic_store(&objcg->memcg, parent);
    css_put(memcg);           /* never the last: the base ref is still held */
    objcg->list_next = memcg->objcg_list;
    memcg->objcg_list = objcg;
    for (iter = memcg->objcg_list; iter; iter = iter->list_next) {
        if (iter != objcg) {
            css_get(parent);
            atomic_store(&iter->memcg, parent);
            css_put(memcg);
        }
        last = iter;
    }
    last->list_next = parent->objcg_list;
    parent->objcg_list = memcg->objcg_list;
    memcg->objcg_list = NULL;
    atomic_store(&objcg->dead, true);
    pthread_mutex_unlock(&sys->tree_lock);
    obj_cgroup_put(objcg);    /* percpu_ref_kill() drops the initial ref */
}

/* mirrors mem_cgroup_css_offline(): protections reset, memcg_offline_kmem()
   (reparent the objcgs), drain_all_stock(memcg) */
void mem_cgroup_css_offline(struct bm_system *sys, struct mem_cgroup *memcg)
{
    page_counter_set_min(&memcg->memory, 0);
    page_counter_set_low(&memcg->memory, 0);
    memcg_reparent_list_lrus(sys, memcg, memcg->parent);
    memcg_reparent_objcgs(sys, memcg, memcg->parent);
    drain_all_stock(sys, memcg);
}

static struct mem_cgroup *_Atomic *active_memcg_slot(struct bm_cpu *c)
{
    return atomic_load_explicit(&c->in_interrupt, memory_order_relaxed) ? &c->int_active_memcg
                                                                       : &c->task_active_memcg;
}

/* set_active_memcg(): int_active_memcg in interrupt context, else
   current->active_memcg; the slot keeps a reference on memcg, the caller
   gets the old one's */
struct mem_cgroup *set_active_memcg(struct bm_system *sys, int cpu, struct mem_cgroup *memcg)
{
    struct mem_cgroup *_Atomic *slot = active_memcg_slot(cpu_of(sys, cpu));

    css_get(memcg);
    return atomic_exchange_explicit(slot, memcg, memory_order_relaxed);
}

void restore_active_memcg(struct bm_system *sys, int cpu, struct mem_cgroup *old)
{
    struct mem_cgroup *_Atomic *slot = active_memcg_slot(cpu_of(sys, cpu));

    css_put(atomic_exchange_explicit(slot, old, memory_order_relaxed));
}

/* free one of mem_cgroup_alloc()'s accounted allocations; sys->lock held */
static void memcg_free_struct(struct bm_system *sys, int cpu, unsigned i, uint64_t addr)
{
    if (!addr)
        return;
    if (sys->cfg.memcg_allocs[i].kind == BM_ALLOC_PERCPU)
        __free_percpu(sys, cpu, addr);
    else
        __kfree(sys, cpu, addr);
}

/* mirrors the accounted allocations of mem_cgroup_alloc() under
   mem_cgroup_css_alloc()'s set_active_memcg(parent): each charges the parent
   (nothing for a child of root: the objcg walk stops at root).  0 with
   addrs filled, or -ENOMEM with nothing left allocated; sys->lock held. */
int memcg_alloc_structs(struct bm_system *sys, int cpu, struct mem_cgroup *parent, uint64_t *addrs)
{
    struct mem_cgroup *old = set_active_memcg(sys, cpu, parent);
    uint32_t gfp = GFP_KERNEL | __GFP_ACCOUNT;
    unsigned i;
    int ret = 0;

    for (i = 0; i < sys->cfg.nr_memcg_allocs && !ret; i++) {
        const struct bm_alloc_spec *a = &sys->cfg.memcg_allocs[i];
        ret = a->kind == BM_ALLOC_PERCPU ? __alloc_percpu(sys, cpu, a->size, 8, gfp, &addrs[i])
                                         : __kmalloc(sys, cpu, a->size, gfp | __GFP_ZERO, &addrs[i]);
        if (ret)
            addrs[i] = 0;
    }
    restore_active_memcg(sys, cpu, old);
    if (ret) {      /* __mem_cgroup_free() of a half-built memcg */
        for (i = 0; i < sys->cfg.nr_memcg_allocs; i++) {
            memcg_free_struct(sys, cpu, i, addrs[i]);
            addrs[i] = 0;
        }
        return -ENOMEM;
    }
    return 0;
}

/* The deferred part of mem_cgroup_css_free() / __mem_cgroup_free(): the
   accounted structures of every freed memcg are freed on cpu (uncharging
   whoever they record, the parent's objcg or where it was reparented), then
   the struct goes to its grace period (call_rcu_free()).  The kernel frees
   both after the grace period (css_free_rwork_fn()); here the structures go
   first, so the struct outlives every use of its alloc_addrs.  Freeing can
   release more memcgs; they are done too.  sys->lock held. */
void css_free_work(struct bm_system *sys, int cpu)
{
    while (atomic_load(&sys->nr_css_free_pending)) {
        struct mem_cgroup *list = NULL, *m, *next;
        int n = 0;

        pthread_mutex_lock(&sys->tree_lock);
        while ((m = sys->css_free_list)) {   /* reversed: freed first, first done */
            sys->css_free_list = m->css_free_next;
            m->css_free_next = list;
            list = m;
            n++;
        }
        pthread_mutex_unlock(&sys->tree_lock);
        atomic_fetch_sub(&sys->nr_css_free_pending, n);
        for (m = list; m; m = next) {
            next = m->css_free_next;
            for (unsigned i = 0; i < sys->cfg.nr_memcg_allocs; i++)
                memcg_free_struct(sys, cpu, i, m->alloc_addrs[i]);
            pthread_mutex_lock(&sys->tree_lock);
            call_rcu_free(sys, &m->rcu, m);
            pthread_mutex_unlock(&sys->tree_lock);
        }
    }
}

/* css_free_work() taking sys->lock, only when there is work */
void css_free_flush(struct bm_system *sys, int cpu)
{
    if (!atomic_load(&sys->nr_css_free_pending))
        return;
    pthread_mutex_lock(&sys->lock);
    css_free_work(sys, cpu);
    pthread_mutex_unlock(&sys->lock);
}

/* ------------------------------------------------------------------ */
/* cgroup file writes                                                  */
/* ------------------------------------------------------------------ */
/* mirrors memory_max_write() (v2): xchg the limit, drain once, reclaim with
   up to MAX_RECLAIM_RETRIES failed attempts, then MEMCG_OOM; the OOM killer
   finds no victim from this path in the model, so the loop stops.  Always 0. */
static int memory_max_write(struct bm_system *sys, struct mem_cgroup *memcg, long max)
{
    unsigned int nr_reclaims = MAX_RECLAIM_RETRIES;
    bool drained = false;

    atomic_exchange(&memcg->memory.max, max);
    for (;;) {
        long nr_pages = atomic_load(&memcg->memory.usage);
        if (nr_pages <= max)
            break;
        if (!drained) {
            drain_all_stock(sys, memcg);
            drained = true;
            continue;
        }
        if (nr_reclaims) {
            if (!try_to_free_mem_cgroup_pages(sys, 0, memcg, (unsigned long)(nr_pages - max), GFP_KERNEL))
                nr_reclaims--;
            continue;
        }
        memcg_memory_event(sys, memcg, BM_MEMCG_OOM);
        break;   /* mem_cgroup_out_of_memory() found nothing to kill */
    }
    return 0;
}

/* mirrors mem_cgroup_resize_max() (v1, memory or kmem counter): set_max,
   on -EBUSY drain once, then reclaim; -EBUSY once reclaim makes no progress */
static int mem_cgroup_resize_max(struct bm_system *sys, struct mem_cgroup *memcg,
                                 struct page_counter *counter, long max)
{
    bool drained = false;
    int ret;

    for (;;) {
        ret = page_counter_set_max(counter, (unsigned long)max);
        if (!ret)
            break;
        if (!drained) {
            drain_all_stock(sys, memcg);
            drained = true;
            continue;
        }
        if (!try_to_free_mem_cgroup_pages(sys, 0, memcg, 1, GFP_KERNEL)) {
            ret = -EBUSY;
            break;
        }
    }
    return ret;
}

/* mirrors memory_high_write(): the new value is stored first, then the
   bounded reclaim loop (the same in every release the profiles follow:
   536d3bf261a2 moved the store after the loop in v5.8 and its revert
   e82553c10b08 reached v5.11 and 5.10.y) */
static int memory_high_write(struct bm_system *sys, struct mem_cgroup *memcg, long high)
{
    unsigned int nr_retries = MAX_RECLAIM_RETRIES;
    bool drained = false;

    page_counter_set_high(&memcg->memory, (unsigned long)high);
    for (;;) {
        long nr_pages = atomic_load(&memcg->memory.usage);
        long reclaimed;
        if (nr_pages <= high)
            break;
        if (!drained) {
            drain_all_stock(sys, memcg);
            drained = true;
            continue;
        }
        reclaimed = (long)try_to_free_mem_cgroup_pages(sys, 0, memcg, (unsigned long)(nr_pages - high),
                                                       GFP_KERNEL);
        if (!reclaimed && !nr_retries--)
            break;
    }
    return 0;
}

/* mirrors mem_cgroup_force_empty() (v1): drain, then reclaim one page at a
   time until empty or MAX_RECLAIM_RETRIES attempts freed nothing; returns 0
   even if usage is left (kernel memory cannot be reclaimed) */
static int mem_cgroup_force_empty(struct bm_system *sys, struct mem_cgroup *memcg)
{
    int nr_retries = MAX_RECLAIM_RETRIES;

    drain_all_stock(sys, memcg);
    while (nr_retries && atomic_load(&memcg->memory.usage)) {
        if (!try_to_free_mem_cgroup_pages(sys, 0, memcg, 1, GFP_KERNEL))
            nr_retries--;
    }
    return 0;
}

/* the write handlers of the memory controller's files (the cftype writes of
   memcontrol.c / memcontrol-v1.c), what = BM_WRITE_*, pages already checked
   by the caller; sys->lock held.  0, or -EBUSY from a v1 limit that does not
   fit. */
int mem_cgroup_file_write(struct bm_system *sys, struct mem_cgroup *memcg, int32_t what, long pages)
{
    bool v1 = sys->cfg.cgroup_v1 != 0;
    int ret = 0;

    switch (what) {
    case BM_WRITE_MAX:
        ret = v1 ? mem_cgroup_resize_max(sys, memcg, &memcg->memory, pages)
                 : memory_max_write(sys, memcg, pages);
        break;
    case BM_WRITE_HIGH:
        ret = memory_high_write(sys, memcg, pages);
        break;
    case BM_WRITE_LOW:
        page_counter_set_low(&memcg->memory, (unsigned long)pages);
        break;
    case BM_WRITE_MIN:
        page_counter_set_min(&memcg->memory, (unsigned long)pages);
        break;
    case BM_WRITE_KMEM_MAX:
        /* v5.11 memcg_update_kmem_max(): set_max, -EBUSY below usage.
           Current kernels accept the write, warn and ignore it (returns 0). */
        if (sys->cfg.profile.kmem_limit_enforced)
            ret = page_counter_set_max(&memcg->kmem, (unsigned long)pages);
        break;
    case BM_WRITE_RESET_PEAK:
        /* v1 max_usage_in_bytes: page_counter_reset_watermark(); v2
           memory.peak (v6.12): the write restarts local_watermark only */
        if (v1)
            page_counter_reset_watermark(&memcg->memory);
        else
            atomic_store(&memcg->memory.local_watermark, atomic_load(&memcg->memory.usage));
        break;
    case BM_WRITE_RESET_FAILCNT:
        atomic_store(&memcg->memory.failcnt, 0);
        break;
    case BM_WRITE_KMEM_RESET_PEAK:
        page_counter_reset_watermark(&memcg->kmem);
        break;
    case BM_WRITE_KMEM_RESET_FAILCNT:
        atomic_store(&memcg->kmem.failcnt, 0);
        break;
    case BM_WRITE_FORCE_EMPTY:
        ret = mem_cgroup_force_empty(sys, memcg);
        break;
    }
    return ret;
}

/* ------------------------------------------------------------------ */
/* user pages                                                          */
/* ------------------------------------------------------------------ */

/* mirrors mem_cgroup_charge() of nr_pages anon or file pages: try_charge,
   then the ANON/FILE stat (root too: its pages carry root and are counted);
   the pages hold one css reference while any are charged (user_pages).
   The caller holds a reference on memcg. */
int mem_cgroup_charge(struct bm_system *sys, int cpu, struct mem_cgroup *memcg, unsigned long nr_pages,
                      uint32_t gfp, bool file)
{
    int ret = try_charge_memcg(sys, cpu, memcg, gfp, nr_pages);

    if (!ret) {
        ledger_add(&memcg->user_pages, memcg, (long)nr_pages);
        if (file) {
            mod_memcg_state(memcg, BM_STAT_FILE, (long)nr_pages);
            atomic_fetch_add(&memcg->file_pages, (long)nr_pages);
        } else {
            mod_memcg_state(memcg, BM_STAT_ANON, (long)nr_pages);
            atomic_fetch_add(&memcg->anon_pages, (long)nr_pages);
        }
    }
    return ret;
}

/* mirrors uncharge_batch(): direct uncharge of user pages; -EINVAL for more
   pages than are charged (or left after reclaim) */
int mem_cgroup_uncharge(struct bm_system *sys, struct mem_cgroup *memcg, unsigned long nr_pages, bool file)
{
    bool zero = false;

    /* pinned before the pages leave their ledger (as in bm_uncharge()): after,
       another uncharge may drop the last reference; a memcg whose count
       reached zero has no pages */
    if (!css_tryget(memcg))
        return -EINVAL;
    if (!ledger_sub(file ? &memcg->file_pages : &memcg->anon_pages, (long)nr_pages, &zero)) {
        css_put(memcg);
        return -EINVAL;
    }
    memcg_uncharge(sys, memcg, nr_pages);
    mod_memcg_state(memcg, file ? BM_STAT_FILE : BM_STAT_ANON, -(long)nr_pages);
    user_pages_sub(memcg, (long)nr_pages);
    css_put(memcg);
    return 0;
}
