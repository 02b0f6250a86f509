"""Task: a simulated process or thread (pid, uid, memory cgroup, kernel stack) and
its `current` context."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from .._ffi import NoCopy, as_int, ffi, lib
from .cgroup import MemCgroup
from .contexts import Running, Syscall

if TYPE_CHECKING:  # pragma: no cover
    from .system import System


class Task(NoCopy):
    """A process, or a thread of one (``leader`` is then the process).  It pins its memcg
    with a css reference (css_set -> css), dropped on migrate and exit, like cgroup_migrate
    / cgroup_exit, and holds an accounted kernel stack from fork to exit
    (kernel/fork.c: alloc_thread_stack_node(), memcg_charge_kernel_stack(),
    account_kernel_stack()), charged to the memcg of the task that forked it: for spawn()
    one in the new task's cgroup, for clone_thread() the process itself."""

    def __init__(self, system: System, pid: int, uid: int, cgroup: MemCgroup,
                 leader: Task | None = None) -> None:
        self.system = system
        self.pid = pid
        self.uid = uid
        self.cgroup = cgroup
        self.leader = leader               # the thread-group leader; None for a process
        self.threads: list[Task] = []      # a process's other threads
        self.alive = True
        self.killed = False
        self.exited = False
        self.stack = 0                     # the kernel stack's (vmalloc) address
        self._cpu: int | None = None      # the cpu this task is running on
        self._depth = 0                   # nested running() on that cpu
        self._holds_ref = False
        sp = system._sys
        system._check(lib.bm_memcg_get(sp, cgroup.id), f"bm_memcg_get({cgroup.id})")
        self._holds_ref = True
        # dup_task_struct(): the stack, charged through the forking context's cpu
        cpu = system.current_cpu or 0
        out = ffi.new("uint64_t *")       # not the cpu's: this thread may not drive cpu 0
        rc = lib.bm_task_stack_alloc(sp, cpu, cgroup.id, out)
        if rc < 0:
            self._drop_ref()
            system._charge_failed(rc, cpu, f"fork: bm_task_stack_alloc(memcg={cgroup.id}, cpu={cpu})")
        self.stack = int(out[0])

    def __repr__(self) -> str:
        state = "alive" if self.alive else ("killed" if self.killed else "exited")
        kind = f" thread of {self.leader.pid}" if self.leader is not None else ""
        return f"<Task pid={self.pid}{kind} uid={self.uid} cgroup={self.cgroup.path} {state}>"

    @property
    def tgid(self) -> int:
        """The thread group's id: the process's pid."""
        return self.pid if self.leader is None else self.leader.pid

    @property
    def cpu(self) -> int | None:
        """The cpu the task is running on (inside ``running()``), else None."""
        return self._cpu

    def group(self) -> list[Task]:
        """The thread group: the process and its live threads."""
        lead = self if self.leader is None else self.leader
        return [lead] + [t for t in lead.threads if t.alive]

    def clone_thread(self) -> Task:
        """clone(CLONE_THREAD | CLONE_VM | ...): a new thread of this process in its cgroup,
        with a kernel stack of its own charged to the process's memcg now.  A thread is a
        memory-layer task: its bpf() calls are its process's (they share the fd table)."""
        sysobj = self.system
        with sysobj.lock:
            sysobj._require_open()
            if not self.alive:
                raise OSError(errno.ESRCH, f"clone: task {self.pid} has exited")
            lead = self if self.leader is None else self.leader
            thread = Task(sysobj, sysobj._next_pid, self.uid, self.cgroup, leader=lead)
            sysobj._next_pid += 1
            sysobj._tasks[thread.pid] = thread
            lead.threads.append(thread)
        return thread

    def migrate(self, cgroup: MemCgroup) -> None:
        """Move the task's thread group (cgroup_attach_task() of cgroup.procs: a whole process).
        Existing charges stay where they are."""
        sysobj = self.system
        cgroup = sysobj.own_cgroup(cgroup, "migrate")
        with sysobj.lock:
            if not self.alive:
                raise OSError(errno.ESRCH, f"cgroup_procs_write: task {self.pid} has exited")
            if not cgroup.online:
                # cgroup_kn_lock_live() fails for a removed cgroup
                raise OSError(errno.ENODEV, f"cgroup_procs_write: cgroup {cgroup.path!r} was removed")
            group = self.group()
            for t in group:
                if t._cpu is not None and t.cgroup is not cgroup and not sysobj._drives(t._cpu):
                    raise RuntimeError(f"task {t.pid} is running on cpu {t._cpu}, driven by another "
                                       f"thread: migrate it from that thread or once it left the cpu")
            for t in group:
                t._migrate_one(cgroup)

    def _migrate_one(self, cgroup: MemCgroup) -> None:
        if cgroup is self.cgroup:
            return
        sysobj = self.system
        sp = sysobj._sys
        sysobj._check(lib.bm_memcg_get(sp, cgroup.id), f"bm_memcg_get({cgroup.id})")
        old = self.cgroup
        self.cgroup = cgroup
        cpu = self._cpu
        if cpu is not None:  # `current`'s memcg changes at once
            sysobj._reap_oom_victim(cpu)  # bm_set_task clears the victim flag
            sysobj._sync_cpu(cpu)
        sysobj._check(lib.bm_memcg_put(sp, old.id), f"bm_memcg_put({old.id})")

    def exit(self) -> None:
        """do_exit(): a thread leaves alone; a process (exit_group) takes its threads along.
        The task leaves its cgroup and drops its reference; its stack is freed."""
        with self.system.lock:
            for t in (self.threads if self.leader is None else []):
                if t.alive and t._cpu is not None:
                    raise RuntimeError(f"thread {t.pid} is running on cpu {t._cpu}; leave running() first")
            if self._cpu is not None:
                raise RuntimeError(f"task {self.pid} is running on cpu {self._cpu}; leave running() first")
            if self.exited:
                raise OSError(errno.ESRCH, f"task {self.pid} has already exited")
            for t in (self.threads if self.leader is None else []):
                if t.alive:
                    t.alive = False
                    t._do_exit()
            self.alive = False
            self._do_exit()

    def _do_exit(self) -> None:
        """The end of do_exit(): the exit hooks of the layers above (exit_files() closes
        every fd, free_task() frees its local storage: a process's, not a thread's, whose
        files are its process's), the stack (exit_task_stack_account()), then
        cgroup_exit() drops the css reference; the System forgets the task
        (release_task())."""
        sysobj = self.system
        with sysobj.lock:
            self.exited = True
            try:
                if self.leader is None:
                    sysobj.hooks.run_task_exit(self)
                self._free_stack()
                self._drop_ref()
            finally:
                sysobj._tasks.pop(self.pid, None)

    def _free_stack(self) -> None:
        if self.stack and not self.system._closed:
            stack, self.stack = self.stack, 0
            cpu = self.system.current_cpu or 0
            self.system._check(lib.bm_task_stack_free(self.system._sys, cpu, stack),
                               f"bm_task_stack_free({stack:#x})")

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

    def syscall(self) -> Syscall:
        """``with task.syscall():`` one system call of this task, which must be `current`
        (inside ``task.running()``) on this thread: its charges pay their memory.high debt
        once, at the end (the return to user), as one bpf() command does."""
        return Syscall(self)
