/*
 * charge_api.c - the bm_* charge entry points: bm_try_charge / bm_uncharge
 * of pages with their ledger, user (anon and file) pages, obj_cgroup
 * charges of a held objcg, and the stock drains.  The charge itself is
 * memcontrol.c's (try_charge_memcg(), refill_stock(), ...).
 *
 * The ledger is model bookkeeping with no kernel counterpart: it remembers
 * how many pages bm_try_charge() charged to each memcg so that bm_uncharge()
 * can refuse to uncharge more (a kernel caller never does; Python can).  It
 * is memcg->charged_pages plus each cpu's share kept beside the stock slot
 * caching that memcg (memcg_stock_pcp.ledger, so a stock hit touches no
 * shared line); a share goes back to charged_pages whenever its slot drains.
 * While non-zero, charged_pages holds one css reference.
 */
#include "internal.h"

/* the arguments of a page charge or uncharge: a cpu, a memcg, a page count
   and gfp bits the core knows; 0, -EINVAL or -ENOENT */
static int charge_args(struct bm_system *sys, int32_t id, int64_t nr_pages, uint32_t gfp, int32_t cpu,
                       struct mem_cgroup **memcg)
{
    int ret;

    if (!sys || !bm_cpu_valid(sys, cpu))
        return -EINVAL;
    if ((ret = bm_memcg_arg(sys, id, memcg)))
        return ret;
    return nr_pages <= 0 || nr_pages > sys->page_counter_max || !bm_gfp_valid(gfp) ? -EINVAL : 0;
}

/* The stock-hit halves of bm_try_charge / bm_uncharge with cpu's stock lock
   held by the caller (bm_replay holds it across a run of charge ops, the way
   kernel code keeps preemption off).  They return false, having changed
   nothing, whenever the general path is needed. */

/* mirrors consume_stock()'s hit, plus this cpu's share of the ledger; the
   cpu's stock lock held */
static inline bool charge_stock_hit_locked(struct bm_system *sys, int cpu, struct mem_cgroup *memcg,
                                           unsigned long nr)
{
    struct memcg_stock_pcp *stock = &cpu_of(sys, cpu)->stock;

    if (nr > charge_batch(sys))
        return false;
    for (unsigned i = 0; i < sys->cfg.profile.nr_memcg_stock; i++) {
        if (stock->cached[i] == memcg) {
            if (stock->nr_pages[i] < nr)
                return false;
            stock->nr_pages[i] -= (unsigned)nr;
            stock->ledger[i] += (long)nr;
            return true;
        }
    }
    return false;
}

/* refill_stock() of pages this cpu's ledger share covers (any refill:
   uncharge_stock_fast_locked() inlines the common one) */
bool bm_uncharge_stock_locked(struct bm_system *sys, int cpu, struct mem_cgroup *memcg, unsigned long nr)
{
    struct bm_cpu *c = cpu_of(sys, cpu);

    for (unsigned i = 0; i < sys->cfg.profile.nr_memcg_stock; i++) {
        if (c->stock.cached[i] == memcg) {
            if (c->stock.ledger[i] < (long)nr)
                return false;
            c->stock.ledger[i] -= (long)nr;
            __refill_stock(sys, c, memcg, nr);
            return true;
        }
    }
    return false;
}

/* refill_stock() into the slot already caching memcg when the slot stays
   within a batch: what __refill_stock() does in that case, for either
   profile (no switch, no drain).  Anything else: the general
   bm_uncharge_stock_locked().  memcg is never root here (never stocked). */
static inline bool uncharge_stock_fast_locked(struct bm_system *sys, int cpu, struct mem_cgroup *memcg,
                                              unsigned long nr)
{
    struct memcg_stock_pcp *stock = &cpu_of(sys, cpu)->stock;

    for (unsigned i = 0; i < sys->cfg.profile.nr_memcg_stock; i++) {
        if (stock->cached[i] == memcg) {
            if (stock->ledger[i] < (long)nr || stock->nr_pages[i] + nr > charge_batch(sys))
                break;
            stock->ledger[i] -= (long)nr;
            stock->nr_pages[i] += (unsigned)nr;
            return true;
        }
    }
    return bm_uncharge_stock_locked(sys, cpu, memcg, nr);
}

