"""Run a scenario on the live kernel: a forked child in fresh case cgroups, measured
from outside.

A scenario is plain data::

    {"cgroups": {"A": {"limit": None}, "B": {}},      # created below one case root
     "cpu": 0,                                         # pin the child (optional)
     "steps": [{"op": "create", "map": "m", "type": "HASH", "key": 4, "value": 64,
                "max": 1000, "flags": 1},
               {"op": "insert", "map": "m", "n": 1000},
               {"op": "move", "cgroup": "B"},
               {"op": "close", "map": "m"}]}

The task "is" in the first cgroup listed (or ``"start"``) until a ``move`` step.
Ops: create, insert (n, start, flags), delete (n, start), lookup, freeze, close
(then waits for the deferred free to settle), limit (cgroup, bytes), rlimit (bytes:
the child's soft RLIMIT_MEMLOCK), move (cgroup), settle, noop.  Every step yields an observation: i, op, cgroup (where it ran),
ok/errno, memlock and map_id (fdinfo), count, and per-cgroup deltas
``{"kmem": bytes, "usage": bytes}``; a child killed inside a step (memcg OOM) ends
the run with ``{"killed": signal}`` for that step.

How a step is measured, and why (docs/fidelity.md, "What the extra page was"):

* **Only the step's own kernel objects land in the case cgroups.**  The child
  lives in a home cgroup beside them and moves itself into the step's cgroup for
  the step's syscalls only (_Mover): the Python around them, whose heap growth
  faults user pages, runs at home.  We read the counters, the child never does:
  our reads' own struct file, seq_file buffer and kernfs dentries/inodes are
  charged to our cgroup.  fdinfo (memlock, map_id) is read by us through
  /proc/<child>/fdinfo/<fd>, so its proc dentries and inodes are ours too.  The
  child forks nothing (pybpfmem.live.bpf takes libc from dlopen(NULL):
  ctypes.util.find_library() forks /sbin/ldconfig).
* **Every reading is canonical** (``Probe.snapshot``).  Slab objects are charged
  by the byte through the object stock, so a cgroup's kmem counter is the bytes of
  its live objects plus a remainder: the current cpu's obj stock bytes and the
  sub-page leftovers drain_obj_stock() parked in obj_cgroup->nr_charged_bytes.
  Those leftovers add up across cpus (a map freed by a kworker on the other cpu)
  to whole pages that stay charged until refill_obj_stock() adopts them.  Before
  each reading the child, at home, allocates and frees one object (its cpu's stock
  switches away: drain_obj_stock()), the cgroups are drained (force_empty:
  drain_all_stock(), the other cpus by queued work), and in each case cgroup the
  child allocates and frees one object once more (refill_obj_stock() adopts the
  parked bytes and uncharges their whole pages).  The reading is then
  PAGE_ALIGN(bytes of live objects) + pages, which depends on nothing but the
  objects — the model's number for the same steps.
* **cgroup v2** (cgroupfs.py): the drains write memory.high instead of
  memory.force_empty (the same drain_all_stock()), and ``kmem`` is memory.stat's
  ``kernel``, which is only as new as the last rstat flush.  So a v2 reading first
  forces one (``Probe.flush_stats``): the child takes read faults on never-touched
  pages of an anonymous mapping in a ``_flush`` cgroup beside the case cgroups
  (each maps the shared zero page: no charge, one PGFAULT event for its memcg,
  mm_account_fault()), enough of them to take the case root over the flush
  threshold (memcg_rstat_updated(): MEMCG_CHARGE_BATCH x online cpus pending
  updates); reading the case root's memory.stat then flushes its whole subtree
  (mem_cgroup_flush_stats() -> css_rstat_flush(); 6.1: the global threshold and a
  flush of every memcg).  ``_flush``'s pgfault count showing those faults proves
  the flush came after them; if it does not (a kernel with other rules), the
  reading waits for the periodic flush (flush_memcg_stats_dwork(), every 2 s).
  Where v2 has no ``kernel`` (before v5.18), ``kmem`` is None and nothing is
  flushed: memory.current is a page_counter, exact as soon as it is drained.
* **RLIMIT_MEMLOCK**: the child raises it to RLIM_INFINITY first, as libbpf's
  bump_rlimit_memlock() does on kernels that charge maps to it (5.10: the 64 KiB
  default would refuse most maps with EPERM); the model's task gets the same.
* **A failed create**: the steps that name its map (insert, delete, lookup,
  freeze, close) are reported ``skipped`` instead of run.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import json
import mmap
import os
import resource
import select
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from ..bpf import uapi as _uapi
from . import bpf as _bpf
from . import cgroupfs
from .session import LiveSession

Scenario = dict[str, Any]
HOME = "_home"
#: ops the child runs (with the task in the step's cgroup); the rest are ours
CHILD_OPS = frozenset({"create", "insert", "delete", "lookup", "freeze", "close", "rlimit",
                       "noop"})
#: the adopt step charges up to a page (plus a page-stock batch) in the case cgroup;
#: skip it where that could hit the cgroup's limit
ADOPT_MARGIN = (cgroupfs.MEMCG_CHARGE_BATCH + 2) * 4096
#: the v2 flush witness: never-touched pages of a PROT_READ anonymous mapping, one
#: 2 MiB chunk after another (the chunk's first page is read at home, so the page
#: table is allocated -- and charged -- there, not in the _flush cgroup)
FLUSH = "_flush"
WITNESS_CHUNK = 2 << 20
WITNESS_CHUNKS = 128
MADV_NOHUGEPAGE = 15
#: how long a v2 reading waits for a stats flush before it gives up
FLUSH_TIMEOUT = 8.0


@dataclass
class CaseResult:
    steps: list[dict[str, Any]] = field(default_factory=list)
    entry: dict[str, dict[str, int]] = field(default_factory=dict)  # before the first step
    exit_status: int | None = None
    killed_by: int | None = None
    final: dict[str, dict[str, int]] = field(default_factory=dict)  # after the child is gone
    cgroup_version: int = 0
    error: str | None = None
    #: v2: seconds each reading waited for its stats flush (0.0: the forced one showed)
    flush_waits: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "entry": self.entry, "exit_status": self.exit_status,
                "killed_by": self.killed_by, "final": self.final,
                "cgroup_version": self.cgroup_version, "error": self.error,
                "flush_waits": self.flush_waits}


class _FastUpdater:
    """Reusable buffers for many BPF_MAP_UPDATE_ELEM calls (keeps the child's own
    allocations out of the measured window)."""

    def __init__(self, m: _bpf.BpfMap) -> None:
        self.m = m
        self.key = ctypes.create_string_buffer(max(m.key_size, 8))
        self.val = ctypes.create_string_buffer(max(m.io_value_size, 8))
        self.attr = ctypes.create_string_buffer(32)
        self.sys = m._sys
        # field offsets of the element-command attr, from the shared uapi layout
        self.off = {name: off for name, off, _ in _uapi.ELEM_LAYOUT}

    def _call(self, cmd: int, k: int, with_val: bool, flags: int) -> int | None:
        ks = self.m.key_size
        # keys are little-endian integers, big-endian for LPM (prefixlen u32 + data)
        if self.m.map_type == _bpf.MAP_TYPES["LPM_TRIE"]:
            data = k.to_bytes(ks - 4, "big")
            ctypes.memmove(self.key, struct.pack("<I", (ks - 4) * 8) + data, ks)
        elif ks:
            ctypes.memmove(self.key, (k % (1 << (8 * ks))).to_bytes(ks, "little"), ks)
        o = self.off
        struct.pack_into("<I", self.attr, o["map_fd"], self.m.fd)
        struct.pack_into("<Q", self.attr, o["key"], ctypes.addressof(self.key) if ks else 0)
        struct.pack_into("<Q", self.attr, o["value"], ctypes.addressof(self.val) if with_val else 0)
        struct.pack_into("<Q", self.attr, o["flags"], flags)
        ret = self.sys.libc.syscall(ctypes.c_long(self.sys.nr), ctypes.c_int(cmd), self.attr,
                                    ctypes.c_uint(32))
        return ctypes.get_errno() if ret < 0 else None

    def update(self, k: int, flags: int) -> int | None:
        return self._call(_bpf.BPF_MAP_UPDATE_ELEM, k, True, flags)

    def delete(self, k: int) -> int | None:
        return self._call(_bpf.BPF_MAP_DELETE_ELEM, k, False, 0)


# ------------------------------------------------------------------ counters
def drain(cgs: list[cgroupfs.CaseCgroup], pause: float = 0.02) -> None:
    """drain_all_stock() of every cgroup, twice (it drains the writer's cpu at once
    and queues the others' drains; the second pass and the pauses let those run):
    v1 memory.force_empty, v2 memory.high (cgroupfs.py)."""
    for _ in range(2):
        for c in cgs:
            c.drain_once()
        time.sleep(pause)


def _settling(c: cgroupfs.CaseCgroup) -> int:
    """The counter settle() watches: v1 kmem; v2 memory.current, which unlike the
    stat needs no flush to move."""
    return c.kmem() if c.driver.version == 1 else c.usage()


def settle(cgs: dict[str, cgroupfs.CaseCgroup], timeout: float = 3.0) -> None:
    """Wait until every cgroup's charge stays put for 3 readings (deferred frees:
    bpf_map_free_deferred() work, RCU callbacks of bpf_mem_alloc and of dentries)."""
    deadline = time.monotonic() + timeout
    last = None
    same = 0
    while time.monotonic() < deadline:
        drain(list(cgs.values()), 0.005)
        cur = tuple(_settling(c) for c in cgs.values())
        same = same + 1 if cur == last else 0
        if same >= 3:
            return
        last = cur
        time.sleep(0.05)


def _delta(a: dict[str, dict[str, int | None]], b: dict[str, dict[str, int | None]]
           ) -> dict[str, dict[str, int | None]]:
    """b - a per cgroup and counter; None where a counter is unavailable (v2 kmem
    before v5.18)."""
    def sub(x: int | None, y: int | None) -> int | None:
        return None if x is None or y is None else y - x
    return {n: {k: sub(a[n][k], b[n][k]) for k in a[n]} for n in a}


def read_fdinfo(pid: int, fd: int) -> dict[str, str]:
    """/proc/<pid>/fdinfo/<fd> read by us (its proc dentries and our struct file are
    charged to our cgroup, not to the child's)."""
    return _bpf.fdinfo(fd, pid)


# ------------------------------------------------------------------ the child
class _Mover:
    """The child moves itself: ``enter(procs)`` writes its pid to a cgroup.procs
    opened while still at home; ``leave()`` writes it to home's cgroup.procs,
    opened once at the start.  Neither allocates anything in the case cgroup (a
    struct file opened there could need a page at its limit).  Only the syscalls
    of a step run in the case cgroup; the Python around them (its heap growth
    faults user pages) stays at home."""

    def __init__(self, home_procs: str) -> None:
        self.me = str(os.getpid()).encode()
        self.home = os.open(home_procs, os.O_WRONLY)

    def enter(self, procs: str | None) -> None:
        if procs is not None:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, self.me)
            finally:
                os.close(fd)

    def leave(self, procs: str | None) -> None:
        if procs is not None:
            os.write(self.home, self.me)


