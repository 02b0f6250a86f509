/*
 * stress_threads.c - N threads act as N simulated cpus and hammer one cgroup
 * tree at once: small charges through the per-cpu stock, charges above the
 * batch (direct), uncharges through refill_stock, user (anon and file) pages
 * charged and uncharged directly, local drains, and - because the middle
 * cgroup has a tight memory.max - reclaim of the shared page cache and
 * drain_all_stock() across every cpu from the failure path.  Afterwards every
 * thread returns what it charged, the stocks are drained, and every counter
 * must be exactly zero with bm_system_check() clean.  Run for a 5.11-like
 * profile (one stock slot, spinning lock) and a 6.18-like one (7 slots,
 * trylock).
 *
 * Tree churn runs at the same time: threads mkdir children of the middle
 * cgroup, charge them, rmdir them and hand the charge over to another
 * thread, whose uncharge (and local drain) drops a removed child's last
 * reference and so frees it while other threads mkdir its siblings; others
 * look up, pin and charge recent (live, dying or freed) handles and stale
 * generations of them.  This is the mkdir-against-free race of the memcg
 * tree: every removed child must end up freed (no dying memcg left) and the
 * tree must still agree with the id table (bm_system_check).  A freed
 * memcg's struct goes back to the host after a grace period while the other
 * threads read (the RCU of handles.c) and its id slot is reused: a last
 * phase makes more children than there are ids (MEM_CGROUP_ID_MAX) from
 * every thread at once, each charged, removed and uncharged, with lookups of
 * recent handles in between.
 *
 * A mkdir charges its memcg's structures to the middle cgroup
 * (mem_cgroup_alloc() under set_active_memcg(parent)), and they are freed
 * when the child is (the deferred __mem_cgroup_free(), before the struct's
 * grace period).  Shrinkers and kernel stacks run at the same time too:
 * threads allocate negative dentries (objects of a SLAB_RECLAIM_ACCOUNT
 * cache left on its memcg-aware list_lru) that the reclaim of other threads'
 * failing charges frees, and allocate and free kernel stacks (vmalloc,
 * per-page kmem charges).  drop_slab() frees the dentries left, and the end
 * state is checked exactly before the id-reuse phase.
 *
 * usage: stress_threads [nr_threads (1..64, default 4)] [iterations (default 20000)]
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpfmem.h"

#define GFP_KERNEL 0xcc0u
#define GFP_NOWAIT 0x800u
#define NR_CG 3
#define NR_HANDOFF 64
#define NR_RECENT 256
#define ID_SLOTS 65536                /* MEM_CGROUP_ID_MAX + 1 */

/* the tree churn shared by every thread of a run */
struct churn {
    int32_t parent;                   /* the middle cgroup: its children come and go */
    _Atomic int32_t recent[NR_RECENT]; /* handles of recent children (live, dying or freed) */
    _Atomic unsigned nr_made;
    _Atomic long handoff[NR_HANDOFF]; /* removed child's id * 16 + pages still charged; 0 = empty */
    int32_t *objcgs;                  /* the objcg handle of every child made (for parked_bytes) */
    long objcgs_cap;
    _Atomic long nr_objcgs;
};

