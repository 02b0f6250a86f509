"""Kernel profiles as data.

A profile names the kernel release whose behaviour a System follows and
carries every switch that differs between releases.  ``PROFILE_SWITCHES``
lists the fields of ``struct bm_profile`` (csrc/bpfmem.h) in declaration
order; ``Profile.to_cdata`` fills that struct, so the C core never branches
on a release name.  The Python-level facts of the mm layer (gfp values, the
keys memory.stat / memory.events print, the cgroupfs file sets) live here too.

Sources: /work/shared/reference/memcg.md and the kernel (mm/memcontrol.c,
mm/memcontrol-v1.c, mm/page_counter.c, include/linux/gfp_types.h).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .constants import GfpFlags, gfp_flags

#: struct bm_profile fields, in C declaration order
PROFILE_SWITCHES: tuple[str, ...] = (
    "charge_batch", "nr_memcg_stock", "obj_stock_split_pages", "kmem_page_objcg",
    "kmem_uncharge_via_stock", "drain_obj_stock_direct", "failcnt_v1_only", "clamp_underflow",
    "gfp_atomic_forces", "gfp_high_forces", "max_event_on_force", "kmem_limit_enforced",
    "kmalloc_cg_caches", "percpu_ptr_overhead", "large_kmalloc_memcg_stat", "stat_kernel",
    "stat_vmalloc", "high_set_before_reclaim", "nospin_no_batch", "kmem_uncharge_skips_root",
    "obj_stock_slab_stats",
)

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

V2_FILES: tuple[str, ...] = (
    "memory.current", "memory.max", "memory.high", "memory.low", "memory.min", "memory.peak",
    "memory.events", "memory.events.local", "memory.stat", "cgroup.procs",
)
V1_FILES: tuple[str, ...] = (
    "memory.usage_in_bytes", "memory.limit_in_bytes", "memory.max_usage_in_bytes",
    "memory.failcnt", "memory.kmem.usage_in_bytes", "memory.kmem.limit_in_bytes",
    "memory.kmem.max_usage_in_bytes", "memory.kmem.failcnt", "memory.stat",
    "memory.force_empty", "memory.use_hierarchy", "cgroup.procs",
)


@dataclass(frozen=True, slots=True)
class Profile:
    """One kernel release: struct bm_profile switches plus Python-level facts."""

    name: str
    description: str
    # --- struct bm_profile, in declaration order ---
    charge_batch: int
    nr_memcg_stock: int
    obj_stock_split_pages: int
    kmem_page_objcg: int
    kmem_uncharge_via_stock: int
    drain_obj_stock_direct: int
    failcnt_v1_only: int
    clamp_underflow: int
    gfp_atomic_forces: int
    gfp_high_forces: int
    max_event_on_force: int
    kmem_limit_enforced: int
    kmalloc_cg_caches: int
    percpu_ptr_overhead: int
    large_kmalloc_memcg_stat: int
    stat_kernel: int
    stat_vmalloc: int
    high_set_before_reclaim: int
    nospin_no_batch: int
    kmem_uncharge_skips_root: int
    obj_stock_slab_stats: int
    # --- Python-level facts ---
    has_gfp_atomic: bool              # __GFP_ATOMIC exists (removed in v6.3)
    nowait_nowarn: bool               # GFP_NOWAIT includes __GFP_NOWARN
    has_memory_peak: bool             # memory.peak (v5.19+)
    bpf_memcg_accounting: bool        # BPF regime: memcg (5.11+) vs RLIMIT_MEMLOCK (5.10)
    stat_keys_v2: tuple[str, ...]
    stat_keys_v1: tuple[str, ...]
    event_keys: tuple[str, ...]

    @property
    def gfp(self) -> GfpFlags:
        return gfp_flags(self.has_gfp_atomic, self.nowait_nowarn)

    def switches(self) -> dict[str, int]:
        """The struct bm_profile switches as a dict."""
        return {k: getattr(self, k) for k in PROFILE_SWITCHES}

    def to_cdata(self, ffi: Any) -> Any:
        """A new ``struct bm_profile *`` filled from this profile."""
        p = ffi.new("struct bm_profile *")
        for k in PROFILE_SWITCHES:
            setattr(p, k, getattr(self, k))
        return p

    def files(self, cgroup_version: str) -> tuple[str, ...]:
        if cgroup_version == "v1":
            return V1_FILES
        if self.has_memory_peak:
            return V2_FILES
        return tuple(f for f in V2_FILES if f != "memory.peak")


_MM_5X = dict(
    # MEMCG_CHARGE_BATCH 32 until v6.1; one cached memcg per cpu stock (v5.x)
    charge_batch=32, nr_memcg_stock=1,
    # v5.11 refill_obj_stock drains everything over PAGE_SIZE; KMEM pages record the memcg
    obj_stock_split_pages=0, kmem_page_objcg=0,
    # v5.11-rc4 3de7d4f25a74: __memcg_kmem_uncharge goes through refill_stock;
    # drain_obj_stock -> obj_cgroup_uncharge_pages -> __memcg_kmem_uncharge (not direct)
    kmem_uncharge_via_stock=1, drain_obj_stock_direct=0,
    failcnt_v1_only=0, clamp_underflow=0,
    # try_charge_memcg v5.11: __GFP_ATOMIC (and dying tasks) go to force
    gfp_atomic_forces=1, gfp_high_forces=0, max_event_on_force=0,
    # v1 kmem limit enforced until v5.16
    kmem_limit_enforced=1,
    kmalloc_cg_caches=0, percpu_ptr_overhead=0, large_kmalloc_memcg_stat=0,
    stat_kernel=0, stat_vmalloc=0, high_set_before_reclaim=0, nospin_no_batch=0,
    # __memcg_kmem_uncharge(root) went through refill_stock(root), whose drain
    # uncharged root's counter
    kmem_uncharge_skips_root=0,
    # slab statistics go straight to the memcg (mod_objcg_state() per object)
    obj_stock_slab_stats=0,
    has_gfp_atomic=True, nowait_nowarn=False, has_memory_peak=False,
    stat_keys_v2=_V2_STAT_5_11, event_keys=_EVENTS_5_11,
)

PROFILES: dict[str, Profile] = {
    "5.10": Profile(
        name="5.10",
        description="rlimit era: BPF memory charged to the user's locked_vm against RLIMIT_MEMLOCK",
        bpf_memcg_accounting=False,
        stat_keys_v1=_V1_LOCAL_5_11,
        # v5.10.0's __memcg_kmem_uncharge uncharged memory directly; 3de7d4f25a74
        # (v5.11-rc4, refill_stock) was marked for 5.9+ stable, so 5.10.y behaves
        # like 5.11: the mm side is the same as 5.11.
        **_MM_5X,
    ),
    "5.11": Profile(
        name="5.11",
        description="seed series: memcg-based BPF accounting (__GFP_ACCOUNT, map->memcg)",
        bpf_memcg_accounting=True,
        stat_keys_v1=_V1_LOCAL_5_11,
        **_MM_5X,
    ),
    "6.18": Profile(
        name="6.18",
        description="current kernel: multi-slot stocks, objcg KMEM pages, kmalloc-cg caches",
        charge_batch=64, nr_memcg_stock=7, obj_stock_split_pages=1, kmem_page_objcg=1,
        kmem_uncharge_via_stock=1, drain_obj_stock_direct=1, failcnt_v1_only=1,
        clamp_underflow=1, gfp_atomic_forces=0, gfp_high_forces=1, max_event_on_force=1,
        kmem_limit_enforced=0, kmalloc_cg_caches=1, percpu_ptr_overhead=1,
        large_kmalloc_memcg_stat=1, stat_kernel=1, stat_vmalloc=1, high_set_before_reclaim=1,
        nospin_no_batch=1,
        # obj_cgroup_uncharge_pages() and drain_obj_stock() skip a root memcg
        # (reached through an objcg reparented to root): root keeps the pages
        kmem_uncharge_skips_root=1,
        # __account_obj_stock(): NR_SLAB_*_B deltas cached in the object stock
        obj_stock_slab_stats=1,
        has_gfp_atomic=False, nowait_nowarn=True, has_memory_peak=True,
        bpf_memcg_accounting=True,
        stat_keys_v2=_V2_STAT_6_18, stat_keys_v1=_V1_LOCAL_6_18, event_keys=_EVENTS_6_18,
    ),
}

#: profile names a user can pass to System(profile=...)
PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)
CURRENT_PROFILE = "6.18"


def get_profile(name: str) -> Profile:
    """Look a profile up by name (ValueError if unknown)."""
    if not isinstance(name, str):
        raise TypeError(f"profile must be a str, not {type(name).__name__}")
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILE_NAMES)}") from None


def list_profiles() -> list[str]:
    return list(PROFILE_NAMES)


assert tuple(f.name for f in fields(Profile))[2:2 + len(PROFILE_SWITCHES)] == PROFILE_SWITCHES
