"""The System and Task users import: the memory layer's, with the BPF layer on top.

``System`` is a memory System (pybpfmem.mm) that also has the BPF layer's state,
syscalls and helpers (pybpfmem.bpf.system_api.BpfSystemMixin); ``Task`` likewise
(pybpfmem.bpf.task_api.BpfTaskMixin).  The memory layer knows nothing of the
BPF layer: the BPF layer registers its lifecycle hooks with the memory System
and uses only its public services (pybpfmem.bpf.services).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import mm
from .bpf.system_api import BpfSystemMixin
from .bpf.task_api import BpfTaskMixin
from .mm import OP_DTYPE, KmemCache, MemCgroup
from .profiles import CURRENT_PROFILE, BtfSource, Profile, get_profile, profile_with_btf

__all__ = ["System", "Task", "MemCgroup", "KmemCache", "OP_DTYPE"]


class Task(mm.Task, BpfTaskMixin):
    """A process: pid, uid, memory cgroup, `current` context (pybpfmem.mm.Task) and its
    bpf() syscall surface, fds, rlimits and capabilities (BpfTaskMixin)."""

    def __init__(self, system: System, pid: int, uid: int, cgroup: MemCgroup) -> None:
        mm.Task.__init__(self, system, pid, uid, cgroup)
        BpfTaskMixin.__init__(self)


class System(mm.System, BpfSystemMixin):
    """One simulated machine (pybpfmem.mm.System) with its BPF objects, syscalls and
    helpers (BpfSystemMixin).  ``settle``: whether each bpf() syscall runs the pending
    deferred frees before returning (``bpf_settle``).  ``btf``: a vmlinux BTF (raw, as
    ``/sys/kernel/btf/vmlinux``, or inside a vmlinux, vmlinuz or .deb) whose struct sizes
    replace the profile's (``btf_source`` says what it gave; a BTF of another kernel line
    than the profile warns, ``pybpfmem.profiles.BtfProfileWarning``)."""

    task_class = Task

    def __init__(self, nr_cpus: int = 2, page_size: int = 4096,
                 profile: str | Profile = CURRENT_PROFILE, cgroup: str = "v2",
                 ram: int | str = "8G", oom_kill: bool = True, settle: bool = True,
                 btf: str | os.PathLike[str] | None = None,
                 memory_recursiveprot: bool = False) -> None:
        self.btf_source: BtfSource | None = None
        if btf is not None:
            if not isinstance(btf, (str, os.PathLike)):
                raise TypeError(f"btf must be a path, not {type(btf).__name__}")
            if not isinstance(profile, (str, Profile)):
                raise TypeError(f"profile must be a str or Profile, not {type(profile).__name__}")
            base = profile if isinstance(profile, Profile) else get_profile(profile)
            profile, self.btf_source = profile_with_btf(base, btf, page_size if isinstance(
                page_size, int) and not isinstance(page_size, bool) else 4096)
        mm.System.__init__(self, nr_cpus, page_size, profile, cgroup, ram, oom_kill,
                           memory_recursiveprot)
        BpfSystemMixin.__init__(self, settle)

    if TYPE_CHECKING:   # spawn() makes a task_class, this Task: say so to type checkers
        def spawn(self, cgroup: MemCgroup | None = None, uid: int = 0) -> Task: ...
