"""The memory System: one simulated machine (cpus, page size, kernel profile,
cgroup tree, tasks, page frames) on top of one C ``bm_system``.

Contexts (contexts.py).  Every simulated cpu has a `current`: nothing (a
kworker), a task, an interrupt and an active memcg.  Each Python thread has
its own stack of the contexts it entered (``_ThreadContexts``); its innermost
one decides the cpu its allocation calls run on (``current_cpu``).  A cpu is
driven by one thread at a time, as a cpu runs one context at a time: the
first context a thread enters on a cpu claims it, the last one it leaves
frees it, and another thread entering it meanwhile gets RuntimeError
(interrupts nest on the cpu's own thread).  Allocations with no context raise
OSError(EINVAL); frees with no context run on cpu 0 as a kworker, from any
thread (a free uncharges whoever the object records, so the context matters
only for which per-cpu stock is used; the core serialises the stock).

Threads (docs/api.md, "Threads").  Every public call is safe from any thread.
Calls through a context (allocations, frees) use only the thread's own state
and per-cpu out-parameters, so threads on different cpus run in parallel in
the core.  The cgroup and task lifecycle, the registries and the layers above
serialise on the System lock (``lock``, re-entrant).  ``close()`` marks the
System closed (every later call raises ValueError) and drops its reference to
the C system, which is freed when the last call in flight returns.

The services the BPF layer uses are public and listed in
``pybpfmem/bpf/services.py``: the allocators (and ``kmalloc_until_fail`` for a
bulk refill), the contexts (``task.running()``, ``active_memcg()``,
``current_cpu``, ``current_task``), the objcg calls and the accounting queries
(``obj_cgroup_of``, ``kmalloc_charged_size``, ``pcpu_obj_full_size``); the
layers above hook the task and cgroup lifecycle through ``hooks``.
"""

from __future__ import annotations

import errno
import re
import threading
from collections import deque
from typing import Any, Iterable, TypeVar

import numpy as np

from .._ffi import NoCopy, as_int, cdata_to_py, check, ffi, lib
from ..constants import (GFP_KERNEL, PAGE_OFFSET, SLAB_ACCOUNT, SLAB_RECLAIM_ACCOUNT, U32_MAX,
                         U64_MAX, GfpFlags, page_counter_max)
from ..profiles import CURRENT_PROFILE, Profile, get_profile
from .cgroup import MemCgroup
from .contexts import ActiveMemcg, Interrupt
from .hooks import Hooks
from .task import Task

_Owned = TypeVar("_Owned", MemCgroup, Task)

__all__ = ["System", "KmemCache", "OP_DTYPE", "parse_size"]

#: numpy mirror of struct bm_op (csrc/bpfmem.h)
OP_DTYPE = np.dtype([
    ("op", "u1"), ("pad0", "u1"), ("cpu", "<u2"), ("gfp", "<u4"),
    ("handle", "<i4"), ("pad1", "<i4"), ("arg", "<u8"),
])

_U64 = U64_MAX
_U32 = U32_MAX
_PAGE_KINDS = {lib.BM_PAGE_FREE: "free", lib.BM_PAGE_KMEM: "kmem", lib.BM_PAGE_SLAB: "slab",
               lib.BM_PAGE_USER: "user", lib.BM_PAGE_TAIL: "tail"}
#: sizeof(struct obj_cgroup *): the objcgs-vector slot a slab object is charged for (obj_full_size())
OBJCG_POINTER_SIZE = 8
#: PCPU_MIN_ALLOC_SIZE (mm/percpu-internal.h): the percpu allocator's unit
PCPU_MIN_ALLOC_SIZE = 4
_SIZE_RE = re.compile(r"\s*(\d+)\s*([kKmMgGtT]?)[iI]?[bB]?\s*")


def parse_size(value: int | str, what: str = "ram") -> int:
    """Bytes from an int or a string with an optional K/M/G/T suffix (powers of 1024)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{what} must be an int or a str like '8G', not {type(value).__name__}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{what} must be >= 0, got {value}")
        return value
    m = _SIZE_RE.fullmatch(value)
    if not m:
        raise ValueError(f"cannot parse {what}={value!r} (expected e.g. '512M', '8G')")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[m.group(2).lower()]


class _ThreadContexts(threading.local):
    """One thread's contexts in one System: the stack it entered and its current cpu."""

    def __init__(self) -> None:
        self.cpu = -1                                      # -1 = no context
        self.frames: list[tuple[str, int, Any]] = []


