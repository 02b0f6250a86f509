/*
 * page_alloc.c - simulated page frames and a buddy allocator
 * (mm/page_alloc.c), with the memcg hooks of the page allocator:
 * __alloc_pages() charging __GFP_ACCOUNT pages through
 * __memcg_kmem_charge_page() and free_pages_prepare() uncharging them
 * through the memcg/objcg recorded in page->memcg_data.
 *
 * Model choices (simplifications of the kernel):
 *  - one zone, one node; orders 0..BM_MAX_ORDER (10);
 *  - frames are handed out lazily: free lists start empty and whole
 *    order-10 blocks are carved from the untouched frames above mm->top
 *    when the free lists run dry, so a large simulated RAM costs host memory
 *    only for the frames actually used (the frame array is calloc'ed);
 *  - freed blocks coalesce with their buddy like __free_one_page();
 *  - no watermarks, reclaim or OOM killer for global memory: when no block
 *    is left the allocation fails with -ENOMEM;
 *  - every frame but the first of a multi-page block is marked as a tail
 *    (kind BM_PAGE_TAIL, priv = head), also for non-__GFP_COMP allocations,
 *    so interior frees are caught.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm_internal.h"

/* ---- free lists (struct free_area) ---- */

static bool free_area_add(struct mm_state *mm, int order, uint64_t pfn)
{
    struct free_area *area = &mm->free_area[order];
    struct page *page = &mm->pages[pfn];

    if (area->nr_free == area->cap) {
        uint64_t ncap = area->cap ? area->cap * 2 : 64;
        uint64_t *n = realloc(area->pfns, ncap * sizeof(*n));
        if (!n)
            return false;   /* host OOM: the block is lost to the model, never corrupt */
        area->pfns = n;
        area->cap = ncap;
    }
    page->pad = (uint32_t)area->nr_free;    /* index in the vector (stand-in for page->lru) */
    area->pfns[area->nr_free++] = pfn;
    page->flags = PG_buddy;
    page->order = (uint8_t)order;
    page->kind = BM_PAGE_FREE;
    return true;
}

static void free_area_del(struct mm_state *mm, int order, uint64_t pfn)
{
    struct free_area *area = &mm->free_area[order];
    struct page *page = &mm->pages[pfn];
    uint64_t idx = page->pad;
    uint64_t last = area->pfns[--area->nr_free];

    area->pfns[idx] = last;
    mm->pages[last].pad = (uint32_t)idx;
    page->flags = 0;
    page->pad = 0;
}

/* Take a free block of exactly `order`, splitting a larger one if needed
   (mirrors __rmqueue_smallest() + expand(), mm/page_alloc.c).  Returns the
   pfn or UINT64_MAX. */
static uint64_t rmqueue(struct mm_state *mm, int order)
{
    int o;
    uint64_t pfn;

    for (o = order; o <= BM_MAX_ORDER; o++)
        if (mm->free_area[o].nr_free)
            break;
    if (o > BM_MAX_ORDER) {
        /* carve a fresh max-order block from the untouched frames */
        uint64_t block = 1ULL << BM_MAX_ORDER;
        uint64_t limit = mm->nr_pages & ~(block - 1);
        if (mm->top + block > limit)
            return UINT64_MAX;
        pfn = mm->top;
        mm->top += block;
        o = BM_MAX_ORDER;
    } else {
        struct free_area *area = &mm->free_area[o];
        pfn = area->pfns[area->nr_free - 1];
        free_area_del(mm, o, pfn);
    }
    while (o > order) {             /* expand(): give the upper halves back */
        o--;
        free_area_add(mm, o, pfn + (1ULL << o));
    }
    return pfn;
}

