/*
 * bpf_lru_list.c - the LRU of the BPF LRU hash maps, function by function as
 * kernel/bpf/bpf_lru_list.c (the same code in every release 5.10 ... 6.18 but
 * for the target_free switch below).
 *
 * Two flavours, chosen at map creation:
 *  - the common LRU: one active / inactive / free list set for the map, plus a
 *    local free list and a local pending list per cpu.  A cpu takes nodes from
 *    its local free list; when that is empty it flushes its pending nodes into
 *    the common lists, rotates them and refills (bpf_lru_list_pop_free_to_local());
 *    when even that finds nothing it steals from the cpus' local lists;
 *  - BPF_F_NO_COMMON_LRU (percpu): one active / inactive / free list set per cpu,
 *    max_entries / nr_cpus nodes each; a cpu only ever takes from its own.
 * A node's reference bit is set by program lookups and by updates that replace
 * an element (hashtab.c); rotations give a referenced node another round on the
 * active list, shrinking frees unreferenced inactive nodes from the tail.
 *
 * The kernel's spinlocks are not needed: a store is used by one thread at a
 * time (bpfmem.h), so each cpu's lists are only touched under that rule.
 *
 * Switch lru_target_free_clamp, d4adf1c9ee77 "bpf: Adjust free target to avoid
 * global starvation of LRU map" (v6.16; 6.6.99, 6.12.39): a cpu refills its
 * local free list with target_free = clamp(nr_elems / nr_cpus / 2, 1,
 * LOCAL_FREE_TARGET) nodes instead of LOCAL_FREE_TARGET.
 */
#include <errno.h>
#include <stdlib.h>

#include "bpf_lru_list.h"

#define LOCAL_FREE_TARGET   128
#define LOCAL_NR_SCANS      LOCAL_FREE_TARGET
#define PERCPU_FREE_TARGET  4
#define PERCPU_NR_SCANS     PERCPU_FREE_TARGET
#define NONE                BPF_LRU_NONE

#define IS_LOCAL_LIST_TYPE(t) ((t) >= BPF_LOCAL_LIST_T_OFFSET)
#define LOCAL_FREE_IDX    (BPF_LRU_LOCAL_LIST_T_FREE - BPF_LOCAL_LIST_T_OFFSET)
#define LOCAL_PENDING_IDX (BPF_LRU_LOCAL_LIST_T_PENDING - BPF_LOCAL_LIST_T_OFFSET)

/* ---- struct list_head over entry indices (include/linux/list.h) ---- */

static void init_list_head(struct bpf_lru *lru, uint32_t h)
{
    lru->e[h].next = lru->e[h].prev = h;
}

static bool list_empty(const struct bpf_lru *lru, uint32_t h)
{
    return lru->e[h].next == h;
}

/* list_add(): n right after the head h */
static void list_add(struct bpf_lru *lru, uint32_t n, uint32_t h)
{
    uint32_t first = lru->e[h].next;

    lru->e[n].next = first;
    lru->e[n].prev = h;
    lru->e[first].prev = n;
    lru->e[h].next = n;
}

static void list_del(struct bpf_lru *lru, uint32_t n)
{
    uint32_t p = lru->e[n].prev, x = lru->e[n].next;

    lru->e[p].next = x;
    lru->e[x].prev = p;
}

static void list_move(struct bpf_lru *lru, uint32_t n, uint32_t h)
{
    list_del(lru, n);
    list_add(lru, n, h);
}

static uint32_t local_free_list(const struct bpf_lru *lru, uint32_t cpu)
{
    return lru->local_list[cpu].lists[LOCAL_FREE_IDX];
}

static uint32_t local_pending_list(const struct bpf_lru *lru, uint32_t cpu)
{
    return lru->local_list[cpu].lists[LOCAL_PENDING_IDX];
}

static bool bpf_lru_node_is_ref(const struct bpf_lru *lru, uint32_t n)
{
    return lru->e[n].ref;
}

static void bpf_lru_list_count_inc(struct bpf_lru_list *l, uint32_t type)
{
    if (type < NR_BPF_LRU_LIST_COUNT)
        l->counts[type]++;
}

static void bpf_lru_list_count_dec(struct bpf_lru_list *l, uint32_t type)
{
    if (type < NR_BPF_LRU_LIST_COUNT)
        l->counts[type]--;
}

