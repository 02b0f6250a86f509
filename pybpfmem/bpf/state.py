"""The BPF state of one System: ids, bpffs, pending work, users, sysctls, kernel
objects.  One ``BpfState`` per System (no module-level state); the composed
System creates it (``BpfSystemMixin``) and registers its lifecycle hooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..profiles import BpfSwitches, BpfUapi, StructSizes
from . import uapi as U
from .fd import Bpffs, IdAllocator
from .kobjects import KObjectRegistry
from .map import BpfMap
from .regime import Gfp, RlimitState, map_charge_finish


@dataclass
class BpfState:
    """Everything BPF a System holds."""

    system: Any
    bprof: BpfSwitches
    uapi: BpfUapi
    sizes: StructSizes
    gfp: Gfp
    map_ids: IdAllocator = field(default_factory=IdAllocator)
    prog_ids: IdAllocator = field(default_factory=IdAllocator)
    bpffs: Bpffs = field(default_factory=Bpffs)
    rlimit: RlimitState = field(default_factory=RlimitState)
    kobjects: KObjectRegistry = field(default_factory=KObjectRegistry)
    pending: list[Callable[[], None]] = field(default_factory=list)
    settle: bool = True
    unprivileged_bpf_disabled: int = 2
    jit_current: int = 0
    live_maps: dict[int, BpfMap] = field(default_factory=dict)   # python id -> map, until freed
    live_progs: dict[int, Any] = field(default_factory=dict)
    # cgroup attachments: (cgroup id, attach type) -> attached programs
    cgroup_progs: dict[tuple[int, int], list[Any]] = field(default_factory=dict)
    #: CHECK_ATTR(cmd): the last field of each command's attr, by command number
    last_field: dict[int, str] = field(init=False)

    def __post_init__(self) -> None:
        self.last_field = {getattr(U, cmd): name for cmd, name in self.uapi.last_field}

    def queue_work(self, fn: Callable[[], None]) -> None:
        self.pending.append(fn)

    def run_deferred(self) -> int:
        """Run queued work items (and any they queue); returns how many ran."""
        n = 0
        while self.pending:
            fn = self.pending.pop(0)
            fn()
            n += 1
        return n

    def map_free_deferred(self, m: BpfMap) -> None:
        """Mirrors bpf_map_free_deferred(), kernel/bpf/syscall.c: release the saved
        memcg/objcg (before ops->map_free, as the final v5.11 series orders it),
        ops->map_free, then (rlimit) bpf_map_charge_finish()."""
        self.release_map_memcg(m)
        m.free()
        m.free_all()
        if self.bprof.rlimit:
            map_charge_finish(self.rlimit, m.memory)
        m.freed = True
        self.live_maps.pop(id(m), None)

    def save_map_memcg(self, m: BpfMap) -> None:
        """Mirrors bpf_map_save_memcg(): get_mem_cgroup_from_mm(current->mm) (css ref);
        with map_objcg get_obj_cgroup_from_current() (NULL for root)."""
        sysm = self.system
        if self.bprof.map_objcg:
            m.objcg = sysm.get_obj_cgroup_from_current()
        elif self.bprof.map_memcg:
            cg = m.creator.cgroup
            sysm.memcg_get(cg)
            m.memcg = cg
        m.memcg_saved = True

    def release_map_memcg(self, m: BpfMap) -> None:
        """Mirrors bpf_map_release_memcg()."""
        if not m.memcg_saved:
            return
        if m.memcg is not None:
            self.system.memcg_put(m.memcg)
            m.memcg = None
        if m.objcg is not None:
            self.system.obj_cgroup_put(m.objcg)
            m.objcg = None
        m.memcg_saved = False

    def prog_free_deferred(self, p: Any) -> None:
        p.free_all()
        self.live_progs.pop(id(p), None)

    def settle_now(self) -> None:
        """Run pending work if the System settles at the end of each syscall."""
        if self.settle and self.pending:
            self.run_deferred()


def memlock_of(st: BpfState, m: BpfMap) -> int:
    """fdinfo memlock: the charged pages x PAGE_SIZE (switch rlimit,
    bpf_map_show_fdinfo()); ops->map_mem_usage() (switch map_mem_usage); else
    bpf_map_memory_footprint()."""
    if st.bprof.rlimit:
        return m.memory.pages * st.system.page_size
    if st.bprof.map_mem_usage:
        return m.mem_usage()
    return m.memory_footprint()