struct worker {
    bm_system *sys;
    struct churn *churn;
    int32_t dentry_cache;     /* SLAB_RECLAIM_ACCOUNT cache with a list_lru */
    int cpu;
    long iters;
    int32_t cg[NR_CG];
    int64_t charged[NR_CG];   /* bm_try_charge ledger of this thread */
    int64_t anon[NR_CG];
    uint32_t batch;
    long failures;
    long mkdirs;              /* children made and removed */
    long handovers;           /* removed children's charges taken over from another thread */
    long dentries;            /* objects put on the LRU */
    long stacks;              /* kernel stacks allocated and freed */
    int error;
};

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* mkdir a child, charge it, rmdir it and hand the charge to another thread */
static int churn_mkdir(struct worker *w, int64_t nr)
{
    struct churn *ch = w->churn;
    struct bm_memcg_info info;
    int32_t id = bm_memcg_create(w->sys, ch->parent, w->cpu);
    int32_t seen;
    int rc;

    if (id == -ENOMEM) {        /* the parent could not take the structures' charge */
        w->failures++;
        return 0;
    }
    if (id < 0)
        return id;
    w->mkdirs++;
    if (bm_memcg_info(w->sys, id, &info))
        return -EIO;
    {
        long n = atomic_fetch_add(&ch->nr_objcgs, 1);
        if (n >= ch->objcgs_cap)
            return -EOVERFLOW;
        ch->objcgs[n] = info.objcg;
    }
    seen = (int32_t)atomic_fetch_add(&ch->nr_made, 1);
    atomic_store(&ch->recent[(uint32_t)seen % NR_RECENT], id);
    rc = bm_try_charge(w->sys, id, nr, GFP_KERNEL | BM_GFP_NORETRY, w->cpu);
    if (rc && rc != -ENOMEM)
        return rc;
    if (bm_memcg_offline(w->sys, id))
        return -EIO;
    if (rc)
        return 0;   /* nothing charged: the rmdir freed it */
    for (int i = 0; i < NR_HANDOFF; i++) {
        long empty = 0;
        if (atomic_compare_exchange_strong(&ch->handoff[i], &empty, (long)id * 16 + nr))
            return 0;
    }
    return bm_uncharge(w->sys, id, nr, w->cpu);   /* every slot taken: give it back here */
}

/* take a handed-over charge of a removed child and uncharge it here: the
   ledger's reference goes, and the local drain drops the stock's */
static int churn_uncharge(struct worker *w, uint64_t r)
{
    for (int i = 0; i < NR_HANDOFF; i++) {
        long v = atomic_exchange(&w->churn->handoff[(r + (uint64_t)i) % NR_HANDOFF], 0);
        if (v) {
            int rc = bm_uncharge(w->sys, (int32_t)(v / 16), v % 16, w->cpu);
            w->handovers++;
            if (!rc && (r & 1))
                rc = bm_drain_local_stock(w->sys, w->cpu);
            return rc;
        }
    }
    return 0;
}

/* negative dentries in cgroup k: current is a task there; reclaim (of this
   charge or another thread's) may free them at any time, so they are never
   freed here */
static int lru_objects(struct worker *w, int k, int64_t nr, uint32_t gfp)
{
    uint64_t addrs[8];
    int64_t got;
    int rc = bm_set_task(w->sys, w->cpu, w->cg[k], -1);

    if (rc)
        return rc;
    got = bm_kmem_cache_alloc_lru_bulk(w->sys, w->cpu, w->dentry_cache, gfp, nr, addrs);
    rc = bm_set_task(w->sys, w->cpu, -1, -1);
    if (got < 0)
        return (int)got;
    w->dentries += got;
    if (got < nr)
        w->failures++;
    return rc;
}

/* a kernel stack charged to cgroup k, freed at once */
static int task_stack(struct worker *w, int k)
{
    uint64_t addr;
    int rc = bm_task_stack_alloc(w->sys, w->cpu, w->cg[k], &addr);

    if (rc == -ENOMEM) {
        w->failures++;
        return 0;
    }
    if (rc)
        return rc;
    w->stacks++;
    return bm_task_stack_free(w->sys, w->cpu, addr);
}

/* a recent handle of the churn (live, dying or freed), or another
   generation of it: inspect it, pin it, charge it; -ENOENT is the only
   refusal a freed one may give, and what it names must be itself */
static int churn_lookup(struct worker *w, uint64_t r)
{
    struct bm_memcg_info info;
    int32_t id = atomic_load(&w->churn->recent[r % NR_RECENT]);
    int rc;

    if (id <= 0)
        return 0;
    if ((r >> 12) & 1)
        id ^= 1 << 16;                 /* a neighbouring generation of the slot */
    rc = bm_memcg_info(w->sys, id, &info);
    if (rc && rc != -ENOENT)
        return rc;
    if (!rc && info.id != id)
        return -EUCLEAN;
    rc = bm_memcg_get(w->sys, id);
    if (!rc)
        rc = bm_memcg_put(w->sys, id);
    if (rc && rc != -ENOENT)
        return rc;
    rc = bm_try_charge(w->sys, id, 1, GFP_NOWAIT, w->cpu);
    if (!rc)
        return bm_uncharge(w->sys, id, 1, w->cpu);
    return rc == -ENOENT || rc == -ENOMEM ? 0 : rc;
}

