/* placeholders for the allocator entry points; deleted as slab.c, vmalloc.c,
   percpu.c and replay.c land */
#include "internal.h"
int bm_kmalloc(bm_system *s, int32_t c, uint64_t z, uint32_t g, uint64_t *a) { (void)s; (void)c; (void)z; (void)g; (void)a; return -ENOSYS; }
int bm_kfree(bm_system *s, int32_t c, uint64_t a) { (void)s; (void)c; (void)a; return -ENOSYS; }
int bm_ksize(bm_system *s, uint64_t a, uint64_t *z) { (void)s; (void)a; (void)z; return -ENOSYS; }
int bm_kmem_cache_create(bm_system *s, uint64_t z, uint32_t f, int32_t *c) { (void)s; (void)z; (void)f; (void)c; return -ENOSYS; }
int bm_kmem_cache_alloc(bm_system *s, int32_t c, int32_t k, uint32_t g, uint64_t *a) { (void)s; (void)c; (void)k; (void)g; (void)a; return -ENOSYS; }
int bm_kmem_cache_free(bm_system *s, int32_t c, int32_t k, uint64_t a) { (void)s; (void)c; (void)k; (void)a; return -ENOSYS; }
int bm_vmalloc(bm_system *s, int32_t c, uint64_t z, uint32_t g, uint64_t *a) { (void)s; (void)c; (void)z; (void)g; (void)a; return -ENOSYS; }
int bm_vfree(bm_system *s, int32_t c, uint64_t a) { (void)s; (void)c; (void)a; return -ENOSYS; }
int bm_kvmalloc(bm_system *s, int32_t c, uint64_t z, uint32_t g, uint64_t *a) { (void)s; (void)c; (void)z; (void)g; (void)a; return -ENOSYS; }
int bm_kvfree(bm_system *s, int32_t c, uint64_t a) { (void)s; (void)c; (void)a; return -ENOSYS; }
int bm_alloc_percpu(bm_system *s, int32_t c, uint64_t z, uint64_t al, uint32_t g, uint64_t *a) { (void)s; (void)c; (void)z; (void)al; (void)g; (void)a; return -ENOSYS; }
int bm_free_percpu(bm_system *s, int32_t c, uint64_t a) { (void)s; (void)c; (void)a; return -ENOSYS; }
int bm_obj_cgroup_of(bm_system *s, uint64_t a, int32_t *o, int32_t *m) { (void)s; (void)a; (void)o; (void)m; return -ENOSYS; }
int64_t bm_replay(bm_system *s, const struct bm_op *o, int64_t n, int64_t *r) { (void)s; (void)o; (void)n; (void)r; return -ENOSYS; }
int64_t bm_kmalloc_bulk(bm_system *s, int32_t c, const uint64_t *z, int64_t n, uint32_t g, uint64_t *a) { (void)s; (void)c; (void)z; (void)n; (void)g; (void)a; return -ENOSYS; }
int64_t bm_kfree_bulk(bm_system *s, int32_t c, const uint64_t *a, int64_t n, int64_t *r) { (void)s; (void)c; (void)a; (void)n; (void)r; return -ENOSYS; }
