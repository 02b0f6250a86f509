/*
 * internal.h - the memcg side of the core, shared by its C files: the
 * structures (named after the kernel's), the handle lookups and the
 * services of page_counter.c, memcontrol.c, charge_api.c and
 * memcg_inspect.c.  Python never sees this header; bpfmem.h is the API.
 * The allocator side is mm_internal.h.  docs/architecture.md lists what each
 * file holds.
 */
#ifndef BPFMEM_INTERNAL_H
#define BPFMEM_INTERNAL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "bpfmem.h"

/* The kernel's names for the gfp bits, used inside csrc/ only. */
#define __GFP_HIGH BM_GFP_HIGH
#define __GFP_ATOMIC BM_GFP_ATOMIC
#define __GFP_DIRECT_RECLAIM BM_GFP_DIRECT_RECLAIM
#define __GFP_KSWAPD_RECLAIM BM_GFP_KSWAPD_RECLAIM
#define __GFP_RECLAIM (__GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM)
#define __GFP_RETRY_MAYFAIL BM_GFP_RETRY_MAYFAIL
#define __GFP_NOFAIL BM_GFP_NOFAIL
#define __GFP_NORETRY BM_GFP_NORETRY
#define __GFP_ACCOUNT BM_GFP_ACCOUNT
#define __GFP_COMP BM_GFP_COMP
#define __GFP_NOWARN BM_GFP_NOWARN
#define __GFP_ZERO BM_GFP_ZERO
#define __GFP_RECLAIMABLE BM_GFP_RECLAIMABLE
#define __GFP_DMA BM_GFP_DMA
#define GFP_KERNEL (__GFP_RECLAIM | BM_GFP_IO | BM_GFP_FS)

#define MEMCG_DATA_OBJCGS BM_MEMCG_DATA_OBJCGS
#define MEMCG_DATA_KMEM BM_MEMCG_DATA_KMEM
#define MEMCG_DATA_FLAGS_MASK BM_MEMCG_DATA_FLAGS_MASK

#define MAX_RECLAIM_RETRIES 16
#define PAGE_ALLOC_COSTLY_ORDER 3
#define NR_MEMCG_STOCK_MAX 8
#define MEM_CGROUP_ID_MAX 65535       /* include/linux/memcontrol.h */

struct bm_system;

/* a large zeroed table, reserved from the host (MAP_NORESERVE) and backed as it
   is first touched: its cost follows use, and making one costs no memset (the
   id tables, the page frames); NULL when the host refuses (handles.c) */
void *bm_table_alloc(size_t bytes);
void bm_table_free(void *table, size_t bytes);

/* ---- handles.c: the lifetime of memcg and objcg handles ----
 *
 * A handle is a slot of the id table (its low 16 bits) and that slot's
 * generation (the 15 bits above).  A freed memcg's or objcg's slot is handed
 * out again with the next generation, so a stale handle never names a newer
 * object; a slot waits until BM_ID_QUARANTINE other slots were freed before it
 * is reused, so a handle could alias only after 32768 * BM_ID_QUARANTINE
 * creations.  (The kernel's ids are idr/xarray slots, reused at once: a kernel
 * pointer never outlives its object, a Python handle may.)
 */
#define BM_HANDLE_SLOT(h) ((h) & MEM_CGROUP_ID_MAX)
#define BM_HANDLE_GEN_SHIFT 16
#define BM_HANDLE_GEN_MASK 0x7fff
#define BM_ID_QUARANTINE 4096

struct bm_ids {
    int32_t nr_fresh;                 /* slots handed out at least once: 0 .. nr_fresh - 1 */
    int32_t nr_free;                  /* freed slots waiting in ring, oldest at head */
    int32_t head;
    int32_t *ring;                    /* MEM_CGROUP_ID_MAX + 1 entries */
    uint16_t *gen;                    /* each slot's generation for its current / next handle */
};
int bm_ids_init(struct bm_ids *ids);                  /* 0 or -ENOMEM */
void bm_ids_destroy(struct bm_ids *ids);
int32_t bm_ids_alloc(struct bm_ids *ids);             /* tree_lock held: a handle or -ENOSPC */
void bm_ids_free(struct bm_ids *ids, int32_t handle); /* tree_lock held */

