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
 *    negative Linux errno on failure, as in the kernel; each prototype says
 *    which (see "Return contracts" below).
 *  - "cpu" arguments name the simulated CPU the call runs on; its per-cpu
 *    stocks and its context (task / interrupt / active memcg) are used.
 *  - Threads: every call may run concurrently with any other on the same
 *    system, from any thread (the core's locks are described at struct
 *    bm_system in internal.h), given that
 *      * a cpu's context (bm_set_task, bm_set_interrupt, bm_set_active_memcg)
 *        is set by one thread at a time: the thread acting as that cpu, as
 *        kernel code runs with preemption off.  Other calls may name any cpu
 *        from any thread (a free, a drain, an explicit-cpu charge): the stocks
 *        take the cpu's lock and the context is read atomically, so such a
 *        charge runs in whatever context the cpu has;
 *      * bm_system_free() runs after every other call on the system returned;
 *      * a bm_htab is used by one thread at a time.
 *    Charge paths on different cpus scale (per-cpu stocks, atomic counters);
 *    allocator calls and cgroup lifecycle calls serialise on one mutex.  A
 *    freed memcg or objcg goes back to the host after a grace period (every
 *    call is an RCU read-side section, internal.h), and its id is reused with
 *    a new generation: a system's host memory stays flat over cgroup churn.
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
/* simulated RAM: frame numbers fit 32 bits, and the direct map is 64 TiB
   (the frame array is reserved, not committed: host memory follows use) */
#define BM_MAX_RAM_PAGES 4294967295
#define BM_MAX_RAM_BYTES 70368744177664

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
#define BM_STAT_KERNEL_STACK_B 8   /* NR_KERNEL_STACK_KB, kept in bytes */
#define BM_STAT_PGSCAN 9           /* PGSCAN_DIRECT: pages isolated by memcg reclaim (an event count) */
#define BM_STAT_PGSTEAL 10         /* PGSTEAL_DIRECT: pages reclaimed (an event count) */
#define BM_NR_STATS 11

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
 * Kernel-release switches.  A profile is data: pybpfmem/profiles/ fills
 * this from its table and the core only ever tests these fields.
 */
