"""The contexts a simulated cpu runs in, entered with ``with``.

Every simulated cpu has a `current`: nothing (a kworker), a task
(``with task.running(cpu):``), an interrupt (``with sys.in_interrupt(cpu):``)
and an active memcg (``with sys.active_memcg(cg):``, set_active_memcg()).
Each thread keeps the stack of contexts it entered (``System._push`` / ``_pop``;
the per-cpu occupant and depth lists, touched only by the thread driving the
cpu, are next to it); entering a context on a cpu claims the cpu for the
thread (``System._claim_cpu``).  These classes are the ``with`` objects the
System's methods return.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._ffi import ffi, lib

if TYPE_CHECKING:  # pragma: no cover
    from .system import System
    from .task import Task


class Running:
    """``with task.running(cpu):`` the task is `current` on the cpu."""

    __slots__ = ("task", "cpu")

    def __init__(self, task: Task, cpu: int) -> None:
        self.task = task
        self.cpu = cpu

    def __enter__(self) -> Task:
        self.task.system._enter_task(self.task, self.cpu)
        return self.task

    def __exit__(self, *exc: Any) -> None:
        self.task.system._exit_task(self.task, self.cpu)


class Syscall:
    """``with task.syscall():`` one system call of the task, `current` on this thread's
    cpu: the memory.high debt its charges leave is paid once, as it returns to user
    (mem_cgroup_handle_over_high()), not after each charge."""

    __slots__ = ("task", "cpu")

    def __init__(self, task: Task) -> None:
        self.task = task
        self.cpu = -1

    def __enter__(self) -> Task:
        t = self.task
        s = t.system
        s._require_open()
        if s.current_task is not t:
            raise RuntimeError(f"task {t.pid} is not current on this thread: a system call "
                               f"runs inside task.running(cpu)")
        cpu = s._tls.cpu
        s._check(lib.bm_syscall_enter(s._sys, cpu), f"bm_syscall_enter(cpu={cpu})")
        self.cpu = cpu
        return t

    def __exit__(self, *exc: Any) -> None:
        s = self.task.system
        lib.bm_syscall_exit(ffi.NULL if s._closed else s._sys, self.cpu)


class Interrupt:
    """``with sys.in_interrupt(cpu):`` hard/soft irq on the cpu (in_interrupt() true)."""

    __slots__ = ("system", "cpu")

    def __init__(self, system: System, cpu: int) -> None:
        self.system = system
        self.cpu = cpu

    def __enter__(self) -> System:
        s, cpu = self.system, self.cpu
        s._require_open()
        s._claim_cpu(cpu)
        try:
            if s._irq_depth[cpu] == 0:
                s._check(lib.bm_set_interrupt(s._sys, cpu, 1), f"bm_set_interrupt(cpu={cpu}, 1)")
        except BaseException:
            s._release_cpu(cpu)
            raise
        s._irq_depth[cpu] += 1
        s._push("irq", cpu, None)
        return s

    def __exit__(self, *exc: Any) -> None:
        s, cpu = self.system, self.cpu
        try:
            s._pop("irq", cpu)
        finally:
            s._irq_depth[cpu] -= 1
            if s._irq_depth[cpu] == 0 and not s._closed:
                lib.bm_set_interrupt(s._sys, cpu, 0)
            s._release_cpu(cpu)


class ActiveMemcg:
    """``with sys.active_memcg(cg):`` set_active_memcg() in the innermost context."""

    __slots__ = ("system", "memcg", "cpu", "old", "task_slot")

    def __init__(self, system: System, memcg: int) -> None:
        self.system = system
        self.memcg = memcg
        self.cpu = -1
        self.old = -1
        self.task_slot = False

    def __enter__(self) -> System:
        s = self.system
        s._require_open()
        cpu = s._tls.cpu
        if cpu < 0:
            s._no_context("active_memcg")
        old = s._outs32[cpu]
        s._check(lib.bm_set_active_memcg(s._sys, cpu, self.memcg, old),
                 f"bm_set_active_memcg(cpu={cpu}, memcg={self.memcg})")
        s._cpu_frames[cpu] += 1  # cpu is this thread's current one: it drives it already
        self.cpu, self.old = cpu, int(old[0])
        # set_active_memcg() writes current->active_memcg in task context,
        # the per-cpu int_active_memcg in interrupt context
        self.task_slot = s._irq_depth[cpu] == 0 and s._cpu_task[cpu] is not None
        if self.task_slot:
            s._task_active[cpu] = self.memcg
        s._push("active", cpu, self)
        return s

    def __exit__(self, *exc: Any) -> None:
        s, cpu = self.system, self.cpu
        try:
            s._pop("active", cpu)
        finally:
            if not s._closed:
                lib.bm_set_active_memcg(s._sys, cpu, self.old, s._outs32[cpu])
                if self.task_slot:
                    s._task_active[cpu] = self.old
            s._release_cpu(cpu)
