"""The kernels the model follows, as data: one ``Profile`` each.

A profile follows the newest stable release of its line that the research
read (5.10.265, 5.11.0, 5.15.215, 6.1.166, 6.6.150, 6.8.0, 6.12.94, 6.18.35):
users run the latest stable of their line, so a stable backport sets the
line's value (each such switch names its backport in ``switches.py``).

Adding a kernel is adding data: its entry below (usually ``derive()``d from the
release before it, naming only the switches that changed) and its struct sizes
in ``structs/<name>.json``.  What each switch means, and the commit behind it,
is in ``switches.py``; the evidence, release by release, in the research notes
the catalogue cites (the kernel trees of each release: mm/memcontrol.c,
mm/memcontrol-v1.c, mm/page_counter.c, include/linux/gfp_types.h,
kernel/bpf/*.c, include/uapi/linux/bpf.h).
"""

from __future__ import annotations

import dataclasses
import re
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
# The 5.10, 6.1, 6.12 and 6.18 lists are also what Debian's 5.10.262, 6.1.192,
# 6.12.118 and 6.18.15 kernels print (tools/kernel-vm, a fresh v2 cgroup).

_V2_STAT_5_10: tuple[str, ...] = (
    # memory_stats[] of 5.10.y: no pagetables, file_thp, shmem_thp yet
    "anon", "file", "kernel_stack", "percpu", "sock", "shmem",
    "file_mapped", "file_dirty", "file_writeback", "anon_thp",
    "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
    "slab_reclaimable", "slab_unreclaimable", "slab",
    "workingset_refault_anon", "workingset_refault_file", "workingset_activate_anon",
    "workingset_activate_file", "workingset_restore_anon", "workingset_restore_file",
    "workingset_nodereclaim",
    # the event counters printed after the loop
    "pgfault", "pgmajfault", "pgrefill", "pgscan", "pgsteal", "pgactivate", "pgdeactivate",
    "pglazyfree", "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc",
)


def _after(keys: tuple[str, ...], anchor: str, *new: str) -> tuple[str, ...]:
    """``keys`` with ``new`` inserted right after ``anchor``."""
    i = keys.index(anchor) + 1
    return keys[:i] + new + keys[i:]


# v5.11: pagetables after kernel_stack, file_thp and shmem_thp after anon_thp
_V2_STAT_5_11 = _after(_after(_V2_STAT_5_10, "kernel_stack", "pagetables"),
                       "anon_thp", "file_thp", "shmem_thp")
# v5.15: swapcached after file_writeback
_V2_STAT_5_15 = _after(_V2_STAT_5_11, "file_writeback", "swapcached")

_V2_STAT_6_1: tuple[str, ...] = (
    "anon", "file", "kernel", "kernel_stack", "pagetables", "sec_pagetables", "percpu", "sock",
    "vmalloc", "shmem", "zswap", "zswapped", "file_mapped", "file_dirty", "file_writeback",
    "swapcached", "anon_thp", "file_thp", "shmem_thp",
    "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
    "slab_reclaimable", "slab_unreclaimable", "slab",
    "workingset_refault_anon", "workingset_refault_file", "workingset_activate_anon",
    "workingset_activate_file", "workingset_restore_anon", "workingset_restore_file",
    "workingset_nodereclaim",
    # accumulated events: pgscan/pgsteal sums, then memcg_vm_event_stat[] minus pgpgin/pgpgout
    "pgscan", "pgsteal", "pgscan_kswapd", "pgscan_direct", "pgsteal_kswapd", "pgsteal_direct",
    "pgfault", "pgmajfault", "pgrefill", "pgactivate", "pgdeactivate", "pglazyfree",
    "pglazyfreed", "zswpin", "zswpout", "thp_fault_alloc", "thp_collapse_alloc",
)
# 6.6.y (the zswpwb / thp_swpout keys arrived with 6.6.117): khugepaged scan/steal,
# zswpwb, thp_swpout(_fallback)
_V2_STAT_6_6 = _after(_after(_after(_V2_STAT_6_1, "pgscan_direct", "pgscan_khugepaged"),
                             "pgsteal_direct", "pgsteal_khugepaged"),
                      "zswpout", "zswpwb") + ("thp_swpout", "thp_swpout_fallback")
_V2_STAT_6_8 = _V2_STAT_6_6
# 6.12: demotion/promotion, swpin/out_zero, NUMA balancing
_V2_STAT_6_12 = _after(_after(_V2_STAT_6_8, "workingset_nodereclaim", "pgdemote_kswapd",
                              "pgdemote_direct", "pgdemote_khugepaged", "pgpromote_success"),
                       "pglazyfreed", "swpin_zero", "swpout_zero") + (
    "numa_pages_migrated", "numa_pte_updates", "numa_hint_faults")
