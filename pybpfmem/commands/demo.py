"""``pybpfmem demo``: the seed series' cover letter, made executable.

The same BPF workload runs on three simulated kernels side by side:
"5.10" (RLIMIT_MEMLOCK accounting), "5.11" (the seed: memcg accounting) and
"6.18" (today's kernel).  Each act of the story is one function that returns
plain data; ``render`` turns the data into tables, ``--json`` prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pybpfmem
from pybpfmem import bpf as uapi
from pybpfmem.bpf.errors import errname
from pybpfmem.commands.common import CommandError, check_plot_path

#: the story's three kernels: before the seed series (rlimit), the series, today
STORY_PROFILES = ("5.10", "5.11", "6.18")
MiB = 1 << 20
KiB = 1 << 10


@dataclass
class Timeline:
    """What --plot draws, after every step: memory.current and memory.max of each
    cgroup, and uid 0's locked_vm and RLIMIT_MEMLOCK (the 5.10 limit)."""

    steps: list[str] = field(default_factory=list)
    usage: dict[str, list[int | None]] = field(default_factory=dict)
    limits: dict[str, list[int | None]] = field(default_factory=dict)    # memory.max; None: "max"
    locked_vm: list[int] = field(default_factory=list)                   # bytes, uid 0
    rlimit_memlock: list[int | None] = field(default_factory=list)       # uid 0's; None: unlimited

    def record(self, system: pybpfmem.System, label: str) -> None:
        """One point per cgroup of `system`; cgroups of the other acts' Systems get
        None (a gap in the plot: each act runs on a fresh machine)."""
        self.steps.append(label)
        n = len(self.steps)
        for cg in _walk(system.root):
            if cg is system.root:
                continue
            limit = cg.read("memory.max").strip()
            for table, value in ((self.usage, cg.usage_pages * system.page_size),
                                 (self.limits, None if limit == "max" else int(limit))):
                series = table.setdefault(cg.path, [])
                series.extend([None] * (n - 1 - len(series)))
                series.append(value)
        for table in (self.usage, self.limits):
            for series in table.values():
                series.extend([None] * (n - len(series)))
        self.locked_vm.append(system.locked_vm(0) * system.page_size)
        tasks = [cast(pybpfmem.Task, t) for t in system.tasks if t.uid == 0]
        soft = min((t.getrlimit(pybpfmem.RLIMIT_MEMLOCK)[0] for t in tasks),
                   default=pybpfmem.RLIM_INFINITY)
        self.rlimit_memlock.append(None if soft == pybpfmem.RLIM_INFINITY else soft)

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "memory.current": self.usage, "memory.max": self.limits,
                "locked_vm": self.locked_vm, "RLIMIT_MEMLOCK": self.rlimit_memlock}


def _walk(cg: Any) -> Iterator[Any]:
    yield cg
    for child in cg.children:
        yield from _walk(child)


def _errno_of(fn: Callable[[], Any]) -> tuple[Any, OSError | None]:
    try:
        return fn(), None
    except OSError as exc:
        return None, exc


def _err(exc: OSError | None) -> dict[str, Any] | None:
    if exc is None:
        return None
    return {"errno": exc.errno, "name": errname(exc.errno or 0), "message": exc.strerror or str(exc)}


def _system(profile: str) -> pybpfmem.System:
    return pybpfmem.System(nr_cpus=2, page_size=4096, profile=profile, cgroup="v2", ram="4G")


def _current(cg: Any) -> int:
    return int(cg.read("memory.current"))


#: the memory.stat entries BPF memory shows in (those a profile's kernel has)
BPF_STATS = ("slab_unreclaimable", "percpu", "vmalloc", "kernel")


def _stat(cg: Any) -> dict[str, int]:
    """memory.stat's entries of BPF_STATS that this kernel has."""
    stat = cg.stat()
    return {k: stat[k] for k in BPF_STATS if k in stat}


def _stat_delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}


def _settle(system: pybpfmem.System) -> None:
    """Run deferred frees and drain the per-cpu stocks so counters are exact."""
    system.run_deferred()
    system.drain_all_stock()


