/*
 * slab.c - kmalloc caches, kmem_cache_create/alloc/free and the memcg slab
 * hooks (mm/slab_common.c, mm/slub.c, mm/slab.h in v5.11; mm/slub.c and
 * mm/memcontrol.c today).
 *
 * Model choices (simplifications of SLUB):
 *  - no per-cpu slabs or freelist tricks: a cache has a list of partial
 *    slabs, full slabs are off-list, and at most one empty slab is kept
 *    cached per cache (SLUB keeps min_partial of them); a slab whose last
 *    object goes while another empty one is cached is freed to the page
 *    allocator;
 *  - each slab has an index free list (O(1) alloc/free) whose entries also
 *    mark allocated objects, which catches double frees;
 *  - the slab order follows calculate_order() without its waste fractions:
 *    the smallest order <= PAGE_ALLOC_COSTLY_ORDER holding min_objects =
 *    4 * (fls(nr_cpus) + 1) objects, else PAGE_ALLOC_COSTLY_ORDER if one
 *    object fits, else get_order(size); allocate_slab()'s fallback to the
 *    minimal order is kept;
 *  - no debug options: s->size = ALIGN(object_size, 8) and the free pointer
 *    lives inside the object;
 *  - the memcg charge is taken before the object like v5.11's
 *    memcg_slab_pre_alloc_hook() for every profile (today's kernel charges
 *    in the post-alloc hook; the counters end the same, only a slab page may
 *    be left cached after a failed charge there);
 *  - the reference get_obj_cgroup_from_current() returns becomes the
 *    object's reference (the kernel takes one per object and drops the
 *    caller's: same count).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm_internal.h"

#define SLAB_FREE_END 0xffffffffu     /* end of a slab's free list */
#define SLAB_OBJ_INUSE 0xfffffffeu    /* slot is an allocated object */
#define BM_MAX_CACHES 65536

struct slab {
    struct kmem_cache *cache;
    struct page *page;                /* head frame */
    uint64_t base;                    /* address of object 0 */
    struct slab *next, *prev;         /* on cache->partial */
    struct obj_cgroup **objcgs;       /* vector installed in memcg_data, or NULL */
    uint32_t objects;
    uint32_t inuse;
    uint32_t free_head;
    uint8_t order;
    uint8_t on_partial;
    uint32_t next_free[];             /* per object: next free index or SLAB_OBJ_INUSE */
};

struct kmem_cache {
    int32_t id;                       /* kmem_cache_create() id, -1 for kmalloc caches */
    uint32_t flags;                   /* SLAB_ACCOUNT, SLAB_RECLAIM_ACCOUNT */
    uint64_t object_size;
    uint64_t size;                    /* s->size: the object stride */
    int order;                        /* oo: preferred slab order */
    int min_order;                    /* s->min: order holding one object */
    struct slab *partial;
    struct slab *empty;               /* one cached empty slab */
};

int32_t slab_nr_objects(const void *slab)
{
    return (int32_t)((const struct slab *)slab)->inuse;
}

/* obj_full_size(): the object plus its objcg pointer slot (mm/slab.h) */
static inline uint64_t obj_full_size(const struct kmem_cache *s)
{
    return s->size + sizeof(struct obj_cgroup *);
}

/* cache_vmstat_idx() (mm/slab.h) */
static inline int cache_vmstat_idx(const struct kmem_cache *s)
{
    return (s->flags & BM_SLAB_RECLAIM_ACCOUNT) ? BM_STAT_SLAB_RECLAIMABLE_B
                                                : BM_STAT_SLAB_UNRECLAIMABLE_B;
}

/* calculate_order() (mm/slub.c), simplified as described above */
static int calculate_order(const struct mm_state *mm, uint64_t size)
{
    int order;

    for (order = 0; order <= PAGE_ALLOC_COSTLY_ORDER; order++)
        if ((mm->page_size << order) / size >= mm->min_objects)
            return order;
    if ((mm->page_size << PAGE_ALLOC_COSTLY_ORDER) / size >= 1)
        return PAGE_ALLOC_COSTLY_ORDER;
    return get_order(mm, size);
}