# 6.18: proactive demote/scan/steal, pswpin/pswpout after the sums.  "hugetlb" (after
# slab) is printed only when cgroup2 is mounted with memory_hugetlb_accounting
# (memcg_accounts_hugetlb()), which is not the default, so the list leaves it out.
_V2_STAT_6_18 = _after(_after(_after(_after(
    _V2_STAT_6_12, "pgdemote_khugepaged", "pgdemote_proactive"),
    "pgsteal", "pswpin", "pswpout"),
    "pgscan_khugepaged", "pgscan_proactive"),
    "pgsteal_khugepaged", "pgsteal_proactive")

# v1 memory.stat local keys (memcg1_stat_format(), mm/memcontrol-v1.c), before the
# hierarchical_* limits and the total_* recursive values.  The swap keys assume swap
# accounting on (do_memsw_account()); the 6.18 list was checked against a live 6.18
# kernel.
_V1_LOCAL_5_10: tuple[str, ...] = (
    "cache", "rss", "rss_huge", "shmem", "mapped_file", "dirty", "writeback", "swap",
    "pgpgin", "pgpgout", "pgfault", "pgmajfault",
    "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
)
# v6.1: workingset_refault_anon/file after writeback
_V1_LOCAL_6_1 = _after(_V1_LOCAL_5_10, "writeback", "workingset_refault_anon",
                       "workingset_refault_file")
# v6.8: swapcached after swap (both printed with CONFIG_SWAP)
_V1_LOCAL_6_8 = _after(_V1_LOCAL_6_1, "swap", "swapcached")

_EVENTS_5_10: tuple[str, ...] = ("low", "high", "max", "oom", "oom_kill")
# oom_group_kill: b6bf9abb0aa4 (v5.17).  sock_throttled (7f0ac10dd368) is v6.19, after 6.18.
_EVENTS_6_1: tuple[str, ...] = _EVENTS_5_10 + ("oom_group_kill",)

# --- bpf() uapi ------------------------------------------------------------
# sizeof(union bpf_attr) compiled from each release's include/uapi/linux/bpf.h;
# CHECK_ATTR(cmd) last fields from its kernel/bpf/syscall.c *_LAST_FIELD.  Two
# names differ from the kernel's at the same bytes: BPF_MAP_GET_NEXT_KEY ends at
# next_key (the union member of `value`), BPF_PROG_GET_FD_BY_ID at prog_id (the
# union member of `start_id`).
_LAST_FIELD_5_10: tuple[tuple[str, str], ...] = (
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
)


def _last(base: tuple[tuple[str, str], ...], **changed: str) -> tuple[tuple[str, str], ...]:
    """``base`` with the last fields of some commands replaced."""
    return tuple((cmd, changed.pop(cmd, field)) for cmd, field in base)


_UAPI_5_10 = BpfUapi(attr_size=120, last_field=_LAST_FIELD_5_10,
                     max_map_type=28,        # BPF_MAP_TYPE_INODE_STORAGE
                     max_cmd=35)             # BPF_PROG_BIND_MAP
_UAPI_5_11 = dataclasses.replace(_UAPI_5_10, max_map_type=29)   # + TASK_STORAGE
# v5.14: fd_array (attr 128); LOOKUP_AND_DELETE_ELEM takes flags
_UAPI_5_15 = dataclasses.replace(_UAPI_5_11, attr_size=128, last_field=_last(
    _LAST_FIELD_5_10, BPF_MAP_LOOKUP_AND_DELETE_ELEM="flags", BPF_PROG_LOAD="fd_array"))
# v5.16 map_extra; v5.17 core_relos (attr 144); v6.1 USER_RINGBUF (31)
_UAPI_6_1 = BpfUapi(attr_size=144, max_map_type=31, max_cmd=35, last_field=_last(
    _UAPI_5_15.last_field, BPF_MAP_CREATE="map_extra", BPF_PROG_LOAD="core_relo_rec_size"))
# v6.2 CGRP_STORAGE (32); v6.4 log_true_size; v6.5 path_fd
_UAPI_6_6 = BpfUapi(attr_size=144, max_map_type=32, max_cmd=35, last_field=_last(
    _UAPI_6_1.last_field, BPF_PROG_LOAD="log_true_size", BPF_OBJ_PIN="path_fd",
    BPF_OBJ_GET="path_fd"))
