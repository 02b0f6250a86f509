/*
 * replay.c - bulk paths: bm_replay() applies an array of struct bm_op, and
 * bm_kmalloc_bulk() / bm_kfree_bulk() run many kmallocs / kfrees in one
 * call.  No Python here: cffi releases the GIL around these calls.
 *
 * results[i] follows the kernel's ERR_PTR convention: -4095..-1 is an
 * errno, anything else is the op's value (an address, which is "negative"
 * as int64 for kernel addresses, a pfn, or 0).  Allocator ops run under
 * sys->lock, held across runs of up to REPLAY_LOCK_BATCH consecutive
 * allocator ops and dropped before charge ops (which never need it), so
 * another thread's replay gets in at least every REPLAY_LOCK_BATCH ops.
 */
#include "mm_internal.h"

#define MAX_ERRNO 4095
#define REPLAY_LOCK_BATCH 256

static inline bool is_err(int64_t v)
{
    return v < 0 && v >= -MAX_ERRNO;
}

/* the free matching the op that produced a result (BM_OP_FREE_RESULT) */
static int free_result(struct bm_system *sys, int cpu, const struct bm_op *src, uint64_t value)
{
    switch (src->op) {
    case BM_OP_KMALLOC:
        return __kfree(sys, cpu, value);
    case BM_OP_VMALLOC:
        return __vfree(sys, cpu, value);
    case BM_OP_ALLOC_PERCPU:
        return __free_percpu(sys, cpu, value);
    case BM_OP_ALLOC_PAGES: {
        struct page *page = src->arg <= BM_MAX_ORDER ? alloc_pages_head(sys, value, (int64_t)src->arg) : NULL;
        if (!page)
            return -EINVAL;
        __free_pages_ok(sys, cpu, page, (int)src->arg);
        return 0;
    }
    default:
        return -EINVAL;
    }
}

/* caller holds sys->lock for every op but BM_OP_CHARGE / BM_OP_UNCHARGE */
static int64_t run_op(struct bm_system *sys, const struct bm_op *ops, int64_t i, const int64_t *results)
{
    const struct bm_op *op = &ops[i];
    int cpu = op->cpu;
    uint64_t out = 0;
    int ret;

    if (!mm_args_ok(sys, cpu, op->gfp) || op->pad0 || op->pad1)
        return -EINVAL;

    switch (op->op) {
    case BM_OP_CHARGE:
        if (op->arg > (uint64_t)INT64_MAX)
            return -EINVAL;
        return bm_try_charge(sys, op->handle, (int64_t)op->arg, op->gfp, cpu);
    case BM_OP_UNCHARGE:
        if (op->arg > (uint64_t)INT64_MAX)
            return -EINVAL;
        return bm_uncharge(sys, op->handle, (int64_t)op->arg, cpu);
    default:
        break;
    }

    switch (op->op) {
    case BM_OP_KMALLOC:
        ret = __kmalloc(sys, cpu, op->arg, op->gfp, &out);
        break;
    case BM_OP_KFREE:
        ret = __kfree(sys, cpu, op->arg);
        break;
    case BM_OP_VMALLOC:
        ret = __vmalloc(sys, cpu, op->arg, op->gfp, &out);
        break;
    case BM_OP_VFREE:
        ret = __vfree(sys, cpu, op->arg);
        break;
    case BM_OP_ALLOC_PERCPU:
        ret = __alloc_percpu(sys, cpu, op->arg, 8, op->gfp, &out);
        break;
    case BM_OP_FREE_PERCPU:
        ret = __free_percpu(sys, cpu, op->arg);
        break;
    case BM_OP_ALLOC_PAGES: {
        struct page *page;
        int err = 0;
        if (op->arg > BM_MAX_ORDER || should_fail_alloc(sys)) {
            ret = -ENOMEM;      /* as bm_alloc_pages: order >= MAX_ORDER fails */
            break;
        }
        page = __alloc_pages(sys, cpu, (int)op->arg, op->gfp, &err);
        ret = page ? 0 : err;
        if (page)
            out = page_to_pfn(sys->mm, page);
        break;
    }
    case BM_OP_FREE_PAGES: {
        struct page *page = alloc_pages_head(sys, op->arg, op->handle);
        ret = -EINVAL;
        if (page) {
            __free_pages_ok(sys, cpu, page, op->handle);
            ret = 0;
        }
        break;
    }
    case BM_OP_KFREE_RESULT:
    case BM_OP_FREE_RESULT: {
        /* arg names an earlier op; a failed earlier op makes this a no-op
           (like kfree(NULL)) */
        ret = -EINVAL;
        if (op->arg >= (uint64_t)i)
            break;
        const struct bm_op *src = &ops[op->arg];
        int64_t v = results[op->arg];
        if (is_err(v)) {
            ret = 0;
            break;
        }
        if (op->op == BM_OP_KFREE_RESULT) {
            ret = src->op == BM_OP_KMALLOC ? __kfree(sys, cpu, (uint64_t)v) : -EINVAL;
        } else {
            ret = free_result(sys, cpu, src, (uint64_t)v);
        }
        break;
    }
    default:
        ret = -EINVAL;
        break;
    }
    return ret ? ret : (int64_t)out;
}