def _hash_spec() -> dict[str, int]:
    # key 8, value 256, 2000 entries: the v5.10 estimate is about 160 pages
    return {"map_type": uapi.BPF_MAP_TYPE_HASH, "key_size": 8, "value_size": 256, "max_entries": 2000}


def act_shared_budget(profile: str, timeline: Timeline) -> dict[str, Any]:
    """Problem 1: RLIMIT_MEMLOCK is per user, so all root daemons share it."""
    system = _system(profile)
    a = system.root.mkdir("agent-a")
    b = system.root.mkdir("agent-b")
    for cg in (a, b):
        cg.write("memory.max", "8M")
    ta = system.spawn(cgroup=a, uid=0)
    tb = system.spawn(cgroup=b, uid=0)
    for task in (ta, tb):
        task.setrlimit(pybpfmem.RLIMIT_MEMLOCK, 1 * MiB, 1 * MiB)
    rows = []
    with ta.running(cpu=0):
        fd_a, err_a = _errno_of(lambda: ta.bpf_map_create(**_hash_spec(), map_name="a_flows"))
    rows.append({"who": "agent-a", "map": "hash 8/256 x2000", "error": _err(err_a)})
    timeline.record(system, "a: create hash")
    with tb.running(cpu=1):
        fd_b, err_b = _errno_of(lambda: tb.bpf_map_create(**_hash_spec(), map_name="b_flows"))
    rows.append({"who": "agent-b", "map": "hash 8/256 x2000", "error": _err(err_b)})
    timeline.record(system, "b: create hash")
    with tb.running(cpu=1):
        _, err_big = _errno_of(
            lambda: tb.bpf_map_create(uapi.BPF_MAP_TYPE_ARRAY, 4, 4096, 4096, map_name="b_big")
        )
    rows.append({"who": "agent-b", "map": "array 4/4096 x4096 (16 MiB)", "error": _err(err_big)})
    timeline.record(system, "b: create 16M array")
    with ta.running(cpu=0):
        _, err_a2 = _errno_of(lambda: ta.bpf_map_create(uapi.BPF_MAP_TYPE_ARRAY, 4, 64, 1000, map_name="a_small"))
    rows.append({"who": "agent-a", "map": "array 4/64 x1000", "error": _err(err_a2)})
    timeline.record(system, "a: create array")
    _settle(system)
    return {
        "rows": rows,
        "memory.current": {"agent-a": _current(a), "agent-b": _current(b)},
        "memory.stat": {"agent-a": _stat(a), "agent-b": _stat(b)},
        "locked_vm_uid0": system.locked_vm(0),
    }


EST_MAPS: list[tuple[str, dict[str, Any], int]] = [
    ("array 4/64 x1000", {"map_type": uapi.BPF_MAP_TYPE_ARRAY, "key_size": 4, "value_size": 64, "max_entries": 1000}, 0),
    ("percpu_array 4/64 x1000", {"map_type": uapi.BPF_MAP_TYPE_PERCPU_ARRAY, "key_size": 4, "value_size": 64, "max_entries": 1000}, 0),
    ("hash 4/64 x1000", {"map_type": uapi.BPF_MAP_TYPE_HASH, "key_size": 4, "value_size": 64, "max_entries": 1000}, 0),
    ("hash no-prealloc, 1000 keys", {"map_type": uapi.BPF_MAP_TYPE_HASH, "key_size": 4, "value_size": 64, "max_entries": 1000, "map_flags": uapi.BPF_F_NO_PREALLOC}, 1000),
    ("ringbuf 1 MiB", {"map_type": uapi.BPF_MAP_TYPE_RINGBUF, "key_size": 0, "value_size": 0, "max_entries": MiB}, 0),
]


