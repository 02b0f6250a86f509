"""The engine of ``pybpfmem plan``: one simulated machine per kernel profile, the maps of
the plan created in it together as their loaders would create them, then filled,
churned and pushed against memory.max, with memory.current read at each step.

For one profile ``plan(specs, options)``:

1. creates every memory cgroup of the plan and a loader task in each (per uid), then
   every map in input order as libbpf does (a map-in-map: its inner template, the outer
   map, the template closed, the outer's slots written), each measured by the growth of
   its cgroup's memory.current (settled and with the per-cpu stocks drained: the charge
   itself) -- the per-map attribution sums exactly to each cgroup's total;
2. fills every map whose entries allocate memory to as many entries as its keys allow
   (``bpf.fill``: the same charges as one update per entry from the loader on cpu 0);
   preallocated maps are full at creation (their updates allocate nothing);
3. churns each dynamic map: on every possible cpu in turn, ``churn`` of its entries are
   deleted and written again, with no RCU grace period until all cpus are done (the
   bpf_mem_alloc caches go to their high watermarks and the frees above them wait for
   the grace period): the peak growth of memory.current over the full charge;
4. finds, on a scratch machine per map shape, what an update does at memory.max: fails
   with ENOMEM (GFP_NOWAIT, bpf_mem_alloc refills) or is force-charged past it
   (GFP_ATOMIC on 5.x), or allocates nothing.

The recommended memory.max of a cgroup is its highest charge (full, plus every map's
churn peak) plus the profile's per-cpu stock slack, rounded up to a MiB.
"""

from __future__ import annotations

import dataclasses
import errno
from dataclasses import dataclass, field
from typing import Any

import pybpfmem
from pybpfmem.bpf import fill as bpffill
from pybpfmem.bpf import uapi
from pybpfmem.bpf.errors import BpfError, errname
from pybpfmem.bpf.map import map_class
from pybpfmem.constants import U64_MAX
from pybpfmem.profiles import get_profile

from .plan_inputs import MapSpec, flag_names, needs_btf_ids

MIB = 1 << 20
CHURN = 96            # entries each possible cpu replaces within one RCU grace period
PROBE_FILL = 256      # entries the memory.max probe writes before setting the limit
PROBE_TRIES = 512     # updates it then tries at the limit

STATIC, ENTRIES, OWNERS, OBJECTS = "static", "entries", "owners", "objects"
# map types whose entries hold kernel objects the plan does not make (what one costs
# depends on them): their charge when full is not planned, and the output says so
_OBJECT_ENTRIES = {
    uapi.BPF_MAP_TYPE_SOCKMAP: "sockets", uapi.BPF_MAP_TYPE_SOCKHASH: "sockets",
    uapi.BPF_MAP_TYPE_XSKMAP: "AF_XDP sockets", uapi.BPF_MAP_TYPE_CPUMAP: "per-cpu queues "
    "of the size each update writes", uapi.BPF_MAP_TYPE_ARENA: "pages the program faults in",
}
# local storage: an element per owner object, written with the owner's fd as the key
_OWNERS = {uapi.BPF_MAP_TYPE_SK_STORAGE: "sockets", uapi.BPF_MAP_TYPE_INODE_STORAGE: "inodes",
           uapi.BPF_MAP_TYPE_TASK_STORAGE: "tasks", uapi.BPF_MAP_TYPE_CGRP_STORAGE: "cgroups"}
_OWNER_TYPES = (*_OWNERS, uapi.BPF_MAP_TYPE_CGROUP_STORAGE,
                uapi.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE)
_GROWING = (uapi.BPF_MAP_TYPE_HASH, uapi.BPF_MAP_TYPE_PERCPU_HASH,
            uapi.BPF_MAP_TYPE_HASH_OF_MAPS)
_LRU = (uapi.BPF_MAP_TYPE_LRU_HASH, uapi.BPF_MAP_TYPE_LRU_PERCPU_HASH)


@dataclass(frozen=True)
class PlanOptions:
    """The machine a plan is for and its churn."""

    profile: str
    cpus: int = 2
    page_size: int = 4096
    ram: int = 64 << 30
    churn: int = CHURN
    btf_sizes: tuple[tuple[str, int], ...] | None = None   # --btf: one node's struct sizes