_UAPI_6_8 = _UAPI_6_6
# v6.9: tokens (attr 152, BPF_TOKEN_CREATE = 36), ARENA (33)
_UAPI_6_12 = BpfUapi(attr_size=152, max_map_type=33, max_cmd=36, last_field=_last(
    _UAPI_6_6.last_field, BPF_MAP_CREATE="map_token_fd", BPF_PROG_LOAD="prog_token_fd"))
# v6.17: BPF_PROG_STREAM_READ_BY_FD (37); v6.18: exclusive maps and signed programs (168)
_UAPI_6_18 = BpfUapi(attr_size=168, max_map_type=33, max_cmd=37, last_field=_last(
    _UAPI_6_12.last_field, BPF_MAP_CREATE="excl_prog_hash_size", BPF_PROG_LOAD="keyring_id"))


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
# 5.10.y: the RLIMIT_MEMLOCK era (5.10.265).  5.10.y took 3de7d4f25a74 (kmem
# uncharges through the stock), 96403bfe50c3 (large kmalloc memcg stat) and
# a4ebf1b6ca1e (dying tasks no longer force), and several BPF fixes.
_5_10 = Profile(
    name="5.10",
    description="5.10.y LTS (Debian 11): BPF memory charged to the user's locked_vm against "
                "RLIMIT_MEMLOCK",
    mm=MmSwitches(
        charge_batch=32, nr_memcg_stock=1, obj_stock_split_pages=0, kmem_page_objcg=0,
        drain_obj_stock_direct=0, failcnt_v1_only=0, clamp_underflow=0,
        gfp_atomic_forces=1, dying_task_forces=0, nofail_forces_before_oom=1,
        gfp_high_forces=0, max_event_on_force=0, kmem_limit_enforced=1, kmalloc_cg_caches=0,
        percpu_ptr_overhead=0, large_kmalloc_memcg_stat=1, stat_kernel=0, stat_vmalloc=0,
        nospin_no_batch=0, kmem_uncharge_skips_root=0, obj_stock_slab_stats=0,
        obj_stock_task_irq_split=0, objcg_release_via_stock=1, objcg_put_after_stock_drain=0,
        sync_high_over_batch=0, memcg_orig_objcg=0, kvmalloc_any_gfp=0,
        kvmalloc_kmalloc_no_reclaim=0,
        reclaim_target_unprotected=0, reclaim_partial_walk=0, memcg_reclaim_counts_slab=1,
        shrinker_deferred_per_memcg=0, sb_scan_exact_total=0, kpagecgroup_folio=0),
    bpf=BpfSwitches(
        rlimit=True, account=False, map_memcg=False, map_objcg=False, map_mem_usage=False,
        htab_mem_alloc=False, runtime_gfp_nowait=False, default_memlock=64 * 1024,
        caps_central=False, unpriv_entry_create_only=False, unpriv_per_command=False,
        freeze_needs_write=False, struct_area_alloc=False, htab_map_locked=False,
        fd_htab_extra_elems=True, map_extra=False, memcg_nobpf=False, prog_alloc_enomem=True,
        lookup_and_delete_hash=False, lookup_and_delete_stack_trace=False,
        percpu_value_limit=True, htab_max_2g=True, memalloc_prefill_split=False,
        memalloc_prefill_kernel_gfp=False, memalloc_reuse=False, htab_large_key=False,
        array_value_int_max=False, perf_event_entry_kernel_gfp=False,
        cgroup_storage_large_value=False,
        local_storage_kvcalloc=False, selem_compact=False, lpm_trie_mem_alloc=False,
        lpm_exist_flags=True, lpm_full_inplace=False, batch_percpu_array=False,
        batch_lpm=False, batch_map_in_map=False, prog_array_owner_attach_type=False,
        struct_ops_link=False,
        struct_ops_vtype_btf_obj_fd=False, fdinfo_ino=False,
        prog_fdinfo_recursion_misses=False, prog_fdinfo_verified_insns=False,
        lru_target_free_clamp=False),
    uapi=_UAPI_5_10,
    sizes=load_struct_sizes("5.10"),
    has_gfp_atomic=True, nowait_nowarn=False, has_memory_peak=False, memory_peak_write=False,
    stat_keys_v2=_V2_STAT_5_10, stat_keys_v1=_V1_LOCAL_5_10, event_keys=_EVENTS_5_10,
    memcg_stat_local_copies=True, memcg_vmstats_accounted=False,
    mm_structs=load_mm_structs("5.10", lruvec_stat=_LRUVEC_STAT_5_10),
)

