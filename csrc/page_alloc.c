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
    page->flags = PG_head;
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

/* ---- lifecycle ---- */

int bm_mm_init(struct bm_system *sys)
{
    struct mm_state *mm;
    uint32_t ps = sys->cfg.page_size;
    uint64_t nr = sys->cfg.ram_pages;

    if (ps < 4096 || (ps & (ps - 1)) || ps > 65536)
        return -EINVAL;
    /* the frame index lives in 32 bits (page->pad) and the direct map is 64 TiB */
    if (nr > UINT32_MAX || nr > (BM_DIRECT_MAP_SIZE / ps))
        return -EINVAL;
    mm = calloc(1, sizeof(*mm));
    if (!mm)
        return -ENOMEM;
    mm->page_size = ps;
    mm->page_shift = ilog2_u64(ps);
    mm->nr_pages = nr;
    mm->pages = calloc(nr ? nr : 1, sizeof(struct page));
    if (!mm->pages) {
        free(mm);
        return -ENOMEM;
    }
    /* pfn 0 is reserved (as memblock reserves the first page on x86): it is
       never handed out, so no object sits at an address below PAGE_SIZE.  The
       rest of the first max-order block and the frames past the last whole
       block go to the free lists now; whole blocks are carved lazily. */
    {
        uint64_t block = 1ULL << BM_MAX_ORDER;
        struct page *zero = &mm->pages[0];
        zero->kind = BM_PAGE_KMEM;
        zero->flags = PG_head | PG_reserved;
        mm->nr_used = 1;
        uint64_t first_end = nr < block ? nr : block;
        for (uint64_t pfn = 1; pfn < first_end;) {
            int o = 0;
            while (o < BM_MAX_ORDER && !(pfn & ((1ULL << (o + 1)) - 1)) &&
                   pfn + (1ULL << (o + 1)) <= first_end)
                o++;
            free_area_add(mm, o, pfn);
            pfn += 1ULL << o;
        }
        if (nr >= block)
            mm->top = block;
        uint64_t pfn = nr & ~(block - 1);
        if (pfn < block)
            pfn = nr;            /* the first block was handled above */
        while (pfn < nr) {
            int o = BM_MAX_ORDER;
            while (o > 0 && ((pfn & ((1ULL << o) - 1)) || pfn + (1ULL << o) > nr))
                o--;
            free_area_add(mm, o, pfn);
            pfn += 1ULL << o;
        }
    }
    mm->kmalloc_shift_high = mm->page_shift + 1;
    mm->kmalloc_max_cache_size = 1ULL << mm->kmalloc_shift_high;
    mm->kmalloc_max_size = (uint64_t)ps << BM_MAX_ORDER;
    {
        /* calculate_order(): min_objects = 4 * (fls(nr_cpu_ids) + 1) */
        uint32_t cpus = sys->cfg.nr_cpus ? sys->cfg.nr_cpus : 1;
        unsigned fls = 32u - (unsigned)__builtin_clz(cpus);
        mm->min_objects = 4 * (fls + 1);
    }
    mm->vmalloc_next = BM_VMALLOC_START;
    mm->pcpu_next = BM_PERCPU_START;
    sys->mm = mm;
    return 0;
}

void bm_mm_destroy(struct bm_system *sys)
{
    struct mm_state *mm;
    int o;

    if (!sys || !sys->mm)
        return;
    mm = sys->mm;
    mm_percpu_destroy(sys);
    mm_vmalloc_destroy(sys);
    mm_slab_destroy(sys);
    for (o = 0; o <= BM_MAX_ORDER; o++)
        free(mm->free_area[o].pfns);
    free(mm->pages);
    free(mm);
    sys->mm = NULL;
}

struct page *bm_pfn_to_page(struct bm_system *sys, uint64_t pfn)
{
    if (!sys || !sys->mm || pfn >= sys->mm->nr_pages)
        return NULL;
    return &sys->mm->pages[pfn];
}

/* ---- public entry points ---- */