/* Return a block and merge it with free buddies (mirrors __free_one_page()). */
static void free_one_page(struct mm_state *mm, uint64_t pfn, int order)
{
    while (order < BM_MAX_ORDER) {
        uint64_t buddy = pfn ^ (1ULL << order);
        if (buddy >= mm->nr_pages)
            break;
        struct page *bp = &mm->pages[buddy];
        if (!(bp->flags & PG_buddy) || bp->order != order)
            break;
        free_area_del(mm, order, buddy);
        bp->order = 0;
        if (buddy < pfn)
            pfn = buddy;
        order++;
    }
    free_area_add(mm, order, pfn);
}

/*
 * __alloc_pages(): take 2^order frames; with __GFP_ACCOUNT charge them to the
 * current context (mirrors the memcg_kmem_charge_page() call of
 * __alloc_pages_nodemask() in v5.11 / __alloc_pages() today: if the charge
 * fails the pages are freed and the allocation fails).  Caller holds
 * sys->lock.  *err gets -ENOMEM on failure.
 */
struct page *__alloc_pages(struct bm_system *sys, int cpu, int order, uint32_t gfp, int *err)
{
    struct mm_state *mm = sys->mm;
    uint64_t pfn, nr, i;
    struct page *page;

    if (order < 0 || order > BM_MAX_ORDER) {
        /* the kernel WARNs (unless __GFP_NOWARN) and returns NULL for order >= MAX_ORDER */
        *err = -ENOMEM;
        return NULL;
    }
    pfn = rmqueue(mm, order);
    if (pfn == UINT64_MAX) {
        *err = -ENOMEM;
        return NULL;
    }
    nr = 1ULL << order;
    page = &mm->pages[pfn];
    page->kind = BM_PAGE_KMEM;
    page->order = (uint8_t)order;
    page->flags = (gfp & __GFP_COMP) && order ? PG_head | PG_compound : PG_head;
    page->memcg_data = 0;
    page->priv = NULL;
    page->pad = 0;
    for (i = 1; i < nr; i++) {       /* prep_compound_page() */
        struct page *t = page + i;
        t->kind = BM_PAGE_TAIL;
        t->order = (uint8_t)order;
        t->flags = 0;
        t->memcg_data = 0;
        t->priv = page;
    }
    mm->nr_used += nr;

    if (gfp & __GFP_ACCOUNT) {
        int ret = __memcg_kmem_charge_page(sys, cpu, page, gfp, order);
        if (ret) {
            __free_pages_ok(sys, cpu, page, order);
            *err = ret < 0 ? ret : -ENOMEM;
            return NULL;
        }
    }
    return page;
}

/*
 * __free_pages_ok(): uncharge a KMEM block through the owner recorded in
 * memcg_data, never the current context (mirrors free_pages_prepare() ->
 * __memcg_kmem_uncharge_page()), then give the frames back.  Caller holds
 * sys->lock and has already validated page/order.
 */
void __free_pages_ok(struct bm_system *sys, int cpu, struct page *page, int order)
{
    struct mm_state *mm = sys->mm;
    uint64_t nr = 1ULL << order, i;

    if (page->memcg_data && PageMemcgKmem(page))
        __memcg_kmem_uncharge_page(sys, cpu, page, order);
    page->memcg_data = 0;
    page->priv = NULL;
    for (i = 1; i < nr; i++) {
        struct page *t = page + i;
        t->kind = BM_PAGE_FREE;
        t->order = 0;
        t->flags = 0;
        t->priv = NULL;
        t->memcg_data = 0;
    }
    page->kind = BM_PAGE_FREE;
    page->flags = 0;
    mm->nr_used -= nr;
    free_one_page(mm, page_to_pfn(mm, page), order);
}

/* ---- set-up and teardown (called by mm_init.c) ---- */

/* The frame array and the free lists.  pfn 0 is reserved (as memblock
   reserves the first page on x86): it is never handed out, so no object sits
   at an address below PAGE_SIZE.  The rest of the first max-order block and
   the frames past the last whole block go to the free lists now; whole blocks
   are carved lazily by rmqueue(). */