/* ---- nodes made on first use (model-only) ---- */

/* Grows e[] to hold `want` entries; false without host memory. */
static bool lru_grow(struct bpf_lru *lru, uint32_t want)
{
    uint32_t cap = lru->cap ? lru->cap : 16;
    struct bpf_lru_entry *e;

    if (want <= lru->cap)
        return true;
    while (cap < want)
        cap = cap > UINT32_MAX / 2 ? want : cap * 2;
    e = realloc(lru->e, (size_t)cap * sizeof(*e));
    if (!e)
        return false;
    lru->e = e;
    lru->cap = cap;
    return true;
}

/* list_first_entry() of l's free list: its first linked node, else one of its
   never-used nodes, linked now; NONE when the list is empty */
static uint32_t free_list_first(struct bpf_lru *lru, struct bpf_lru_list *l)
{
    uint32_t h = l->lists[BPF_LRU_LIST_T_FREE], n;

    if (!list_empty(lru, h))
        return lru->e[h].next;
    /* bpf_lru_reserve() made room for every node one pop can make */
    if (!l->fresh || lru->nr_heads + lru->nr_nodes >= lru->cap)
        return NONE;
    l->fresh--;
    n = lru->nr_heads + lru->nr_nodes++;
    lru->e[n].cpu = l->fresh_cpu;
    lru->e[n].type = BPF_LRU_LIST_T_FREE;
    lru->e[n].ref = 0;
    list_add(lru, n, h);
    return n;
}

static bool free_list_empty(const struct bpf_lru *lru, const struct bpf_lru_list *l)
{
    return list_empty(lru, l->lists[BPF_LRU_LIST_T_FREE]) && !l->fresh;
}

/* ---- kernel/bpf/bpf_lru_list.c ---- */

static void __bpf_lru_node_move_to_free(struct bpf_lru *lru, struct bpf_lru_list *l, uint32_t n,
                                        uint32_t free_list, uint32_t tgt_free_type)
{
    if (IS_LOCAL_LIST_TYPE(lru->e[n].type))
        return;     /* the kernel's WARN_ON_ONCE */
    /* the rotation cursor steps back off a node that leaves */
    if (n == l->next_inactive_rotation)
        l->next_inactive_rotation = lru->e[n].prev;
    bpf_lru_list_count_dec(l, lru->e[n].type);
    lru->e[n].type = (uint8_t)tgt_free_type;
    list_move(lru, n, free_list);
}

/* a node from a local list into the LRU list set l */
static void __bpf_lru_node_move_in(struct bpf_lru *lru, struct bpf_lru_list *l, uint32_t n,
                                   uint32_t tgt_type)
{
    if (!IS_LOCAL_LIST_TYPE(lru->e[n].type) || IS_LOCAL_LIST_TYPE(tgt_type))
        return;
    bpf_lru_list_count_inc(l, tgt_type);
    lru->e[n].type = (uint8_t)tgt_type;
    lru->e[n].ref = 0;
    list_move(lru, n, l->lists[tgt_type]);
}

/* to the head of active, inactive or free within l, the ref bit cleared */
static void __bpf_lru_node_move(struct bpf_lru *lru, struct bpf_lru_list *l, uint32_t n,
                                uint32_t tgt_type)
{
    if (IS_LOCAL_LIST_TYPE(lru->e[n].type) || IS_LOCAL_LIST_TYPE(tgt_type))
        return;
    if (lru->e[n].type != tgt_type) {
        bpf_lru_list_count_dec(l, lru->e[n].type);
        bpf_lru_list_count_inc(l, tgt_type);
        lru->e[n].type = (uint8_t)tgt_type;
    }
    lru->e[n].ref = 0;
    if (n == l->next_inactive_rotation)
        l->next_inactive_rotation = lru->e[n].prev;
    list_move(lru, n, l->lists[tgt_type]);
}

static bool bpf_lru_list_inactive_low(const struct bpf_lru_list *l)
{
    return l->counts[BPF_LRU_LIST_T_INACTIVE] < l->counts[BPF_LRU_LIST_T_ACTIVE];
}

/* From the tail of active, at most nr_scans nodes and not past the node that
   was first: referenced ones back to the head of active, the rest to the head
   of inactive. */
