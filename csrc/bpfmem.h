/*
 * bpfmem.h - the whole C API of the pybpfmem accounting core.
 *
 * Everything between BEGIN CDEF and END CDEF is fed verbatim to cffi's
 * cdef() by pybpfmem/_build_core.py, so the Python binding and this header
 * cannot drift.  Keep that region to plain integer #defines, structs of
 * fixed-width fields and prototypes.
 *
 * Conventions:
 *  - Objects cross the FFI as integer handles (memcg ids, objcg ids, cache
 *    ids, pfns, simulated addresses) and are validated on every call.
 *  - Return values are 0 (or a non-negative result) on success and a
 *    negative Linux errno on failure, as in the kernel.
 *  - "cpu" arguments name the simulated CPU the call runs on; its per-cpu
 *    stocks and its context (task / interrupt / active memcg) are used.
 *  - Threads: every call may run concurrently with any other on the same
 *    system, from any thread (the core's locks are described at struct
 *    bm_system in internal.h), given that
 *      * calls naming the same cpu come from one thread at a time: that
 *        thread is the cpu, as kernel code runs with preemption off;
 *      * bm_system_free() runs after every other call on the system returned;
 *      * a bm_htab is used by one thread at a time.
 *    Charge paths on different cpus scale (per-cpu stocks, atomic counters);
 *    allocator calls and cgroup lifecycle calls serialise on one mutex.
 */
#ifndef BPFMEM_H
#define BPFMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* BEGIN CDEF */

#define BM_MAX_CPUS 1024

/* memcg_data flag bits (include/linux/memcontrol.h, enum memcg_data_flags) */
#define BM_MEMCG_DATA_OBJCGS 1
#define BM_MEMCG_DATA_KMEM 2
#define BM_MEMCG_DATA_FLAGS_MASK 3

/* gfp bits the core understands (include/linux/gfp_types.h values) */
#define BM_GFP_DMA 0x1
#define BM_GFP_RECLAIMABLE 0x10
#define BM_GFP_HIGH 0x20
#define BM_GFP_IO 0x40
#define BM_GFP_FS 0x80
#define BM_GFP_ZERO 0x100
#define BM_GFP_ATOMIC 0x200
#define BM_GFP_DIRECT_RECLAIM 0x400
#define BM_GFP_KSWAPD_RECLAIM 0x800
#define BM_GFP_WRITE 0x1000
#define BM_GFP_NOWARN 0x2000
#define BM_GFP_RETRY_MAYFAIL 0x4000
#define BM_GFP_NOFAIL 0x8000
#define BM_GFP_NORETRY 0x10000
#define BM_GFP_MEMALLOC 0x20000
#define BM_GFP_COMP 0x40000
#define BM_GFP_NOMEMALLOC 0x80000
#define BM_GFP_HARDWALL 0x100000
#define BM_GFP_THISNODE 0x200000
#define BM_GFP_ACCOUNT 0x400000
#define BM_GFP_VALID_MASK 0x7fffff

/* kmem_cache_create flags (include/linux/slab.h) */
#define BM_SLAB_RECLAIM_ACCOUNT 0x20000
#define BM_SLAB_ACCOUNT 0x4000000

/* memory events (enum memcg_memory_event, without the swap ones) */
#define BM_MEMCG_LOW 0
#define BM_MEMCG_HIGH 1
#define BM_MEMCG_MAX 2
#define BM_MEMCG_OOM 3
#define BM_MEMCG_OOM_KILL 4
#define BM_NR_EVENTS 5

/* memcg statistics items; _B items are bytes, the others pages */
#define BM_STAT_ANON 0
#define BM_STAT_FILE 1
#define BM_STAT_KERNEL 2
#define BM_STAT_SLAB_RECLAIMABLE_B 3
#define BM_STAT_SLAB_UNRECLAIMABLE_B 4
#define BM_STAT_PERCPU_B 5
#define BM_STAT_VMALLOC 6
#define BM_STAT_SOCK 7
#define BM_NR_STATS 8

/* memcg states */
#define BM_MEMCG_ONLINE 0
#define BM_MEMCG_DYING 1

