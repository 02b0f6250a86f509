"""Memory-cgroup drivers for cgroup v1 and v2, detected at run time.

Safety contract: every cgroup this module creates lies strictly below the calling
process's own memory cgroup (read from /proc/self/cgroup), and every cgroup it
creates is removed again by ``CaseCgroup.remove()`` / the context manager, also on
exceptions and KeyboardInterrupt.  No other cgroup is ever written.

Counters (all in bytes):
* v1: ``memory.usage_in_bytes`` (page_counter ``memory``, includes the per-cpu page
  stock's pre-charged pages, see refill_stock(), mm/memcontrol.c) and
  ``memory.kmem.usage_in_bytes`` (page_counter ``kmem``; charged by
  memcg_account_kmem() only for pages really handed to kernel objects, so the page
  stock never shows in it; only the obj stock's sub-page remainder does).
* v2: ``memory.current`` (like v1 usage) and ``memory.stat`` ``kernel`` (MEMCG_KMEM,
  the same quantity as the v1 kmem counter, in bytes).

Draining stocks: v1 ``memory.force_empty`` runs mem_cgroup_force_empty()
(mm/memcontrol-v1.c): lru_add_drain_all(), drain_all_stock(memcg) and then a
reclaim loop (page cache and reclaimable slab such as dentries are reclaimed too).
drain_all_stock() drains the current CPU synchronously and others through
queued work, so ``drain()`` writes it twice with a short pause.  v2 has no
force_empty; drain() there is a no-op and readers use the stock-free ``kernel``
stat; ``memory.current`` may then carry up to MEMCG_CHARGE_BATCH (64) pages per
CPU of stock slack, which ``stock_slack_bytes()`` reports.
"""
from __future__ import annotations

import errno
import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

MEMCG_CHARGE_BATCH = 64  # pages, include/linux/memcontrol.h


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
        c = CaseCgroup(self.driver, os.path.join(self.path, name))
        self.driver._mkdir(c.path)
        self.children.append(c)
        return c

    def move(self, pid: int) -> None:
        """Put ``pid`` (a process we forked) into this cgroup."""
        self.write("cgroup.procs", str(pid))

    def procs(self) -> list[int]:
        return [int(x) for x in self.read("cgroup.procs").split()]

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
        """Kernel-memory charge in bytes (v1 kmem counter, v2 memory.stat ``kernel``)."""
        if self.driver.version == 1:
            return int(self.read("memory.kmem.usage_in_bytes"))
        return self.stat().get("kernel", 0)

    def stat(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for line in self.read("memory.stat").splitlines():
            k, _, v = line.partition(" ")
            if v.strip().lstrip("-").isdigit():
                out[k] = int(v)
        return out

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

    def force_empty(self) -> None:
        """One write of v1 memory.force_empty (mem_cgroup_force_empty(),
        mm/memcontrol-v1.c): lru_add_drain_all(); drain_all_stock(memcg), which
        drains the writer's cpu at once and only queues work for the other cpus (and
        does nothing while another drain holds percpu_charge_mutex); then reclaim
        rounds while usage > 0.  It does not touch obj_cgroup->nr_charged_bytes.
        No-op on v2."""
        if self.driver.version != 1:
            return
        try:
            self.write("memory.force_empty", "0")
        except OSError as e:  # EINTR from a pending signal, EBUSY: nothing left to do
            if e.errno not in (errno.EINTR, errno.EBUSY):
                raise

    def drain(self, pause: float = 0.02) -> None:
        """Flush per-cpu stocks into the counters: force_empty twice with a pause,
        so the queued remote drains have run."""
        for _ in range(2):
            self.force_empty()
            time.sleep(pause)

    def stock_slack_bytes(self, ncpus: int, page_size: int = 4096) -> int:
        """Upper bound of un-drained stock inside usage(): 0 on v1 after drain()."""
        if self.driver.version == 1:
            return 0
        return ncpus * (MEMCG_CHARGE_BATCH + 1) * page_size

    def counters(self) -> dict[str, int]:
        return {"usage": self.usage(), "kmem": self.kmem()}

    def remove(self, timeout: float = 5.0) -> None:
        """rmdir this cgroup and every directory below it, deepest first.

        The tree on disk is walked, not the list of children we made: a clean-up
        that cut in between a mkdir and its bookkeeping still finds everything.
        Processes still inside (only ever our own forked children) are moved to our
        own cgroup first so the rmdir cannot fail with EBUSY.
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
            _write(os.path.join(self.driver.own, "cgroup.procs"), str(pid))
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
                for pid in CaseCgroup(driver, dirpath).procs():
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
        self.mount = mount
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
        if self.version == 2:
            # Children of the case need the memory controller delegated to them.
            try:
                _write(os.path.join(path, "cgroup.subtree_control"), "+memory")
            except OSError:
                pass

    def create_case(self, prefix: str = "pybpfmem") -> CaseCgroup:
        """A fresh case cgroup ``<prefix>-<our pid>-<n>`` directly below our own memory
        cgroup (the next free n: several drivers may live in one process).  It is
        listed in ``created`` before the mkdir, so a clean-up that cuts in finds it."""
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
        """Remove every case cgroup this driver created (idempotent)."""
        errs: list[BaseException] = []
        for c in reversed(self.created):
            try:
                c.remove()
            except OSError as e:
                errs.append(e)
        self.created = [c for c in self.created if not c.removed]
        if errs:
            raise errs[0]

    def leftovers(self, prefix: str = "pybpfmem") -> list[str]:
        """Directories below our cgroup that carry this process's case prefix."""
        tag = f"{prefix}-{os.getpid()}-"
        out = []
        for dirpath, dirnames, _ in os.walk(self.own):
            for d in dirnames:
                if d.startswith(tag):
                    out.append(os.path.join(dirpath, d))
        return out

    @property
    def has_kmem_counter(self) -> bool:
        if self.version == 1:
            return os.path.exists(os.path.join(self.own, "memory.kmem.usage_in_bytes"))
        return True


def detect() -> CgroupDriver:
    """Driver for this host: v1 memory controller if mounted, else cgroup2 with memory."""
    version, rel = own_memory_cgroup()
    mount = find_mount(version)
    if mount is None:
        raise OSError(errno.ENOENT, f"no mounted cgroup v{version} hierarchy with the memory controller")
    d = CgroupDriver(version, mount, rel)
    if version == 2:
        ctrls = _read(os.path.join(d.own, "cgroup.controllers")).split()
        if "memory" not in ctrls:
            raise OSError(errno.ENOENT, f"cgroup2 at {d.own}: memory controller not enabled")
    elif not os.path.exists(os.path.join(d.own, "memory.usage_in_bytes")):
        raise OSError(errno.ENOENT, f"{d.own}: no memory.usage_in_bytes")
    return d


def walk(root: str) -> Iterator[str]:
    for dirpath, _, _ in os.walk(root):
        yield dirpath