int bm_alloc_pages(bm_system *sys, int32_t cpu, int32_t order, uint32_t gfp, uint64_t *pfn)
{
    struct page *page;
    int err = 0;

    if (!sys || !sys->mm || !pfn || !bm_cpu_valid(sys, cpu) || (gfp & ~(uint32_t)BM_GFP_VALID_MASK))
        return -EINVAL;
    if (order < 0)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    page = __alloc_pages(sys, cpu, order, gfp, &err);
    if (page)
        *pfn = page_to_pfn(sys->mm, page);
    pthread_mutex_unlock(&sys->lock);
    return page ? 0 : err;
}

/* __free_pages(page, order): only a head frame of a block that alloc_pages()
   returned, with its order; slab, large-kmalloc and vmalloc frames have
   their own free functions. */
int bm_free_pages(bm_system *sys, int32_t cpu, uint64_t pfn, int32_t order)
{
    struct page *page;
    int ret = -EINVAL;

    if (!sys || !sys->mm || !bm_cpu_valid(sys, cpu) || order < 0 || order > BM_MAX_ORDER)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    page = bm_pfn_to_page(sys, pfn);
    if (page && page->kind == BM_PAGE_KMEM && (page->flags & PG_head) &&
        !(page->flags & (PG_large_kmalloc | PG_vmalloc | PG_reserved)) && page->order == order) {
        __free_pages_ok(sys, cpu, page, order);
        ret = 0;
    }
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

int bm_page_info(bm_system *sys, uint64_t pfn, struct bm_page_info *out)
{
    struct page *page;
    struct mem_cgroup *memcg;

    if (!sys || !sys->mm || !out)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    page = bm_pfn_to_page(sys, pfn);
    if (!page) {
        pthread_mutex_unlock(&sys->lock);
        return -EINVAL;
    }
    memset(out, 0, sizeof(*out));
    out->memcg_data = page->memcg_data;
    out->kind = page->kind;
    out->order = page->order;
    out->memcg = -1;
    out->objcg = -1;
    if (page->kind == BM_PAGE_KMEM || page->kind == BM_PAGE_SLAB) {
        memcg = page->memcg_data ? page_memcg_check(sys, page) : NULL;
        if (memcg)
            out->memcg = memcg->id;
        if (PageMemcgKmem(page) && sys->cfg.profile.kmem_page_objcg && __page_objcg(page))
            out->objcg = __page_objcg(page)->id;
    }
    if (page->kind == BM_PAGE_SLAB && page->priv) {
        out->nr_objects = slab_nr_objects(page->priv);
    }
    pthread_mutex_unlock(&sys->lock);
    return 0;
}

int64_t bm_ram_used_pages(bm_system *sys)
{
    int64_t n;

    if (!sys || !sys->mm)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    n = (int64_t)sys->mm->nr_used - 1;   /* not counting the reserved pfn 0 */
    pthread_mutex_unlock(&sys->lock);
    return n;
}

/*
 * The objcg and memcg an address is charged to: a slab object's vector slot
 * (mem_cgroup_from_obj()), a KMEM page's memcg_data (page_memcg_check() /
 * __page_objcg()), a vmalloc address's backing page (vmalloc_to_page()), or
 * a percpu allocation's recorded objcg.  -1/-1 for unaccounted memory,
 * -ENOENT for nothing allocated there, -EINVAL for an address outside every
 * simulated range.
 */
int bm_obj_cgroup_of(bm_system *sys, uint64_t addr, int32_t *objcg_out, int32_t *memcg_out)
{
    struct obj_cgroup *objcg = NULL;
    struct mem_cgroup *memcg = NULL;
    struct page *page = NULL;
    int ret = 0;

    if (!sys || !sys->mm)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    if (is_percpu_addr(addr)) {
        ret = __percpu_obj_cgroup(sys, addr, &objcg);
    } else if (is_vmalloc_addr(addr)) {
        page = vmalloc_to_page(sys, addr);
        if (!page)
            ret = -ENOENT;
    } else {
        uint64_t pfn;
        if (!virt_to_pfn(sys->mm, addr, &pfn)) {
            ret = -EINVAL;
        } else {
            page = compound_head(&sys->mm->pages[pfn]);
            if (page->kind == BM_PAGE_SLAB) {
                ret = __kmalloc_obj_cgroup(sys, addr, &objcg);
                page = NULL;
            } else if (page->kind != BM_PAGE_KMEM) {
                ret = -ENOENT;
                page = NULL;
            }
        }
    }
    if (!ret && page && page->memcg_data && PageMemcgKmem(page)) {
        if (sys->cfg.profile.kmem_page_objcg)
            objcg = __page_objcg(page);
        else
            memcg = page_memcg(page);
    }
    if (!ret && objcg)
        memcg = obj_cgroup_memcg(objcg);
    if (!ret) {
        if (objcg_out)
            *objcg_out = objcg ? objcg->id : -1;
        if (memcg_out)
            *memcg_out = memcg ? memcg->id : -1;
    }
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

/*
 * mm_check(): invariant 5 of the design (every frame's memcg_data agrees with
 * what it is) plus the allocator's own bookkeeping, for bm_system_check().
 * Caller holds sys->lock.  Returns 0, or -EUCLEAN with a message.  O(frames
 * ever handed out).
 */
int mm_check(struct bm_system *sys, char *msg, size_t msglen)
{
    struct mm_state *mm = sys->mm;
    uint64_t tail = mm->nr_pages & ~((1ULL << BM_MAX_ORDER) - 1);
    uint64_t used = 0, pfn;
    int o;

#define MM_BAD(...) do { if (msg && msglen) snprintf(msg, msglen, __VA_ARGS__); return -EUCLEAN; } while (0)
    if (!mm)
        return 0;
    for (o = 0; o <= BM_MAX_ORDER; o++) {
        const struct free_area *area = &mm->free_area[o];
        for (uint64_t i = 0; i < area->nr_free; i++) {
            const struct page *p = &mm->pages[area->pfns[i]];
            if (!(p->flags & PG_buddy) || p->order != o || p->pad != i || p->kind != BM_PAGE_FREE)
                MM_BAD("free_area[%d] entry %llu (pfn %llu) is not a free order-%d head", o,
                       (unsigned long long)i, (unsigned long long)area->pfns[i], o);
        }
    }
    for (pfn = 0; pfn < mm->nr_pages; pfn++) {
        if (pfn == mm->top && pfn < tail)
            pfn = tail;
        if (pfn >= mm->nr_pages)
            break;
        const struct page *p = &mm->pages[pfn];
        uint64_t flags = p->memcg_data & MEMCG_DATA_FLAGS_MASK;
        switch (p->kind) {
        case BM_PAGE_FREE:
            if (p->memcg_data)
                MM_BAD("free pfn %llu has memcg_data %#llx", (unsigned long long)pfn,
                       (unsigned long long)p->memcg_data);
            break;
        case BM_PAGE_TAIL:
            used++;
            if (p->memcg_data || !p->priv)
                MM_BAD("tail pfn %llu has memcg_data or no head", (unsigned long long)pfn);
            break;
        case BM_PAGE_KMEM:
            used++;
            if (p->memcg_data && (flags != MEMCG_DATA_KMEM || !(p->memcg_data & ~(uint64_t)MEMCG_DATA_FLAGS_MASK)))
                MM_BAD("kmem pfn %llu has memcg_data %#llx (want owner|KMEM or 0)",
                       (unsigned long long)pfn, (unsigned long long)p->memcg_data);
            break;
        case BM_PAGE_SLAB:
            used++;
            if (p->memcg_data && flags != MEMCG_DATA_OBJCGS)
                MM_BAD("slab pfn %llu has memcg_data %#llx (want objcgs|OBJCGS or 0)",
                       (unsigned long long)pfn, (unsigned long long)p->memcg_data);
            if (slab_check(p->priv, p, msg, msglen))
                return -EUCLEAN;
            break;
        default:
            MM_BAD("pfn %llu has unknown kind %d", (unsigned long long)pfn, p->kind);
        }
    }
    if (used != mm->nr_used)
        MM_BAD("%llu frames in use but nr_used is %llu", (unsigned long long)used,
               (unsigned long long)mm->nr_used);
#undef MM_BAD
    return 0;
}