/* what bm_memcg_write changes */
#define BM_WRITE_MAX 0          /* v2 memory.max / v1 memory.limit_in_bytes */
#define BM_WRITE_HIGH 1         /* memory.high */
#define BM_WRITE_LOW 2          /* memory.low */
#define BM_WRITE_MIN 3          /* memory.min */
#define BM_WRITE_KMEM_MAX 4     /* v1 memory.kmem.limit_in_bytes */
#define BM_WRITE_RESET_PEAK 5   /* v1 max_usage_in_bytes / v2 memory.peak */
#define BM_WRITE_RESET_FAILCNT 6
#define BM_WRITE_KMEM_RESET_PEAK 7
#define BM_WRITE_KMEM_RESET_FAILCNT 8
#define BM_WRITE_FORCE_EMPTY 9  /* v1 memory.force_empty */

/* page kinds reported by bm_page_info */
#define BM_PAGE_FREE 0
#define BM_PAGE_KMEM 1          /* alloc_pages() / large kmalloc / vmalloc backing */
#define BM_PAGE_SLAB 2
#define BM_PAGE_USER 3
#define BM_PAGE_TAIL 4          /* tail page of a compound allocation */

/* replay op codes (struct bm_op.op) */
#define BM_OP_CHARGE 1          /* handle = memcg, arg = nr_pages */
#define BM_OP_UNCHARGE 2        /* handle = memcg, arg = nr_pages */
#define BM_OP_KMALLOC 3         /* arg = size; result = address */
#define BM_OP_KFREE 4           /* arg = address */
#define BM_OP_VMALLOC 5         /* arg = size; result = address */
#define BM_OP_VFREE 6           /* arg = address */
#define BM_OP_ALLOC_PERCPU 7    /* arg = size (align 8); result = address */
#define BM_OP_FREE_PERCPU 8     /* arg = address */
#define BM_OP_ALLOC_PAGES 9     /* arg = order; result = pfn */
#define BM_OP_FREE_PAGES 10     /* handle = order, arg = pfn */
#define BM_OP_KFREE_RESULT 11   /* kfree the address returned by op number arg */
#define BM_OP_FREE_RESULT 12    /* vfree/free_percpu/free_pages the result of op number arg */

/*
 * Kernel-release switches.  A profile is data: pybpfmem/profiles.py fills
 * this from its table and the core only ever tests these fields.
 */
struct bm_profile {
    uint32_t charge_batch;          /* MEMCG_CHARGE_BATCH: 32 (<= v6.0) or 64 */
    uint32_t nr_memcg_stock;        /* page-stock slots per cpu: 1 (v5.x) or 7 (NR_MEMCG_STOCK) */
    uint32_t obj_stock_split_pages; /* 1: refill_obj_stock splits whole pages off and keeps the
                                       objcg cached (allow_uncharge rule); 0: v5.11 drains all */
    uint32_t kmem_page_objcg;       /* 1: KMEM pages record objcg (v5.13+); 0: memcg (v5.11) */
    uint32_t kmem_uncharge_via_stock; /* kmem page uncharges go through refill_stock */
    uint32_t drain_obj_stock_direct;  /* drain_obj_stock uncharges pages directly (current) */
    uint32_t failcnt_v1_only;       /* page_counter: track failcnt only for legacy cgroups */
    uint32_t clamp_underflow;       /* page_counter_cancel clamps a negative usage to 0 */
    uint32_t gfp_atomic_forces;     /* v5.11: __GFP_ATOMIC forces a charge before reclaim */
    uint32_t gfp_high_forces;       /* current: __GFP_HIGH forces on the nomem path */
    uint32_t max_event_on_force;    /* current: MEMCG_MAX raised on the force path too */
    uint32_t kmem_limit_enforced;   /* v1 kmem counter is try-charged (v5.11) */
    uint32_t kmalloc_cg_caches;     /* separate kmalloc-cg-* caches (v5.14+) */
    uint32_t percpu_ptr_overhead;   /* pcpu_obj_full_size adds the objcg pointer array */
    uint32_t large_kmalloc_memcg_stat; /* large kmalloc pages count in memcg slab stats (v5.12+) */
    uint32_t stat_kernel;           /* memory.stat has "kernel" (MEMCG_KMEM) */
    uint32_t stat_vmalloc;          /* memory.stat has "vmalloc" */
    uint32_t high_set_before_reclaim; /* memory.high is stored before the reclaim loop */
    uint32_t nospin_no_batch;       /* !gfpflags_allow_spinning charges exactly nr_pages */
    uint32_t kmem_uncharge_skips_root; /* obj_cgroup_uncharge_pages/drain_obj_stock leave root's
                                          counter alone (current); v5.11 uncharged it via the stock */
    uint32_t obj_stock_slab_stats;  /* the object stock caches NR_SLAB_*_B deltas
                                       (__account_obj_stock, v5.14+); v5.11 applies them at once */
};

