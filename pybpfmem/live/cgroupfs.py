"""Memory-cgroup drivers for cgroup v1 and v2, detected at run time.

Safety contract: every cgroup this module creates lies strictly below the calling
process's own memory cgroup (read from /proc/self/cgroup), and every cgroup it
creates is removed again by ``CaseCgroup.remove()`` / the context manager, also on
exceptions and KeyboardInterrupt.  Above that, only the own cgroup is ever written,
and only on v2: its ``cgroup.subtree_control`` gets ``+memory`` (see "v2 delegation").

Counters (all in bytes):
* v1: ``memory.usage_in_bytes`` (page_counter ``memory``, includes the per-cpu page
  stock's pre-charged pages, see refill_stock(), mm/memcontrol.c) and
  ``memory.kmem.usage_in_bytes`` (page_counter ``kmem``; charged by
  memcg_account_kmem() only for pages really handed to kernel objects, so the page
  stock never shows in it; only the obj stock's sub-page remainder does).
* v2: ``memory.current`` (the same page_counter as v1 usage, read without delay) and
  ``memory.stat`` ``kernel`` (MEMCG_KMEM, the same quantity as the v1 kmem counter).
  ``kernel`` exists from v5.18 on (a8c49af3be5f "memcg: add per-memcg total kernel
  memory stat"); before it v2 has no kernel-memory total at all, and ``kmem()``
  raises ``KmemUnavailable`` instead of guessing.  memory.stat is an rstat sum:
  what it prints is only as new as the last flush of the cgroup's subtree
  (mem_cgroup_flush_stats(), css_rstat_flush()); the runner forces and checks one
  before reading it (runner.Probe.flush_stats).

Draining stocks (``drain()``): the per-cpu page stock (pre-charged pages) and
object stock (sub-page bytes) of a cgroup go back to its counters only through
drain_all_stock(memcg), which drains the writer's cpu at once and only queues work
for the other cpus (and does nothing while another drain holds
percpu_charge_mutex); so ``drain()`` runs twice with a pause.
* v1: a write of ``memory.force_empty`` (mem_cgroup_force_empty(),
  mm/memcontrol-v1.c): lru_add_drain_all(), drain_all_stock(memcg), then reclaim
  rounds while usage > 0.
* v2 has no force_empty.  memory_high_write() (mm/memcontrol.c; since v5.8,
  8c8c383c04f6 "mm: memcontrol: try harder to set a new memory.high", so in 5.10,
  6.1, 6.12 and 6.18) sets the new high and, while usage is above it, calls
  drain_all_stock(memcg) once and then reclaims up to MAX_RECLAIM_RETRIES rounds
  that free nothing.  Writing ``memory.high`` = 0 and then back to what it was is
  therefore v1's force_empty without lru_add_drain_all(): the same drain, the same
  reclaim of whatever is reclaimable.  (memory.max would do the same but OOM-kill
  a task that cannot be reclaimed below it; memory.high only throttles a task that
  charges while it is low, and nothing charges in a case cgroup while we read it.)

v2 delegation: a cgroup's memory.* files exist only if its parent enables the
controller in the parent's own ``cgroup.subtree_control``, and a non-root cgroup that
enables a controller for its children may hold no process (the no-internal-process
rule: cgroup_vet_subtree_control_enable() and cgroup_migrate_vet_dst(),
kernel/cgroup/cgroup.c).  So a case cgroup enables ``+memory`` just before it gets its
first child and never as a leaf; and the own cgroup must enable it once.  If the own
cgroup holds this process only (``systemd-run --scope -p Delegate=yes``, a
container's own cgroup), the process first moves into a leaf of its own,
``pybpfmem-<pid>-self``; ``release()`` undoes both when nothing of ours is left.  If
it holds other processes, nothing can be enabled there without moving them, which
is not ours to do: ``delegation_problem()`` says so and the live commands refuse.
"""
from __future__ import annotations

import errno
import itertools
import os
import re
import time
from dataclasses import dataclass, field
from typing import Callable

MEMCG_CHARGE_BATCH = 64  # pages, include/linux/memcontrol.h
SELF_LEAF = "self"       # pybpfmem-<pid>-self: the v2 leaf this process moves into