class System(NoCopy):
    """One simulated machine.  See the module docstring for contexts and threads."""

    MIN_RAM_PAGES = 16

    @staticmethod
    def max_ram_bytes(page_size: int) -> int:
        """The most simulated RAM with ``page_size``-byte pages: the core's limits
        (bm_config_check): BM_MAX_RAM_PAGES frames (their numbers fit 32 bits) and a
        BM_MAX_RAM_BYTES (64 TiB) direct map."""
        return min(lib.BM_MAX_RAM_PAGES * page_size, lib.BM_MAX_RAM_BYTES)
    #: the class spawn() makes tasks of (a composed System sets its own Task)
    task_class: type[Task] = Task
    # the hot paths' C calls, bound by _bind() (lib.bm_kmalloc, ...)
    _c_kmalloc: Any
    _c_kfree: Any
    _c_kvmalloc: Any
    _c_kvfree: Any
    _c_vmalloc: Any
    _c_vfree: Any
    _c_alloc_pages: Any
    _c_free_pages: Any
    _c_alloc_percpu: Any
    _c_free_percpu: Any
    _c_kmem_cache_alloc: Any
    _c_kmem_cache_free: Any

    def __init__(self, nr_cpus: int = 2, page_size: int = 4096,
                 profile: str | Profile = CURRENT_PROFILE, cgroup: str = "v2",
                 ram: int | str = "8G", oom_kill: bool = True,
                 memory_recursiveprot: bool = False) -> None:
        self._closed = True
        self._sys = ffi.NULL
        if isinstance(nr_cpus, bool) or not isinstance(nr_cpus, int):
            raise TypeError(f"nr_cpus must be an int, not {type(nr_cpus).__name__}")
        if not 1 <= nr_cpus <= lib.BM_MAX_CPUS:
            raise ValueError(f"nr_cpus must be in 1..{lib.BM_MAX_CPUS}, got {nr_cpus}")
        if isinstance(page_size, bool) or not isinstance(page_size, int):
            raise TypeError(f"page_size must be an int, not {type(page_size).__name__}")
        if page_size not in (4096, 16384, 65536):
            raise ValueError(f"page_size must be 4096, 16384 or 65536, got {page_size}")
        prof = profile if isinstance(profile, Profile) else get_profile(profile)
        if not isinstance(cgroup, str):
            raise TypeError(f"cgroup must be 'v1' or 'v2', not {type(cgroup).__name__}")
        if cgroup not in ("v1", "v2"):
            raise ValueError(f"cgroup must be 'v1' or 'v2', got {cgroup!r}")
        ram_bytes = parse_size(ram)
        max_ram = self.max_ram_bytes(page_size)
        if ram_bytes > max_ram:
            raise ValueError(f"ram={ram!r} is larger than the model's {max_ram} bytes with "
                             f"{page_size}-byte pages (at most {lib.BM_MAX_RAM_PAGES} page "
                             f"frames and {lib.BM_MAX_RAM_BYTES >> 40} TiB)")
        if ram_bytes // page_size < self.MIN_RAM_PAGES:
            raise ValueError(f"ram={ram!r} is below {self.MIN_RAM_PAGES} pages of {page_size} bytes")
        if not isinstance(oom_kill, bool):
            raise TypeError(f"oom_kill must be a bool, not {type(oom_kill).__name__}")
        if not isinstance(memory_recursiveprot, bool):
            raise TypeError(f"memory_recursiveprot must be a bool, not {type(memory_recursiveprot).__name__}")
        if memory_recursiveprot and cgroup != "v2":
            raise ValueError("memory_recursiveprot is a cgroup2 mount option: it needs cgroup='v2'")

        self.nr_cpus = nr_cpus
        self.page_size = page_size
        self.profile = prof
        self.cgroup_version = cgroup
        self.ram_bytes = ram_bytes
        self.oom_kill = oom_kill
        self.memory_recursiveprot = memory_recursiveprot
        self.gfp: GfpFlags = prof.gfp
        self._pcmax = page_counter_max(page_size)

        cfg = ffi.new("struct bm_config *")
        cfg.nr_cpus = nr_cpus
        cfg.page_size = page_size
        cfg.cgroup_v1 = 1 if cgroup == "v1" else 0
        cfg.oom_kill_current = 1 if oom_kill else 0
        cfg.ram_pages = ram_bytes // page_size
        cfg.profile = prof.to_cdata(ffi)[0]
        cfg.memory_recursiveprot = 1 if memory_recursiveprot else 0
        allocs = prof.memcg_allocs()
        cfg.nr_memcg_allocs = len(allocs)
        for i, (_, kind, size) in enumerate(allocs):
            cfg.memcg_allocs[i].kind = lib.BM_ALLOC_KMALLOC if kind == "kmalloc" else lib.BM_ALLOC_PERCPU
            cfg.memcg_allocs[i].size = size
        self._check(lib.bm_config_check(cfg), "bm_config_check")
        sp = lib.bm_system_new(cfg)
        if sp == ffi.NULL:
            raise MemoryError("bm_system_new failed")
        # the C system is freed when the last reference to this cdata goes: the
        # System's, dropped by close(), or that of a call still in flight
        self._sys = ffi.gc(sp, lib.bm_system_free)
        self._closed = False

        #: the System lock: the cgroup and task lifecycle, the registries and the
        #: layers above (the BPF layer) serialise on it (re-entrant)
        self.lock = threading.RLock()
        self._init_contexts()
        for name in ("kmalloc", "kfree", "kvmalloc", "kvfree", "vmalloc", "vfree", "alloc_pages",
                     "free_pages", "alloc_percpu", "free_percpu"):
            setattr(self, "_c_" + name, getattr(lib, "bm_" + name))   # the hot paths' C calls

        # registries (per System, never module level)
        self._memcgs: dict[int, MemCgroup] = {}
        self._removed: deque[MemCgroup] = deque()     # removed cgroups not yet seen freed
        self._tasks: dict[int, Task] = {}              # live tasks
        self._next_pid = 1000
        self._caches: list[KmemCache] = []
        #: lifecycle callbacks of the layers above (hooks.py)
        self.hooks = Hooks()

        self.root = MemCgroup(self, 0, None, "")
        self._memcgs[0] = self.root

    def _init_contexts(self) -> None:
        """The state of the contexts: each thread's stack (``_tls``), each cpu's driving
        thread, what runs on it and the out-parameter of the calls made on it (a cpu's
        state is touched only by the thread driving it)."""
        n = self.nr_cpus
        self._tls = _ThreadContexts()
        self._drivers: dict[int, int] = {}               # cpu -> the ident of the thread driving it
        self._running: dict[int, int] = {}               # task pid -> the cpu it runs on
        self._cpu_frames = [0] * n                       # contexts its thread has on the cpu
        self._cpu_task: list[Task | None] = [None] * n   # the task running on each cpu
        self._irq_depth = [0] * n
        self._task_active = [-1] * n                     # current->active_memcg of the cpu's task
        self._outs = [ffi.new("uint64_t *") for _ in range(n)]
        self._outs32 = [ffi.new("int32_t *") for _ in range(n)]

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the System: every later call raises ValueError.  The C system is freed
        at once, or, when calls of other threads are in flight, as the last one returns."""
        if self._closed:
            return
        self._closed = True
        self._sys = ffi.NULL

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __enter__(self) -> System:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _require_open(self) -> None:
        if self._closed:
            raise ValueError("operation on a closed System")

    def _failed(self, rc: int, what: str) -> None:
        """Raise for a C call that returned rc < 0: ValueError if the System was closed
        meanwhile (the call got its NULL handle), else the errno's OSError."""
        self._require_open()
        check(rc, what)

    def _check(self, rc: int, what: str) -> int:
        """check() of a C call on this System: rc, or the error _failed() raises."""
        if rc < 0:
            self._failed(rc, what)
        return rc

    def __repr__(self) -> str:
        return (f"<System profile={self.profile.name} cgroup={self.cgroup_version} "
                f"nr_cpus={self.nr_cpus} page_size={self.page_size}{' closed' if self._closed else ''}>")

    # ------------------------------------------------------------ cgroups
    def _register(self, cg: MemCgroup) -> None:
        """A new cgroup (System lock held).  Removed ones the core freed meanwhile are
        forgotten, a few per call, so the registry holds the live and the dying."""
        self._memcgs[cg.id] = cg
        self._forget_freed()

    def _forget_freed(self, budget: int = 2) -> None:
        removed = self._removed
        for _ in range(min(budget, len(removed))):
            cg = removed.popleft()
            if cg.dying:
                removed.append(cg)
            else:
                self._memcgs.pop(cg.id, None)

    def memcg_by_id(self, memcg_id: int) -> MemCgroup:
        """The MemCgroup with this C handle (online or dying); ENOENT otherwise."""
        memcg_id = as_int(memcg_id, "memcg id", -(1 << 31), (1 << 31) - 1)
        cg = self._memcgs.get(memcg_id)
        if cg is None or (cg._removed and not cg.dying):
            raise OSError(errno.ENOENT, f"memcg_by_id: no memcg with id {memcg_id}")
        return cg

    def cgroup(self, path: str) -> MemCgroup:
        """Look a live cgroup up by path ("/a/b")."""
        if not isinstance(path, str):
            raise TypeError(f"cgroup path must be a str, not {type(path).__name__}")
        cg = self.root
        with self.lock:
            for part in [p for p in path.split("/") if p]:
                try:
                    cg = cg._children[part]
                except KeyError:
                    raise OSError(errno.ENOENT, f"no cgroup {path!r}") from None
        return cg

    def own_cgroup(self, cg: Any, what: str) -> MemCgroup:
        """``cg`` if it is a MemCgroup of this System (the check of every call taking a cgroup)."""
        return self._own(cg, MemCgroup, "cgroup", what)

    def own_task(self, task: Any, what: str) -> Task:
        """``task`` if it is a Task of this System (the check of every call taking a task)."""
        return self._own(task, Task, "task", what)

    def _own(self, obj: Any, cls: type[_Owned], noun: str, what: str) -> _Owned:
        """TypeError for anything but a ``cls``, ValueError for another System's."""
        if not isinstance(obj, cls):
            raise TypeError(f"{what}: expected a {cls.__name__}, not {type(obj).__name__}")
        if obj.system is not self:
            raise ValueError(f"{what}: {noun} belongs to another System")
        return obj

    def _memcg_arg(self, cg: MemCgroup, what: str) -> int:
        return self.own_cgroup(cg, what).id

    @property
    def dying_cgroups(self) -> int:
        """Removed memcgs the core still keeps (charges or references left)."""
        self._require_open()
        return self._check(lib.bm_system_nr_dying(self._sys), "bm_system_nr_dying")

    def drain_all_stock(self, cg: MemCgroup | None = None) -> None:
        """drain_all_stock(root_memcg): return every cpu's cached pages/bytes of cg's subtree."""
        self._require_open()
        mid = 0 if cg is None else self._memcg_arg(cg, "drain_all_stock")
        self._check(lib.bm_drain_all_stock(self._sys, mid), f"bm_drain_all_stock({mid})")

    def drain_local_stock(self, cpu: int) -> None:
        self._require_open()
        cpu = as_int(cpu, "cpu", 0, self.nr_cpus - 1)
        self._check(lib.bm_drain_local_stock(self._sys, cpu), f"bm_drain_local_stock({cpu})")

    def stock_info(self, cpu: int) -> dict[str, Any]:
        """The cpu's page and object stock (struct bm_cpu_stock_info)."""
        self._require_open()
        cpu = as_int(cpu, "cpu", 0, self.nr_cpus - 1)
        out = ffi.new("struct bm_cpu_stock_info *")
        self._check(lib.bm_stock_info(self._sys, cpu, out), f"bm_stock_info({cpu})")
        return cdata_to_py(out)

    def memcg_get(self, cg: MemCgroup) -> None:
        """css_get()."""
        self._require_open()
        mid = self._memcg_arg(cg, "memcg_get")
        self._check(lib.bm_memcg_get(self._sys, mid), f"bm_memcg_get({mid})")

    def memcg_put(self, cg: MemCgroup) -> None:
        """css_put(); the last put of a dying memcg frees it."""
        self._require_open()
        mid = self._memcg_arg(cg, "memcg_put")
        self._check(lib.bm_memcg_put(self._sys, mid), f"bm_memcg_put({mid})")

    def check(self) -> None:
        """Verify the core's invariants; AssertionError with the core's message if broken."""
        self._require_open()
        buf = ffi.new("char[]", 512)
        rc = lib.bm_system_check(self._sys, buf, 512)
        if rc != 0:
            raise AssertionError(f"bm_system_check: {ffi.string(buf).decode(errors='replace')} (rc={rc})")

    def fail_nth_alloc(self, n: int) -> int:
        """Test-only fault injection (bm_fail_nth_alloc, the kernel's failslab): the nth
        allocator call from now on (kmalloc, vmalloc, alloc_pages, alloc_percpu ..., each
        element of a bulk call) fails with ENOMEM, once; 0 turns it off.  Returns how many
        calls were still to go before the failure (0: it fired, or it was off)."""
        n = as_int(n, "n", 0, (1 << 63) - 1)
        self._require_open()
        return self._check(int(lib.bm_fail_nth_alloc(self._sys, n)), f"bm_fail_nth_alloc({n})")

    @property
    def ram_used_pages(self) -> int:
        self._require_open()
        return self._check(int(lib.bm_ram_used_pages(self._sys)), "bm_ram_used_pages")

    # ------------------------------------------------------------ tasks
    def spawn(self, cgroup: MemCgroup | None = None, uid: int = 0) -> Task:
        """fork() a task into ``cgroup`` (default root) with ``uid``; pids start at 1000."""
        cg = self.root if cgroup is None else cgroup
        self._memcg_arg(cg, "spawn")
        uid = as_int(uid, "uid", 0, _U32 - 1)
        with self.lock:
            self._require_open()
            if not cg.online:
                raise OSError(errno.ENODEV, f"spawn: cgroup {cg.path!r} was removed")
            task = self.task_class(self, self._next_pid, uid, cg)
            self._next_pid += 1
            self._tasks[task.pid] = task
        return task

    @property
    def tasks(self) -> list[Task]:
        with self.lock:
            return [t for t in self._tasks.values() if t.alive]

    def kernel_stacks(self) -> list[tuple[int, int, int]]:
        """(pid, address, bytes) of the kernel stack of every live task and thread:
        THREAD_SIZE of vmalloc, each page charged to the memcg of the task that forked it."""
        size = max(16384, self.page_size)
        with self.lock:
            return [(t.pid, t.stack, size) for t in self._tasks.values() if t.alive and t.stack]

    def cgroup_structures(self) -> list[tuple[int, str, int, int]]:
        """The objects mem_cgroup_alloc() made with GFP_KERNEL_ACCOUNT for every memcg not
        yet freed (online or dying): (memcg id, "slab" | "percpu", address, size asked).
        They were charged through the parent's obj_cgroup at mkdir (obj_cgroup_of() says
        where that objcg is now) and go when the memcg is freed."""
        self._require_open()
        allocs = self.profile.memcg_allocs()
        info = ffi.new("struct bm_memcg_info *")
        out = []
        with self.lock:
            mids = list(self._memcgs)
        for mid in mids:
            if lib.bm_memcg_info(self._sys, mid, info) != 0:
                continue                      # freed
            for i, (_, kind, size) in enumerate(allocs):
                addr = int(info.struct_addrs[i])
                if addr:
                    out.append((mid, "slab" if kind == "kmalloc" else "percpu", addr, size))
        return out

    # ------------------------------------------------------------ contexts
    @property
    def current_cpu(self) -> int | None:
        """The cpu of this thread's innermost context (None outside any)."""
        cpu = self._tls.cpu
        return None if cpu < 0 else cpu

    @property
    def current_task(self) -> Task | None:
        """The task running on this thread's current cpu (None: no context, or a kworker)."""
        cpu = self._tls.cpu
        return None if cpu < 0 else self._cpu_task[cpu]

    def _claim_cpu(self, cpu: int) -> None:
        """This thread enters a context on cpu: it drives the cpu from its first context
        there to its last; another thread driving it is a RuntimeError (a cpu runs one
        context at a time, and interrupts nest on the cpu's own thread).  The claim is a
        dict.setdefault, atomic in CPython: no lock on the way in or out."""
        me = threading.get_ident()
        if self._drivers.setdefault(cpu, me) != me:
            raise RuntimeError(f"cpu {cpu} is driven by another thread (a cpu runs one "
                               f"context at a time: enter a cpu of this thread's own)")
        self._cpu_frames[cpu] += 1

    def _release_cpu(self, cpu: int) -> None:
        self._cpu_frames[cpu] -= 1
        if not self._cpu_frames[cpu]:
            del self._drivers[cpu]

    def _drives(self, cpu: int) -> bool:
        """Whether this thread drives cpu (has a context there)."""
        return self._drivers.get(cpu) == threading.get_ident()

    def _push(self, kind: str, cpu: int, payload: Any) -> None:
        tls = self._tls
        tls.frames.append((kind, cpu, payload))
        tls.cpu = cpu

    def _pop(self, kind: str, cpu: int) -> Any:
        tls = self._tls
        frames = tls.frames
        for i in range(len(frames) - 1, -1, -1):
            if frames[i][0] == kind and frames[i][1] == cpu:
                frame = frames.pop(i)
                tls.cpu = frames[-1][1] if frames else -1
                if i != len(frames):
                    raise RuntimeError(f"{kind} context on cpu {cpu} left out of order")
                return frame[2]
        raise RuntimeError(f"no {kind} context on cpu {cpu} to leave")  # pragma: no cover

    def _sync_cpu(self, cpu: int) -> None:
        task = self._cpu_task[cpu]
        memcg = -1 if task is None else task.cgroup.id
        rc = lib.bm_set_task(self._sys, cpu, memcg, self._task_active[cpu])
        if rc < 0:
            self._failed(rc, f"bm_set_task(cpu={cpu}, memcg={memcg})")

    def _enter_task(self, task: Task, cpu: int) -> None:
        self._require_open()
        if not task.alive:
            raise RuntimeError(f"task {task.pid} cannot run: it was {'killed' if task.killed else 'exited'}")
        self._claim_cpu(cpu)
        try:
            occupant = self._cpu_task[cpu]        # this thread's cpu now: no one else writes it
            if occupant is not None and occupant is not task:
                raise RuntimeError(f"cpu {cpu} is already running task {occupant.pid}")
            if self._irq_depth[cpu]:
                raise RuntimeError(f"cpu {cpu} is in interrupt context; a task cannot be "
                                   f"scheduled in")
            if occupant is None:
                # a task runs on one cpu: threads on two cpus race for it (atomic setdefault)
                where = self._running.setdefault(task.pid, cpu)
                if where != cpu:
                    raise RuntimeError(f"task {task.pid} is already running on cpu {where}")
                task._cpu = cpu
                rc = lib.bm_set_task(self._sys, cpu, task.cgroup.id, -1)
                if rc < 0:
                    task._cpu = None
                    del self._running[task.pid]
                    self._failed(rc, f"bm_set_task(cpu={cpu}, memcg={task.cgroup.id})")
                self._cpu_task[cpu] = task
                self._task_active[cpu] = -1
        except BaseException:
            self._release_cpu(cpu)
            raise
        task._depth += 1
        self._push("task", cpu, task)

    def _exit_task(self, task: Task, cpu: int) -> None:
        try:
            self._pop("task", cpu)
        finally:
            task._depth -= 1
            if task._depth == 0:
                if not self._closed:
                    self._reap_oom_victim(cpu)
                    lib.bm_set_task(self._sys, cpu, -1, -1)
                self._cpu_task[cpu] = None
                self._task_active[cpu] = -1
                task._cpu = None
                self._running.pop(task.pid, None)
            self._release_cpu(cpu)
            if task._depth == 0 and task.killed and not task.exited and not self._closed:
                task._do_exit()     # an OOM victim exits once off the cpu

    def _reap_oom_victim(self, cpu: int) -> None:
        """bm_take_oom_victim: was the task on ``cpu``, a cpu this thread drives, chosen
        by the memcg OOM killer?"""
        task = self._cpu_task[cpu]
        if task is None or not self.oom_kill or task.killed or not self._drives(cpu):
            return
        if lib.bm_take_oom_victim(self._sys, cpu) > 0:
            task._oom_killed()

    def _charge_failed(self, rc: int, cpu: int, what: str) -> None:
        """Raise the OSError of a failed charge or allocation (rc < 0) on ``cpu``: ValueError
        if the System was closed meanwhile.  On ENOMEM the task the memcg OOM killer chose
        is marked first, and the message says which limit refused the charge."""
        self._require_open()
        detail = ""
        if rc == -errno.ENOMEM:
            if 0 <= cpu < self.nr_cpus:
                self._reap_oom_victim(cpu)
            detail = self.explain_enomem(cpu)
        check(rc, what, detail)

    _FAIL_REASONS = {
        lib.BM_FAIL_NOBLOCK: "the gfp flags cannot reclaim (no __GFP_DIRECT_RECLAIM), so "
                             "try_charge_memcg gives up at once",
        lib.BM_FAIL_NORETRY: "__GFP_NORETRY: one reclaim pass and a stock drain did not make room",
        lib.BM_FAIL_RETRY_MAYFAIL: "__GFP_RETRY_MAYFAIL: reclaim retries exhausted; no OOM kill "
                                   "for this gfp",
        lib.BM_FAIL_OOM: "reclaim failed and the memcg OOM killer could not make room",
        lib.BM_FAIL_COSTLY: "reclaim failed; charges above PAGE_ALLOC_COSTLY_ORDER never invoke "
                            "the OOM killer",
        lib.BM_FAIL_KMEM_LIMIT: "the cgroup v1 kmem counter is over memory.kmem.limit_in_bytes",
    }

    def explain_enomem(self, cpu: int) -> str:
        """The limit behind the last failed charge on ``cpu``: which cgroup, its limit and
        usage, and the charge that did not fit (empty if no charge failure was recorded)."""
        rec = ffi.new("struct bm_charge_failure *")
        if lib.bm_last_charge_failure(self._sys, cpu, rec) or rec.memcg < 0:
            return ""
        cg = self._memcgs.get(rec.memcg)
        path = cg.path if cg is not None else f"(removed cgroup, memcg id {rec.memcg})"
        if rec.reason == lib.BM_FAIL_KMEM_LIMIT:
            limit = "memory.kmem.limit_in_bytes"
        else:
            limit = "memory.limit_in_bytes" if self.cgroup_version == "v1" else "memory.max"
        ps = self.page_size
        why = self._FAIL_REASONS.get(rec.reason, "")
        return (f": cgroup {path} is at its {limit} of {rec.max * ps} bytes (usage {rec.usage * ps}) "
                f"and a charge of {rec.nr_pages * ps} bytes (gfp {rec.gfp:#x}) does not fit; {why}")

    def in_interrupt(self, cpu: int) -> Interrupt:
        """``with sys.in_interrupt(cpu):`` — hard/soft irq on ``cpu`` (in_interrupt() true)."""
        cpu = as_int(cpu, "cpu", 0, self.nr_cpus - 1)
        return Interrupt(self, cpu)

    def active_memcg(self, cg: MemCgroup | None) -> ActiveMemcg:
        """``with sys.active_memcg(cg):`` — set_active_memcg() in the innermost context."""
        mid = -1 if cg is None else self._memcg_arg(cg, "active_memcg")
        return ActiveMemcg(self, mid)

    # ------------------------------------------------------------ allocations
    def _no_context(self, what: str) -> None:
        raise OSError(errno.EINVAL, f"{what}: no current context (use task.running(), "
                                    f"sys.in_interrupt() or run it from a task)")

    def kmalloc(self, size: int, gfp: int) -> int:
        """kmalloc(size, gfp) in the current context; returns the object's address."""
        if type(size) is not int or type(gfp) is not int or size < 0 or size > _U64 or gfp < 0 or gfp > _U32:
            size, gfp = as_int(size, "size", 0, _U64), as_int(gfp, "gfp", 0, _U32)
        cpu = self._tls.cpu
        if cpu < 0:
            self._no_context("kmalloc")
        out = self._outs[cpu]
        rc = self._c_kmalloc(self._sys, cpu, size, gfp, out)
        if rc < 0:
            self._charge_failed(rc, cpu, f"bm_kmalloc(size={size}, gfp={gfp:#x}, cpu={cpu})")
        return out[0]

    def kfree(self, addr: int) -> None:
        """kfree(addr): uncharges the objcg recorded for the object."""
        if type(addr) is not int or addr < 0 or addr > _U64:
            addr = as_int(addr, "addr", 0, _U64)
        cpu = self._tls.cpu
        rc = self._c_kfree(self._sys, cpu if cpu >= 0 else 0, addr)
        if rc < 0:
            self._failed(rc, f"bm_kfree(addr={addr:#x})")

    def kvmalloc(self, size: int, gfp: int) -> int:
        """kvmalloc(): kmalloc below the kernel's threshold, else vmalloc (mm/util.c)."""
        if type(size) is not int or type(gfp) is not int or size < 0 or size > _U64 or gfp < 0 or gfp > _U32:
            size, gfp = as_int(size, "size", 0, _U64), as_int(gfp, "gfp", 0, _U32)
        cpu = self._tls.cpu
        if cpu < 0:
            self._no_context("kvmalloc")
        out = self._outs[cpu]
        rc = self._c_kvmalloc(self._sys, cpu, size, gfp, out)
        if rc < 0:
            self._charge_failed(rc, cpu, f"bm_kvmalloc(size={size}, gfp={gfp:#x}, cpu={cpu})")
        return out[0]

    def kvfree(self, addr: int) -> None:
        if type(addr) is not int or addr < 0 or addr > _U64:
            addr = as_int(addr, "addr", 0, _U64)
        cpu = self._tls.cpu
        rc = self._c_kvfree(self._sys, cpu if cpu >= 0 else 0, addr)
        if rc < 0:
            self._failed(rc, f"bm_kvfree(addr={addr:#x})")

    def vmalloc(self, size: int, gfp: int) -> int:
        """__vmalloc(size, gfp): each backing page charged as kmem with __GFP_ACCOUNT."""
        if type(size) is not int or type(gfp) is not int or size < 0 or size > _U64 or gfp < 0 or gfp > _U32:
            size, gfp = as_int(size, "size", 0, _U64), as_int(gfp, "gfp", 0, _U32)
        cpu = self._tls.cpu
        if cpu < 0:
            self._no_context("vmalloc")
        out = self._outs[cpu]
        rc = self._c_vmalloc(self._sys, cpu, size, gfp, out)
        if rc < 0:
            self._charge_failed(rc, cpu, f"bm_vmalloc(size={size}, gfp={gfp:#x}, cpu={cpu})")
        return out[0]

    def vfree(self, addr: int) -> None:
        if type(addr) is not int or addr < 0 or addr > _U64:
            addr = as_int(addr, "addr", 0, _U64)
        cpu = self._tls.cpu
        rc = self._c_vfree(self._sys, cpu if cpu >= 0 else 0, addr)
        if rc < 0:
            self._failed(rc, f"bm_vfree(addr={addr:#x})")

    def alloc_pages(self, order: int, gfp: int) -> int:
        """alloc_pages(gfp, order) (+ __memcg_kmem_charge_page with __GFP_ACCOUNT); returns the pfn."""
        if type(order) is not int or type(gfp) is not int or order < 0 or order > 63 or gfp < 0 or gfp > _U32:
            order, gfp = as_int(order, "order", 0, 63), as_int(gfp, "gfp", 0, _U32)
        cpu = self._tls.cpu
        if cpu < 0:
            self._no_context("alloc_pages")
        out = self._outs[cpu]
        rc = self._c_alloc_pages(self._sys, cpu, order, gfp, out)
        if rc < 0:
            self._charge_failed(rc, cpu, f"bm_alloc_pages(order={order}, gfp={gfp:#x}, cpu={cpu})")
        return out[0]

    def free_pages(self, pfn: int, order: int) -> None:
        if type(pfn) is not int or type(order) is not int or pfn < 0 or pfn > _U64 or order < 0 or order > 63:
            pfn, order = as_int(pfn, "pfn", 0, _U64), as_int(order, "order", 0, 63)
        cpu = self._tls.cpu
        rc = self._c_free_pages(self._sys, cpu if cpu >= 0 else 0, pfn, order)
        if rc < 0:
            self._failed(rc, f"bm_free_pages(pfn={pfn}, order={order})")

    def alloc_percpu(self, size: int, align: int, gfp: int) -> int:
        """__alloc_percpu_gfp(size, align, gfp): charges pcpu_obj_full_size to the objcg."""
        if type(size) is not int or type(align) is not int or type(gfp) is not int or size < 0 \
                or size > _U64 or align < 0 or align > _U64 or gfp < 0 or gfp > _U32:
            size = as_int(size, "size", 0, _U64)
            align = as_int(align, "align", 0, _U64)
            gfp = as_int(gfp, "gfp", 0, _U32)
        cpu = self._tls.cpu
        if cpu < 0:
            self._no_context("alloc_percpu")
        out = self._outs[cpu]
        rc = self._c_alloc_percpu(self._sys, cpu, size, align, gfp, out)
        if rc < 0:
            self._charge_failed(rc, cpu, f"bm_alloc_percpu(size={size}, align={align}, gfp={gfp:#x}, cpu={cpu})")
        return out[0]

    def alloc_percpu_array(self, size: int, align: int, gfp: int, n: int) -> int:
        """``n`` alloc_percpu(size, align, gfp) in a row, as one allocation record (a BPF
        map's preallocated per-cpu values): charged and accounted as n allocations, all or
        none; area i is at the returned address + i * ALIGN(size, align), and
        free_percpu(address) frees them all.  Host memory does not grow with n."""
        size = as_int(size, "size", 0, _U64)
        align = as_int(align, "align", 0, _U64)
        gfp = as_int(gfp, "gfp", 0, _U32)
        n = as_int(n, "n", 1, (1 << 63) - 1)
        cpu = self._tls.cpu
        if cpu < 0:
            self._no_context("alloc_percpu_array")
        out = self._outs[cpu]
        rc = lib.bm_alloc_percpu_array(self._sys, cpu, size, align, gfp, n, out)
        if rc < 0:
            self._charge_failed(rc, cpu, f"bm_alloc_percpu_array(size={size}, align={align}, "
                                         f"gfp={gfp:#x}, n={n}, cpu={cpu})")
        return out[0]

    def free_percpu(self, addr: int) -> None:
        if type(addr) is not int or addr < 0 or addr > _U64:
            addr = as_int(addr, "addr", 0, _U64)
        cpu = self._tls.cpu
        rc = self._c_free_percpu(self._sys, cpu if cpu >= 0 else 0, addr)
        if rc < 0:
            self._failed(rc, f"bm_free_percpu(addr={addr:#x})")

    def ksize(self, addr: int) -> int:
        self._require_open()
        addr = as_int(addr, "addr", 0, _U64)
        out = ffi.new("uint64_t *")
        self._check(lib.bm_ksize(self._sys, addr, out), f"bm_ksize(addr={addr:#x})")
        return int(out[0])

    def kmalloc_charged_size(self, addr: int) -> int:
        """The bytes an accounted kmalloc'ed object at ``addr`` puts on its memcg, as the core
        charged them: obj_full_size() (mm/slab.h) — the object's slab size plus its slot in
        the slab's objcg vector — or, for a large kmalloc, its pages (kmalloc_large())."""
        size = self.ksize(addr)
        pfn = self.virt_to_pfn(addr)
        kind = self._page_info(pfn).kind
        while kind == lib.BM_PAGE_TAIL:     # an object on a tail page of its slab: the head's
            pfn -= 1
            kind = self._page_info(pfn).kind
        if kind == lib.BM_PAGE_SLAB:
            return size + OBJCG_POINTER_SIZE
        return size

    def pcpu_obj_full_size(self, size: int) -> int:
        """pcpu_obj_full_size() (mm/percpu-internal.h): what an accounted percpu allocation
        of ``size`` bytes charges: ALIGN(size, PCPU_MIN_ALLOC_SIZE) on every possible cpu,
        plus one objcg pointer per PCPU_MIN_ALLOC_SIZE unit where the profile has
        percpu_ptr_overhead.  (The core has no query for it: this mirrors csrc/percpu.c.)"""
        size = as_int(size, "size", 0, _U64)
        units = (size + PCPU_MIN_ALLOC_SIZE - 1) // PCPU_MIN_ALLOC_SIZE
        extra = units * OBJCG_POINTER_SIZE if self.profile.mm.percpu_ptr_overhead else 0
        return units * PCPU_MIN_ALLOC_SIZE * self.nr_cpus + extra

    @property
    def dentry_cache(self) -> KmemCache:
        """The "dentry" cache (fs/dcache.c dcache_init(): sizeof(struct dentry) of the profile,
        SLAB_RECLAIM_ACCOUNT | SLAB_ACCOUNT), made on first use."""
        with self.lock:
            cache = getattr(self, "_dentry_cache", None)
            if cache is None:
                size = self.profile.mm_structs.dentry
                if size is None:
                    raise ValueError(f"profile {self.profile.name}: no sizeof(struct dentry) in "
                                     f"{self.profile.mm_structs.source}")
                cache = self.kmem_cache_create("dentry", size, SLAB_RECLAIM_ACCOUNT | SLAB_ACCOUNT)
                self._dentry_cache = cache
            return cache

    def create_dentries(self, n: int, gfp: int | None = None) -> np.ndarray:
        """The "dentries" workload: ``n`` lookups of names that do not exist, in the current
        context.  Each leaves a negative dentry (d_alloc(), charged to the context's memcg)
        unused on the LRU of the memcg it is charged to, where the superblock shrinker frees
        it under reclaim.  Stops at the first allocation that fails (as a lookup returns
        ENOMEM); returns the addresses of the dentries made."""
        cache = self.dentry_cache
        n = as_int(n, "n", 0, 1 << 40)
        gfp = GFP_KERNEL if gfp is None else as_int(gfp, "gfp", 0, _U32)
        cpu = self._tls.cpu
        if cpu < 0:
            self._no_context("create_dentries")
        addrs = np.empty(n, dtype=np.uint64)
        if n == 0:
            return addrs
        rc = int(lib.bm_kmem_cache_alloc_lru_bulk(self._sys, cpu, cache.id, gfp, n,
                                                  ffi.cast("uint64_t *", ffi.from_buffer(addrs))))
        if rc < 0:
            self._charge_failed(rc, cpu, f"bm_kmem_cache_alloc_lru_bulk(n={n}, cpu={cpu})")
        if rc < n:
            self._reap_oom_victim(cpu)
        return addrs[:rc]

    def drop_slab(self) -> int:
        """drop_slab(), what ``echo 2 > /proc/sys/vm/drop_caches`` runs: every memcg's
        shrinkers at priority 0 (the unused objects of reclaimable caches, such as negative
        dentries, are freed and uncharged), on the current cpu (0 without a context).
        Returns the objects freed."""
        self._require_open()
        cpu = self.current_cpu or 0
        return self._check(int(lib.bm_drop_slab(self._sys, cpu)), f"bm_drop_slab(cpu={cpu})")

    def kmem_cache_create(self, name: str, size: int, flags: int = 0) -> KmemCache:
        """kmem_cache_create(name, size, 0, flags, NULL); SLAB_ACCOUNT makes objects accounted.
        A SLAB_RECLAIM_ACCOUNT cache gets a memcg-aware list_lru and a shrinker: objects put on
        it with ``lru_add()`` are unused and freed by reclaim (``KmemCache.lru_add``)."""
        self._require_open()
        if not isinstance(name, str) or not name:
            raise TypeError("kmem_cache_create: name must be a non-empty str")
        size = as_int(size, "size", 0, _U64)
        flags = as_int(flags, "flags", 0, _U32)
        out = ffi.new("int32_t *")
        self._check(lib.bm_kmem_cache_create(self._sys, size, flags, out),
              f"bm_kmem_cache_create(name={name!r}, size={size}, flags={flags:#x})")
        cache = KmemCache(self, int(out[0]), name, size, flags)
        self._caches.append(cache)
        return cache

    # ------------------------------------------------------------ inspection
    def virt_to_pfn(self, addr: int) -> int:
        """virt_to_pfn() of a direct-map (kmalloc / page) address: (addr - PAGE_OFFSET) >> PAGE_SHIFT."""
        addr = as_int(addr, "addr", 0, _U64)
        if addr < PAGE_OFFSET:
            raise ValueError(f"{addr:#x} is not a direct-map address")
        return (addr - PAGE_OFFSET) // self.page_size

    def pfn_to_virt(self, pfn: int) -> int:
        """The direct-map address of a page frame."""
        return PAGE_OFFSET + as_int(pfn, "pfn", 0, _U64) * self.page_size

    def page_memcg_data(self, pfn: int) -> int:
        """The raw page->memcg_data word of the frame ``pfn``."""
        return int(self._page_info(pfn).memcg_data)

    def _page_info(self, pfn: int) -> Any:
        self._require_open()
        pfn = as_int(pfn, "pfn", 0, _U64)
        out = ffi.new("struct bm_page_info *")
        self._check(lib.bm_page_info(self._sys, pfn, out), f"bm_page_info(pfn={pfn})")
        return out

    def page_info(self, pfn: int) -> dict[str, Any]:
        """struct bm_page_info of the frame as a dict (kind also by name, -1 ids as None)."""
        d = cdata_to_py(self._page_info(pfn))
        d.pop("pad", None)
        d["kind_name"] = _PAGE_KINDS.get(d["kind"], str(d["kind"]))
        for k in ("memcg", "objcg"):
            if d[k] < 0:
                d[k] = None
        return d

    def obj_cgroup_of(self, addr: int) -> tuple[int | None, MemCgroup | None]:
        """(objcg id, its current memcg) recorded for the object at ``addr``; (None, memcg)
        for a v5.x kmem page, which records the memcg itself; (None, None) for an
        unaccounted object."""
        self._require_open()
        addr = as_int(addr, "addr", 0, _U64)
        o, m = ffi.new("int32_t *"), ffi.new("int32_t *")
        self._check(lib.bm_obj_cgroup_of(self._sys, addr, o, m), f"bm_obj_cgroup_of(addr={addr:#x})")
        objcg, memcg = int(o[0]), int(m[0])
        # v5.x kmem pages (kmalloc_large, vmalloc, alloc_pages) record a memcg, not an objcg
        cg = self._memcgs.get(memcg) if memcg >= 0 else None
        return (objcg if objcg >= 0 else None), cg

    def memcg_ids_of(self, addrs: Iterable[int] | np.ndarray) -> np.ndarray:
        """obj_cgroup_of() of many objects at once: the id of the memcg each one's charge is
        on now (objcg_memcg() of its objcg, or the memcg a v5.x kmem page records), -1 for
        an unaccounted object.  One C call per object, no per-object argument checks."""
        self._require_open()
        a = self._u64_array(addrs, "addrs")
        o, m, sp, of = ffi.new("int32_t *"), ffi.new("int32_t *"), self._sys, lib.bm_obj_cgroup_of
        ids = []
        for addr in a.tolist():
            rc = of(sp, addr, o, m)
            if rc < 0:
                self._failed(rc, f"bm_obj_cgroup_of(addr={addr:#x})")
            ids.append(m[0])
        return np.array(ids, dtype=np.int32)

    def get_obj_cgroup_from_current(self) -> int | None:
        """get_obj_cgroup_from_current(): the context's objcg with a reference taken, or None."""
        self._require_open()
        cpu = self._tls.cpu
        if cpu < 0:
            self._no_context("get_obj_cgroup_from_current")
        out = self._outs32[cpu]
        self._check(lib.bm_get_obj_cgroup_from_current(self._sys, cpu, out),
              f"bm_get_obj_cgroup_from_current(cpu={cpu})")
        v = int(out[0])
        return None if v < 0 else v

    def obj_cgroup_get(self, objcg: int) -> None:
        self._require_open()
        objcg = as_int(objcg, "objcg", 0, (1 << 31) - 1)
        self._check(lib.bm_obj_cgroup_get(self._sys, objcg), f"bm_obj_cgroup_get({objcg})")

    def obj_cgroup_put(self, objcg: int) -> None:
        self._require_open()
        objcg = as_int(objcg, "objcg", 0, (1 << 31) - 1)
        self._check(lib.bm_obj_cgroup_put(self._sys, objcg), f"bm_obj_cgroup_put({objcg})")

    def objcg_info(self, objcg: int) -> dict[str, int]:
        self._require_open()
        objcg = as_int(objcg, "objcg", 0, (1 << 31) - 1)
        out = ffi.new("struct bm_objcg_info *")
        self._check(lib.bm_objcg_info(self._sys, objcg, out), f"bm_objcg_info({objcg})")
        return cdata_to_py(out)

    def objcg_memcg(self, objcg: int) -> MemCgroup:
        """obj_cgroup_memcg(): the memcg the objcg charges now (follows reparenting)."""
        self._require_open()
        objcg = as_int(objcg, "objcg", 0, (1 << 31) - 1)
        out = ffi.new("struct bm_objcg_info *")   # one field read, no dict of the whole struct
        self._check(lib.bm_objcg_info(self._sys, objcg, out), f"bm_objcg_info({objcg})")
        return self.memcg_by_id(int(out.memcg))

    # ------------------------------------------------------------ bulk
    def replay(self, ops: np.ndarray) -> np.ndarray:
        """Run an array of struct bm_op (dtype OP_DTYPE) in one C call; per-op results."""
        self._require_open()
        if not isinstance(ops, np.ndarray) or ops.dtype != OP_DTYPE or ops.ndim != 1:
            raise TypeError("replay: ops must be a 1-D numpy array of dtype pybpfmem.system.OP_DTYPE")
        ops = np.ascontiguousarray(ops)
        n = len(ops)
        results = np.empty(n, dtype=np.int64)   # bm_replay writes every slot
        if n == 0:
            return results
        rc = lib.bm_replay(self._sys, ffi.cast("const struct bm_op *", ffi.from_buffer(ops)), n,
                           ffi.cast("int64_t *", ffi.from_buffer(results)))
        if rc < 0:
            self._failed(int(rc), f"bm_replay(n={n})")
        return results

    @staticmethod
    def _u64_array(arr: Iterable[int] | np.ndarray, what: str) -> np.ndarray:
        if not isinstance(arr, np.ndarray):
            items = list(arr)
            if all(type(v) is int for v in items) and all(0 <= v <= _U64 for v in items):
                return np.array(items, dtype=np.uint64)   # addresses above 2**63 included
        a = np.asarray(arr)
        if a.ndim != 1:
            raise ValueError(f"{what} must be 1-D")
        if a.dtype == np.uint64:
            return np.ascontiguousarray(a)
        if a.dtype.kind not in "iu" or a.dtype == np.bool_:
            if a.size == 0:
                return np.zeros(0, dtype=np.uint64)
            raise TypeError(f"{what} must hold integers, not {a.dtype}")
        if a.dtype.kind == "i" and a.size and a.min() < 0:
            raise ValueError(f"{what} must not hold negative values")
        return np.ascontiguousarray(a, dtype=np.uint64)

    def kmalloc_bulk(self, sizes: np.ndarray, gfp: int) -> np.ndarray:
        """kmalloc every size in one C call; returns the addresses (0 where an op failed)."""
        self._require_open()
        s = self._u64_array(sizes, "sizes")
        gfp = as_int(gfp, "gfp", 0, _U32)
        cpu = self._tls.cpu
        if cpu < 0:
            self._no_context("kmalloc_bulk")
        n = len(s)
        addrs = np.zeros(n, dtype=np.uint64)
        if n == 0:
            return addrs
        rc = lib.bm_kmalloc_bulk(self._sys, cpu, ffi.cast("const uint64_t *", ffi.from_buffer(s)), n, gfp,
                                 ffi.cast("uint64_t *", ffi.from_buffer(addrs)))
        if rc < 0:
            self._failed(int(rc), f"bm_kmalloc_bulk(n={n}, gfp={gfp:#x}, cpu={cpu})")
        if rc > 0:
            self._reap_oom_victim(cpu)
        return addrs

    def kmalloc_until_fail(self, size: int, n: int, gfp: int) -> np.ndarray:
        """``n`` kmallocs of ``size`` in the current context that stop at the first failure,
        in one C call (the refill loop of alloc_bulk(), kernel/bpf/memalloc.c); returns the
        addresses got, fewer than ``n`` after a failure (which raises nothing)."""
        self._require_open()
        size = as_int(size, "size", 0, _U64)
        n = as_int(n, "n", 0, (1 << 62))
        gfp = as_int(gfp, "gfp", 0, _U32)
        cpu = self._tls.cpu
        if cpu < 0:
            self._no_context("kmalloc_until_fail")
        addrs = np.empty(n, dtype=np.uint64)
        if n == 0:
            return addrs
        rc = int(lib.bm_memalloc_bulk(self._sys, cpu, size, n, gfp,
                                      ffi.cast("uint64_t *", ffi.from_buffer(addrs))))
        if rc < 0:
            self._failed(rc, f"bm_memalloc_bulk(size={size}, n={n}, gfp={gfp:#x}, cpu={cpu})")
        if rc < n:
            self._reap_oom_victim(cpu)
        return addrs[:rc]

    def allocs_until_fail(self, kinds: str, sizes: np.ndarray, gfp: int) -> np.ndarray:
        """A sequence of allocations in the current context, in order, in one C call that
        stops at the first failure (as a loop of element updates stops at the first one
        that cannot allocate): ``kinds[i]`` is ``"k"`` for ``kmalloc(sizes[i], gfp)`` or
        ``"p"`` for ``alloc_percpu(sizes[i], 8, gfp)`` (the alignment BPF code asks for).
        Returns the addresses got, fewer than ``len(kinds)`` after a failure (which raises
        nothing)."""
        self._require_open()
        if not isinstance(kinds, str):
            raise TypeError(f"kinds must be a str of 'k' and 'p', not {type(kinds).__name__}")
        s = self._u64_array(sizes, "sizes")
        gfp = as_int(gfp, "gfp", 0, _U32)
        n = len(kinds)
        if len(s) != n:
            raise ValueError(f"{n} kinds but {len(s)} sizes")
        kb = kinds.encode("ascii", "replace")
        if kb.strip(b"kp"):
            raise ValueError("kinds must hold only 'k' (kmalloc) and 'p' (alloc_percpu)")
        cpu = self._tls.cpu
        if cpu < 0:
            self._no_context("allocs_until_fail")
        addrs = np.empty(n, dtype=np.uint64)
        if n == 0:
            return addrs
        done = int(lib.bm_allocs_until_fail(self._sys, cpu, kb, ffi.cast("const uint64_t *", ffi.from_buffer(s)),
                                            n, gfp, ffi.cast("uint64_t *", ffi.from_buffer(addrs))))
        if done < 0:
            self._failed(done, f"bm_allocs_until_fail(n={n}, gfp={gfp:#x}, cpu={cpu})")
        if done < n:
            self._reap_oom_victim(cpu)
        return addrs[:done]

    def kfree_bulk(self, addrs: np.ndarray) -> np.ndarray:
        """kfree every address in one C call; per-op 0 or -errno."""
        self._require_open()
        a = self._u64_array(addrs, "addrs")
        cpu = max(self._tls.cpu, 0)
        n = len(a)
        results = np.zeros(n, dtype=np.int64)
        if n == 0:
            return results
        rc = lib.bm_kfree_bulk(self._sys, cpu, ffi.cast("const uint64_t *", ffi.from_buffer(a)), n,
                               ffi.cast("int64_t *", ffi.from_buffer(results)))
        if rc < 0:
            self._failed(int(rc), f"bm_kfree_bulk(n={n})")
        return results