static void __bpf_lru_list_rotate_active(struct bpf_lru *lru, struct bpf_lru_list *l)
{
    uint32_t active = l->lists[BPF_LRU_LIST_T_ACTIVE];
    uint32_t first = lru->e[active].next, n, tmp;
    unsigned int i = 0;

    for (n = lru->e[active].prev; n != active; n = tmp) {
        tmp = lru->e[n].prev;
        if (bpf_lru_node_is_ref(lru, n))
            __bpf_lru_node_move(lru, l, n, BPF_LRU_LIST_T_ACTIVE);
        else
            __bpf_lru_node_move(lru, l, n, BPF_LRU_LIST_T_INACTIVE);
        if (++i == lru->nr_scans || n == first)
            break;
    }
}

/* From the rotation cursor towards the head (wrapping past the list head), at
   most nr_scans nodes up to the one after the cursor: referenced nodes go to
   active, the rest stay for the next shrink.  The cursor is left where the
   walk stopped. */
static void __bpf_lru_list_rotate_inactive(struct bpf_lru *lru, struct bpf_lru_list *l)
{
    uint32_t inactive = l->lists[BPF_LRU_LIST_T_INACTIVE];
    uint32_t cur, last, next = inactive;
    unsigned int i = 0;

    if (list_empty(lru, inactive))
        return;
    last = lru->e[l->next_inactive_rotation].next;
    if (last == inactive)
        last = lru->e[last].next;
    cur = l->next_inactive_rotation;
    while (i < lru->nr_scans) {
        if (cur == inactive) {
            cur = lru->e[cur].prev;
            continue;
        }
        next = lru->e[cur].prev;
        if (bpf_lru_node_is_ref(lru, cur))
            __bpf_lru_node_move(lru, l, cur, BPF_LRU_LIST_T_ACTIVE);
        if (cur == last)
            break;
        cur = next;
        i++;
    }
    l->next_inactive_rotation = next;
}

/* From the tail of inactive, at most nr_scans nodes: referenced ones to
   active, unreferenced ones out of the table and onto free_list until
   tgt_nshrink were freed.  Returns how many were. */
static unsigned int __bpf_lru_list_shrink_inactive(struct bpf_lru *lru, struct bpf_lru_list *l,
                                                   unsigned int tgt_nshrink, uint32_t free_list,
                                                   uint32_t tgt_free_type)
{
    uint32_t inactive = l->lists[BPF_LRU_LIST_T_INACTIVE], n, tmp;
    unsigned int nshrinked = 0, i = 0;

    for (n = lru->e[inactive].prev; n != inactive; n = tmp) {
        tmp = lru->e[n].prev;
        if (bpf_lru_node_is_ref(lru, n)) {
            __bpf_lru_node_move(lru, l, n, BPF_LRU_LIST_T_ACTIVE);
        } else if (lru->del_from_htab(lru->del_arg, n - lru->nr_heads)) {
            __bpf_lru_node_move_to_free(lru, l, n, free_list, tgt_free_type);
            if (++nshrinked == tgt_nshrink)
                break;
        }
        if (++i == lru->nr_scans)
            break;
    }
    return nshrinked;
}

static void __bpf_lru_list_rotate(struct bpf_lru *lru, struct bpf_lru_list *l)
{
    if (bpf_lru_list_inactive_low(l))
        __bpf_lru_list_rotate_active(lru, l);
    __bpf_lru_list_rotate_inactive(lru, l);
}

/* __bpf_lru_list_shrink_inactive(); if that freed nothing, the tail-most node
   of inactive (or, inactive being empty, of active) that leaves the table,
   its ref bit ignored. */
static unsigned int __bpf_lru_list_shrink(struct bpf_lru *lru, struct bpf_lru_list *l,
                                          unsigned int tgt_nshrink, uint32_t free_list,
                                          uint32_t tgt_free_type)
{
    uint32_t force, n, tmp;
    unsigned int nshrinked;

    nshrinked = __bpf_lru_list_shrink_inactive(lru, l, tgt_nshrink, free_list, tgt_free_type);
    if (nshrinked)
        return nshrinked;
    if (!list_empty(lru, l->lists[BPF_LRU_LIST_T_INACTIVE]))
        force = l->lists[BPF_LRU_LIST_T_INACTIVE];
    else
        force = l->lists[BPF_LRU_LIST_T_ACTIVE];
    for (n = lru->e[force].prev; n != force; n = tmp) {
        tmp = lru->e[n].prev;
        if (lru->del_from_htab(lru->del_arg, n - lru->nr_heads)) {
            __bpf_lru_node_move_to_free(lru, l, n, free_list, tgt_free_type);
            return 1;
        }
    }
    return 0;
}

