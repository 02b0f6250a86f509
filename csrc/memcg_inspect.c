/*
 * memcg_inspect.c - what Python reads about memcgs, obj_cgroups and the
 * per-cpu stocks (bm_memcg_info, bm_objcg_info, bm_stock_info), and the
 * memcg half of bm_system_check() (memcg_check).  No kernel counterpart
 * beyond what the cgroup files print (memory.stat sums the subtree as
 * memory_stat_format() does); reads only.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static void fill_counter_info(const struct page_counter *c, struct bm_page_counter_info *o)
{
    o->usage = atomic_load(&c->usage);
    o->max = atomic_load(&c->max);
    o->high = atomic_load(&c->high);
    o->low = atomic_load(&c->low);
    o->min = atomic_load(&c->min);
    o->emin = atomic_load(&c->emin);
    o->elow = atomic_load(&c->elow);
    o->min_usage = atomic_load(&c->min_usage);
    o->low_usage = atomic_load(&c->low_usage);
    o->children_min_usage = atomic_load(&c->children_min_usage);
    o->children_low_usage = atomic_load(&c->children_low_usage);
    o->watermark = atomic_load(&c->watermark);
    o->local_watermark = atomic_load(&c->local_watermark);
    o->failcnt = atomic_load(&c->failcnt);
}

int bm_memcg_info(bm_system *sys, int32_t id, struct bm_memcg_info *out)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct mem_cgroup *memcg;
    struct obj_cgroup *objcg;
    int ret;

    if (!sys || !out)
        return -EINVAL;
    ret = bm_memcg_arg(sys, id, &memcg);
    if (ret)
        return ret;
    memset(out, 0, sizeof(*out));
    out->id = memcg->id;
    out->parent = memcg->parent ? memcg->parent->id : -1;
    out->state = atomic_load(&memcg->state);
    out->refcnt = (int32_t)atomic_load(&memcg->refcnt);
    objcg = atomic_load(&memcg->objcg);
    out->objcg = objcg ? objcg->id : -1;
    fill_counter_info(&memcg->memory, &out->memory);
    if (sys->cfg.cgroup_v1)
        fill_counter_info(&memcg->kmem, &out->kmem);
    for (int e = 0; e < BM_NR_EVENTS; e++) {
        out->events[e] = atomic_load(&memcg->memory_events[e]);
        out->events_local[e] = atomic_load(&memcg->memory_events_local[e]);
    }
    for (int i = 0; i < BM_NR_STATS; i++)
        out->stat_local[i] = atomic_load(&memcg->stat[i]);
    /* under tree_lock a freed child is either still linked or already folded
       into its parent: each subtree stat is counted exactly once */
    pthread_mutex_lock(&sys->tree_lock);
    for (struct mem_cgroup *m = memcg; m; m = next_descendant_pre(m, memcg))
        for (int i = 0; i < BM_NR_STATS; i++)
            out->stat[i] += atomic_load(&m->stat[i]);
    pthread_mutex_unlock(&sys->tree_lock);
    for (uint32_t cpu = 0; cpu < sys->cfg.nr_cpus; cpu++) {
        struct bm_cpu *c = cpu_of(sys, (int)cpu);
        bm_cpu_lock(c);
        for (unsigned i = 0; i < sys->cfg.profile.nr_memcg_stock; i++)
            if (c->stock.cached[i] == memcg)
                out->stock_pages += c->stock.nr_pages[i];
        bm_cpu_unlock(c);
        /* the cpu's context, written by its own thread with relaxed stores */
        if (atomic_load_explicit(&c->task_memcg, memory_order_relaxed) == memcg)
            out->nr_pages_over_high += atomic_load_explicit(&c->memcg_nr_pages_over_high,
                                                            memory_order_relaxed);
    }
    out->file_pages = atomic_load(&memcg->file_pages);
    for (unsigned i = 0; i < BM_MEMCG_ALLOC_MAX; i++)   /* set before the memcg is published */
        out->struct_addrs[i] = memcg->alloc_addrs[i];
    return 0;
}

int bm_memcg_state(bm_system *sys, int32_t id)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct mem_cgroup *memcg;
    int ret = bm_memcg_arg(sys, id, &memcg);

    return ret ? ret : atomic_load(&memcg->state);
}

