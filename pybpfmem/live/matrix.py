"""The built-in case matrix of ``pybpfmem verify`` and the model-side replay.

A case is plain data: a name, a kind, a scenario in the runner's format
(pybpfmem/live/runner.py) and whether it belongs to the ``--quick`` subset.
``replay_model(scn, sysm)`` runs the same scenario on a host-matched model
System (pybpfmem/live/host.py) and returns observations of the same shape as
the live runner's: per step ok/errno/memlock/count and per-cgroup deltas
``{"kmem": bytes, "usage": bytes}`` taken after a stock drain.

What the replay adds besides the BPF model itself:

* The anon-inode file of every map fd: the kernel's map_create() ends in
  bpf_map_new_fd() -> anon_inode_getfd() -> alloc_file_pseudo(), which
  allocates a ``struct file`` (alloc_empty_file(), filp cache, SLAB_ACCOUNT,
  fs/file_table.c) and a ``struct dentry`` (d_alloc_pseudo(), dentry cache,
  SLAB_ACCOUNT, fs/dcache.c), both charged to the creating task's objcg.
  The model's bpf layer does not allocate them, so the replay charges them as
  two GFP_KERNEL_ACCOUNT objects of the BTF sizes of those structs in the
  creating task's context and frees them at close.  Simplified: kmalloc size
  classes stand in for the dedicated slab caches' object sizes (on 6.18 x86_64
  both round to 192, as filp's SLAB_HWCACHE_ALIGN and dentry's 192 do; 640 live
  creates of ARRAY k4 v4 m1 in one cgroup charged PAGE_ALIGN(640 x 920) bytes:
  file 200 + dentry 200 + the kmalloc-cg-512 bpf_array 520, objcg pointer included).
* What the live case cgroups held before the first step (``entry``: a few user
  pages of the child's own Python work during the readings; the child lives in a
  home cgroup beside them, runner.py): for limit cases the replay charges that
  many user pages to the start cgroup first (mem_cgroup_charge() of anon folios).
* The live child's RLIMIT_MEMLOCK (runner.bump_memlock_rlimit(): raised as libbpf
  does), given to the model's task, which matters where maps are charged to it
  (the 5.10 profile's ``rlimit`` switch).
* A step that names a map whose create failed is skipped on both sides
  (``skipped``), as the live child does.

The readings compare like for like: the runner's canonical reading of a cgroup
is PAGE_ALIGN of its live objects' bytes plus its pages (no remainder of earlier
activity, no page parked in obj_cgroup->nr_charged_bytes), which is what the
model's counters show after run_deferred() + drain_all_stock() with every step
on one cpu.
"""
from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field
from typing import Any

from ..bpf import uapi as U

NO_PREALLOC = U.BPF_F_NO_PREALLOC
#: struct file and struct dentry on x86_64 6.18 when BTF is unavailable (est.)
FD_OBJECT_FALLBACK = {"file": 184, "dentry": 192}


@dataclass
class Case:
    name: str
    kind: str     # shape, insert, array_limit, insert_limit, rlimit, shared, rmdir, errno
    scenario: dict[str, Any] = field(default_factory=dict)
    quick: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    #: kernel refuses this shape here (reason) -> reported as skipped
    skip: str | None = None


def _create(spec: dict[str, Any], name: str = "m") -> dict[str, Any]:
    return {"op": "create", "map": name, **spec}


def _shape(name: str, spec: dict[str, Any], quick: bool = False, reps: int = 2,
           pre: list[dict[str, Any]] | None = None, skip: str | None = None) -> Case:
    """create/close ``reps`` times, each create in a fresh cgroup A<i> (so its kmem is
    PAGE_ALIGN of its own objects' bytes: runner.py), pre-steps in their own cgroup P.
    Two samples tell noise (an unrelated kernel allocation in the window) from the map."""
    cgroups: dict[str, Any] = {"P": {}} if pre else {}
    steps = list(pre or [])
    for r in range(reps):
        cgroups[f"A{r}"] = {}
        steps += [{"op": "move", "cgroup": f"A{r}"}, _create(spec), {"op": "close", "map": "m"}]
    return Case(name, "shape", {"cgroups": cgroups, "steps": steps, "cpu": 0}, quick,
                {"pre": len(pre or [])}, skip)