def act_estimate_vs_real(profile: str) -> list[dict[str, Any]]:
    """Problem 3: the rlimit charge is a formula, not the memory allocated."""
    out = []
    for label, spec, inserts in EST_MAPS:
        system = _system(profile)
        cg = system.root.mkdir("m")
        task = system.spawn(cgroup=cg, uid=0)
        task.setrlimit(pybpfmem.RLIMIT_MEMLOCK, pybpfmem.RLIM_INFINITY, pybpfmem.RLIM_INFINITY)
        _settle(system)
        before, stat_before = _current(cg), _stat(cg)
        with task.running(cpu=0):
            fd, err = _errno_of(lambda: task.bpf_map_create(**spec))
            if fd is not None:
                for i in range(inserts):
                    task.bpf_map_update_elem(fd, i.to_bytes(spec["key_size"], "little"), bytes(spec["value_size"]))
        _settle(system)
        row: dict[str, Any] = {"map": label, "error": _err(err)}
        if fd is not None:
            row["memlock"] = int(task.fdinfo(fd)["memlock"])
            row["charged"] = _current(cg) - before
            row["memory.stat"] = _stat_delta(_stat(cg), stat_before)
            row["locked_vm_bytes"] = system.locked_vm(0) * system.page_size
        out.append(row)
    return out


HALF_WAY_MAP = "sessions"


def act_half_way_failure(profile: str) -> dict[str, Any]:
    """Problem 3 again: a creation failing part-way must leave nothing charged."""
    system = _system(profile)
    cg = system.root.mkdir("tight")
    cg.write("memory.max", "512K")
    # forked outside and moved in: its kernel stack stays where it was forked, so the
    # cgroup holds the map's memory only
    task = system.spawn(uid=0)
    task.migrate(cg)
    task.setrlimit(pybpfmem.RLIMIT_MEMLOCK, pybpfmem.RLIM_INFINITY, pybpfmem.RLIM_INFINITY)
    _settle(system)
    before = _current(cg)
    locked_before = system.locked_vm(0)
    # buckets (64 KiB) fit, the 2 MiB element area does not
    with task.running(cpu=0):
        _, err = _errno_of(lambda: task.bpf_map_create(uapi.BPF_MAP_TYPE_HASH, 4, 1024, 2000,
                                                       map_name=HALF_WAY_MAP))
    _settle(system)
    return {
        "map": f"{HALF_WAY_MAP} (hash 4/1024 x2000)",
        "error": _err(err),
        "memory.current before": before,
        # the memory page_counter's watermark (memory.peak): what the creation charged
        # before it failed and gave everything back
        "memory.peak": int(cg.info()["memory"]["watermark"]) * system.page_size,
        "memory.current after": _current(cg),
        "memory.stat after": _stat(cg),
        "locked_vm before": locked_before,
        "locked_vm after": system.locked_vm(0),
        "events": cg.events(),
    }


def act_remote_charging(profile: str, timeline: Timeline) -> dict[str, Any]:
    """Updates from another cgroup and from interrupts are charged to the map's cgroup."""
    system = _system(profile)
    owner_cg = system.root.mkdir("owner")
    other_cg = system.root.mkdir("other")
    owner = system.spawn(cgroup=owner_cg, uid=0)
    other = system.spawn(cgroup=other_cg, uid=0)
    for task in (owner, other):
        task.setrlimit(pybpfmem.RLIMIT_MEMLOCK, pybpfmem.RLIM_INFINITY, pybpfmem.RLIM_INFINITY)
    with owner.running(cpu=0):
        fd = owner.bpf_map_create(uapi.BPF_MAP_TYPE_HASH, 4, 64, 100000, uapi.BPF_F_NO_PREALLOC, map_name="flows")
        map_id = owner.bpf_obj_get_info_by_fd(fd)["id"]
    _settle(system)
    timeline.record(system, "owner: create hash")
    rows = []

    def measure(label: str, run: Callable[[], None]) -> None:
        _settle(system)
        o0, x0 = _current(owner_cg), _current(other_cg)
        s0 = _stat(owner_cg)["slab_unreclaimable"]
        run()
        _settle(system)
        rows.append({"updates from": label, "owner charged": _current(owner_cg) - o0,
                     "other charged": _current(other_cg) - x0,
                     "owner slab_unreclaimable": _stat(owner_cg)["slab_unreclaimable"] - s0,
                     "other slab_unreclaimable": _stat(other_cg)["slab_unreclaimable"]})
        timeline.record(system, label)

    other_fd = owner.dup_fd_to(other, fd)

    def from_other() -> None:
        with other.running(cpu=1):
            for i in range(2000):
                other.bpf_map_update_elem(other_fd, i.to_bytes(4, "little"), bytes(64))

    def from_irq() -> None:
        with system.in_interrupt(cpu=1):
            for i in range(2000, 4000):
                system.helper_map_update_elem(map_id, i.to_bytes(4, "little"), bytes(64))

    measure("task in /other (syscall)", from_other)
    measure("interrupt on cpu 1 (helper)", from_irq)
    return {"rows": rows}


