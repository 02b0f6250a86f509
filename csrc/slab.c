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

struct list_lru;

struct kmem_cache {
    int32_t id;                       /* kmem_cache_create() id, -1 for kmalloc caches */
    uint32_t flags;                   /* SLAB_ACCOUNT, SLAB_RECLAIM_ACCOUNT */
    uint64_t object_size;
    uint64_t size;                    /* s->size: the object stride */
    int order;                        /* oo: preferred slab order */
    int min_order;                    /* s->min: order holding one object */
    struct slab *partial;
    struct slab *empty;               /* one cached empty slab */
    struct list_lru *lru;             /* reclaimable kmem_cache_create()d caches: unused objects */
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
   the frames; during reclaim the pages count in current->reclaim_state */
static void discard_slab(struct bm_system *sys, int cpu, struct slab *slab)
{
    struct page *page = slab->page;
    unsigned long *reclaimed = bm_reclaim_state;

    if (reclaimed)
        *reclaimed += 1UL << slab->order;

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

static void list_lru_del_obj(struct bm_system *sys, struct kmem_cache *s, uint64_t addr);

/* memcg_slab_free_hook() + slab_free(): uncharge the objcg recorded for the
   object, whatever context frees it.  An object still on its cache's LRU
   leaves it first (as __dentry_kill() takes a dentry off the LRU). */
static void slab_free_hooked(struct bm_system *sys, int cpu, struct slab *slab, uint32_t idx)
{
    struct kmem_cache *s = slab->cache;

    if (s->lru)
        list_lru_del_obj(sys, s, slab->base + idx * s->size);

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

/* ---- list_lrus and shrinkers of reclaimable caches ---- */

/*
 * A kmem_cache_create()d cache with SLAB_RECLAIM_ACCOUNT has a memcg-aware
 * list_lru (mm/list_lru.c) of its unused objects, and a shrinker
 * (mm/shrinker.c) that frees them under reclaim: the superblock shrinker of
 * fs/super.c (super_cache_count() / super_cache_scan() -> prune_dcache_sb()),
 * DEFAULT_SEEKS and a batch of 1024, which is what frees dentries.
 * Simplifications: a cache's LRU holds one kind of object (a superblock's
 * has dentries and inodes, and its scan splits between them); every object
 * on it is freeable (dentry_lru_isolate() rotates a referenced dentry once
 * instead of freeing it); objects go oldest first; freed at once (dentries
 * go after an RCU grace period); one node.
 */
#define DEFAULT_SEEKS 2
#define SB_SHRINK_BATCH 1024
#define SHRINK_STOP (~0UL)

struct lru_item {                     /* the object's d_lru link */
    uint64_t addr;
    struct lru_item *prev, *next;
    struct list_lru_one *list;
};

struct list_lru_one {                 /* one memcg's list (struct list_lru_one) */
    struct lru_item *head, *tail;     /* oldest first */
    long nr_items;
    long nr_deferred;                 /* the shrinker's per-memcg nr_deferred (v5.13+) */
    struct mem_cgroup *memcg;
};

struct list_lru {
    struct list_lru_one **lists;      /* by memcg id, grown on demand */
    int32_t nr_lists;
    struct addr_map items;            /* object address -> its lru_item */
    long nr_deferred;                 /* shrinker->nr_deferred[nid] before v5.13: one for all memcgs */
};

/* list_lru_from_memcg_idx(): memcg's list of lru, created on first use
   (memcg_list_lru_alloc()); NULL only when host memory runs out */
static struct list_lru_one *lru_list_of(struct list_lru *lru, struct mem_cgroup *memcg, bool create)
{
    struct list_lru_one *l;

    if (memcg->id >= lru->nr_lists) {
        int32_t n = lru->nr_lists ? lru->nr_lists : 16;
        struct list_lru_one **grown;
        if (!create)
            return NULL;
        while (n <= memcg->id)
            n *= 2;
        grown = realloc(lru->lists, (size_t)n * sizeof(*grown));
        if (!grown)
            return NULL;
        memset(grown + lru->nr_lists, 0, (size_t)(n - lru->nr_lists) * sizeof(*grown));
        lru->lists = grown;
        lru->nr_lists = n;
    }
    l = lru->lists[memcg->id];
    if (!l && create) {
        l = calloc(1, sizeof(*l));
        if (!l)
            return NULL;
        l->memcg = memcg;
        lru->lists[memcg->id] = l;
    }
    return l;
}

static void lru_unlink(struct list_lru_one *l, struct lru_item *it)
{
    if (it->prev)
        it->prev->next = it->next;
    else
        l->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        l->tail = it->prev;
    l->nr_items--;
    atomic_fetch_sub(&l->memcg->nr_lru_items, 1);
}

/* list_lru_add_obj(): the object joins the tail of the list of the memcg it
   is charged to (mem_cgroup_from_slab_obj(): its objcg's memcg now; root
   for an unaccounted object).  1 added, 0 already there, -ENOMEM (host). */
static int list_lru_add_obj(struct bm_system *sys, struct kmem_cache *s, struct slab *slab, uint32_t idx)
{
    uint64_t addr = slab->base + idx * s->size;
    struct obj_cgroup *objcg = slab->objcgs ? slab->objcgs[idx] : NULL;
    struct mem_cgroup *memcg = objcg ? obj_cgroup_memcg(objcg) : bm_memcg_lookup(sys, 0);
    struct list_lru_one *l;
    struct lru_item *it;

    if (addr_map_get(&s->lru->items, addr))
        return 0;
    l = lru_list_of(s->lru, memcg, true);
    it = malloc(sizeof(*it));
    if (!l || !it || addr_map_put(&s->lru->items, addr, it)) {
        free(it);
        return -ENOMEM;
    }
    it->addr = addr;
    it->list = l;
    it->next = NULL;
    it->prev = l->tail;
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
    l->nr_items++;
    atomic_fetch_add(&memcg->nr_lru_items, 1);
    return 1;
}

/* list_lru_del_obj(): off whichever list holds it (no-op if none) */
static void list_lru_del_obj(struct bm_system *sys, struct kmem_cache *s, uint64_t addr)
{
    struct lru_item *it = addr_map_del(&s->lru->items, addr);

    (void)sys;
    if (!it)
        return;
    lru_unlink(it->list, it);
    free(it);
}

static struct list_lru *list_lru_new(void)
{
    return calloc(1, sizeof(struct list_lru));
}

static void list_lru_destroy(struct list_lru *lru)
{
    if (!lru)
        return;
    addr_map_free(&lru->items);          /* frees every lru_item too */
    for (int32_t i = 0; i < lru->nr_lists; i++)
        free(lru->lists[i]);
    free(lru->lists);
    free(lru);
}

/* mult_frac(x, n, d) of include/linux/math.h */
static inline long mult_frac(long x, long n, long d)
{
    return (x / d) * n + (x % d) * n / d;
}

/* super_cache_scan() -> prune_dcache_sb() for a list holding only this
   cache's objects: without __GFP_FS nothing (SHRINK_STOP); else walk
   nr_to_scan's share of the list (the "+ 1" of the total before
   sb_scan_exact_total) plus one, oldest first, freeing each object on this
   cpu.  The objects freed. */
static unsigned long super_cache_scan(struct bm_system *sys, int cpu, struct kmem_cache *s,
                                      struct list_lru_one *l, uint32_t gfp, long nr_to_scan)
{
    long dentries = l->nr_items;
    long total = dentries + (sys->cfg.profile.sb_scan_exact_total ? 0 : 1);
    long walk;
    unsigned long freed = 0;

    if (!(gfp & BM_GFP_FS))
        return SHRINK_STOP;
    if (!total)
        total = 1;
    walk = mult_frac(nr_to_scan, dentries, total) + 1;
    while (walk-- > 0 && l->head) {
        struct lru_item *it = l->head;
        uint64_t addr = it->addr;
        struct slab *slab;
        uint32_t idx;

        addr_map_del(&s->lru->items, addr);
        lru_unlink(l, it);
        free(it);
        if (!lookup_slab_object(sys, addr, true, &slab, &idx)) {
            slab_free_hooked(sys, cpu, slab, idx);
            freed++;
        }
    }
    return freed;
}

/* mirrors do_shrink_slab(): the scan target from the freeable count, the
   priority and the work deferred by earlier calls, scanned in batches.
   shrinker_deferred_per_memcg (v5.13+): deferred work per memcg, counted
   >> priority, capped at twice the freeable count.  Before: one deferred
   count for every memcg, taken whole, with the windup clamps of v5.10. */
static unsigned long do_shrink_slab(struct bm_system *sys, int cpu, uint32_t gfp, struct kmem_cache *s,
                                    struct list_lru_one *l, int priority)
{
    bool per_memcg = sys->cfg.profile.shrinker_deferred_per_memcg != 0;
    long *deferred = per_memcg ? &l->nr_deferred : &s->lru->nr_deferred;
    long freeable = l->nr_items;        /* super_cache_count() (vfs_cache_pressure 100) */
    long batch = SB_SHRINK_BATCH, nr, delta, total_scan, next_deferred, scanned = 0;
    unsigned long freed = 0;

    if (freeable == 0)
        return 0;
    nr = *deferred;
    *deferred = 0;
    delta = (freeable >> priority) * 4 / DEFAULT_SEEKS;
    if (per_memcg) {
        total_scan = (nr >> priority) + delta;
        if (total_scan > 2 * freeable)
            total_scan = 2 * freeable;
        next_deferred = 0;
    } else {
        total_scan = nr + delta;
        next_deferred = total_scan;
        if (delta < freeable / 4 && total_scan > freeable / 2)
            total_scan = freeable / 2;
        if (total_scan > freeable * 2)
            total_scan = freeable * 2;
    }
    while (total_scan >= batch || total_scan >= freeable) {
        long nr_to_scan = total_scan < batch ? total_scan : batch;
        unsigned long ret = super_cache_scan(sys, cpu, s, l, gfp, nr_to_scan);

        if (ret == SHRINK_STOP)
            break;
        freed += ret;
        total_scan -= nr_to_scan;
        scanned += nr_to_scan;
    }
    if (per_memcg) {
        next_deferred = nr + delta - scanned;
        if (next_deferred < 0)
            next_deferred = 0;
        if (next_deferred > 2 * freeable)
            next_deferred = 2 * freeable;
    } else {
        next_deferred = next_deferred >= scanned ? next_deferred - scanned : 0;
    }
    *deferred += next_deferred;
    return freed;
}

/* mirrors shrink_slab() / shrink_slab_memcg() for the model's shrinkers:
   nothing for an offline memcg (its lists went to the parent); every
   reclaimable cache's list of memcg in turn.  Takes sys->lock (recursive:
   see struct bm_system). */
unsigned long shrink_slab(struct bm_system *sys, int cpu, uint32_t gfp, struct mem_cgroup *memcg, int priority)
{
    struct mm_state *mm = sys->mm;
    unsigned long freed = 0;

    if (!mm || !atomic_load(&memcg->nr_lru_items) || atomic_load(&memcg->state) != BM_MEMCG_ONLINE)
        return 0;
    pthread_mutex_lock(&sys->lock);
    for (int32_t i = 0; i < mm->nr_caches; i++) {
        struct kmem_cache *s = mm->caches[i];
        struct list_lru_one *l = s->lru ? lru_list_of(s->lru, memcg, false) : NULL;
        if (l)
            freed += do_shrink_slab(sys, cpu, gfp, s, l, priority);
    }
    pthread_mutex_unlock(&sys->lock);
    return freed;
}

/* mirrors memcg_reparent_list_lrus() + reparent_shrinker_deferred(): at
   offline every list of memcg is spliced to the head of parent's list and
   its deferred work added to parent's; sys->lock held */
void memcg_reparent_list_lrus(struct bm_system *sys, struct mem_cgroup *memcg, struct mem_cgroup *parent)
{
    struct mm_state *mm = sys->mm;

    if (!mm || !parent)
        return;
    for (int32_t i = 0; i < mm->nr_caches; i++) {
        struct kmem_cache *s = mm->caches[i];
        struct list_lru_one *src = s->lru ? lru_list_of(s->lru, memcg, false) : NULL;
        struct list_lru_one *dst;

        if (!src)
            continue;
        dst = lru_list_of(s->lru, parent, true);
        if (!dst)
            continue;     /* host OOM: the objects stay on the dead list */
        if (src->head) {
            for (struct lru_item *it = src->head; it; it = it->next)
                it->list = dst;
            src->tail->next = dst->head;
            if (dst->head)
                dst->head->prev = src->tail;
            else
                dst->tail = src->tail;
            dst->head = src->head;
        }
        dst->nr_items += src->nr_items;
        atomic_fetch_add(&parent->nr_lru_items, src->nr_items);
        atomic_fetch_sub(&memcg->nr_lru_items, src->nr_items);
        if (sys->cfg.profile.shrinker_deferred_per_memcg)
            dst->nr_deferred += src->nr_deferred;
        s->lru->lists[memcg->id] = NULL;     /* the dead list goes (kvfree_rcu()) */
        free(src);
    }
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
    for (i = 0; i < mm->nr_caches; i++) {
        list_lru_destroy(mm->caches[i]->lru);
        free(mm->caches[i]);
    }
    free(mm->caches);
}

/* ---- public entry points ---- */

int bm_kmalloc(bm_system *sys, int32_t cpu, uint64_t size, uint32_t gfp, uint64_t *addr)
{
    BM_RCU_READ_SECTION(sys, cpu);
    BM_USER_CALL(sys, cpu);
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
    if (s && (flags & BM_SLAB_RECLAIM_ACCOUNT) && !(s->lru = list_lru_new())) {
        free(s);
        s = NULL;
    }
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
    BM_USER_CALL(sys, cpu);
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

/* the object at addr of a reclaimable cache (else -EINVAL) */
static int lru_obj_arg(struct bm_system *sys, int32_t cache, uint64_t addr, struct kmem_cache **sp,
                       struct slab **slabp, uint32_t *idxp)
{
    struct kmem_cache *s = cache_lookup(sys->mm, cache);

    if (!s || !s->lru || lookup_slab_object(sys, addr, true, slabp, idxp) || (*slabp)->cache != s)
        return -EINVAL;
    *sp = s;
    return 0;
}

/* list_lru_add_obj() (del: false) or list_lru_del_obj() (del: true) of the object
   at addr, under the system lock; del returns whether it was on the list.  The
   caller is a read-side section. */
static int list_lru_update(bm_system *sys, int32_t cache, uint64_t addr, bool del)
{
    struct kmem_cache *s;
    struct slab *slab;
    uint32_t idx;
    int ret;

    if (!sys || !sys->mm)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = lru_obj_arg(sys, cache, addr, &s, &slab, &idx);
    if (!ret && !del) {
        ret = list_lru_add_obj(sys, s, slab, idx);
    } else if (!ret) {
        ret = addr_map_get(&s->lru->items, addr) ? 1 : 0;
        list_lru_del_obj(sys, s, addr);
    }
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

int bm_list_lru_add(bm_system *sys, int32_t cache, uint64_t addr)
{
    BM_RCU_READ_SECTION(sys, -1);
    return list_lru_update(sys, cache, addr, false);
}

int bm_list_lru_del(bm_system *sys, int32_t cache, uint64_t addr)
{
    BM_RCU_READ_SECTION(sys, -1);
    return list_lru_update(sys, cache, addr, true);
}

int64_t bm_list_lru_count(bm_system *sys, int32_t cache, int32_t memcg_id)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct kmem_cache *s;
    struct mem_cgroup *memcg;
    struct list_lru_one *l;
    int64_t ret;

    if (!sys || !sys->mm)
        return -EINVAL;
    if ((ret = bm_memcg_arg(sys, memcg_id, &memcg)))
        return ret;
    pthread_mutex_lock(&sys->lock);
    s = cache_lookup(sys->mm, cache);
    if (!s || !s->lru) {
        ret = -EINVAL;
    } else {
        l = lru_list_of(s->lru, memcg, false);
        ret = l ? l->nr_items : 0;
    }
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

/* n objects allocated and put on the LRU, one by one (d_alloc() of missing
   names whose dput() leaves them unused): stops at the first failure.  Each
   is a lookup syscall of its own: the memory.high debt is paid as it returns
   to user, with its dentry on the LRU already. */
int64_t bm_kmem_cache_alloc_lru_bulk(bm_system *sys, int32_t cpu, int32_t cache, uint32_t gfp, int64_t n,
                                     uint64_t *addrs)
{
    BM_RCU_READ_SECTION(sys, cpu);
    struct kmem_cache *s;
    int64_t i;

    if (!mm_args_ok(sys, cpu, gfp) || n < 0 || (n && !addrs))
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    s = cache_lookup(sys->mm, cache);
    if (!s || !s->lru) {
        pthread_mutex_unlock(&sys->lock);
        return -EINVAL;
    }
    for (i = 0; i < n; i++) {      /* each object its own call (an open() of a missing name) */
        struct slab *slab = NULL;
        uint32_t idx = 0;
        int ret;

        over_high_defer();
        ret = slab_alloc_hooked(sys, cpu, s, gfp, &addrs[i]);
        if (!ret) {
            lookup_slab_object(sys, addrs[i], true, &slab, &idx);   /* just allocated: found */
            if (list_lru_add_obj(sys, s, slab, idx) < 0) {
                slab_free_hooked(sys, cpu, slab, idx);
                ret = -ENOMEM;
            }
        }
        return_to_user(sys, cpu);
        if (ret)
            break;
    }
    pthread_mutex_unlock(&sys->lock);
    return i;
}
