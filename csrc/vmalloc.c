/*
 * vmalloc.c - vmalloc / vfree (mm/vmalloc.c) and kvmalloc / kvfree
 * (mm/util.c).
 *
 * Model choices (simplifications of the kernel):
 *  - the vmalloc range is bump-allocated and never reused; each area is
 *    followed by one unbacked guard page, as __get_vm_area_node() adds;
 *  - the area metadata (vm_struct, vmap_area, pages[] array) is host memory
 *    and takes no simulated frames; in the kernel it is unaccounted kernel
 *    memory (gfp & GFP_RECLAIM_MASK drops __GFP_ACCOUNT), so no counter
 *    differs;
 *  - vfree() takes only the address vmalloc() returned; the kernel also
 *    finds the area for an interior page-aligned address;
 *  - kvmalloc() follows the v5.11 rules for every profile.
 */
#include <stdlib.h>

#include "mm_internal.h"

/* ---- vmalloc ---- */

struct vm_struct {
    uint64_t addr;
    uint64_t size;            /* PAGE_ALIGN(size), guard page excluded */
    uint64_t nr_pages;
    struct page *pages[];
};

static void vm_free_pages(struct bm_system *sys, int cpu, struct vm_struct *vm, uint64_t nr)
{
    uint64_t i;

    for (i = 0; i < nr; i++) {
        vm->pages[i]->flags &= (uint16_t)~PG_vmalloc;
        __free_pages_ok(sys, cpu, vm->pages[i], 0);   /* uncharges each KMEM page */
    }
}

/*
 * __vmalloc_node_range() -> __vmalloc_area_node(): PAGE_ALIGN(size) /
 * PAGE_SIZE order-0 pages, each from the page allocator with the caller's
 * gfp (| __GFP_NOWARN), so each is charged as a 1-page KMEM page when
 * __GFP_ACCOUNT; a failure part-way frees (and uncharges) what was taken.
 * MEMCG_VMALLOC (v5.17+, stat_vmalloc) moves by nr_pages on the memcg of
 * pages[0] when __GFP_ACCOUNT.
 */
int __vmalloc(struct bm_system *sys, int cpu, uint64_t size, uint32_t gfp, uint64_t *addr)
{
    struct mm_state *mm = sys->mm;
    struct vm_struct *vm;
    uint64_t nr, i, span;

    /* !size or more than totalram_pages(): the kernel fails with NULL */
    if (size == 0 || (size >> mm->page_shift) > mm->nr_pages || should_fail_alloc(sys))
        return -ENOMEM;
    nr = (size + mm->page_size - 1) >> mm->page_shift;
    span = (nr + 1) << mm->page_shift;                 /* + guard page */
    if (span > BM_VMALLOC_END - mm->vmalloc_next)
        return -ENOMEM;
    vm = malloc(sizeof(*vm) + nr * sizeof(struct page *));
    if (!vm)
        return -ENOMEM;
    vm->addr = mm->vmalloc_next;
    vm->size = nr << mm->page_shift;
    vm->nr_pages = nr;
    for (i = 0; i < nr; i++) {
        int err = 0;
        struct page *page = __alloc_pages(sys, cpu, 0, gfp | __GFP_NOWARN, &err);
        if (!page) {
            vm_free_pages(sys, cpu, vm, i);
            free(vm);
            return err ? err : -ENOMEM;
        }
        page->flags |= PG_vmalloc;
        vm->pages[i] = page;
    }
    if (addr_map_put(&mm->vmap, vm->addr, vm)) {
        vm_free_pages(sys, cpu, vm, nr);
        free(vm);
        return -ENOMEM;
    }
    if (sys->cfg.profile.stat_vmalloc && (gfp & __GFP_ACCOUNT) && vm->pages[0]->memcg_data) {
        struct mem_cgroup *memcg = page_memcg_check(sys, vm->pages[0]);
        if (memcg)
            mod_memcg_state(memcg, BM_STAT_VMALLOC, (long)nr);
    }
    mm->vmalloc_next += span;
    *addr = vm->addr;
    return 0;
}

/* vfree() / __vunmap(): vfree(NULL) is a no-op; anything but an area start
   is refused (the kernel WARNs "Trying to vfree() bad address") */
int __vfree(struct bm_system *sys, int cpu, uint64_t addr)
{
    struct mm_state *mm = sys->mm;
    struct vm_struct *vm;

    if (!addr)
        return 0;
    if (!is_vmalloc_addr(addr))
        return -EINVAL;
    vm = addr_map_get(&mm->vmap, addr);
    if (!vm || (vm->pages[0]->flags & PG_kstack))   /* a task's stack goes with the task */
        return -EINVAL;
    addr_map_del(&mm->vmap, addr);
    if (sys->cfg.profile.stat_vmalloc && vm->pages[0]->memcg_data) {
        struct mem_cgroup *memcg = page_memcg_check(sys, vm->pages[0]);
        if (memcg)
            mod_memcg_state(memcg, BM_STAT_VMALLOC, -(long)vm->nr_pages);
    }
    vm_free_pages(sys, cpu, vm, vm->nr_pages);
    free(vm);
    return 0;
}

