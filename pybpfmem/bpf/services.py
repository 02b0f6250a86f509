"""What the BPF layer uses of the memory layer, as typed protocols.

The BPF layer allocates, charges and switches contexts only through these
public services of ``pybpfmem.mm`` (a test checks it reaches nothing else of a
System).  The composed ``pybpfmem.System`` / ``pybpfmem.Task`` provide them.
"""

from __future__ import annotations

from typing import Any, ContextManager, Protocol

import numpy as np

from ..constants import GfpFlags
from ..profiles import Profile


class MemCgroupRef(Protocol):
    """A memory cgroup (pybpfmem.mm.MemCgroup) as the BPF layer sees it."""

    id: int
    parent: MemCgroupRef | None

    @property
    def path(self) -> str: ...

    @property
    def children(self) -> list[Any]: ...

    def info(self) -> dict[str, Any]: ...


class MemTask(Protocol):
    """A task (pybpfmem.mm.Task): its identity, cgroup and `current` context."""

    pid: int
    uid: int
    cgroup: MemCgroupRef
    alive: bool

    def running(self, cpu: int | None = None) -> ContextManager[Any]: ...

    def syscall(self) -> ContextManager[Any]: ...


class Hooks(Protocol):
    """System.hooks (pybpfmem.mm.Hooks): lifecycle callbacks the BPF layer registers."""

    def on_task_exit(self, fn: Any) -> None: ...

    def on_cgroup_offline(self, fn: Any) -> None: ...


class MemSystem(Protocol):
    """The memory System's services the BPF layer uses."""

    nr_cpus: int
    page_size: int
    profile: Profile
    gfp: GfpFlags
    root: MemCgroupRef
    hooks: Hooks
    #: the System lock (re-entrant): the BPF layer's state is one per System and every
    #: public BPF call runs under it (state.serialised)
    lock: ContextManager[Any]

    # the boundary: an object of this System, else TypeError (another kind) or
    # ValueError (another System's)
    def own_cgroup(self, cg: Any, what: str) -> Any: ...

    def own_task(self, task: Any, what: str) -> Any: ...

    # contexts
    @property
    def current_cpu(self) -> int | None: ...

    @property
    def current_task(self) -> Any: ...

    def active_memcg(self, cg: MemCgroupRef | None) -> ContextManager[Any]: ...

    # allocators, charged in the current context (OSError on failure)
    def kmalloc(self, size: int, gfp: int) -> int: ...

    def kfree(self, addr: int) -> None: ...

    def kmalloc_until_fail(self, size: int, n: int, gfp: int) -> np.ndarray: ...

    def allocs_until_fail(self, kinds: str, sizes: np.ndarray, gfp: int) -> np.ndarray: ...

    def kfree_bulk(self, addrs: np.ndarray) -> np.ndarray: ...

    def kvmalloc(self, size: int, gfp: int) -> int: ...

    def kvfree(self, addr: int) -> None: ...

    def vmalloc(self, size: int, gfp: int) -> int: ...

    def vfree(self, addr: int) -> None: ...

    def alloc_pages(self, order: int, gfp: int) -> int: ...

    def free_pages(self, pfn: int, order: int) -> None: ...

    def alloc_percpu(self, size: int, align: int, gfp: int) -> int: ...

    def alloc_percpu_array(self, size: int, align: int, gfp: int, n: int) -> int: ...

    def free_percpu(self, addr: int) -> None: ...

    # memcg and objcg references
    def memcg_get(self, cg: Any) -> None: ...

    def memcg_put(self, cg: Any) -> None: ...

    def get_obj_cgroup_from_current(self) -> int | None: ...

    def obj_cgroup_put(self, objcg: int) -> None: ...

    def objcg_memcg(self, objcg: int) -> Any: ...

    def memcg_by_id(self, memcg_id: int) -> Any: ...

    # accounting queries: what the core charged, and to whom
    def pfn_to_virt(self, pfn: int) -> int: ...

    def obj_cgroup_of(self, addr: int) -> tuple[int | None, Any]: ...

    def memcg_ids_of(self, addrs: Any) -> np.ndarray: ...

    def kmalloc_charged_size(self, addr: int) -> int: ...

    def pcpu_obj_full_size(self, size: int) -> int: ...

    # what is charged but held by no object: per-cpu stocks, objcg remainders
    def objcg_info(self, objcg: int) -> dict[str, int]: ...

    # what else is charged: memcgs' own structures, tasks' kernel stacks
    def cgroup_structures(self) -> list[tuple[int, str, int, int]]: ...

    def kernel_stacks(self) -> list[tuple[int, int, int]]: ...

    def stock_info(self, cpu: int) -> dict[str, Any]: ...