int bm_objcg_info(bm_system *sys, int32_t id, struct bm_objcg_info *out)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct obj_cgroup *objcg;
    long refcnt;

    if (!sys || !out || id < 0)
        return -EINVAL;
    objcg = bm_objcg_lookup(sys, id);
    if (!objcg)
        return -ENOENT;
    memset(out, 0, sizeof(*out));
    out->id = objcg->id;
    out->memcg = obj_cgroup_memcg(objcg)->id;
    out->dead = atomic_load(&objcg->dead);
    out->nr_charged_bytes = atomic_load(&objcg->nr_charged_bytes);
    /* the references held on objcg: its count less the spares of the cpu
       stocks caching it (model perf, see struct memcg_stock_pcp) */
    refcnt = atomic_load(&objcg->refcnt);
    for (uint32_t cpu = 0; cpu < sys->cfg.nr_cpus; cpu++) {
        struct bm_cpu *c = cpu_of(sys, (int)cpu);
        bm_cpu_lock(c);
        for (int k = 0; k < 2; k++) {
            struct obj_stock_pcp *os = &c->stock.obj[k];
            if (os->cached_objcg == objcg) {
                refcnt -= (long)os->nr_objcg_refs;
                out->stock_bytes += os->nr_bytes;
            }
        }
        bm_cpu_unlock(c);
    }
    out->refcnt = (int32_t)refcnt;
    return 0;
}

int bm_stock_info(bm_system *sys, int32_t cpu, struct bm_cpu_stock_info *out)
{
    BM_RCU_READ_SECTION(sys, cpu);
    struct memcg_stock_pcp *stock;

    if (!sys || !out || !bm_cpu_valid(sys, cpu))
        return -EINVAL;
    stock = &cpu_of(sys, cpu)->stock;
    bm_cpu_lock(cpu_of(sys, cpu));
    for (unsigned i = 0; i < 8; i++) {
        bool used = i < sys->cfg.profile.nr_memcg_stock && stock->cached[i];
        out->cached[i] = used ? stock->cached[i]->id : -1;
        out->nr_pages[i] = used ? (int32_t)stock->nr_pages[i] : 0;
    }
    {
        struct obj_stock_pcp *task = &stock->obj[OBJ_STOCK_TASK], *irq = &stock->obj[OBJ_STOCK_IRQ];
        out->cached_objcg = task->cached_objcg ? task->cached_objcg->id : -1;
        out->nr_bytes = (int32_t)task->nr_bytes;
        out->nr_slab_reclaimable_b = task->nr_slab_reclaimable_b;
        out->nr_slab_unreclaimable_b = task->nr_slab_unreclaimable_b;
        out->irq_cached_objcg = irq->cached_objcg ? irq->cached_objcg->id : -1;
        out->irq_nr_bytes = (int32_t)irq->nr_bytes;
        out->irq_nr_slab_reclaimable_b = irq->nr_slab_reclaimable_b;
        out->irq_nr_slab_unreclaimable_b = irq->nr_slab_unreclaimable_b;
    }
    bm_cpu_unlock(cpu_of(sys, cpu));
    return 0;
}

#define BAD(...) do { snprintf(buf, len, __VA_ARGS__); return -EUCLEAN; } while (0)

/* The tree agrees with the id table: every linked child is live (its slot
   names it) and names its parent, and every live memcg but root is linked
   exactly once (the links counted equal the live memcgs).  Then, per memcg,
   invariants 1 and 2: no counter went negative, and a parent's usage is its
   own leaf charges (with freed children folded in) plus the sum of its
   children's usage, which accounts for the residue a dying child keeps after
   its objcg was reparented.  tree_lock held. */
static int check_memcgs(struct bm_system *sys, char *buf, size_t len)
{
    int32_t nr_live = 0, nr_linked = 0;

    for (int32_t slot = 0; slot < sys->memcg_ids.nr_fresh; slot++) {
        struct mem_cgroup *m = sys->memcgs[slot];
        int32_t id = m ? m->id : -1;
        long sum = 0, ksum = 0;
        if (!m)
            continue;
        nr_live++;
        if (BM_HANDLE_SLOT(id) != slot || (m->parent && bm_memcg_lookup(sys, m->parent->id) != m->parent))
            BAD("memcg %d: in slot %d, or its parent is freed", id, slot);
        for (struct mem_cgroup *ch = m->first_child; ch; ch = ch->next_sibling) {
            if (ch->parent != m || bm_memcg_lookup(sys, ch->id) != ch)
                BAD("memcg %d: child %d is freed or not its own", id, ch->id);
            nr_linked++;
            sum += atomic_load(&ch->memory.usage);
            ksum += atomic_load(&ch->kmem.usage);
        }
        long usage = atomic_load(&m->memory.usage), kusage = atomic_load(&m->kmem.usage);
        if (usage < 0 || kusage < 0 || atomic_load(&m->memory.nr_underflows) ||
            atomic_load(&m->kmem.nr_underflows))
            BAD("memcg %d: counter underflow (memory %ld, kmem %ld)", id, usage, kusage);
        if (usage != atomic_load(&m->own_pages) + sum)
            BAD("memcg %d: memory usage %ld != own %ld + children %ld", id, usage,
                atomic_load(&m->own_pages), sum);
        if (kusage != atomic_load(&m->own_kmem_pages) + ksum)
            BAD("memcg %d: kmem usage %ld != own %ld + children %ld", id, kusage,
                atomic_load(&m->own_kmem_pages), ksum);
        if (atomic_load(&m->charged_pages) < 0 || atomic_load(&m->file_pages) < 0 ||
            atomic_load(&m->anon_pages) < 0)
            BAD("memcg %d: negative page ledger", id);
        if (atomic_load(&m->refcnt) <= 0)
            BAD("memcg %d: live with refcnt %ld", id, atomic_load(&m->refcnt));
    }
    if (nr_linked != nr_live - 1)
        BAD("memcg tree links %d children, the id table has %d live memcgs besides root",
            nr_linked, nr_live - 1);
    for (int32_t slot = 0; slot < sys->objcg_ids.nr_fresh; slot++) {
        struct obj_cgroup *o = sys->objcgs[slot];
        if (o && (BM_HANDLE_SLOT(o->id) != slot || atomic_load(&o->nr_charged_bytes) < 0 ||
                  atomic_load(&o->refcnt) <= 0))
            BAD("objcg %d (slot %d): nr_charged_bytes %ld refcnt %ld", o->id, slot,
                atomic_load(&o->nr_charged_bytes), atomic_load(&o->refcnt));
    }
    return 0;
}