K4V64 = {"key": 4, "value": 64, "max": 1000}
_INNER = [_create({"type": "ARRAY", "key": 4, "value": 64, "max": 1000}, "inner")]
_STORAGE_SKIP = ("the model has no BPF_BTF_LOAD: local-storage maps need BTF key/value "
                 "types (map_check_btf()), so the same create cannot be replayed")


def shape_cases() -> list[Case]:
    t = lambda ty, **kw: {"type": ty, **kw}  # noqa: E731
    return [
        _shape("ARRAY k4 v64 m1000", t("ARRAY", **K4V64), quick=True),
        _shape("ARRAY k4 v8 m10000", t("ARRAY", key=4, value=8, max=10000)),
        _shape("ARRAY k4 v4096 m1000", t("ARRAY", key=4, value=4096, max=1000)),
        _shape("ARRAY k4 v64 m1000 MMAPABLE", t("ARRAY", **K4V64, flags=U.BPF_F_MMAPABLE)),
        _shape("PERCPU_ARRAY k4 v64 m1000", t("PERCPU_ARRAY", **K4V64), quick=True),
        _shape("HASH k4 v64 m1000", t("HASH", **K4V64), quick=True),
        _shape("HASH k16 v64 m1000", t("HASH", key=16, value=64, max=1000)),
        _shape("HASH k4 v8 m10000", t("HASH", key=4, value=8, max=10000)),
        _shape("HASH k4 v64 m1000 NO_PREALLOC", t("HASH", **K4V64, flags=NO_PREALLOC), quick=True),
        _shape("HASH k4 v8 m10000 NO_PREALLOC", t("HASH", key=4, value=8, max=10000, flags=NO_PREALLOC)),
        _shape("LRU_HASH k4 v64 m1000", t("LRU_HASH", **K4V64)),
        _shape("LRU_HASH k4 v64 m1000 NO_COMMON_LRU", t("LRU_HASH", **K4V64, flags=U.BPF_F_NO_COMMON_LRU)),
        _shape("PERCPU_HASH k4 v64 m1000", t("PERCPU_HASH", **K4V64)),
        _shape("PERCPU_HASH k4 v64 m1000 NO_PREALLOC", t("PERCPU_HASH", **K4V64, flags=NO_PREALLOC)),
        _shape("LRU_PERCPU_HASH k4 v64 m1000", t("LRU_PERCPU_HASH", **K4V64)),
        _shape("RINGBUF 1MiB", t("RINGBUF", key=0, value=0, max=1 << 20), quick=True),
        _shape("USER_RINGBUF 1MiB", t("USER_RINGBUF", key=0, value=0, max=1 << 20)),
        _shape("QUEUE v64 m1000", t("QUEUE", key=0, value=64, max=1000)),
        _shape("STACK v64 m1000", t("STACK", key=0, value=64, max=1000)),
        _shape("LPM_TRIE k8 v64 m1000", t("LPM_TRIE", key=8, value=64, max=1000, flags=NO_PREALLOC)),
        _shape("BLOOM_FILTER v64 m1000", t("BLOOM_FILTER", key=0, value=64, max=1000)),
        _shape("BLOOM_FILTER v8 m10000 extra3", t("BLOOM_FILTER", key=0, value=8, max=10000, map_extra=3)),
        _shape("DEVMAP k4 v4 m1000", t("DEVMAP", key=4, value=4, max=1000)),
        _shape("DEVMAP_HASH k4 v4 m1000", t("DEVMAP_HASH", key=4, value=4, max=1000)),
        _shape("CPUMAP k4 v4 m64", t("CPUMAP", key=4, value=4, max=64)),
        _shape("XSKMAP k4 v4 m1000", t("XSKMAP", key=4, value=4, max=1000)),
        _shape("SOCKMAP k4 v4 m1000", t("SOCKMAP", key=4, value=4, max=1000)),
        _shape("SOCKHASH k4 v4 m1000", t("SOCKHASH", key=4, value=4, max=1000)),
        _shape("REUSEPORT_SOCKARRAY k4 v4 m1000", t("REUSEPORT_SOCKARRAY", key=4, value=4, max=1000)),
        _shape("STACK_TRACE k4 v64 m1000", t("STACK_TRACE", **K4V64)),
        _shape("PROG_ARRAY k4 v4 m1000", t("PROG_ARRAY", key=4, value=4, max=1000)),
        _shape("PERF_EVENT_ARRAY k4 v4 m2", t("PERF_EVENT_ARRAY", key=4, value=4, max=2)),
        _shape("CGROUP_ARRAY k4 v4 m1000", t("CGROUP_ARRAY", key=4, value=4, max=1000)),
        _shape("ARRAY_OF_MAPS k4 v4 m1000", t("ARRAY_OF_MAPS", key=4, value=4, max=1000, inner="inner"), pre=_INNER),
        _shape("HASH_OF_MAPS k4 v4 m1000", t("HASH_OF_MAPS", key=4, value=4, max=1000, inner="inner"), pre=_INNER),
        _shape("CGROUP_STORAGE k16 v64", t("CGROUP_STORAGE", key=16, value=64, max=0)),
        _shape("PERCPU_CGROUP_STORAGE k16 v64", t("PERCPU_CGROUP_STORAGE", key=16, value=64, max=0)),
        _shape("SK_STORAGE v64", t("SK_STORAGE", key=4, value=64, max=0, flags=NO_PREALLOC, btf="storage"),
               skip=_STORAGE_SKIP),
        _shape("TASK_STORAGE v64", t("TASK_STORAGE", key=4, value=64, max=0, flags=NO_PREALLOC, btf="storage"),
               skip=_STORAGE_SKIP),
    ]