/*
 * RCU, reduced to what freeing memcgs and objcgs needs.  The kernel frees a
 * memcg after a grace period (css_release() -> css_free_rwork_fn()) and an
 * objcg with kfree_rcu() (obj_cgroup_release()), so lock-free readers
 * (rcu_read_lock()) never meet freed memory.  Here every bm_* entry point is a
 * read-side section (BM_RCU_READ_SECTION): it counts itself in its cpu's
 * nr_readers, or in the system's nr_anon_readers for a call naming no cpu.  A
 * freed struct, already unlinked from every table and list, is queued
 * (call_rcu_free(), tree_lock held); its grace period has passed once every
 * counter was seen at zero at some moment after the unlink (not all at once: a
 * section that starts later cannot find the struct).  Sections leave through
 * bm_rcu_read_unlock(), which tries the reclaim (rcu_reclaim()) when something
 * is queued: reclamation is never waited for, and memory comes back as soon as
 * the readers of the moment have left.  A freed memcg with accounted
 * structures (mem_cgroup_alloc()'s) is queued only once css_free_work() has
 * freed them (memcontrol.c).
 */
struct rcu_head {
    struct rcu_head *next;
    void *obj;                        /* what to free() */
};

struct bm_rcu {
    atomic_flag lock;                 /* the reclaimer (a trylock: one at a time) */
    _Atomic int pending;              /* queued or waiting is non-empty */
    struct rcu_head *queued;          /* freed since the running grace period began (tree_lock) */
    struct rcu_head *waiting;         /* waiting for the running grace period (lock) */
    uint32_t nr_wait;                 /* lock: reader counters not yet seen at zero */
    uint8_t *wait;                    /* lock: per counter (nr_cpus + 1), 1 = not yet seen at zero */
};

/* mm/page_counter.c */
struct page_counter {
    _Atomic long usage;
    _Atomic long failcnt;
    _Atomic long emin;
    _Atomic long min_usage;
    _Atomic long children_min_usage;
    _Atomic long elow;
    _Atomic long low_usage;
    _Atomic long children_low_usage;
    _Atomic long watermark;
    _Atomic long local_watermark;
    _Atomic long min;
    _Atomic long low;
    _Atomic long high;
    _Atomic long max;
    bool protection_support;
    bool track_failcnt;
    struct page_counter *parent;
    _Atomic long nr_underflows;       /* model: WARN_ONCE("page_counter underflow") hits, for bm_system_check */
};

long page_counter_max_pages(unsigned page_size);   /* PAGE_COUNTER_MAX = LONG_MAX / PAGE_SIZE */
void page_counter_init(struct page_counter *c, struct page_counter *parent, long max,
                       bool protection_support, bool track_failcnt);
void page_counter_charge(struct page_counter *c, unsigned long nr_pages);
bool page_counter_try_charge(struct page_counter *c, unsigned long nr_pages,
                             struct page_counter **fail);
void page_counter_uncharge(struct page_counter *c, unsigned long nr_pages, bool clamp);
int page_counter_set_max(struct page_counter *c, unsigned long nr_pages);
void page_counter_set_min(struct page_counter *c, unsigned long nr_pages);
void page_counter_set_low(struct page_counter *c, unsigned long nr_pages);
void page_counter_set_high(struct page_counter *c, unsigned long nr_pages);
void page_counter_reset_watermark(struct page_counter *c);
/* emin / elow of counter for a reclaim of root's subtree (top-down walk) */
void page_counter_calculate_protection(struct page_counter *root, struct page_counter *counter,
                                       bool recursive);

/* include/linux/memcontrol.h: struct obj_cgroup */
struct obj_cgroup {
    int32_t id;
    _Atomic long refcnt;              /* percpu_ref, collapsed to one atomic */
    _Atomic bool dead;                /* percpu_ref_kill()ed at reparenting */
    struct mem_cgroup *_Atomic memcg;
    _Atomic long nr_charged_bytes;
    struct obj_cgroup *list_next;     /* on memcg->objcg_list once reparented (tree_lock) */
    _Atomic long ext_refs;            /* model: references held by Python (bm_obj_cgroup_get/put) */
    _Atomic bool released;            /* model: obj_cgroup_release() ran; the id is stale */
    struct bm_system *sys;
    struct rcu_head rcu;              /* kfree_rcu() */
};

