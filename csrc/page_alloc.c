/* placeholder: replaced by the allocator work (page frames, memcg_data) */
#include "internal.h"
int bm_mm_init(struct bm_system *sys) { (void)sys; return 0; }
void bm_mm_destroy(struct bm_system *sys) { (void)sys; }
struct page *bm_pfn_to_page(struct bm_system *sys, uint64_t pfn) { (void)sys; (void)pfn; return NULL; }
int bm_alloc_pages(bm_system *sys, int32_t cpu, int32_t order, uint32_t gfp, uint64_t *pfn)
{ (void)sys; (void)cpu; (void)order; (void)gfp; (void)pfn; return -ENOSYS; }
int bm_free_pages(bm_system *sys, int32_t cpu, uint64_t pfn, int32_t order)
{ (void)sys; (void)cpu; (void)pfn; (void)order; return -ENOSYS; }
int bm_page_info(bm_system *sys, uint64_t pfn, struct bm_page_info *out)
{ (void)sys; (void)pfn; (void)out; return -ENOSYS; }
int64_t bm_ram_used_pages(bm_system *sys) { (void)sys; return -ENOSYS; }