class KmemUnavailable(OSError):
    """The running kernel has no kernel-memory counter for this cgroup (cgroup v2
    before v5.18: memory.stat has no ``kernel`` line)."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.ENOENT, f"{path}: no 'kernel' in memory.stat: cgroup v2 has no "
                         "kernel-memory counter before v5.18 (MEMCG_KMEM, a8c49af3be5f)")


def own_memory_cgroup(proc_cgroup: str = "/proc/self/cgroup") -> tuple[int, str]:
    """(version, path relative to the hierarchy root) of our memory cgroup.

    v1: the line whose controller list contains "memory"; v2: the "0::" line, used
    only when no v1 memory line exists.
    """
    v2path = None
    with open(proc_cgroup) as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if "memory" in ctrls.split(","):
                return 1, path
            if hid == "0" and ctrls == "":
                v2path = path
    if v2path is None:
        raise OSError(errno.ENOENT, f"{proc_cgroup}: no memory cgroup line")
    return 2, v2path


def find_mount(version: int, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """Mount point of the v1 memory hierarchy or of cgroup2."""
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            rfields = right.split()
            if len(fields) < 5 or len(rfields) < 3:
                continue
            fstype, opts = rfields[0], rfields[2].split(",")
            if version == 1 and fstype == "cgroup" and "memory" in opts:
                return fields[4]
            if version == 2 and fstype == "cgroup2":
                return fields[4]
    return None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _procs(path: str) -> list[int]:
    return [int(x) for x in _read(os.path.join(path, "cgroup.procs")).split()]


def parse_stat(text: str) -> dict[str, int]:
    """memory.stat as {key: value} (numeric lines only)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out


@dataclass
class CaseCgroup:
    """A cgroup we created; only ever a descendant of the driver's own cgroup."""
    driver: "CgroupDriver"
    path: str
    children: list["CaseCgroup"] = field(default_factory=list)
    removed: bool = False

    # -- files -----------------------------------------------------------------------
    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def read(self, name: str) -> str:
        return _read(self.file(name))

    def write(self, name: str, value: str) -> None:
        self.driver._check_ours(self.path)
        _write(self.file(name), value)

    # -- actions ---------------------------------------------------------------------
    def mkchild(self, name: str) -> "CaseCgroup":
        """A child cgroup; on v2 this cgroup first delegates the memory controller to
        its children (it holds no process: see the module docstring)."""
        c = CaseCgroup(self.driver, os.path.join(self.path, name))
        self.driver._delegate_memory(self.path)
        self.driver._mkdir(c.path)
        self.children.append(c)
        return c

    def move(self, pid: int) -> None:
        """Put ``pid`` (a process we forked) into this cgroup."""
        self.write("cgroup.procs", str(pid))

    def procs(self) -> list[int]:
        return _procs(self.path)

    def set_limit(self, limit: int | None) -> None:
        """Hard limit: v1 memory.limit_in_bytes (mem_cgroup_resize_max()), v2 memory.max."""
        if self.driver.version == 1:
            self.write("memory.limit_in_bytes", "-1" if limit is None else str(limit))
        else:
            self.write("memory.max", "max" if limit is None else str(limit))

    def usage(self) -> int:
        """Total charge in bytes (page_counter ``memory``)."""
        name = "memory.usage_in_bytes" if self.driver.version == 1 else "memory.current"
        return int(self.read(name))

    def kmem(self) -> int:
        """Kernel-memory charge in bytes: the v1 kmem counter, the v2 memory.stat
        ``kernel`` (as of the last stats flush; KmemUnavailable before v5.18)."""
        if self.driver.version == 1:
            return int(self.read("memory.kmem.usage_in_bytes"))
        st = self.stat()
        if "kernel" not in st:
            raise KmemUnavailable(self.file("memory.stat"))
        return st["kernel"]

    def has_kmem(self) -> bool:
        """Whether ``kmem()`` can be read here."""
        return self.driver.version == 1 or "kernel" in self.stat()

    def stat(self) -> dict[str, int]:
        return parse_stat(self.read("memory.stat"))

    def failcnt(self) -> int | None:
        if self.driver.version == 1:
            return int(self.read("memory.failcnt"))
        return None

    def events(self) -> dict[str, int]:
        if self.driver.version == 2:
            return {k: int(v) for k, v in (ln.split() for ln in self.read("memory.events").splitlines())}
        oc = {}
        for ln in self.read("memory.oom_control").splitlines():
            k, _, v = ln.partition(" ")
            oc[k] = int(v)
        return {"oom_kill": oc.get("oom_kill", 0), "under_oom": oc.get("under_oom", 0)}

    def drain_once(self) -> None:
        """One drain_all_stock(memcg) of this cgroup (see the module docstring): v1
        writes memory.force_empty; v2 writes memory.high = 0 and puts the old value
        back.  EINTR (a pending signal) and EBUSY (v1: nothing left) end it early."""
        try:
            if self.driver.version == 1:
                self.write("memory.force_empty", "0")
            else:
                old = self.read("memory.high").strip()
                try:
                    self.write("memory.high", "0")
                finally:
                    self.write("memory.high", old)
        except OSError as e:
            if e.errno not in (errno.EINTR, errno.EBUSY):
                raise

    def drain(self, pause: float = 0.02) -> None:
        """Flush the per-cpu stocks into the counters: two drains with a pause, so the
        other cpus' queued drains have run."""
        for _ in range(2):
            self.drain_once()
            time.sleep(pause)

    def counters(self) -> dict[str, int | None]:
        """usage and kmem (None where the kernel has no kmem counter)."""
        try:
            km: int | None = self.kmem()
        except KmemUnavailable:
            km = None
        return {"usage": self.usage(), "kmem": km}

    def remove(self, timeout: float = 5.0) -> None:
        """rmdir this cgroup and every directory below it, deepest first.

        The tree on disk is walked, not the list of children we made: a clean-up
        that cut in between a mkdir and its bookkeeping still finds everything.
        Processes still inside (only ever our own forked children) are moved out
        first (``CgroupDriver.parking()``), so the rmdir cannot fail with EBUSY.
        """
        if self.removed:
            return
        self.driver._check_ours(self.path)
        remove_tree(self.driver, self.path, self._move_out, timeout)
        self.removed = True
        for c in self.children:
            c.removed = True

    def _move_out(self, pid: int) -> None:
        try:
            _write(os.path.join(self.driver.parking(), "cgroup.procs"), str(pid))
        except OSError:
            pass  # exited meanwhile

    def __enter__(self) -> "CaseCgroup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def remove_tree(driver: "CgroupDriver", path: str, evict: "Callable[[int], None]",
                timeout: float) -> None:
    """rmdir a cgroup directory and everything below it, deepest first.  Each
    directory's processes are handed to ``evict`` first (move them out, or kill
    them); rmdir's EBUSY (a process still leaving, a dying memcg's css still
    going offline) is retried until ``timeout``."""
    deadline = time.monotonic() + timeout
    for dirpath, _, _ in os.walk(path, topdown=False):
        while True:
            try:
                for pid in _procs(dirpath):
                    evict(pid)
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