def insert_cases() -> list[Case]:
    """No-prealloc hash (and LPM, prealloc) inserts at several N.  max 20000 so
    the bucket array is the same for every N; delete-all checks the return."""
    out = []
    specs = [
        ("HASH k4 v64 NO_PREALLOC", {"type": "HASH", "key": 4, "value": 64, "max": 20000, "flags": NO_PREALLOC}, (1000, 10000), True),
        ("HASH k4 v8 NO_PREALLOC", {"type": "HASH", "key": 4, "value": 8, "max": 20000, "flags": NO_PREALLOC}, (10000,), False),
        ("HASH k16 v64 NO_PREALLOC", {"type": "HASH", "key": 16, "value": 64, "max": 20000, "flags": NO_PREALLOC}, (10000,), False),
        ("PERCPU_HASH k4 v64 NO_PREALLOC", {"type": "PERCPU_HASH", "key": 4, "value": 64, "max": 20000, "flags": NO_PREALLOC}, (10000,), False),
        ("HASH k4 v64 prealloc", {"type": "HASH", "key": 4, "value": 64, "max": 20000}, (10000,), False),
        ("LPM_TRIE k8 v64", {"type": "LPM_TRIE", "key": 8, "value": 64, "max": 20000, "flags": NO_PREALLOC}, (10000,), False),
    ]
    for label, spec, ns, quick in specs:
        for n in ns:
            out.append(Case(f"{label} N={n}", "insert", {"cpu": 0, "steps": [
                _create(spec), {"op": "insert", "map": "m", "n": n},
                {"op": "delete", "map": "m", "n": n}, {"op": "close", "map": "m"}]},
                quick and n == 10000, {"n": n}))
    return out


