"""The measurement campaign behind docs/live-measurements.md.

``python -m pybpfmem.live.measure [section ...]`` runs the live cases and prints
markdown.  Sections: shapes, inserts, limits, shared, errnos.
"""
from __future__ import annotations

import statistics
import sys
from typing import Any

from . import bpf as _bpf
from .matrix import ERRNO_SPECS
from .runner import run_scenario

NO_PREALLOC = _bpf.BPF_F_NO_PREALLOC

# (label, create-step extras, pre-steps)
def shapes() -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    k4v64 = {"key": 4, "value": 64, "max": 1000}
    inner = [{"op": "create", "map": "inner", "type": "ARRAY", "key": 4, "value": 64, "max": 1000}]
    S: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
        ("ARRAY k4 v64 m1000", {"type": "ARRAY", **k4v64}, []),
        ("ARRAY k4 v8 m10000", {"type": "ARRAY", "key": 4, "value": 8, "max": 10000}, []),
        ("ARRAY k4 v4096 m1000", {"type": "ARRAY", "key": 4, "value": 4096, "max": 1000}, []),
        ("ARRAY k4 v64 m1000 MMAPABLE", {"type": "ARRAY", **k4v64, "flags": _bpf.BPF_F_MMAPABLE}, []),
        ("PERCPU_ARRAY k4 v64 m1000", {"type": "PERCPU_ARRAY", **k4v64}, []),
        ("HASH k4 v64 m1000", {"type": "HASH", **k4v64}, []),
        ("HASH k16 v64 m1000", {"type": "HASH", "key": 16, "value": 64, "max": 1000}, []),
        ("HASH k4 v8 m10000", {"type": "HASH", "key": 4, "value": 8, "max": 10000}, []),
        ("HASH k4 v64 m1000 NO_PREALLOC", {"type": "HASH", **k4v64, "flags": NO_PREALLOC}, []),
        ("HASH k4 v8 m10000 NO_PREALLOC", {"type": "HASH", "key": 4, "value": 8, "max": 10000, "flags": NO_PREALLOC}, []),
        ("LRU_HASH k4 v64 m1000", {"type": "LRU_HASH", **k4v64}, []),
        ("LRU_HASH k4 v64 m1000 NO_COMMON_LRU", {"type": "LRU_HASH", **k4v64, "flags": _bpf.BPF_F_NO_COMMON_LRU}, []),
        ("PERCPU_HASH k4 v64 m1000", {"type": "PERCPU_HASH", **k4v64}, []),
        ("PERCPU_HASH k4 v64 m1000 NO_PREALLOC", {"type": "PERCPU_HASH", **k4v64, "flags": NO_PREALLOC}, []),
        ("LRU_PERCPU_HASH k4 v64 m1000", {"type": "LRU_PERCPU_HASH", **k4v64}, []),
        ("RINGBUF 1MiB", {"type": "RINGBUF", "key": 0, "value": 0, "max": 1 << 20}, []),
        ("USER_RINGBUF 1MiB", {"type": "USER_RINGBUF", "key": 0, "value": 0, "max": 1 << 20}, []),
        ("QUEUE v64 m1000", {"type": "QUEUE", "key": 0, "value": 64, "max": 1000}, []),
        ("STACK v64 m1000", {"type": "STACK", "key": 0, "value": 64, "max": 1000}, []),
        ("LPM_TRIE k8 v64 m1000", {"type": "LPM_TRIE", "key": 8, "value": 64, "max": 1000, "flags": NO_PREALLOC}, []),
        ("BLOOM_FILTER v64 m1000", {"type": "BLOOM_FILTER", "key": 0, "value": 64, "max": 1000}, []),
        ("BLOOM_FILTER v8 m10000 extra3", {"type": "BLOOM_FILTER", "key": 0, "value": 8, "max": 10000, "map_extra": 3}, []),
        ("DEVMAP k4 v4 m1000", {"type": "DEVMAP", "key": 4, "value": 4, "max": 1000}, []),
        ("DEVMAP_HASH k4 v4 m1000", {"type": "DEVMAP_HASH", "key": 4, "value": 4, "max": 1000}, []),
        ("CPUMAP k4 v4 m2", {"type": "CPUMAP", "key": 4, "value": 4, "max": 2}, []),
        ("CPUMAP k4 v4 m64", {"type": "CPUMAP", "key": 4, "value": 4, "max": 64}, []),
        ("XSKMAP k4 v4 m1000", {"type": "XSKMAP", "key": 4, "value": 4, "max": 1000}, []),
        ("SOCKMAP k4 v4 m1000", {"type": "SOCKMAP", "key": 4, "value": 4, "max": 1000}, []),
        ("SOCKHASH k4 v4 m1000", {"type": "SOCKHASH", "key": 4, "value": 4, "max": 1000}, []),
        ("REUSEPORT_SOCKARRAY k4 v4 m1000", {"type": "REUSEPORT_SOCKARRAY", "key": 4, "value": 4, "max": 1000}, []),
        ("STACK_TRACE k4 v64 m1000", {"type": "STACK_TRACE", **k4v64}, []),
        ("STACK_TRACE k4 v1016 m1000", {"type": "STACK_TRACE", "key": 4, "value": 1016, "max": 1000}, []),
        ("PROG_ARRAY k4 v4 m1000", {"type": "PROG_ARRAY", "key": 4, "value": 4, "max": 1000}, []),
        ("PERF_EVENT_ARRAY k4 v4 m2", {"type": "PERF_EVENT_ARRAY", "key": 4, "value": 4, "max": 2}, []),
        ("CGROUP_ARRAY k4 v4 m1000", {"type": "CGROUP_ARRAY", "key": 4, "value": 4, "max": 1000}, []),
        ("ARRAY_OF_MAPS k4 v4 m1000", {"type": "ARRAY_OF_MAPS", "key": 4, "value": 4, "max": 1000, "inner": "inner"}, inner),
        ("HASH_OF_MAPS k4 v4 m1000", {"type": "HASH_OF_MAPS", "key": 4, "value": 4, "max": 1000, "inner": "inner"}, inner),
        ("CGROUP_STORAGE k16 v64", {"type": "CGROUP_STORAGE", "key": 16, "value": 64, "max": 0}, []),
        ("CGROUP_STORAGE k8 v64", {"type": "CGROUP_STORAGE", "key": 8, "value": 64, "max": 0}, []),
        ("PERCPU_CGROUP_STORAGE k16 v64", {"type": "PERCPU_CGROUP_STORAGE", "key": 16, "value": 64, "max": 0}, []),
        ("SK_STORAGE v64", {"type": "SK_STORAGE", "key": 4, "value": 64, "max": 0, "flags": NO_PREALLOC, "btf": "storage"}, []),
        ("TASK_STORAGE v64", {"type": "TASK_STORAGE", "key": 4, "value": 64, "max": 0, "flags": NO_PREALLOC, "btf": "storage"}, []),
        ("INODE_STORAGE v64", {"type": "INODE_STORAGE", "key": 4, "value": 64, "max": 0, "flags": NO_PREALLOC, "btf": "storage"}, []),
        ("CGRP_STORAGE v64", {"type": "CGRP_STORAGE", "key": 4, "value": 64, "max": 0, "flags": NO_PREALLOC, "btf": "storage"}, []),
    ]
    return S


