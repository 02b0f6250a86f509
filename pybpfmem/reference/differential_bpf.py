"""The BPF-level state machine: random map lifetimes across tasks, cgroups, interrupt
context and profiles, checked by invariants and a teardown baseline (no reference model).

Rules: mkdir/rmdir/limit writes, task spawn/migrate/exit and RLIMIT_MEMLOCK, map
create (hash family, arrays, per-cpu, LRU, no-prealloc), update/delete from a task
and from interrupt context (the bpf_map_update_elem() helper: charged to map->memcg
in 5.11+), batches, close, pin/unpin, BPF_OBJ_GET, stock drains.

After every step: system.check(), no negative counter or statistic, and a failed
operation, once the stocks are drained, leaves no usage or statistic above where it
was (max/oom events may rise).  Teardown: every task exits (closing
its fds and freeing its kernel stack), every pin is unlinked, deferred frees run, every
cgroup is removed (the structures mem_cgroup_alloc() charged to its parent go), every stock
is drained; then every statistic of the root is 0, a removed cgroup still held holds at
most the pages parked in objcg->nr_charged_bytes (returned by obj_cgroup_release()), and
every user's locked_vm (5.10) is 0.

A failing run prints as a replayable script (``from pybpfmem.reference.differential_bpf
import Bpf_5_10``; ``state = Bpf_5_10()``; ``state.map_create(...)``...).
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import pybpfmem
from pybpfmem.bpf import uapi as U

from .fuzzing import StepStats, counted

PS = 4096
MAX_CGROUPS = 6
MAP_KINDS = {
    "hash": (U.BPF_MAP_TYPE_HASH, 0),
    "hash_noprealloc": (U.BPF_MAP_TYPE_HASH, U.BPF_F_NO_PREALLOC),
    "percpu_hash": (U.BPF_MAP_TYPE_PERCPU_HASH, U.BPF_F_NO_PREALLOC),
    "lru_hash": (U.BPF_MAP_TYPE_LRU_HASH, 0),
    "array": (U.BPF_MAP_TYPE_ARRAY, 0),
    "percpu_array": (U.BPF_MAP_TYPE_PERCPU_ARRAY, 0),
}
LIMITS = ("0", "8192", "65536", "262144", "1M", "max")
MEMLOCK = (0, 4096, 65536, 1 << 20, (1 << 64) - 1)


class BpfMachine(RuleBasedStateMachine):
    """Maps created, updated and freed by several tasks in several cgroups."""

    PROFILE = "5.11"
    stats: StepStats | None = None

    def __init__(self) -> None:
        super().__init__()
        if self.stats is not None:
            self.stats.examples += 1
        self.sys = pybpfmem.System(nr_cpus=2, page_size=PS, profile=self.PROFILE, cgroup="v2",
                                   oom_kill=False)
        self.cgs: list[Any] = [self.sys.root]
        self.tasks: list[Any] = []
        self.maps: list[tuple[Any, int, str, int, int, int]] = []  # task, fd, kind, ks, vs, id
        self.pins: list[str] = []
        self.uids: set[int] = {0}
        self.names = 0

    # ---------------------------------------------------------------- helpers
    def live_cgs(self) -> list[Any]:
        return [c for c in self.cgs if c.online]

    def alive(self) -> list[Any]:
        return [t for t in self.tasks if t.alive]

    def pending_slab(self) -> dict[int, dict[str, int]]:
        """Slab deltas the per-cpu object stocks still cache (6.18 __account_obj_stock()),
        by the id of every memcg whose memory.stat will show them once flushed (the
        objcg's memcg and its ancestors).  A drain after a failed op flushes them: the
        snapshot counts them so that flush is not taken for a change."""
        out: dict[int, dict[str, int]] = {}
        for cpu in range(self.sys.nr_cpus):
            info = self.sys.stock_info(cpu)
            for pre in ("", "irq_"):        # the task and (v5.14-v5.17) interrupt stocks
                if info[pre + "cached_objcg"] < 0:
                    continue
                m = self.sys.objcg_memcg(info[pre + "cached_objcg"])
                while m is not None:
                    d = out.setdefault(m.id, {"slab_reclaimable": 0, "slab_unreclaimable": 0})
                    d["slab_reclaimable"] += info[pre + "nr_slab_reclaimable_b"]
                    d["slab_unreclaimable"] += info[pre + "nr_slab_unreclaimable_b"]
                    m = m.parent
        return out

    def snapshot(self) -> list[Any]:
        out = []
        pending = self.pending_slab()
        for c in self.cgs:
            if c.online or c.dying:
                st_ = {k: v for k, v in c.stat().items()
                       if k in ("anon", "file", "kernel", "percpu", "slab_reclaimable",
                                "slab_unreclaimable", "vmalloc")}
                for k, v in pending.get(c.id, {}).items():
                    st_[k] += v
                out.append((c.path, c.usage_pages, st_))
        return out + [("locked_vm", tuple(self.sys.locked_vm(u) for u in sorted(self.uids)), {})]

    def attempt(self, fn: Any) -> Any:
        """Run one operation; a failure must leave the counters as they were."""
        before = self.snapshot()
        # work queued for a grace period (call_rcu() frees of replaced elements, queued by
        # an interrupt-context update, which is no syscall and so settles nothing) runs
        # at the end of the next syscall, failed or not: that may only lower the counters
        grace_frees = bool(self.sys.bpf_state.pending)
        try:
            return fn()
        except OSError as e:
            if getattr(e, "count", None):
                return None       # a batch that stopped part-way: its first count elements stay
            # a multi-step failure path may leave what it freed in the per-cpu stocks
            # (charged pages and object bytes, counted in usage): drain them, then
            # nothing may be above where it was before the operation
            self.sys.drain_all_stock()
            after = {row[0]: row for row in self.snapshot()}
            # a dying cgroup the drain freed gives back its mem_cgroup_alloc() structures,
            # charged to its parent: counters may fall then too
            may_fall = grace_frees or any(row[0] not in after for row in before)
            for p0, u0, s0 in before:
                if p0 not in after:
                    continue      # a dying cgroup whose last reference the drain dropped
                _, u1, s1 = after[p0]
                if p0 == "locked_vm":
                    assert u0 == u1, f"failed op changed locked_vm: {u0} -> {u1}"
                    continue
                assert u1 <= u0, f"failed op raised usage of {p0}: {u0} -> {u1}"
                k0, k1 = s0.pop("kernel", 0), s1.pop("kernel", 0)
                same = all(s1[k] <= v for k, v in s0.items()) if may_fall else s0 == s1
                assert k1 <= k0 and same, f"failed op changed {p0}: {s0} -> {s1}"
            return None

    def uvalue(self, mid: int, k: int) -> bytes:
        """A value as bpf() user space passes it (per-cpu maps: one 8-byte-rounded slot a cpu)."""
        return bytes([k % 256]) * self.sys.bpf_map_by_id(mid).syscall_value_size()

    def key(self, ks: int, k: int) -> bytes:
        return (k % (1 << min(8 * ks, 64))).to_bytes(min(ks, 8), "little").ljust(ks, b"\0")

    # ---------------------------------------------------------------- cgroups
    @precondition(lambda self: len(self.cgs) < MAX_CGROUPS)
    @rule(parent=st.integers(0, 8))
    @counted
    def mkdir(self, parent: int) -> None:
        live = self.live_cgs()
        self.names += 1
        cg = self.attempt(lambda: live[parent % len(live)].mkdir(f"b{self.names}"))
        if cg is not None:
            self.cgs.append(cg)

    @rule(idx=st.integers(0, 8))
    @counted
    def rmdir(self, idx: int) -> None:
        live = self.live_cgs()[1:]
        if live:
            self.attempt(live[idx % len(live)].rmdir)

    @rule(idx=st.integers(0, 8), value=st.sampled_from(LIMITS))
    @counted
    def write_max(self, idx: int, value: str) -> None:
        live = self.live_cgs()[1:]
        if live:
            cg = live[idx % len(live)]
            self.attempt(lambda: cg.write("memory.max", value))

    # ---------------------------------------------------------------- tasks
    @rule(idx=st.integers(0, 8), uid=st.sampled_from((0, 1000)))
    @counted
    def spawn(self, idx: int, uid: int) -> None:
        live = self.live_cgs()
        t = self.attempt(lambda: self.sys.spawn(cgroup=live[idx % len(live)], uid=uid))
        if t is not None:
            self.tasks.append(t)
            self.uids.add(uid)

    @rule(task=st.integers(0, 8), idx=st.integers(0, 8))
    @counted
    def migrate(self, task: int, idx: int) -> None:
        alive, live = self.alive(), self.live_cgs()
        if alive:
            t = alive[task % len(alive)]
            self.attempt(lambda: t.migrate(live[idx % len(live)]))

    @rule(task=st.integers(0, 8))
    @counted
    def exit_task(self, task: int) -> None:
        alive = self.alive()
        if alive:
            self.attempt(alive[task % len(alive)].exit)

    @rule(task=st.integers(0, 8), limit=st.sampled_from(MEMLOCK))
    @counted
    def set_memlock(self, task: int, limit: int) -> None:
        alive = self.alive()
        if alive:
            t = alive[task % len(alive)]
            self.attempt(lambda: t.setrlimit(U.RLIMIT_MEMLOCK, limit, limit))

    # ---------------------------------------------------------------- maps
    @rule(task=st.integers(0, 8), kind=st.sampled_from(sorted(MAP_KINDS)),
          ks=st.sampled_from((4, 8, 16)), vs=st.sampled_from((4, 8, 64, 200, 4096)),
          entries=st.sampled_from((1, 2, 16, 100, 1000)))
    @counted
    def map_create(self, task: int, kind: str, ks: int, vs: int, entries: int) -> None:
        alive = self.alive()
        if not alive:
            return
        t = alive[task % len(alive)]
        mtype, flags = MAP_KINDS[kind]
        if mtype in (U.BPF_MAP_TYPE_ARRAY, U.BPF_MAP_TYPE_PERCPU_ARRAY):
            ks = 4
        fd = self.attempt(lambda: t.bpf_map_create(mtype, ks, vs, entries, flags))
        if fd is not None:
            info = t.bpf_obj_get_info_by_fd(fd)
            self.maps.append((t, fd, kind, ks, vs, int(info["id"])))

    def pick_map(self, m: int) -> tuple[Any, int, str, int, int, int] | None:
        live = [x for x in self.maps if x[0].alive and x[1] in x[0].fds()]
        self.maps = live
        return live[m % len(live)] if live else None

    @rule(m=st.integers(0, 16), k=st.integers(0, 300), flags=st.sampled_from((0, 1, 2)),
          ctx=st.sampled_from(("syscall", "irq", "other_task")), cpu=st.integers(0, 1))
    @counted
    def update(self, m: int, k: int, flags: int, ctx: str, cpu: int) -> None:
        it = self.pick_map(m)
        if it is None:
            return
        t, fd, kind, ks, vs, mid = it
        value = bytes([k % 256]) * vs
        if ctx == "syscall":
            value = self.uvalue(mid, k)
            self.attempt(lambda: t.bpf_map_update_elem(fd, self.key(ks, k), value, flags))
            return
        if ctx == "irq":
            cm: Any = self.sys.in_interrupt(cpu=cpu)
        else:
            alive = self.alive()
            cm = alive[k % len(alive)].running(cpu=cpu)

        def helper() -> None:
            with cm:
                rc = self.sys.helper_map_update_elem(mid, self.key(ks, k), value, flags)
            if rc:
                raise OSError(-rc, "helper_map_update_elem")
        self.attempt(helper)

    @rule(m=st.integers(0, 16), k=st.integers(0, 300), irq=st.booleans())
    @counted
    def delete(self, m: int, k: int, irq: bool) -> None:
        it = self.pick_map(m)
        if it is None:
            return
        t, fd, kind, ks, vs, mid = it
        if irq:
            def helper() -> None:
                with self.sys.in_interrupt(cpu=k % 2):
                    rc = self.sys.helper_map_delete_elem(mid, self.key(ks, k))
                if rc:
                    raise OSError(-rc, "helper_map_delete_elem")
            self.attempt(helper)
        else:
            self.attempt(lambda: t.bpf_map_delete_elem(fd, self.key(ks, k)))

    @rule(m=st.integers(0, 16), start=st.integers(0, 300), n=st.integers(1, 40),
          flags=st.sampled_from((0, 1)))
    @counted
    def update_batch(self, m: int, start: int, n: int, flags: int) -> None:
        it = self.pick_map(m)
        if it is None:
            return
        t, fd, kind, ks, vs, mid = it
        keys = [self.key(ks, start + i) for i in range(n)]
        vals = [self.uvalue(mid, i) for i in range(n)]
        self.attempt(lambda: t.bpf_map_update_batch(fd, keys, vals, flags))

    @rule(m=st.integers(0, 16), start=st.integers(0, 300), n=st.integers(1, 40))
    @counted
    def delete_batch(self, m: int, start: int, n: int) -> None:
        it = self.pick_map(m)
        if it is None:
            return
        t, fd, kind, ks, vs, mid = it
        keys = [self.key(ks, start + i) for i in range(n)]
        self.attempt(lambda: t.bpf_map_delete_batch(fd, keys))

    @rule(m=st.integers(0, 16))
    @counted
    def close(self, m: int) -> None:
        it = self.pick_map(m)
        if it is not None:
            self.attempt(lambda: it[0].close(it[1]))
            self.maps.remove(it)       # the fd number may be reused by the next map

    @rule(m=st.integers(0, 16), name=st.integers(0, 3))
    @counted
    def pin(self, m: int, name: int) -> None:
        it = self.pick_map(m)
        if it is None:
            return
        path = f"/sys/fs/bpf/p{name}"
        if self.attempt(lambda: (it[0].bpf_obj_pin(it[1], path), True)[1]):
            self.pins.append(path)

    @rule(idx=st.integers(0, 8))
    @counted
    def unpin(self, idx: int) -> None:
        if self.pins:
            path = self.pins.pop(idx % len(self.pins))
            self.attempt(lambda: self.sys.bpffs_unlink(path))

    @rule(idx=st.integers(0, 8), task=st.integers(0, 8))
    @counted
    def obj_get(self, idx: int, task: int) -> None:
        alive = self.alive()
        if not self.pins or not alive:
            return
        t = alive[task % len(alive)]
        path = self.pins[idx % len(self.pins)]
        fd = self.attempt(lambda: t.bpf_obj_get(path))
        if fd is not None:
            info = t.bpf_obj_get_info_by_fd(fd)
            m = self.sys.bpf_map_by_id(int(info["id"]))
            self.maps.append((t, fd, "pinned", m.key_size, m.value_size, int(info["id"])))

    @rule(idx=st.integers(-1, 8))
    @counted
    def drain(self, idx: int) -> None:
        if idx < 0:
            self.sys.drain_all_stock()
        else:
            live = self.live_cgs()
            self.sys.drain_all_stock(live[idx % len(live)])

    # ---------------------------------------------------------------- invariants
    @invariant()
    def counters_sane(self) -> None:
        self.sys.check()
        pending = self.pending_slab()        # deltas the object stocks cache count too
        for c in self.cgs:
            if not (c.online or c.dying):
                continue
            assert c.usage_pages >= 0, f"{c.path}: negative usage"
            stat = c.stat()
            for k, v in pending.get(c.id, {}).items():
                stat[k] += v
                stat["slab"] += v
            neg = {k: v for k, v in stat.items() if v < 0}
            assert not neg, f"{c.path}: negative statistics {neg}"
        for u in self.uids:
            assert self.sys.locked_vm(u) >= 0, f"uid {u}: negative locked_vm"

    def teardown(self) -> None:
        try:
            for t in self.tasks:
                if t.alive:
                    t.exit()
            for path in self.pins:
                with contextlib.suppress(OSError):
                    self.sys.bpffs_unlink(path)
            self.sys.run_deferred()
            for c in reversed(self.cgs[1:]):   # children first: their structures go too
                if c.online:
                    c.rmdir()
            self.sys.drain_all_stock()
            # drain_all_stock() skips a page-stock slot with no pages, whose css reference
            # keeps a removed memcg dying (with what it charged, uncharged through its
            # objcg's new memcg since): drain every cpu
            for cpu in range(self.sys.nr_cpus):
                self.sys.drain_local_stock(cpu)
            self.sys.check()
            for u in self.uids:
                assert self.sys.locked_vm(u) == 0, f"uid {u}: locked_vm {self.sys.locked_vm(u)} left"
            for c in self.cgs:
                if not (c.online or c.dying):
                    continue
                if c.parent is None:
                    left = {k: v for k, v in c.stat().items()
                            if v and k not in ("kernel", "pgscan", "pgsteal", "pgscan_direct",
                                               "pgsteal_direct")}
                    assert not left, f"{c.path}: statistics left after teardown: {left}"
                    continue
                # removed, yet something still pins it: only parked objcg pages may
                parked = self.parked_pages(c)
                assert c.usage_pages <= parked, \
                    f"{c.path}: {c.usage_pages} pages left after teardown, {parked} parked"
        finally:
            self.sys.close()

    def parked_pages(self, c: Any) -> int:
        """Whole pages in nr_charged_bytes of the live objcgs charging into c's subtree."""
        total = 0
        for cg in self.cgs:
            if not (cg.online or cg.dying):
                continue
            objcg = cg.info().get("objcg", -1)
            if objcg is None or objcg < 0:
                continue
            with contextlib.suppress(OSError):
                info = self.sys.objcg_info(objcg)
                m = self.sys.memcg_by_id(info["memcg"])
                if m is c or c.path == "/" or m.path.startswith(c.path + "/"):
                    total += info["nr_charged_bytes"] // PS
        return total


class Bpf_5_10(BpfMachine):
    PROFILE = "5.10"


class Bpf_5_11(BpfMachine):
    PROFILE = "5.11"


class Bpf_6_1(BpfMachine):
    """bpf_mem_alloc hash elements with the pre-6.8 per-cpu watermarks, no reuse."""
    PROFILE = "6.1"


class Bpf_6_6(BpfMachine):
    """map_mem_usage memlock; bpf_mem_alloc refills that reuse RCU-waiting objects."""
    PROFILE = "6.6"


class Bpf_6_18(BpfMachine):
    PROFILE = "6.18"


MACHINES: dict[str, type[BpfMachine]] = {m.PROFILE: m for m in (
    Bpf_5_10, Bpf_5_11, Bpf_6_1, Bpf_6_6, Bpf_6_18)}