def limit_cases() -> list[Case]:
    return [
        # --quick uses 64 MiB: the child's own pages (its baseline, noisy by tens
        # of pages under load) are a 16x smaller share of the limit than at 8 MiB
        Case("largest ARRAY v4096 under 8 MiB", "array_limit", {}, False,
             {"limit": 8 << 20, "value": 4096}),
        Case("largest ARRAY v4096 under 64 MiB", "array_limit", {}, True,
             {"limit": 64 << 20, "value": 4096}),
        # The map is made in the limited A, then the task moves to the unlimited B
        # and inserts from there: the elements are still charged to A (the map's
        # objcg, set_active_memcg() around bpf_mem_alloc refills), while the
        # child's own page faults go to B and so can never hit A's limit and
        # summon the memcg OOM killer before the insert fails with ENOMEM.
        Case("HASH k4 v64 NO_PREALLOC inserts under 16 MiB", "insert_limit", {
            "cgroups": {"A": {"limit": 16 << 20}, "B": {}}, "cpu": 0, "steps": [
                _create({"type": "HASH", "key": 4, "value": 64, "max": 1 << 17, "flags": NO_PREALLOC}),
                {"op": "move", "cgroup": "B"},
                {"op": "insert", "map": "m", "n": 1 << 17}]},
             True, {"limit": 16 << 20}),
    ]


def shared_cases() -> list[Case]:
    return [
        Case("shared map A/B", "shared", {"cgroups": {"A": {}, "B": {}}, "cpu": 0, "steps": [
            _create({"type": "HASH", "key": 4, "value": 64, "max": 100000, "flags": NO_PREALLOC}),
            {"op": "move", "cgroup": "B"},
            {"op": "insert", "map": "m", "n": 5000},
            {"op": "close", "map": "m"}]}, True),
        Case("rmdir: charges move to the parent", "rmdir", {}, True,
             {"n": 5000, "more": 1000}),
    ]


#: the rlimit case's map: sizeof(struct bpf_array) + 128 * 4096 bytes, 129 pages under
#: 5.10's rule (bpf_map_charge_init() rounds the cost up to pages); two of them are
#: 258 pages, over a 1 MiB (256-page) RLIMIT_MEMLOCK, one is well under it
RLIMIT_ARRAY = {"type": "ARRAY", "key": 4, "value": 4096, "max": 128}
RLIMIT_BYTES = 1 << 20


def rlimit_cases() -> list[Case]:
    """RLIMIT_MEMLOCK as the limit (the 5.10 profile's ``rlimit`` switch): the child
    lowers it to 1 MiB, makes one array that fits and one that takes the uid's
    locked_vm over it (bpf_charge_memlock(): EPERM), closes the first, waits for its
    deferred free (bpf_map_free_deferred() -> bpf_map_charge_finish() gives the pages
    back) and makes a third, which fits again.  From 5.11 on maps are charged to the
    memcg only and all three creates succeed.  The uid's locked_vm is shared by every
    process of that uid (``user_struct``): another root process holding memlock-charged
    maps on a 5.10 host shifts the boundary, which shows as an errno row."""
    return [Case("RLIMIT_MEMLOCK 1 MiB: two ARRAY v4096 m128, close one, a third",
                 "rlimit", {"cpu": 0, "steps": [
                     {"op": "rlimit", "bytes": RLIMIT_BYTES},
                     _create(RLIMIT_ARRAY, "m1"), _create(RLIMIT_ARRAY, "m2"),
                     {"op": "close", "map": "m1"}, {"op": "settle"},
                     _create(RLIMIT_ARRAY, "m3")]}, True)]