def _rng(xs: list[int]) -> str:
    if not xs:
        return "-"
    lo, hi = min(xs), max(xs)
    med = int(statistics.median(xs))
    return f"{med}" if lo == hi else f"{med} [{lo}..{hi}]"


def run_shapes(reps: int = 3, out=sys.stdout, only: str = "") -> None:
    """Each create in a fresh cgroup (matrix._shape), so its kmem is its own."""
    from .matrix import _shape
    print("| map | memlock | kmem at create (bytes) | kmem freed at close | usage at create | errno |", file=out)
    print("|---|---|---|---|---|---|", file=out)
    for label, spec, pre in shapes():
        if only and only not in label:
            continue
        r = run_scenario(_shape(label, spec, reps=reps, pre=pre).scenario)
        obs = r.steps[len(pre):]
        cr = [s for s in obs if s["op"] == "create" and s.get("map_id") is not None]
        cl = [s for s in obs if s["op"] == "close" and s["ok"]]
        errs = sorted({s["errno"] for s in r.steps if s["errno"] is not None})
        mem = sorted({s["memlock"] for s in cr})
        print(f"| {label} | {', '.join(map(str, mem)) or '-'} | "
              f"{_rng([s['delta'][s['cgroup']]['kmem'] for s in cr])} | "
              f"{_rng([-s['delta'][s['cgroup']]['kmem'] for s in cl])} | "
              f"{_rng([s['delta'][s['cgroup']]['usage'] for s in cr])} | "
              f"{','.join(map(str, errs)) or '-'}{' ERR ' + r.error if r.error else ''} |", file=out, flush=True)


