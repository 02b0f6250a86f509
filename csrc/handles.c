/*
 * handles.c - the lifetime of memcg and objcg handles: id slots with
 * generations (the kernel's mem_cgroup_id idr, reused when freed), and the
 * grace period after which a freed memcg or objcg is given back to the host
 * (the kernel frees them through RCU: css_free_rwork_fn(), kfree_rcu()).
 * internal.h states the rules at struct bm_ids and struct bm_rcu.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define NR_SLOTS (MEM_CGROUP_ID_MAX + 1)

void *bm_table_alloc(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);

    return p == MAP_FAILED ? NULL : p;
}

void bm_table_free(void *table, size_t bytes)
{
    if (table)
        munmap(table, bytes);
}

int bm_ids_init(struct bm_ids *ids)
{
    memset(ids, 0, sizeof(*ids));
    ids->ring = bm_table_alloc(NR_SLOTS * sizeof(*ids->ring));
    ids->gen = bm_table_alloc(NR_SLOTS * sizeof(*ids->gen));
    if (!ids->ring || !ids->gen) {
        bm_ids_destroy(ids);
        return -ENOMEM;
    }
    return 0;
}

void bm_ids_destroy(struct bm_ids *ids)
{
    bm_table_free(ids->ring, NR_SLOTS * sizeof(*ids->ring));
    bm_table_free(ids->gen, NR_SLOTS * sizeof(*ids->gen));
    ids->ring = NULL;
    ids->gen = NULL;
}

/* idr_alloc() of a slot: a never used one while the quarantine of freed ones
   is short, else the oldest freed one; its handle carries the slot's
   generation.  -ENOSPC when every slot is taken. */
int32_t bm_ids_alloc(struct bm_ids *ids)
{
    int32_t slot;

    if (ids->nr_free > BM_ID_QUARANTINE || (ids->nr_free && ids->nr_fresh == NR_SLOTS)) {
        slot = ids->ring[ids->head];
        ids->head = (ids->head + 1) % NR_SLOTS;
        ids->nr_free--;
    } else if (ids->nr_fresh < NR_SLOTS) {
        slot = ids->nr_fresh++;
    } else {
        return -ENOSPC;
    }
    return (int32_t)((uint32_t)ids->gen[slot] << BM_HANDLE_GEN_SHIFT) | slot;
}

/* idr_remove(): the slot waits in the ring; its next handle is a new one */
void bm_ids_free(struct bm_ids *ids, int32_t handle)
{
    int32_t slot = BM_HANDLE_SLOT(handle);

    ids->gen[slot] = (uint16_t)((ids->gen[slot] + 1) & BM_HANDLE_GEN_MASK);
    ids->ring[(ids->head + ids->nr_free) % NR_SLOTS] = slot;
    ids->nr_free++;
}

void call_rcu_free(struct bm_system *sys, struct rcu_head *head, void *obj)
{
    head->obj = obj;
    head->next = sys->rcu.queued;
    sys->rcu.queued = head;
    atomic_store(&sys->rcu.pending, 1);
}

static _Atomic long *reader_counter(struct bm_system *sys, uint32_t i)
{
    return i < sys->cfg.nr_cpus ? &sys->cpus[i].nr_readers : &sys->nr_anon_readers;
}

static void free_list(struct rcu_head *head)
{
    while (head) {
        struct rcu_head *next = head->next;
        free(head->obj);
        head = next;
    }
}

/*
 * One step of the grace-period machine, tried at the end of a read-side
 * section when something is pending; never waits.  A batch of queued structs
 * starts its grace period when the previous batch is done: from then on,
 * each reader counter must be seen at zero once (seq_cst loads after a
 * seq_cst fence: the unlinks, made under tree_lock before the batch was
 * taken, precede the loads, and a section that increments its counter later
 * cannot find a struct of the batch).  When every counter was seen at zero
 * the batch is freed.
 */
void rcu_reclaim(struct bm_system *sys)
{
    struct bm_rcu *rcu = &sys->rcu;
    uint32_t n = sys->cfg.nr_cpus + 1;
    struct rcu_head *done = NULL;

    if (atomic_flag_test_and_set_explicit(&rcu->lock, memory_order_acquire))
        return;   /* another thread is at it */
    if (!rcu->waiting) {
        pthread_mutex_lock(&sys->tree_lock);
        rcu->waiting = rcu->queued;
        rcu->queued = NULL;
        if (!rcu->waiting)
            atomic_store(&rcu->pending, 0);
        pthread_mutex_unlock(&sys->tree_lock);
        if (rcu->waiting) {
            memset(rcu->wait, 1, n);
            rcu->nr_wait = n;
        }
    }
    if (rcu->waiting) {
        atomic_thread_fence(memory_order_seq_cst);
        for (uint32_t i = 0; i < n && rcu->nr_wait; i++) {
            if (rcu->wait[i] && atomic_load(reader_counter(sys, i)) == 0) {
                rcu->wait[i] = 0;
                rcu->nr_wait--;
            }
        }
        if (!rcu->nr_wait) {
            done = rcu->waiting;
            rcu->waiting = NULL;
        }
    }
    atomic_flag_clear_explicit(&rcu->lock, memory_order_release);
    free_list(done);
}

void rcu_barrier_free(struct bm_system *sys)
{
    free_list(sys->rcu.waiting);
    free_list(sys->rcu.queued);
    sys->rcu.waiting = NULL;
    sys->rcu.queued = NULL;
    atomic_store(&sys->rcu.pending, 0);
}