/* include/linux/memcontrol.h: struct mem_cgroup (the parts we model) */
struct mem_cgroup {
    int32_t id;
    _Atomic int32_t state;            /* BM_MEMCG_ONLINE / BM_MEMCG_DYING, set under sys->lock */
    _Atomic long refcnt;              /* css refcount; the online base ref is one of them */
    struct bm_system *sys;
    struct mem_cgroup *parent;        /* fixed from creation on */
    struct page_counter memory;
    struct page_counter kmem;         /* cgroup v1 only */
    struct obj_cgroup *_Atomic objcg; /* NULL once offline */
    struct obj_cgroup *orig_objcg;    /* memcg_orig_objcg: the first objcg, pinned until freed */
    struct obj_cgroup *objcg_list;    /* objcgs reparented into this memcg (tree_lock) */
    _Atomic long memory_events[BM_NR_EVENTS];
    _Atomic long memory_events_local[BM_NR_EVENTS];
    _Atomic long stat[BM_NR_STATS];   /* local (own) statistics; memory.stat sums the subtree */
    _Atomic long file_pages;          /* reclaimable page cache charged here */
    _Atomic long anon_pages;
    _Atomic long charged_pages;       /* bm_try_charge ledger, so bm_uncharge can't underflow */
    struct mem_cgroup *first_child;   /* tree links (children include dying ones), in creation
                                         order as cgroup_create() links them: changed under */
    struct mem_cgroup *next_sibling;  /* tree_lock with release stores, read by load_child/_sibling */
    struct mem_cgroup *last_child;    /* tree_lock only */
    /* model bookkeeping (memcontrol.c) */
    _Atomic long own_pages;           /* net pages charged with this memcg's memory counter as the
                                         leaf (+ folded-in freed children): invariant 2 */
    _Atomic long own_kmem_pages;      /* same for the v1 kmem counter */
    _Atomic long user_pages;          /* anon + file; one css ref is held while non-zero */
    _Atomic int ext_refs;             /* references held by Python (bm_memcg_get/put) */
    /* mem_cgroup_alloc()'s accounted allocations (cfg.memcg_allocs order; 0:
       none), charged to the parent; freed by __mem_cgroup_free(), which the
       model runs in css_free_work() before the struct's grace period */
    uint64_t alloc_addrs[BM_MEMCG_ALLOC_MAX];
    struct mem_cgroup *css_free_next; /* on sys->css_free_list (tree_lock) */
    _Atomic long nr_lru_items;        /* objects on this memcg's list_lrus (slab.c, sys->lock) */
    struct rcu_head rcu;              /* freed after a grace period (css_free_rwork_fn()) */
};

/* mm/memcontrol.c: the per-cpu object stock (struct obj_stock of v5.14-v5.17,
   the object half of struct memcg_stock_pcp before and after, struct
   obj_stock_pcp of v6.16+) */
struct obj_stock_pcp {
    struct obj_cgroup *cached_objcg;
    unsigned int nr_bytes;
    /* __account_obj_stock() (obj_stock_slab_stats): NR_SLAB_[UN]RECLAIMABLE_B
       deltas of cached_objcg not yet applied to its memcg.  One node in the
       model, so no cached_pgdat: the deltas flush above PAGE_SIZE or on drain. */
    long nr_slab_reclaimable_b;
    long nr_slab_unreclaimable_b;
    /* model perf (no kernel field): spare references on cached_objcg, already
       counted in its refcnt, that slab objects allocated on this cpu take and
       objects freed here give back without an atomic.  The kernel's objcg
       reference is a percpu_ref whose get/put are per-cpu adds; this is the
       same saving with a plain atomic refcount.  Returned on drain. */
    unsigned int nr_objcg_refs;
};

#define OBJ_STOCK_TASK 0
#define OBJ_STOCK_IRQ 1          /* used with obj_stock_task_irq_split only */

/* mm/memcontrol.c: struct memcg_stock_pcp */
struct memcg_stock_pcp {
    struct mem_cgroup *cached[NR_MEMCG_STOCK_MAX];
    unsigned int nr_pages[NR_MEMCG_STOCK_MAX];
    unsigned int drain_idx;           /* round-robin eviction (deterministic stand-in for random) */
    long ledger[NR_MEMCG_STOCK_MAX];  /* model: bm_try_charge ledger pages held by this cpu for cached[i]
                                         (memcg->charged_pages + every cpu's share = the ledger); flushed
                                         to charged_pages whenever the slot is drained */
    /* the object stock: obj[OBJ_STOCK_TASK] in every profile; v5.14-v5.17
       (obj_stock_task_irq_split) keep task_obj and irq_obj apart */
    struct obj_stock_pcp obj[2];
};

