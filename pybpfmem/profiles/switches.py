"""The switch catalogue: every behaviour that differs between kernel releases.

One ``Switch`` per named difference.  ``layer`` says who reads it: ``"mm"``
(the C core through ``struct bm_profile``, or the Python memory layer) or
``"bpf"`` (the BPF layer).  ``doc`` says what it changes and names the kernel
function; ``commit`` is the torvalds/linux commit that changed the behaviour (12+ hex
digits; empty while not yet established), ``first`` the first mainline release
with the newer behaviour and ``stable`` the stable releases of the lines the
profiles follow that took the change as a backport (a profile follows the
newest stable release of its line, so a backport sets that line's value).  The values each kernel takes are
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
    commit: str         # the commit that changed the behaviour ("" = not established yet)
    title: str          # its subject line
    first: str          # first mainline release with the newer behaviour, "v6.1"
    stable: str = ""    # stable backports that set a profile's value: "5.10.227, 6.1.113"


def _s(name: str, layer: Literal["mm", "bpf"], commit: str, title: str, first: str,
       doc: str, stable: str = "") -> Switch:
    return Switch(name, layer, " ".join(doc.split()), commit, title, first, stable)


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
    _s("drain_obj_stock_direct", "mm", "65d2d15f41c6", "memcg: decouple drain_obj_stock from local stock",
       "v6.16",
       """drain_obj_stock() takes MEMCG_KMEM and the v1 kmem counter down and uncharges the whole
       pages with memcg_uncharge() directly, instead of through the cpu's page stock
       (obj_cgroup_uncharge_pages() / __refill_stock())."""),
    _s("failcnt_v1_only", "mm", "0e2759afcaf9", "page_counter: track failcnt only for legacy cgroups",
       "v6.15",
       """page_counter_try_charge(): failcnt is counted only for cgroup v1 counters
       (counter->track_failcnt)."""),
    _s("clamp_underflow", "mm", "9317d0fffeb4", "mm: page_counter: mitigate consequences of a page_counter underflow",
       "v5.13",
       """page_counter_cancel(): a usage that would go negative is set to 0 (with a warning)."""),
    _s("gfp_atomic_forces", "mm", "1461e8c2b6af", "memcg: unify force charging conditions",
       "v5.18",
       """try_charge(): a __GFP_ATOMIC charge over the limit is forced before any reclaim, with no
       MEMCG_MAX event.  The switch is true in the releases before its commit."""),
    _s("dying_task_forces", "mm", "a4ebf1b6ca1e", "memcg: prohibit unconditional exceeding the limit of dying tasks",
       "v5.16",
       """try_charge(): a dying current (OOM victim, fatal signal, exiting: should_force_charge())
       is force-charged before reclaim and after the retries, and a memcg OOM that finds nothing
       to kill forces too; without it a dying task that passed the OOM killer gets -ENOMEM and
       an OOM without a victim fails the charge.  The switch is true in the releases before its
       commit.""",
       "5.10.y (between 5.10.50 and 5.10.80), 5.15.3"),
    _s("nofail_forces_before_oom", "mm", "", "memcg: enable memcg oom-kill for __GFP_NOFAIL",
       "v5.13",
       """try_charge(): after the reclaim retries a __GFP_NOFAIL charge is forced at once, without
       the memcg OOM killer (MEMCG_OOM event); later releases run the OOM killer and force on
       the nomem path.  The switch is true in the releases before its commit."""),
    _s("gfp_high_forces", "mm", "1461e8c2b6af", "memcg: unify force charging conditions",
       "v5.18",
       """try_charge_memcg(): on the nomem path a __GFP_HIGH charge is forced (like
       __GFP_NOFAIL), so GFP_ATOMIC is forced after raising MEMCG_MAX."""),
    _s("max_event_on_force", "mm", "", "mm: memcontrol: do not miss MEMCG_MAX events for enforced allocations",
       "v6.0",
       """try_charge_memcg(): MEMCG_MAX is raised for a forced charge too."""),
    _s("kmem_limit_enforced", "mm", "58056f77502f", "memcg, kmem: further deprecate kmem.limit_in_bytes",
       "v5.16",
       """cgroup v1 memory.kmem.limit_in_bytes is enforced (the kmem counter is try-charged, a
       write sets the limit).  After the commit a write failed with -EOPNOTSUPP until
       4597648fddea ("mm, memcg: reconsider kmem.limit_in_bytes deprecation", v6.6, 6.1.56) made
       it an accepted no-op: the value of the releases without the switch.  The switch is true
       in the releases before its commit."""),
    _s("kmalloc_cg_caches", "mm", "494c1dfe855e", "mm: memcg/slab: create a new set of kmalloc-cg-<n> caches",
       "v5.14",
       """kmalloc_slab(): accounted kmallocs come from separate kmalloc-cg-<n> caches."""),
    _s("percpu_ptr_overhead", "mm", "8c57c07741bf", "mm: memcg/percpu: account extra objcg space to memory cgroups",
       "v5.17",
       """pcpu_obj_full_size() (mm/percpu-internal.h) adds the chunk's objcg pointer per
       PCPU_MIN_ALLOC_SIZE unit to the charged size."""),
    _s("large_kmalloc_memcg_stat", "mm", "96403bfe50c3", "mm: memcontrol: fix slub memory accounting",
       "v5.12",
       """kmalloc_large(): the pages count in the memcg's NR_SLAB_UNRECLAIMABLE_B (lruvec), not
       only the node's.""",
       "5.10.y (by 5.10.35)"),
    _s("stat_kernel", "mm", "a8c49af3be5f", "memcg: add per-memcg total kernel memory stat",
       "v5.18",
       """memory.stat prints "kernel" (MEMCG_KMEM) in memory_stat_format()."""),
    _s("stat_vmalloc", "mm", "4e5aa1f4c2b4", "memcg: add per-memcg vmalloc stat",
       "v5.17",
       """memory.stat prints "vmalloc" (MEMCG_VMALLOC, charged by __vmalloc_area_node())."""),
    _s("nospin_no_batch", "mm", "01d37228d331", "memcg: Use trylock to access memcg stock_lock.",
       "v6.15",
       """try_charge_memcg(): a charge that may not spin (!gfpflags_allow_spinning()) charges
       exactly nr_pages, no batch; the stocks are taken with a trylock."""),
    _s("kmem_uncharge_skips_root", "mm", "20d6c1725228", "memcg: avoid refill_stock for root memcg",
       "v6.15",
       """obj_cgroup_uncharge_pages() / drain_obj_stock() leave a root memcg's counters alone
       (an objcg reparented to root); before, root was uncharged through refill_stock(root)."""),
    _s("obj_stock_slab_stats", "mm", "68ac5b3c8db2", "mm/memcg: cache vmstat data in percpu memcg_stock_pcp",
       "v5.14",
       """__account_obj_stock(): the object stock caches NR_SLAB_*_B deltas and flushes them above
       PAGE_SIZE or in drain_obj_stock(); 0: mod_objcg_state() per object."""),
    _s("reclaim_target_unprotected", "mm", "adb8213014b2", "mm: memcg: fix stale protection of reclaim target memcg",
       "v6.3",
       """shrink_node_memcgs(): the reclaim target's own emin/elow are ignored
       (mem_cgroup_unprotected()); before, mem_cgroup_below_min()/below_low() read the target's
       stale effective values."""),
    _s("reclaim_partial_walk", "mm", "6be5e186fd65", "mm: vmscan: restore incremental cgroup iteration",
       "v6.11",
       """shrink_node_memcgs(): direct reclaim stops its walk of the target's subtree once
       nr_to_reclaim is met; do_try_to_free_pages() retries with a full walk (memcg_full_walk)
       before giving up.  The model's walks always start at the target (no reclaim cookie)."""),
    _s("memcg_reclaim_counts_slab", "mm", "583c27a167c2", "mm: vmscan: ignore non-LRU-based reclaim in memcg reclaim",
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
       over that total + 1 (one dentry fewer walked per batch).  Commit not established: 6.14.0
       has the "+ 1", 6.17.0 not; no stable line of a profile (5.15.215, 6.1.166, 6.6.150,
       6.12.94) took it."""),
    _s("kpagecgroup_folio", "mm", "ec342603e6d7", "memcg: page_cgroup_ino() get memcg from the page's folio",
       "v6.4",
       """page_cgroup_ino() (/proc/kpagecgroup) reads the page's folio, so a tail page of a
       compound page reports its head's memcg; before, the tail's own memcg_data (none)."""),
    _s("obj_stock_task_irq_split", "mm", "559271146efc", "mm/memcg: optimize user context object stock access",
       "v5.14",
       """get_obj_stock(): a cpu has two object stocks, task_obj for task context and irq_obj for
       interrupts, each with its own cached objcg and bytes; drain_local_stock() drains both
       (irq_obj only from an interrupt).  Reverted by fead2b869764 in v5.18, so true in
       v5.14-v5.17 only."""),
    _s("objcg_release_via_stock", "mm", "b6d0471117da", "memcg: no refilling stock from obj_cgroup_release",
       "v6.16",
       """obj_cgroup_release(): the whole pages parked in nr_charged_bytes go back through the
       releasing cpu's page stock (__memcg_kmem_uncharge() / obj_cgroup_uncharge_pages() ->
       refill_stock()), so they stay charged in that stock until it drains.  The switch is true
       in the releases before its commit, which uncharges them directly."""),
    _s("objcg_put_after_stock_drain", "mm", "56751146238723",
       "mm/memcg: protect memcg_stock with a local_lock_t", "v5.19",
       """drain_local_stock() (the work of drain_all_stock()) drops the reference of the objcg
       it drained from the object stock after drain_stock(), outside the stock lock; before,
       drain_obj_stock() dropped it itself, before the page stock was drained.  With
       objcg_release_via_stock, the pages a last put releases through refill_stock() are then
       drained at once (before) or stay charged in that cpu's stock (after)."""),
    _s("sync_high_over_batch", "mm", "c9afe31ec443",
       "memcg: synchronously enforce memory.high for large overcharges", "v5.18",
       """try_charge_memcg(): once a task's memory.high debt (memcg_nr_pages_over_high) passes
       MEMCG_CHARGE_BATCH and the gfp may block, the charge runs mem_cgroup_handle_over_high()
       itself instead of leaving it all to the return to user.  Seen where one call charges
       many times (a vmalloc of many pages): more reclaim passes, more high events."""),
    _s("memcg_orig_objcg", "mm", "675d6c9b59e3",
       "mm: kmem: make memcg keep a reference to the original objcg", "v6.7",
       """memcg_online_kmem() takes a reference on the memcg's first objcg for
       memcg->orig_objcg, and __mem_cgroup_free() drops it.  After rmdir the reparented objcg
       therefore lives until the dying memcg is freed, with the bytes parked in its
       nr_charged_bytes: they stay charged (to the ancestor it points at, and in MEMCG_KMEM)
       until then, where before the last object's or stock's reference released them."""),
    _s("kvmalloc_any_gfp", "mm", "a421ef303008", "mm: allow !GFP_KERNEL allocations for kvmalloc",
       "v5.17",
       """kvmalloc_node(): flags that are not GFP_KERNEL-compatible fall back to vmalloc too
       (before, they got the kmalloc attempt only), and the kmalloc attempt above a page never
       carries __GFP_NOFAIL (the vmalloc fallback implements it).  Its fix \"mm: fix BUG splat
       with kvmalloc + GFP_ATOMIC\" (v6.0) keeps flags that cannot block out of the fallback."""),
    _s("kvmalloc_kmalloc_no_reclaim", "mm", "46459154f997",
       "mm: kvmalloc: make kmalloc fast path real fast path", "v6.16",
       """kmalloc_gfp_adjust(): the kmalloc attempt of a kvmalloc above a page drops
       __GFP_DIRECT_RECLAIM (unless __GFP_RETRY_MAYFAIL) instead of adding __GFP_NORETRY, so
       the memcg charge of that attempt cannot reclaim: it fails at once, raising no max
       event, and the vmalloc fallback charges."""),
    # ---------------------------------------------------------------- mm: Python-level facts
    _s("has_gfp_atomic", "mm", "2973d8229b78", "mm: discard __GFP_ATOMIC", "v6.3",
       """__GFP_ATOMIC exists (GFP_ATOMIC = 0xa20).  The switch is true in the releases before its
       commit, which removed the bit (GFP_ATOMIC = 0x820)."""),
    _s("nowait_nowarn", "mm", "16f5dfbc851b", "gfp: include __GFP_NOWARN in GFP_NOWAIT",
       "v6.8",
       """GFP_NOWAIT includes __GFP_NOWARN (include/linux/gfp_types.h)."""),
    _s("has_memory_peak", "mm", "8e20d4b33266", "mm/memcontrol: export memcg->watermark via sysfs for v2 memcg",
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
    _s("memory_peak_write", "mm", "c6f53ed8f213", "mm, memcg: cg2 memory{.swap,}.peak write handlers",
       "v6.12",
       """cgroup v2 memory.peak is writable: a write resets the peak seen through that open file
       (memory_peak_write(), local_watermark); before it the file is read-only (EACCES)."""),
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
    _s("map_objcg", "bpf", "4201d9ab3e42", "bpf: reparent bpf maps on memcg offlining", "v6.0",
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
    _s("unpriv_entry_create_only", "bpf", "c8644cd0efe7", "bpf: refine kernel.unprivileged_bpf_disabled behaviour",
       "v5.19",
       """__sys_bpf(): with kernel.unprivileged_bpf_disabled set, a task without CAP_BPF is refused
       (-EPERM) BPF_MAP_CREATE and BPF_PROG_LOAD only; before, every command."""),
    _s("unpriv_per_command", "bpf", "1d28635abcf1", "bpf: move unprivileged checks into map_create() and bpf_prog_load()",
       "v6.5",
       """kernel.unprivileged_bpf_disabled is tested inside map_create() and bpf_prog_load(), after
       their attribute checks (so a bad attr is -EINVAL before -EPERM), no longer at __sys_bpf()
       entry."""),
    _s("freeze_needs_write", "bpf", "c4c84f6fb2c4", "bpf: drop unnecessary bpf_capable() check in BPF_MAP_FREEZE command",
       "v6.5",
       """map_freeze() needs a writable map fd (-EPERM otherwise), no longer CAP_BPF.  The check
       comes before the -EBUSY ones and map_get_sys_perms() takes write access away from a
       frozen map, so freezing it again is -EPERM (before: -EBUSY)."""),
    _s("struct_area_alloc", "bpf", "73cf09a36bf7", "bpf: use bpf_map_area_alloc consistently on bpf map creation",
       "v6.1",
       """The map structs that were kzalloc'ed (htab, LPM trie, sock maps, local storage, ...)
       come from bpf_map_area_alloc()."""),
    _s("htab_map_locked", "bpf", "4fa8d68aa53e", "bpf: Convert hashtab.c to rqspinlock", "v6.15",
       """htab_map_alloc() allocates HASHTAB_MAP_LOCK_COUNT per-cpu map_locked counters (since
       20b6cc34ea74, v5.11); the rqspinlock conversion dropped them (htab_map_mem_usage() still
       counts them).  The switch is true in the releases before its commit."""),
    _s("fd_htab_extra_elems", "bpf", "6704b1e8cfc5", "bpf: Don't allocate per-cpu extra_elems for fd htab",
       "v6.16",
       """htab_has_extra_elems(): a preallocated HASH_OF_MAPS gets num_possible_cpus() extra
       elements and the per-cpu extra_elems pointers like a plain HASH.  The switch is true in
       the releases before its commit."""),
    _s("map_extra", "bpf", "9330986c0300", "bpf: Add bloom filter map implementation", "v5.16",
       """union bpf_attr has map_extra: map_create() refuses it for other map types, fdinfo prints
       it and struct bpf_map_info grows to 88 bytes."""),
    _s("memcg_nobpf", "bpf", "b6c1a8af5b1e", "mm: memcontrol: add new kernel parameter cgroup.memory=nobpf",
       "v6.3",
       """The boot option cgroup.memory=nobpf exists (memcg_bpf_enabled(): BPF map and program
       memory goes uncharged).  Read by `pybpfmem doctor`; the model does not run with it."""),
    _s("prog_alloc_enomem", "bpf", "caf8f28e036c", "bpf: Add BPF token support to BPF_PROG_LOAD command",
       "v6.9",
       """bpf_prog_load(): a failed bpf_prog_alloc() returns -ENOMEM; after the commit -EINVAL.
       The switch is true in the releases before its commit."""),
    _s("lookup_and_delete_hash", "bpf", "3e87f192b405", "bpf: Add lookup_and_delete_elem support to hashtab",
       "v5.14",
       """BPF_MAP_LOOKUP_AND_DELETE_ELEM works on the hash family
       (htab_map_lookup_and_delete_elem()); before, -ENOTSUPP."""),
    _s("lookup_and_delete_stack_trace", "bpf", "17f0d1f6321c", "bpf: Add lookup_and_delete_elem for BPF_MAP_STACK_TRACE",
       "v6.18",
       """BPF_MAP_LOOKUP_AND_DELETE_ELEM works on STACK_TRACE maps (bpf_stackmap_extract());
       before, -ENOTSUPP."""),
    _s("percpu_value_limit", "bpf", "1d244784be6b", "bpf: Check percpu map value size first",
       "v6.12",
       """array_map_alloc_check() / htab_map_alloc_check(): a per-cpu value above
       PCPU_MIN_UNIT_SIZE is -E2BIG at create; before, the per-cpu allocation fails (-ENOMEM,
       PERCPU_ARRAY) or the hash is created and its updates fail.""",
       "5.10.227, 5.15.168, 6.1.113, 6.6.57"),
    _s("htab_max_2g", "bpf", "6787d916c2cf", "bpf: Fix hashtab overflow check on 32-bit arches",
       "v6.9",
       """htab_map_alloc(): max_entries above 2^31 is -E2BIG before roundup_pow_of_two() (the same
       answer as the n_buckets check gives on 64-bit).""",
       "5.10.214, 5.15.153, 6.1.83, 6.6.23"),
    _s("memalloc_prefill_split", "bpf", "0e2ba9f96f9b", "bpf: Use smaller low/high marks for percpu allocation",
       "v6.8",
       """bpf_mem_alloc per-cpu caches use watermarks 1/3 and prefill 1 object (with 5b95e638f134
       "bpf: Refill only one percpu element in memalloc"); before, their watermarks and prefill
       follow c->unit_size, which for a per-cpu cache is the value size: 32/96 and 4 objects up
       to 256 bytes."""),
    _s("memalloc_prefill_kernel_gfp", "bpf", "d1a02358d48d", "bpf: Non-atomically allocate freelist during prefill",
       "v6.6",
       """prefill_mem_cache() allocates with GFP_KERNEL (reclaim, MEMCG_MAX events, OOM) instead of
       GFP_NOWAIT (fails at once over memory.max, silently)."""),
    _s("memalloc_reuse", "bpf", "04fabf00b4d3", "bpf: Allow reuse from waiting_for_gp_ttrace list.",
       "v6.6",
       """bpf_mem_refill() / alloc_bulk() first take objects freed above the high watermark that
       still wait for their RCU grace period, and kmalloc only the rest (0893d6007db5, v6.2, took
       them from free_by_rcu; v6.6 also from waiting_for_gp_ttrace)."""),
    _s("htab_large_key", "bpf", "c6bde958a62b", "bpf: Lift hashtab key_size limit", "v5.11",
       """htab_map_alloc_check() limits key_size + value_size (below KMALLOC_MAX_SIZE -
       sizeof(struct htab_elem)) instead of key_size <= MAX_BPF_STACK and a value bound."""),
    _s("array_value_int_max", "bpf", "63b8ce77b15e", "bpf: remove obsolete KMALLOC_MAX_SIZE restriction on array map value size",
       "v6.0",
       """array_map_alloc_check(): value_size is bounded by INT_MAX instead of
       KMALLOC_MAX_SIZE."""),
    _s("perf_event_entry_kernel_gfp", "bpf", "dc68540913ac", "bpf: Use GFP_KERNEL in bpf_event_entry_gen()",
       "v6.8",
       """bpf_event_entry_gen() allocates with GFP_KERNEL instead of GFP_ATOMIC."""),
    _s("cgroup_storage_large_value", "bpf", "33b57e0cc78e", "bpf: Increase supported cgroup storage value size",
       "v5.15",
       """cgroup_storage_map_alloc(): value_size up to BPF_LOCAL_STORAGE_MAX_VALUE_SIZE (per-cpu:
       PCPU_MIN_UNIT_SIZE) instead of PAGE_SIZE."""),
    _s("local_storage_kvcalloc", "bpf", "ddef81b5fd1d", "bpf: use bpf_map_kvcalloc in bpf_local_storage",
       "v6.3",
       """bpf_local_storage_map_alloc() allocates the buckets with bpf_map_kvcalloc() (the map's
       memcg, not yet saved: root) instead of kvcalloc(__GFP_ACCOUNT).""",
       "6.1.100"),
    _s("selem_compact", "bpf", "552d42a356eb", "bpf: Reduce smap->elem_size", "v6.3",
       """smap->elem_size is offsetof(struct bpf_local_storage_elem, sdata.data) + value_size
       instead of sizeof(struct bpf_local_storage_elem) + value_size.""",
       "6.1.100"),
    _s("lpm_trie_mem_alloc", "bpf", "3d8dc43eb2a3", "bpf: Switch to bpf mem allocator for LPM trie",
       "v6.13",
       """trie_alloc() sets up a bpf_mem_alloc for the nodes (trie_update_elem() takes nodes from
       it)."""),
    _s("lpm_exist_flags", "bpf", "eae6a075e953", "bpf: Handle BPF_EXIST and BPF_NOEXIST for LPM trie",
       "v6.13",
       """trie_update_elem() honours BPF_NOEXIST (-EEXIST) and BPF_EXIST (-ENOENT); before, both
       acted as BPF_ANY.""",
       "5.10.231, 5.15.174, 6.1.120, 6.6.66, 6.12.y (by 6.12.10)"),
    _s("lpm_full_inplace", "bpf", "532d6b36b2bf", "bpf: Handle in-place update for full LPM trie correctly",
       "v6.13",
       """trie_update_elem() allocates the new node before the walk and is -ENOSPC only when a new
       key would pass max_entries, so a full trie can replace a value in place; before, a full
       trie refused every update with -ENOSPC.""",
       "6.1.120, 6.6.66, 6.12.y (by 6.12.10)"),
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
       the array or loaded using it); before, the program type alone (5.10.265, 5.15.215
       and 6.8.0 still so).""",
       "6.1.156, 6.6.112, 6.12.53"),
    _s("struct_ops_link", "bpf", "68b04864ca42", "bpf: Create links for BPF struct_ops maps.",
       "v6.4",
       """bpf_struct_ops_map_alloc_check() accepts BPF_F_LINK."""),
    _s("struct_ops_vtype_btf_obj_fd", "bpf", "fcc2c1fb0651", "bpf: pass attached BTF to the bpf_struct_ops subsystem",
       "v6.9",
       """bpf_struct_ops_map_alloc_check() accepts BPF_F_VTYPE_BTF_OBJ_FD."""),
    _s("fdinfo_ino", "bpf", "3845f256a8b5", "procfs/dmabuf: add inode number to /proc/*/fdinfo",
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
       victims.""",
       "6.6.99, 6.12.39"),
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
    head = ("| switch | layer | " + " | ".join(p.name for p in profs)
            + " | since (stable backports) | commit | what it changes |")
    rule = "|" + "---|" * (len(profs) + 5)
    rows = [head, rule]
    for s in SWITCHES:
        commit = f"`{s.commit}` {s.title}" if s.commit else (f"({s.title})" if s.title else "")
        cells = [f"`{s.name}`", s.layer] + [_cell(p.switch(s.name)) for p in profs]
        since = s.first + (f" ({s.stable})" if s.stable else "")
        cells += [since, commit, s.doc]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"