static struct kmem_cache *cache_alloc_struct(struct mm_state *mm, uint64_t object_size, uint32_t flags)
{
    struct kmem_cache *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->id = -1;
    s->flags = flags;
    s->object_size = object_size;
    s->size = (object_size + 7) & ~(uint64_t)7;   /* ALIGN(size, sizeof(void *)) */
    s->order = calculate_order(mm, s->size);
    s->min_order = get_order(mm, s->size);
    if (s->min_order > s->order)
        s->min_order = s->order;
    return s;
}

/* ---- slabs ---- */

static void partial_add(struct kmem_cache *s, struct slab *slab)
{
    slab->prev = NULL;
    slab->next = s->partial;
    if (s->partial)
        s->partial->prev = slab;
    s->partial = slab;
    slab->on_partial = 1;
}

static void partial_del(struct kmem_cache *s, struct slab *slab)
{
    if (slab->prev)
        slab->prev->next = slab->next;
    else
        s->partial = slab->next;
    if (slab->next)
        slab->next->prev = slab->prev;
    slab->next = slab->prev = NULL;
    slab->on_partial = 0;
}

/* memcg_alloc_page_obj_cgroups() + set_page_objcgs(): host memory, never charged */
static bool alloc_slab_objcgs(struct slab *slab)
{
    slab->objcgs = calloc(slab->objects, sizeof(struct obj_cgroup *));
    if (!slab->objcgs)
        return false;
    slab->page->memcg_data = (uint64_t)(uintptr_t)slab->objcgs | MEMCG_DATA_OBJCGS;
    return true;
}

/* allocate_slab() / new_slab(): the slab's frames are never charged (the
   kernel masks __GFP_ACCOUNT off); SLAB_ACCOUNT caches get their objcgs
   vector at once, as account_slab_page() does. */
static struct slab *new_slab(struct bm_system *sys, int cpu, struct kmem_cache *s, uint32_t gfp)
{
    struct mm_state *mm = sys->mm;
    uint32_t pgfp = gfp & ~(uint32_t)(__GFP_ACCOUNT | __GFP_ZERO);
    int err = 0, order = s->order;
    struct page *page = __alloc_pages(sys, cpu, order, pgfp, &err);
    struct slab *slab;
    uint32_t objects, i;

    if (!page && s->min_order < order) {
        order = s->min_order;
        page = __alloc_pages(sys, cpu, order, pgfp, &err);
    }
    if (!page)
        return NULL;
    objects = (uint32_t)((mm->page_size << order) / s->size);
    slab = malloc(sizeof(*slab) + (size_t)objects * sizeof(uint32_t));
    if (!slab) {
        __free_pages_ok(sys, cpu, page, order);
        return NULL;
    }
    slab->cache = s;
    slab->page = page;
    slab->base = pfn_to_virt(mm, page_to_pfn(mm, page));
    slab->next = slab->prev = NULL;
    slab->objcgs = NULL;
    slab->objects = objects;
    slab->inuse = 0;
    slab->free_head = 0;
    slab->order = (uint8_t)order;
    slab->on_partial = 0;
    for (i = 0; i < objects; i++)
        slab->next_free[i] = i + 1 < objects ? i + 1 : SLAB_FREE_END;
    page->kind = BM_PAGE_SLAB;
    page->flags |= PG_slab;
    page->priv = slab;
    if (s->flags & BM_SLAB_ACCOUNT)
        alloc_slab_objcgs(slab);    /* on failure objects stay unaccounted, as in the kernel */
    return slab;
}

/* discard_slab(): free the objcgs vector (memcg_free_page_obj_cgroups) and
   the frames */
static void discard_slab(struct bm_system *sys, int cpu, struct slab *slab)
{
    struct page *page = slab->page;

    free(slab->objcgs);
    page->memcg_data = 0;
    page->kind = BM_PAGE_KMEM;
    page->flags &= (uint16_t)~PG_slab;
    __free_pages_ok(sys, cpu, page, slab->order);
    free(slab);
}