/* One simulated cpu: its stocks and what runs on it.  Cache-line sized so
   two cpus driven by two threads never share a line.  The stock and
   last_failure are guarded by lock.  The context is set by the thread acting
   as this cpu; its fields are atomics (relaxed: each is a value of its own)
   because other threads read them (bm_memcg_info()) and a call naming this
   cpu may come from another thread: a free, a drain, an explicit-cpu charge
   (the charge then runs in whatever context the cpu has). */
struct bm_cpu {
    atomic_flag lock;                 /* local_lock / local_trylock of the stocks */
    _Atomic long nr_readers;          /* RCU read-side sections running on this cpu */
    struct memcg_stock_pcp stock;
    _Atomic int32_t in_interrupt;
    struct mem_cgroup *_Atomic task_memcg;        /* current's memcg; NULL = kthread / no mm */
    struct mem_cgroup *_Atomic task_active_memcg; /* current->active_memcg */
    struct mem_cgroup *_Atomic int_active_memcg;  /* per-cpu int_active_memcg */
    _Atomic int32_t oom_victim;       /* current was chosen by the memcg OOM killer (tsk_is_oom_victim) */
    _Atomic long memcg_nr_pages_over_high; /* current->memcg_nr_pages_over_high: unpaid throttle debt */
    struct bm_charge_failure last_failure; /* for error messages that name the limit (model only) */
} __attribute__((aligned(64)));

/* include/linux/mm_types.h: struct page, reduced to what accounting needs */
struct page {
    uint64_t memcg_data;              /* owner pointer | MEMCG_DATA_* flags */
    void *priv;                       /* slab pages: struct slab *; tails: head page */
    uint8_t kind;                     /* BM_PAGE_* */
    uint8_t order;
    uint16_t flags;
    uint32_t pad;
};

struct mm_state;                      /* page_alloc.c, slab.c, vmalloc.c, percpu.c */

/*
 * One simulated machine.  Locking, the one rule every shared structure
 * follows (lock order: lock, then a cpu's stock lock, then tree_lock):
 *
 *  lock       serialises what is not a charge path: the cgroup lifecycle
 *             (mkdir, rmdir and a memcg's online/dying state), cgroup file
 *             writes, and every allocator structure (sys->mm: frames, free
 *             lists, slabs and caches, list_lrus, vmalloc areas, percpu
 *             allocations).  It is recursive: reclaim frees the objects of
 *             reclaimable slab caches (shrink_slab()) under it, and reclaim
 *             runs inside charges that hold it (an allocator's) and charges
 *             that do not (bm_try_charge); no stock lock or tree_lock is
 *             held when reclaim takes it.
 *  tree_lock  guards every change to the memcg tree (first_child and
 *             next_sibling), the memcg and objcg id tables (their slots and
 *             the id allocators), the objcg lists (objcg_list, list_next) and
 *             the RCU queue.  It is innermost: a memcg is freed by whichever
 *             css_put() drops its last reference, on any path, charge paths
 *             with a stock lock held included; nothing that takes another
 *             lock runs under it.  Readers either hold it (a consistent view:
 *             memory.stat's subtree sum, bm_system_check) or read without a
 *             lock through seq_cst loads (bm_memcg_lookup(), bm_objcg_lookup(),
 *             load_child(), load_sibling(), an objcg's memcg) inside the RCU
 *             read-side section every entry point is (handles.c): a freed
 *             memcg or objcg is unlinked first and freed only after a grace
 *             period, so a lock-free reader may meet a stale entry, never
 *             freed memory.  A lock-free reader that keeps the memcg it found
 *             takes css_tryget(), which fails once the count reached zero.
 *  cpus[i].lock  guards that cpu's stocks; another thread that reads or
 *             drains them (drain_all_stock, bm_memcg_info, bm_stock_info, the
 *             checks) takes it too.  The rest of struct bm_cpu is the cpu's own
 *             (nr_readers, an atomic, excepted).
 *  rcu.lock   the reclaimer's trylock (handles.c); it takes tree_lock inside.
 *
 * Everything else shared is a C11 atomic: page counters, statistics, events,
 * refcounts, a memcg's state and objcg, an objcg's memcg.
 */
