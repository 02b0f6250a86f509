/*
 * mm_internal.h - the allocator side of the core (page_alloc.c, slab.c,
 * vmalloc.c, percpu.c, addr_map.c, mm_init.c, mm_inspect.c, replay.c): page
 * frames, the buddy free lists, slab caches, vmalloc areas and percpu
 * allocations.  Everything hangs off sys->mm (struct mm_state); nothing here
 * is global.
 *
 * Locking: every public allocator entry point takes sys->lock and then calls
 * the "__" helpers below, which assume it is held.  The charge services of
 * memcontrol.c are called with sys->lock held; they only take per-cpu stock
 * locks and never sys->lock.
 */
#ifndef BPFMEM_MM_INTERNAL_H
#define BPFMEM_MM_INTERNAL_H

#include "internal.h"

/* Highest buddy order.  v5.11 has MAX_ORDER = 11 (orders 0..10), today's
   kernel MAX_PAGE_ORDER = 10: the same largest block of 1024 pages.  We use
   it for every page size (simplified: arm64 with 64K pages uses 13). */
#define BM_MAX_ORDER 10

/* Simulated kernel virtual address ranges (x86_64 4-level layout). */
/* The direct map starts at 0 so that addr / PAGE_SIZE is the pfn (the API's
   virt_to_page contract); pfn 0 is reserved, as x86 reserves the first page,
   so no allocation is ever at an address below PAGE_SIZE (NULL and
   ZERO_SIZE_PTR stay distinct from real objects). */
#define BM_DIRECT_MAP_BASE 0ULL
#define BM_DIRECT_MAP_SIZE ((uint64_t)BM_MAX_RAM_BYTES) /* 64 TiB direct map */
#define BM_VMALLOC_START 0xffffc90000000000ULL      /* VMALLOC_START */
#define BM_VMALLOC_END 0xffffe8c000000000ULL        /* model: ends where our percpu range starts */
#define BM_PERCPU_START 0xffffe8c000000000ULL       /* model-only percpu address range */
#define BM_PERCPU_END 0xffffe90000000000ULL

#define ZERO_SIZE_PTR 16ULL                         /* include/linux/slab.h */
#define ZERO_OR_NULL_PTR(x) ((uint64_t)(x) <= ZERO_SIZE_PTR)

/* page->flags bits owned by the allocator files */
#define PG_head 0x1          /* first frame of an allocated block of 2^order frames */
#define PG_buddy 0x2         /* first frame of a free block on a free list (PageBuddy) */
#define PG_large_kmalloc 0x4 /* compound page returned by kmalloc_large() */
#define PG_vmalloc 0x8       /* backing page of a vmalloc area */
#define PG_slab 0x10         /* PageSlab */
#define PG_kstack 0x20       /* backing page of a task's kernel stack (fork.c) */
#define PG_compound 0x80     /* head of a __GFP_COMP allocation: its tails belong to its folio */
#define PG_reserved 0x40     /* PageReserved: pfn 0, never allocated or freed */

/* ---- page frames (page_alloc.c) ---- */

/* One vector of free block head pfns per order; page->pad holds a free
   head's index in it so a buddy can be unlinked in O(1) (stand-in for the
   kernel's page->lru list of struct free_area, mm/page_alloc.c). */
struct free_area {
    uint64_t *pfns;
    uint64_t nr_free;
    uint64_t cap;
};

/* Open-addressing map from a simulated address to a host object (vmalloc
   areas, percpu allocations).  Keys are never 0. */
struct addr_map {
    uint64_t *keys;
    void **vals;
    uint64_t cap;           /* power of two, 0 when unallocated */
    uint64_t nr;
};

#define NR_KMALLOC_TYPES 4   /* enum kmalloc_cache_type: NORMAL, RECLAIM, DMA, CGROUP */
#define KMALLOC_NORMAL 0
#define KMALLOC_RECLAIM 1
#define KMALLOC_DMA 2
#define KMALLOC_CGROUP 3
#define KMALLOC_SHIFT_LOW 3
#define KMALLOC_SHIFT_HIGH_MAX 17   /* PAGE_SHIFT + 1 for 64K pages */

struct kmem_cache;

