"""Map shapes shared by the tests: one creatable shape of every registered map type."""

from pybpfmem.bpf import uapi as U

# BTF ids for the local-storage maps (BTF objects are not modelled; the ids pass through)
BTF = {"btf_fd": 3, "btf_key_type_id": 1, "btf_value_type_id": 2}

# every registered map type: (map_type, key, value, max_entries, flags, extra kwargs, first
# profile: the first of PROFILE_NAMES whose release has the type -- USER_RINGBUF v6.1,
# CGRP_STORAGE v6.2, BLOOM_FILTER v5.16, ARENA v6.9, TASK_STORAGE v5.11);
# prealloc and no-prealloc variants of the hash families, an inner map for map-in-map
SHAPES = [
    (U.BPF_MAP_TYPE_ARRAY, 4, 64, 64, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 64, 64, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_HASH, 4, 64, 64, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_HASH, 4, 64, 64, U.BPF_F_NO_PREALLOC, {}, "5.10"),
    (U.BPF_MAP_TYPE_PERCPU_HASH, 4, 64, 64, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_PERCPU_HASH, 4, 64, 64, U.BPF_F_NO_PREALLOC, {}, "5.10"),
    (U.BPF_MAP_TYPE_LRU_HASH, 4, 64, 64, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 64, 64, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 16, U.BPF_F_NO_PREALLOC, {}, "5.10"),
    (U.BPF_MAP_TYPE_QUEUE, 0, 8, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_STACK, 0, 8, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_USER_RINGBUF, 0, 0, 4096, 0, {}, "6.1"),
    (U.BPF_MAP_TYPE_STACK_TRACE, 4, 64, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_DEVMAP, 4, 4, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_DEVMAP_HASH, 4, 8, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_CPUMAP, 4, 4, 2, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_XSKMAP, 4, 4, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_SOCKMAP, 4, 8, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_SOCKHASH, 16, 8, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 8, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_CGROUP_STORAGE, 8, 32, 0, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, 16, 32, 0, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_SK_STORAGE, 4, 32, 0, U.BPF_F_NO_PREALLOC, BTF, "5.10"),
    (U.BPF_MAP_TYPE_INODE_STORAGE, 4, 32, 0, U.BPF_F_NO_PREALLOC, BTF, "5.10"),
    (U.BPF_MAP_TYPE_TASK_STORAGE, 4, 32, 0, U.BPF_F_NO_PREALLOC, BTF, "5.11"),
    (U.BPF_MAP_TYPE_CGRP_STORAGE, 4, 32, 0, U.BPF_F_NO_PREALLOC, BTF, "6.6"),
    (U.BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 16, 0, {}, "6.1"),
    (U.BPF_MAP_TYPE_STRUCT_OPS, 4, 256, 1, 0, {"btf_vmlinux_value_type_id": 1}, "5.10"),
    (U.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_CGROUP_ARRAY, 4, 4, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 16, 0, {"inner_map_fd": "inner"}, "5.10"),
    (U.BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 16, 0, {"inner_map_fd": "inner"}, "5.10"),
    (U.BPF_MAP_TYPE_ARENA, 0, 0, 1 << 20, U.BPF_F_MMAPABLE, {}, "6.12"),
]
