"""Task: a simulated process (pid, uid, memory cgroup) and its `current` context."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .._ffi import NoCopy, as_int, lib
from .cgroup import MemCgroup
from .contexts import Running

if TYPE_CHECKING:  # pragma: no cover
    from .system import System


class Task(NoCopy):
    """A process.  It pins its memcg with a css reference (css_set -> css),
    dropped on migrate and exit, like cgroup_migrate / cgroup_exit."""

    def __init__(self, system: System, pid: int, uid: int, cgroup: MemCgroup) -> None:
        self.system = system
        self.pid = pid
        self.uid = uid
        self.cgroup = cgroup
        self.alive = True
        self.killed = False
        self.exited = False
        self._cpu: int | None = None      # the cpu this task is running on
        self._depth = 0                   # nested running() on that cpu
        self._holds_ref = False
        self.system._check(lib.bm_memcg_get(system._sys, cgroup.id), f"bm_memcg_get({cgroup.id})")
        self._holds_ref = True

    def __repr__(self) -> str:
        state = "alive" if self.alive else ("killed" if self.killed else "exited")
        return f"<Task pid={self.pid} uid={self.uid} cgroup={self.cgroup.path} {state}>"

    @property
    def cpu(self) -> int | None:
        """The cpu the task is running on (inside ``running()``), else None."""
        return self._cpu

    def migrate(self, cgroup: MemCgroup) -> None:
        """Move the task (cgroup_attach_task).  Existing charges stay where they are."""
        if not isinstance(cgroup, MemCgroup):
            raise TypeError(f"cgroup must be a MemCgroup, not {type(cgroup).__name__}")
        if cgroup.system is not self.system:
            raise ValueError("cgroup belongs to another System")
        sysobj = self.system
        with sysobj.lock:
            if not self.alive:
                raise OSError(errno.ESRCH, f"cgroup_procs_write: task {self.pid} has exited")
            if not cgroup.online:
                # cgroup_kn_lock_live() fails for a removed cgroup
                raise OSError(errno.ENODEV, f"cgroup_procs_write: cgroup {cgroup.path!r} was removed")
            if cgroup is self.cgroup:
                return
            cpu = self._cpu
            if cpu is not None and not sysobj._drives(cpu):
                raise RuntimeError(f"task {self.pid} is running on cpu {cpu}, driven by another "
                                   f"thread: migrate it from that thread or once it left the cpu")
            sp = sysobj._sys
            sysobj._check(lib.bm_memcg_get(sp, cgroup.id), f"bm_memcg_get({cgroup.id})")
            old = self.cgroup
            self.cgroup = cgroup
            if cpu is not None:  # `current`'s memcg changes at once
                sysobj._reap_oom_victim(cpu)  # bm_set_task clears the victim flag
                sysobj._sync_cpu(cpu)
            sysobj._check(lib.bm_memcg_put(sp, old.id), f"bm_memcg_put({old.id})")

    def exit(self) -> None:
        """do_exit -> cgroup_exit: the task leaves its cgroup and drops its reference."""
        with self.system.lock:
            if self._cpu is not None:
                raise RuntimeError(f"task {self.pid} is running on cpu {self._cpu}; leave running() first")
            if self.exited:
                raise OSError(errno.ESRCH, f"task {self.pid} has already exited")
            self.alive = False
            self._do_exit()

    def _do_exit(self) -> None:
        """The end of do_exit(): the exit hooks of the layers above (exit_files() closes
        every fd, free_task() frees its local storage), then cgroup_exit() drops the css
        reference; the System forgets the task (release_task())."""
        sysobj = self.system
        with sysobj.lock:
            self.exited = True
            try:
                sysobj.hooks.run_task_exit(self)
                self._drop_ref()
            finally:
                sysobj._tasks.pop(self.pid, None)

    def _drop_ref(self) -> None:
        if self._holds_ref:
            self._holds_ref = False
            if not self.system._closed:
                self.system._check(lib.bm_memcg_put(self.system._sys, self.cgroup.id), f"bm_memcg_put({self.cgroup.id})")

    def _oom_killed(self) -> None:
        """Chosen as the memcg OOM victim: SIGKILL; it exits once off the cpu."""
        self.killed = True
        self.alive = False
        if self._cpu is None:
            self._do_exit()

    def running(self, cpu: int | None = None) -> Running:
        """``with task.running(cpu):`` makes this task `current` on ``cpu``
        (default pid % nr_cpus)."""
        if cpu is None:
            cpu = self.pid % self.system.nr_cpus
        else:
            cpu = as_int(cpu, "cpu", 0, self.system.nr_cpus - 1)
        return Running(self, cpu)
