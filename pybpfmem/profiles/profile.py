"""The shape of a kernel profile: its switch groups, uapi facts and the Profile itself.
The values of each kernel are in kernels.py, what each switch means in switches.py."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..constants import GfpFlags, gfp_flags
from .sizes import MmStructs, StructSizes
from .switches import BY_NAME


@dataclass(frozen=True, slots=True)
class MmSwitches:
    """struct bm_profile (csrc/bpfmem.h), in C declaration order; what each does: switches.py."""

    charge_batch: int
    nr_memcg_stock: int
    obj_stock_split_pages: int
    kmem_page_objcg: int
    drain_obj_stock_direct: int
    failcnt_v1_only: int
    clamp_underflow: int
    gfp_atomic_forces: int
    dying_task_forces: int
    nofail_forces_before_oom: int
    gfp_high_forces: int
    max_event_on_force: int
    kmem_limit_enforced: int
    kmalloc_cg_caches: int
    percpu_ptr_overhead: int
    large_kmalloc_memcg_stat: int
    stat_kernel: int
    stat_vmalloc: int
    nospin_no_batch: int
    kmem_uncharge_skips_root: int
    obj_stock_slab_stats: int
    reclaim_target_unprotected: int
    reclaim_partial_walk: int
    memcg_reclaim_counts_slab: int
    shrinker_deferred_per_memcg: int
    sb_scan_exact_total: int
    kpagecgroup_folio: int
    obj_stock_task_irq_split: int
    objcg_release_via_stock: int
    objcg_put_after_stock_drain: int
    sync_high_over_batch: int
    memcg_orig_objcg: int
    kvmalloc_any_gfp: int
    kvmalloc_kmalloc_no_reclaim: int

    def to_cdata(self, ffi: Any) -> Any:
        """A new ``struct bm_profile *`` filled from these switches."""
        p = ffi.new("struct bm_profile *")
        for k in PROFILE_SWITCHES:
            setattr(p, k, getattr(self, k))
        return p


#: struct bm_profile fields, in C declaration order
PROFILE_SWITCHES: tuple[str, ...] = tuple(f.name for f in fields(MmSwitches))


@dataclass(frozen=True, slots=True)
class BpfSwitches:
    """What the BPF side of a release does; what each does: switches.py."""

    rlimit: bool
    account: bool
    map_memcg: bool
    map_objcg: bool
    map_mem_usage: bool
    htab_mem_alloc: bool
    runtime_gfp_nowait: bool
    default_memlock: int               # bytes
    caps_central: bool
    unpriv_entry_create_only: bool
    unpriv_per_command: bool
    freeze_needs_write: bool
    struct_area_alloc: bool
    htab_map_locked: bool
    fd_htab_extra_elems: bool
    map_extra: bool
    memcg_nobpf: bool
    prog_alloc_enomem: bool
    lookup_and_delete_hash: bool
    lookup_and_delete_stack_trace: bool
    percpu_value_limit: bool
    htab_max_2g: bool
    memalloc_prefill_split: bool
    memalloc_prefill_kernel_gfp: bool
    memalloc_reuse: bool
    htab_large_key: bool
    array_value_int_max: bool
    perf_event_entry_kernel_gfp: bool
    cgroup_storage_large_value: bool
    local_storage_kvcalloc: bool
    selem_compact: bool
    lpm_trie_mem_alloc: bool
    lpm_exist_flags: bool
    lpm_full_inplace: bool
    batch_percpu_array: bool
    batch_lpm: bool
    batch_map_in_map: bool
    prog_array_owner_attach_type: bool
    struct_ops_link: bool
    struct_ops_vtype_btf_obj_fd: bool
    fdinfo_ino: bool
    prog_fdinfo_recursion_misses: bool
    prog_fdinfo_verified_insns: bool
    lru_target_free_clamp: bool


@dataclass(frozen=True, slots=True)
class BpfUapi:
    """The bpf() uapi of a release (include/uapi/linux/bpf.h, kernel/bpf/syscall.c): data,
    not switches, as every release adds to them."""

    attr_size: int                          # sizeof(union bpf_attr)
    #: CHECK_ATTR(cmd): the last field of each command's attr (*_LAST_FIELD), by command name
    last_field: tuple[tuple[str, str], ...]
    max_map_type: int                       # the last enum bpf_map_type value
    max_cmd: int                            # the last enum bpf_cmd value

    def has_map_type(self, map_type: int) -> bool:
        """Whether the release has map type ``map_type``: enum bpf_map_type only grows, so
        its values 1..max_map_type (find_and_alloc_map() refuses the rest with -EINVAL)."""
        return 0 < map_type <= self.max_map_type


# the Python-level facts of the memory layer that are switches (catalogued in switches.py)
MM_FACTS: tuple[str, ...] = ("has_gfp_atomic", "nowait_nowarn", "has_memory_peak",
                             "memory_peak_write", "memcg_stat_local_copies",
                             "memcg_vmstats_accounted")

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
    """One kernel release: its switches, uapi facts and struct sizes."""

    name: str
    description: str
    mm: MmSwitches
    bpf: BpfSwitches
    uapi: BpfUapi
    sizes: StructSizes
    # --- Python-level facts of the memory layer ---
    has_gfp_atomic: bool              # __GFP_ATOMIC exists
    nowait_nowarn: bool               # GFP_NOWAIT includes __GFP_NOWARN
    has_memory_peak: bool             # cgroup v2 memory.peak
    memory_peak_write: bool           # memory.peak writable (per-fd reset)
    stat_keys_v2: tuple[str, ...]     # memory.stat keys, in the kernel's print order
    stat_keys_v1: tuple[str, ...]     # v1 memory.stat local keys
    event_keys: tuple[str, ...]       # memory.events keys
    memcg_stat_local_copies: bool     # mem_cgroup_alloc(): vmstats_local, lruvec_stat_local
    memcg_vmstats_accounted: bool     # mem_cgroup_alloc(): vmstats, lruvec_stats kzalloc'ed ACCOUNT
    mm_structs: MmStructs             # sizes of the memcg's own structs and a dentry

    def __getattr__(self, name: str) -> Any:
        """A switch by name (``profile.charge_batch``, ``profile.htab_mem_alloc``)."""
        for group in ("mm", "bpf"):
            values = object.__getattribute__(self, group)
            if name in _GROUP_FIELDS[group]:
                return getattr(values, name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute or switch {name!r}")

    def switch(self, name: str) -> Any:
        """The value of the catalogued switch ``name`` (KeyError if not catalogued)."""
        BY_NAME[name]
        return getattr(self, name)

    @property
    def gfp(self) -> GfpFlags:
        return gfp_flags(self.has_gfp_atomic, self.nowait_nowarn)

    def switches(self) -> dict[str, int]:
        """The struct bm_profile switches as a dict."""
        return {k: getattr(self.mm, k) for k in PROFILE_SWITCHES}

    def to_cdata(self, ffi: Any) -> Any:
        """A new ``struct bm_profile *`` filled from this profile."""
        return self.mm.to_cdata(ffi)

    def memcg_allocs(self) -> tuple[tuple[str, str, int], ...]:
        """(struct, "kmalloc" | "percpu", size) of each allocation mem_cgroup_alloc() makes
        with GFP_KERNEL_ACCOUNT, in its order, for one node: what a new memcg costs its
        parent (mm/memcontrol.c: mem_cgroup_alloc(), alloc_mem_cgroup_per_node_info(),
        memcg1_alloc_events()).  struct mem_cgroup, mem_cgroup_per_node and the objcg are
        allocated GFP_KERNEL in every release: not charged."""
        m = self.mm_structs
        out: list[tuple[str, str, int | None]] = []
        if self.memcg_vmstats_accounted:
            out.append(("memcg_vmstats", "kmalloc", m.memcg_vmstats))
        if self.memcg_stat_local_copies:           # vmstats_local, then vmstats_percpu
            out.append(("memcg_vmstats_percpu", "percpu", m.memcg_vmstats_percpu))
        out.append(("memcg_vmstats_percpu", "percpu", m.memcg_vmstats_percpu))
        if m.memcg1_events_percpu:                 # CONFIG_MEMCG_V1 kernels that have it
            out.append(("memcg1_events_percpu", "percpu", m.memcg1_events_percpu))
        if self.memcg_vmstats_accounted:           # per node from here
            out.append(("lruvec_stats", "kmalloc", m.lruvec_stats))
        if self.memcg_stat_local_copies:           # lruvec_stat_local, lruvec_stat_cpu
            out += [("lruvec_stat", "percpu", m.lruvec_stat)] * 2
        else:
            out.append(("lruvec_stats_percpu", "percpu", m.lruvec_stats_percpu))
        missing = sorted({name for name, _, size in out if size is None})
        if missing:
            raise ValueError(f"profile {self.name}: no size for {', '.join(missing)} in {m.source}")
        return tuple((name, kind, int(size)) for name, kind, size in out)   # type: ignore[arg-type]

    def files(self, cgroup_version: str) -> tuple[str, ...]:
        if cgroup_version == "v1":
            return V1_FILES
        if self.has_memory_peak:
            return V2_FILES
        return tuple(f for f in V2_FILES if f != "memory.peak")


_GROUP_FIELDS = {"mm": frozenset(PROFILE_SWITCHES),
                 "bpf": frozenset(f.name for f in fields(BpfSwitches))}