/* The last stock hit of a replay: its handle, memcg and stock slot (perf). */
struct hit_cache {
    int32_t handle;
    unsigned slot;
    struct mem_cgroup *memcg;
};

/* A charge op that the holder of its cpu's stock lock can finish as a stock
   hit (the checks are run_op's and bm_try_charge's, in the same order of
   outcome: anything they would reject takes the general path).  consume_stock()
   / the common refill_stock() into the memcg's own slot, with this cpu's
   ledger share (as charge_api.c does).  Perf: when the op names the handle of the last
   hit and that slot still caches its memcg, the handle lookup and the slot
   scan are skipped: the slot's css reference keeps the memcg alive and a
   handle names one memcg only (its slot's generation), so it still names it. */
static bool charge_op_hit_locked(struct bm_system *sys, const struct bm_op *op, struct hit_cache *hc)
{
    struct memcg_stock_pcp *stock = &sys->cpus[op->cpu].stock;
    unsigned long nr = op->arg, batch = sys->cfg.profile.charge_batch;
    struct mem_cgroup *memcg;
    unsigned i;

    /* bm_gfp_valid() and the padding test in one branch (the hot loop) */
    if (((op->gfp & ~(uint32_t)BM_GFP_VALID_MASK) | op->pad0 | (uint32_t)op->pad1) || nr == 0 ||
        nr > (uint64_t)sys->page_counter_max || op->handle < 0)
        return false;
    if (op->handle == hc->handle && stock->cached[hc->slot] == hc->memcg) {
        i = hc->slot;
        memcg = hc->memcg;
    } else {
        memcg = bm_memcg_lookup(sys, op->handle);
        if (!memcg || mem_cgroup_is_root(memcg))
            return false;
        for (i = 0; i < sys->cfg.profile.nr_memcg_stock; i++)
            if (stock->cached[i] == memcg)
                break;
        if (i == sys->cfg.profile.nr_memcg_stock)
            return op->op == BM_OP_UNCHARGE && bm_uncharge_stock_locked(sys, op->cpu, memcg, nr);
        *hc = (struct hit_cache){op->handle, i, memcg};
    }
    if (op->op == BM_OP_CHARGE) {
        if (nr > batch || stock->nr_pages[i] < nr)
            return false;
        stock->nr_pages[i] -= (unsigned)nr;
        stock->ledger[i] += (long)nr;
        return true;
    }
    if (stock->ledger[i] < (long)nr || stock->nr_pages[i] + nr > batch)
        return bm_uncharge_stock_locked(sys, op->cpu, memcg, nr);
    stock->ledger[i] -= (long)nr;
    stock->nr_pages[i] += (unsigned)nr;
    return true;
}

/* Locks: allocator ops run under sys->lock (dropped every REPLAY_LOCK_BATCH
   ops and before charge ops).  Perf: a run of charge ops keeps its cpu's
   stock lock across up to REPLAY_LOCK_BATCH ops, the way kernel code keeps
   preemption off, so a stock hit costs no atomic; an op that needs more
   than the stock drops it first and runs the general path (which may take
   sys->lock or every cpu's stock lock).  A stock lock is never held while
   sys->lock is taken. */