struct bm_system {
    struct bm_config cfg;
    unsigned int page_shift;
    long page_counter_max;
    struct bm_cpu *cpus;
    pthread_mutex_t lock;
    pthread_mutex_t tree_lock;
    struct mem_cgroup **memcgs;       /* slot -> memcg, MEM_CGROUP_ID_MAX + 1 slots */
    struct bm_ids memcg_ids;
    struct obj_cgroup **objcgs;       /* slot -> objcg, MEM_CGROUP_ID_MAX + 1 slots */
    struct bm_ids objcg_ids;
    struct bm_rcu rcu;
    _Atomic int nr_dying;
    struct mm_state *mm;
    atomic_flag percpu_charge_mutex;  /* drain_all_stock's mutex_trylock */
    _Atomic long nr_objcg_release_warns; /* obj_cgroup_release() found a non page-aligned remainder */
    _Atomic int64_t fail_nth;         /* test-only fault injector (bm_fail_nth_alloc), 0 = off */
    /* freed memcgs whose structures css_free_work() frees before their grace period (tree_lock) */
    struct mem_cgroup *css_free_list;
    _Atomic int nr_css_free_pending;
    /* RCU read-side sections of calls naming no cpu; its own cache line */
    _Atomic long nr_anon_readers __attribute__((aligned(64)));
};

static inline bool mem_cgroup_is_root(struct mem_cgroup *m) { return m->id == 0; }
static inline struct mem_cgroup *parent_mem_cgroup(struct mem_cgroup *m) { return m->parent; }
static inline struct bm_cpu *cpu_of(struct bm_system *sys, int cpu) { return &sys->cpus[cpu]; }
static inline long page_size_of(const struct bm_system *sys) { return (long)sys->cfg.page_size; }
static inline unsigned long charge_batch(const struct bm_system *sys) { return sys->cfg.profile.charge_batch; }
/* get_obj_stock() (v5.14-v5.17): with obj_stock_task_irq_split an interrupt
   uses the cpu's irq_obj and a task its task_obj; one object stock otherwise */
static inline struct obj_stock_pcp *get_obj_stock(const struct bm_system *sys, struct bm_cpu *c)
{
    bool irq = sys->cfg.profile.obj_stock_task_irq_split && c->in_interrupt;
    return &c->stock.obj[irq ? OBJ_STOCK_IRQ : OBJ_STOCK_TASK];
}
static inline struct mem_cgroup *load_child(struct mem_cgroup *m)
{
    return __atomic_load_n(&m->first_child, __ATOMIC_SEQ_CST);
}
static inline struct mem_cgroup *load_sibling(struct mem_cgroup *m)
{
    return __atomic_load_n(&m->next_sibling, __ATOMIC_SEQ_CST);
}
static inline bool bm_cpu_valid(const struct bm_system *sys, int32_t cpu)
{
    return cpu >= 0 && (uint32_t)cpu < sys->cfg.nr_cpus;
}
/* only gfp bits the core knows (BM_GFP_VALID_MASK) */
static inline bool bm_gfp_valid(uint32_t gfp)
{
    return !(gfp & ~(uint32_t)BM_GFP_VALID_MASK);
}
/* a cpu's stock lock: local_lock (spins) / local_trylock */
static inline bool bm_cpu_trylock(struct bm_cpu *c)
{
    return !atomic_flag_test_and_set_explicit(&c->lock, memory_order_acquire);
}
static inline void bm_cpu_lock(struct bm_cpu *c)
{
    while (!bm_cpu_trylock(c))
        ;
}
static inline void bm_cpu_unlock(struct bm_cpu *c)
{
    atomic_flag_clear_explicit(&c->lock, memory_order_release);
}
static inline bool bm_stock_trylock(struct bm_system *sys, int cpu) { return bm_cpu_trylock(cpu_of(sys, cpu)); }
static inline void bm_stock_unlock(struct bm_system *sys, int cpu) { bm_cpu_unlock(cpu_of(sys, cpu)); }

/* ---- memcg_data helpers (include/linux/memcontrol.h), the hot flag bit ops ---- */

static inline struct mem_cgroup *page_memcg(const struct page *page)
{
    /* user and KMEM pages of the v5.11 layout: mask the flags off */
    return (struct mem_cgroup *)(uintptr_t)(page->memcg_data & ~(uint64_t)MEMCG_DATA_FLAGS_MASK);
}
static inline bool PageMemcgKmem(const struct page *page)
{
    return (page->memcg_data & MEMCG_DATA_KMEM) != 0;
}
/* KMEM pages of the v5.13+ layout store an objcg */
static inline struct obj_cgroup *__page_objcg(const struct page *page)
{
    return (struct obj_cgroup *)(uintptr_t)(page->memcg_data & ~(uint64_t)MEMCG_DATA_FLAGS_MASK);
}