/* cpu's pending nodes into l, oldest first: referenced to active, else inactive */
static void __local_list_flush(struct bpf_lru *lru, struct bpf_lru_list *l, uint32_t cpu)
{
    uint32_t pending = local_pending_list(lru, cpu), n, tmp;

    for (n = lru->e[pending].prev; n != pending; n = tmp) {
        tmp = lru->e[n].prev;
        if (bpf_lru_node_is_ref(lru, n))
            __bpf_lru_node_move_in(lru, l, n, BPF_LRU_LIST_T_ACTIVE);
        else
            __bpf_lru_node_move_in(lru, l, n, BPF_LRU_LIST_T_INACTIVE);
    }
}

static void bpf_lru_list_push_free(struct bpf_lru *lru, struct bpf_lru_list *l, uint32_t n)
{
    if (IS_LOCAL_LIST_TYPE(lru->e[n].type))
        return;
    __bpf_lru_node_move(lru, l, n, BPF_LRU_LIST_T_FREE);
}

/* Refill cpu's local free list from the common lists: flush its pending
   nodes, rotate, take up to target_free free nodes, and shrink for the rest. */
static void bpf_lru_list_pop_free_to_local(struct bpf_lru *lru, uint32_t cpu)
{
    struct bpf_lru_list *l = &lru->lists[0];
    uint32_t local_free = local_free_list(lru, cpu), n;
    unsigned int nfree = 0;

    __local_list_flush(lru, l, cpu);
    __bpf_lru_list_rotate(lru, l);
    while ((n = free_list_first(lru, l)) != NONE) {
        __bpf_lru_node_move_to_free(lru, l, n, local_free, BPF_LRU_LOCAL_LIST_T_FREE);
        if (++nfree == lru->target_free)
            break;
    }
    if (nfree < lru->target_free)
        __bpf_lru_list_shrink(lru, l, lru->target_free - nfree, local_free,
                              BPF_LRU_LOCAL_LIST_T_FREE);
}

static void __local_list_add_pending(struct bpf_lru *lru, uint32_t cpu, uint32_t n)
{
    lru->e[n].cpu = (uint16_t)cpu;
    lru->e[n].type = BPF_LRU_LOCAL_LIST_T_PENDING;
    lru->e[n].ref = 0;
    list_add(lru, n, local_pending_list(lru, cpu));
}

static uint32_t __local_list_pop_free(struct bpf_lru *lru, uint32_t cpu)
{
    uint32_t h = local_free_list(lru, cpu), n;

    if (list_empty(lru, h))
        return NONE;
    n = lru->e[h].next;
    list_del(lru, n);
    return n;
}

/* The tail-most pending node of cpu that leaves the table: unreferenced ones
   first, then any. */
static uint32_t __local_list_pop_pending(struct bpf_lru *lru, uint32_t cpu)
{
    uint32_t pending = local_pending_list(lru, cpu), n;
    int force;

    for (force = 0; force < 2; force++) {
        for (n = lru->e[pending].prev; n != pending; n = lru->e[n].prev) {
            if ((!bpf_lru_node_is_ref(lru, n) || force) &&
                lru->del_from_htab(lru->del_arg, n - lru->nr_heads)) {
                list_del(lru, n);
                return n;
            }
        }
    }
    return NONE;
}

/* cpu's own list: rotate; when its free list is empty shrink up to
   PERCPU_FREE_TARGET nodes into it; the first free node goes to inactive. */
static uint32_t bpf_percpu_lru_pop_free(struct bpf_lru *lru, uint32_t cpu)
{
    struct bpf_lru_list *l = &lru->lists[cpu];
    uint32_t free_list = l->lists[BPF_LRU_LIST_T_FREE], n;

    __bpf_lru_list_rotate(lru, l);
    if (free_list_empty(lru, l))
        __bpf_lru_list_shrink(lru, l, PERCPU_FREE_TARGET, free_list, BPF_LRU_LIST_T_FREE);
    n = free_list_first(lru, l);
    if (n != NONE) {
        lru->e[n].ref = 0;
        __bpf_lru_node_move(lru, l, n, BPF_LRU_LIST_T_INACTIVE);
    }
    return n;
}