/* more children than ids, from every thread at once: mkdir, charge, rmdir,
   uncharge (the last reference: the child is freed, its id free again),
   lookups of recent handles between */
static void *reuse_main(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = 0x2545f4914f6cdd1dULL * ((uint64_t)w->cpu + 1u);

    for (long i = 0; i < w->iters && !w->error; i++) {
        uint64_t r = next_rand(&rng);
        int32_t id = bm_memcg_create(w->sys, w->churn->parent, w->cpu);
        unsigned seq;
        int rc;

        if (id < 0) {
            w->error = id;
            break;
        }
        w->mkdirs++;
        seq = atomic_fetch_add(&w->churn->nr_made, 1);
        atomic_store(&w->churn->recent[seq % NR_RECENT], id);
        rc = bm_try_charge(w->sys, id, 1, GFP_KERNEL | BM_GFP_NORETRY, w->cpu);
        if (rc && rc != -ENOMEM)
            w->error = rc;
        else if (bm_memcg_offline(w->sys, id))
            w->error = -EIO;
        else if (!rc && (rc = bm_uncharge(w->sys, id, 1, w->cpu)))
            w->error = rc;
        else if (!(r & 3))
            w->error = bm_drain_local_stock(w->sys, w->cpu);
        if (!w->error)
            w->error = churn_lookup(w, r >> 8);
    }
    if (!w->error)
        w->error = bm_drain_local_stock(w->sys, w->cpu);
    return NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)w->cpu + 1u) * 0x100000001b3ULL;

    for (long i = 0; i < w->iters && !w->error; i++) {
        uint64_t r = next_rand(&rng);
        int k = (int)(r % NR_CG);
        int op = (int)((r >> 8) % 22);
        int64_t nr = (int64_t)((r >> 16) % 8) + 1;
        uint32_t gfp = (r >> 24) & 1 ? GFP_KERNEL | BM_GFP_NORETRY : GFP_NOWAIT;
        int rc;

        if (op < 6) {                                  /* small charge via the stock */
            rc = bm_try_charge(w->sys, w->cg[k], nr, gfp, w->cpu);
            if (rc == 0)
                w->charged[k] += nr;
            else if (rc == -ENOMEM)
                w->failures++;
            else
                w->error = rc;
        } else if (op < 11) {                          /* uncharge through refill_stock */
            if (w->charged[k] >= nr) {
                rc = bm_uncharge(w->sys, w->cg[k], nr, w->cpu);
                if (rc)
                    w->error = rc;
                else
                    w->charged[k] -= nr;
            }
        } else if (op == 11) {                         /* above the batch: exact, direct */
            int64_t big = (int64_t)w->batch + nr;
            rc = bm_try_charge(w->sys, w->cg[k], big, GFP_KERNEL | BM_GFP_NORETRY, w->cpu);
            if (rc == 0) {
                rc = bm_uncharge(w->sys, w->cg[k], big, w->cpu);
                if (rc)
                    w->error = rc;
            } else if (rc != -ENOMEM) {
                w->error = rc;
            }
        } else if (op == 12) {                         /* user pages, direct uncharge */
            rc = bm_charge_user(w->sys, w->cg[k], nr, GFP_KERNEL | BM_GFP_NORETRY, w->cpu, 0);
            if (rc == 0)
                w->anon[k] += nr;
            else if (rc != -ENOMEM)
                w->error = rc;
        } else if (op == 13) {
            if (w->anon[k] >= nr) {
                rc = bm_uncharge_user(w->sys, w->cg[k], nr, 0);
                if (rc)
                    w->error = rc;
                else
                    w->anon[k] -= nr;
            }
        } else if (op == 14) {                         /* page cache others may reclaim */
            rc = bm_charge_user(w->sys, w->cg[k], nr, GFP_KERNEL | BM_GFP_NORETRY, w->cpu, 1);
            if (rc && rc != -ENOMEM)
                w->error = rc;
        } else if (op == 15) {
            rc = bm_drain_local_stock(w->sys, w->cpu);
            if (rc)
                w->error = rc;
        } else if (op == 16) {                         /* tree churn */
            w->error = churn_mkdir(w, nr);
        } else if (op == 17) {
            w->error = churn_uncharge(w, r >> 32);
        } else if (op == 18) {
            w->error = lru_objects(w, k, nr, gfp);
        } else if (op == 19) {
            w->error = task_stack(w, k);
        } else {
            w->error = churn_lookup(w, r >> 32);
        }
    }
    /* give everything back on this cpu */
    for (int k = 0; k < NR_CG && !w->error; k++) {
        if (w->charged[k] && bm_uncharge(w->sys, w->cg[k], w->charged[k], w->cpu))
            w->error = -EIO;
        if (w->anon[k] && bm_uncharge_user(w->sys, w->cg[k], w->anon[k], 0))
            w->error = -EIO;
    }
    /* and let go of every stock slot: one caching a removed child with no
       pages left keeps it dying (drain_all_stock skips empty slots) */
    if (!w->error)
        w->error = bm_drain_local_stock(w->sys, w->cpu);
    return NULL;
}