/* ---- memcontrol.c ---- */

/* css references: css_tryget() fails once the count reached zero */
void css_get(struct mem_cgroup *memcg);
bool css_tryget(struct mem_cgroup *memcg);
void css_put(struct mem_cgroup *memcg);
bool obj_cgroup_tryget(struct obj_cgroup *objcg);
void obj_cgroup_put(struct obj_cgroup *objcg);
void obj_cgroup_put_cpu(struct obj_cgroup *objcg, int cpu);
struct mem_cgroup *obj_cgroup_memcg(struct obj_cgroup *objcg);
struct mem_cgroup *next_descendant_pre(struct mem_cgroup *pos, struct mem_cgroup *root);
/* page_memcg_check / folio_memcg_check: tolerant owner lookup for any page */
struct mem_cgroup *page_memcg_check(struct bm_system *sys, const struct page *page);
void mod_memcg_state(struct mem_cgroup *memcg, int idx, long val);

/* the lifecycle: a new memcg under parent with its objcg (0, -ENOMEM,
   -ENOSPC), rmdir's offline work; sys->lock held */
int mem_cgroup_css_online(struct bm_system *sys, struct mem_cgroup *parent, uint64_t *alloc_addrs,
                          struct mem_cgroup **out);
void mem_cgroup_css_offline(struct bm_system *sys, struct mem_cgroup *memcg);
/* a cgroup file write, what = BM_WRITE_*; sys->lock held; 0 or -EBUSY */
int mem_cgroup_file_write(struct bm_system *sys, struct mem_cgroup *memcg, int32_t what, long pages);

/* vmscan.c: try_to_free_mem_cgroup_pages() on cpu; the pages reclaimed */
unsigned long try_to_free_mem_cgroup_pages(struct bm_system *sys, int cpu, struct mem_cgroup *memcg,
                                           unsigned long nr_pages, uint32_t gfp);
unsigned long drop_slab(struct bm_system *sys, int cpu);
/* slab.c: shrink_slab() of memcg's list_lrus (takes sys->lock); objects freed */
unsigned long shrink_slab(struct bm_system *sys, int cpu, uint32_t gfp, struct mem_cgroup *memcg, int priority);
/* slab.c: memcg_reparent_list_lrus() + reparent_shrinker_deferred(); sys->lock held */
void memcg_reparent_list_lrus(struct bm_system *sys, struct mem_cgroup *memcg, struct mem_cgroup *parent);
/* memcontrol.c services for vmscan.c */
void memcg_uncharge(struct bm_system *sys, struct mem_cgroup *memcg, unsigned long nr);
void memcg_memory_event(struct bm_system *sys, struct mem_cgroup *memcg, int event);
void user_pages_sub(struct mem_cgroup *m, long n);
/* current's state during one call, kept per calling thread (another thread may
   run an explicit-cpu charge or a free on the same cpu meanwhile):
   current->reclaim_state (slab pages freed during reclaim, NULL outside it) and
   how many calls of this thread that charge many times return to user
   later, once (over_high_defer()) */
extern _Thread_local unsigned long *bm_reclaim_state;
extern _Thread_local unsigned bm_over_high_deferred;
/* the return-to-user half of memory.high: pay the cpu's task's debt */
void mem_cgroup_handle_over_high(struct bm_system *sys, int cpu);
/* The return to user of a call that may charge: the memory.high debt its
   charges leave (set_notify_resume()) is paid once, at its end, after all it
   does: over_high_defer() at its start, return_to_user() at its end, which
   pays when it ends the outermost such call of this thread (sys NULL or cpu
   invalid: only ends it).  A bm_syscall_enter() makes several calls one. */