struct mm_state {
    struct page *pages;           /* bm_table_alloc(): untouched frames cost no host memory */
    size_t pages_bytes;
    uint64_t nr_pages;
    uint64_t top;                 /* frames >= top were never handed out (carved lazily) */
    uint64_t nr_used;             /* frames allocated (bm_ram_used_pages) */
    unsigned page_shift;
    uint64_t page_size;
    struct free_area free_area[BM_MAX_ORDER + 1];

    /* slab */
    unsigned kmalloc_shift_high;  /* PAGE_SHIFT + 1 */
    uint64_t kmalloc_max_cache_size;
    uint64_t kmalloc_max_size;    /* page_size << BM_MAX_ORDER */
    struct kmem_cache *kmalloc_caches[NR_KMALLOC_TYPES][KMALLOC_SHIFT_HIGH_MAX + 1];
    struct kmem_cache **caches;   /* kmem_cache_create()d, indexed by cache id */
    int32_t nr_caches;
    int32_t cap_caches;
    unsigned min_objects;         /* calculate_order(): 4 * (fls(nr_cpus) + 1) */

    /* vmalloc */
    struct addr_map vmap;         /* area start -> struct vm_struct */
    uint64_t vmalloc_next;        /* bump allocator of the vmalloc range (no reuse) */

    /* percpu */
    struct addr_map pcpu;         /* address -> struct pcpu_alloc */
    uint64_t pcpu_next;
};

static inline uint64_t pfn_to_virt(const struct mm_state *mm, uint64_t pfn)
{
    return BM_DIRECT_MAP_BASE + (pfn << mm->page_shift);
}

/* virt_to_pfn(): returns false for addresses outside the simulated RAM */
static inline bool virt_to_pfn(const struct mm_state *mm, uint64_t addr, uint64_t *pfn)
{
    /* the subtraction wraps for addresses below the base, which the range check rejects */
    uint64_t p = (addr - BM_DIRECT_MAP_BASE) >> mm->page_shift;
    if (p >= mm->nr_pages)
        return false;
    *pfn = p;
    return true;
}

static inline uint64_t page_to_pfn(const struct mm_state *mm, const struct page *page)
{
    return (uint64_t)(page - mm->pages);
}

/* compound_head(): tails point at their head through priv */
static inline struct page *compound_head(struct page *page)
{
    if (page->kind == BM_PAGE_TAIL)
        return (struct page *)page->priv;
    return page;
}

static inline bool is_vmalloc_addr(uint64_t addr)
{
    return addr >= BM_VMALLOC_START && addr < BM_VMALLOC_END;
}

static inline bool is_percpu_addr(uint64_t addr)
{
    return addr >= BM_PERCPU_START && addr < BM_PERCPU_END;
}

static inline unsigned ilog2_u64(uint64_t v)
{
    return 63u - (unsigned)__builtin_clzll(v);
}

/* get_order(): smallest order with (page_size << order) >= size, size >= 1 */
static inline int get_order(const struct mm_state *mm, uint64_t size)
{
    uint64_t pages = (size - 1) >> mm->page_shift;
    return pages ? (int)ilog2_u64(pages) + 1 : 0;
}

/* the frames ever handed out: below mm->top, and the tail past the last
   whole max-order block (page_alloc.c carves whole blocks lazily) */
static inline uint64_t skip_untouched_pfns(const struct mm_state *mm, uint64_t pfn)
{
    uint64_t tail = mm->nr_pages & ~((1ULL << BM_MAX_ORDER) - 1);

    return pfn == mm->top && pfn < tail ? tail : pfn;
}
#define for_each_touched_pfn(mm, pfn) \
    for ((pfn) = 0; ((pfn) = skip_untouched_pfns(mm, pfn)) < (mm)->nr_pages; (pfn)++)

/* The argument check of every allocator entry point: a system, a cpu that
   exists and only gfp bits the core knows (frees pass gfp 0).  Pointer and
   size arguments are each entry point's own. */
static inline bool mm_args_ok(const struct bm_system *sys, int32_t cpu, uint32_t gfp)
{
    return sys && sys->mm && bm_cpu_valid(sys, cpu) && bm_gfp_valid(gfp);
}