/* every cpu's ledger share of memcg back into memcg->charged_pages */
static void ledger_collect(struct bm_system *sys, struct mem_cgroup *memcg)
{
    for (uint32_t cpu = 0; cpu < sys->cfg.nr_cpus; cpu++) {
        struct bm_cpu *c = cpu_of(sys, (int)cpu);
        bm_cpu_lock(c);
        for (unsigned i = 0; i < sys->cfg.profile.nr_memcg_stock; i++)
            if (c->stock.cached[i] == memcg)
                ledger_flush_slot(&c->stock, i);
        bm_cpu_unlock(c);
    }
}

int bm_try_charge(bm_system *sys, int32_t id, int64_t nr_pages, uint32_t gfp, int32_t cpu)
{
    BM_RCU_READ_SECTION(sys, cpu);
    BM_USER_CALL(sys, cpu);
    struct mem_cgroup *memcg;
    int ret;

    if ((ret = charge_args(sys, id, nr_pages, gfp, cpu, &memcg)))
        return ret;
    /* the stock hit: the stock's own css reference pins memcg while locked */
    if ((unsigned long)nr_pages <= charge_batch(sys) && bm_stock_trylock(sys, cpu)) {
        bool hit = charge_stock_hit_locked(sys, cpu, memcg, (unsigned long)nr_pages);
        bm_stock_unlock(sys, cpu);
        if (hit)
            return 0;
    }
    /* the pin around the charge; when the charge takes the ledger from 0 the
       pin becomes the ledger's css reference (what ledger_add() takes before
       a 0 -> n transition), saving a get/put pair.  A tryget: the lookup took
       no reference, and the memcg's last one may be going. */
    if (!css_tryget(memcg))
        return -ENOENT;
    ret = try_charge(sys, cpu, memcg, gfp, (unsigned long)nr_pages);
    if (!ret && atomic_fetch_add(&memcg->charged_pages, (long)nr_pages) == 0)
        return 0;
    css_put(memcg);
    return ret;
}

/* the kmem-style uncharge: through refill_stock() (root: nothing to do).
   Pages this cpu's ledger share covers are refilled under one stock lock;
   else the shared ledger pays, after collecting every cpu's share if it
   falls short (-EINVAL only when all of them together do). */
int bm_uncharge(bm_system *sys, int32_t id, int64_t nr_pages, int32_t cpu)
{
    BM_RCU_READ_SECTION(sys, cpu);
    struct mem_cgroup *memcg;
    bool zero = false;
    int ret;

    if ((ret = charge_args(sys, id, nr_pages, 0, cpu, &memcg)))
        return ret;
    /* (above a batch the stock only forwards the pages: no lock for that) */
    if (!mem_cgroup_is_root(memcg) && (unsigned long)nr_pages <= charge_batch(sys) &&
        bm_stock_trylock(sys, cpu)) {
        bool done = uncharge_stock_fast_locked(sys, cpu, memcg, (unsigned long)nr_pages);
        bm_stock_unlock(sys, cpu);
        if (done)
            return 0;
    }
    /* the pin of the uncharge, taken while our pages still hold the ledger's
       reference: once they leave the ledger, another cpu's uncharge can empty
       it and the last reference go before refill_stock() takes the stock's
       (a css_get() then revived a freed memcg, queued for freeing twice).
       The kernel's uncharge_batch() likewise puts the pages' css reference
       only after the uncharge.  A tryget: a memcg whose count reached zero
       has nothing charged. */
    if (!css_tryget(memcg))
        return -EINVAL;
    if (!ledger_sub(&memcg->charged_pages, (long)nr_pages, &zero)) {
        ledger_collect(sys, memcg);
        if (!ledger_sub(&memcg->charged_pages, (long)nr_pages, &zero)) {
            css_put(memcg);
            return -EINVAL;   /* more than bm_try_charge charged */
        }
    }
    if (!mem_cgroup_is_root(memcg))
        refill_stock(sys, cpu, memcg, (unsigned long)nr_pages);
    if (zero)
        css_put(memcg);   /* the ledger's */
    css_put(memcg);
    return 0;
}