def run_entry(reps: int = 3, out=sys.stdout) -> None:
    for _ in range(reps):
        r = run_scenario({"steps": [{"op": "noop"}, {"op": "noop"}]})
        print(f"- before the first step (the child forked, warmed up at home, one "
              f"object allocated and freed in A per reading): A {r.entry['A']}; empty "
              f"step deltas kmem {[s['delta']['A']['kmem'] for s in r.steps]}; after "
              f"exit: A {r.final['A']}, case root {r.final['_root']}", file=out, flush=True)


def run_inserts(out=sys.stdout) -> None:
    print("| map | N | memlock after | kmem delta | kmem/N | usage delta |", file=out)
    print("|---|---|---|---|---|---|", file=out)
    cases = [
        ("HASH k4 v64 NO_PREALLOC", {"type": "HASH", "key": 4, "value": 64, "max": 20000, "flags": NO_PREALLOC}),
        ("HASH k4 v8 NO_PREALLOC", {"type": "HASH", "key": 4, "value": 8, "max": 20000, "flags": NO_PREALLOC}),
        ("HASH k16 v64 NO_PREALLOC", {"type": "HASH", "key": 16, "value": 64, "max": 20000, "flags": NO_PREALLOC}),
        ("PERCPU_HASH k4 v64 NO_PREALLOC", {"type": "PERCPU_HASH", "key": 4, "value": 64, "max": 20000, "flags": NO_PREALLOC}),
        ("HASH k4 v64 prealloc", {"type": "HASH", "key": 4, "value": 64, "max": 20000}),
        ("LPM_TRIE k8 v64", {"type": "LPM_TRIE", "key": 8, "value": 64, "max": 20000, "flags": NO_PREALLOC}),
    ]
    for label, spec in cases:
        for n in (100, 1000, 10000):
            r = run_scenario({"steps": [{"op": "create", "map": "m", **spec},
                                        {"op": "insert", "map": "m", "n": n},
                                        {"op": "delete", "map": "m", "n": n},
                                        {"op": "close", "map": "m"}]})
            if r.error or len(r.steps) < 2:
                print(f"| {label} | {n} | error {r.error} {r.steps} |", file=out)
                continue
            ins = r.steps[1]
            d = ins["delta"]["A"]
            dl = r.steps[2]["delta"]["A"]["kmem"]
            print(f"| {label} | {n} | {ins['memlock']} (empty {r.steps[0]['memlock']}) | {d['kmem']} "
                  f"| {d['kmem'] / n:.1f} | {d['usage']} | (delete all: kmem {dl}, memlock {r.steps[2]['memlock']})",
                  file=out, flush=True)


def _array_fits(limit: int, entries: int) -> tuple[bool, Any]:
    r = run_scenario({"cgroups": {"A": {"limit": limit}},
                      "steps": [{"op": "create", "map": "m", "type": "ARRAY", "key": 4,
                                 "value": 4096, "max": entries}]})
    st = r.steps[0] if r.steps else {}
    if r.killed_by:
        return False, f"killed by signal {r.killed_by}"
    if r.error:
        return False, r.error
    return bool(st.get("ok")), st.get("errno")


