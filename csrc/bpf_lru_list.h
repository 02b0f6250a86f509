/*
 * bpf_lru_list.h - the LRU lists behind the BPF LRU hash maps, after
 * kernel/bpf/bpf_lru_list.h.  Internal to the C core: htab_store.c is its one
 * user; Python sees it only through the bm_htab_lru_* calls of bpfmem.h.
 *
 * The kernel links struct bpf_lru_node through a list_head inside each
 * preallocated htab_elem.  Here every list head and every node is an entry of
 * one array (bpf_lru.e): the list heads first (nr_heads of them), then the
 * nodes, and a list_head pointer becomes an index into that array.  Node i
 * (entry nr_heads + i) holds the element in slot i of the element store.
 *
 * Nodes are made on first use (model-only, host memory): a free list is its
 * linked nodes followed by `fresh` nodes never used yet.  The kernel only ever
 * adds to and takes from the head of a free list, so those never-used nodes
 * stay at its tail, and nothing observable depends on which free node is which.
 */
#ifndef BPF_LRU_LIST_H
#define BPF_LRU_LIST_H

#include <stdbool.h>
#include <stdint.h>

#define NR_BPF_LRU_LIST_T       3
#define NR_BPF_LRU_LIST_COUNT   2
#define NR_BPF_LRU_LOCAL_LIST_T 2
#define BPF_LOCAL_LIST_T_OFFSET NR_BPF_LRU_LIST_T

/* the same values as BM_LRU_* of bpfmem.h */
enum bpf_lru_list_type {
    BPF_LRU_LIST_T_ACTIVE,
    BPF_LRU_LIST_T_INACTIVE,
    BPF_LRU_LIST_T_FREE,
    BPF_LRU_LOCAL_LIST_T_FREE,
    BPF_LRU_LOCAL_LIST_T_PENDING,
};

#define BPF_LRU_NONE UINT32_MAX

/* A list head or a node: struct list_head as two entry indices, and for a node
   the fields of struct bpf_lru_node. */
struct bpf_lru_entry {
    uint32_t next, prev;
    uint16_t cpu;
    uint8_t type;
    uint8_t ref;
};

struct bpf_lru_list {
    uint32_t lists[NR_BPF_LRU_LIST_T];      /* entry index of each list head */
    uint32_t counts[NR_BPF_LRU_LIST_COUNT];
    uint32_t next_inactive_rotation;        /* an entry index */
    uint32_t fresh;     /* model-only: never-used nodes at the tail of the free list */
    uint16_t fresh_cpu; /* node->cpu of those (bpf_percpu_lru_populate()) */
};

struct bpf_lru_locallist {
    uint32_t lists[NR_BPF_LRU_LOCAL_LIST_T];
    uint16_t next_steal;
};

/* htab_lru_map_delete_node(): unlink the element of node from the table;
   false if it is not there */
typedef bool (*del_from_htab_func)(void *arg, uint32_t node);

struct bpf_lru {
    struct bpf_lru_list *lists;             /* common: one list; percpu: one per cpu */
    struct bpf_lru_locallist *local_list;   /* common: one per cpu; percpu: NULL */
    struct bpf_lru_entry *e;                /* list heads, then nodes */
    uint32_t nr_heads, nr_nodes, cap;       /* cap: entries e[] holds */
    uint32_t nr_cpus;
    del_from_htab_func del_from_htab;
    void *del_arg;
    unsigned int target_free;
    unsigned int nr_scans;
    bool percpu;
};

/* bpf_lru_init(): 0, -EINVAL (nr_cpus outside 1..65536) or -ENOMEM (host) */
int bpf_lru_init(struct bpf_lru *lru, bool percpu, uint32_t nr_cpus,
                 del_from_htab_func del_from_htab, void *del_arg);
/* bpf_lru_populate(): nr_elems free nodes (with percpu, nr_elems / nr_cpus per
   cpu); clamp_target_free: switch lru_target_free_clamp */
void bpf_lru_populate(struct bpf_lru *lru, uint32_t nr_elems, bool clamp_target_free);
void bpf_lru_destroy(struct bpf_lru *lru);
/* room for every node the next bpf_lru_pop_free() can make: the node count it
   may reach (to size the element store), or BPF_LRU_NONE without host memory */
uint32_t bpf_lru_reserve(struct bpf_lru *lru);
/* a node for a new element on cpu, evicting if it must; BPF_LRU_NONE if none */
uint32_t bpf_lru_pop_free(struct bpf_lru *lru, uint32_t cpu);
void bpf_lru_push_free(struct bpf_lru *lru, uint32_t node);
void bpf_lru_node_set_ref(struct bpf_lru *lru, uint32_t node);
/* the entry index of list `type` (enum bpf_lru_list_type) of cpu (ignored for
   the common list's own lists), and how many never-used nodes follow it;
   BPF_LRU_NONE for a list the LRU does not have */
uint32_t bpf_lru_list_head(const struct bpf_lru *lru, uint32_t cpu, uint32_t type,
                           uint32_t *fresh);

#endif /* BPF_LRU_LIST_H */
