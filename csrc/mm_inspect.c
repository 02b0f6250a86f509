/*
 * mm_inspect.c - inspection of the simulated memory across allocators: what
 * a page frame holds (bm_page_info), who an address is charged to
 * (bm_obj_cgroup_of), how many frames are in use, and the allocator half of
 * bm_system_check() (mm_check).  Reads only; every entry point takes
 * sys->lock, as the allocators do.
 */
#include <stdio.h>
#include <string.h>

#include "mm_internal.h"

int bm_page_info(bm_system *sys, uint64_t pfn, struct bm_page_info *out)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct page *page, *owner;
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
    /* the owner, as /proc/kpagecgroup sees it: page_cgroup_ino() reads the
       page itself (a tail records nothing), or since kpagecgroup_folio the
       page's folio, so a tail of a compound (__GFP_COMP) page reports its
       head's owner; a non-compound high-order block's tails are folios of
       their own, with no owner */
    owner = page;
    if (page->kind == BM_PAGE_TAIL && sys->cfg.profile.kpagecgroup_folio &&
        (compound_head(page)->flags & PG_compound))
        owner = compound_head(page);
    if (owner->kind == BM_PAGE_KMEM || owner->kind == BM_PAGE_SLAB) {
        memcg = owner->memcg_data ? page_memcg_check(sys, owner) : NULL;
        if (memcg)
            out->memcg = memcg->id;
        if (PageMemcgKmem(owner) && sys->cfg.profile.kmem_page_objcg && __page_objcg(owner))
            out->objcg = __page_objcg(owner)->id;
    }
    if (page->kind == BM_PAGE_SLAB && page->priv) {
        out->nr_objects = slab_nr_objects(page->priv);
    }
    pthread_mutex_unlock(&sys->lock);
    return 0;
}

int64_t bm_ram_used_pages(bm_system *sys)
{
    BM_RCU_READ_SECTION(sys, -1);
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
    BM_RCU_READ_SECTION(sys, -1);
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
    for_each_touched_pfn(mm, pfn) {
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