/* the backing pages of the vmalloc area starting at addr (NULL if none) */
struct page **vmalloc_area_pages(struct bm_system *sys, uint64_t addr, uint64_t *nr)
{
    struct vm_struct *vm = addr_map_get(&sys->mm->vmap, addr);

    if (!vm)
        return NULL;
    *nr = vm->nr_pages;
    return vm->pages;
}

/* vmalloc_to_page(): exact area starts are O(1); interior addresses scan
   the live areas (inspection only) */
struct page *vmalloc_to_page(struct bm_system *sys, uint64_t addr)
{
    struct mm_state *mm = sys->mm;
    struct vm_struct *vm = addr_map_get(&mm->vmap, addr);
    uint64_t i;

    if (vm)
        return vm->pages[0];
    for (i = 0; i < mm->vmap.cap; i++) {
        vm = mm->vmap.vals[i];
        if (vm && addr >= vm->addr && addr < vm->addr + vm->size)
            return vm->pages[(addr - vm->addr) >> mm->page_shift];
    }
    return NULL;
}

/*
 * kvmalloc_node() (mm/util.c; __kvmalloc_node_noprof() with
 * kmalloc_gfp_adjust() now): kmalloc first; up to PAGE_SIZE its result is
 * final.  Above, the kmalloc attempt adds __GFP_NOWARN and, unless
 * __GFP_RETRY_MAYFAIL, __GFP_NORETRY (v6.16+, kvmalloc_kmalloc_no_reclaim:
 * drops __GFP_DIRECT_RECLAIM instead), and a failure falls back to vmalloc
 * with the caller's flags.  Before v5.17 only GFP_KERNEL-compatible flags
 * fall back (others get kmalloc only); since (kvmalloc_any_gfp) any flags
 * that may block do, and __GFP_NOFAIL is left to the vmalloc fallback.
 */
int __kvmalloc(struct bm_system *sys, int cpu, uint64_t size, uint32_t gfp, uint64_t *addr)
{
    const struct bm_profile *p = &sys->cfg.profile;
    uint32_t kmalloc_flags = gfp;
    int ret;

    if (!p->kvmalloc_any_gfp && (gfp & GFP_KERNEL) != GFP_KERNEL)
        return __kmalloc(sys, cpu, size, gfp, addr);
    if (size > sys->mm->page_size) {
        kmalloc_flags |= __GFP_NOWARN;
        if (!(kmalloc_flags & __GFP_RETRY_MAYFAIL))
            kmalloc_flags = p->kvmalloc_kmalloc_no_reclaim ? kmalloc_flags & ~(uint32_t)__GFP_DIRECT_RECLAIM
                                                          : kmalloc_flags | __GFP_NORETRY;
        if (p->kvmalloc_any_gfp)
            kmalloc_flags &= ~(uint32_t)__GFP_NOFAIL;
    }
    ret = __kmalloc(sys, cpu, size, kmalloc_flags, addr);
    if (!ret || size <= sys->mm->page_size)
        return ret;
    if (p->kvmalloc_any_gfp && !(gfp & __GFP_DIRECT_RECLAIM))
        return ret;     /* vmalloc cannot serve a non-blocking request */
    return __vmalloc(sys, cpu, size, gfp, addr);
}

/* kvfree(): is_vmalloc_addr() decides */
int __kvfree(struct bm_system *sys, int cpu, uint64_t addr)
{
    if (is_vmalloc_addr(addr))
        return __vfree(sys, cpu, addr);
    return __kfree(sys, cpu, addr);
}

/* ---- set-up and teardown (called by mm_init.c) ---- */

void mm_vmalloc_init(struct mm_state *mm)
{
    mm->vmalloc_next = BM_VMALLOC_START;
}

void mm_vmalloc_destroy(struct mm_state *mm)
{
    addr_map_free(&mm->vmap);
}

/* ---- public entry points ---- */

int bm_vmalloc(bm_system *sys, int32_t cpu, uint64_t size, uint32_t gfp, uint64_t *addr)
{
    BM_RCU_READ_SECTION(sys, cpu);
    BM_USER_CALL(sys, cpu);
    int ret;

    if (!mm_args_ok(sys, cpu, gfp) || !addr)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = __vmalloc(sys, cpu, size, gfp, addr);
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

int bm_vfree(bm_system *sys, int32_t cpu, uint64_t addr)
{
    BM_RCU_READ_SECTION(sys, cpu);
    int ret;

    if (!mm_args_ok(sys, cpu, 0))
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = __vfree(sys, cpu, addr);
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

int bm_kvmalloc(bm_system *sys, int32_t cpu, uint64_t size, uint32_t gfp, uint64_t *addr)
{
    BM_RCU_READ_SECTION(sys, cpu);
    BM_USER_CALL(sys, cpu);
    int ret;

    if (!mm_args_ok(sys, cpu, gfp) || !addr)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = __kvmalloc(sys, cpu, size, gfp, addr);
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

int bm_kvfree(bm_system *sys, int32_t cpu, uint64_t addr)
{
    BM_RCU_READ_SECTION(sys, cpu);
    int ret;

    if (!mm_args_ok(sys, cpu, 0))
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = __kvfree(sys, cpu, addr);
    pthread_mutex_unlock(&sys->lock);
    return ret;
}
