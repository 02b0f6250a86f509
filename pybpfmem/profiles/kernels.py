"""The kernels the model follows, as data: one ``Profile`` each.

Adding a kernel is adding data: its entry below (usually ``derive()``d from the
release before it, naming only the switches that changed) and its struct sizes
in ``structs/<name>.json``.  What each switch means, and the commit behind it,
is in ``switches.py``.

Sources: the kernel trees of each release (mm/memcontrol.c, mm/memcontrol-v1.c,
mm/page_counter.c, include/linux/gfp_types.h, kernel/bpf/*.c,
include/uapi/linux/bpf.h).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .profile import BpfSwitches, BpfUapi, MmSwitches, Profile
from .sizes import load_mm_structs, load_struct_sizes

# ---------------------------------------------------------------------------
# memory.stat key lists (v2).  Each list is the kernel's print order of
# memory_stat_format() / memcg_stat_format() (mm/memcontrol.c) for an x86_64
# config with CONFIG_SWAP, CONFIG_ZSWAP, CONFIG_TRANSPARENT_HUGEPAGE,
# CONFIG_HUGETLB_PAGE and CONFIG_NUMA_BALANCING (the common distro config).
# "slab" is the sum the kernel prints right after slab_unreclaimable.
# Keys the model does not track are printed as 0 (the kernel prints them).

_V2_STAT_5_11: tuple[str, ...] = (
    # memory_stats[] of v5.10/v5.11 (no kernel, sec_pagetables, vmalloc, zswap, swapcached)
    "anon", "file", "kernel_stack", "pagetables", "percpu", "sock", "shmem",
    "file_mapped", "file_dirty", "file_writeback", "anon_thp", "file_thp", "shmem_thp",
    "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
    "slab_reclaimable", "slab_unreclaimable", "slab",
    "workingset_refault_anon", "workingset_refault_file", "workingset_activate_anon",
    "workingset_activate_file", "workingset_restore_anon", "workingset_restore_file",
    "workingset_nodereclaim",
    # the event counters v5.11 prints after the loop
    "pgfault", "pgmajfault", "pgrefill", "pgscan", "pgsteal", "pgactivate", "pgdeactivate",
    "pglazyfree", "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc",
)

_V2_STAT_6_18: tuple[str, ...] = (
    "anon", "file", "kernel", "kernel_stack", "pagetables", "sec_pagetables", "percpu", "sock",
    "vmalloc", "shmem", "zswap", "zswapped", "file_mapped", "file_dirty", "file_writeback",
    "swapcached", "anon_thp", "file_thp", "shmem_thp",
    "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
    "slab_reclaimable", "slab_unreclaimable", "slab", "hugetlb",
    "workingset_refault_anon", "workingset_refault_file", "workingset_activate_anon",
    "workingset_activate_file", "workingset_restore_anon", "workingset_restore_file",
    "workingset_nodereclaim",
    "pgdemote_kswapd", "pgdemote_direct", "pgdemote_khugepaged", "pgdemote_proactive",
    "pgpromote_success",
    # accumulated events: pgscan/pgsteal sums, then memcg_vm_event_stat[] minus pgpgin/pgpgout
    "pgscan", "pgsteal",
    "pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged", "pgscan_proactive",
    "pgsteal_kswapd", "pgsteal_direct", "pgsteal_khugepaged", "pgsteal_proactive",
    "pgfault", "pgmajfault", "pgrefill", "pgactivate", "pgdeactivate", "pglazyfree",
    "pglazyfreed", "swpin_zero", "swpout_zero", "zswpin", "zswpout", "zswpwb",
    "thp_fault_alloc", "thp_collapse_alloc", "thp_swpout", "thp_swpout_fallback",
    "numa_pages_migrated", "numa_pte_updates", "numa_hint_faults",
)

# v1 memory.stat (memcg1_stat_format(), mm/memcontrol-v1.c).  The 6.18 list was
# checked against a live 6.18 kernel (swap accounting on: swap, swapcached and
# hierarchical_memsw_limit appear).  v5.11 lacks workingset_refault_* and
# swapcached in the v1 file.  hierarchical_* are limits; total_* are the
# recursive values of the local keys above them.
_V1_LOCAL_5_11: tuple[str, ...] = (
    "cache", "rss", "rss_huge", "shmem", "mapped_file", "dirty", "writeback", "swap",
    "pgpgin", "pgpgout", "pgfault", "pgmajfault",
    "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
)
_V1_LOCAL_6_18: tuple[str, ...] = (
    "cache", "rss", "rss_huge", "shmem", "mapped_file", "dirty", "writeback",
    "workingset_refault_anon", "workingset_refault_file", "swap", "swapcached",
    "pgpgin", "pgpgout", "pgfault", "pgmajfault",
    "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
)

_EVENTS_5_11: tuple[str, ...] = ("low", "high", "max", "oom", "oom_kill")
# v6.18: oom_group_kill (v5.17).  sock_throttled (MEMCG_SOCK_THROTTLED, "memcg:
# expose socket memory pressure in a cgroup") was merged after v6.18, for v6.19,
# so the 6.18 profile does not print it.
_EVENTS_6_18: tuple[str, ...] = ("low", "high", "max", "oom", "oom_kill", "oom_group_kill")

# --- bpf() uapi ------------------------------------------------------------
# CHECK_ATTR(cmd) last fields (kernel/bpf/syscall.c *_LAST_FIELD) and
# sizeof(union bpf_attr).  v5.10/v5.11: 120 bytes (PROG_LOAD ends at
# attach_prog_fd, padded to 8).  6.18: 152 bytes (estimated from the PROG_LOAD
# fields the model lists, padded to 8); its later fields are simplified to
# those the model lists.
_UAPI_5_10 = BpfUapi(
    attr_size=120,
    last_field=(
        ("BPF_MAP_CREATE", "btf_vmlinux_value_type_id"),
        ("BPF_MAP_LOOKUP_ELEM", "flags"), ("BPF_MAP_UPDATE_ELEM", "flags"),
        ("BPF_MAP_DELETE_ELEM", "key"), ("BPF_MAP_GET_NEXT_KEY", "value"),
        ("BPF_MAP_LOOKUP_AND_DELETE_ELEM", "value"),
        ("BPF_MAP_LOOKUP_BATCH", "flags"), ("BPF_MAP_LOOKUP_AND_DELETE_BATCH", "flags"),
        ("BPF_MAP_UPDATE_BATCH", "flags"), ("BPF_MAP_DELETE_BATCH", "flags"),
        ("BPF_PROG_LOAD", "attach_prog_fd"),
        ("BPF_OBJ_PIN", "file_flags"), ("BPF_OBJ_GET", "file_flags"),
        ("BPF_MAP_GET_FD_BY_ID", "open_flags"), ("BPF_PROG_GET_FD_BY_ID", "start_id"),
        ("BPF_MAP_GET_NEXT_ID", "next_id"), ("BPF_PROG_GET_NEXT_ID", "next_id"),
        ("BPF_OBJ_GET_INFO_BY_FD", "info"), ("BPF_MAP_FREEZE", "map_fd"),
    ),
    max_map_type=28,        # BPF_MAP_TYPE_INODE_STORAGE
    max_cmd=35,             # BPF_PROG_BIND_MAP
)
_UAPI_5_11 = dataclasses.replace(_UAPI_5_10, max_map_type=29)   # + BPF_MAP_TYPE_TASK_STORAGE
_UAPI_6_18 = BpfUapi(
    attr_size=152,
    last_field=(
        ("BPF_MAP_CREATE", "map_token_fd"),
        ("BPF_MAP_LOOKUP_ELEM", "flags"), ("BPF_MAP_UPDATE_ELEM", "flags"),
        ("BPF_MAP_DELETE_ELEM", "flags"), ("BPF_MAP_GET_NEXT_KEY", "value"),
        ("BPF_MAP_LOOKUP_AND_DELETE_ELEM", "flags"),
        ("BPF_MAP_LOOKUP_BATCH", "flags"), ("BPF_MAP_LOOKUP_AND_DELETE_BATCH", "flags"),
        ("BPF_MAP_UPDATE_BATCH", "flags"), ("BPF_MAP_DELETE_BATCH", "flags"),
        ("BPF_PROG_LOAD", "fd_array_cnt"),
        ("BPF_OBJ_PIN", "path_fd"), ("BPF_OBJ_GET", "path_fd"),
        ("BPF_MAP_GET_FD_BY_ID", "open_flags"), ("BPF_PROG_GET_FD_BY_ID", "open_flags"),
        ("BPF_MAP_GET_NEXT_ID", "next_id"), ("BPF_PROG_GET_NEXT_ID", "next_id"),
        ("BPF_OBJ_GET_INFO_BY_FD", "info"), ("BPF_MAP_FREEZE", "map_fd"),
    ),
    max_map_type=33,        # BPF_MAP_TYPE_ARENA
    max_cmd=36,             # BPF_TOKEN_CREATE
)


def derive(base: Profile, name: str, description: str, *, mm: dict[str, Any] | None = None,
           bpf: dict[str, Any] | None = None, **fields: Any) -> Profile:
    """``base`` with a new name, its struct sizes and the switches and facts that changed."""
    fields.setdefault("mm_structs", load_mm_structs(name))
    return dataclasses.replace(
        base, name=name, description=description,
        mm=dataclasses.replace(base.mm, **(mm or {})),
        bpf=dataclasses.replace(base.bpf, **(bpf or {})),
        sizes=load_struct_sizes(name), **fields)


# sizeof(struct lruvec_stat) of 5.10 (NR_VM_NODE_STAT_ITEMS longs), which structs/5.10.json
# does not carry: read with pybpfmem.btf from the BTF of the same Debian 11 package
# (linux-image-5.10.0-46-amd64 5.10.262-1).
_LRUVEC_STAT_5_10 = 296
# the same for 5.11, which structs/5.11.json does not carry either: 38 node_stat_items (v5.11
# moved NR_PAGETABLE to the node counters, f0c0c115fb81), counted in include/linux/mmzone.h of
# the tree tools/recipes/5.11.json compiles (no CONFIG_SHADOW_CALL_STACK on x86_64).
_LRUVEC_STAT_5_11 = 304
# sizeof(struct memcg1_events_percpu) of 6.18 (nr_page_events + MEM_CGROUP_NTARGETS = 2
# targets, unsigned longs), which structs/6.18.json does not carry: read from the BTF of the
# same kernel (6.18.44-fc-v1300, CONFIG_MEMCG_V1=y).
_MEMCG1_EVENTS_PERCPU_6_18 = 24


# ---------------------------------------------------------------------------
# v5.10: the RLIMIT_MEMLOCK era.  Its mm side equals v5.11's: 3de7d4f25a74
# (v5.11-rc4, __memcg_kmem_uncharge() through refill_stock()) was marked for
# 5.9+ stable, so 5.10.y has it.
_5_10 = Profile(
    name="5.10",
    description="rlimit era: BPF memory charged to the user's locked_vm against RLIMIT_MEMLOCK",
    mm=MmSwitches(
        charge_batch=32, nr_memcg_stock=1, obj_stock_split_pages=0, kmem_page_objcg=0,
        kmem_uncharge_via_stock=1, drain_obj_stock_direct=0, failcnt_v1_only=0,
        clamp_underflow=0, gfp_atomic_forces=1, gfp_high_forces=0, max_event_on_force=0,
        kmem_limit_enforced=1, kmalloc_cg_caches=0, percpu_ptr_overhead=0,
        large_kmalloc_memcg_stat=0, stat_kernel=0, stat_vmalloc=0, high_set_before_reclaim=0,
        nospin_no_batch=0, kmem_uncharge_skips_root=0, obj_stock_slab_stats=0,
        reclaim_target_unprotected=0, reclaim_partial_walk=0, memcg_reclaim_counts_slab=1,
        shrinker_deferred_per_memcg=0, sb_scan_exact_total=0, kpagecgroup_folio=0),
    bpf=BpfSwitches(
        rlimit=True, account=False, map_memcg=False, map_objcg=False, map_mem_usage=False,
        htab_mem_alloc=False, runtime_gfp_nowait=False, default_memlock=64 * 1024,
        caps_central=False, unpriv_per_command=False, freeze_needs_write=False,
        struct_area_alloc=False,
        htab_map_locked=False, map_extra=False, prog_alloc_enomem=True,
        lookup_and_delete_hash=False, lookup_and_delete_stack_trace=False,
        htab_percpu_value_limit=False, htab_max_2g=False,
        memalloc_prefill_split=False, htab_large_key=False, array_value_int_max=False,
        perf_event_entry_kernel_gfp=False, cgroup_storage_large_value=False,
        local_storage_kvcalloc=False, selem_compact=False, lpm_trie_mem_alloc=False,
        lpm_trie_update_flags=False, batch_percpu_array=False, batch_lpm=False,
        batch_map_in_map=False, prog_array_owner_attach_type=False, struct_ops_link=False, struct_ops_vtype_btf_obj_fd=False,
        cgroup_storage_map_memcg=False,
        fdinfo_ino=False, prog_fdinfo_recursion_misses=False, prog_fdinfo_verified_insns=False,
        lru_target_free_clamp=False),
    uapi=_UAPI_5_10,
    sizes=load_struct_sizes("5.10"),
    has_gfp_atomic=True, nowait_nowarn=False, has_memory_peak=False,
    stat_keys_v2=_V2_STAT_5_11, stat_keys_v1=_V1_LOCAL_5_11, event_keys=_EVENTS_5_11,
    memcg_stat_local_copies=True, memcg_vmstats_accounted=False,
    mm_structs=load_mm_structs("5.10", lruvec_stat=_LRUVEC_STAT_5_10),
)

# v5.11: the seed series, memcg-based accounting of BPF memory.
_5_11 = derive(
    _5_10, "5.11", "seed series: memcg-based BPF accounting (__GFP_ACCOUNT, map->memcg)",
    bpf=dict(rlimit=False, account=True, map_memcg=True, htab_map_locked=True),
    uapi=_UAPI_5_11,
    mm_structs=load_mm_structs("5.11", lruvec_stat=_LRUVEC_STAT_5_11),
)

# v6.18: the current kernel.
_6_18 = derive(
    _5_11, "6.18", "current kernel: multi-slot stocks, objcg KMEM pages, kmalloc-cg caches",
    mm=dict(charge_batch=64, nr_memcg_stock=7, obj_stock_split_pages=1, kmem_page_objcg=1,
            drain_obj_stock_direct=1, failcnt_v1_only=1, clamp_underflow=1,
            gfp_atomic_forces=0, gfp_high_forces=1, max_event_on_force=1,
            kmem_limit_enforced=0, kmalloc_cg_caches=1, percpu_ptr_overhead=1,
            large_kmalloc_memcg_stat=1, stat_kernel=1, stat_vmalloc=1,
            high_set_before_reclaim=1, nospin_no_batch=1, kmem_uncharge_skips_root=1,
            obj_stock_slab_stats=1, reclaim_target_unprotected=1, reclaim_partial_walk=1,
            memcg_reclaim_counts_slab=0, shrinker_deferred_per_memcg=1, sb_scan_exact_total=1,
            kpagecgroup_folio=1),
    bpf=dict(map_objcg=True, map_mem_usage=True, htab_mem_alloc=True, runtime_gfp_nowait=True,
             default_memlock=8 * 1024 * 1024, caps_central=True, unpriv_per_command=True,
             freeze_needs_write=True, lookup_and_delete_stack_trace=True,
             batch_percpu_array=True, batch_lpm=True, batch_map_in_map=True,
             prog_array_owner_attach_type=True,
             struct_area_alloc=True, map_extra=True, prog_alloc_enomem=False,
             lookup_and_delete_hash=True, htab_percpu_value_limit=True, htab_max_2g=True,
             memalloc_prefill_split=True, array_value_int_max=True,
             perf_event_entry_kernel_gfp=True, cgroup_storage_large_value=True,
             local_storage_kvcalloc=True, selem_compact=True, lpm_trie_mem_alloc=True,
             lpm_trie_update_flags=True, struct_ops_link=True, struct_ops_vtype_btf_obj_fd=True,
             cgroup_storage_map_memcg=True, htab_large_key=True,
             fdinfo_ino=True, prog_fdinfo_recursion_misses=True, prog_fdinfo_verified_insns=True,
             lru_target_free_clamp=True),
    uapi=_UAPI_6_18,
    has_gfp_atomic=False, nowait_nowarn=True, has_memory_peak=True,
    stat_keys_v2=_V2_STAT_6_18, stat_keys_v1=_V1_LOCAL_6_18, event_keys=_EVENTS_6_18,
    memcg_stat_local_copies=False, memcg_vmstats_accounted=True,
    mm_structs=load_mm_structs("6.18", memcg1_events_percpu=_MEMCG1_EVENTS_PERCPU_6_18),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (_5_10, _5_11, _6_18)}
CURRENT_PROFILE = "6.18"
