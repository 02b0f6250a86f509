"""bpf_mem_alloc under churn: the kernel's htab memory benchmark, on the live kernel and
on the model (docs/fidelity.md, "bpf_mem_alloc under churn").

    sudo .venv/bin/python tools/experiments/htab_mem_churn.py [--rounds N] [--json]

The kernel's benchmark (tools/testing/selftests/bpf/benchs/bench_htab_mem.c with
run_bench_htab_mem.sh, programs in progs/htab_mem_bench.c) runs BPF programs that
update and delete elements of a hash map (key 4 bytes, value 8, max_entries
max(8192, 64 x CPUs), BPF_F_NO_PREALLOC unless --preallocated) from producer threads
in one cgroup, and reports the average and the peak of that cgroup's memory.current.
One "op" of a producer is 64 element operations (OP_BATCH):

* overwrite: 64 updates (BPF_ANY) of keys cpu, cpu + n, cpu + 2n, ... (n producers),
  the same keys every time: each update allocates an element and frees the old one;
* batch_add_batch_del: those 64 updates, then 64 deletes of the same keys;
* add_del_on_diff_cpu: producer pairs; one adds 64 keys (BPF_NOEXIST), then the other,
  on another CPU, deletes them: elements are allocated on one CPU and freed on another.

This driver makes the same element operations with bpf() from two worker processes
pinned to CPU 0 and CPU 1 (n = 2 producers on this 2-CPU machine), in rounds: every
worker does one op, then we read the map's cgroup.  The map is created by a child
inside a fresh scratch cgroup M and the workers live in a sibling H, so M holds the
map's memory only (bpf_mem_alloc charges the map's objcg, whoever updates).  The
model runs the same rounds on a host-matched System (pybpfmem.live.host), the
creator in M, the worker task in H switching between cpus 0 and 1, and M's
memory.current is read after every round in the same way.  Reported per workload,
preallocated and bpf_mem_alloc: the average of M's usage over the rounds after a
warm-up tenth, its peak (the counter's watermark), and the usage right after the
create.  Needs root, bpf() and a memory controller; the scratch cgroups and the
children are removed again (pybpfmem.live.session), also on ^C.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pybpfmem.bpf import uapi as U               # noqa: E402
from pybpfmem.live import bpf as B               # noqa: E402
from pybpfmem.live.runner import _FastUpdater, _InCgroupSys, _Mover  # noqa: E402
from pybpfmem.live.session import LiveSession    # noqa: E402

OP_BATCH = 64
WORKLOADS = ("overwrite", "batch_add_batch_del", "add_del_on_diff_cpu")
NPROD = 2


def max_entries(ncpus: int) -> int:
    return max(8192, 64 * ncpus)


def plan(workload: str, worker: int) -> list[tuple[str, int, int]]:
    """(op, key, flags) of one op of ``worker`` (0 runs on cpu 0, 1 on cpu 1), as the
    programs of progs/htab_mem_bench.c choose them with bpf_get_smp_processor_id()."""
    if workload == "overwrite":
        return [("update", worker + NPROD * i, U.BPF_ANY) for i in range(OP_BATCH)]
    if workload == "batch_add_batch_del":
        keys = [worker + NPROD * i for i in range(OP_BATCH)]
        return [("update", k, U.BPF_ANY) for k in keys] + [("delete", k, 0) for k in keys]
    # add_del_on_diff_cpu: from = cpu / 2, step = n / 2; worker 0 adds, worker 1 deletes
    keys = [worker // 2 + (NPROD // 2) * i for i in range(OP_BATCH)]
    if worker == 0:
        return [("update", k, U.BPF_NOEXIST) for k in keys]
    return [("delete", k, 0) for k in keys]


# ------------------------------------------------------------------ live
def _worker_loop(cmd_r: int, res_w: int, cpu: int, m: B.BpfMap, workload: str) -> None:
    os.sched_setaffinity(0, {cpu})
    u = _FastUpdater(m)
    ops = plan(workload, cpu)
    while True:
        line = os.read(cmd_r, 64)
        if not line or line.startswith(b"exit"):
            os._exit(0)
        for op, k, fl in ops:
            u.update(k, fl) if op == "update" else u.delete(k)
        os.write(res_w, b"d")


def _creator(cmd_r: int, res_w: int, w1: tuple[int, int], prealloc: bool, workload: str,
             ncpus: int, home: str, mcg: str) -> None:
    """Child 0, at home: creates the map with only the bpf() call in M (so none of
    its own Python memory lands there: runner._Mover), then forks worker 1 and
    becomes worker 0."""
    try:
        mover = _Mover(home)
        os.read(cmd_r, 64)                                     # "create"
        m = B.map_create("HASH", 4, 8, max_entries(ncpus), 0 if prealloc else U.BPF_F_NO_PREALLOC,
                         sys=_InCgroupSys(B._libc(), mover, mcg))
        m._sys = B._libc()
        os.write(res_w, b"c")
        pid = os.fork()
        if pid == 0:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)             # PR_SET_PDEATHSIG
            _worker_loop(w1[0], w1[1], 1, m, workload)
        os.write(res_w, str(pid).encode())
        _worker_loop(cmd_r, res_w, 0, m, workload)
    finally:
        os._exit(3)


def live_run(s: LiveSession, workload: str, prealloc: bool, rounds: int) -> dict[str, Any]:
    ncpus = B.possible_cpus()
    root = s.case()
    mcg, home = root.mkchild("M"), root.mkchild("H")
    c0r, c0w = os.pipe()
    r0r, r0w = os.pipe()
    c1r, c1w = os.pipe()
    r1r, r1w = os.pipe()
    pid = s.fork()
    if pid == 0:
        _creator(c0r, r0w, (c1r, r1w), prealloc, workload, ncpus, home.file("cgroup.procs"),
                 mcg.file("cgroup.procs"))
    w1 = None
    try:
        home.move(pid)
        os.write(c0w, b"create")
        os.read(r0r, 1)
        w1 = int(os.read(r0r, 32))
        created = (mcg.usage(), mcg.kmem())
        samples = []
        order = ((c0w, r0r), (c1w, r1r))
        for _ in range(rounds):
            if workload == "add_del_on_diff_cpu":          # the add, then the delete
                for cw, rr in order:
                    os.write(cw, b"go")
                    os.read(rr, 1)
            else:                                          # both cpus at once
                for cw, _ in order:
                    os.write(cw, b"go")
                for _, rr in order:
                    os.read(rr, 1)
            samples.append((mcg.usage(), mcg.kmem()))
        peak = int(mcg.read("memory.max_usage_in_bytes" if s.driver.version == 1
                            else "memory.peak"))
        return summary(created, samples, peak)
    finally:
        for cw in (c0w, c1w):
            try:
                os.write(cw, b"exit")
            except OSError:
                pass
        if w1:
            try:
                os.kill(w1, signal.SIGKILL)
            except ProcessLookupError:
                pass
        s.reap(pid, kill=True)
        for fd in (c0r, c0w, r0r, r0w, c1r, c1w, r1r, r1w):
            os.close(fd)
        root.remove()
        s.driver.created.remove(root)


# ------------------------------------------------------------------ model
def model_run(workload: str, prealloc: bool, rounds: int) -> dict[str, Any]:
    from pybpfmem.live.host import host_system
    sysm = host_system()
    try:
        mcg, home = sysm.root.mkdir("M"), sysm.root.mkdir("H")
        creator = sysm.spawn(cgroup=mcg)
        fd = creator.bpf_map_create(U.BPF_MAP_TYPE_HASH, 4, 8, max_entries(sysm.nr_cpus),
                                    0 if prealloc else U.BPF_F_NO_PREALLOC)
        worker = sysm.spawn(cgroup=home)
        wfd = creator.dup_fd_to(worker, fd)
        def reading() -> tuple[int, int]:
            if sysm.cgroup_version == "v1":
                return (int(mcg.read("memory.usage_in_bytes")),
                        int(mcg.read("memory.kmem.usage_in_bytes")))
            return int(mcg.read("memory.current")), int(mcg.stat()["kernel"])
        created = reading()
        value = bytes(8)
        plans = [[(op, k.to_bytes(4, "little"), fl) for op, k, fl in plan(workload, w)]
                 for w in range(NPROD)]
        samples = []
        for _ in range(rounds):
            for cpu in range(NPROD):
                with worker.running(cpu=cpu):
                    for op, key, fl in plans[cpu]:
                        try:
                            if op == "update":
                                worker.bpf_map_update_elem(wfd, key, value, fl)
                            else:
                                worker.bpf_map_delete_elem(wfd, key)
                        except OSError:
                            pass            # the programs ignore errors too
            samples.append(reading())
        peak_name = "memory.max_usage_in_bytes" if sysm.cgroup_version == "v1" else "memory.peak"
        return summary(created, samples, int(mcg.read(peak_name)))
    finally:
        sysm.close()


def summary(created: tuple[int, int], samples: list[tuple[int, int]], peak: int
            ) -> dict[str, Any]:
    """Usage (the page counter: objects, pages and the per-cpu page stocks' charged
    batches) and kmem, right after the create and averaged over the rounds after the
    first tenth; the peak of the usage (the counter's watermark)."""
    steady = samples[len(samples) // 10:]
    usage = [u for u, _ in steady]
    kmem = [k for _, k in steady]
    return {"created": created[0], "created_kmem": created[1],
            "avg": sum(usage) / len(usage), "avg_kmem": sum(kmem) / len(kmem), "peak": peak,
            "max_kmem": max(kmem)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1500, help="ops per worker (default 1500)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = []
    with LiveSession(exit_on_signal=True, name="htab_mem_churn") as s:
        for prealloc in (True, False):
            for wl in WORKLOADS:
                live = live_run(s, wl, prealloc, args.rounds)
                model = model_run(wl, prealloc, args.rounds)
                out.append({"workload": wl, "prealloc": prealloc, "live": live, "model": model})
                if not args.json:
                    kib = lambda v: f"{v / 1024:9.1f}"  # noqa: E731
                    row = lambda d: " ".join(kib(d[k]) for k in (  # noqa: E731
                        "created", "avg", "peak", "created_kmem", "avg_kmem", "max_kmem"))
                    print(f"{'prealloc' if prealloc else 'bpf_ma':8} {wl:20} live {row(live)}"
                          f" | model {row(model)}", flush=True)
    if args.json:
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