/* the bytes parked (nr_charged_bytes) on the objcgs memcg now holds: its own
   and those reparented to it (those of cg[] and of every churn child; a
   freed objcg's handle names nothing, whoever took its slot since) */
static int64_t parked_bytes(bm_system *sys, int32_t memcg, struct churn *ch)
{
    struct bm_objcg_info o;
    int64_t sum = 0;
    long n = atomic_load(&ch->nr_objcgs);

    for (long i = 0; i < n; i++)
        if (!bm_objcg_info(sys, ch->objcgs[i], &o) && o.memcg == memcg)
            sum += o.nr_charged_bytes;
    return sum;
}

static int run(const char *name, struct bm_config *cfg, int nthreads, long iters)
{
    struct bm_memcg_info info;
    struct worker w[64];
    pthread_t th[64];
    char msg[256];
    int32_t a, cg[NR_CG];
    bm_system *sys = bm_system_new(cfg);
    struct churn churn;
    long failures = 0, mkdirs = 0, handovers = 0, dentries = 0, stacks = 0;
    int32_t dentry_cache;
    int64_t dropped;

    if (!sys) {
        fprintf(stderr, "%s: bm_system_new failed\n", name);
        return 1;
    }
    if (bm_kmem_cache_create(sys, 192, BM_SLAB_ACCOUNT | BM_SLAB_RECLAIM_ACCOUNT, &dentry_cache)) {
        fprintf(stderr, "%s: kmem_cache_create failed\n", name);
        return 1;
    }
    a = bm_memcg_create(sys, 0, 0);
    cg[0] = a;
    cg[1] = bm_memcg_create(sys, a, 0);
    cg[2] = bm_memcg_create(sys, a, 0);
    /* tight enough that charges fail, reclaim and drain_all_stock run */
    if (bm_memcg_write(sys, a, BM_WRITE_MAX, (int64_t)cfg->profile.charge_batch * nthreads + 64)) {
        fprintf(stderr, "%s: memory.max write failed\n", name);
        return 1;
    }
    churn.parent = a;
    atomic_init(&churn.nr_made, 0);
    churn.objcgs_cap = (long)nthreads * iters + NR_CG;
    churn.objcgs = calloc((size_t)churn.objcgs_cap, sizeof(*churn.objcgs));
    if (!churn.objcgs) {
        fprintf(stderr, "%s: out of memory\n", name);
        return 1;
    }
    for (int k = 0; k < NR_CG; k++) {
        if (bm_memcg_info(sys, cg[k], &info))
            return 1;
        churn.objcgs[k] = info.objcg;
    }
    atomic_init(&churn.nr_objcgs, NR_CG);
    for (int i = 0; i < NR_RECENT; i++)
        atomic_init(&churn.recent[i], 0);
    for (int i = 0; i < NR_HANDOFF; i++)
        atomic_init(&churn.handoff[i], 0);
    for (int t = 0; t < nthreads; t++) {
        memset(&w[t], 0, sizeof(w[t]));
        w[t].sys = sys;
        w[t].churn = &churn;
        w[t].dentry_cache = dentry_cache;
        w[t].cpu = t;
        w[t].iters = iters;
        w[t].batch = cfg->profile.charge_batch;
        memcpy(w[t].cg, cg, sizeof(cg));
        if (pthread_create(&th[t], NULL, worker_main, &w[t])) {
            fprintf(stderr, "%s: pthread_create failed\n", name);
            return 1;
        }
    }
    for (int t = 0; t < nthreads; t++) {
        pthread_join(th[t], NULL);
        failures += w[t].failures;
        mkdirs += w[t].mkdirs;
        handovers += w[t].handovers;
        dentries += w[t].dentries;
        stacks += w[t].stacks;
        if (w[t].error) {
            fprintf(stderr, "%s: cpu %d: error %d\n", name, t, w[t].error);
            return 1;
        }
    }
    /* the charges of removed children nobody took over */
    for (int i = 0; i < NR_HANDOFF; i++) {
        long v = atomic_exchange(&churn.handoff[i], 0);
        if (v && bm_uncharge(sys, (int32_t)(v / 16), v % 16, 0)) {
            fprintf(stderr, "%s: handoff uncharge failed\n", name);
            return 1;
        }
    }
    /* the page cache left over (reclaim may have taken some) */
    for (int k = 0; k < NR_CG; k++) {
        if (bm_memcg_info(sys, cg[k], &info))
            return 1;
        if (info.file_pages && bm_uncharge_user(sys, cg[k], info.file_pages, 1)) {
            fprintf(stderr, "%s: file uncharge failed\n", name);
            return 1;
        }
    }
    /* the dentries reclaim left */
    dropped = bm_drop_slab(sys, 0);
    if (dropped < 0) {
        fprintf(stderr, "%s: drop_slab failed\n", name);
        return 1;
    }
    bm_drain_all_stock(sys, 0);
    for (int k = 0; k < NR_CG; k++) {
        int64_t kbytes, parked;
        if (bm_memcg_info(sys, cg[k], &info))
            return 1;
        /* a holds the structures of its children cg[1] and cg[2] (the churn's are
           freed): objcg charges in whole pages, the rest parked on its objcgs */
        kbytes = info.stat[BM_STAT_PERCPU_B] + info.stat[BM_STAT_SLAB_UNRECLAIMABLE_B];
        /* a's usage is hierarchical: it has the bytes parked on cg[1]'s and
           cg[2]'s objcgs too.  Those can be whole pages: drain_obj_stock() adds
           each drained remainder to nr_charged_bytes, and remainders drained on
           both cpus (a drain_all_stock() from the other cpu's reclaim) before a
           refill_obj_stock() adopts them add up past a page; such pages stay
           charged until a refill adopts them or obj_cgroup_release() uncharges
           them, in the kernel as here */
        parked = parked_bytes(sys, cg[k], &churn);
        for (int j = 1; k == 0 && j < NR_CG; j++)
            parked += parked_bytes(sys, cg[j], &churn);
        if (info.memory.usage * 4096 != kbytes + parked ||
            (k != 0 && kbytes) || (k == 0 && cfg->nr_memcg_allocs && !kbytes) ||
            info.stat[BM_STAT_SLAB_RECLAIMABLE_B] || info.stat[BM_STAT_KERNEL_STACK_B] ||
            info.stat[BM_STAT_ANON] || info.stat[BM_STAT_FILE] ||
            info.refcnt != (k == 0 ? 4 : 2)) {   /* base ref + the objcg's (+ a child's pin each) */
            fprintf(stderr, "%s: memcg %d: usage %lld kmem bytes %lld parked %lld reclaimable %lld "
                    "stack %lld anon %lld file %lld refcnt %d\n", name, cg[k],
                    (long long)info.memory.usage, (long long)kbytes, (long long)parked,
                    (long long)info.stat[BM_STAT_SLAB_RECLAIMABLE_B],
                    (long long)info.stat[BM_STAT_KERNEL_STACK_B], (long long)info.stat[BM_STAT_ANON],
                    (long long)info.stat[BM_STAT_FILE], info.refcnt);
            for (int c = 0; c < nthreads; c++) {
                struct bm_cpu_stock_info st;
                if (!bm_stock_info(sys, c, &st))
                    fprintf(stderr, "  cpu %d: page stock %d:%d obj stock %d:%d\n", c, st.cached[0],
                            st.nr_pages[0], st.cached_objcg, st.nr_bytes);
            }
            return 1;
        }
    }
    bm_memcg_offline(sys, cg[1]);
    bm_memcg_offline(sys, cg[2]);
    bm_drain_all_stock(sys, 0);
    {   /* their structures gone: a keeps only whole parked pages */
        int64_t parked = parked_bytes(sys, a, &churn);
        int64_t a_usage;
        if (bm_memcg_info(sys, a, &info) || info.stat[BM_STAT_PERCPU_B] ||
            info.stat[BM_STAT_SLAB_UNRECLAIMABLE_B] || parked % 4096 ||
            info.memory.usage * 4096 != parked) {
            fprintf(stderr, "%s: a keeps %lld pages (%lld parked bytes) after its children went\n",
                    name, (long long)info.memory.usage, (long long)parked);
            return 1;
        }
        a_usage = info.memory.usage;
        if (bm_memcg_info(sys, 0, &info) || info.memory.usage != a_usage) {
            fprintf(stderr, "%s: root usage %lld, a's %lld\n", name, (long long)info.memory.usage,
                    (long long)a_usage);
            return 1;
        }
    }
    if (bm_system_check(sys, msg, sizeof(msg))) {
        fprintf(stderr, "%s: bm_system_check: %s\n", name, msg);
        return 1;
    }
    /* id reuse: more children than ids in all, made by every thread at once
       (a's limit lifted: its children's structures are charged to it) */
    if (bm_memcg_write(sys, a, BM_WRITE_MAX, INT64_MAX / 65536)) {
        fprintf(stderr, "%s: memory.max write failed\n", name);
        return 1;
    }
    for (int t = 0; t < nthreads; t++) {
        w[t].iters = ID_SLOTS / nthreads + 1024;
        w[t].mkdirs = 0;
        if (pthread_create(&th[t], NULL, reuse_main, &w[t])) {
            fprintf(stderr, "%s: pthread_create failed\n", name);
            return 1;
        }
    }
    for (int t = 0; t < nthreads; t++) {
        pthread_join(th[t], NULL);
        mkdirs += w[t].mkdirs;
        if (w[t].error) {
            fprintf(stderr, "%s: id reuse, cpu %d: error %d\n", name, t, w[t].error);
            return 1;
        }
    }
    if (bm_system_nr_dying(sys) != 0 || bm_system_check(sys, msg, sizeof(msg))) {
        fprintf(stderr, "%s: after id reuse: %d dying, check: %s\n", name, bm_system_nr_dying(sys), msg);
        return 1;
    }
    bm_memcg_offline(sys, a);
    if (bm_system_nr_dying(sys) != 0) {
        fprintf(stderr, "%s: %d dying memcgs left\n", name, bm_system_nr_dying(sys));
        return 1;
    }
    bm_system_free(sys);
    free(churn.objcgs);
    printf("%s: %d threads x %ld ops ok (%ld ENOMEM, %ld children made and removed, %ld handed over, "
           "%ld dentries, %lld left to drop_slab, %ld stacks)\n",
           name, nthreads, iters, failures, mkdirs, handovers, dentries, (long long)dropped, stacks);
    return 0;
}