int mm_page_alloc_init(struct mm_state *mm)
{
    uint64_t nr = mm->nr_pages, block = 1ULL << BM_MAX_ORDER;
    uint64_t first_end = nr < block ? nr : block, pfn;
    struct page *zero;

    /* reserved, not committed (MAP_NORESERVE): the host backs the frames as they
       are first touched, so a large simulated RAM costs only what is used */
    mm->pages_bytes = nr * sizeof(struct page);
    mm->pages = bm_table_alloc(mm->pages_bytes);
    if (!mm->pages)
        return -ENOMEM;
    zero = &mm->pages[0];
    zero->kind = BM_PAGE_KMEM;
    zero->flags = PG_head | PG_reserved;
    mm->nr_used = 1;
    for (pfn = 1; pfn < first_end;) {
        int o = 0;
        while (o < BM_MAX_ORDER && !(pfn & ((1ULL << (o + 1)) - 1)) &&
               pfn + (1ULL << (o + 1)) <= first_end)
            o++;
        free_area_add(mm, o, pfn);
        pfn += 1ULL << o;
    }
    if (nr >= block)
        mm->top = block;
    pfn = nr & ~(block - 1);
    if (pfn < block)
        pfn = nr;            /* the first block was handled above */
    while (pfn < nr) {
        int o = BM_MAX_ORDER;
        while (o > 0 && ((pfn & ((1ULL << o) - 1)) || pfn + (1ULL << o) > nr))
            o--;
        free_area_add(mm, o, pfn);
        pfn += 1ULL << o;
    }
    return 0;
}

void mm_page_alloc_destroy(struct mm_state *mm)
{
    for (int o = 0; o <= BM_MAX_ORDER; o++)
        free(mm->free_area[o].pfns);
    bm_table_free(mm->pages, mm->pages_bytes);
}

struct page *bm_pfn_to_page(struct bm_system *sys, uint64_t pfn)
{
    if (!sys || !sys->mm || pfn >= sys->mm->nr_pages)
        return NULL;
    return &sys->mm->pages[pfn];
}

/* ---- public entry points ---- */

/* What __free_pages(page, order) may be given: the head frame of a block
   that alloc_pages() returned, with its order; slab, large-kmalloc, vmalloc
   and reserved frames have their own free functions (or none).  NULL if pfn
   is anything else. */
struct page *alloc_pages_head(struct bm_system *sys, uint64_t pfn, int64_t order)
{
    struct page *page = bm_pfn_to_page(sys, pfn);

    if (!page || order < 0 || order > BM_MAX_ORDER || page->kind != BM_PAGE_KMEM ||
        !(page->flags & PG_head) || (page->flags & (PG_large_kmalloc | PG_vmalloc | PG_reserved)) ||
        page->order != order)
        return NULL;
    return page;
}

int bm_alloc_pages(bm_system *sys, int32_t cpu, int32_t order, uint32_t gfp, uint64_t *pfn)
{
    BM_RCU_READ_SECTION(sys, cpu);
    BM_USER_CALL(sys, cpu);
    struct page *page;
    int err = 0;

    if (!mm_args_ok(sys, cpu, gfp) || !pfn || order < 0)
        return -EINVAL;
    if (should_fail_alloc(sys))
        return -ENOMEM;
    pthread_mutex_lock(&sys->lock);
    page = __alloc_pages(sys, cpu, order, gfp, &err);
    if (page)
        *pfn = page_to_pfn(sys->mm, page);
    pthread_mutex_unlock(&sys->lock);
    return page ? 0 : err;
}

int bm_free_pages(bm_system *sys, int32_t cpu, uint64_t pfn, int32_t order)
{
    BM_RCU_READ_SECTION(sys, cpu);
    struct page *page;

    if (!mm_args_ok(sys, cpu, 0))
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    page = alloc_pages_head(sys, pfn, order);
    if (page)
        __free_pages_ok(sys, cpu, page, order);
    pthread_mutex_unlock(&sys->lock);
    return page ? 0 : -EINVAL;
}