/* the allocation itself (___slab_alloc(), reduced): O(1) */
static int slab_alloc(struct bm_system *sys, int cpu, struct kmem_cache *s, uint32_t gfp,
                      struct slab **slabp, uint32_t *idxp)
{
    struct slab *slab = s->partial;
    uint32_t idx;

    if (!slab) {
        slab = s->empty;
        if (slab) {
            s->empty = NULL;
        } else {
            slab = new_slab(sys, cpu, s, gfp);
            if (!slab)
                return -ENOMEM;
        }
        partial_add(s, slab);
    }
    idx = slab->free_head;
    slab->free_head = slab->next_free[idx];
    slab->next_free[idx] = SLAB_OBJ_INUSE;
    slab->inuse++;
    if (slab->inuse == slab->objects)
        partial_del(s, slab);
    *slabp = slab;
    *idxp = idx;
    return 0;
}

/* __slab_free(), reduced */
static void slab_free(struct bm_system *sys, int cpu, struct kmem_cache *s, struct slab *slab, uint32_t idx)
{
    bool was_full = slab->inuse == slab->objects;

    slab->next_free[idx] = slab->free_head;
    slab->free_head = idx;
    slab->inuse--;
    if (slab->inuse == 0) {
        if (slab->on_partial)
            partial_del(s, slab);
        if (!s->empty)
            s->empty = slab;
        else
            discard_slab(sys, cpu, slab);
    } else if (was_full) {
        partial_add(s, slab);
    }
}

/*
 * slab_alloc_node() with the memcg hooks: memcg_slab_pre_alloc_hook() charges
 * obj_full_size() to get_obj_cgroup_from_current() when the gfp has
 * __GFP_ACCOUNT or the cache is SLAB_ACCOUNT; memcg_slab_post_alloc_hook()
 * records the objcg in the slab's vector and adds the slab statistic.
 */
static int slab_alloc_hooked(struct bm_system *sys, int cpu, struct kmem_cache *s, uint32_t gfp, uint64_t *addr)
{
    struct obj_cgroup *objcg = NULL;
    struct slab *slab;
    uint32_t idx;
    uint64_t full = obj_full_size(s);
    int ret;

    if (should_fail_alloc(sys))
        return -ENOMEM;
    /* the slab statistic is accounted with the charge (current kernels:
       obj_cgroup_charge_account() in the post-alloc hook); with the charge
       taken before the object here, a failed allocation takes both back */
    if (((gfp & __GFP_ACCOUNT) || (s->flags & BM_SLAB_ACCOUNT)) &&
        memcg_slab_charge_get(sys, cpu, gfp, full, cache_vmstat_idx(s), &objcg))
        return -ENOMEM;
    ret = slab_alloc(sys, cpu, s, gfp, &slab, &idx);
    if (ret) {
        if (objcg)
            memcg_slab_uncharge_put(sys, cpu, objcg, full, cache_vmstat_idx(s));
        return ret;
    }
    if (objcg) {
        if (!slab->objcgs && !alloc_slab_objcgs(slab)) {
            /* vector allocation failed: the object stays unaccounted */
            memcg_slab_uncharge_put(sys, cpu, objcg, full, cache_vmstat_idx(s));
        } else {
            slab->objcgs[idx] = objcg;
        }
    }
    *addr = slab->base + idx * s->size;
    return 0;
}

/* memcg_slab_free_hook() + slab_free(): uncharge the objcg recorded for the
   object, whatever context frees it */
static void slab_free_hooked(struct bm_system *sys, int cpu, struct slab *slab, uint32_t idx)
{
    struct kmem_cache *s = slab->cache;

    if (slab->objcgs && slab->objcgs[idx]) {
        struct obj_cgroup *objcg = slab->objcgs[idx];
        uint64_t full = obj_full_size(s);
        slab->objcgs[idx] = NULL;
        memcg_slab_uncharge_put(sys, cpu, objcg, full, cache_vmstat_idx(s));
    }
    slab_free(sys, cpu, s, slab, idx);
}

