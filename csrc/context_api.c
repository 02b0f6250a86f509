/*
 * context_api.c - the bm_* entry points of the per-cpu context: what
 * `current` is on each simulated cpu (its task's memcg, current->active_memcg,
 * interrupt context with int_active_memcg), which decides the memcg a
 * kernel allocation is charged to (memcontrol.c: current_charge_memcg()),
 * and what a failed charge left on the cpu (OOM victim flag, the failure).
 */
#include "internal.h"

/* optional memcg handle, -1 = none; a reference is taken on the memcg */
static int opt_memcg_tryget_arg(struct bm_system *sys, int32_t id, struct mem_cgroup **out)
{
    if (id == -1) {
        *out = NULL;
        return 0;
    }
    return bm_memcg_tryget_arg(sys, id, out);
}

/* put memcg (and the caller's reference on it) in a context slot, dropping
   the old one's (a charge naming this cpu from another thread may still use
   the old one: the read-side section keeps its memory) */
static void set_ctx(struct mem_cgroup *_Atomic *slot, struct mem_cgroup *memcg)
{
    css_put(atomic_exchange_explicit(slot, memcg, memory_order_relaxed));
}

int bm_set_task(bm_system *sys, int32_t cpu, int32_t memcg_id, int32_t active_id)
{
    BM_RCU_READ_SECTION(sys, cpu);
    struct mem_cgroup *memcg, *active;
    struct bm_cpu *c;
    int ret;

    if (!sys || !bm_cpu_valid(sys, cpu))
        return -EINVAL;
    if ((ret = opt_memcg_tryget_arg(sys, memcg_id, &memcg)))
        return ret;
    if ((ret = opt_memcg_tryget_arg(sys, active_id, &active))) {
        css_put(memcg);
        return ret;
    }
    c = cpu_of(sys, cpu);
    if (atomic_load_explicit(&c->task_memcg, memory_order_relaxed) != memcg) {
        /* another task: its own over-high debt and victim flag */
        atomic_store_explicit(&c->memcg_nr_pages_over_high, 0, memory_order_relaxed);
        atomic_store_explicit(&c->oom_victim, 0, memory_order_relaxed);
    }
    set_ctx(&c->task_memcg, memcg);
    set_ctx(&c->task_active_memcg, active);
    return 0;
}

int bm_syscall_enter(bm_system *sys, int32_t cpu)
{
    BM_RCU_READ_SECTION(sys, cpu);
    if (!sys || !bm_cpu_valid(sys, cpu))
        return -EINVAL;
    over_high_defer();
    return 0;
}

/* sys NULL: the System was closed meanwhile; the call only ends */
int bm_syscall_exit(bm_system *sys, int32_t cpu)
{
    BM_RCU_READ_SECTION(sys, cpu);
    if (!bm_over_high_deferred || (sys && !bm_cpu_valid(sys, cpu)))
        return -EINVAL;
    return_to_user(sys, cpu);
    return 0;
}

int bm_set_interrupt(bm_system *sys, int32_t cpu, int32_t in_interrupt)
{
    BM_RCU_READ_SECTION(sys, cpu);
    if (!sys || !bm_cpu_valid(sys, cpu))
        return -EINVAL;
    atomic_store_explicit(&cpu_of(sys, cpu)->in_interrupt, in_interrupt ? 1 : 0, memory_order_relaxed);
    return 0;
}

/* mirrors set_active_memcg(): int_active_memcg in interrupt context, else
   current->active_memcg; the old value (-1 none) goes to *old */
int bm_set_active_memcg(bm_system *sys, int32_t cpu, int32_t memcg_id, int32_t *old)
{
    BM_RCU_READ_SECTION(sys, cpu);
    struct mem_cgroup *memcg, *_Atomic *slot, *prev;
    struct bm_cpu *c;
    int ret;

    if (!sys || !old || !bm_cpu_valid(sys, cpu))
        return -EINVAL;
    if ((ret = opt_memcg_tryget_arg(sys, memcg_id, &memcg)))
        return ret;
    c = cpu_of(sys, cpu);
    slot = atomic_load_explicit(&c->in_interrupt, memory_order_relaxed) ? &c->int_active_memcg
                                                                       : &c->task_active_memcg;
    prev = atomic_exchange_explicit(slot, memcg, memory_order_relaxed);
    *old = prev ? prev->id : -1;
    css_put(prev);
    return 0;
}

int bm_take_oom_victim(bm_system *sys, int32_t cpu)
{
    BM_RCU_READ_SECTION(sys, cpu);
    struct bm_cpu *c;
    int v;

    if (!sys || !bm_cpu_valid(sys, cpu))
        return -EINVAL;
    c = cpu_of(sys, cpu);
    v = atomic_exchange_explicit(&c->oom_victim, 0, memory_order_relaxed);
    return v;
}

/* take the record of the last charge that failed on `cpu` (memcg -1: none) */
int bm_last_charge_failure(bm_system *sys, int32_t cpu, struct bm_charge_failure *out)
{
    BM_RCU_READ_SECTION(sys, cpu);
    if (!sys || !out || !bm_cpu_valid(sys, cpu))
        return -EINVAL;
    struct bm_cpu *c = cpu_of(sys, cpu);
    bm_cpu_lock(c);
    *out = c->last_failure;
    c->last_failure.memcg = -1;
    bm_cpu_unlock(c);
    return 0;
}

int bm_get_obj_cgroup_from_current(bm_system *sys, int32_t cpu, int32_t *objcg_id)
{
    BM_RCU_READ_SECTION(sys, cpu);
    struct obj_cgroup *objcg;

    if (!sys || !objcg_id || !bm_cpu_valid(sys, cpu))
        return -EINVAL;
    objcg = get_obj_cgroup_from_current(sys, cpu);
    if (objcg)
        atomic_fetch_add(&objcg->ext_refs, 1);   /* the reference now belongs to Python */
    *objcg_id = objcg ? objcg->id : -1;
    return 0;
}