/* cpu's local free list (refilled from the common lists when empty); failing
   that, steal a free or pending node from the cpus' local lists round-robin
   from next_steal.  The node joins cpu's pending list. */
static uint32_t bpf_common_lru_pop_free(struct bpf_lru *lru, uint32_t cpu)
{
    struct bpf_lru_locallist *loc_l = &lru->local_list[cpu];
    uint32_t n, steal, first_steal;

    n = __local_list_pop_free(lru, cpu);
    if (n == NONE) {
        bpf_lru_list_pop_free_to_local(lru, cpu);
        n = __local_list_pop_free(lru, cpu);
    }
    if (n != NONE) {
        __local_list_add_pending(lru, cpu, n);
        return n;
    }
    first_steal = steal = loc_l->next_steal;
    do {
        n = __local_list_pop_free(lru, steal);
        if (n == NONE)
            n = __local_list_pop_pending(lru, steal);
        steal = steal + 1 < lru->nr_cpus ? steal + 1 : 0;   /* cpumask_next_wrap() */
    } while (n == NONE && steal != first_steal);
    loc_l->next_steal = (uint16_t)steal;
    if (n != NONE)
        __local_list_add_pending(lru, cpu, n);
    return n;
}

uint32_t bpf_lru_pop_free(struct bpf_lru *lru, uint32_t cpu)
{
    uint32_t n;

    if (cpu >= lru->nr_cpus)
        return NONE;
    n = lru->percpu ? bpf_percpu_lru_pop_free(lru, cpu) : bpf_common_lru_pop_free(lru, cpu);
    return n == NONE ? NONE : n - lru->nr_heads;
}

/* A pending node back to its cpu's local free list; any other to the free
   list of its LRU list set. */
void bpf_lru_push_free(struct bpf_lru *lru, uint32_t node)
{
    uint32_t n = lru->nr_heads + node, type;

    if (node >= lru->nr_nodes)
        return;
    if (lru->percpu) {
        /* bpf_percpu_lru_push_free(): the list of the cpu that owns the node */
        __bpf_lru_node_move(lru, &lru->lists[lru->e[n].cpu], n, BPF_LRU_LIST_T_FREE);
        return;
    }
    /* bpf_common_lru_push_free() */
    type = lru->e[n].type;
    if (type == BPF_LRU_LIST_T_FREE || type == BPF_LRU_LOCAL_LIST_T_FREE)
        return;     /* the kernel's WARN_ON_ONCE */
    if (type == BPF_LRU_LOCAL_LIST_T_PENDING) {
        lru->e[n].type = BPF_LRU_LOCAL_LIST_T_FREE;
        lru->e[n].ref = 0;
        list_move(lru, n, local_free_list(lru, lru->e[n].cpu));
        return;
    }
    bpf_lru_list_push_free(lru, &lru->lists[0], n);
}

/* bpf_lru_node_set_ref() (bpf_lru_list.h) */
void bpf_lru_node_set_ref(struct bpf_lru *lru, uint32_t node)
{
    if (node < lru->nr_nodes)
        lru->e[lru->nr_heads + node].ref = 1;
}

void bpf_lru_populate(struct bpf_lru *lru, uint32_t nr_elems, bool clamp_target_free)
{
    uint32_t cpu, per_cpu = nr_elems / lru->nr_cpus;

    if (lru->percpu) {
        /* bpf_percpu_lru_populate(): nr_elems / nr_cpus nodes on each cpu's list */
        for (cpu = 0; cpu < lru->nr_cpus; cpu++) {
            lru->lists[cpu].fresh = per_cpu;
            lru->lists[cpu].fresh_cpu = (uint16_t)cpu;
        }
        return;
    }
    /* bpf_common_lru_populate() */
    lru->lists[0].fresh = nr_elems;
    if (clamp_target_free) {
        unsigned int t = per_cpu / 2;
        lru->target_free = t < 1 ? 1 : t > LOCAL_FREE_TARGET ? LOCAL_FREE_TARGET : t;
    } else {
        lru->target_free = LOCAL_FREE_TARGET;
    }
}