/* Find the allocated slab object that starts at addr.  Returns 0, -EINVAL
   if addr is not a slab address or not an object start, -ENOENT if the
   object is free (double free). */
static int lookup_slab_object(struct bm_system *sys, uint64_t addr, bool exact,
                              struct slab **slabp, uint32_t *idxp)
{
    struct mm_state *mm = sys->mm;
    struct page *page;
    struct slab *slab;
    uint64_t pfn, off, idx;

    if (!virt_to_pfn(mm, addr, &pfn))
        return -EINVAL;
    page = compound_head(&mm->pages[pfn]);     /* virt_to_head_page() */
    if (page->kind != BM_PAGE_SLAB)
        return -EINVAL;
    slab = page->priv;
    off = addr - slab->base;
    idx = off / slab->cache->size;             /* obj_to_index() */
    if (idx >= slab->objects || (exact && off % slab->cache->size))
        return -EINVAL;
    if (slab->next_free[idx] != SLAB_OBJ_INUSE)
        return -ENOENT;
    *slabp = slab;
    *idxp = (uint32_t)idx;
    return 0;
}

/* ---- kmalloc ---- */

/* kmalloc_type() (include/linux/slab.h): v5.11 NORMAL/RECLAIM/DMA; with the
   kmalloc-cg-* caches (v5.14+) accounted requests get KMALLOC_CGROUP */
static int kmalloc_type(const struct bm_system *sys, uint32_t gfp)
{
    if (!sys->cfg.profile.kmalloc_cg_caches) {
        if (!(gfp & (__GFP_DMA | __GFP_RECLAIMABLE)))
            return KMALLOC_NORMAL;
        return (gfp & __GFP_DMA) ? KMALLOC_DMA : KMALLOC_RECLAIM;
    }
    if (!(gfp & (__GFP_DMA | __GFP_RECLAIMABLE | __GFP_ACCOUNT)))
        return KMALLOC_NORMAL;
    if (gfp & __GFP_DMA)
        return KMALLOC_DMA;
    if (gfp & __GFP_RECLAIMABLE)
        return KMALLOC_RECLAIM;
    return KMALLOC_CGROUP;
}

/* kmalloc_index(): 1 = kmalloc-96, 2 = kmalloc-192, else log2 of the bucket */
static unsigned kmalloc_index(uint64_t size)
{
    if (size <= 8)
        return KMALLOC_SHIFT_LOW;
    if (size > 64 && size <= 96)
        return 1;
    if (size > 128 && size <= 192)
        return 2;
    return ilog2_u64(size - 1) + 1;
}

/* kmalloc_slab(): the cache for size (<= KMALLOC_MAX_CACHE_SIZE); the
   caches are created on first use (create_kmalloc_caches() makes them at
   boot: no observable difference) */
static struct kmem_cache *kmalloc_slab(struct bm_system *sys, uint64_t size, uint32_t gfp)
{
    struct mm_state *mm = sys->mm;
    int type = kmalloc_type(sys, gfp);
    unsigned index = kmalloc_index(size);
    struct kmem_cache *s = mm->kmalloc_caches[type][index];

    if (!s) {
        uint64_t bucket = index == 1 ? 96 : index == 2 ? 192 : 1ULL << index;
        uint32_t flags = 0;
        if (type == KMALLOC_RECLAIM)
            flags = BM_SLAB_RECLAIM_ACCOUNT;
        else if (type == KMALLOC_CGROUP)
            flags = BM_SLAB_ACCOUNT;
        s = cache_alloc_struct(mm, bucket, flags);
        mm->kmalloc_caches[type][index] = s;
    }
    return s;
}