static inline void over_high_defer(void)
{
    bm_over_high_deferred++;
}
static inline void return_to_user(struct bm_system *sys, int cpu)
{
    if (bm_over_high_deferred && !--bm_over_high_deferred && sys && bm_cpu_valid(sys, cpu))
        mem_cgroup_handle_over_high(sys, cpu);
}
struct bm_user_call {
    struct bm_system *sys;
    int32_t cpu;
};
static inline struct bm_user_call bm_user_call_begin(struct bm_system *sys, int32_t cpu)
{
    over_high_defer();
    return (struct bm_user_call){sys, cpu};
}
static inline void bm_user_call_end(struct bm_user_call *u)
{
    return_to_user(u->sys, u->cpu);
}
/* an entry point that may charge: after BM_RCU_READ_SECTION (its end runs first) */
#define BM_USER_CALL(sys, cpu) \
    struct bm_user_call bm_user_call_ __attribute__((cleanup(bm_user_call_end), unused)) = \
        bm_user_call_begin(sys, cpu)
/* set_active_memcg() on cpu (int_active_memcg in interrupt context): the
   new one gets a reference, the old one is returned with its reference */
struct mem_cgroup *set_active_memcg(struct bm_system *sys, int cpu, struct mem_cgroup *memcg);
void restore_active_memcg(struct bm_system *sys, int cpu, struct mem_cgroup *old);
/* __mem_cgroup_free() of freed memcgs' accounted structures, on cpu, then
   their structs to the grace period; sys->lock held (css_free_work) or taken
   (css_free_flush) */
void css_free_work(struct bm_system *sys, int cpu);
void css_free_flush(struct bm_system *sys, int cpu);
/* mem_cgroup_alloc()'s accounted allocations charged to parent on cpu: 0
   with addrs[0..nr_memcg_allocs) filled, or -ENOMEM; sys->lock held */
int memcg_alloc_structs(struct bm_system *sys, int cpu, struct mem_cgroup *parent, uint64_t *addrs);

/* try_charge_memcg() (0 for root or NULL, like the try_charge() wrapper): 0 or -ENOMEM */
int try_charge(struct bm_system *sys, int cpu, struct mem_cgroup *memcg, uint32_t gfp,
               unsigned long nr_pages);
/* user pages, the caller holding a reference on memcg: 0 or -ENOMEM / 0 or
   -EINVAL (more than charged) */
int mem_cgroup_charge(struct bm_system *sys, int cpu, struct mem_cgroup *memcg, unsigned long nr_pages,
                      uint32_t gfp, bool file);
int mem_cgroup_uncharge(struct bm_system *sys, struct mem_cgroup *memcg, unsigned long nr_pages, bool file);
/* the page stock: refill_stock() (__refill_stock: cpu's stock lock held), drains */
void refill_stock(struct bm_system *sys, int cpu, struct mem_cgroup *memcg, unsigned long nr);
void __refill_stock(struct bm_system *sys, struct bm_cpu *c, struct mem_cgroup *memcg, unsigned long nr);
void drain_local_stock(struct bm_system *sys, int cpu);
void drain_all_stock(struct bm_system *sys, struct mem_cgroup *root);
/* pinned counters (model): a counter that holds one css reference while
   non-zero (the bm_try_charge ledger, user pages); ledger_sub fails, changing
   nothing, below n.  ledger_flush_slot(): a stock slot's ledger share back to
   its memcg's charged_pages, with that cpu's stock lock held. */
void ledger_add(_Atomic long *ledger, struct mem_cgroup *memcg, long n);
bool ledger_sub(_Atomic long *ledger, long n, bool *now_zero);
void ledger_flush_slot(struct memcg_stock_pcp *stock, unsigned i);

/* the allocators' hooks: the objcg current charges (reference taken; NULL
   when bypassed: memcg_kmem_bypass and the active-memcg rules), objcg
   charges, the slab hooks whole (charge + the object's objcg reference, and
   back) and KMEM pages; the charges return 0 or -ENOMEM */
struct obj_cgroup *get_obj_cgroup_from_current(struct bm_system *sys, int cpu);
int obj_cgroup_charge(struct bm_system *sys, int cpu, struct obj_cgroup *objcg, uint32_t gfp, size_t size);
void obj_cgroup_uncharge(struct bm_system *sys, int cpu, struct obj_cgroup *objcg, size_t size);
int memcg_slab_charge_get(struct bm_system *sys, int cpu, uint32_t gfp, size_t size, int idx,
                          struct obj_cgroup **objcgp);
void memcg_slab_uncharge_put(struct bm_system *sys, int cpu, struct obj_cgroup *objcg, size_t size, int idx);
int __memcg_kmem_charge_page(struct bm_system *sys, int cpu, struct page *page, uint32_t gfp, int order);
void __memcg_kmem_uncharge_page(struct bm_system *sys, int cpu, struct page *page, int order);