static void profile_511(struct bm_config *c)
{
    memset(c, 0, sizeof(*c));
    c->profile.charge_batch = 32;
    c->profile.nr_memcg_stock = 1;
    c->profile.gfp_atomic_forces = 1;
    c->profile.dying_task_forces = 1;
    c->profile.nofail_forces_before_oom = 1;
    c->profile.kmem_limit_enforced = 1;
    c->profile.objcg_release_via_stock = 1;
    c->profile.memcg_reclaim_counts_slab = 1;
    /* mem_cgroup_alloc()'s accounted structures of 5.11 */
    c->nr_memcg_allocs = 4;
    c->memcg_allocs[0] = (struct bm_alloc_spec){BM_ALLOC_PERCPU, 1120};
    c->memcg_allocs[1] = (struct bm_alloc_spec){BM_ALLOC_PERCPU, 1120};
    c->memcg_allocs[2] = (struct bm_alloc_spec){BM_ALLOC_PERCPU, 304};
    c->memcg_allocs[3] = (struct bm_alloc_spec){BM_ALLOC_PERCPU, 304};
}

/* 5.15: objcg KMEM pages with the v5.14-v5.17 task/irq object stocks */
static void profile_515(struct bm_config *c)
{
    memset(c, 0, sizeof(*c));
    c->profile = (struct bm_profile){
        .charge_batch = 32, .nr_memcg_stock = 1, .obj_stock_split_pages = 1,
        .kmem_page_objcg = 1, .clamp_underflow = 1, .gfp_atomic_forces = 1,
        .kmem_limit_enforced = 1, .kmalloc_cg_caches = 1, .large_kmalloc_memcg_stat = 1,
        .obj_stock_slab_stats = 1, .obj_stock_task_irq_split = 1, .objcg_release_via_stock = 1,
        .memcg_reclaim_counts_slab = 1, .shrinker_deferred_per_memcg = 1};
    c->nr_memcg_allocs = 2;         /* vmstats_percpu, per node lruvec_stats_percpu */
    c->memcg_allocs[0] = (struct bm_alloc_spec){BM_ALLOC_PERCPU, 2296};
    c->memcg_allocs[1] = (struct bm_alloc_spec){BM_ALLOC_PERCPU, 624};
}