uint32_t bpf_lru_reserve(struct bpf_lru *lru)
{
    uint64_t total = lru->nr_nodes, want;
    uint32_t i, nlists = lru->percpu ? lru->nr_cpus : 1;

    for (i = 0; i < nlists; i++)
        total += lru->lists[i].fresh;
    /* one pop makes at most one node per cpu list, or target_free for the
       common list's refill of a local free list */
    want = (uint64_t)lru->nr_nodes + (lru->percpu ? 1 : lru->target_free);
    if (want > total)
        want = total;
    if (!lru_grow(lru, (uint32_t)(lru->nr_heads + want)))
        return NONE;
    return (uint32_t)want;
}

static void bpf_lru_list_init(struct bpf_lru *lru, struct bpf_lru_list *l, uint32_t *head)
{
    uint32_t i;

    for (i = 0; i < NR_BPF_LRU_LIST_T; i++) {
        l->lists[i] = (*head)++;
        init_list_head(lru, l->lists[i]);
    }
    l->counts[0] = l->counts[1] = 0;
    l->next_inactive_rotation = l->lists[BPF_LRU_LIST_T_INACTIVE];
    l->fresh = 0;
    l->fresh_cpu = 0;
}

int bpf_lru_init(struct bpf_lru *lru, bool percpu, uint32_t nr_cpus,
                 del_from_htab_func del_from_htab, void *del_arg)
{
    uint32_t cpu, head = 0, i;

    if (nr_cpus == 0 || nr_cpus > 65536 || !del_from_htab)
        return -EINVAL;
    *lru = (struct bpf_lru){0};
    lru->nr_cpus = nr_cpus;
    lru->percpu = percpu;
    lru->nr_heads = percpu ? NR_BPF_LRU_LIST_T * nr_cpus
                           : NR_BPF_LRU_LIST_T + NR_BPF_LRU_LOCAL_LIST_T * nr_cpus;
    lru->lists = calloc(percpu ? nr_cpus : 1, sizeof(*lru->lists));
    if (!percpu)
        lru->local_list = calloc(nr_cpus, sizeof(*lru->local_list));
    if (!lru->lists || (!percpu && !lru->local_list) || !lru_grow(lru, lru->nr_heads)) {
        bpf_lru_destroy(lru);
        return -ENOMEM;
    }
    if (percpu) {
        for (cpu = 0; cpu < nr_cpus; cpu++)
            bpf_lru_list_init(lru, &lru->lists[cpu], &head);
        lru->nr_scans = PERCPU_NR_SCANS;
    } else {
        for (cpu = 0; cpu < nr_cpus; cpu++) {
            /* bpf_lru_locallist_init() */
            for (i = 0; i < NR_BPF_LRU_LOCAL_LIST_T; i++) {
                lru->local_list[cpu].lists[i] = head++;
                init_list_head(lru, lru->local_list[cpu].lists[i]);
            }
            lru->local_list[cpu].next_steal = (uint16_t)cpu;
        }
        bpf_lru_list_init(lru, &lru->lists[0], &head);
        lru->nr_scans = LOCAL_NR_SCANS;
    }
    lru->target_free = LOCAL_FREE_TARGET;
    lru->del_from_htab = del_from_htab;
    lru->del_arg = del_arg;
    return 0;
}

void bpf_lru_destroy(struct bpf_lru *lru)
{
    free(lru->lists);
    free(lru->local_list);
    free(lru->e);
    *lru = (struct bpf_lru){0};
}

uint32_t bpf_lru_list_head(const struct bpf_lru *lru, uint32_t cpu, uint32_t type,
                           uint32_t *fresh)
{
    const struct bpf_lru_list *l;

    *fresh = 0;
    if (type > BPF_LRU_LOCAL_LIST_T_PENDING || (lru->percpu && cpu >= lru->nr_cpus))
        return NONE;
    if (IS_LOCAL_LIST_TYPE(type)) {
        if (lru->percpu || cpu >= lru->nr_cpus)
            return NONE;
        return lru->local_list[cpu].lists[type - BPF_LOCAL_LIST_T_OFFSET];
    }
    l = lru->percpu ? &lru->lists[cpu] : &lru->lists[0];
    if (type == BPF_LRU_LIST_T_FREE)
        *fresh = l->fresh;
    return l->lists[type];
}