class KmemCache(NoCopy):
    """A kmem_cache (kmem_cache_create); objects are accounted if flags has SLAB_ACCOUNT."""

    __slots__ = ("system", "id", "name", "size", "flags")

    def __init__(self, system: System, cache_id: int, name: str, size: int, flags: int) -> None:
        self.system = system
        self.id = cache_id
        self.name = name
        self.size = size
        self.flags = flags

    def __repr__(self) -> str:
        return f"<KmemCache {self.name} id={self.id} size={self.size} flags={self.flags:#x}>"

    def alloc(self, gfp: int) -> int:
        """kmem_cache_alloc(cache, gfp) in the current context."""
        s = self.system
        if type(gfp) is not int or gfp < 0 or gfp > _U32:
            gfp = as_int(gfp, "gfp", 0, _U32)
        cpu = s._tls.cpu
        if cpu < 0:
            s._no_context("kmem_cache_alloc")
        out = s._outs[cpu]
        rc = lib.bm_kmem_cache_alloc(s._sys, cpu, self.id, gfp, out)
        if rc < 0:
            s._charge_failed(rc, cpu, f"bm_kmem_cache_alloc(cache={self.name}, gfp={gfp:#x}, cpu={cpu})")
        return out[0]

    def free(self, addr: int) -> None:
        """kmem_cache_free(cache, addr) (off the LRU first if it is on it)."""
        s = self.system
        if type(addr) is not int or addr < 0 or addr > _U64:
            addr = as_int(addr, "addr", 0, _U64)
        cpu = s._tls.cpu
        rc = lib.bm_kmem_cache_free(s._sys, cpu if cpu >= 0 else 0, self.id, addr)
        if rc < 0:
            s._failed(rc, f"bm_kmem_cache_free(cache={self.name}, addr={addr:#x})")

    def _lru_check(self, what: str) -> None:
        self.system._require_open()
        if not self.flags & SLAB_RECLAIM_ACCOUNT:
            raise OSError(errno.EINVAL, f"{what}: cache {self.name!r} is not SLAB_RECLAIM_ACCOUNT "
                                        f"(no list_lru)")

    def lru_add(self, addr: int) -> bool:
        """list_lru_add_obj(): the object is unused (a dput() that keeps a dentry cached) and
        joins the LRU of the memcg it is charged to, freeable by reclaim.  True if added,
        False if it was already there."""
        self._lru_check("lru_add")
        addr = as_int(addr, "addr", 0, _U64)
        return bool(self.system._check(lib.bm_list_lru_add(self.system._sys, self.id, addr),
                                       f"bm_list_lru_add(cache={self.name}, addr={addr:#x})"))

    def lru_del(self, addr: int) -> bool:
        """list_lru_del_obj(): the object is in use again (dget()); True if it was on the LRU."""
        self._lru_check("lru_del")
        addr = as_int(addr, "addr", 0, _U64)
        return bool(self.system._check(lib.bm_list_lru_del(self.system._sys, self.id, addr),
                                       f"bm_list_lru_del(cache={self.name}, addr={addr:#x})"))

    def lru_count(self, cgroup: MemCgroup) -> int:
        """list_lru_count_one(): the objects on ``cgroup``'s list of this cache."""
        self._lru_check("lru_count")
        mid = self.system._memcg_arg(cgroup, "lru_count")
        return self.system._check(int(lib.bm_list_lru_count(self.system._sys, self.id, mid)),
                                  f"bm_list_lru_count(cache={self.name}, memcg={mid})")