struct bm_config {
    uint32_t nr_cpus;               /* possible cpus, 1..BM_MAX_CPUS */
    uint32_t page_size;             /* 4096, 16384 or 65536 */
    uint32_t cgroup_v1;             /* 1: legacy hierarchy (kmem counter, v1 events) */
    uint32_t oom_kill_current;      /* memcg OOM kills the charging task (else finds no victim) */
    uint64_t ram_pages;             /* simulated page frames */
    struct bm_profile profile;
};

typedef struct bm_system bm_system;

struct bm_page_counter_info {
    int64_t usage;
    int64_t max;
    int64_t high;
    int64_t low;
    int64_t min;
    int64_t emin;
    int64_t elow;
    int64_t min_usage;
    int64_t low_usage;
    int64_t children_min_usage;
    int64_t children_low_usage;
    int64_t watermark;
    int64_t local_watermark;
    int64_t failcnt;
};

struct bm_memcg_info {
    int32_t id;
    int32_t parent;                 /* -1 for root */
    int32_t state;                  /* BM_MEMCG_ONLINE / BM_MEMCG_DYING */
    int32_t refcnt;                 /* css references */
    int32_t objcg;                  /* the memcg's own objcg id, -1 if none */
    int32_t pad;
    struct bm_page_counter_info memory;
    struct bm_page_counter_info kmem;   /* v1 only; zeros on v2 */
    int64_t events[BM_NR_EVENTS];       /* hierarchical (memory.events) */
    int64_t events_local[BM_NR_EVENTS]; /* memory.events.local */
    int64_t stat[BM_NR_STATS];          /* recursive, as memory.stat prints */
    int64_t stat_local[BM_NR_STATS];
    int64_t stock_pages;            /* pages of this memcg cached in per-cpu page stocks */
    int64_t nr_pages_over_high;     /* throttle debt (memcg_nr_pages_over_high) not yet paid */
    int64_t file_pages;             /* own reclaimable pages */
};

struct bm_objcg_info {
    int32_t id;
    int32_t memcg;                  /* current objcg->memcg */
    int32_t refcnt;
    int32_t dead;                   /* percpu_ref killed (memcg offlined) */
    int64_t nr_charged_bytes;
    int64_t stock_bytes;            /* bytes cached for it in per-cpu object stocks */
};

struct bm_page_info {
    uint64_t memcg_data;            /* raw word; host pointer bits | flags */
    int32_t kind;                   /* BM_PAGE_* */
    int32_t order;                  /* order of the allocation the page heads */
    int32_t memcg;                  /* page_memcg_check() owner, -1 if none */
    int32_t objcg;                  /* objcg of a KMEM page (v5.13+), -1 if none */
    int32_t nr_objects;             /* slab: allocated objects */
    int32_t pad;
};

struct bm_cpu_stock_info {
    int32_t cached[8];              /* memcg ids per page-stock slot, -1 empty */
    int32_t nr_pages[8];
    int32_t cached_objcg;           /* -1 empty */
    int32_t nr_bytes;
    int64_t nr_slab_reclaimable_b;  /* slab stat deltas of cached_objcg not yet in its memcg's */
    int64_t nr_slab_unreclaimable_b;/* memory.stat (__account_obj_stock; 0 without the switch) */
};

/* why the last charge on a cpu failed (try_charge_memcg's nomem exits) */
#define BM_FAIL_NOBLOCK 1       /* gfp cannot direct-reclaim (GFP_NOWAIT, GFP_ATOMIC w/o force) */
#define BM_FAIL_NORETRY 2       /* __GFP_NORETRY: one reclaim and drain, then give up */
#define BM_FAIL_RETRY_MAYFAIL 3 /* __GFP_RETRY_MAYFAIL: reclaim retries exhausted, no OOM */
#define BM_FAIL_OOM 4           /* the memcg OOM killer ran and the charge still failed */
#define BM_FAIL_COSTLY 5        /* order above PAGE_ALLOC_COSTLY_ORDER: no OOM, give up */
#define BM_FAIL_KMEM_LIMIT 6    /* cgroup v1 memory.kmem.limit_in_bytes (v5.11) */