def bump_memlock_rlimit() -> int:
    """Raise RLIMIT_MEMLOCK as libbpf's bump_rlimit_memlock() does (kernels that
    charge maps to it, 5.10, refuse most maps under the 64 KiB default): to
    RLIM_INFINITY, or without CAP_SYS_RESOURCE the soft limit up to the hard one.
    Returns the soft limit now in force, in bytes (RLIM_INFINITY as the uapi's
    2^64 - 1).  The same call gives the same answer in a forked child."""
    inf = resource.RLIM_INFINITY
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (inf, inf))
    except (ValueError, OSError):
        hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (hard, hard))
    from .host import memlock_rlimit
    return memlock_rlimit()


class _Witness:
    """The child's flush witness pages (see the module docstring): a PROT_READ,
    MAP_NORESERVE anonymous mapping without THP, whose chunks are spent one by one."""

    def __init__(self, libc: Any) -> None:
        self.libc = libc
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        size = WITNESS_CHUNK * WITNESS_CHUNKS
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0x4000)
        addr = libc.mmap(None, size, mmap.PROT_READ, flags, -1, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap of the flush witness pages")
        self.addr = int(addr)
        libc.madvise(ctypes.c_void_p(self.addr), ctypes.c_size_t(size), MADV_NOHUGEPAGE)
        self.buf = ctypes.create_string_buffer(WITNESS_CHUNK)   # written now, at home
        self.next = 0
        for i in range(WITNESS_CHUNKS):   # the page tables, at home
            ctypes.string_at(self.addr + i * WITNESS_CHUNK, 1)

    def fault(self, pages: int) -> int:
        """Read ``pages`` never-read pages (fewer when the mapping is spent)."""
        done = 0
        per = WITNESS_CHUNK // mmap.PAGESIZE - 1
        while done < pages and self.next < WITNESS_CHUNKS:
            n = min(per, pages - done)
            base = self.addr + self.next * WITNESS_CHUNK + mmap.PAGESIZE
            ctypes.memmove(self.buf, base, n * mmap.PAGESIZE)
            self.next += 1
            done += n
        return done


class _InCgroupSys:
    """A libc handle for one call whose syscall() runs with the task in a cgroup."""

    def __init__(self, real: Any, mover: _Mover, procs: str | None) -> None:
        self.real, self.mover, self.procs, self.nr = real, mover, procs, real.nr
        self.libc = self

    def syscall(self, *args: Any) -> int:
        self.mover.enter(self.procs)
        try:
            return int(self.real.libc.syscall(*args))
        finally:
            self.mover.leave(self.procs)


def _child_main(cmd_fd: int, res_fd: int, cpu: int | None, home_procs: str) -> None:
    """Body of the forked child: one JSON request per line in, one reply out.
    ``cg`` in a request is the cgroup.procs to run its syscalls in.  Never
    returns (os._exit)."""
    import gc
    gc.disable()
    # what we inherited beyond the pipes (a map fd of the parent's among them) is not
    # the child's: closed, as subprocess's close_fds does
    for fd in [int(x) for x in os.listdir("/proc/self/fd")]:
        if fd > 2 and fd not in (cmd_fd, res_fd):
            try:
                os.close(fd)
            except OSError:
                pass
    maps: dict[str, _bpf.BpfMap] = {}
    ups: dict[str, _FastUpdater] = {}
    btfs: dict[int, dict[str, int]] = {}
    mover = _Mover(home_procs)
    sysh = _bpf._libc()
    witness: _Witness | None = None

    def touch() -> None:
        # one accounted object allocated and freed: the struct file of /dev/null
        os.close(os.open("/dev/null", os.O_RDONLY))

    try:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        bump_memlock_rlimit()
        while True:
            # one request per write (< PIPE_BUF: atomic), and we wait for each reply
            line = os.read(cmd_fd, 65536)
            if not line:
                break
            st = json.loads(line)
            op, cg = st["op"], st.get("cg")
            out: dict[str, Any] = {"ok": True, "errno": None}
            try:
                if op == "touch":
                    mover.enter(cg)
                    try:
                        touch()
                    finally:
                        mover.leave(cg)
                elif op == "warmup":
                    # the fd table grows to 256 slots now, at home: a create that needed
                    # a bigger one (expand_files() -> alloc_fdtable(), GFP_KERNEL_ACCOUNT)
                    # would charge it to the case cgroup, and it is never given back
                    lim = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
                    os.close(os.dup2(0, min(255, lim - 1)))
                    # the code paths and buffers of a full step, once, at home
                    m = _bpf.map_create("ARRAY", 4, 8, 1, sys=_InCgroupSys(sysh, mover, None))
                    _FastUpdater(m).update(0, 0)
                    _FastUpdater(m).delete(0)
                    m.lookup(0)
                    m.close()
                    touch()
                elif op == "fault":
                    if witness is None:
                        witness = _Witness(sysh.libc)   # at home
                    mover.enter(cg)
                    try:
                        out["count"] = witness.fault(int(st["n"]))
                    finally:
                        mover.leave(cg)
                elif op == "btf":
                    v = int(st["value"])
                    if v not in btfs:
                        btfs[v] = _storage_btf(v)
                elif op == "create":
                    kw: dict[str, Any] = {}
                    if st.get("inner"):
                        kw["inner_map_fd"] = maps[st["inner"]].fd
                    for k in ("btf_fd", "btf_key_type_id", "btf_value_type_id", "map_extra"):
                        if k in st:
                            kw[k] = st[k]
                    if st.get("btf") == "storage":
                        kw.update(btfs[int(st.get("value", 8))])
                    m = _bpf.map_create(st["type"], st.get("key", 4), st.get("value", 8),
                                        st.get("max", 1), st.get("flags", 0),
                                        sys=_InCgroupSys(sysh, mover, cg), **kw)
                    m._sys = sysh
                    maps[st["map"]] = m
                    ups[st["map"]] = _FastUpdater(m)
                    out["fd"] = m.fd
                elif op in ("insert", "delete", "close", "freeze", "lookup") \
                        and st["map"] not in maps:   # its create failed: nothing to do
                    out["ok"], out["skipped"] = False, True
                elif op in ("insert", "delete"):
                    u = ups[st["map"]]
                    n, s0, fl = st.get("n", 1), st.get("start", 0), st.get("flags", 0)
                    done = 0
                    mover.enter(cg)
                    try:
                        for k in range(s0, s0 + n):
                            err = u.update(k, fl) if op == "insert" else u.delete(k)
                            if err is not None:
                                out["ok"], out["errno"] = False, err
                                break
                            done += 1
                    finally:
                        mover.leave(cg)
                    out["count"] = done
                    out["fd"] = maps[st["map"]].fd
                elif op == "close":
                    m = maps.pop(st["map"])
                    ups.pop(st["map"])
                    mover.enter(cg)
                    try:
                        m.close()
                    finally:
                        mover.leave(cg)
                elif op == "rlimit":
                    # the soft RLIMIT_MEMLOCK that bpf_charge_memlock() (5.10) checks
                    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
                    resource.setrlimit(resource.RLIMIT_MEMLOCK, (int(st["bytes"]), hard))
                elif op in ("freeze", "lookup"):
                    m = maps[st["map"]]
                    m._sys = _InCgroupSys(sysh, mover, cg)
                    try:
                        m.freeze() if op == "freeze" else m.lookup(st.get("k", 0))
                    finally:
                        m._sys = sysh
                elif op != "noop":
                    raise ValueError(f"unknown op {op!r}")
            except OSError as e:
                out["ok"], out["errno"] = False, e.errno
            os.write(res_fd, (json.dumps(out) + "\n").encode())
        os._exit(0)
    except BaseException as e:  # report, never propagate out of the fork
        try:
            os.write(res_fd, (json.dumps({"error": f"{type(e).__name__}: {e}"}) + "\n").encode())
        finally:
            os._exit(3)


def _storage_btf(value_size: int) -> dict[str, int]:
    """BTF for the local-storage maps: key int, value a struct of value_size bytes."""
    from ..btf import BtfBuilder
    b = BtfBuilder()
    t_int = b.int_("int", 4, signed=True)
    t_u8 = b.int_("char", 1)
    t_arr = b.array(t_u8, t_int, value_size)
    t_val = b.struct("val", value_size, [("data", t_arr, 0)])
    fd = _bpf.btf_load(b.build())
    return {"btf_fd": fd, "btf_key_type_id": t_int, "btf_value_type_id": t_val}


def _subgroup(root: cgroupfs.CaseCgroup, name: str) -> cgroupfs.CaseCgroup:
    """``root``'s child ``name``, made if it is not there yet."""
    for c in root.children:
        if os.path.basename(c.path) == name:
            return c
    return root.mkchild(name)


class ChildGone(Exception):
    """The child died (memcg OOM kill, a signal) or stopped answering."""


class Probe:
    """Our side of one scenario's child: starts it at home, sends it steps, reads
    the counters."""

    def __init__(self, session: LiveSession, root: cgroupfs.CaseCgroup,
                 cgs: dict[str, cgroupfs.CaseCgroup], cpu: int | None,
                 limits: dict[str, int | None], deadline: float,
                 aux: cgroupfs.CaseCgroup | None = None) -> None:
        """``aux``: where the child's home and the v2 flush cgroup go (default: below
        ``root``, beside the case cgroups; another scratch cgroup keeps ``root``'s own
        counters free of them, memcg creation charges included)."""
        self.session, self.root, self.cgs, self.limits = session, root, cgs, limits
        parent = aux if aux is not None else root
        self.home = _subgroup(parent, HOME)
        self.deadline = deadline
        # v2 with a 'kernel' stat: readings flush the stats first (flush_stats), by
        # reading memory.stat of a common ancestor of the flush and case cgroups
        self.flushw = _subgroup(parent, FLUSH) \
            if root.driver.version == 2 and root.has_kmem() else None
        self.flush_at = root.path if aux is None else root.driver.own
        self.witness_seen = 0
        self.flush_waits: list[float] = []
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        pid = session.fork()
        if pid == 0:
            os.close(cmd_w)
            os.close(res_r)
            _child_main(cmd_r, res_w, cpu, self.home.file("cgroup.procs"))
        os.close(cmd_r)
        os.close(res_w)
        self.pid, self.cmd_w, self.res_r = pid, cmd_w, res_r
        self._buf = b""
        self.home.move(pid)

    def close(self, kill: bool = False) -> int | None:
        """Ends the child (EOF on its command pipe; SIGKILL when ``kill``) and returns
        its wait status."""
        for fd in (self.cmd_w, self.res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        status = None
        if kill:
            return self.session.reap(self.pid, kill=True)
        if self.pid in self.session.children:
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                p, status = os.waitpid(self.pid, os.WNOHANG)
                if p:
                    self.session.children.remove(self.pid)
                    return status
                time.sleep(0.01)
            status = self.session.reap(self.pid, kill=True)
        return status

    def call(self, req: dict[str, Any]) -> dict[str, Any]:
        os.write(self.cmd_w, (json.dumps(req) + "\n").encode())
        while b"\n" not in self._buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ChildGone("timeout")
            r, _, _ = select.select([self.res_r], [], [], left)
            if not r:
                continue
            chunk = os.read(self.res_r, 65536)
            if not chunk:
                raise ChildGone("EOF")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        out = json.loads(line)
        if "error" in out:
            raise RuntimeError(f"live child: {out['error']}")
        return out

    def run_in(self, cg: cgroupfs.CaseCgroup, req: dict[str, Any]) -> dict[str, Any]:
        """The child runs ``req`` with the task in ``cg`` for the request's syscalls."""
        return self.call(dict(req, cg=cg.file("cgroup.procs")))

    def counters(self) -> dict[str, dict[str, int | None]]:
        return {n: c.counters() for n, c in self.cgs.items()}

    def flush_stats(self) -> None:
        """v2: make memory.stat of every case cgroup current (see the module
        docstring): witness faults in _flush, then the case root's memory.stat read
        until _flush's pgfault shows them.  Raises if no flush shows them in time."""
        w = self.flushw
        if w is None:
            return
        pages = cgroupfs.MEMCG_CHARGE_BATCH * (2 * (os.cpu_count() or 1) + 2)
        done = int(self.run_in(w, {"op": "fault", "n": pages}).get("count") or 0)
        if done < pages:
            raise RuntimeError(f"flush witness: only {done} of {pages} pages left to fault")
        target = self.witness_seen + done
        t0 = time.monotonic()
        while True:
            cgroupfs.parse_stat(cgroupfs._read(os.path.join(self.flush_at, "memory.stat")))
            # (over the threshold: that read flushed the subtree)
            seen = w.stat().get("pgfault", 0)
            if seen >= target:
                self.witness_seen = seen
                self.flush_waits.append(round(time.monotonic() - t0, 3))
                return
            if time.monotonic() - t0 > FLUSH_TIMEOUT:
                raise RuntimeError(f"memory.stat not flushed within {FLUSH_TIMEOUT:.0f} s: "
                                   f"{w.path} pgfault {seen}, expected >= {target}")
            time.sleep(0.05)

    def snapshot(self, extra: dict[str, cgroupfs.CaseCgroup] | None = None
                 ) -> dict[str, dict[str, int | None]]:
        """Canonical counters of every case cgroup (see the module docstring), and of
        the ``extra`` cgroups, which are drained and read but never entered (the
        case root: on v2 it may hold no process)."""
        cgs = list(self.cgs.values()) + list((extra or {}).values())
        self.call({"op": "touch"})              # at home: drain_obj_stock() on its cpu
        drain(cgs)                              # drain_all_stock(): the other cpus
        for name, c in self.cgs.items():
            lim = self.limits.get(name)
            if lim is not None and c.usage() + ADOPT_MARGIN > lim:
                continue
            self.run_in(c, {"op": "touch"})     # refill_obj_stock() adopts nr_charged_bytes
            self.call({"op": "touch"})          # and parks the new remainder (< a page)
        drain(cgs)                              # the page stock those charges filled
        self.flush_stats()                      # v2: memory.stat up to date
        return {**self.counters(), **{n: c.counters() for n, c in (extra or {}).items()}}


def run_scenario(scn: Scenario, driver: cgroupfs.CgroupDriver | None = None,
                 timeout: float = 120.0, session: LiveSession | None = None) -> CaseResult:
    """Run ``scn`` in a forked child; its case cgroups are removed again, also when
    interrupted (a LiveSession of our own unless one is given)."""
    if session is None:
        with LiveSession(driver) as s:
            return run_scenario(scn, timeout=timeout, session=s)
    drv = session.driver
    res = CaseResult(cgroup_version=drv.version)
    root = session.case()
    probe: Probe | None = None
    try:
        cgs: dict[str, cgroupfs.CaseCgroup] = {}
        limits: dict[str, int | None] = {}
        for name, spec in (scn.get("cgroups") or {"A": {}}).items():
            c = root.mkchild(name)
            limits[name] = spec.get("limit") if spec else None
            if limits[name] is not None:
                c.set_limit(limits[name])
            cgs[name] = c
        cpu = scn.get("cpu")
        probe = Probe(session, root, cgs, None if cpu is None else int(cpu), limits,
                      time.monotonic() + timeout)
        probe.call({"op": "warmup"})
        before = probe.snapshot()
        res.entry = before   # the cgroups were created empty: all of it came before step 0
        where = scn.get("start") or next(iter(cgs))
        for i, st in enumerate(scn["steps"]):
            op = st["op"]
            obs: dict[str, Any] = {"i": i, "op": op, "cgroup": where, "ok": True, "errno": None}
            try:
                if op in CHILD_OPS:
                    if op == "create" and st.get("btf") == "storage":
                        probe.call({"op": "btf", "value": st.get("value", 8)})   # at home
                    out = probe.run_in(cgs[where], st)
                    obs.update({k: v for k, v in out.items() if k != "fd"})
                    if out.get("fd") is not None and op != "close":
                        info = read_fdinfo(probe.pid, out["fd"])
                        obs["memlock"] = int(info["memlock"])
                        if op == "create":
                            obs["map_id"] = int(info["map_id"])
                    if op == "close" and not out.get("skipped"):
                        settle(cgs, st.get("wait", 3.0))
                elif op == "move":
                    where = st["cgroup"]
                    obs["cgroup"] = where
                elif op == "limit":
                    limits[st["cgroup"]] = st.get("bytes")
                    cgs[st["cgroup"]].set_limit(st.get("bytes"))
                elif op == "settle":
                    settle(cgs, st.get("wait", 3.0))
                else:
                    raise ValueError(f"unknown op {op!r}")
            except ChildGone:
                status = probe.close()
                probe = None
                if status is not None and os.WIFSIGNALED(status):
                    res.killed_by = os.WTERMSIG(status)
                elif status is not None:
                    res.exit_status = os.WEXITSTATUS(status)
                obs.update(ok=False, killed=res.killed_by)
                res.steps.append(obs)
                break
            except OSError as e:   # a cgroupfs write of ours (limit)
                obs["ok"], obs["errno"] = False, e.errno
            after = probe.snapshot()
            obs["delta"] = _delta(before, after)
            before = after
            res.steps.append(obs)
        if probe is not None:
            res.flush_waits = probe.flush_waits
            status = probe.close()
            probe = None
            if status is not None:
                if os.WIFSIGNALED(status):
                    res.killed_by = os.WTERMSIG(status)
                else:
                    res.exit_status = os.WEXITSTATUS(status)
        settle(cgs, 3.0)
        # the final reading, canonical like the others: a fresh child at home does
        # the snapshot's touches (and, on v2, the flush witness)
        probe = Probe(session, root, cgs, None if cpu is None else int(cpu), limits,
                      time.monotonic() + timeout)
        res.final = probe.snapshot()
        res.final["_root"] = root.counters()
        res.flush_waits = res.flush_waits + probe.flush_waits
        return res
    except RuntimeError as e:   # the child reported an exception
        res.error = str(e)
        return res
    finally:
        if probe is not None:
            probe.close(kill=True)
        root.remove()
        drv.created = [c for c in drv.created if c is not root]


def refusal_reason() -> str | None:
    """Why the live kernel cannot be used here, or None when it can.

    Checks, in order: root (bpf() map creation and cgroupfs writes need it), the
    memory controller (on v2: that it can be delegated below our own cgroup,
    cgroupfs.CgroupDriver.delegation_problem()), bpf() itself (a 1-entry ARRAY create: ENOSYS = no bpf(),
    EPERM = unprivileged_bpf_disabled or an LSM, as map_create() checks).
    """
    if os.geteuid() != 0:
        return "not root: live cases need CAP_SYS_ADMIN/CAP_BPF and cgroupfs write access (euid %d)" % os.geteuid()
    try:
        drv = cgroupfs.detect()
    except OSError as e:
        return f"no memory controller: {e.strerror or e}"
    if not os.access(drv.own, os.W_OK):
        return f"memory cgroup {drv.own} is not writable"
    problem = drv.delegation_problem()
    if problem is not None:
        return problem
    try:
        _bpf.map_create("ARRAY", 4, 4, 1).close()
    except OSError as e:
        if e.errno == _errno.ENOSYS:
            return "no bpf(): the kernel returns ENOSYS (CONFIG_BPF_SYSCALL off)"
        if e.errno == _errno.EPERM:
            try:
                with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
                    v = f.read().strip()
            except OSError:
                v = "?"
            return f"bpf(BPF_MAP_CREATE) refused with EPERM (kernel.unprivileged_bpf_disabled={v})"
        return f"bpf(BPF_MAP_CREATE) failed: {e}"
    return None