/* The test-only fault injector (bm_fail_nth_alloc, the model's failslab /
   fail_page_alloc: should_failslab(), should_fail_alloc_page()): true when
   this allocation is the one to fail.  A relaxed load when off. */
static inline bool should_fail_alloc(struct bm_system *sys)
{
    int64_t v = atomic_load_explicit(&sys->fail_nth, memory_order_relaxed);

    while (v > 0 && !atomic_compare_exchange_weak(&sys->fail_nth, &v, v - 1))
        ;
    return v == 1;
}

/* page_alloc.c, sys->lock held */
struct page *__alloc_pages(struct bm_system *sys, int cpu, int order, uint32_t gfp, int *err);
void __free_pages_ok(struct bm_system *sys, int cpu, struct page *page, int order);
struct page *bm_pfn_to_page(struct bm_system *sys, uint64_t pfn);   /* NULL if out of range */
struct page *alloc_pages_head(struct bm_system *sys, uint64_t pfn, int64_t order);
int mm_page_alloc_init(struct mm_state *mm);                          /* 0 or -ENOMEM */
void mm_page_alloc_destroy(struct mm_state *mm);

/* slab.c, sys->lock held */
int __kmalloc(struct bm_system *sys, int cpu, uint64_t size, uint32_t gfp, uint64_t *addr);
int __kfree(struct bm_system *sys, int cpu, uint64_t addr);
int __kmalloc_obj_cgroup(struct bm_system *sys, uint64_t addr, struct obj_cgroup **objcg);
int32_t slab_nr_objects(const void *slab);   /* struct slab's inuse */
int slab_check(const void *slab, const struct page *head, char *msg, size_t msglen);
void mm_slab_init(struct mm_state *mm, uint32_t nr_cpus);
void mm_slab_destroy(struct mm_state *mm);

/* vmalloc.c, sys->lock held */
int __vmalloc(struct bm_system *sys, int cpu, uint64_t size, uint32_t gfp, uint64_t *addr);
int __vfree(struct bm_system *sys, int cpu, uint64_t addr);
int __kvmalloc(struct bm_system *sys, int cpu, uint64_t size, uint32_t gfp, uint64_t *addr);
int __kvfree(struct bm_system *sys, int cpu, uint64_t addr);
struct page *vmalloc_to_page(struct bm_system *sys, uint64_t addr);
struct page **vmalloc_area_pages(struct bm_system *sys, uint64_t addr, uint64_t *nr);
void mm_vmalloc_init(struct mm_state *mm);
void mm_vmalloc_destroy(struct mm_state *mm);

/* percpu.c, sys->lock held */
int __alloc_percpu(struct bm_system *sys, int cpu, uint64_t size, uint64_t align, uint32_t gfp, uint64_t *addr);
int __alloc_percpu_array(struct bm_system *sys, int cpu, uint64_t size, uint64_t align, uint32_t gfp,
                         uint64_t n, uint64_t *addr);
int __free_percpu(struct bm_system *sys, int cpu, uint64_t addr);
int __percpu_obj_cgroup(struct bm_system *sys, uint64_t addr, struct obj_cgroup **objcg);
void mm_percpu_init(struct mm_state *mm);
void mm_percpu_destroy(struct mm_state *mm);

/* mm_init.c: the whole of sys->mm, after bm_config_check() (0 or -ENOMEM) */
int bm_mm_init(struct bm_system *sys);
void bm_mm_destroy(struct bm_system *sys);

/* mm_inspect.c: invariant 5 (memcg_data vs page kind) + allocator
   bookkeeping for bm_system_check(); sys->lock held; 0 or -EUCLEAN */
int mm_check(struct bm_system *sys, char *msg, size_t msglen);

/* addr_map.c (no lock of its own: the owner's) */
void *addr_map_get(const struct addr_map *m, uint64_t key);
int addr_map_put(struct addr_map *m, uint64_t key, void *val);   /* 0, -EINVAL (key 0), -ENOMEM */
void *addr_map_del(struct addr_map *m, uint64_t key);             /* the value, NULL if absent */
void addr_map_free(struct addr_map *m);                           /* free()s every value too */

#endif /* BPFMEM_MM_INTERNAL_H */