struct bm_profile {
    uint32_t charge_batch;          /* MEMCG_CHARGE_BATCH: 32 (<= v6.0) or 64 */
    uint32_t nr_memcg_stock;        /* page-stock slots per cpu: 1 (v5.x) or 7 (NR_MEMCG_STOCK) */
    uint32_t obj_stock_split_pages; /* 1: refill_obj_stock splits whole pages off and keeps the
                                       objcg cached (allow_uncharge rule); 0: v5.11 drains all */
    uint32_t kmem_page_objcg;       /* 1: KMEM pages record objcg (v5.13+); 0: memcg (v5.11) */
    uint32_t drain_obj_stock_direct;  /* drain_obj_stock uncharges pages directly (v6.16+) */
    uint32_t failcnt_v1_only;       /* page_counter: track failcnt only for legacy cgroups */
    uint32_t clamp_underflow;       /* page_counter_cancel clamps a negative usage to 0 */
    uint32_t gfp_atomic_forces;     /* v5.x: __GFP_ATOMIC forces a charge before reclaim */
    uint32_t dying_task_forces;     /* v5.11: a dying current forces (should_force_charge(),
                                       fatal signal after the retries, OOM finding no victim) */
    uint32_t nofail_forces_before_oom; /* v5.10/v5.11: __GFP_NOFAIL forces after the retries,
                                          before the memcg OOM */
    uint32_t gfp_high_forces;       /* v5.18+: __GFP_HIGH forces on the nomem path */
    uint32_t max_event_on_force;    /* v6.0+: MEMCG_MAX raised on the force path too */
    uint32_t kmem_limit_enforced;   /* v1 kmem counter is try-charged (<= v5.15) */
    uint32_t kmalloc_cg_caches;     /* separate kmalloc-cg-* caches (v5.14+) */
    uint32_t percpu_ptr_overhead;   /* pcpu_obj_full_size adds the objcg pointer array */
    uint32_t large_kmalloc_memcg_stat; /* large kmalloc pages count in memcg slab stats (v5.12+) */
    uint32_t stat_kernel;           /* memory.stat has "kernel" (MEMCG_KMEM) */
    uint32_t stat_vmalloc;          /* memory.stat has "vmalloc" */
    uint32_t nospin_no_batch;       /* !gfpflags_allow_spinning charges exactly nr_pages */
    uint32_t kmem_uncharge_skips_root; /* obj_cgroup_uncharge_pages/drain_obj_stock leave root's
                                          counter alone (v6.15+); before, via the stock */
    uint32_t obj_stock_slab_stats;  /* the object stock caches NR_SLAB_*_B deltas
                                       (__account_obj_stock, v5.14+); v5.11 applies them at once */
    uint32_t reclaim_target_unprotected; /* the reclaim target's own (stale) emin/elow are not
                                            checked (mem_cgroup_unprotected, v6.3) */
    uint32_t reclaim_partial_walk;  /* shrink_node_memcgs() stops once the goal is met, with a
                                       full-walk retry before giving up (v6.11) */
    uint32_t memcg_reclaim_counts_slab; /* slab pages freed by shrinkers count as reclaimed in
                                           memcg reclaim (reclaim_state; gone in v6.4) */
    uint32_t shrinker_deferred_per_memcg; /* do_shrink_slab(): per-memcg nr_deferred, scanned
                                             >> priority (v5.13); 0: one global count, windup clamps */
    uint32_t sb_scan_exact_total;   /* super_cache_scan() proportions without the "+ 1" (v6.16) */
    uint32_t kpagecgroup_folio;     /* page_cgroup_ino() reads the page's folio: a tail page
                                       reports its head's owner (v6.4) */
    uint32_t obj_stock_task_irq_split; /* v5.14-v5.17: two object stocks per cpu, one for task
                                          context and one for interrupts (get_obj_stock()) */
    uint32_t objcg_release_via_stock;  /* <= v6.15: obj_cgroup_release() returns the parked
                                          pages through the releasing cpu's page stock */
    uint32_t objcg_put_after_stock_drain; /* v5.19+: drain_local_stock() drops the drained
                                             objcg after drain_stock(); before, drain_obj_stock()
                                             dropped it before the page stock was drained */
    uint32_t sync_high_over_batch;  /* v5.18+: try_charge_memcg() pays a task's memory.high
                                       debt at once when it passes MEMCG_CHARGE_BATCH */
    uint32_t memcg_orig_objcg;      /* v6.7+: a memcg keeps a reference to its first objcg
                                       (memcg->orig_objcg) until __mem_cgroup_free() */
    uint32_t kvmalloc_any_gfp;      /* v5.17+: kvmalloc() falls back to vmalloc for any gfp
                                       that may block, and never passes __GFP_NOFAIL to kmalloc */
    uint32_t kvmalloc_kmalloc_no_reclaim; /* v6.16+: kvmalloc()'s kmalloc attempt above a
                                             page may not reclaim (was: __GFP_NORETRY) */
};

/* What mem_cgroup_alloc() allocates with GFP_KERNEL_ACCOUNT, charged to the
   parent (set_active_memcg(parent) in mem_cgroup_css_alloc()): filled from
   the profile's struct sizes, one entry per allocation, per-node ones
   repeated for each node (the model has one). */
#define BM_MEMCG_ALLOC_MAX 8
#define BM_ALLOC_KMALLOC 1          /* kzalloc(size, GFP_KERNEL_ACCOUNT) */
#define BM_ALLOC_PERCPU 2           /* alloc_percpu_gfp(type of size, GFP_KERNEL_ACCOUNT) */
struct bm_alloc_spec {
    uint32_t kind;                  /* BM_ALLOC_* */
    uint32_t size;
};