def act_pinned_dying(profile: str, timeline: Timeline) -> dict[str, Any]:
    """A pinned map outlives its creator and keeps its cgroup's memory charged."""
    system = _system(profile)
    svc = system.root.mkdir("svc")
    job = svc.mkdir("job")
    task = system.spawn(cgroup=job, uid=0)
    task.setrlimit(pybpfmem.RLIMIT_MEMLOCK, pybpfmem.RLIM_INFINITY, pybpfmem.RLIM_INFINITY)
    with task.running(cpu=0):
        fd = task.bpf_map_create(uapi.BPF_MAP_TYPE_HASH, 4, 64, 10000, uapi.BPF_F_NO_PREALLOC, map_name="job_state")
        for i in range(1000):
            task.bpf_map_update_elem(fd, i.to_bytes(4, "little"), bytes(64))
        task.bpf_obj_pin(fd, "/sys/fs/bpf/job_state")
        task.close(fd)
    task.exit()
    _settle(system)
    timeline.record(system, "job: pin map, exit")
    states = [{"step": "pinned, task exited", "svc": _current(svc), "job": _current(job),
               "svc slab_unreclaimable": _stat(svc)["slab_unreclaimable"], "dying": system.dying_cgroups}]
    job.rmdir()
    _settle(system)
    timeline.record(system, "rmdir /svc/job")
    states.append({"step": "rmdir /svc/job", "svc": _current(svc), "job": None,
                   "svc slab_unreclaimable": _stat(svc)["slab_unreclaimable"], "dying": system.dying_cgroups})
    system.bpffs_unlink("/sys/fs/bpf/job_state")
    _settle(system)
    timeline.record(system, "unpin")
    states.append({"step": "unpinned (map freed)", "svc": _current(svc), "job": None,
                   "svc slab_unreclaimable": _stat(svc)["slab_unreclaimable"], "dying": system.dying_cgroups})
    return {"states": states}


def run(profiles: Sequence[str] = STORY_PROFILES) -> dict[str, Any]:
    result: dict[str, Any] = {"profiles": list(profiles), "acts": {}, "timelines": {}}
    for profile in profiles:
        timeline = Timeline()
        acts = {
            "shared_budget": act_shared_budget(profile, timeline),
            "estimate_vs_real": act_estimate_vs_real(profile),
            "half_way_failure": act_half_way_failure(profile),
            "remote_charging": act_remote_charging(profile, timeline),
            "pinned_dying": act_pinned_dying(profile, timeline),
        }
        result["acts"][profile] = acts
        result["timelines"][profile] = timeline.as_dict()
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pybpfmem demo",
        description="The seed series' story, made executable: one BPF workload on three simulated "
                    "kernels side by side, 5.10 (RLIMIT_MEMLOCK accounting), 5.11 (the seed: memcg "
                    "accounting) and 6.18 (today's kernel), one table per act.")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="draw memory.current of each cgroup over the steps")
    parser.add_argument("--profile", action="append", choices=pybpfmem.PROFILE_NAMES,
                        help=f"run these profiles (default: {', '.join(STORY_PROFILES)})")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.plot:
        try:
            check_plot_path("--plot", args.plot)
        except CommandError as exc:
            print(f"pybpfmem demo: {exc}", file=sys.stderr)
            return exc.exit_code
    result = run(tuple(args.profile) if args.profile else STORY_PROFILES)
    if args.plot:
        from pybpfmem.commands.plotting import plot_timelines

        rc = plot_timelines(result["timelines"], args.plot)
        if rc:
            return rc
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        from pybpfmem.commands.demo_render import render

        render(result)
    return 0