/* kmalloc_large() / kmalloc_order(): a compound page charged as KMEM by the
   page allocator when __GFP_ACCOUNT; NR_SLAB_UNRECLAIMABLE_B reaches the
   memcg only from v5.12 (mod_lruvec_page_state) - profile switch. */
static int kmalloc_large(struct bm_system *sys, int cpu, uint64_t size, uint32_t gfp, uint64_t *addr)
{
    struct mm_state *mm = sys->mm;
    int order, err = 0;
    struct page *page;

    if (size > mm->kmalloc_max_size || should_fail_alloc(sys))
        return -ENOMEM;   /* the page allocator WARNs and returns NULL */
    order = get_order(mm, size);
    page = __alloc_pages(sys, cpu, order, gfp | __GFP_COMP, &err);
    if (!page)
        return err;
    page->flags |= PG_large_kmalloc;
    if (sys->cfg.profile.large_kmalloc_memcg_stat && page->memcg_data) {
        struct mem_cgroup *memcg = page_memcg_check(sys, page);
        if (memcg)
            mod_memcg_state(memcg, BM_STAT_SLAB_UNRECLAIMABLE_B, (long)(mm->page_size << order));
    }
    *addr = pfn_to_virt(mm, page_to_pfn(mm, page));
    return 0;
}

static void kfree_large(struct bm_system *sys, int cpu, struct page *page)
{
    struct mm_state *mm = sys->mm;
    int order = page->order;

    if (sys->cfg.profile.large_kmalloc_memcg_stat && page->memcg_data) {
        struct mem_cgroup *memcg = page_memcg_check(sys, page);
        if (memcg)
            mod_memcg_state(memcg, BM_STAT_SLAB_UNRECLAIMABLE_B, -(long)(mm->page_size << order));
    }
    page->flags &= (uint16_t)~PG_large_kmalloc;
    __free_pages_ok(sys, cpu, page, order);
}

int __kmalloc(struct bm_system *sys, int cpu, uint64_t size, uint32_t gfp, uint64_t *addr)
{
    struct kmem_cache *s;

    if (size == 0) {
        *addr = ZERO_SIZE_PTR;
        return 0;
    }
    if (size > sys->mm->kmalloc_max_cache_size)
        return kmalloc_large(sys, cpu, size, gfp, addr);
    s = kmalloc_slab(sys, size, gfp);
    if (!s)
        return -ENOMEM;
    return slab_alloc_hooked(sys, cpu, s, gfp, addr);
}

/* kfree(): slab objects (of any cache, as in the kernel) and large kmalloc
   pages; anything else is a caller bug the kernel would BUG/WARN on. */
int __kfree(struct bm_system *sys, int cpu, uint64_t addr)
{
    struct mm_state *mm = sys->mm;
    struct page *page;
    struct slab *slab;
    uint64_t pfn;
    uint32_t idx;
    int ret;

    if (ZERO_OR_NULL_PTR(addr))
        return 0;
    if (!virt_to_pfn(mm, addr, &pfn))
        return -EINVAL;
    page = compound_head(&mm->pages[pfn]);
    if (page->kind == BM_PAGE_SLAB) {
        ret = lookup_slab_object(sys, addr, true, &slab, &idx);
        if (ret)
            return -EINVAL;
        slab_free_hooked(sys, cpu, slab, idx);
        return 0;
    }
    if (page->kind == BM_PAGE_KMEM && (page->flags & PG_large_kmalloc) &&
        addr == pfn_to_virt(mm, page_to_pfn(mm, page))) {
        kfree_large(sys, cpu, page);
        return 0;
    }
    return -EINVAL;
}

int __kmalloc_obj_cgroup(struct bm_system *sys, uint64_t addr, struct obj_cgroup **objcg)
{
    struct slab *slab;
    uint32_t idx;
    int ret = lookup_slab_object(sys, addr, false, &slab, &idx);

    if (ret)
        return ret == -EINVAL ? -ENOENT : ret;
    *objcg = slab->objcgs ? slab->objcgs[idx] : NULL;
    return 0;
}

/* ---- set-up and teardown (called by mm_init.c) ---- */