# 5.11.0 (no LTS; 5.11.y not read): the seed series, memcg-based accounting of BPF
# memory.  Against 5.10.y: the v5.11 force rules (dying tasks force), no large kmalloc
# memcg stat, and none of 5.10.y's later BPF backports.
_5_11 = derive(
    _5_10, "5.11", "5.11.0: the seed series, memcg-based BPF accounting (__GFP_ACCOUNT, "
    "map->memcg)",
    mm=dict(dying_task_forces=1, large_kmalloc_memcg_stat=0),
    bpf=dict(rlimit=False, account=True, map_memcg=True, htab_map_locked=True,
             htab_large_key=True, percpu_value_limit=False,
             htab_max_2g=False, lpm_exist_flags=False),
    uapi=_UAPI_5_11, stat_keys_v2=_V2_STAT_5_11,
    mm_structs=load_mm_structs("5.11", lruvec_stat=_LRUVEC_STAT_5_11),
)

# 5.15.y LTS (5.15.215; Ubuntu 22.04): objcg KMEM pages, the v5.14 object stock
# (split pages, cached slab stats, separate task and irq stocks), kmalloc-cg caches;
# still GFP_ATOMIC force, 64 KiB MLOCK_LIMIT and map->memcg.
_5_15 = derive(
    _5_11, "5.15", "5.15.y LTS (Ubuntu 22.04): objcg kmem pages, task/irq object stocks, "
    "kmalloc-cg caches",
    mm=dict(obj_stock_split_pages=1, kmem_page_objcg=1, clamp_underflow=1,
            dying_task_forces=0, nofail_forces_before_oom=0, kmalloc_cg_caches=1,
            large_kmalloc_memcg_stat=1, obj_stock_slab_stats=1, obj_stock_task_irq_split=1,
            shrinker_deferred_per_memcg=1),
    bpf=dict(lookup_and_delete_hash=True, percpu_value_limit=True, htab_max_2g=True,
             cgroup_storage_large_value=True, lpm_exist_flags=True, batch_percpu_array=True,
             batch_lpm=True, fdinfo_ino=True, prog_fdinfo_recursion_misses=True),
    uapi=_UAPI_5_15, stat_keys_v2=_V2_STAT_5_15,
    memcg_stat_local_copies=False,
)

# 6.1.y LTS (6.1.166; Debian 12, Amazon Linux 2023): batch 64, __GFP_HIGH forces,
# map->objcg, bpf_mem_alloc hash elements, GFP_NOWAIT runtime allocations, 8 MiB
# MLOCK_LIMIT; 6.1.100 took the v6.3 local storage changes, 6.1.120 the LPM fixes,
# 6.1.156 the prog array attach-type check.
_6_1 = derive(
    _5_15, "6.1", "6.1.y LTS (Debian 12, Amazon Linux 2023): batch 64, map objcg, bpf_mem_alloc "
    "hash elements, GFP_NOWAIT runtime allocations",
    mm=dict(charge_batch=64, gfp_atomic_forces=0, gfp_high_forces=1, max_event_on_force=1,
            kmem_limit_enforced=0, percpu_ptr_overhead=1, stat_kernel=1, stat_vmalloc=1,
            obj_stock_task_irq_split=0, objcg_put_after_stock_drain=1, sync_high_over_batch=1,
            kvmalloc_any_gfp=1),
    bpf=dict(map_objcg=True, htab_mem_alloc=True, runtime_gfp_nowait=True,
             default_memlock=8 * 1024 * 1024, unpriv_entry_create_only=True,
             struct_area_alloc=True, map_extra=True, array_value_int_max=True,
             local_storage_kvcalloc=True, selem_compact=True, lpm_full_inplace=True,
             batch_map_in_map=True, prog_array_owner_attach_type=True,
             prog_fdinfo_verified_insns=True),
    uapi=_UAPI_6_1,
    has_memory_peak=True,
    stat_keys_v2=_V2_STAT_6_1, stat_keys_v1=_V1_LOCAL_6_1, event_keys=_EVENTS_6_1,
)