/* a cpu's stocks stay within their bounds; its stock lock held */
static int check_stock(struct bm_system *sys, uint32_t cpu, char *buf, size_t len)
{
    const struct memcg_stock_pcp *st = &sys->cpus[cpu].stock;
    unsigned long batch = charge_batch(sys);
    unsigned long page = (unsigned long)page_size_of(sys);

    for (unsigned i = 0; i < sys->cfg.profile.nr_memcg_stock; i++) {
        /* root only before v6.15, through refill_stock(root) of kernel memory */
        if (st->cached[i] && mem_cgroup_is_root(st->cached[i]) &&
            (sys->cfg.profile.kmem_uncharge_skips_root || sys->cfg.profile.nr_memcg_stock > 1))
            BAD("cpu %u: page stock caches root", cpu);
        if (st->nr_pages[i] > batch || (!st->cached[i] && st->nr_pages[i]))
            BAD("cpu %u slot %u: %u pages (batch %lu)", cpu, i, st->nr_pages[i], batch);
    }
    /* v5.11 drains whenever the stock passes a page.  With the allow_uncharge
       rule a charge-path refill adds up to a page on top of less than one
       charge, and the largest charge through the stock is a percpu area:
       pcpu_obj_full_size(PCPU_MIN_UNIT_SIZE = 32 KiB) */
    unsigned long max_charge = 32768ul * sys->cfg.nr_cpus + 32768ul / 4 * 8;
    unsigned long bound = sys->cfg.profile.obj_stock_split_pages ? page + max_charge : page;
    for (int k = 0; k < 2; k++) {
        const struct obj_stock_pcp *os = &st->obj[k];
        if (os->nr_bytes > bound || (!os->cached_objcg && os->nr_bytes))
            BAD("cpu %u: object stock %d holds %u bytes", cpu, k, os->nr_bytes);
        if (k == OBJ_STOCK_IRQ && !sys->cfg.profile.obj_stock_task_irq_split && os->cached_objcg)
            BAD("cpu %u: irq object stock used without obj_stock_task_irq_split", cpu);
    }
    return 0;
}

#undef BAD

/* bm_system_check(): invariants 1-4 of DESIGN.md that the core can see */
int memcg_check(struct bm_system *sys, char *msg, size_t msglen)
{
    char buf[256] = "";
    int ret;

    pthread_mutex_lock(&sys->tree_lock);
    ret = check_memcgs(sys, buf, sizeof(buf));
    pthread_mutex_unlock(&sys->tree_lock);
    for (uint32_t cpu = 0; cpu < sys->cfg.nr_cpus && !ret; cpu++) {
        bm_cpu_lock(cpu_of(sys, (int)cpu));
        ret = check_stock(sys, cpu, buf, sizeof(buf));
        bm_cpu_unlock(cpu_of(sys, (int)cpu));
    }
    if (!ret && atomic_load(&sys->nr_objcg_release_warns)) {
        snprintf(buf, sizeof(buf), "obj_cgroup_release found %ld non page-aligned remainders",
                 atomic_load(&sys->nr_objcg_release_warns));
        ret = -EUCLEAN;
    }
    if (msg && msglen)
        snprintf(msg, msglen, "%s", buf);
    return ret;
}
