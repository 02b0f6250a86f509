"""Run a scenario on the live kernel in a forked child inside fresh case cgroups.

A scenario is plain data::

    {"cgroups": {"A": {"limit": None}, "B": {}},      # created below one case root
     "steps": [{"op": "create", "map": "m", "type": "HASH", "key": 4, "value": 64,
                "max": 1000, "flags": 1},
               {"op": "insert", "map": "m", "n": 1000},
               {"op": "move", "cgroup": "B"},
               {"op": "close", "map": "m"}]}

The child starts in the first cgroup listed (or ``"start"``), warms up (so its own
copy-on-write faults and page tables are charged before the first baseline), then for
every step: drains the stocks of every case cgroup, reads the counters, runs the
step, drains again and reads again.  Each step's observation is sent to the parent
as one JSON line as soon as it is known, so a child killed by the OOM killer still
leaves every completed step plus an observation ``{"killed": 9}`` for the step that
was running.

Ops: create, insert (n, start, flags, until_error), delete (n, start), lookup,
close (waits for the deferred free to settle), limit (cgroup, bytes), move (cgroup),
noop, freeze.  Observations: ok/errno, memlock (fdinfo), map_id, count, and per-cgroup
deltas {"kmem": bytes, "usage": bytes}.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import json
import os
import signal
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from ..bpf import uapi as _uapi
from . import bpf as _bpf
from . import cgroupfs

Scenario = dict[str, Any]


@dataclass
class CaseResult:
    steps: list[dict[str, Any]] = field(default_factory=list)
    entry: dict[str, dict[str, int]] = field(default_factory=dict)  # cost of the child entering
    exit_status: int | None = None
    killed_by: int | None = None
    final: dict[str, dict[str, int]] = field(default_factory=dict)  # after the child is gone
    cgroup_version: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "entry": self.entry, "exit_status": self.exit_status,
                "killed_by": self.killed_by, "final": self.final,
                "cgroup_version": self.cgroup_version, "error": self.error}


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


def _settle(cgs: dict[str, cgroupfs.CaseCgroup], timeout: float = 3.0) -> None:
    """Wait until every kmem counter stays put for 3 readings (deferred frees:
    bpf_map_free_deferred() work, RCU callbacks of bpf_mem_alloc)."""
    deadline = time.monotonic() + timeout
    last = None
    same = 0
    while time.monotonic() < deadline:
        for c in cgs.values():
            c.drain(0.005)
        cur = tuple(c.kmem() for c in cgs.values())
        same = same + 1 if cur == last else 0
        if same >= 3:
            return
        last = cur
        time.sleep(0.05)


def _snapshot(cgs: dict[str, cgroupfs.CaseCgroup]) -> dict[str, dict[str, int]]:
    for c in cgs.values():
        c.drain(0.01)
    return {n: c.counters() for n, c in cgs.items()}


def _delta(a: dict[str, dict[str, int]], b: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {n: {k: b[n][k] - a[n][k] for k in a[n]} for n in a}


def _child(scn: Scenario, cgs: dict[str, cgroupfs.CaseCgroup], wfd: int) -> None:
    """Body of the forked child; never returns (os._exit)."""
    import gc
    gc.disable()

    def send(obj: dict[str, Any]) -> None:
        os.write(wfd, (json.dumps(obj) + "\n").encode())

    try:
        if scn.get("cpu") is not None:
            os.sched_setaffinity(0, {int(scn["cpu"])})
        start = scn.get("start") or next(iter(cgs))
        pre = _snapshot(cgs)
        cgs[start].move(os.getpid())
        # Warm-up: touch the code paths and buffers of a full step once.
        m = _bpf.map_create("ARRAY", 4, 8, 1)
        _FastUpdater(m).update(0, 0)
        m.memlock
        m.close()
        _settle(cgs, 1.0)
        send({"entry": _delta(pre, _snapshot(cgs))})
        maps: dict[str, _bpf.BpfMap] = {}
        ups: dict[str, _FastUpdater] = {}
        btfs: dict[tuple[str, int], dict[str, int]] = {}
        for i, st in enumerate(scn["steps"]):
            op = st["op"]
            obs: dict[str, Any] = {"i": i, "op": op, "ok": True, "errno": None}
            send({"begin": i})
            before = _snapshot(cgs)
            try:
                if op == "create":
                    flags = st.get("flags", 0)
                    kw: dict[str, Any] = {}
                    if st.get("inner"):
                        kw["inner_map_fd"] = maps[st["inner"]].fd
                    for k in ("btf_fd", "btf_key_type_id", "btf_value_type_id", "map_extra"):
                        if k in st:
                            kw[k] = st[k]
                    if st.get("btf") == "storage":
                        # one BTF object per child and value size, so repeated creates
                        # measure the map and not a new BTF load each time
                        bk = ("btf", st.get("value", 8))
                        if bk not in btfs:
                            btfs[bk] = _storage_btf(st.get("value", 8))
                        kw.update(btfs[bk])
                    m = _bpf.map_create(st["type"], st.get("key", 4), st.get("value", 8),
                                        st.get("max", 1), flags, **kw)
                    maps[st["map"]] = m
                    ups[st["map"]] = _FastUpdater(m)
                    obs["memlock"] = m.memlock
                    obs["map_id"] = m.info().id
                elif op in ("insert", "delete"):
                    u = ups[st["map"]]
                    n, s0 = st.get("n", 1), st.get("start", 0)
                    done = 0
                    err = None
                    for k in range(s0, s0 + n):
                        err = u.update(k, st.get("flags", 0)) if op == "insert" else u.delete(k)
                        if err is not None:
                            break
                        done += 1
                    obs["count"] = done
                    if err is not None:
                        obs["ok"], obs["errno"] = False, err
                    obs["memlock"] = maps[st["map"]].memlock
                elif op == "close":
                    if st["map"] not in maps:  # its create failed: nothing to close
                        obs["ok"], obs["skipped"] = False, True
                    else:
                        maps.pop(st["map"]).close()
                        ups.pop(st["map"])
                        _settle(cgs, st.get("wait", 3.0))
                elif op == "limit":
                    cgs[st["cgroup"]].set_limit(st.get("bytes"))
                elif op == "move":
                    cgs[st["cgroup"]].move(os.getpid())
                elif op == "freeze":
                    maps[st["map"]].freeze()
                elif op == "lookup":
                    maps[st["map"]].lookup(st.get("k", 0))
                elif op == "settle":
                    _settle(cgs, st.get("wait", 3.0))
                elif op != "noop":
                    raise ValueError(f"unknown op {op!r}")
            except OSError as e:
                obs["ok"], obs["errno"] = False, e.errno
            obs["delta"] = _delta(before, _snapshot(cgs))
            send(obs)
        for m in maps.values():
            m.close()
        os.close(wfd)
        os._exit(0)
    except BaseException as e:  # report, never propagate out of the fork
        try:
            send({"error": f"{type(e).__name__}: {e}"})
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


def run_scenario(scn: Scenario, driver: cgroupfs.CgroupDriver | None = None,
                 timeout: float = 120.0, keep_root: bool = False) -> CaseResult:
    """Run ``scn`` in a forked child; always removes the case cgroups it created."""
    drv = driver or cgroupfs.detect()
    res = CaseResult(cgroup_version=drv.version)
    root = drv.create_case()
    old_int = signal.getsignal(signal.SIGTERM)
    pid = -1
    try:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        cgs: dict[str, cgroupfs.CaseCgroup] = {}
        for name, spec in (scn.get("cgroups") or {"A": {}}).items():
            c = root.mkchild(name)
            if spec and spec.get("limit") is not None:
                c.set_limit(spec["limit"])
            cgs[name] = c
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            _child(scn, cgs, wfd)
        os.close(wfd)
        buf = b""
        deadline = time.monotonic() + timeout
        with os.fdopen(rfd, "rb") as r:
            for line in r:
                buf += line
                if time.monotonic() > deadline:
                    break
        running = None
        for line in buf.decode().splitlines():
            o = json.loads(line)
            if "entry" in o:
                res.entry = o["entry"]
            elif "begin" in o:
                running = o["begin"]
            elif "error" in o:
                res.error = o["error"]
            else:
                res.steps.append(o)
                running = None
        _, status = os.waitpid(pid, 0)
        pid = -1
        if os.WIFSIGNALED(status):
            res.killed_by = os.WTERMSIG(status)
            if running is not None:
                st = scn["steps"][running]
                res.steps.append({"i": running, "op": st["op"], "ok": False, "errno": None,
                                  "killed": res.killed_by})
        else:
            res.exit_status = os.WEXITSTATUS(status)
        _settle(cgs, 3.0)
        res.final = {n: c.counters() for n, c in cgs.items()}
        res.final["_root"] = root.counters()
        return res
    finally:
        if pid > 0:  # interrupted while the child runs: stop and reap it
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
        signal.signal(signal.SIGTERM, old_int)
        if not keep_root:
            root.remove()
            drv.created = [c for c in drv.created if c is not root]


def refusal_reason() -> str | None:
    """Why the live kernel cannot be used here, or None when it can.

    Checks, in order: root (bpf() map creation and cgroupfs writes need it), the
    memory controller, bpf() itself (a 1-entry ARRAY create: ENOSYS = no bpf(),
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