void mm_slab_init(struct mm_state *mm, uint32_t nr_cpus)
{
    /* calculate_order(): min_objects = 4 * (fls(nr_cpu_ids) + 1) */
    unsigned fls = 32u - (unsigned)__builtin_clz(nr_cpus);

    mm->kmalloc_shift_high = mm->page_shift + 1;
    mm->kmalloc_max_cache_size = 1ULL << mm->kmalloc_shift_high;
    mm->kmalloc_max_size = mm->page_size << BM_MAX_ORDER;
    mm->min_objects = 4 * (fls + 1);
}

/* Host memory only: the frames array goes with the page allocator.  Full
   slabs are off-list, so walk the frames that were ever handed out. */
void mm_slab_destroy(struct mm_state *mm)
{
    uint64_t pfn;
    int t, i;

    for_each_touched_pfn(mm, pfn) {
        struct page *page = &mm->pages[pfn];
        if (page->kind == BM_PAGE_SLAB && page->priv) {
            struct slab *slab = page->priv;
            free(slab->objcgs);
            free(slab);
            page->priv = NULL;
        }
    }
    for (t = 0; t < NR_KMALLOC_TYPES; t++)
        for (i = 0; i <= KMALLOC_SHIFT_HIGH_MAX; i++)
            free(mm->kmalloc_caches[t][i]);
    for (i = 0; i < mm->nr_caches; i++)
        free(mm->caches[i]);
    free(mm->caches);
}

/* ---- public entry points ---- */