def plan_system(opts: PlanOptions) -> Any:
    """The simulated machine of a plan: the one place it is made."""
    profile: Any = opts.profile
    if opts.btf_sizes:                  # the profile's switches, the node's struct sizes
        p = get_profile(opts.profile)
        profile = dataclasses.replace(p, sizes=p.sizes.with_overrides(**dict(opts.btf_sizes)))
    return pybpfmem.System(nr_cpus=opts.cpus, page_size=opts.page_size, profile=profile,
                           cgroup="v2", ram=opts.ram)


def growth(spec: MapSpec) -> str:
    """What filling the map does: ``static`` (its updates allocate nothing the memcg sees:
    full at creation), ``entries`` (each new entry allocates), ``owners`` (an element per
    socket/task/inode/cgroup) or ``objects`` (entries hold kernel objects the plan does
    not make)."""
    t = spec.type
    if t in _OBJECT_ENTRIES:
        return OBJECTS
    if t in _OWNER_TYPES:
        return OWNERS
    if t == uapi.BPF_MAP_TYPE_LPM_TRIE or t in (uapi.BPF_MAP_TYPE_DEVMAP,
                                                uapi.BPF_MAP_TYPE_DEVMAP_HASH):
        return ENTRIES
    if t in _GROWING and spec.flags & uapi.BPF_F_NO_PREALLOC:
        return ENTRIES
    return STATIC


@dataclass
class MapResult:
    """One map of a plan: its input and what the model predicts (bytes; None where a
    figure does not exist, with the reason in ``error`` or ``note``)."""

    spec: MapSpec
    status: str = "planned"                 # planned | failed | not_planned
    errno: str | None = None                # failed: the kernel's errno name
    error: str | None = None                # failed / not_planned: why
    growth: str = STATIC
    memlock_empty: int | None = None        # fdinfo memlock after creation
    memlock_full: int | None = None         # fdinfo memlock when full
    entries_when_full: int | None = None
    charged_at_creation: int | None = None  # growth of its cgroup's memory.current
    charged_when_full: int | None = None    # ... at creation plus when filled
    churn_peak: int | None = None           # peak growth over full under churn
    at_memory_max: str | None = None        # ENOMEM | force-charged | no allocation | not charged | fits
    at_memory_max_detail: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        s = self.spec
        return {
            "name": s.name, "type": s.type_name, "key_size": s.key_size,
            "value_size": s.value_size, "max_entries": s.max_entries, "flags": s.flags,
            "flag_names": flag_names(s.flags), "cgroup": s.cgroup, "uid": s.uid,
            "source": s.source, "id": s.id, "pinned": s.pinned,
            "inner": None if s.inner is None else s.inner.shape,
            "status": self.status, "errno": self.errno, "error": self.error,
            "growth": self.growth, "entries_when_full": self.entries_when_full,
            "memlock_empty": self.memlock_empty, "memlock_full": self.memlock_full,
            "input_memlock": s.input_memlock,
            "charged_at_creation": self.charged_at_creation,
            "charged_when_full": self.charged_when_full, "churn_peak": self.churn_peak,
            "at_memory_max": self.at_memory_max, "at_memory_max_detail": self.at_memory_max_detail,
            "note": self.note,
        }


@dataclass
class CgroupResult:
    path: str
    charged_at_creation: int = 0
    charged_when_full: int = 0
    churn_peak: int = 0                 # sum of its maps' churn peaks
    stock_slack: int = 0
    recommended_memory_max: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"charged_at_creation": self.charged_at_creation,
                "charged_when_full": self.charged_when_full, "churn_peak": self.churn_peak,
                "stock_slack": self.stock_slack,
                "recommended_memory_max": self.recommended_memory_max}