# 6.6.y LTS (6.6.150): map_mem_usage fdinfo memlock, central capability checks, the
# v6.5 unprivileged/freeze rules, bpf_mem_alloc prefill with GFP_KERNEL and reuse of
# RCU-pending objects, struct_ops links; GFP_ATOMIC is gone (0x820).
_6_6 = derive(
    _6_1, "6.6", "6.6.y LTS: map_mem_usage memlock, central capability checks, GFP_KERNEL "
    "bpf_mem_alloc prefill",
    mm=dict(reclaim_target_unprotected=1, memcg_reclaim_counts_slab=0, kpagecgroup_folio=1),
    bpf=dict(map_mem_usage=True, caps_central=True, unpriv_per_command=True,
             freeze_needs_write=True, memcg_nobpf=True, memalloc_prefill_kernel_gfp=True,
             memalloc_reuse=True, struct_ops_link=True, lru_target_free_clamp=True),
    uapi=_UAPI_6_6,
    has_gfp_atomic=False,
    stat_keys_v2=_V2_STAT_6_6,
)

# 6.8.0 (no LTS; Ubuntu 24.04's base): GFP_NOWAIT includes __GFP_NOWARN, per-cpu
# bpf_mem_alloc caches with watermarks 1/3, GFP_KERNEL perf event entries; 6.8.y ended
# before the 2024 BPF backports the LTS lines took.
_6_8 = derive(
    _6_6, "6.8", "6.8.0 (Ubuntu 24.04's base): small per-cpu bpf_mem_alloc caches, "
    "GFP_NOWAIT with __GFP_NOWARN",
    mm=dict(memcg_orig_objcg=1),
    bpf=dict(percpu_value_limit=False, htab_max_2g=False, memalloc_prefill_split=True,
             perf_event_entry_kernel_gfp=True, lpm_exist_flags=False, lpm_full_inplace=False,
             lru_target_free_clamp=False, prog_array_owner_attach_type=False),
    uapi=_UAPI_6_8,
    nowait_nowarn=True,
    stat_keys_v1=_V1_LOCAL_6_8,
)

# 6.12.y LTS (6.12.94; Debian 13): BPF tokens, ARENA, writable memory.peak, the 2024
# BPF fixes again (percpu value check, 2^31 check, LPM flags by 6.12.10).
_6_12 = derive(
    _6_8, "6.12", "6.12.y LTS (Debian 13): BPF tokens, arena, writable memory.peak",
    mm=dict(reclaim_partial_walk=1),
    bpf=dict(prog_alloc_enomem=False, percpu_value_limit=True, htab_max_2g=True,
             lpm_exist_flags=True, lpm_full_inplace=True, struct_ops_vtype_btf_obj_fd=True,
             lru_target_free_clamp=True, prog_array_owner_attach_type=True),
    uapi=_UAPI_6_12,
    memory_peak_write=True,
    stat_keys_v2=_V2_STAT_6_12,
    memcg_vmstats_accounted=True,
)

# 6.18 (6.18.35): the current kernel: multi-slot page stocks, direct drains, trylock
# stocks, failcnt on v1 only, LPM nodes from bpf_mem_alloc, no hash map_locked
# counters and no HASH_OF_MAPS extra elements.
_6_18 = derive(
    _6_12, "6.18", "6.18 (current kernel): multi-slot stocks, direct object-stock drains, "
    "LPM trie on bpf_mem_alloc",
    mm=dict(nr_memcg_stock=7, drain_obj_stock_direct=1, failcnt_v1_only=1,
            nospin_no_batch=1, kmem_uncharge_skips_root=1, objcg_release_via_stock=0,
            sb_scan_exact_total=1, kvmalloc_kmalloc_no_reclaim=1),
    bpf=dict(htab_map_locked=False, fd_htab_extra_elems=False,
             lookup_and_delete_stack_trace=True, lpm_trie_mem_alloc=True),
    uapi=_UAPI_6_18,
    stat_keys_v2=_V2_STAT_6_18,
    mm_structs=load_mm_structs("6.18", memcg1_events_percpu=_MEMCG1_EVENTS_PERCPU_6_18),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (_5_10, _5_11, _5_15, _6_1, _6_6, _6_8,
                                                    _6_12, _6_18)}
CURRENT_PROFILE = "6.18"

#: The profile of each kernel line ("major.minor" of a release, `uname -r`): a lookup
#: table, so that a release the project has no profile for maps to none.
RELEASE_LINES: dict[str, str] = {name: name for name in PROFILES}

_RELEASE = re.compile(r"(\d+)\.(\d+)")


def profile_for_release(release: str) -> str | None:
    """The profile name of a kernel release string (``uname -r``: "6.1.0-57-amd64",
    "5.15.0-119-generic", "6.18.44-fc"), or None when the project has no profile for
    its line."""
    m = _RELEASE.match(release.strip())
    if m is None:
        return None
    return RELEASE_LINES.get(f"{m.group(1)}.{m.group(2)}")
