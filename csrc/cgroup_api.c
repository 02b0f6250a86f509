/*
 * cgroup_api.c - the bm_* entry points of memory cgroups and obj_cgroups as
 * handles: mkdir (bm_memcg_create), rmdir (bm_memcg_offline), the pins
 * Python holds (bm_memcg_get/put, bm_obj_cgroup_get/put) and the cgroup file
 * writes (bm_memcg_write).  Each checks its arguments and takes the locks;
 * the work is memcontrol.c's.
 */
#include "mm_internal.h"

/* cgroup_mkdir() -> mem_cgroup_css_alloc() (the accounted structures,
   charged to the parent through the context of cpu) -> css_online */
int bm_memcg_create(bm_system *sys, int32_t parent_id, int32_t cpu)
{
    BM_RCU_READ_SECTION(sys, cpu);
    BM_USER_CALL(sys, cpu);
    uint64_t addrs[BM_MEMCG_ALLOC_MAX] = {0};
    struct mem_cgroup *parent, *memcg;
    int ret;

    if (!sys || !bm_cpu_valid(sys, cpu))
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    css_free_work(sys, 0);
    ret = bm_memcg_arg(sys, parent_id, &parent);
    if (ret)
        goto out;
    if (atomic_load(&parent->state) != BM_MEMCG_ONLINE) {   /* mkdir in a removed directory */
        ret = -ENOENT;
        goto out;
    }
    ret = memcg_alloc_structs(sys, cpu, parent, addrs);
    if (ret)
        goto out;
    ret = mem_cgroup_css_online(sys, parent, addrs, &memcg);
    if (!ret) {
        ret = memcg->id;
    } else {
        for (unsigned i = 0; i < sys->cfg.nr_memcg_allocs; i++)
            if (addrs[i])
                (sys->cfg.memcg_allocs[i].kind == BM_ALLOC_PERCPU ? __free_percpu : __kfree)(sys, cpu, addrs[i]);
    }
out:
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

/* cgroup_rmdir(): -EBUSY for root and for a memcg with online children
   (cgroup_destroy_locked()'s css_has_online_children), -ENOENT when already
   removed; then mem_cgroup_css_offline() and the base reference goes: the
   memcg is dying until its last reference goes. */
int bm_memcg_offline(bm_system *sys, int32_t id)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct mem_cgroup *memcg;
    int ret;

    if (!sys)
        return -EINVAL;
    pthread_mutex_lock(&sys->lock);
    ret = bm_memcg_arg(sys, id, &memcg);
    if (ret)
        goto out;
    if (mem_cgroup_is_root(memcg)) {
        ret = -EBUSY;   /* rmdir of the mount point */
        goto out;
    }
    if (atomic_load(&memcg->state) != BM_MEMCG_ONLINE) {
        ret = -ENOENT;
        goto out;
    }
    /* lock-free walk: children only go online under sys->lock, held here */
    for (struct mem_cgroup *ch = load_child(memcg); ch; ch = load_sibling(ch)) {
        if (atomic_load(&ch->state) == BM_MEMCG_ONLINE) {
            ret = -EBUSY;
            goto out;
        }
    }
    mem_cgroup_css_offline(sys, memcg);
    atomic_store(&memcg->state, BM_MEMCG_DYING);
    atomic_fetch_add(&sys->nr_dying, 1);
    css_put(memcg);
    css_free_work(sys, 0);
    ret = 0;
out:
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

int bm_memcg_get(bm_system *sys, int32_t id)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct mem_cgroup *memcg;
    int ret;

    ret = bm_memcg_tryget_arg(sys, id, &memcg);
    if (ret)
        return ret;
    atomic_fetch_add(&memcg->ext_refs, 1);   /* the reference now belongs to Python */
    return 0;
}

int bm_memcg_put(bm_system *sys, int32_t id)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct mem_cgroup *memcg;
    int ret;
    int v;

    ret = bm_memcg_arg(sys, id, &memcg);
    if (ret)
        return ret;
    v = atomic_load(&memcg->ext_refs);
    do {
        if (v <= 0)
            return -EINVAL;   /* more puts than gets */
    } while (!atomic_compare_exchange_weak(&memcg->ext_refs, &v, v - 1));
    css_put(memcg);
    css_free_flush(sys, 0);
    return 0;
}

/* The checks a cgroup file write meets before its handler
   (mem_cgroup_file_write()): the file exists on this hierarchy (the kmem.*
   and force_empty files only on v1), root has no limit files, the value is a
   page count the counter can hold, the memcg is not removed. */
int bm_memcg_write(bm_system *sys, int32_t id, int32_t what, int64_t pages)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct mem_cgroup *memcg;
    bool v1;
    int ret;

    ret = bm_memcg_arg(sys, id, &memcg);
    if (ret)
        return ret;
    if (what < BM_WRITE_MAX || what > BM_WRITE_FORCE_EMPTY)
        return -EINVAL;
    if (what <= BM_WRITE_KMEM_MAX && (pages < 0 || pages > sys->page_counter_max))
        return -EINVAL;
    v1 = sys->cfg.cgroup_v1 != 0;
    if (!v1 && (what == BM_WRITE_KMEM_MAX || what == BM_WRITE_KMEM_RESET_PEAK ||
                what == BM_WRITE_KMEM_RESET_FAILCNT || what == BM_WRITE_FORCE_EMPTY))
        return -EINVAL;   /* no such file on the default hierarchy */
    if (mem_cgroup_is_root(memcg) &&
        (what <= BM_WRITE_KMEM_MAX || what == BM_WRITE_FORCE_EMPTY))
        return -EINVAL;

    pthread_mutex_lock(&sys->lock);
    /* online under sys->lock: its base reference stays until we unlock */
    if (atomic_load(&memcg->state) != BM_MEMCG_ONLINE)
        ret = -ENOENT;
    else
        ret = mem_cgroup_file_write(sys, memcg, what, (long)pages);
    css_free_work(sys, 0);
    pthread_mutex_unlock(&sys->lock);
    return ret;
}

int bm_obj_cgroup_get(bm_system *sys, int32_t id)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct obj_cgroup *objcg;

    if (!sys || id < 0)
        return -EINVAL;
    objcg = bm_objcg_lookup(sys, id);
    if (!objcg || !obj_cgroup_tryget(objcg))
        return -ENOENT;
    atomic_fetch_add(&objcg->ext_refs, 1);
    return 0;
}

int bm_obj_cgroup_put(bm_system *sys, int32_t id)
{
    BM_RCU_READ_SECTION(sys, -1);
    struct obj_cgroup *objcg;
    long v;

    if (!sys || id < 0)
        return -EINVAL;
    objcg = bm_objcg_lookup(sys, id);
    if (!objcg)
        return -ENOENT;
    v = atomic_load(&objcg->ext_refs);
    do {
        if (v <= 0)
            return -EINVAL;
    } while (!atomic_compare_exchange_weak(&objcg->ext_refs, &v, v - 1));
    obj_cgroup_put(objcg);
    css_free_flush(sys, 0);
    return 0;
}
