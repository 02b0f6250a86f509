"""The switch catalogue: every behaviour that differs between kernel releases.

One ``Switch`` per named difference.  ``layer`` says who reads it: ``"mm"``
(the C core through ``struct bm_profile``, or the Python memory layer) or
``"bpf"`` (the BPF layer).  ``doc`` says what it changes and names the kernel
function; ``commit`` is the commit that introduced the behaviour the switch
names (12+ hex digits of torvalds/linux; empty while not yet established) and
``first`` the first release that has it.  The values each kernel takes are
plain data in that kernel's ``Profile`` (``pybpfmem/profiles/kernels.py``);
``render_table()`` turns catalogue and values into the table of
``docs/profiles.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal


@dataclass(frozen=True)
class Switch:
    name: str
    layer: Literal["mm", "bpf"]
    doc: str
    commit: str         # the introducing commit ("" = not established yet)
    title: str          # its subject line
    first: str          # first release with the behaviour, "v6.1"


def _s(name: str, layer: Literal["mm", "bpf"], commit: str, title: str, first: str,
       doc: str) -> Switch:
    return Switch(name, layer, " ".join(doc.split()), commit, title, first)


SWITCHES: tuple[Switch, ...] = (
    # ---------------------------------------------------------------- mm: struct bm_profile
    _s("charge_batch", "mm", "1813e51eece0", "memcg: increase MEMCG_CHARGE_BATCH to 64", "v6.1",
       """MEMCG_CHARGE_BATCH (include/linux/memcontrol.h): the pages try_charge_memcg() charges
       ahead into the per-cpu stock; 32, then 64."""),
    _s("nr_memcg_stock", "mm", "f735eebe55f8", "memcg: multi-memcg percpu charge cache", "v6.16",
       """NR_MEMCG_STOCK: memcgs cached per cpu by consume_stock()/refill_stock(); 1, then 7."""),
    _s("obj_stock_split_pages", "mm", "5387c90490f7", "mm/memcg: improve refill_obj_stock() performance",
       "v5.14",
       """refill_obj_stock(): above PAGE_SIZE, whole pages are split off and uncharged and the
       remainder stays cached with the objcg (allow_uncharge); 0: v5.11 drain_obj_stock() of
       everything."""),
    _s("kmem_page_objcg", "mm", "b4e0b68fbd9d", "mm: memcontrol: use obj_cgroup APIs to charge kmem pages",
       "v5.13",
       """__memcg_kmem_charge_page(): a KMEM page records its objcg (page->memcg_data = objcg |
       MEMCG_DATA_KMEM) instead of the memcg."""),
    _s("kmem_uncharge_via_stock", "mm", "3de7d4f25a74", "mm: memcg/slab: optimize objcg stock draining",
       "v5.11",
       """__memcg_kmem_uncharge() returns the pages through refill_stock() instead of uncharging
       the page counters at once (v5.11-rc4, backported to 5.10.y)."""),
    _s("drain_obj_stock_direct", "mm", "", "", "",
       """drain_obj_stock() uncharges whole pages with obj_cgroup_uncharge_pages() (page counters
       directly) rather than through __memcg_kmem_uncharge()."""),
    _s("failcnt_v1_only", "mm", "0e2759afcaf9", "page_counter: track failcnt only for legacy cgroups",
       "v6.15",
       """page_counter_try_charge(): failcnt is counted only for cgroup v1 counters
       (counter->track_failcnt)."""),
    _s("clamp_underflow", "mm", "9317d0fffeb4", "mm: page_counter: mitigate consequences of a page_counter underflow",
       "v5.13",
       """page_counter_cancel(): a usage that would go negative is set to 0 (with a warning)."""),
    _s("gfp_atomic_forces", "mm", "1461e8c2b6af", "memcg: unify force charging conditions",
       "v5.18",
       """try_charge(): a __GFP_ATOMIC charge over the limit is forced before any reclaim
       (v5.x); gone with __GFP_ATOMIC."""),
    _s("gfp_high_forces", "mm", "1461e8c2b6af", "memcg: unify force charging conditions",
       "v5.18",
       """try_charge_memcg(): on the nomem path a __GFP_HIGH charge is forced (like
       __GFP_NOFAIL)."""),
    _s("max_event_on_force", "mm", "", "mm: memcontrol: do not miss MEMCG_MAX events for enforced allocations",
       "v6.0",
       """try_charge_memcg(): MEMCG_MAX is raised for a forced charge too."""),
    _s("kmem_limit_enforced", "mm", "58056f77502f", "memcg, kmem: further deprecate kmem.limit_in_bytes",
       "v5.16",
       """cgroup v1 memory.kmem.limit_in_bytes is enforced (the kmem counter is try-charged); 0:
       writes accepted and ignored.  The switch is true in the releases before its commit."""),
    _s("kmalloc_cg_caches", "mm", "494c1dfe855e", "mm: memcg/slab: create a new set of kmalloc-cg-<n> caches",
       "v5.14",
       """kmalloc_slab(): accounted kmallocs come from separate kmalloc-cg-<n> caches."""),
    _s("percpu_ptr_overhead", "mm", "", "",
       "v5.17",
       """pcpu_obj_full_size() (mm/percpu-internal.h) adds the chunk's objcg pointer per
       PCPU_MIN_ALLOC_SIZE unit to the charged size."""),
    _s("large_kmalloc_memcg_stat", "mm", "96403bfe50c3", "mm: memcontrol: fix slub memory accounting",
       "v5.12",
       """kmalloc_large(): the pages count in the memcg's NR_SLAB_UNRECLAIMABLE_B (lruvec), not
       only the node's."""),
    _s("stat_kernel", "mm", "", "memcg: add per-memcg total kernel memory stat",
       "v5.18",
       """memory.stat prints "kernel" (MEMCG_KMEM) in memory_stat_format()."""),
    _s("stat_vmalloc", "mm", "", "",
       "v5.17",
       """memory.stat prints "vmalloc" (MEMCG_VMALLOC, charged by __vmalloc_area_node())."""),
    _s("high_set_before_reclaim", "mm", "", "mm: memcontrol: prevent starvation when writing memory.high",
       "v5.11",
       """memory_high_write() stores the new memory.high before its reclaim loop."""),
    _s("nospin_no_batch", "mm", "", "", "",
       """try_charge_memcg(): a charge that may not spin (!gfpflags_allow_spinning()) charges
       exactly nr_pages, no batch."""),
    _s("kmem_uncharge_skips_root", "mm", "", "", "",
       """obj_cgroup_uncharge_pages() / drain_obj_stock() leave a root memcg's counters alone
       (an objcg reparented to root); v5.11 uncharged root through refill_stock(root)."""),
    _s("obj_stock_slab_stats", "mm", "68ac5b3c8db2", "mm/memcg: cache vmstat data in percpu memcg_stock_pcp",
       "v5.14",
       """__account_obj_stock(): the object stock caches NR_SLAB_*_B deltas and flushes them above
       PAGE_SIZE or in drain_obj_stock(); 0: mod_objcg_state() per object."""),
    _s("reclaim_target_unprotected", "mm", "adb8213014b2", "mm: memcg: fix stale protection of reclaim target memcg",
       "v6.3",
       """shrink_node_memcgs(): the reclaim target's own emin/elow are ignored
       (mem_cgroup_unprotected()); before, mem_cgroup_below_min()/below_low() read the target's
       stale effective values."""),
    _s("reclaim_partial_walk", "mm", "", "mm: vmscan: restore incremental cgroup iteration",
       "v6.11",
       """shrink_node_memcgs(): direct reclaim stops its walk of the target's subtree once
       nr_to_reclaim is met; do_try_to_free_pages() retries with a full walk (memcg_full_walk)
       before giving up.  The model's walks always start at the target (no reclaim cookie)."""),
    _s("memcg_reclaim_counts_slab", "mm", "", "mm: vmscan: ignore non-LRU-based reclaim in memcg reclaim",
       "v6.4",
       """Slab pages freed by shrinkers during memcg reclaim count in nr_reclaimed
       (current->reclaim_state->reclaimed_slab).  The switch is true in the releases before its
       commit, which counts them for global reclaim only."""),
    _s("shrinker_deferred_per_memcg", "mm", "867508304685", "mm: vmscan: use per memcg nr_deferred of shrinker",
       "v5.13",
       """do_shrink_slab(): deferred work is kept per memcg (shrinker_info) and scanned
       nr_deferred >> priority at a time, capped at twice the freeable objects (with "mm: vmscan:
       shrink deferred objects proportional to priority"); 0: one nr_deferred per shrinker, taken
       whole, with the v5.10 windup clamps."""),
    _s("sb_scan_exact_total", "mm", "", "fs: remove the unneeded + 1 in super_cache_scan()",
       "v6.16",
       """super_cache_scan() proportions nr_to_scan over dentries + inodes + fs objects; before,
       over that total + 1 (one dentry fewer walked per batch)."""),
    _s("kpagecgroup_folio", "mm", "", "memcg: page_cgroup_ino() get memcg from the page's folio",
       "v6.4",
       """page_cgroup_ino() (/proc/kpagecgroup) reads the page's folio, so a tail page of a
       compound page reports its head's memcg; before, the tail's own memcg_data (none)."""),
    # ---------------------------------------------------------------- mm: Python-level facts
    _s("has_gfp_atomic", "mm", "2973d8229b78", "mm: discard __GFP_ATOMIC", "v6.3",
       """__GFP_ATOMIC exists (GFP_ATOMIC = 0xa20).  The switch is true in the releases before its
       commit, which removed the bit (GFP_ATOMIC = 0x820)."""),
    _s("nowait_nowarn", "mm", "16f5dfbc851b", "gfp: include __GFP_NOWARN in GFP_NOWAIT",
       "v6.8",
       """GFP_NOWAIT includes __GFP_NOWARN (include/linux/gfp_types.h)."""),
    _s("has_memory_peak", "mm", "", "",
       "v5.19",
       """cgroup v2 memory.peak exists (memory_peak_read())."""),
    _s("memcg_stat_local_copies", "mm", "2d146aa3aa84", "mm: memcontrol: switch to rstat",
       "v5.13",
       """mem_cgroup_alloc() allocates a second percpu memcg_vmstats_percpu (vmstats_local) and, per
       node, two percpu struct lruvec_stat (lruvec_stat_local, lruvec_stat_cpu), all
       GFP_KERNEL_ACCOUNT.  The switch is true in the releases before the rstat conversion
       (vmstats_local gone in v5.13, the per-node pair replaced by lruvec_stats_percpu in
       v5.15)."""),
    _s("memcg_vmstats_accounted", "mm", "70a64b7919cb", "memcg: dynamically allocate lruvec_stats",
       "v6.10",
       """mem_cgroup_alloc() kzallocs memcg->vmstats and, per node, the lruvec_stats with
       GFP_KERNEL_ACCOUNT (charged to the parent)."""),
    # ---------------------------------------------------------------- bpf
    _s("rlimit", "bpf", "80ee81e0403c", "bpf: eliminate rlimit-based memory accounting infra for bpf maps",
       "v5.11",
       """Maps and programs are charged to the user's locked_vm against RLIMIT_MEMLOCK
       (bpf_map_charge_init(), bpf_prog_charge_memlock()).  The switch is true in the releases
       before its commit, which removed the charge."""),
    _s("account", "bpf", "d5299b67dd59", "bpf: memcg-based memory accounting for bpf maps",
       "v5.11",
       """BPF map and program allocations carry __GFP_ACCOUNT (memcg accounting)."""),
    _s("map_memcg", "bpf", "48edc1f78aab", "bpf: prepare for memcg-based memory accounting for bpf maps",
       "v5.11",
       """bpf_map_save_memcg(): a map remembers its creator's memcg and bpf_map_kmalloc_node() and
       friends charge runtime allocations to it under set_active_memcg()."""),
    _s("map_objcg", "bpf", "", "", "v6.0",
       """bpf_map_save_memcg() keeps an obj_cgroup (get_obj_cgroup_from_current(), NULL for root)
       instead of a css reference; bpf_map_get_memcg() follows its reparenting."""),
    _s("map_mem_usage", "bpf", "90a5527d7686", "bpf: add new map ops ->map_mem_usage", "v6.4",
       """fdinfo memlock is ops->map_mem_usage() (bpf_map_memory_usage()); before it
       bpf_map_memory_footprint() (v5.11) or the charged pages (rlimit)."""),
    _s("htab_mem_alloc", "bpf", "fba1a1c6c912", "bpf: Convert hash map to bpf_mem_alloc.", "v6.1",
       """No-prealloc hash elements come from bpf_mem_alloc caches (alloc_htab_elem() ->
       bpf_mem_cache_alloc()) instead of one bpf_map_kmalloc_node() each."""),
    _s("runtime_gfp_nowait", "bpf", "ace2bee839e0", "bpf: Make non-preallocated allocation low priority",
       "v6.0",
       """Runtime element allocations (no-prealloc hash, LPM nodes, devmap, ...) use GFP_NOWAIT
       instead of GFP_ATOMIC, so they fail over memory.max instead of being forced."""),
    _s("default_memlock", "bpf", "9dcc38e2813e", "Increase default MLOCK_LIMIT to 8 MiB", "v5.16",
       """The default RLIMIT_MEMLOCK soft and hard limit in bytes (MLOCK_LIMIT,
       include/uapi/linux/resource.h): 64 KiB, then 8 MiB."""),
    _s("caps_central", "bpf", "6c3eba1c5e28", "bpf: centralize permissions checks for all BPF map types",
       "v6.5",
       """map_create() checks the capability each map type needs from one list instead of each
       type's map_alloc_check()/map_alloc()."""),
    _s("unpriv_per_command", "bpf", "1d28635abcf1", "bpf: move unprivileged checks into map_create() and bpf_prog_load()",
       "v6.5",
       """kernel.unprivileged_bpf_disabled is tested by map_create() and bpf_prog_load(), no longer
       for every command at __sys_bpf() entry."""),
    _s("freeze_needs_write", "bpf", "c4c84f6fb2c4", "bpf: drop unnecessary bpf_capable() check in BPF_MAP_FREEZE command",
       "v6.5",
       """map_freeze() needs a writable map fd (-EPERM otherwise), no longer CAP_BPF.  The check
       comes before the -EBUSY ones and map_get_sys_perms() takes write access away from a
       frozen map, so freezing it again is -EPERM (before: -EBUSY)."""),
    _s("struct_area_alloc", "bpf", "73cf09a36bf7", "bpf: use bpf_map_area_alloc consistently on bpf map creation",
       "v6.1",
       """The map structs that were kzalloc'ed (htab, LPM trie, sock maps, local storage, ...)
       come from bpf_map_area_alloc()."""),
    _s("htab_map_locked", "bpf", "20b6cc34ea74", "bpf: Avoid hashtab deadlock with map_locked", "v5.11",
       """htab_map_alloc() allocates HASHTAB_MAP_LOCK_COUNT per-cpu map_locked counters (counted in
       htab_map_mem_usage())."""),
    _s("map_extra", "bpf", "9330986c0300", "bpf: Add bloom filter map implementation", "v5.16",
       """union bpf_attr has map_extra: map_create() refuses it for other map types, fdinfo prints
       it and struct bpf_map_info grows to 88 bytes."""),
    _s("prog_alloc_enomem", "bpf", "", "bpf: add BPF token support to BPF_PROG_LOAD command",
       "v6.9",
       """bpf_prog_load(): a failed bpf_prog_alloc() returns -ENOMEM; false: -EINVAL."""),
    _s("lookup_and_delete_hash", "bpf", "3e87f192b405", "bpf: Add lookup_and_delete_elem support to hashtab",
       "v5.14",
       """BPF_MAP_LOOKUP_AND_DELETE_ELEM works on the hash family
       (htab_map_lookup_and_delete_elem())."""),
    _s("lookup_and_delete_stack_trace", "bpf", "17f0d1f6321c", "bpf: Add lookup_and_delete_elem for BPF_MAP_STACK_TRACE",
       "v6.18",
       """BPF_MAP_LOOKUP_AND_DELETE_ELEM works on STACK_TRACE maps (bpf_stackmap_extract());
       before, -ENOTSUPP."""),
    _s("htab_percpu_value_limit", "bpf", "1d244784be6b", "bpf: Check percpu map value size first",
       "v6.12",
       """htab_map_alloc_check(): a per-cpu value above PCPU_MIN_UNIT_SIZE is -E2BIG at create."""),
    _s("htab_max_2g", "bpf", "6787d916c2cf", "bpf: Fix hashtab overflow check on 32-bit arches",
       "v6.9",
       """htab_map_alloc(): max_entries above 2^31 is -E2BIG (n_buckets would overflow)."""),
    _s("memalloc_prefill_split", "bpf", "", "",
       "v6.8",
       """prefill_mem_cache(): per-cpu bpf_mem_alloc caches prefill 1 object instead of 4."""),
    _s("htab_large_key", "bpf", "c6bde958a62b", "bpf: Lift hashtab key_size limit", "v5.11",
       """htab_map_alloc_check() limits key_size + value_size (below KMALLOC_MAX_SIZE -
       sizeof(struct htab_elem)) instead of key_size <= MAX_BPF_STACK and a value bound."""),
    _s("array_value_int_max", "bpf", "", "", "v6.0",
       """array_map_alloc_check(): value_size is bounded by INT_MAX instead of
       KMALLOC_MAX_SIZE."""),
    _s("perf_event_entry_kernel_gfp", "bpf", "dc68540913ac", "bpf: Use GFP_KERNEL in bpf_event_entry_gen()",
       "v6.8",
       """bpf_event_entry_gen() allocates with GFP_KERNEL instead of GFP_ATOMIC."""),
    _s("cgroup_storage_large_value", "bpf", "", "", "v5.15",
       """cgroup_storage_map_alloc(): value_size up to BPF_LOCAL_STORAGE_MAX_VALUE_SIZE (per-cpu:
       PCPU_MIN_UNIT_SIZE) instead of PAGE_SIZE."""),
    _s("cgroup_storage_map_memcg", "bpf", "3a61c7c58b30", "bpf: memcg-based memory accounting for cgroup storage maps",
       "v5.11",
       """bpf_cgroup_storage_alloc() allocates the storage and its buffer with
       bpf_map_kmalloc_node() / bpf_map_alloc_percpu() (the map's memcg) instead of
       kmalloc(__GFP_ACCOUNT) in the attaching task's context."""),
    _s("local_storage_kvcalloc", "bpf", "", "bpf: use bpf_map_kvcalloc in bpf_local_storage",
       "v6.3",
       """bpf_local_storage_map_alloc() allocates the buckets with bpf_map_kvcalloc() (the map's
       memcg, not yet saved: root) instead of kvcalloc(__GFP_ACCOUNT)."""),
    _s("selem_compact", "bpf", "", "bpf: Reduce smap->elem_size", "v6.4",
       """smap->elem_size is offsetof(struct bpf_local_storage_elem, sdata.data) + value_size
       instead of sizeof(struct bpf_local_storage_elem) + value_size."""),
    _s("lpm_trie_mem_alloc", "bpf", "3d8dc43eb2a3", "bpf: Switch to bpf mem allocator for LPM trie",
       "v6.13",
       """trie_alloc() sets up a bpf_mem_alloc for the nodes (trie_update_elem() takes nodes from
       it)."""),
    _s("lpm_trie_update_flags", "bpf", "", "bpf: Handle BPF_EXIST and BPF_NOEXIST for LPM trie",
       "v6.13",
       """trie_update_elem() honours BPF_NOEXIST/BPF_EXIST, allocates the node before the walk and
       is -ENOSPC only for a new key in a full trie."""),
    _s("batch_percpu_array", "bpf", "f008d732ab18", "bpf: Add batched ops support for percpu array",
       "v5.13",
       """PERCPU_ARRAY has BPF_MAP_LOOKUP_BATCH / BPF_MAP_UPDATE_BATCH (generic_map_*_batch());
       before, -ENOTSUPP."""),
    _s("batch_lpm", "bpf", "f56387c534cc", "bpf: Add support for batched ops in LPM trie maps",
       "v5.13",
       """LPM_TRIE has BPF_MAP_LOOKUP_BATCH / UPDATE_BATCH / DELETE_BATCH (generic_map_*_batch());
       before, -ENOTSUPP."""),
    _s("batch_map_in_map", "bpf", "9263dddc7b6f", "bpf: Extend batch operations for map-in-map bpf-maps",
       "v5.19",
       """ARRAY_OF_MAPS has lookup/update batch and HASH_OF_MAPS the four hash batch ops (the
       values are inner map ids out, fds in); before, -ENOTSUPP."""),
    _s("prog_array_owner_attach_type", "bpf", "4540aed51b12", "bpf: Enforce expected_attach_type for tailcall compatibility",
       "v6.18",
       """__bpf_prog_map_compatible(): a prog array's owner also records the first
       program's expected_attach_type, and a program with another one is -EINVAL (put in
       the array or loaded using it); before, the program type alone.  Taken into stable
       lines too (which ones the 5.10/5.11 values do not follow up: not established)."""),
    _s("struct_ops_link", "bpf", "68b04864ca42", "bpf: Create links for BPF struct_ops maps.",
       "v6.4",
       """bpf_struct_ops_map_alloc_check() accepts BPF_F_LINK."""),
    _s("struct_ops_vtype_btf_obj_fd", "bpf", "", "",
       "v6.9",
       """bpf_struct_ops_map_alloc_check() accepts BPF_F_VTYPE_BTF_OBJ_FD."""),
    _s("fdinfo_ino", "bpf", "", "",
       "v5.14",
       """/proc/<pid>/fdinfo/<fd> prints "ino:" (seq_show(), fs/proc/fd.c)."""),
    _s("prog_fdinfo_recursion_misses", "bpf", "9ed9e9ba2337", "bpf: Count the number of times recursion was prevented",
       "v5.12",
       """bpf_prog_show_fdinfo() prints recursion_misses."""),
    _s("prog_fdinfo_verified_insns", "bpf", "aba64c7da983", "bpf: Add verified_insns to bpf_prog_info and fdinfo",
       "v5.16",
       """bpf_prog_show_fdinfo() prints verified_insns."""),
    _s("lru_target_free_clamp", "bpf", "d4adf1c9ee77",
       "bpf: Adjust free target to avoid global starvation of LRU map", "v6.16",
       """bpf_lru_list_pop_free_to_local() (kernel/bpf/bpf_lru_list.c) refills a cpu's local
       free list of a common-LRU map with target_free = clamp(max_entries / possible cpus / 2,
       1, LOCAL_FREE_TARGET) nodes instead of LOCAL_FREE_TARGET (128), which decides the LRU
       victims; backported to 6.6.99 and 6.12.39."""),
)

BY_NAME: dict[str, Switch] = {s.name: s for s in SWITCHES}
assert len(BY_NAME) == len(SWITCHES), "switch names must be unique"


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "-"
    return str(value)


def render_table(profiles: Iterable[Any]) -> str:
    """The Markdown table of docs/profiles.md: one row per switch, one column per Profile."""
    profs = list(profiles)
    head = "| switch | layer | " + " | ".join(p.name for p in profs) + " | since | commit | what it changes |"
    rule = "|" + "---|" * (len(profs) + 5)
    rows = [head, rule]
    for s in SWITCHES:
        commit = f"`{s.commit}` {s.title}" if s.commit else (f"({s.title})" if s.title else "")
        cells = [f"`{s.name}`", s.layer] + [_cell(p.switch(s.name)) for p in profs]
        cells += [s.first or "", commit, s.doc]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