class CgroupDriver:
    """Memory-cgroup access for one hierarchy version, rooted at our own cgroup."""

    def __init__(self, version: int, mount: str, own_rel: str) -> None:
        self.version = version
        self.mount = os.path.realpath(mount)
        self.own = os.path.realpath(os.path.join(mount, own_rel.lstrip("/")))
        self._seq = itertools.count()
        self.created: list[CaseCgroup] = []

    def _check_ours(self, path: str) -> None:
        rp = os.path.realpath(path)
        if not rp.startswith(self.own + os.sep):
            raise PermissionError(errno.EPERM, f"refusing to touch {rp}: not below our cgroup {self.own}")

    def _mkdir(self, path: str) -> None:
        self._check_ours(path)
        os.mkdir(path)

    @property
    def self_leaf(self) -> str:
        return os.path.join(self.own, f"pybpfmem-{os.getpid()}-{SELF_LEAF}")

    def parking(self) -> str:
        """Where a process leaving our cgroups goes: the v2 self leaf when we made one
        (the own cgroup then delegates and may hold none), else the own cgroup."""
        return self.self_leaf if os.path.isdir(self.self_leaf) else self.own

    # -- v2 delegation -----------------------------------------------------------------
    def _memory_delegated(self, path: str) -> bool:
        return "memory" in _read(os.path.join(path, "cgroup.subtree_control")).split()

    def delegation_problem(self) -> str | None:
        """Why the memory controller cannot be delegated below the own cgroup (v2), or
        None.  Reads only."""
        if self.version != 2:
            return None
        try:
            if "memory" not in _read(os.path.join(self.own, "cgroup.controllers")).split():
                return (f"cgroup2 at {self.own}: the memory controller is not enabled for it "
                        "(not in its cgroup.controllers)")
            if self._memory_delegated(self.own):
                return None
            if self.own == self.mount:
                return (f"cgroup2 root {self.own}: +memory is not in its cgroup.subtree_control "
                        "(enable it, or run from a delegated cgroup)")
            others = sorted(set(_procs(self.own)) - {os.getpid()})
        except OSError as e:
            return f"cgroup2 at {self.own}: {e.strerror or e}"
        if others:
            return (f"cgroup2 at {self.own}: it holds other processes ({', '.join(map(str, others[:8]))}"
                    f"{', ...' if len(others) > 8 else ''}), so the memory controller cannot be "
                    "enabled for cgroups below it (the no-internal-process rule, "
                    "cgroup_vet_subtree_control_enable()); run in a cgroup of its own, e.g. "
                    "systemd-run --scope -p Delegate=yes ...")
        return None

    def _delegate_memory(self, path: str) -> None:
        """v2: ``+memory`` in ``path``'s cgroup.subtree_control, so its children get
        memory.* files.  ``path`` is a case cgroup of ours (no process) or the own
        cgroup (see the module docstring)."""
        if self.version != 2 or self._memory_delegated(path):
            return
        if os.path.realpath(path) != self.own:
            self._check_ours(path)
            _write(os.path.join(path, "cgroup.subtree_control"), "+memory")
            return
        problem = self.delegation_problem()
        if problem is not None:
            raise OSError(errno.EBUSY, problem)
        if os.getpid() in _procs(self.own):
            os.makedirs(self.self_leaf, exist_ok=True)
            _write(os.path.join(self.self_leaf, "cgroup.procs"), str(os.getpid()))
        _write(os.path.join(self.own, "cgroup.subtree_control"), "+memory")

    def release(self) -> None:
        """Undo the own cgroup's delegation made by ``_delegate_memory`` once nothing of
        ours is below it any more: ``-memory``, back into the own cgroup, the self
        leaf removed.  Left as it is while any other cgroup lives below the own one."""
        leaf = self.self_leaf
        if self.version != 2 or not os.path.isdir(leaf):
            return
        try:
            if any(os.path.isdir(p) and p != leaf
                   for p in (os.path.join(self.own, d) for d in os.listdir(self.own))):
                return
            _write(os.path.join(self.own, "cgroup.subtree_control"), "-memory")
            _write(os.path.join(self.own, "cgroup.procs"), str(os.getpid()))
            os.rmdir(leaf)
        except OSError:
            pass   # busy: the next run's sweep removes the leaf once we are gone

    # -- case cgroups ------------------------------------------------------------------
    def create_case(self, prefix: str = "pybpfmem") -> CaseCgroup:
        """A fresh case cgroup ``<prefix>-<our pid>-<n>`` directly below our own memory
        cgroup (the next free n: several drivers may live in one process).  It is
        listed in ``created`` before the mkdir, so a clean-up that cuts in finds it."""
        self._delegate_memory(self.own)
        while True:
            c = CaseCgroup(self, os.path.join(self.own, f"{prefix}-{os.getpid()}-{next(self._seq)}"))
            self.created.append(c)
            try:
                self._mkdir(c.path)
                return c
            except FileExistsError:   # another driver of this process made that one
                self.created.remove(c)
            except BaseException:
                if not os.path.isdir(c.path):
                    self.created.remove(c)
                raise

    def cleanup(self) -> None:
        """Remove every case cgroup this driver created (idempotent), then undo the
        own cgroup's delegation if nothing of ours is left."""
        errs: list[BaseException] = []
        for c in reversed(self.created):
            try:
                c.remove()
            except OSError as e:
                errs.append(e)
        self.created = [c for c in self.created if not c.removed]
        if errs:
            raise errs[0]
        self.release()

    def leftovers(self, prefix: str = "pybpfmem") -> list[str]:
        """Directories below our cgroup that carry this process's case prefix (the self
        leaf, where this process is, excepted)."""
        tag = f"{prefix}-{os.getpid()}-"
        out = []
        for dirpath, dirnames, _ in os.walk(self.own):
            for d in dirnames:
                p = os.path.join(dirpath, d)
                if d.startswith(tag) and p != self.self_leaf:
                    out.append(p)
        return out


_SELF_RE = re.compile(rf"^pybpfmem-(\d+)-{SELF_LEAF}$")


def detect() -> CgroupDriver:
    """Driver for this host: v1 memory controller if mounted, else cgroup2 with memory.
    On v2, a process in its own self leaf (``pybpfmem-<pid>-self``) has that leaf's
    parent as its own cgroup."""
    version, rel = own_memory_cgroup()
    mount = find_mount(version)
    if mount is None:
        raise OSError(errno.ENOENT, f"no mounted cgroup v{version} hierarchy with the memory controller")
    m = _SELF_RE.match(os.path.basename(rel))
    if version == 2 and m and int(m.group(1)) == os.getpid():
        rel = os.path.dirname(rel)
    d = CgroupDriver(version, mount, rel)
    if version == 2:
        ctrls = _read(os.path.join(d.own, "cgroup.controllers")).split()
        if "memory" not in ctrls:
            raise OSError(errno.ENOENT, f"cgroup2 at {d.own}: memory controller not enabled")
    elif not os.path.exists(os.path.join(d.own, "memory.usage_in_bytes")):
        raise OSError(errno.ENOENT, f"{d.own}: no memory.usage_in_bytes")
    return d