def run_limits(out=sys.stdout, only: str = "") -> None:
    for limit in ((8 << 20, 64 << 20) if not only else ()):
        lo, hi = 0, limit // 4096 + 16
        outcomes: dict[Any, int] = {}
        while hi - lo > 1:
            mid = (lo + hi) // 2
            ok, why = _array_fits(limit, mid)
            if ok:
                lo = mid
            else:
                hi = mid
                outcomes[why] = outcomes.get(why, 0) + 1
        base = run_scenario({"cgroups": {"A": {"limit": limit}}, "steps": [{"op": "noop"}]})
        print(f"- limit {limit >> 20} MiB: largest ARRAY value 4096 = max_entries {lo} "
              f"({lo * 4096} B of values); failures seen {outcomes}; child baseline usage "
              f"after entry {base.entry['A']['usage']}", file=out, flush=True)
    for limit in (8 << 20, 16 << 20):
        r = run_scenario({"cgroups": {"A": {"limit": limit}},
                          "steps": [{"op": "create", "map": "m", "type": "HASH", "key": 4,
                                     "value": 64, "max": 1 << 17, "flags": NO_PREALLOC},
                                    {"op": "insert", "map": "m", "n": 1 << 17}]})
        ins = r.steps[1] if len(r.steps) > 1 else {"steps": r.steps, "killed": r.killed_by, "err": r.error}
        print(f"- limit {limit >> 20} MiB, HASH k4 v64 NO_PREALLOC max 2^17: inserts succeeded "
              f"{ins.get('count')}, errno {ins.get('errno')}, killed {ins.get('killed')}; "
              f"entry usage {r.entry.get('A', {}).get('usage')}; insert deltas {ins.get('delta')}",
              file=out, flush=True)


def run_shared(out=sys.stdout) -> None:
    r = run_scenario({"cgroups": {"A": {}, "B": {}}, "steps": [
        {"op": "create", "map": "m", "type": "HASH", "key": 4, "value": 64, "max": 100000,
         "flags": NO_PREALLOC},
        {"op": "move", "cgroup": "B"},
        {"op": "insert", "map": "m", "n": 5000},
        {"op": "close", "map": "m"}]})
    for s in r.steps:
        print(f"- shared: step {s['op']}: ok {s['ok']} errno {s['errno']} deltas {s['delta']}", file=out)
    _rmdir_case(out)


def _rmdir_case(out) -> None:
    """Map created in A (by a child in A), then held only by our fd; A rmdir'ed."""
    from .verify import live_rmdir
    r = live_rmdir(5000, 1000)
    print(f"- rmdir: map made by a child in A (5000 no-prealloc inserts), fd held by us "
          f"(outside the case), child exited, A removed: case root minus A before "
          f"{r['kept']}; 1000 more inserts by us charge the case root {r['more']}; case "
          f"root after close {r['after_close']}", file=out, flush=True)


# the invalid-attribute cases are the verify matrix's (one list)
ERRNO_CASES = ERRNO_SPECS


def run_errnos(out=sys.stdout) -> None:
    import errno as E
    print("| attrs | errno |", file=out)
    print("|---|---|", file=out)
    for label, spec in ERRNO_CASES:
        try:
            m = _bpf.map_create(spec["type"], spec["key"], spec["value"], spec["max"],
                                spec.get("flags", 0), map_extra=spec.get("map_extra", 0))
            res = f"ok (memlock {m.memlock})"
            m.close()
        except OSError as e:
            res = f"{e.errno} ({E.errorcode.get(e.errno, 'ENOTSUPP' if e.errno == 524 else '?')})"
        print(f"| {label} | {res} |", file=out, flush=True)


def main(argv: list[str]) -> int:
    from .session import LiveSession
    with LiveSession(exit_on_signal=True, name="pybpfmem.live.measure"):
        return _main(argv)


def _main(argv: list[str]) -> int:
    secs = argv or ["entry", "shapes", "inserts", "limits", "shared", "errnos"]
    for s in secs:
        name, _, arg = s.partition(":")
        print(f"\n## {s}\n", flush=True)
        if arg:
            globals()["run_" + name](only=arg)
        else:
            globals()["run_" + name]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