static void profile_618(struct bm_config *c)
{
    memset(c, 0, sizeof(*c));
    c->profile = (struct bm_profile){
        .charge_batch = 64, .nr_memcg_stock = 7, .obj_stock_split_pages = 1,
        .kmem_page_objcg = 1, .drain_obj_stock_direct = 1, .failcnt_v1_only = 1,
        .clamp_underflow = 1, .gfp_high_forces = 1, .max_event_on_force = 1,
        .kmalloc_cg_caches = 1, .percpu_ptr_overhead = 1, .large_kmalloc_memcg_stat = 1,
        .stat_kernel = 1, .stat_vmalloc = 1, .nospin_no_batch = 1,
        .kmem_uncharge_skips_root = 1, .obj_stock_slab_stats = 1,
        .reclaim_target_unprotected = 1, .reclaim_partial_walk = 1,
        .shrinker_deferred_per_memcg = 1, .sb_scan_exact_total = 1, .kpagecgroup_folio = 1};
    c->nr_memcg_allocs = 5;
    c->memcg_allocs[0] = (struct bm_alloc_spec){BM_ALLOC_KMALLOC, 1712};
    c->memcg_allocs[1] = (struct bm_alloc_spec){BM_ALLOC_PERCPU, 1216};
    c->memcg_allocs[2] = (struct bm_alloc_spec){BM_ALLOC_PERCPU, 24};
    c->memcg_allocs[3] = (struct bm_alloc_spec){BM_ALLOC_KMALLOC, 792};
    c->memcg_allocs[4] = (struct bm_alloc_spec){BM_ALLOC_PERCPU, 528};
}

int main(int argc, char **argv)
{
    int nthreads = argc > 1 ? atoi(argv[1]) : 4;
    long iters = argc > 2 ? atol(argv[2]) : 20000;
    struct bm_config cfg;
    int rc = 0;

    if (nthreads < 1 || nthreads > 64 || iters < 1) {
        fprintf(stderr, "usage: %s [nr_threads 1..64] [iterations]\n", argv[0]);
        return 2;
    }
    static const struct { const char *name; void (*fill)(struct bm_config *); } profiles[] = {
        {"5.11", profile_511}, {"5.15", profile_515}, {"6.18", profile_618},
    };
    for (int v1 = 0; v1 <= 1; v1++) {
        for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++) {
            char name[16];
            profiles[i].fill(&cfg);
            cfg.nr_cpus = (uint32_t)nthreads;
            cfg.page_size = 4096;
            cfg.cgroup_v1 = (uint32_t)v1;
            cfg.ram_pages = 1 << 18;
            snprintf(name, sizeof(name), "%s/%s", profiles[i].name, v1 ? "v1" : "v2");
            rc |= run(name, &cfg, nthreads, iters);
        }
    }
    return rc;
}