struct bm_charge_failure {
    int32_t memcg;                  /* whose limit failed (mem_over_limit); -1: none recorded */
    int32_t reason;                 /* BM_FAIL_* */
    int64_t nr_pages;               /* the charge that did not fit */
    int64_t usage;                  /* that counter's usage at the failure (pages) */
    int64_t max;                    /* its limit (pages) */
    uint32_t gfp;
    int32_t pad;
};

struct bm_op {
    uint8_t op;                     /* BM_OP_* */
    uint8_t pad0;
    uint16_t cpu;
    uint32_t gfp;
    int32_t handle;
    int32_t pad1;
    uint64_t arg;
};

/* system */
int bm_config_check(const struct bm_config *cfg);
bm_system *bm_system_new(const struct bm_config *cfg);
void bm_system_free(bm_system *sys);
int bm_system_nr_dying(bm_system *sys);
int bm_system_check(bm_system *sys, char *msg, size_t msglen);

/* memory cgroups; the root is id 0 */
int bm_memcg_create(bm_system *sys, int32_t parent);
int bm_memcg_offline(bm_system *sys, int32_t memcg);
int bm_memcg_get(bm_system *sys, int32_t memcg);
int bm_memcg_put(bm_system *sys, int32_t memcg);
int bm_memcg_info(bm_system *sys, int32_t memcg, struct bm_memcg_info *out);
int bm_memcg_write(bm_system *sys, int32_t memcg, int32_t what, int64_t pages);

/* per-cpu context: what `current` is on each simulated cpu */
int bm_set_task(bm_system *sys, int32_t cpu, int32_t memcg, int32_t active_memcg);
int bm_set_interrupt(bm_system *sys, int32_t cpu, int32_t in_interrupt);
int bm_set_active_memcg(bm_system *sys, int32_t cpu, int32_t memcg, int32_t *old);
int bm_take_oom_victim(bm_system *sys, int32_t cpu);
int bm_last_charge_failure(bm_system *sys, int32_t cpu, struct bm_charge_failure *out);
int bm_get_obj_cgroup_from_current(bm_system *sys, int32_t cpu, int32_t *objcg);
int bm_obj_cgroup_get(bm_system *sys, int32_t objcg);
int bm_obj_cgroup_put(bm_system *sys, int32_t objcg);
/* obj_cgroup_charge()/obj_cgroup_uncharge() of size bytes on a held objcg (tests, drivers) */
int bm_obj_cgroup_charge(bm_system *sys, int32_t cpu, int32_t objcg, uint32_t gfp, uint64_t size);
int bm_obj_cgroup_uncharge(bm_system *sys, int32_t cpu, int32_t objcg, uint64_t size);

/* page charging primitives */
int bm_try_charge(bm_system *sys, int32_t memcg, int64_t nr_pages, uint32_t gfp, int32_t cpu);
int bm_uncharge(bm_system *sys, int32_t memcg, int64_t nr_pages, int32_t cpu);
int bm_charge_user(bm_system *sys, int32_t memcg, int64_t nr_pages, uint32_t gfp, int32_t cpu, int32_t file);
int bm_uncharge_user(bm_system *sys, int32_t memcg, int64_t nr_pages, int32_t file);
int bm_drain_all_stock(bm_system *sys, int32_t root);
int bm_drain_local_stock(bm_system *sys, int32_t cpu);
int bm_stock_info(bm_system *sys, int32_t cpu, struct bm_cpu_stock_info *out);

/* kernel memory, charged in the context of `cpu` */
int bm_alloc_pages(bm_system *sys, int32_t cpu, int32_t order, uint32_t gfp, uint64_t *pfn);
int bm_free_pages(bm_system *sys, int32_t cpu, uint64_t pfn, int32_t order);
int bm_kmalloc(bm_system *sys, int32_t cpu, uint64_t size, uint32_t gfp, uint64_t *addr);
int bm_kfree(bm_system *sys, int32_t cpu, uint64_t addr);
int bm_ksize(bm_system *sys, uint64_t addr, uint64_t *size);
int bm_kmem_cache_create(bm_system *sys, uint64_t size, uint32_t flags, int32_t *cache);
int bm_kmem_cache_alloc(bm_system *sys, int32_t cpu, int32_t cache, uint32_t gfp, uint64_t *addr);
int bm_kmem_cache_free(bm_system *sys, int32_t cpu, int32_t cache, uint64_t addr);
int bm_vmalloc(bm_system *sys, int32_t cpu, uint64_t size, uint32_t gfp, uint64_t *addr);
int bm_vfree(bm_system *sys, int32_t cpu, uint64_t addr);
int bm_kvmalloc(bm_system *sys, int32_t cpu, uint64_t size, uint32_t gfp, uint64_t *addr);
int bm_kvfree(bm_system *sys, int32_t cpu, uint64_t addr);
int bm_alloc_percpu(bm_system *sys, int32_t cpu, uint64_t size, uint64_t align, uint32_t gfp, uint64_t *addr);
int bm_free_percpu(bm_system *sys, int32_t cpu, uint64_t addr);