#: (label, create spec) -> the kernel's errno; the expected side is the live kernel
ERRNO_SPECS: list[tuple[str, dict[str, Any]]] = [
    ("HASH key_size 0", {"type": "HASH", "key": 0, "value": 8, "max": 10}),
    ("HASH value_size 0", {"type": "HASH", "key": 4, "value": 0, "max": 10}),
    ("HASH max_entries 0", {"type": "HASH", "key": 4, "value": 8, "max": 0}),
    ("ARRAY value_size 0", {"type": "ARRAY", "key": 4, "value": 0, "max": 10}),
    ("ARRAY key_size 8", {"type": "ARRAY", "key": 8, "value": 8, "max": 10}),
    ("ARRAY max_entries 0", {"type": "ARRAY", "key": 4, "value": 8, "max": 0}),
    ("ARRAY unknown flag 1<<30", {"type": "ARRAY", "key": 4, "value": 8, "max": 10, "flags": 1 << 30}),
    ("ARRAY NO_PREALLOC", {"type": "ARRAY", "key": 4, "value": 8, "max": 10, "flags": NO_PREALLOC}),
    ("LRU_HASH NO_PREALLOC", {"type": "LRU_HASH", "key": 4, "value": 8, "max": 10, "flags": NO_PREALLOC}),
    ("RINGBUF max 12345", {"type": "RINGBUF", "key": 0, "value": 0, "max": 12345}),
    ("RINGBUF max 4096 key 4", {"type": "RINGBUF", "key": 4, "value": 0, "max": 4096}),
    ("RINGBUF max 2048", {"type": "RINGBUF", "key": 0, "value": 0, "max": 2048}),
    ("QUEUE key 4", {"type": "QUEUE", "key": 4, "value": 8, "max": 10}),
    ("LPM_TRIE prealloc", {"type": "LPM_TRIE", "key": 8, "value": 8, "max": 10}),
    ("HASH value 2^20", {"type": "HASH", "key": 4, "value": 1 << 20, "max": 10}),
    ("ARRAY value 2^31", {"type": "ARRAY", "key": 4, "value": 1 << 31, "max": 10}),
    ("HASH key 600", {"type": "HASH", "key": 600, "value": 8, "max": 10}),
    ("map type 99", {"type": 99, "key": 4, "value": 8, "max": 10}),
    ("BLOOM_FILTER key 4", {"type": "BLOOM_FILTER", "key": 4, "value": 8, "max": 10}),
    ("HASH map_extra 1", {"type": "HASH", "key": 4, "value": 8, "max": 10, "map_extra": 1}),
    ("ARRAY RDONLY|WRONLY", {"type": "ARRAY", "key": 4, "value": 8, "max": 10, "flags": 8 | 16}),
    ("CPUMAP max 100000", {"type": "CPUMAP", "key": 4, "value": 4, "max": 100000}),
    ("SK_STORAGE no BTF", {"type": "SK_STORAGE", "key": 4, "value": 8, "max": 0, "flags": NO_PREALLOC}),
    ("STACK_TRACE value 7", {"type": "STACK_TRACE", "key": 4, "value": 7, "max": 10}),
]
QUICK_ERRNOS = {"HASH key_size 0", "ARRAY key_size 8", "LRU_HASH NO_PREALLOC",
                "RINGBUF max 12345", "ARRAY value 2^31", "map type 99", "CPUMAP max 100000"}


