"""``pybpfmem fuzz``: run the differential state machines for a time or an operation budget.

    pybpfmem fuzz --seconds 60                 # both machines, every profile
    pybpfmem fuzz --ops 200000 --profile 6.18 --machine memcg

The memcg machine applies every step to the C core and to the pure-Python reference
and compares them; the bpf machine checks invariants and the teardown baseline.  Runs
go in rounds of ``--batch`` examples per (machine, profile) until the budget is spent;
generation is random unless ``--derandomize``.  A failure stops the run, is shrunk for
at most ``--shrink-seconds`` and printed as a replayable Python script; the exit
status is then 1 (2 for bad arguments; hypothesis missing is reported, not raised).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pybpfmem.commands.common import DeferredInterrupt
from pybpfmem.profiles import PROFILE_NAMES

EXIT_FAIL, EXIT_USAGE = 1, 2


@dataclass
class Tally:
    ops: int = 0
    examples: int = 0
    seconds: float = 0.0


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: `kind` (int or float) of the text, above 0."""
    def parse(text: str) -> float:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return v
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pybpfmem fuzz",
        description="Run the differential state machines for a time or an operation budget. A "
                    "divergence prints a replayable Python script and exits 1.")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=_positive(float), help="time budget (default 30 s)")
    budget.add_argument("--ops", type=_positive(int), help="operation (rule step) budget")
    p.add_argument("--profile", choices=PROFILE_NAMES + ("all",), default="all",
                   help="the kernel profile to fuzz (default: every one)")
    p.add_argument("--machine", choices=("memcg", "bpf", "all"), default="all",
                   help="memcg: the C core against the reference model; bpf: the BPF layer's "
                        "invariants (default: both)")
    p.add_argument("--steps", type=_positive(int), default=50, help="steps per example")
    p.add_argument("--batch", type=_positive(int), default=25, help="examples per round")
    p.add_argument("--shrink-seconds", type=float, default=30.0,
                   help="time allowed to shrink a failing example (default 30; 0: no shrinking)")
    p.add_argument("--derandomize", action="store_true", help="same examples every run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as e:      # argparse exits 2 on bad arguments, 0 on --help
        return int(e.code or 0)
    if args.shrink_seconds < 0:
        print("pybpfmem fuzz: --shrink-seconds must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        from pybpfmem.reference import differential, differential_bpf
        from pybpfmem.reference.fuzzing import StepStats, machine_settings, run_machine
    except ImportError as e:
        print(f"pybpfmem fuzz: needs hypothesis (pip install hypothesis): {e}", file=sys.stderr)
        return EXIT_USAGE
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    profiles = PROFILE_NAMES if args.profile == "all" else (args.profile,)
    machines: list[tuple[str, type]] = []
    for kind, table in (("memcg", differential.MACHINES), ("bpf", differential_bpf.MACHINES)):
        if args.machine in (kind, "all"):
            missing = [p for p in profiles if p not in table and args.profile != "all"]
            if missing:
                print(f"pybpfmem fuzz: the reference model has no {kind} machine for profile "
                      f"{missing[0]}", file=sys.stderr)
                return EXIT_USAGE
            machines += [(f"{kind} {p}", table[p]) for p in profiles if p in table]
    seconds: float | None = args.seconds if args.seconds is not None else (None if args.ops else 30.0)
    total: float = args.ops if args.ops else (seconds or 30.0)
    console = Console(stderr=True)
    tallies = {name: Tally() for name, _ in machines}
    settings = machine_settings(args.batch, args.steps, shrink=args.shrink_seconds > 0,
                                derandomize=args.derandomize)
    t0 = time.perf_counter()
    failure: tuple[str, str] | None = None
    done_ops = 0
    # Ctrl-C stops after the round in progress: interrupted inside a step, the core and
    # the reference would differ by half a step, a divergence that is not one
    with DeferredInterrupt() as stop, \
            Progress(TextColumn("[bold]fuzz[/] {task.description}"), BarColumn(),
                     TextColumn("{task.fields[ops]} ops, {task.fields[rate]} ops/s"),
                     TimeElapsedColumn(), console=console, disable=args.quiet) as bar:
        task = bar.add_task("", total=total, ops=0, rate=0)
        rnd = 0
        while failure is None and not stop.requested:
            elapsed = time.perf_counter() - t0
            if (args.ops and done_ops >= args.ops) or (seconds and elapsed >= seconds):
                break
            name, cls = machines[rnd % len(machines)]
            rnd += 1
            stats = StepStats()
            res = run_machine(cls, settings, stats, shrink_seconds=args.shrink_seconds)
            t = tallies[name]
            t.ops += res.ops
            t.examples += res.examples
            t.seconds += res.seconds
            done_ops += res.ops
            if res.failure is not None:
                failure = (name, res.failure)
            elapsed = time.perf_counter() - t0
            bar.update(task, completed=min(done_ops if args.ops else elapsed, total),
                       description=name, ops=done_ops, rate=int(done_ops / max(elapsed, 1e-9)))
    out = Console()
    elapsed = time.perf_counter() - t0
    for name, t in tallies.items():
        if t.ops:
            out.print(f"{name:>10}: {t.ops:>8} ops in {t.examples:>5} examples, "
                      f"{t.ops / max(t.seconds, 1e-9):8.0f} ops/s")
    out.print(f"{'total':>10}: {done_ops:>8} ops in {elapsed:.1f} s, "
              f"{done_ops / max(elapsed, 1e-9):.0f} ops/s")
    if stop.requested and failure is None:
        raise KeyboardInterrupt      # after the counts: cli.main says "interrupted", exit 130
    if failure is not None:
        name, script = failure
        out.print(f"[bold red]FAILED[/] {name}; replay with this script:", highlight=False)
        print(script)
        return EXIT_FAIL
    out.print("[bold green]no divergence, every invariant held[/]")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