int bm_charge_user(bm_system *sys, int32_t id, int64_t nr_pages, uint32_t gfp, int32_t cpu, int32_t file)
{
    BM_RCU_READ_SECTION(sys, cpu);
    BM_USER_CALL(sys, cpu);
    struct mem_cgroup *memcg;
    int ret;

    if ((ret = charge_args(sys, id, nr_pages, gfp, cpu, &memcg)))
        return ret;
    if (!css_tryget(memcg))
        return -ENOENT;
    ret = mem_cgroup_charge(sys, cpu, memcg, (unsigned long)nr_pages, gfp, file != 0);
    css_put(memcg);
    return ret;
}

int bm_uncharge_user(bm_system *sys, int32_t id, int64_t nr_pages, int32_t file)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct mem_cgroup *memcg;
    int ret;

    /* uncharge_batch() runs on no particular cpu: cpu 0 always exists */
    if ((ret = charge_args(sys, id, nr_pages, 0, 0, &memcg)))
        return ret;
    return mem_cgroup_uncharge(sys, memcg, (unsigned long)nr_pages, file != 0);
}

/* the arguments of bm_obj_cgroup_charge/uncharge: a cpu, gfp bits the core
   knows, 1..PAGE_COUNTER_MAX bytes, and an objcg the caller holds */
static int held_objcg_args(struct bm_system *sys, int32_t cpu, int32_t id, uint32_t gfp, uint64_t size,
                           struct obj_cgroup **objcg)
{
    if (!sys || !bm_cpu_valid(sys, cpu) || id < 0 || !bm_gfp_valid(gfp))
        return -EINVAL;
    if (size == 0 || size > (uint64_t)sys->page_counter_max)
        return -EINVAL;
    *objcg = bm_objcg_lookup(sys, id);
    if (!*objcg || atomic_load(&(*objcg)->ext_refs) <= 0)
        return -ENOENT;
    return 0;
}

/* test/driver helpers: obj_cgroup_charge()/uncharge() on a Python-held objcg */
int bm_obj_cgroup_charge(bm_system *sys, int32_t cpu, int32_t id, uint32_t gfp, uint64_t size)
{
    BM_RCU_READ_SECTION(sys, cpu);
    BM_USER_CALL(sys, cpu);
    struct obj_cgroup *objcg;
    int ret = held_objcg_args(sys, cpu, id, gfp, size, &objcg);

    return ret ? ret : obj_cgroup_charge(sys, cpu, objcg, gfp, (size_t)size);
}

int bm_obj_cgroup_uncharge(bm_system *sys, int32_t cpu, int32_t id, uint64_t size)
{
    BM_RCU_READ_SECTION(sys, cpu);
    struct obj_cgroup *objcg;
    int ret = held_objcg_args(sys, cpu, id, 0, size, &objcg);

    if (!ret)
        obj_cgroup_uncharge(sys, cpu, objcg, (size_t)size);
    return ret;
}

int bm_drain_all_stock(bm_system *sys, int32_t root)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct mem_cgroup *memcg;
    int ret;

    if ((ret = bm_memcg_tryget_arg(sys, root, &memcg)))
        return ret;
    /* with the memcgs the drain frees, and the structures of those freed
       (css_free_work) uncharged too */
    do {
        css_free_flush(sys, 0);
        drain_all_stock(sys, memcg);
    } while (atomic_load(&sys->nr_css_free_pending));
    css_put(memcg);
    return 0;
}

int bm_drain_local_stock(bm_system *sys, int32_t cpu)
{
    BM_RCU_READ_SECTION(sys, cpu);
    if (!sys || !bm_cpu_valid(sys, cpu))
        return -EINVAL;
    drain_local_stock(sys, cpu);
    css_free_flush(sys, 0);     /* the css puts may have freed memcgs */
    return 0;
}