def errno_cases() -> list[Case]:
    """All invalid-attr creates of a set in one child (no close: exit frees them)."""
    full = [(lbl, s) for lbl, s in ERRNO_SPECS]
    quick = [(lbl, s) for lbl, s in ERRNO_SPECS if lbl in QUICK_ERRNOS]

    def scn(items: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        return {"steps": [_create(s, f"e{i}") for i, (_, s) in enumerate(items)]}
    return [Case("errnos (quick set)", "errno", scn(quick), True, {"labels": [x for x, _ in quick]}),
            Case("errnos (all)", "errno", scn(full), False, {"labels": [x for x, _ in full]})]


def all_cases() -> list[Case]:
    return (shape_cases() + insert_cases() + limit_cases() + rlimit_cases() + shared_cases()
            + errno_cases())


def select(cases: list[Case], quick: bool, name: str | None = None) -> list[Case]:
    if name:
        exact = [c for c in cases if name.lower() == c.name.lower()]
        sel = exact or [c for c in cases if name.lower() in c.name.lower()]
        if not sel:
            raise KeyError(name)
        return sel
    if quick:
        return [c for c in cases if c.quick]
    return [c for c in cases if c.name != "errnos (quick set)"]


# ---------------------------------------------------------------- model replay

def _map_type(ty: Any) -> int:
    if isinstance(ty, int):
        return ty
    return int(getattr(U, "BPF_MAP_TYPE_" + ty))


def _key_bytes(mtype: int, key_size: int, k: int) -> bytes | None:
    """Same key encoding as the live runner's _FastUpdater."""
    if key_size == 0:
        return None
    if mtype == U.BPF_MAP_TYPE_LPM_TRIE:
        return ((key_size - 4) * 8).to_bytes(4, "little") + k.to_bytes(key_size - 4, "big")
    return (k % (1 << (8 * key_size))).to_bytes(key_size, "little")


class ModelCase:
    """One scenario's cgroups and task on a model System (the live runner's
    counterpart: a case root below the root memcg, the named cgroups below it)."""

    def __init__(self, sysm: Any, scn: dict[str, Any], entry_usage: int = 0,
                 fd_sizes: dict[str, int] | None = None, memlock: int | None = None) -> None:
        self.sys = sysm
        self.fd_sizes = fd_sizes or FD_OBJECT_FALLBACK
        self.root = sysm.root.mkdir(f"case{len(sysm.root.children)}")
        self.cgs: dict[str, Any] = {}
        for name, spec in (scn.get("cgroups") or {"A": {}}).items():
            cg = self.root.mkdir(name)
            if spec and spec.get("limit") is not None:
                self.set_limit(cg, spec["limit"])
            self.cgs[name] = cg
        self.where = scn.get("start") or next(iter(self.cgs))
        # the live child is forked at home and moves into the case's cgroups: its kernel
        # stack is charged at home, not to them
        self.task = sysm.spawn(uid=0)
        self.task.migrate(self.cgs[self.where])
        if memlock is not None:
            self.task.setrlimit(U.RLIMIT_MEMLOCK, memlock, memlock)
        self.cpu = 0
        if entry_usage:
            # the live child's own pages at entry (mem_cgroup_charge() of its anon folios)
            try:
                with self.task.running(self.cpu):
                    self.cgs[self.where].charge_user(entry_usage // sysm.page_size, cpu=self.cpu)
            except OSError:
                pass
        self.fds: dict[str, tuple[int, list[int]]] = {}

    def set_limit(self, cg: Any, limit: int | None) -> None:
        if self.sys.cgroup_version == "v1":
            cg.write("memory.limit_in_bytes", "-1" if limit is None else str(limit))
        else:
            cg.write("memory.max", "max" if limit is None else str(limit))

    def counters(self, cg: Any) -> dict[str, int | None]:
        """What the live runner reads: v1 kmem and usage; v2 memory.stat ``kernel``
        (None where the profile prints none: before v5.18) and memory.current."""
        if self.sys.cgroup_version == "v1":
            return {"kmem": int(cg.read("memory.kmem.usage_in_bytes")),
                    "usage": int(cg.read("memory.usage_in_bytes"))}
        return {"kmem": cg.stat().get("kernel"), "usage": int(cg.read("memory.current"))}

    def snapshot(self) -> dict[str, dict[str, int | None]]:
        self.sys.run_deferred()
        self.sys.drain_all_stock()
        out = {n: self.counters(c) for n, c in self.cgs.items()}
        out["_root"] = self.counters(self.root)
        return out

    def counters_root(self, key: str = "kmem") -> int | None:
        """kmem (or ``key``) of the case root after running deferred work and
        draining stocks."""
        self.sys.run_deferred()
        self.sys.drain_all_stock()
        return self.counters(self.root)[key]

    # -- the fd's anon-inode file (see the module docstring)
    def _fd_objects(self) -> list[int]:
        g = self.sys.gfp.GFP_KERNEL_ACCOUNT
        with self.task.running(self.cpu):
            return [self.sys.kmalloc(self.fd_sizes["file"], g),
                    self.sys.kmalloc(self.fd_sizes["dentry"], g)]

    def _free(self, addrs: list[int]) -> None:
        with self.task.running(self.cpu):
            for a in addrs:
                self.sys.kfree(a)

    def step(self, st: dict[str, Any], i: int) -> dict[str, Any]:
        op = st["op"]
        obs: dict[str, Any] = {"i": i, "op": op, "cgroup": self.where, "ok": True,
                               "errno": None}
        t = self.task
        before = self.snapshot()
        try:
            if not t.alive:
                obs.update(ok=False, killed=9)
                return obs
            if op == "create":
                kw: dict[str, Any] = {}
                if st.get("inner"):
                    kw["inner_map_fd"] = self.fds[st["inner"]][0]
                if st.get("map_extra"):
                    kw["map_extra"] = st["map_extra"]
                with t.running(self.cpu):
                    fd = t.bpf_map_create(_map_type(st["type"]), st.get("key", 4),
                                          st.get("value", 8), st.get("max", 1),
                                          st.get("flags", 0), **kw)
                self.fds[st["map"]] = (fd, self._fd_objects())
                obs["memlock"] = int(t.fdinfo(fd)["memlock"])
            elif op in ("insert", "delete", "close", "lookup", "freeze") \
                    and st["map"] not in self.fds:    # its create failed
                obs.update(ok=False, skipped=True)
            elif op in ("insert", "delete"):
                obs.update(self._elems(st, op))
            elif op == "close":
                fd, objs = self.fds.pop(st["map"])
                with t.running(self.cpu):
                    t.close(fd)
                self._free(objs)
            elif op == "limit":
                self.set_limit(self.cgs[st["cgroup"]], st.get("bytes"))
            elif op == "rlimit":
                t.setrlimit(U.RLIMIT_MEMLOCK, int(st["bytes"]), int(st["bytes"]))
            elif op == "move":
                t.migrate(self.cgs[st["cgroup"]])
                self.where = obs["cgroup"] = st["cgroup"]
            elif op not in ("noop", "settle"):
                raise ValueError(f"unknown op {op!r}")
        except OSError as e:
            obs.update(ok=False, errno=e.errno)
        finally:
            if not t.alive and t.killed:
                obs.update(ok=False, killed=9)
            after = self.snapshot()
            obs["delta"] = {n: {k: None if after[n][k] is None or before[n][k] is None
                                else after[n][k] - before[n][k] for k in before[n]}
                            for n in before}
        return obs

    def _elems(self, st: dict[str, Any], op: str) -> dict[str, Any]:
        t = self.task
        fd = self.fds[st["map"]][0]
        m = t.fd_object(fd)
        vs = m.syscall_value_size()
        val = bytes(vs)
        n, s0 = st.get("n", 1), st.get("start", 0)
        done = 0
        err = None
        with t.running(self.cpu):
            for k in range(s0, s0 + n):
                key = _key_bytes(m.map_type, m.key_size, k)
                try:
                    if op == "insert":
                        t.bpf_map_update_elem(fd, key, val, st.get("flags", 0))
                    else:
                        t.bpf_map_delete_elem(fd, key)
                except OSError as e:
                    err = e.errno
                    break
                if not t.alive:
                    break
                done += 1
        out: dict[str, Any] = {"count": done, "memlock": int(t.fdinfo(fd)["memlock"])}
        if err is not None:
            out.update(ok=False, errno=err)
        return out


def fd_object_sizes(facts: Any = None) -> dict[str, int]:
    """sizeof(struct file) and sizeof(struct dentry) from host BTF (fallback: est.)."""
    try:
        from ..btf import read_struct_sizes as host_struct_sizes
        got = host_struct_sizes(names=("file", "dentry"))
    except (OSError, ValueError):
        got = {}
    return {k: got.get(k, v) for k, v in FD_OBJECT_FALLBACK.items()}


def replay_model(scn: dict[str, Any], sysm: Any, entry_usage: int = 0,
                 fd_sizes: dict[str, int] | None = None, memlock: int | None = None
                 ) -> list[dict[str, Any]]:
    """The scenario's steps on the model; observations like the live runner's."""
    mc = ModelCase(sysm, scn, entry_usage, fd_sizes, memlock)
    return [mc.step(st, i) for i, st in enumerate(scn["steps"])]


ENOMEM = _errno.ENOMEM
