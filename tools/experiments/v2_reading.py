"""What a canonical reading takes on cgroup v2: the experiments behind docs/fidelity.md
("cgroup v2") and docs/kernel-vm.md.

    sudo .venv/bin/python tools/experiments/v2_reading.py [NAME ...]

NAME is one or more of: stock, lag, cpustat, witness, periodic, current (default: all).
Each creates HASH k4 v64 m1000 maps (143360 B of kernel memory each on 6.x: the
bucket array and the preallocated elements, vmalloc'ed, plus the fd's file and
dentry) in fresh case cgroups with the runner's child (pybpfmem.live.runner.Probe)
and prints what the counters show after which action.  Needs root, bpf() and a
cgroup v2 memory controller that verify can use (``verify`` refuses otherwise, and
says why); run it the way verify runs, e.g. in a kernel VM:

    tools/kernel-vm/vm.py --kernel 6.18.15 --cgroup v2 -- env PYTHONPATH=. \\
        /opt/venv/bin/python tools/experiments/v2_reading.py
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pybpfmem.live import cgroupfs, runner             # noqa: E402
from pybpfmem.live.session import LiveSession          # noqa: E402

HASH = {"op": "create", "map": "m", "type": "HASH", "key": 4, "value": 64, "max": 1000}


def kernel_stat(c: cgroupfs.CaseCgroup) -> int | None:
    return c.stat().get("kernel")


class Case:
    """A case root with A, the runner's child at home, one map made in A."""

    def __init__(self, s: LiveSession) -> None:
        self.root = s.case()
        self.a = self.root.mkchild("A")
        self.probe = runner.Probe(s, self.root, {"A": self.a}, 0, {}, time.monotonic() + 60)
        self.probe.call({"op": "warmup"})
        self.probe.snapshot()          # canonical and flushed before the create
        self.probe.run_in(self.a, HASH)

    def close(self) -> None:
        self.probe.close(kill=True)
        self.root.remove()


def cases(s: LiveSession, n: int = 3) -> Iterator[Case]:
    """n fresh cases, one after the other, each removed when its turn ends."""
    for _ in range(n):
        c = Case(s)
        try:
            yield c
        finally:
            c.close()


def stock(s: LiveSession) -> None:
    """memory.current holds the per-cpu page stock until a drain: refill_stock() keeps
    the rest of a MEMCG_CHARGE_BATCH charge; memory.high = 0 and back drains it
    (memory_high_write() -> drain_all_stock())."""
    for c in cases(s):
        before = c.a.usage()
        c.a.drain()
        print(f"- memory.current after the create {before}, after the memory.high drain "
              f"{c.a.usage()} (stock {before - c.a.usage()} B)", flush=True)


def lag(s: LiveSession) -> None:
    """memory.stat 'kernel' right after the drain, without any flush."""
    for c in cases(s):
        c.a.drain()
        print(f"- kernel right after the create and drain: {kernel_stat(c.a)}; "
              f"memory.current {c.a.usage()}", flush=True)


def cpustat(s: LiveSession) -> None:
    """Reading the case root's cpu.stat: cgroup_base_stat_cputime_show() flushes the
    subtree's rstat, every controller's up to 6.15 (one tree per cgroup), only the
    base stats from 6.16 (one tree per subsystem)."""
    for c in cases(s):
        c.a.drain()
        k0 = kernel_stat(c.a)
        c.root.read("cpu.stat")
        print(f"- kernel before the cpu.stat read {k0}, after {kernel_stat(c.a)}", flush=True)


def witness(s: LiveSession) -> None:
    """The runner's forced flush (Probe.flush_stats): how long it waited, what it shows."""
    for c in cases(s):
        c.a.drain()
        k0 = kernel_stat(c.a)
        t0 = time.monotonic()
        c.probe.flush_stats()
        print(f"- kernel before {k0}, after the witness flush {kernel_stat(c.a)} "
              f"({time.monotonic() - t0:.3f} s, waits {c.probe.flush_waits})", flush=True)


def periodic(s: LiveSession) -> None:
    """With nothing forcing it: when does the stat show the create?"""
    for c in cases(s):
        c.a.drain()
        t0 = time.monotonic()
        k0 = kernel_stat(c.a)
        k = k0
        while k == k0 and time.monotonic() - t0 < 6:
            time.sleep(0.02)
            k = kernel_stat(c.a)
        print(f"- kernel {k0} -> {k} after {time.monotonic() - t0:.2f} s", flush=True)


def current(s: LiveSession) -> None:
    """After the canonical reading memory.current and 'kernel' of a case cgroup are
    the same number: nothing but the step's kernel objects is charged there."""
    for c in cases(s):
        snap = c.probe.snapshot()["A"]
        print(f"- canonical: kmem {snap['kmem']}, memory.current {snap['usage']}", flush=True)


def main(argv: list[str]) -> int:
    names = argv or ["stock", "lag", "cpustat", "witness", "periodic", "current"]
    print(f"kernel {os.uname().release}", flush=True)
    with LiveSession(exit_on_signal=True, name="v2_reading") as s:
        if s.driver.version != 2:
            print("not cgroup v2", file=sys.stderr)
            return 2
        why = runner.refusal_reason()
        if why:
            print(why, file=sys.stderr)
            return 3
        for n in names:
            print(f"\n## {n}: {globals()[n].__doc__.split(chr(10))[0]}", flush=True)
            globals()[n](s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