/* ---- the RCU read side (handles.c) ---- */

void rcu_reclaim(struct bm_system *sys);
/* every freed struct now, whatever the readers (bm_system_free: none is left) */
void rcu_barrier_free(struct bm_system *sys);
/* queue a struct unlinked from every table and list (tree_lock held) */
void call_rcu_free(struct bm_system *sys, struct rcu_head *head, void *obj);

struct bm_rcu_reader {
    struct bm_system *sys;
    _Atomic long *nr;
};
/* rcu_read_lock(): counted on cpu's counter (the anonymous one for an invalid
   cpu); a seq_cst increment, ordered before the section's loads */
static inline struct bm_rcu_reader bm_rcu_read_lock(struct bm_system *sys, int32_t cpu)
{
    struct bm_rcu_reader r = {sys, NULL};

    if (sys) {
        r.nr = bm_cpu_valid(sys, cpu) ? &sys->cpus[cpu].nr_readers : &sys->nr_anon_readers;
        atomic_fetch_add(r.nr, 1);
    }
    return r;
}
/* rcu_read_unlock(); then, outside the section, the reclaim of what waits */
static inline void bm_rcu_read_unlock(struct bm_rcu_reader *r)
{
    if (!r->nr)
        return;
    atomic_fetch_sub_explicit(r->nr, 1, memory_order_release);
    if (atomic_load_explicit(&r->sys->rcu.pending, memory_order_relaxed))
        rcu_reclaim(r->sys);
}
/* the read-side section of an entry point: to the end of the enclosing block */
#define BM_RCU_READ_SECTION(sys, cpu) \
    struct bm_rcu_reader bm_rcu_reader_ __attribute__((cleanup(bm_rcu_read_unlock), unused)) = \
        bm_rcu_read_lock(sys, cpu)

/* ---- handles (lock-free lookups: see the locking rule at struct bm_system) ---- */

/* memcg handle -> memcg; NULL if stale (inline: every charge op does it); no
   reference.  Inside a read-side section. */
static inline struct mem_cgroup *bm_memcg_lookup(struct bm_system *sys, int32_t id)
{
    struct mem_cgroup *m;

    if (!sys || id < 0)
        return NULL;
    m = __atomic_load_n(&sys->memcgs[BM_HANDLE_SLOT(id)], __ATOMIC_SEQ_CST);
    return m && m->id == id ? m : NULL;
}
/* memcg handle -> memcg, or -EINVAL (no system, negative id) / -ENOENT
   (no such memcg) */
static inline int bm_memcg_arg(struct bm_system *sys, int32_t id, struct mem_cgroup **out)
{
    if (!sys || id < 0)
        return -EINVAL;
    *out = bm_memcg_lookup(sys, id);
    return *out ? 0 : -ENOENT;
}
/* the same, with a css reference taken for the caller to css_put(); -ENOENT
   also for a memcg whose last reference is going */
static inline int bm_memcg_tryget_arg(struct bm_system *sys, int32_t id, struct mem_cgroup **out)
{
    int ret = bm_memcg_arg(sys, id, out);

    if (!ret && !css_tryget(*out))
        ret = -ENOENT;
    return ret;
}
/* objcg handle -> objcg; NULL if stale or released; no reference */
static inline struct obj_cgroup *bm_objcg_lookup(struct bm_system *sys, int32_t id)
{
    struct obj_cgroup *objcg;

    if (!sys || id < 0)
        return NULL;
    objcg = __atomic_load_n(&sys->objcgs[BM_HANDLE_SLOT(id)], __ATOMIC_SEQ_CST);
    if (!objcg || objcg->id != id || atomic_load(&objcg->released))
        return NULL;
    return objcg;
}

/* ---- charge_api.c ---- */

/* bm_replay's batched stock-hit path: refill_stock() of pages this cpu's
   ledger share covers, the caller holding cpu's stock lock; false = nothing
   changed, take the general path */
bool bm_uncharge_stock_locked(struct bm_system *sys, int cpu, struct mem_cgroup *memcg, unsigned long nr);

/* ---- memcg_inspect.c ---- */

/* invariants 1-4 for bm_system_check(); 0 or -EUCLEAN with a message */
int memcg_check(struct bm_system *sys, char *msg, size_t msglen);

#endif /* BPFMEM_INTERNAL_H */
