/*
 * mm_init.c - set-up and teardown of the simulated memory (struct mm_state):
 * the page frames and every allocator on top of them, in order (the kernel
 * sizes its memory map and hands the free pages to the buddy allocator at
 * boot, mm/mm_init.c, before slab, vmalloc and percpu come up).  Each
 * allocator file sets up and tears down its own part.  The limits on the
 * configuration were checked by bm_config_check() before this runs.
 */
#include <stdlib.h>

#include "mm_internal.h"

int bm_mm_init(struct bm_system *sys)
{
    struct mm_state *mm = calloc(1, sizeof(*mm));

    if (!mm)
        return -ENOMEM;
    mm->page_size = sys->cfg.page_size;
    mm->page_shift = ilog2_u64(mm->page_size);
    mm->nr_pages = sys->cfg.ram_pages;
    if (mm_page_alloc_init(mm)) {
        free(mm);
        return -ENOMEM;
    }
    mm_slab_init(mm, sys->cfg.nr_cpus);
    mm_vmalloc_init(mm);
    mm_percpu_init(mm);
    sys->mm = mm;
    return 0;
}

void bm_mm_destroy(struct bm_system *sys)
{
    struct mm_state *mm = sys->mm;

    if (!mm)
        return;
    mm_percpu_destroy(mm);
    mm_vmalloc_destroy(mm);
    mm_slab_destroy(mm);
    mm_page_alloc_destroy(mm);
    free(mm);
    sys->mm = NULL;
}