int bm_kmalloc(bm_system *sys, int32_t cpu, uint64_t size, uint32_t gfp, uint64_t *addr)
{
    BM_RCU_READ_SECTION(sys, cpu);
    int ret;

    if (!mm_args_ok(sys, cpu, gfp) || !addr)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = __kmalloc(sys, cpu, size, gfp, addr);
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

int bm_kfree(bm_system *sys, int32_t cpu, uint64_t addr)
{
    BM_RCU_READ_SECTION(sys, cpu);
    int ret;

    if (!mm_args_ok(sys, cpu, 0))
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = __kfree(sys, cpu, addr);
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

/* ksize() / __ksize(): slab_ksize() = s->size without debug options; a
   large kmalloc's page_size << order; 0 for NULL and ZERO_SIZE_PTR */
int bm_ksize(bm_system *sys, uint64_t addr, uint64_t *size)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct mm_state *mm;
    struct slab *slab;
    uint32_t idx;
    uint64_t pfn;
    int ret = -EINVAL;

    if (!sys || !sys->mm || !size)
        return -EINVAL;
    if (ZERO_OR_NULL_PTR(addr)) {
        *size = 0;
        return 0;
    }
    mm = sys->mm;
    pthread_mutex_lock(&sys->lock);
    if (virt_to_pfn(mm, addr, &pfn)) {
        struct page *page = compound_head(&mm->pages[pfn]);
        if (page->kind == BM_PAGE_SLAB) {
            if (!lookup_slab_object(sys, addr, true, &slab, &idx)) {
                *size = slab->cache->size;
                ret = 0;
            }
        } else if (page->kind == BM_PAGE_KMEM && (page->flags & PG_large_kmalloc) &&
                   addr == pfn_to_virt(mm, page_to_pfn(mm, page))) {
            *size = mm->page_size << page->order;
            ret = 0;
        }
    }
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

/* kmem_cache_create(): flags outside SLAB_ACCOUNT|SLAB_RECLAIM_ACCOUNT are
   refused with -EINVAL (the SLAB_FLAGS_PERMITTED check); size 0 or above
   KMALLOC_MAX_SIZE -> -EINVAL (kmem_cache_sanity_check()); sizes 1..7 are
   accepted and rounded up to 8 as a non-DEBUG_VM kernel does. */
int bm_kmem_cache_create(bm_system *sys, uint64_t size, uint32_t flags, int32_t *cache)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct mm_state *mm;
    struct kmem_cache *s;
    int ret = 0;

    if (!sys || !sys->mm || !cache)
        return -EINVAL;
    mm = sys->mm;
    if (flags & ~(uint32_t)(BM_SLAB_ACCOUNT | BM_SLAB_RECLAIM_ACCOUNT))
        return -EINVAL;
    if (size == 0 || size > mm->kmalloc_max_size)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    if (mm->nr_caches >= BM_MAX_CACHES) {
        ret = -ENOMEM;
        goto out;
    }
    if (mm->nr_caches == mm->cap_caches) {
        int32_t ncap = mm->cap_caches ? mm->cap_caches * 2 : 16;
        struct kmem_cache **n = realloc(mm->caches, (size_t)ncap * sizeof(*n));
        if (!n) {
            ret = -ENOMEM;
            goto out;
        }
        mm->caches = n;
        mm->cap_caches = ncap;
    }
    s = cache_alloc_struct(mm, size, flags);
    if (!s) {
        ret = -ENOMEM;
        goto out;
    }
    s->id = mm->nr_caches;
    mm->caches[mm->nr_caches++] = s;
    *cache = s->id;
out:
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

static struct kmem_cache *cache_lookup(struct mm_state *mm, int32_t id)
{
    if (id < 0 || id >= mm->nr_caches)
        return NULL;
    return mm->caches[id];
}

int bm_kmem_cache_alloc(bm_system *sys, int32_t cpu, int32_t cache, uint32_t gfp, uint64_t *addr)
{
    BM_RCU_READ_SECTION(sys, cpu);
    struct kmem_cache *s;
    int ret;

    if (!mm_args_ok(sys, cpu, gfp) || !addr)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    s = cache_lookup(sys->mm, cache);
    ret = s ? slab_alloc_hooked(sys, cpu, s, gfp, addr) : -EINVAL;
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

/* kmem_cache_free(): the object must belong to that cache (cache_from_obj()
   warns "Wrong slab cache"; we refuse with -EINVAL) */
int bm_kmem_cache_free(bm_system *sys, int32_t cpu, int32_t cache, uint64_t addr)
{
    BM_RCU_READ_SECTION(sys, cpu);
    struct kmem_cache *s;
    struct slab *slab;
    uint32_t idx;
    int ret;

    if (!mm_args_ok(sys, cpu, 0))
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    s = cache_lookup(sys->mm, cache);
    ret = -EINVAL;
    if (s && !lookup_slab_object(sys, addr, true, &slab, &idx) && slab->cache == s) {
        slab_free_hooked(sys, cpu, slab, idx);
        ret = 0;
    }
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

/* mm_check() helper: a slab's free list, inuse count and objcgs vector agree */
int slab_check(const void *slabp, const struct page *head, char *msg, size_t msglen)
{
    const struct slab *slab = slabp;
    uint32_t i, inuse = 0, nfree = 0, idx;

    if (!slab || slab->page != head)
        goto bad;
    if (head->memcg_data &&
        (uint64_t)(uintptr_t)slab->objcgs != (head->memcg_data & ~(uint64_t)MEMCG_DATA_FLAGS_MASK))
        goto bad;
    for (i = 0; i < slab->objects; i++) {
        if (slab->next_free[i] == SLAB_OBJ_INUSE)
            inuse++;
        else if (slab->objcgs && slab->objcgs[i])
            goto bad;                       /* a free slot still holds an objcg */
    }
    for (idx = slab->free_head; idx != SLAB_FREE_END && nfree <= slab->objects; idx = slab->next_free[idx]) {
        if (idx >= slab->objects)
            goto bad;
        nfree++;
    }
    if (inuse != slab->inuse || inuse + nfree != slab->objects)
        goto bad;
    return 0;
bad:
    if (msg && msglen)
        snprintf(msg, msglen, "slab at %#llx: free list, inuse or objcgs vector inconsistent",
                 slab ? (unsigned long long)slab->base : 0ULL);
    return -EUCLEAN;
}