@dataclass
class PlanResult:
    options: PlanOptions
    maps: list[MapResult]
    cgroups: dict[str, CgroupResult]
    rlimit_memlock: dict[int, int] | None      # 5.10: bytes each uid's RLIMIT_MEMLOCK must allow
    stock_slack_rule: str = ""
    complete: bool = True                      # every map's charge when full is in the totals
    failed: list[MapResult] = field(default_factory=list)

    @property
    def recommended_memory_max(self) -> int | None:
        """For one cgroup above all the plan's cgroups: their charges and one stock slack
        (None where a map fails, or where maps are not charged to memory cgroups)."""
        if self.failed or not get_profile(self.options.profile).bpf.account:
            return None
        top = [c for p, c in self.cgroups.items()
               if not any(q != p and _within(p, q) for q in self.cgroups)]
        total = sum(c.charged_when_full + c.churn_peak for c in top)
        return _round_mib(total + stock_slack(self.options))

    def as_dict(self) -> dict[str, Any]:
        o = self.options
        return {
            "profile": o.profile, "cpus": o.cpus, "page_size": o.page_size, "ram": o.ram,
            "churn": o.churn, "maps": [m.as_dict() for m in self.maps],
            "cgroups": {p: c.as_dict() for p, c in self.cgroups.items()},
            "stock_slack_rule": self.stock_slack_rule,
            "rlimit_memlock": None if self.rlimit_memlock is None else
            {str(u): v for u, v in self.rlimit_memlock.items()},
            "complete": self.complete,
            "recommended_memory_max": self.recommended_memory_max,
            "errors": [f"{m.spec.name}: {m.errno}: {m.error}" for m in self.failed],
        }


def stock_slack(opts: PlanOptions) -> int:
    """What the per-cpu stocks may hold charged beyond the charges themselves: on every
    possible cpu MEMCG_CHARGE_BATCH pages in each of the stock's slots (NR_MEMCG_STOCK:
    the cgroups of a subtree each cache their own) and up to a page of bytes in the
    object stock (consume_stock()/refill_stock(), refill_obj_stock())."""
    mm = get_profile(opts.profile).mm
    return opts.cpus * (mm.charge_batch * mm.nr_memcg_stock + 1) * opts.page_size


def stock_slack_rule(opts: PlanOptions) -> str:
    mm = get_profile(opts.profile).mm
    return (f"{opts.cpus} cpus x ({mm.charge_batch} pages x {mm.nr_memcg_stock} stock "
            f"slot{'s' if mm.nr_memcg_stock > 1 else ''} + 1 page of object stock)")


def _within(path: str, ancestor: str) -> bool:
    """Whether cgroup ``path`` is ``ancestor`` or below it."""
    return path == ancestor or ancestor == "/" or path.startswith(ancestor + "/")


