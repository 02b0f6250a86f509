/*
 * vmalloc.c - vmalloc / vfree (mm/vmalloc.c) and kvmalloc / kvfree
 * (mm/util.c), plus the small address map used by vmalloc and percpu.
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
#include <string.h>

#include "mm_internal.h"

/* ---- addr_map: open addressing with linear probing, backward-shift delete ---- */

static inline uint64_t addr_hash(uint64_t key, uint64_t mask)
{
    return ((key >> 2) * 0x9e3779b97f4a7c15ULL >> 17) & mask;
}

void *addr_map_get(const struct addr_map *m, uint64_t key)
{
    uint64_t mask, i;

    if (!m->cap || !key)
        return NULL;
    mask = m->cap - 1;
    for (i = addr_hash(key, mask);; i = (i + 1) & mask) {
        if (m->keys[i] == key)
            return m->vals[i];
        if (!m->keys[i])
            return NULL;
    }
}

static int addr_map_grow(struct addr_map *m)
{
    uint64_t ncap = m->cap ? m->cap * 2 : 64, i, j, mask = ncap - 1;
    uint64_t *keys = calloc(ncap, sizeof(*keys));
    void **vals = calloc(ncap, sizeof(*vals));

    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -ENOMEM;
    }
    for (i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        for (j = addr_hash(m->keys[i], mask); keys[j]; j = (j + 1) & mask)
            ;
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = ncap;
    return 0;
}

int addr_map_put(struct addr_map *m, uint64_t key, void *val)
{
    uint64_t mask, i;

    if (!key)
        return -EINVAL;
    if ((m->nr + 1) * 4 > m->cap * 3 && addr_map_grow(m))
        return -ENOMEM;
    mask = m->cap - 1;
    for (i = addr_hash(key, mask); m->keys[i] && m->keys[i] != key; i = (i + 1) & mask)
        ;
    if (!m->keys[i])
        m->nr++;
    m->keys[i] = key;
    m->vals[i] = val;
    return 0;
}

void *addr_map_del(struct addr_map *m, uint64_t key)
{
    uint64_t mask, i, j;
    void *val;

    if (!m->cap || !key)
        return NULL;
    mask = m->cap - 1;
    for (i = addr_hash(key, mask); m->keys[i] != key; i = (i + 1) & mask)
        if (!m->keys[i])
            return NULL;
    val = m->vals[i];
    m->keys[i] = 0;
    m->vals[i] = NULL;
    m->nr--;
    /* shift later members of the cluster back into the hole */
    for (j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
        uint64_t home = addr_hash(m->keys[j], mask);
        bool movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            m->keys[j] = 0;
            m->vals[j] = NULL;
            i = j;
        }
    }
    return val;
}

void addr_map_free(struct addr_map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

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
    if (size == 0 || (size >> mm->page_shift) > mm->nr_pages)
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
    vm = addr_map_del(&mm->vmap, addr);
    if (!vm)
        return -EINVAL;
    if (sys->cfg.profile.stat_vmalloc && vm->pages[0]->memcg_data) {
        struct mem_cgroup *memcg = page_memcg_check(sys, vm->pages[0]);
        if (memcg)
            mod_memcg_state(memcg, BM_STAT_VMALLOC, -(long)vm->nr_pages);
    }
    vm_free_pages(sys, cpu, vm, vm->nr_pages);
    free(vm);
    return 0;
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
 * kvmalloc_node() (mm/util.c, v5.11): flags that are not GFP_KERNEL
 * compatible get kmalloc only; above PAGE_SIZE the kmalloc attempt adds
 * __GFP_NOWARN and, unless __GFP_RETRY_MAYFAIL, __GFP_NORETRY, and a failure
 * falls back to vmalloc with the original flags; up to PAGE_SIZE the
 * kmalloc result is final.
 */
int __kvmalloc(struct bm_system *sys, int cpu, uint64_t size, uint32_t gfp, uint64_t *addr)
{
    uint32_t kmalloc_flags = gfp;
    int ret;

    if ((gfp & GFP_KERNEL) != GFP_KERNEL)
        return __kmalloc(sys, cpu, size, gfp, addr);
    if (size > sys->mm->page_size) {
        kmalloc_flags |= __GFP_NOWARN;
        if (!(kmalloc_flags & __GFP_RETRY_MAYFAIL))
            kmalloc_flags |= __GFP_NORETRY;
    }
    ret = __kmalloc(sys, cpu, size, kmalloc_flags, addr);
    if (!ret || size <= sys->mm->page_size)
        return ret;
    return __vmalloc(sys, cpu, size, gfp, addr);
}

/* kvfree(): is_vmalloc_addr() decides */
int __kvfree(struct bm_system *sys, int cpu, uint64_t addr)
{
    if (is_vmalloc_addr(addr))
        return __vfree(sys, cpu, addr);
    return __kfree(sys, cpu, addr);
}

void mm_vmalloc_destroy(struct bm_system *sys)
{
    struct mm_state *mm = sys->mm;
    uint64_t i;

    for (i = 0; i < mm->vmap.cap; i++)
        free(mm->vmap.vals[i]);
    addr_map_free(&mm->vmap);
}

/* ---- public entry points ---- */

static inline bool vm_args_ok(bm_system *sys, int32_t cpu, uint32_t gfp)
{
    return sys && sys->mm && bm_cpu_valid(sys, cpu) && !(gfp & ~(uint32_t)BM_GFP_VALID_MASK);
}

int bm_vmalloc(bm_system *sys, int32_t cpu, uint64_t size, uint32_t gfp, uint64_t *addr)
{
    int ret;

    if (!vm_args_ok(sys, cpu, gfp) || !addr)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = __vmalloc(sys, cpu, size, gfp, addr);
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

int bm_vfree(bm_system *sys, int32_t cpu, uint64_t addr)
{
    int ret;

    if (!vm_args_ok(sys, cpu, 0))
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = __vfree(sys, cpu, addr);
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

int bm_kvmalloc(bm_system *sys, int32_t cpu, uint64_t size, uint32_t gfp, uint64_t *addr)
{
    int ret;

    if (!vm_args_ok(sys, cpu, gfp) || !addr)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = __kvmalloc(sys, cpu, size, gfp, addr);
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

int bm_kvfree(bm_system *sys, int32_t cpu, uint64_t addr)
{
    int ret;

    if (!vm_args_ok(sys, cpu, 0))
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = __kvfree(sys, cpu, addr);
    pthread_mutex_unlock(&sys->lock);
    return ret;
}
