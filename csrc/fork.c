/*
 * fork.c - the kernel stack of a task (kernel/fork.c, CONFIG_VMAP_STACK):
 * alloc_thread_stack_node() takes THREAD_SIZE of vmalloc without
 * __GFP_ACCOUNT (THREADINFO_GFP & ~__GFP_ACCOUNT), memcg_charge_kernel_stack()
 * charges each page as a one-page KMEM page to the forking task's
 * memcg/objcg, and account_kernel_stack() adds the pages to
 * NR_KERNEL_STACK_KB of the memcg the pages record.  At exit
 * (exit_task_stack_account() / release_task_stack()) the statistic goes
 * back, the pages are uncharged, and the stack is freed.
 *
 * Simplifications: THREAD_SIZE is x86_64's 16 KiB (one page when pages are
 * larger); the two per-cpu cached stacks of the kernel (which change no
 * charge: a cached stack is charged again page by page) are not kept; the
 * forking task's memcg is passed in and made the active memcg for the
 * charge, which picks the same objcg as current's.
 */
#include "mm_internal.h"

#define THREAD_SIZE_X86_64 16384u

static uint64_t thread_size(const struct bm_system *sys)
{
    return sys->mm->page_size > THREAD_SIZE_X86_64 ? sys->mm->page_size : THREAD_SIZE_X86_64;
}

/* account_kernel_stack(): each page's bytes to the memcg it is charged to */
static void account_kernel_stack(struct bm_system *sys, struct page **pages, uint64_t nr, int account)
{
    for (uint64_t i = 0; i < nr; i++) {
        struct mem_cgroup *memcg = pages[i]->memcg_data ? page_memcg_check(sys, pages[i]) : NULL;
        if (memcg)
            mod_memcg_state(memcg, BM_STAT_KERNEL_STACK_B, account * (long)sys->mm->page_size);
    }
}

int bm_task_stack_alloc(bm_system *sys, int32_t cpu, int32_t memcg_id, uint64_t *addr)
{
    BM_RCU_READ_SECTION(sys, cpu);
    BM_USER_CALL(sys, cpu);
    struct mem_cgroup *memcg, *old;
    struct page **pages;
    uint64_t nr = 0, i;
    int ret;

    if (!mm_args_ok(sys, cpu, 0) || !addr)
        return -EINVAL;
    if ((ret = bm_memcg_tryget_arg(sys, memcg_id, &memcg)))
        return ret;
    pthread_mutex_lock(&sys->lock);
    ret = __vmalloc(sys, cpu, thread_size(sys), GFP_KERNEL | __GFP_ZERO, addr);
    if (ret)
        goto out;
    pages = vmalloc_area_pages(sys, *addr, &nr);
    /* memcg_charge_kernel_stack(): memcg_kmem_charge_page(page, GFP_KERNEL, 0) each */
    old = set_active_memcg(sys, cpu, memcg);
    for (i = 0; i < nr && !ret; i++)
        ret = __memcg_kmem_charge_page(sys, cpu, pages[i], GFP_KERNEL, 0);
    restore_active_memcg(sys, cpu, old);
    if (ret) {      /* the pages charged so far are uncharged, then the stack freed */
        for (uint64_t j = 0; j < nr; j++)
            if (pages[j]->memcg_data)
                __memcg_kmem_uncharge_page(sys, cpu, pages[j], 0);
        __vfree(sys, cpu, *addr);
        ret = -ENOMEM;
        goto out;
    }
    for (i = 0; i < nr; i++)
        pages[i]->flags |= PG_kstack;
    account_kernel_stack(sys, pages, nr, 1);
out:
    pthread_mutex_unlock(&sys->lock);
    css_put(memcg);
    return ret;
}

int bm_task_stack_free(bm_system *sys, int32_t cpu, uint64_t addr)
{
    BM_RCU_READ_SECTION(sys, cpu);
    struct page **pages;
    uint64_t nr = 0, i;
    int ret = 0;

    if (!mm_args_ok(sys, cpu, 0))
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    pages = is_vmalloc_addr(addr) ? vmalloc_area_pages(sys, addr, &nr) : NULL;
    if (!pages || !(pages[0]->flags & PG_kstack)) {
        ret = -EINVAL;
        goto out;
    }
    account_kernel_stack(sys, pages, nr, -1);
    for (i = 0; i < nr; i++) {      /* memcg_kmem_uncharge_page() each */
        pages[i]->flags &= (uint16_t)~PG_kstack;
        if (pages[i]->memcg_data)
            __memcg_kmem_uncharge_page(sys, cpu, pages[i], 0);
    }
    __vfree(sys, cpu, addr);
out:
    pthread_mutex_unlock(&sys->lock);
    return ret;
}
