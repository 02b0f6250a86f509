"""What "kmem returned by delete-all + close" of a no-prealloc hash depends on: the
experiment behind docs/fidelity.md ("6.1: the delete-all + close row").

    sudo .venv/bin/python tools/experiments/delete_close.py [RUNS] [N]

Runs verify's case "HASH k4 v64 NO_PREALLOC N=<N>" (create max 20000, insert N,
delete N, close; the child on cpu 0) RUNS times with the runner, and prints each
step's kmem delta of A, the sum that verify compares, A after the child exited and
the run's time; then the same with a 10 s settle after the close; then a timeline: the
close with no settle at all, followed by ten 0.5 s settle steps, each one's kmem delta
of A and the time since the close (when does the rest of the close's return arrive?).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pybpfmem.live import matrix as M             # noqa: E402
from pybpfmem.live import runner                  # noqa: E402
from pybpfmem.live.session import LiveSession     # noqa: E402


def scenario(n: int, wait: float) -> dict:
    spec = {"type": "HASH", "key": 4, "value": 64, "max": 20000, "flags": M.NO_PREALLOC}
    return {"cpu": 0, "steps": [{"op": "create", "map": "m", **spec},
                                {"op": "insert", "map": "m", "n": n},
                                {"op": "delete", "map": "m", "n": n},
                                {"op": "close", "map": "m", "wait": wait}]}


def timeline(n: int, s: LiveSession) -> None:
    scn = scenario(n, 0.0)
    scn["steps"] += [{"op": "settle", "wait": 0.5} for _ in range(10)]
    r = runner.run_scenario(scn, session=s)
    d = [o["delta"]["A"]["kmem"] for o in r.steps]
    print(f"- create {d[0]}, insert {d[1]}, delete {d[2]}, close {d[3]}, then "
          f"{d[4:]}; returned in all {-sum(d[2:])}; A after the exit {r.final['A']['kmem']}",
          flush=True)


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else 6
    n = int(argv[1]) if len(argv) > 1 else 10000
    with LiveSession(exit_on_signal=True, name="delete_close") as s:
        for wait in (3.0, 10.0):
            print(f"\n## close settle up to {wait:.0f} s", flush=True)
            for _ in range(runs):
                t0 = time.monotonic()
                r = runner.run_scenario(scenario(n, wait), session=s)
                d = [o["delta"]["A"]["kmem"] for o in r.steps]
                print(f"- create {d[0]}, insert {d[1]}, delete {d[2]}, close {d[3]}: returned "
                      f"{-(d[2] + d[3])}; A after the exit {r.final['A']['kmem']}; "
                      f"{time.monotonic() - t0:.1f} s", flush=True)
        print("\n## timeline: the close without a settle, then 0.5 s settles", flush=True)
        for _ in range(runs):
            timeline(n, s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