def _round_mib(n: int) -> int:
    return -(-n // MIB) * MIB


# --------------------------------------------------------------------------- the plan

class _Planner:
    def __init__(self, specs: list[MapSpec], opts: PlanOptions) -> None:
        self.opts = opts
        self.system = plan_system(opts)
        self.page = opts.page_size
        self.results = [MapResult(s, growth=growth(s)) for s in specs]
        self.cgroups: dict[str, Any] = {}
        self.tasks: dict[tuple[str, int], Any] = {}
        self.fds: dict[int, int] = {}           # result index -> fd
        self.by_name: dict[str, int] = {}       # map name -> fd (init_slots)
        self.spare: dict[int, list[bytes]] = {}  # result index -> keys the churn rewrites
        self.values: dict[int, bytes | None] = {}  # result index -> the value fills write
        self._owners = 0                         # local storage owners made so far
        self._scratch: Any = None

    # -- machine
    def cgroup(self, path: str) -> Any:
        cg = self.cgroups.get(path)
        if cg is None:
            parent = self.system.root
            if path != "/":
                head, _, leaf = path.rpartition("/")
                parent = self.cgroup(head or "/")
                cg = parent.mkdir(leaf)
            else:
                cg = parent
            self.cgroups[path] = cg
        return cg

    def task(self, path: str, uid: int) -> Any:
        t = self.tasks.get((path, uid))
        if t is None:
            t = self.system.spawn(cgroup=self.cgroup(path), uid=uid)
            # a loader with root's capabilities; its uid says whose locked_vm pays (5.10),
            # and no RLIMIT_MEMLOCK stops it: the plan says what the limit must be
            t.caps = range(uapi.CAP_LAST_CAP + 1)
            t.setrlimit(pybpfmem.RLIMIT_MEMLOCK, U64_MAX, U64_MAX)
            self.tasks[(path, uid)] = t
        return t

    def usage(self, cg: Any) -> int:
        """memory.current of cg after deferred work and with the stocks drained."""
        self.system.run_deferred()
        self.system.drain_all_stock()
        return int(cg.usage_pages) * self.page

    def scratch_task(self) -> Any:
        """A task in a cgroup of its own for the objects fills reference (an inner map,
        a net device): their memory is not the plan's."""
        if self._scratch is None:
            self._scratch = self.system.spawn(cgroup=self.system.root.mkdir("plan-scratch"))
            self._scratch.setrlimit(pybpfmem.RLIMIT_MEMLOCK, U64_MAX, U64_MAX)
        return self._scratch

    # -- phases
    def run(self) -> PlanResult:
        for r in self.results:
            self.task(r.spec.cgroup, r.spec.uid)
        base = {p: self.usage(cg) for p, cg in self.cgroups.items()}
        for i, r in enumerate(self.results):
            self.create(i, r)
        created = {p: self.usage(cg) for p, cg in self.cgroups.items()}
        for i, r in enumerate(self.results):
            if r.status == "planned":
                self.fill(i, r)
        full = {p: self.usage(cg) for p, cg in self.cgroups.items()}
        for i, r in enumerate(self.results):
            if r.status == "planned":
                self.churn(i, r)
        probes: dict[tuple[Any, ...], tuple[str | None, str]] = {}
        for r in self.results:
            if r.status == "planned":
                self.at_limit(r, probes)
        rlimit = None
        prof = get_profile(self.opts.profile)
        if prof.bpf.rlimit:
            rlimit = {uid: self.system.locked_vm(uid) * self.page
                      for uid in sorted({r.spec.uid for r in self.results})}
        slack = stock_slack(self.opts)
        cgroups: dict[str, CgroupResult] = {}
        failed = [r for r in self.results if r.status == "failed"]
        for p in self.cgroups:
            if p not in {r.spec.cgroup for r in self.results}:
                continue
            # memory.current of a cgroup counts its subtree: so do its churn and failures
            mine = [r for r in self.results if _within(r.spec.cgroup, p)]
            c = CgroupResult(p, created[p] - base[p], full[p] - base[p], stock_slack=slack)
            c.churn_peak = sum(r.churn_peak or 0 for r in mine)
            if prof.bpf.account and not any(r.status == "failed" for r in mine):
                c.recommended_memory_max = _round_mib(c.charged_when_full + c.churn_peak + slack)
            cgroups[p] = c
        complete = not any(r.status == "not_planned" or (r.status == "planned" and
                                                         r.charged_when_full is None)
                           for r in self.results)
        return PlanResult(self.opts, self.results, cgroups, rlimit,
                          stock_slack_rule(self.opts), complete, failed)

    def create(self, i: int, r: MapResult) -> None:
        s = r.spec
        if s.unplannable:
            r.status, r.error = "not_planned", s.unplannable
            return
        max_type = get_profile(self.opts.profile).uapi.max_map_type
        if s.type == uapi.BPF_MAP_TYPE_STRUCT_OPS and s.type <= max_type:
            r.status, r.error = "not_planned", ("struct_ops map: its value is a struct "
                                                "bpf_struct_ops_* of the kernel's BTF")
            return
        if s.type <= max_type and map_class(s.type) is None:
            r.status, r.error = "not_planned", f"the model has no {s.type_name} map"
            return
        task, cg = self.task(s.cgroup, s.uid), self.cgroup(s.cgroup)
        before = self.usage(cg)
        try:
            with task.running(cpu=0):
                fd = self._create(task, s)
                self.fds[i] = fd
                self.by_name[s.name] = fd
                for slot, target in s.init_slots:
                    if target not in self.by_name:
                        raise BpfError(errno.EBADF, f"libbpf init_map_in_map_slots(): slot "
                                       f"[{slot}] names map {target!r}, not created before it")
                    task.bpf_map_update_elem(fd, slot.to_bytes(4, "little"),
                                             self.by_name[target].to_bytes(4, "little"))
        except BpfError as exc:
            r.status, r.errno, r.error = "failed", errname(exc.errno), exc.strerror or str(exc)
            if exc.errno == errno.ENOMEM:
                r.error += (f" (the plan sets no memory.max: this fails at any limit on a "
                            f"machine of {self.opts.ram >> 30} GiB)")
            elif "nr_node_ids" in r.error:
                r.error += " (the planned machine has one NUMA node)"
            return
        r.charged_at_creation = self.usage(cg) - before
        r.memlock_empty = int(task.fdinfo(fd)["memlock"])

    def _create(self, task: Any, s: MapSpec) -> int:
        kw: dict[str, Any] = dict(map_name=s.name[:uapi.BPF_OBJ_NAME_LEN - 1],
                                  map_extra=s.map_extra, numa_node=s.numa_node)
        if needs_btf_ids(s):        # loaders create local storage with BTF (the kernel insists)
            kw.update(btf_key_type_id=s.btf_key_type_id or 1,
                      btf_value_type_id=s.btf_value_type_id or 1)
        if s.inner is not None:
            # bpf_object__create_map(): the inner template, the outer with its fd, then
            # the template destroyed (libbpf keeps no fd of it)
            inner = self._create(task, s.inner)
            try:
                return int(task.bpf_map_create(s.type, s.key_size, s.value_size, s.max_entries,
                                               s.flags, inner_map_fd=inner, **kw))
            finally:
                task.close(inner)
        return int(task.bpf_map_create(s.type, s.key_size, s.value_size, s.max_entries,
                                       s.flags, **kw))

    def _map(self, i: int) -> Any:
        s = self.results[i].spec
        task = self.task(s.cgroup, s.uid)
        mid = task.bpf_obj_get_info_by_fd(self.fds[i])["id"]
        return self.system.bpf_map_by_id(mid)

    def _value(self, i: int) -> bytes | None:
        """The value a fill writes: a reference to an inner map of the template's shape,
        a net device's ifindex; None for zeros.  Made once per map."""
        if i not in self.values:
            self.values[i] = self._make_value(i)
        return self.values[i]

    def _make_value(self, i: int) -> bytes | None:
        s = self.results[i].spec
        if s.type == uapi.BPF_MAP_TYPE_HASH_OF_MAPS:
            assert s.inner is not None
            scratch = self.scratch_task()
            with scratch.running(cpu=0):
                inner = self._create(scratch, s.inner)
            fd = scratch.dup_fd_to(self.task(s.cgroup, s.uid), inner)
            return int(fd).to_bytes(4, "little")
        if s.type in (uapi.BPF_MAP_TYPE_DEVMAP, uapi.BPF_MAP_TYPE_DEVMAP_HASH):
            dev = self.system.create_netdev(f"plan{i}")
            return int(dev.ifindex).to_bytes(4, "little") + bytes(s.value_size - 4)
        return None

    def fill(self, i: int, r: MapResult) -> None:
        s = r.spec
        r.charged_when_full = r.charged_at_creation
        r.memlock_full = r.memlock_empty
        if r.growth == OWNERS:
            self.fill_owners(i, r)
            return
        if r.growth == OBJECTS:
            r.note = (f"entries hold {_OBJECT_ENTRIES[s.type]}: their charge is not planned "
                      f"(creation only)")
            r.charged_when_full = None
            return
        m = self._map(i)
        r.entries_when_full = bpffill.capacity(m) if s.type in bpffill.FILLABLE else None
        if r.growth == STATIC:
            return
        task, cg = self.task(s.cgroup, s.uid), self.cgroup(s.cgroup)
        n = r.entries_when_full or 0
        if n < s.max_entries and s.type != uapi.BPF_MAP_TYPE_DEVMAP:
            r.note = f"full at {n:,} entries: its {s.key_size}-byte key has no more values"
        before = self.usage(cg)
        try:
            self.spare[i] = bpffill.fill(task, self.fds[i], n, spare=min(self.opts.churn, n),
                                         value=self._value(i))
        except BpfError as exc:
            r.status, r.errno = "failed", errname(exc.errno)
            r.error = f"filling it to {n:,} entries: {exc.strerror or exc}"
            return
        assert r.charged_at_creation is not None     # set when the map was created
        r.charged_when_full = r.charged_at_creation + self.usage(cg) - before
        r.memlock_full = int(task.fdinfo(self.fds[i])["memlock"])

    def owner_keys(self, mtype: int, task: Any, n: int) -> list[bytes]:
        """n new owners of a local storage (sockets, tasks, inodes or cgroups), made in the
        scratch cgroup (their own memory is not the plan's), as fds of ``task``: the keys a
        syscall update of the storage takes."""
        scratch = self.scratch_task()
        home = scratch.cgroup
        keys = []
        for _ in range(n):
            self._owners += 1
            j = self._owners
            if mtype == uapi.BPF_MAP_TYPE_SK_STORAGE:
                fd = scratch.create_socket()
            elif mtype == uapi.BPF_MAP_TYPE_TASK_STORAGE:
                fd = scratch.pidfd_open(self.system.spawn(cgroup=home))
            elif mtype == uapi.BPF_MAP_TYPE_INODE_STORAGE:
                fd = scratch.open_file(f"/plan/owner{j}")
            else:
                fd = scratch.open_cgroup(home.mkdir(f"owner{j}"))
            keys.append(scratch.dup_fd_to(task, fd).to_bytes(4, "little"))
        return keys

    def fill_owners(self, i: int, r: MapResult) -> None:
        """A local storage when every owner it is given has its element: one syscall
        update per owner (bpf_local_storage_update(): the element, and the owner's
        struct bpf_local_storage with its first element)."""
        s = r.spec
        if s.type not in _OWNERS:
            r.note = ("its storage is allocated per cgroup a program using it is attached to: "
                      "not planned (creation only)")
            r.charged_when_full = None
            return
        if s.owners is None:
            r.note = (f"an element per owner ({_OWNERS[s.type]}): not in the totals; give their "
                      f"number (--owners {s.name}=N, or owners = N in a [[map]])")
            r.charged_when_full = None
            return
        task, cg = self.task(s.cgroup, s.uid), self.cgroup(s.cgroup)
        before = self.usage(cg)
        keys = self.owner_keys(s.type, task, s.owners)
        value = bytes(s.value_size)
        try:
            with task.running(cpu=0):
                for k in keys:
                    task.bpf_map_update_elem(self.fds[i], k, value)
        except BpfError as exc:
            r.status, r.errno = "failed", errname(exc.errno)
            r.error = f"giving {s.owners:,} owners an element: {exc.strerror or exc}"
            return
        r.entries_when_full = s.owners
        assert r.charged_at_creation is not None     # set when the map was created
        r.charged_when_full = r.charged_at_creation + self.usage(cg) - before
        r.memlock_full = int(task.fdinfo(self.fds[i])["memlock"])
        self.spare[i] = keys[:self.opts.churn]

    def churn(self, i: int, r: MapResult) -> None:
        s = r.spec
        if r.growth not in (ENTRIES, OWNERS) or r.charged_when_full is None:
            r.churn_peak = 0 if r.charged_when_full is not None else None
            return
        if not get_profile(self.opts.profile).bpf.account:
            r.churn_peak = 0            # 5.10: map memory is not charged to memory cgroups
            return
        keys = self.spare.get(i, [])
        task, cg = self.task(s.cgroup, s.uid), self.cgroup(s.cgroup)
        fd = self.fds[i]
        m = self._map(i)
        value = bytes(m.syscall_value_size())
        if s.type == uapi.BPF_MAP_TYPE_HASH_OF_MAPS or s.type in (uapi.BPF_MAP_TYPE_DEVMAP,
                                                                   uapi.BPF_MAP_TYPE_DEVMAP_HASH):
            value = self._value(i) or value
        steady = self.usage(cg)
        peak = steady
        self.system.bpf_settle = False          # no RCU grace period until every cpu is done
        try:
            for cpu in range(self.opts.cpus):
                with task.running(cpu=cpu):
                    for k in keys:
                        task.bpf_map_delete_elem(fd, k)
                peak = max(peak, self._held(cg))
                with task.running(cpu=cpu):
                    for k in keys:
                        task.bpf_map_update_elem(fd, k, value)
                peak = max(peak, self._held(cg))
        except BpfError as exc:
            r.note = f"churn stopped: {errname(exc.errno)}: {exc.strerror}"
        finally:
            self.system.bpf_settle = True
            self.system.run_deferred()
        r.churn_peak = peak - steady

    def _held(self, cg: Any) -> int:
        """memory.current with the stocks drained, deferred work (RCU) still pending."""
        self.system.drain_all_stock()
        return int(cg.usage_pages) * self.page

    def at_limit(self, r: MapResult, probes: dict[tuple[Any, ...], tuple[str | None, str]]) -> None:
        s = r.spec
        prof = get_profile(self.opts.profile)
        if r.growth == STATIC:
            r.at_memory_max = "no allocation"
            r.at_memory_max_detail = ("preallocated: its updates allocate nothing"
                                      if s.type not in _LRU else
                                      "preallocated: a full LRU map evicts")
            return
        if not prof.bpf.account:
            r.at_memory_max = "not charged"
            r.at_memory_max_detail = "5.10 charges map memory to RLIMIT_MEMLOCK at creation"
            return
        if r.growth not in (ENTRIES, OWNERS) or r.charged_when_full is None:
            return
        key = (s.type, s.key_size, s.value_size, s.flags, s.inner.shape if s.inner else None)
        if key not in probes:
            try:
                probes[key] = probe_at_limit(s, self.opts)
            except BpfError as exc:     # pragma: no cover - the map was made once already
                probes[key] = (None, f"the probe failed: {errname(exc.errno)}: {exc.strerror}")
        r.at_memory_max, r.at_memory_max_detail = probes[key]


def probe_at_limit(spec: MapSpec, opts: PlanOptions) -> tuple[str, str]:
    """On a scratch machine: the map with a few entries, memory.max set to what its cgroup
    holds, then new entries one by one: the first error, or the first charge past the
    limit."""
    # the update path does not depend on max_entries: room for the probe's updates
    room = max(spec.max_entries, PROBE_FILL + PROBE_TRIES)
    if spec.type == uapi.BPF_MAP_TYPE_DEVMAP or spec.type in _OWNERS:
        room = spec.max_entries
    planner = _Planner([dataclasses.replace(spec, cgroup="/probe", uid=0, max_entries=room,
                                            init_slots=())], opts)
    try:
        task, cg = planner.task("/probe", 0), planner.cgroup("/probe")
        with task.running(cpu=0):
            fd = planner.fds[0] = planner._create(task, planner.results[0].spec)
        m = planner._map(0)
        owners = spec.type in _OWNERS
        cap = PROBE_FILL + PROBE_TRIES if owners else bpffill.capacity(m)
        value = planner._value(0)
        first = min(PROBE_FILL, cap // 2)
        if owners:
            keys = planner.owner_keys(spec.type, task, cap)
            with task.running(cpu=0):
                for k in keys[:first]:
                    task.bpf_map_update_elem(fd, k, bytes(spec.value_size))
        else:
            bpffill.fill(task, fd, first, value=value)
        limit = planner.usage(cg)
        cg.write("memory.max", str(limit))
        value = value if value is not None else bytes(m.syscall_value_size())
        last = min(cap, first + PROBE_TRIES)
        for j in range(first, last):
            try:
                with task.running(cpu=0):
                    task.bpf_map_update_elem(fd, keys[j] if owners else bpffill.key_at(m, j),
                                             value)
            except BpfError as exc:
                return (errname(exc.errno), f"an update fails once its allocation needs "
                        f"memory past memory.max: {exc.strerror}")
            if int(cg.usage_pages) * opts.page_size > limit:
                return ("force-charged", "an update's allocation is charged past memory.max "
                        "(GFP_ATOMIC: the charge is forced)")
        return ("fits", f"{last - first} updates at memory.max needed no new memory")
    finally:
        planner.system.close()


def plan(specs: list[MapSpec], opts: PlanOptions) -> PlanResult:
    """Plan the maps on one profile (see the module docstring)."""
    planner = _Planner(specs, opts)
    try:
        return planner.run()
    finally:
        planner.system.close()
