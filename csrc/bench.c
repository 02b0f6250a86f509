/*
 * bench.c - floors and thread-scaling loops for the benchmarks.
 *
 * The floors are the physical limits a charge path is compared against on
 * the same machine in the same run: a plain add (what a per-cpu stock hit
 * costs at best), an uncontended atomic add (one page_counter level) and d
 * atomic adds (a depth-d walk to the root).
 */
#include <stdlib.h>
#include <time.h>

#include "internal.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int bm_bench_floor(int32_t kind, int32_t depth, int64_t iters, double *ns_per_op)
{
    if (!ns_per_op || iters <= 0 || kind < 0 || kind > 2 || depth < 1 || depth > 64)
        return -EINVAL;
    /* volatile / atomics keep the compiler from folding the loops away */
    volatile long plain = 0;
    _Atomic long levels[64];
    for (int i = 0; i < 64; i++)
        atomic_init(&levels[i], 0);
    double t0 = now_ns();
    for (int64_t i = 0; i < iters; i++) {
        switch (kind) {
        case 0:
            plain = plain + 1;
            break;
        case 1:
            atomic_fetch_add_explicit(&levels[0], 1, memory_order_relaxed);
            break;
        default:
            for (int32_t d = 0; d < depth; d++)
                atomic_fetch_add_explicit(&levels[d], 1, memory_order_relaxed);
        }
    }
    *ns_per_op = (now_ns() - t0) / (double)iters;
    return 0;
}

/* one cache line per thread: the loop's own state must not be what the
   threads share (it was: rc was stored every op next to the other thread's) */
struct bench_thread {
    bm_system *sys;
    struct mem_cgroup *memcg;
    int32_t cpu;
    int32_t direct;
    int64_t iters;
    int rc;
} __attribute__((aligned(64)));

static void *bench_thread_fn(void *arg)
{
    struct bench_thread *t = arg;
    bm_system *sys = t->sys;
    struct mem_cgroup *memcg = t->memcg;
    int32_t id = memcg->id, cpu = t->cpu;
    int64_t iters = t->iters;
    int rc = 0;

    for (int64_t i = 0; i < iters && !rc; i++) {
        if (t->direct) {
            /* the shared-counter path: every op walks the hierarchy's atomics */
            page_counter_charge(&memcg->memory, 1);
            page_counter_uncharge(&memcg->memory, 1, true);
        } else {
            rc = bm_try_charge(sys, id, 1, GFP_KERNEL, cpu);
            if (!rc)
                rc = bm_uncharge(sys, id, 1, cpu);
        }
    }
    t->rc = rc;
    return NULL;
}

static int bench_run_threads(bm_system *sys, struct mem_cgroup *m, int32_t nthreads, int32_t direct,
                             int64_t iters, double *ns_per_op)
{
    if (mem_cgroup_is_root(m))
        return -EINVAL;
    struct bench_thread threads[64];
    pthread_t tids[64];
    double t0 = now_ns();
    int32_t started = 0;
    for (int32_t i = 0; i < nthreads; i++) {
        threads[i] = (struct bench_thread){sys, m, i, direct != 0, iters, 0};
        if (pthread_create(&tids[i], NULL, bench_thread_fn, &threads[i]))
            break;
        started++;
    }
    for (int32_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    double elapsed = now_ns() - t0;
    if (started < nthreads)
        return -EAGAIN;
    for (int32_t i = 0; i < nthreads; i++)
        if (threads[i].rc)
            return threads[i].rc;
    /* aggregate cost: wall time per charge+uncharge pair over all threads */
    *ns_per_op = elapsed / ((double)iters * (double)nthreads);
    return 0;
}

int bm_bench_threads(bm_system *sys, int32_t nthreads, int32_t memcg, int32_t direct, int64_t iters,
                     double *ns_per_op)
{
    BM_RCU_READ_SECTION(sys, -1);
    if (!sys || !ns_per_op || iters <= 0 || nthreads < 1 || (uint32_t)nthreads > sys->cfg.nr_cpus ||
        nthreads > 64)
        return -EINVAL;
    struct mem_cgroup *m = bm_memcg_lookup(sys, memcg);
    if (!m || !css_tryget(m))
        return -ENOENT;
    int ret = bench_run_threads(sys, m, nthreads, direct, iters, ns_per_op);
    css_put(m);
    return ret;
}