int64_t bm_replay(bm_system *sys, const struct bm_op *ops, int64_t n, int64_t *results)
{
    BM_RCU_READ_SECTION(sys, -1);
    int64_t i, failed = 0;

    if (!sys || !sys->mm || n < 0 || (n > 0 && (!ops || !results)))
        return -EINVAL;
    bool locked = false;
    int held = 0;
    int stock_cpu = -1, stock_held = 0;
    struct hit_cache hc = {-1, 0, NULL};

    for (i = 0; i < n; i++) {
        const struct bm_op *op = &ops[i];
        bool charge_op = op->op == BM_OP_CHARGE || op->op == BM_OP_UNCHARGE;
        int64_t r;

        if (locked && charge_op) {
            pthread_mutex_unlock(&sys->lock);
            locked = false;
        }
        /* above a batch the stock can do nothing without the general path */
        if (charge_op && op->arg <= sys->cfg.profile.charge_batch && bm_cpu_valid(sys, op->cpu)) {
            if (stock_cpu != op->cpu || stock_held == REPLAY_LOCK_BATCH) {
                if (stock_cpu >= 0)
                    bm_stock_unlock(sys, stock_cpu);
                stock_cpu = bm_stock_trylock(sys, op->cpu) ? op->cpu : -1;
                stock_held = 0;
            }
            if (stock_cpu >= 0) {
                stock_held++;
                if (charge_op_hit_locked(sys, op, &hc)) {
                    results[i] = 0;
                    continue;
                }
            }
        }
        if (stock_cpu >= 0) {
            bm_stock_unlock(sys, stock_cpu);
            stock_cpu = -1;
        }
        if (locked && held == REPLAY_LOCK_BATCH) {
            pthread_mutex_unlock(&sys->lock);
            locked = false;
        }
        if (!locked && !charge_op) {
            pthread_mutex_lock(&sys->lock);
            locked = true;
            held = 0;
        }
        held++;
        over_high_defer();          /* each op is its own call, with its return to user */
        r = run_op(sys, ops, i, results);
        return_to_user(sys, op->cpu);
        results[i] = r;
        if (is_err(r))
            failed++;
    }
    if (stock_cpu >= 0)
        bm_stock_unlock(sys, stock_cpu);
    if (locked)
        pthread_mutex_unlock(&sys->lock);
    return failed;
}

/* n kmallocs on one cpu under one hold of sys->lock; addrs[i] = 0 (NULL)
   for a failed one.  Returns the number of failures. */
int64_t bm_kmalloc_bulk(bm_system *sys, int32_t cpu, const uint64_t *sizes, int64_t n, uint32_t gfp, uint64_t *addrs)
{
    BM_RCU_READ_SECTION(sys, cpu);
    int64_t i, failed = 0;

    if (!mm_args_ok(sys, cpu, gfp) || n < 0 || (n > 0 && (!sizes || !addrs)))
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    for (i = 0; i < n; i++) {       /* each its own call, with its return to user */
        uint64_t a = 0;
        int ret;

        over_high_defer();
        ret = __kmalloc(sys, cpu, sizes[i], gfp, &a);
        return_to_user(sys, cpu);
        if (ret) {
            a = 0;
            failed++;
        }
        addrs[i] = a;
    }
    pthread_mutex_unlock(&sys->lock);
    return failed;
}

/* kfree_bulk(): results may be NULL.  Returns the number of failures. */
int64_t bm_kfree_bulk(bm_system *sys, int32_t cpu, const uint64_t *addrs, int64_t n, int64_t *results)
{
    BM_RCU_READ_SECTION(sys, cpu);
    int64_t i, failed = 0;

    if (!mm_args_ok(sys, cpu, 0) || n < 0 || (n > 0 && !addrs))
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    for (i = 0; i < n; i++) {
        int r = __kfree(sys, cpu, addrs[i]);
        if (r)
            failed++;
        if (results)
            results[i] = r;
    }
    pthread_mutex_unlock(&sys->lock);
    return failed;
}

/* kinds[i] 'k': kmalloc(sizes[i], gfp), 'p': alloc_percpu(sizes[i], 8, gfp) -- the
   alignment BPF code asks for -- in order on one cpu, stopping at the first one
   that fails: the element loops the bulk fills of pybpfmem/bpf/fill.py stand for
   stop there (an update that cannot allocate returns -ENOMEM and the next one is
   never made).  sys->lock is dropped every REPLAY_LOCK_BATCH allocations. */
int64_t bm_allocs_until_fail(bm_system *sys, int32_t cpu, const uint8_t *kinds, const uint64_t *sizes,
                             int64_t n, uint32_t gfp, uint64_t *addrs)
{
    BM_RCU_READ_SECTION(sys, cpu);
    int64_t i;
    int held = 0;

    if (!mm_args_ok(sys, cpu, gfp) || n < 0 || (n > 0 && (!kinds || !sizes || !addrs)))
        return -EINVAL;
    for (i = 0; i < n; i++)
        if (kinds[i] != 'k' && kinds[i] != 'p')
            return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    for (i = 0; i < n; i++) {
        uint64_t a = 0;
        int ret;

        if (held == REPLAY_LOCK_BATCH) {    /* let another thread's allocations in */
            pthread_mutex_unlock(&sys->lock);
            pthread_mutex_lock(&sys->lock);
            held = 0;
        }
        held++;
        over_high_defer();          /* each its own call (an update), with its return to user */
        if (kinds[i] == 'k')
            ret = __kmalloc(sys, cpu, sizes[i], gfp, &a);
        else
            ret = __alloc_percpu(sys, cpu, sizes[i], 8, gfp, &a);
        return_to_user(sys, cpu);
        if (ret)
            break;
        addrs[i] = a;
    }
    pthread_mutex_unlock(&sys->lock);
    return i;
}