/* inspection */
int bm_page_info(bm_system *sys, uint64_t pfn, struct bm_page_info *out);
int bm_obj_cgroup_of(bm_system *sys, uint64_t addr, int32_t *objcg, int32_t *memcg);
int bm_objcg_info(bm_system *sys, int32_t objcg, struct bm_objcg_info *out);
int64_t bm_ram_used_pages(bm_system *sys);

/* bulk paths: one C call for many operations; per-op results (address,
   pfn, 0 or -errno) go to results[i].  Returns the number of failed ops. */
int64_t bm_replay(bm_system *sys, const struct bm_op *ops, int64_t n, int64_t *results);
int64_t bm_kmalloc_bulk(bm_system *sys, int32_t cpu, const uint64_t *sizes, int64_t n, uint32_t gfp, uint64_t *addrs);
int64_t bm_kfree_bulk(bm_system *sys, int32_t cpu, const uint64_t *addrs, int64_t n, int64_t *results);

/* benchmark floors and thread scaling (csrc/bench.c); *ns_per_op gets the result.
   kind 0: plain per-cpu add; 1: uncontended atomic add; 2: `depth` atomic adds (a
   depth-d page_counter walk).  bm_bench_threads runs nthreads pthreads acting as cpus
   0..nthreads-1, each charging and uncharging one page of `memcg` `iters` times through
   the stock (direct = 0) or straight on the shared page counters (direct = 1). */
int bm_bench_floor(int32_t kind, int32_t depth, int64_t iters, double *ns_per_op);
int bm_bench_threads(bm_system *sys, int32_t nthreads, int32_t memcg, int32_t direct, int64_t iters, double *ns_per_op);

/* BPF hash map element store (csrc/htab_store.c): keys, values and the
   simulated addresses ("aux" words) of each element's allocations, in one
   open-addressing table with insertion order.  bm_htab_update() returns 1 when
   the caller must allocate the element and finish with bm_htab_commit(). */
#define BM_HTAB_MAX_AUX 4
#define BM_HTAB_ALLOC_NEW 1
#define BM_HTAB_ALLOC_REPLACE 2
#define BM_HTAB_LRU 4
#define BM_HTAB_MODE_MASK 7
typedef struct bm_htab bm_htab;
bm_htab *bm_htab_new(uint32_t key_size, uint32_t value_size, uint32_t naux, uint64_t max_entries, uint32_t mode);
void bm_htab_free(bm_htab *h);
int64_t bm_htab_count(const bm_htab *h);
int bm_htab_lookup(const bm_htab *h, const char *key, char *value, uint64_t *aux);
int bm_htab_update(bm_htab *h, const char *key, const char *value, uint64_t flags);
int bm_htab_commit(bm_htab *h, const char *key, const char *value, const uint64_t *aux, uint64_t *old_aux);
int bm_htab_delete(bm_htab *h, const char *key, uint64_t *aux);
int bm_htab_next_key(const bm_htab *h, const char *key, char *next);
int64_t bm_htab_all_new(const bm_htab *h, const char *keys, int64_t n);
int64_t bm_htab_insert_bulk(bm_htab *h, const char *keys, const char *values, const uint64_t *aux, int64_t n);
int64_t bm_htab_dump(const bm_htab *h, char *keys, char *values, uint64_t *aux, int64_t n);
int64_t bm_htab_host_bytes(const bm_htab *h);
/* kmallocs that stop at the first failure (alloc_bulk() of kernel/bpf/memalloc.c) */
int64_t bm_memalloc_bulk(bm_system *sys, int32_t cpu, uint64_t size, int64_t n, uint32_t gfp, uint64_t *addrs);

/* END CDEF */

#ifdef __cplusplus
}
#endif

#endif /* BPFMEM_H */