struct bm_config {
    uint32_t nr_cpus;               /* possible cpus, 1..BM_MAX_CPUS */
    uint32_t page_size;             /* 4096, 16384 or 65536 */
    uint32_t cgroup_v1;             /* 1: legacy hierarchy (kmem counter, v1 events) */
    uint32_t oom_kill_current;      /* memcg OOM kills the charging task (else finds no victim) */
    uint64_t ram_pages;             /* simulated page frames */
    struct bm_profile profile;
    uint32_t memory_recursiveprot;  /* cgroup2 mount option: recursive memory.min/low (v2 only) */
    uint32_t nr_memcg_allocs;       /* entries of memcg_allocs (0..BM_MEMCG_ALLOC_MAX) */
    struct bm_alloc_spec memcg_allocs[8];
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
    uint64_t struct_addrs[8];       /* mem_cgroup_alloc()'s accounted objects, in the order of
                                       bm_config.memcg_allocs (0: none, or freed) */
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
    int32_t memcg;                  /* page_memcg_check() owner (a tail: as page_cgroup_ino()
                                       sees it, see bm_page_info), -1 if none */
    int32_t objcg;                  /* objcg of a KMEM page (v5.13+) or of its head, -1 if none */
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
    /* the interrupt object stock (obj_stock_task_irq_split; -1 / 0 without the switch).
       The object-stock fields above are the task stock's (the only one otherwise). */
    int32_t irq_cached_objcg;
    int32_t irq_nr_bytes;
    int64_t irq_nr_slab_reclaimable_b;
    int64_t irq_nr_slab_unreclaimable_b;
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

/*
 * Return contracts.  Each prototype says what it returns on success and which
 * -errno for what.  Common to all and not repeated: -EINVAL for a NULL system
 * or a NULL out-pointer, a cpu outside 0..nr_cpus-1, a negative handle where a
 * handle is required, or gfp bits outside BM_GFP_VALID_MASK; -ENOENT for a
 * memcg or objcg handle that names nothing (never created, or freed: a handle
 * is an id slot and a generation, so a freed one is never renamed).  "pages" are counts of 1..PAGE_COUNTER_MAX
 * (LONG_MAX / page_size); anything else is -EINVAL.
 */

/* system */
/* 0, or -EINVAL for a field out of range: nr_cpus 1..BM_MAX_CPUS, page_size
   4096/16384/65536, nr_memcg_stock 1..7, charge_batch 1..127, ram_pages
   1..min(UINT32_MAX, 64 TiB / page_size), nr_memcg_allocs 0..8 of known kinds
   with sizes 1..2 * page_size (kmalloc) or 1..32 KiB (percpu) */
int bm_config_check(const struct bm_config *cfg);
/* the system, NULL if bm_config_check() refuses cfg or host memory ran out */
bm_system *bm_system_new(const struct bm_config *cfg);
/* frees everything (NULL: nothing); no call on sys may still be running */
void bm_system_free(bm_system *sys);
/* removed memcgs not yet freed (>= 0) */
int bm_system_nr_dying(bm_system *sys);
/* Test-only fault injection (the kernel's failslab / fail_page_alloc): with
   n > 0 the nth allocation from now on fails with -ENOMEM, once (an allocator
   call, accounted or not: kmalloc, kmem_cache_alloc, vmalloc, alloc_pages,
   alloc_percpu, each of the two tries of kvmalloc, each element of a bulk
   call or replay); n = 0 turns it off.  Returns how many were still to go
   before the failure (0: it fired, or it was off); -EINVAL for n < 0. */
int64_t bm_fail_nth_alloc(bm_system *sys, int64_t n);
/* 0 when every invariant holds; -EUCLEAN with the first broken one in msg
   (msg may be NULL) */
int bm_system_check(bm_system *sys, char *msg, size_t msglen);

/* memory cgroups; the root is id 0 */
/* mkdir, run on cpu (mem_cgroup_alloc()'s accounted structures are charged
   to the parent through that cpu's context): the new memcg's id (> 0);
   -ENOENT also for a removed parent, -ENOSPC once MEM_CGROUP_ID_MAX ids were
   handed out, -ENOMEM when the parent's charge fails or the host runs out.
   Like rmdir, file writes, memcg and objcg puts and drains, it first frees
   the structures of memcgs freed since (the deferred __mem_cgroup_free()). */
int bm_memcg_create(bm_system *sys, int32_t parent, int32_t cpu);
/* rmdir: 0, the memcg dying until its last reference goes; -EBUSY for root
   or while a child is online, -ENOENT also when already removed */
int bm_memcg_offline(bm_system *sys, int32_t memcg);
/* 0 with one css reference held for the caller; -ENOENT also for a memcg
   whose last reference is going */
int bm_memcg_get(bm_system *sys, int32_t memcg);
/* 0; -EINVAL for more puts than gets */
int bm_memcg_put(bm_system *sys, int32_t memcg);
/* 0 with *out filled (a removed but not yet freed memcg too) */
int bm_memcg_info(bm_system *sys, int32_t memcg, struct bm_memcg_info *out);
/* BM_MEMCG_ONLINE or BM_MEMCG_DYING; -ENOENT for a handle naming nothing (a freed
   memcg's), -EINVAL for a NULL system or a negative handle: the cheap question */
int bm_memcg_state(bm_system *sys, int32_t memcg);
/* 0; -EINVAL for an unknown `what`, limit pages outside 0..PAGE_COUNTER_MAX,
   a v1-only file on v2, root's limits or force_empty; -ENOENT also for a
   removed memcg; -EBUSY (v1) for a limit below a usage reclaim cannot lower */
int bm_memcg_write(bm_system *sys, int32_t memcg, int32_t what, int64_t pages);

/* per-cpu context: what `current` is on each simulated cpu; memcg -1 = none */
/* 0: the task on cpu is in memcg (-1: a kthread) with active_memcg */
int bm_set_task(bm_system *sys, int32_t cpu, int32_t memcg, int32_t active_memcg);
/* 0 */
int bm_set_interrupt(bm_system *sys, int32_t cpu, int32_t in_interrupt);
/* One system call of cpu's task, made by this thread: the memory.high debt
   its charges leave is paid once, at bm_syscall_exit(), the return to user
   (mem_cgroup_handle_over_high()).  Calls nest; the thread makes them all on
   one System (sys NULL at the exit: that System was closed, the call just
   ends).  0; -EINVAL for a bad cpu, or an exit without an enter */
int bm_syscall_enter(bm_system *sys, int32_t cpu);
int bm_syscall_exit(bm_system *sys, int32_t cpu);
/* 0 with the previous active memcg (-1: none) in *old */
int bm_set_active_memcg(bm_system *sys, int32_t cpu, int32_t memcg, int32_t *old);
/* 1 if the memcg OOM killer chose cpu's task since the last call, else 0
   (the flag is cleared) */
int bm_take_oom_victim(bm_system *sys, int32_t cpu);
/* 0 with the last failed charge on cpu in *out (memcg -1: none since the
   last call; the record is cleared) */
int bm_last_charge_failure(bm_system *sys, int32_t cpu, struct bm_charge_failure *out);
/* 0 with *objcg = the objcg current charges, a reference now held for the
   caller (bm_obj_cgroup_put), or -1 when the context is not charged */
int bm_get_obj_cgroup_from_current(bm_system *sys, int32_t cpu, int32_t *objcg);
/* 0 with a reference held for the caller; -ENOENT also for a released objcg */
int bm_obj_cgroup_get(bm_system *sys, int32_t objcg);
/* 0; -EINVAL for more puts than gets */
int bm_obj_cgroup_put(bm_system *sys, int32_t objcg);
/* obj_cgroup_charge()/obj_cgroup_uncharge() of size bytes (1..PAGE_COUNTER_MAX,
   else -EINVAL) on an objcg the caller holds (else -ENOENT), for tests and
   drivers: 0; the charge -ENOMEM over a limit */
int bm_obj_cgroup_charge(bm_system *sys, int32_t cpu, int32_t objcg, uint32_t gfp, uint64_t size);
int bm_obj_cgroup_uncharge(bm_system *sys, int32_t cpu, int32_t objcg, uint64_t size);

/* kernel stacks (kernel/fork.c): THREAD_SIZE bytes of vmalloc (max(16 KiB,
   PAGE_SIZE): x86_64), each page charged as KMEM to memcg, the forking
   task's (memcg_charge_kernel_stack()), and counted in NR_KERNEL_STACK_KB
   (account_kernel_stack()), through the context of cpu.  0 with the stack's
   address; -ENOMEM when the charge fails or no memory is left. */
int bm_task_stack_alloc(bm_system *sys, int32_t cpu, int32_t memcg, uint64_t *addr);
/* the task exits: the statistic back, the pages uncharged, the stack freed;
   0, or -EINVAL for anything but a stack bm_task_stack_alloc returned */
int bm_task_stack_free(bm_system *sys, int32_t cpu, uint64_t addr);

/* page charging primitives */
/* 0; -ENOMEM when a limit refuses and gfp cannot force (bm_last_charge_failure
   says why); -ENOENT also for a memcg whose last reference is going */
int bm_try_charge(bm_system *sys, int32_t memcg, int64_t nr_pages, uint32_t gfp, int32_t cpu);
/* 0; -EINVAL for more pages than bm_try_charge charged to memcg */
int bm_uncharge(bm_system *sys, int32_t memcg, int64_t nr_pages, int32_t cpu);
/* anon (file 0) or page-cache (file 1) pages: as bm_try_charge */
int bm_charge_user(bm_system *sys, int32_t memcg, int64_t nr_pages, uint32_t gfp, int32_t cpu, int32_t file);
/* 0; -EINVAL for more pages than are charged (page cache: or left after reclaim) */
int bm_uncharge_user(bm_system *sys, int32_t memcg, int64_t nr_pages, int32_t file);
/* 0 (returns at once while another drain_all_stock runs, as the kernel's trylock) */
int bm_drain_all_stock(bm_system *sys, int32_t root);
/* 0 */
int bm_drain_local_stock(bm_system *sys, int32_t cpu);
/* 0 with cpu's stocks in *out */
int bm_stock_info(bm_system *sys, int32_t cpu, struct bm_cpu_stock_info *out);

/* kernel memory, charged in the context of `cpu`.  Allocations return 0 with
   the result in the out-argument, or -ENOMEM: no simulated memory left, a
   size the allocator refuses (noted below), or a __GFP_ACCOUNT charge that
   failed.  Frees return 0, or -EINVAL for anything but what the matching
   allocation returned (double frees included); bm_kfree, bm_vfree,
   bm_kvfree and bm_free_percpu of NULL (0) are no-ops. */
/* *pfn = the first frame of 2^order; order > 10: -ENOMEM, negative: -EINVAL */
int bm_alloc_pages(bm_system *sys, int32_t cpu, int32_t order, uint32_t gfp, uint64_t *pfn);
/* the first frame of a bm_alloc_pages block, with its order */
int bm_free_pages(bm_system *sys, int32_t cpu, uint64_t pfn, int32_t order);
/* size 0 gives ZERO_SIZE_PTR (16); above KMALLOC_MAX_SIZE: -ENOMEM */
int bm_kmalloc(bm_system *sys, int32_t cpu, uint64_t size, uint32_t gfp, uint64_t *addr);
/* a kmalloc or kmem_cache object, or a large kmalloc (ZERO_SIZE_PTR too: no-op) */
int bm_kfree(bm_system *sys, int32_t cpu, uint64_t addr);
/* 0 with the object's usable size (0 for NULL / ZERO_SIZE_PTR); -EINVAL for
   anything but the start of an allocated object */
int bm_ksize(bm_system *sys, uint64_t addr, uint64_t *size);
/* 0 with the cache id; -EINVAL for flags beyond SLAB_ACCOUNT |
   SLAB_RECLAIM_ACCOUNT or size 0 or above KMALLOC_MAX_SIZE; -ENOMEM after
   65536 caches */
int bm_kmem_cache_create(bm_system *sys, uint64_t size, uint32_t flags, int32_t *cache);
/* -EINVAL for no such cache */
int bm_kmem_cache_alloc(bm_system *sys, int32_t cpu, int32_t cache, uint32_t gfp, uint64_t *addr);
/* -EINVAL also for an object of another cache */
int bm_kmem_cache_free(bm_system *sys, int32_t cpu, int32_t cache, uint64_t addr);
/* size 0 or above the simulated RAM: -ENOMEM */
int bm_vmalloc(bm_system *sys, int32_t cpu, uint64_t size, uint32_t gfp, uint64_t *addr);
/* the start of a vmalloc area */
int bm_vfree(bm_system *sys, int32_t cpu, uint64_t addr);
/* kmalloc, falling back to vmalloc above a page for GFP_KERNEL-compatible gfp */
int bm_kvmalloc(bm_system *sys, int32_t cpu, uint64_t size, uint32_t gfp, uint64_t *addr);
/* bm_vfree for a vmalloc address, else bm_kfree */
int bm_kvfree(bm_system *sys, int32_t cpu, uint64_t addr);
/* -EINVAL for size 0 or above 32 KiB, align above PAGE_SIZE or not a power of two */
int bm_alloc_percpu(bm_system *sys, int32_t cpu, uint64_t size, uint64_t align, uint32_t gfp, uint64_t *addr);
/* n (>= 1, else -EINVAL) areas of size bytes at *addr + i * ALIGN(size, align),
   charged and accounted as n bm_alloc_percpu calls (all or none: -ENOMEM gives
   back what was taken) but one allocation record: a BPF map's preallocated
   per-cpu values, whose host memory does not grow with n.  bm_free_percpu(*addr)
   frees them all. */
int bm_alloc_percpu_array(bm_system *sys, int32_t cpu, uint64_t size, uint64_t align, uint32_t gfp,
                          int64_t n, uint64_t *addr);
/* an address bm_alloc_percpu or bm_alloc_percpu_array returned */
int bm_free_percpu(bm_system *sys, int32_t cpu, uint64_t addr);

/* list_lrus of reclaimable caches (kmem_cache_create()d with
   SLAB_RECLAIM_ACCOUNT): objects on one are unused and freed by reclaim
   (the superblock shrinker's scan).  -EINVAL for another cache or an
   address that is not an allocated object of it. */
/* list_lru_add_obj(): 1 added (to the list of the memcg it is charged to), 0 already there */
int bm_list_lru_add(bm_system *sys, int32_t cache, uint64_t addr);
/* list_lru_del_obj(): 1 removed, 0 was not there */
int bm_list_lru_del(bm_system *sys, int32_t cache, uint64_t addr);
/* list_lru_count_one(): objects on memcg's list of the cache (>= 0) */
int64_t bm_list_lru_count(bm_system *sys, int32_t cache, int32_t memcg);
/* drop_slab() (echo 2 > /proc/sys/vm/drop_caches) on cpu: every memcg's
   shrinkers at priority 0 until a pass frees little; the objects freed */
int64_t bm_drop_slab(bm_system *sys, int32_t cpu);
/* n objects allocated on cpu and each put on the LRU (negative dentries:
   d_alloc() then the dput() that leaves them unused), stopping at the first
   failure: how many (addrs[0..ret-1]); -EINVAL as above or for n < 0 */
int64_t bm_kmem_cache_alloc_lru_bulk(bm_system *sys, int32_t cpu, int32_t cache, uint32_t gfp, int64_t n,
                                     uint64_t *addrs);

/* inspection */
/* 0 with the frame in *out; -EINVAL for a pfn beyond the simulated RAM */
int bm_page_info(bm_system *sys, uint64_t pfn, struct bm_page_info *out);
/* 0 with the objcg and memcg addr is charged to (-1/-1: not charged; either
   pointer may be NULL); -ENOENT for nothing allocated there, -EINVAL for an
   address outside every simulated range */
int bm_obj_cgroup_of(bm_system *sys, uint64_t addr, int32_t *objcg, int32_t *memcg);
/* 0 with *out filled; -ENOENT also for a released objcg */
int bm_objcg_info(bm_system *sys, int32_t objcg, struct bm_objcg_info *out);
/* simulated frames in use (>= 0; the reserved pfn 0 not counted) */
int64_t bm_ram_used_pages(bm_system *sys);

/* bulk paths: one C call for many operations.  Each returns the number of
   failed ops (>= 0), or -EINVAL for n < 0 or a NULL array with n > 0. */
/* results[i] = op i's address, pfn or 0, or its -errno (-4095..-1; an op
   with a bad cpu, gfp, padding or op code is -EINVAL) */
int64_t bm_replay(bm_system *sys, const struct bm_op *ops, int64_t n, int64_t *results);
/* addrs[i] = the object, 0 (NULL) for a failed one */
int64_t bm_kmalloc_bulk(bm_system *sys, int32_t cpu, const uint64_t *sizes, int64_t n, uint32_t gfp, uint64_t *addrs);
/* results[i] = bm_kfree's return (results may be NULL) */
int64_t bm_kfree_bulk(bm_system *sys, int32_t cpu, const uint64_t *addrs, int64_t n, int64_t *results);
/* kinds[i] 'k': kmalloc(sizes[i], gfp); 'p': alloc_percpu(sizes[i], 8, gfp); in
   order on cpu up to the first that fails: how many succeeded (addrs[0..ret-1]);
   -EINVAL for a bad cpu or gfp, a kind other than 'k'/'p' (nothing done), n < 0 or
   NULL arrays with n > 0 */
int64_t bm_allocs_until_fail(bm_system *sys, int32_t cpu, const uint8_t *kinds, const uint64_t *sizes,
                             int64_t n, uint32_t gfp, uint64_t *addrs);

/* benchmark floors and thread scaling (csrc/bench.c); *ns_per_op gets the result.
   kind 0: plain per-cpu add; 1: uncontended atomic add; 2: `depth` atomic adds (a
   depth-d page_counter walk).  bm_bench_threads runs nthreads pthreads acting as cpus
   0..nthreads-1, each charging and uncharging one page of `memcg` `iters` times through
   the stock (direct = 0) or straight on the shared page counters (direct = 1). */
/* 0; -EINVAL for kind outside 0..2, depth outside 1..64, iters <= 0 */
int bm_bench_floor(int32_t kind, int32_t depth, int64_t iters, double *ns_per_op);
/* 0; -EINVAL for nthreads outside 1..min(nr_cpus, 64), iters <= 0 or the
   root memcg, -ENOENT for any memcg handle naming nothing (negative too),
   -EAGAIN when a thread could not start, or a charge's error */
int bm_bench_threads(bm_system *sys, int32_t nthreads, int32_t memcg, int32_t direct, int64_t iters, double *ns_per_op);

/* BPF hash map element store (csrc/htab_store.c): keys, values and the
   simulated addresses ("aux" words) of each element's allocations, in one
   open-addressing table with insertion order.  bm_htab_update() returns 1 when
   the caller must allocate the element and finish with bm_htab_commit().
   A store is used by one thread at a time; every call is -EINVAL for a NULL
   or freed store or a NULL key/value where one is needed, and -ENOMEM when
   the host runs out. */
#define BM_HTAB_MAX_AUX 4
#define BM_HTAB_ALLOC_NEW 1
#define BM_HTAB_ALLOC_REPLACE 2
#define BM_HTAB_LRU 4
#define BM_HTAB_MODE_MASK 7
typedef struct bm_htab bm_htab;
/* the store; NULL for key_size 0 or above 1 MiB, value_size 0 or above 64 MiB,
   naux above BM_HTAB_MAX_AUX, unknown mode bits, or no host memory */
bm_htab *bm_htab_new(uint32_t key_size, uint32_t value_size, uint32_t naux, uint64_t max_entries, uint32_t mode);
void bm_htab_free(bm_htab *h);
/* live elements (>= 0) */
int64_t bm_htab_count(const bm_htab *h);
/* 0 with the value and aux words (either may be NULL); -ENOENT */
int bm_htab_lookup(const bm_htab *h, const char *key, char *value, uint64_t *aux);
/* 0 done; 1 allocate, then bm_htab_commit(); -EINVAL for bad flags, -EEXIST
   (BPF_NOEXIST), -ENOENT (BPF_EXIST), -E2BIG at max_entries */
int bm_htab_update(bm_htab *h, const char *key, const char *value, uint64_t flags);
/* 1 replaced (the old aux words in old_aux), 0 inserted */
int bm_htab_commit(bm_htab *h, const char *key, const char *value, const uint64_t *aux, uint64_t *old_aux);
/* 0 with the element's aux words in aux (may be NULL); -ENOENT */
int bm_htab_delete(bm_htab *h, const char *key, uint64_t *aux);
/* 0 with the key after key (NULL or absent: the first) in next; -ENOENT after the last */
int bm_htab_next_key(const bm_htab *h, const char *key, char *next);
/* 1 if none of the n keys (n < 2^31) is stored and none repeats, else 0 */
int64_t bm_htab_all_new(const bm_htab *h, const char *keys, int64_t n);
/* n after inserting n keys bm_htab_all_new() said are new (aux may be NULL;
   the store stays below 2^31 elements); -EEXIST if one was not (those
   before it stay) */
int64_t bm_htab_insert_bulk(bm_htab *h, const char *keys, const char *values, const uint64_t *aux, int64_t n);
/* how many of up to n elements were written, in insertion order (any array may be NULL) */
int64_t bm_htab_dump(const bm_htab *h, char *keys, char *values, uint64_t *aux, int64_t n);
/* host bytes the store holds */
int64_t bm_htab_host_bytes(const bm_htab *h);
/* LRU maps (mode BM_HTAB_LRU; csrc/bpf_lru_list.c): bm_htab_lru_init() sets up
   the LRU lists with max_entries free nodes (prealloc_init()); updates go
   through bm_htab_lru_update() (bm_htab_update(), _commit() and _insert_bulk()
   are -EINVAL on an LRU store), deletes through bm_htab_delete(). */
#define BM_HTAB_LRU_NO_COMMON 1          /* BPF_F_NO_COMMON_LRU: one LRU list per cpu */
#define BM_HTAB_LRU_PERCPU_VALUES 2      /* LRU_PERCPU_HASH: values of value_size / nr_cpus per cpu */
#define BM_HTAB_LRU_TARGET_FREE_CLAMP 4  /* switch lru_target_free_clamp */
#define BM_HTAB_LRU_FLAGS_MASK 7
/* enum bpf_lru_list_type (kernel/bpf/bpf_lru_list.h) */
#define BM_HTAB_LRU_ACTIVE 0
#define BM_HTAB_LRU_INACTIVE 1
#define BM_HTAB_LRU_FREE 2
#define BM_HTAB_LRU_LOCAL_FREE 3
#define BM_HTAB_LRU_LOCAL_PENDING 4
/* 0; -EINVAL for a store without BM_HTAB_LRU or already set up, unknown flags,
   nr_cpus outside 1..BM_MAX_CPUS, max_entries 0 or >= 2^31, with
   BM_HTAB_LRU_NO_COMMON max_entries not a multiple of nr_cpus, with
   BM_HTAB_LRU_PERCPU_VALUES value_size not a multiple of nr_cpus */
int bm_htab_lru_init(bm_htab *h, uint32_t nr_cpus, uint32_t flags);
/* htab_lru_map_update_elem() / __htab_lru_percpu_map_update_elem() on cpu:
   0; -EINVAL for an LRU store not set up, a bad cpu or flags > BPF_EXIST,
   -EEXIST (BPF_NOEXIST), -ENOENT (BPF_EXIST), -ENOMEM when no node is free.
   The node is taken before the flags are checked, so a failed update may
   still have evicted an element.  onallcpus 0 (a program's update of a
   per-cpu map) writes only cpu's part of the value. */
int bm_htab_lru_update(bm_htab *h, int32_t cpu, const char *key, const char *value, uint64_t flags, int32_t onallcpus);
/* a program's lookup: as bm_htab_lookup() (value may be NULL), and the
   element's node is marked referenced; -ENOENT */
int bm_htab_lru_lookup(bm_htab *h, const char *key, char *value);
/* the length of one LRU list: type BM_HTAB_LRU_ACTIVE / _INACTIVE / _FREE of the
   common list (cpu ignored) or, with BM_HTAB_LRU_NO_COMMON, of cpu's list, or
   BM_HTAB_LRU_LOCAL_FREE / _PENDING of cpu's local lists; the keys and ref bits of
   up to n of its nodes from head to tail in keys / refs (either may be NULL;
   free nodes write nothing); -EINVAL for a store not set up, a bad cpu or type */
int64_t bm_htab_lru_list(const bm_htab *h, int32_t cpu, int32_t type, char *keys, uint8_t *refs, int64_t n);
/* alloc_bulk() of kernel/bpf/memalloc.c: up to n kmallocs of size that stop
   at the first failure; how many succeeded (addrs[0..ret-1]), or -EINVAL for
   n < 0 or a NULL addrs with n > 0 */
int64_t bm_memalloc_bulk(bm_system *sys, int32_t cpu, uint64_t size, int64_t n, uint32_t gfp, uint64_t *addrs);

/* END CDEF */

#ifdef __cplusplus
}
#endif

#endif /* BPFMEM_H */
