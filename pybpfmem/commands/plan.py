"""pybpfmem plan: the memory.max a cgroup needs for its BPF maps, before deployment.

The maps come from compiled BPF objects (``OBJECT.bpf.o``, read as libbpf reads them),
``--map`` rows, a ``--file`` of ``[[map]]`` tables, ``bpftool -j map show`` output or
the maps of this host (``--host``).  For each kernel profile they are created together
in one simulated machine, in their memory cgroups, filled, churned and pushed against
memory.max (commands/planner.py); the output gives per map and per cgroup the charge at
creation, when full and under churn, the fdinfo memlock empty and full, what an update
does at memory.max, and the recommended memory.max with the per-cpu stock slack.

Exit codes: 0 the plan is made; 1 a map cannot be created (or filled) on a profile:
the kernel would refuse it at any memory.max (no memory.max is recommended); 2 bad
input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from pybpfmem.profiles import CURRENT_PROFILE, PROFILE_NAMES, get_profile
from pybpfmem.commands.btfopt import add_btf_argument, read_btf_sizes

from . import plan_inputs as inputs
from .planner import CHURN, MIB, PlanOptions, PlanResult, plan

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
_MAX_CPUS = 1024
_PAGE_SIZES = (4096, 16384, 65536)
# what the "at memory.max" column says, and what each word means
AT_MAX_LEGEND = {
    "ENOMEM": "an update that needs new memory fails (GFP_NOWAIT allocations, bpf_mem_alloc "
              "refills: the charge is not forced)",
    "forced": "an update's allocation is charged past memory.max (GFP_ATOMIC: the charge "
              "is forced)",
    "no alloc": "updates allocate nothing (preallocated)",
    "evicts": "updates allocate nothing: a full LRU map evicts its least recently used "
              "entry (preallocated)",
    "not charged": "the map's memory is not charged to the memory cgroup (5.10: "
                   "RLIMIT_MEMLOCK at creation)",
    "fits": "updates at memory.max needed no new memory within the probe",
}
_AT_MAX_WORD = {"force-charged": "forced", "no allocation": "no alloc"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pybpfmem plan", description=__doc__.split("\n\n")[0],
        epilog="The --file format, key by key, and the output's columns: docs/guide.md (plan).")
    p.add_argument("objects", nargs="*", metavar="OBJECT.bpf.o",
                   help="compiled BPF objects: their maps as libbpf creates them (with no maps "
                        f"given at all: the built-in example, {inputs.DEFAULT_SET_TEXT})")
    p.add_argument("--map", action="append", default=[], metavar="[NAME=]TYPE:KEY:VALUE:MAX[:FLAGS]",
                   help="a map, e.g. flows=hash:4:64:1000:no_prealloc (FLAGS: comma-separated "
                        "names or a number)")
    p.add_argument("--file", action="append", default=[], metavar="FILE.toml",
                   help="a TOML file of [[map]] tables")
    p.add_argument("--bpftool", action="append", default=[], metavar="FILE",
                   help="the JSON output of `bpftool -j map show` (its bytes_memlock is shown "
                        "as the input's, never used)")
    p.add_argument("--host", action="store_true",
                   help="the maps of this machine (read-only, needs root), with their holders' "
                        "memory cgroups")
    p.add_argument("--set", action="append", default=[], metavar="NAME.FIELD=VALUE",
                   dest="overrides",
                   help="for OBJECT maps, as libbpf's bpf_map__set_*(): max_entries, map_flags, "
                        "numa_node, map_extra, autocreate (e.g. cilium_ct4_global.max_entries=65536)")
    p.add_argument("--owners", action="append", default=[], metavar="NAME=N",
                   help="a local storage map's owners (sockets, tasks, inodes, cgroups) that "
                        "hold an element")
    p.add_argument("--cgroup", default=inputs.DEFAULT_CGROUP, metavar="PATH",
                   help="the memory cgroup that creates the OBJECT, --map and --bpftool maps (default "
                        f"{inputs.DEFAULT_CGROUP})")
    p.add_argument("--profile", choices=PROFILE_NAMES, default=CURRENT_PROFILE,
                   help=f"the kernel to plan for (default {CURRENT_PROFILE})")
    p.add_argument("--compare-profiles", action="store_true", help="plan for every profile")
    p.add_argument("--cpus", type=int, default=2, metavar="N",
                   help="possible CPUs of the machine to plan for (default 2)")
    p.add_argument("--page-size", type=int, default=4096, choices=_PAGE_SIZES,
                   help="its page size (default 4096)")
    p.add_argument("--ram", default="64G", metavar="SIZE",
                   help="its memory: a map that does not fit fails with ENOMEM (default 64G)")
    p.add_argument("--churn", type=int, default=CHURN, metavar="N",
                   help=f"entries of each dynamic map that every possible CPU replaces within "
                        f"one RCU grace period (default {CHURN})")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_btf_argument(p)
    return p


def _given_no_maps(args: argparse.Namespace) -> bool:
    return not (args.objects or args.map or args.file or args.bpftool or args.host)


def _read_specs(args: argparse.Namespace) -> list[inputs.MapSpec]:
    cgroup = inputs.cgroup_path(args.cgroup, "--cgroup")
    specs: list[inputs.MapSpec] = []
    unused: set[str] = set(args.overrides)
    for path in args.objects:
        try:
            got, left = inputs.object_specs(path, args.overrides, possible_cpus=args.cpus,
                                            page_size=args.page_size, cgroup=cgroup)
        except OSError as exc:
            raise ValueError(f"{path}: {exc.strerror}") from None
        specs += got
        unused &= set(left)
    if args.overrides and not args.objects:
        raise ValueError("--set applies to the maps of OBJECT.bpf.o files; none given")
    if unused:
        text = sorted(unused)[0]
        raise ValueError(f"--set {text!r}: no map of that name in "
                         f"{', '.join(os.path.basename(o) for o in args.objects)}")
    specs += [inputs.cli_spec(text, i + 1, cgroup) for i, text in enumerate(args.map)]
    for path in args.file:
        specs += inputs.file_specs(path)
    for path in args.bpftool:
        got = inputs.bpftool_specs(path)
        for s in got:
            s.cgroup = cgroup
        specs += got
    if args.host:
        from pybpfmem.live.session import LiveSession   # SIGINT/SIGTERM: clean exit
        with LiveSession(exit_on_signal=True, name="pybpfmem plan"):
            specs += inputs.host_specs()
    for text in args.owners:
        name, eq, count = text.partition("=")
        where = f"--owners {text!r}"
        if not eq:
            raise ValueError(f"{where}: expected NAME=N, e.g. sk_flows=10000")
        n = inputs.uint(count, "N", where)
        named = [s for s in specs if s.name == name]
        if not named:
            raise ValueError(f"{where}: no map named {name!r}")
        for s in named:
            s.owners = n
    return specs


def _options(args: argparse.Namespace, profile: str,
             btf_sizes: tuple[tuple[str, int], ...] | None = None) -> PlanOptions:
    from pybpfmem.mm.system import parse_size

    return PlanOptions(profile=profile, cpus=args.cpus, page_size=args.page_size,
                       ram=parse_size(args.ram), churn=args.churn, btf_sizes=btf_sizes)


def _check_args(args: argparse.Namespace) -> None:
    from pybpfmem.mm.system import System, parse_size

    if not 1 <= args.cpus <= _MAX_CPUS:
        raise ValueError(f"--cpus must be 1..{_MAX_CPUS}, got {args.cpus}")
    if args.churn < 0:
        raise ValueError(f"--churn must not be negative, got {args.churn}")
    try:
        ram = parse_size(args.ram)
    except ValueError as exc:
        raise ValueError(f"--ram {args.ram!r}: {exc}") from None
    max_ram = System.max_ram_bytes(args.page_size)
    if not System.MIN_RAM_PAGES * args.page_size <= ram <= max_ram:
        raise ValueError(f"--ram {args.ram!r} must be {System.MIN_RAM_PAGES} pages .. {max_ram} bytes "
                         f"with {args.page_size}-byte pages")


def run_plans(specs: list[inputs.MapSpec], options: list[PlanOptions]) -> list[PlanResult]:
    """One plan per profile; several run in parallel processes (one per cpu)."""
    if len(options) == 1 or (os.cpu_count() or 1) < 2:
        return [plan(specs, o) for o in options]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:                                  # pragma: no cover - no fork here
        return [plan(specs, o) for o in options]
    workers = min(len(options), os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return list(pool.map(plan, [specs] * len(options), options))


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    profiles = PROFILE_NAMES if args.compare_profiles else (args.profile,)
    builtin = _given_no_maps(args) and not args.overrides
    if builtin:
        args.bpftool = [inputs.DEFAULT_SET]
    try:
        _check_args(args)
        specs = _read_specs(args)
        btf_sizes = read_btf_sizes(profiles, args.btf, "pybpfmem plan")
    except (OSError, ValueError) as exc:
        print(f"pybpfmem plan: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not specs:
        print("pybpfmem plan: the input has no maps", file=sys.stderr)
        return EXIT_BAD_INPUT
    if builtin:
        print(f"pybpfmem plan: no maps given, so the built-in example: {inputs.DEFAULT_SET_TEXT} "
              "(give OBJECT.bpf.o, --map, --file, --bpftool or --host for yours)",
              file=sys.stderr if args.json else sys.stdout)
    results = run_plans(specs, [_options(args, p, btf_sizes) for p in profiles])
    if args.json:
        docs = {r.options.profile: r.as_dict() for r in results}
        json.dump(docs if args.compare_profiles else docs[args.profile], sys.stdout, indent=2)
        print()
    else:
        from rich.console import Console

        console = Console(highlight=False)
        if args.compare_profiles:
            render_comparison(console, results)
        else:
            render(console, results[0])
    return EXIT_FAILED if any(r.failed for r in results) else 0


# --------------------------------------------------------------------------- text

def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n // 1024:,}"


def _b(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _at_max(m: Any) -> str:
    word = m.at_memory_max
    if word == "no allocation" and m.spec.type_name.startswith("lru_"):
        return "evicts"
    return "-" if word is None else _AT_MAX_WORD.get(word, word)


def _header(res: PlanResult) -> str:
    o = res.options
    n = len(res.maps)
    return (f"{n} map{'s' if n != 1 else ''} on {o.profile}, {o.cpus} possible CPUs, "
            f"{o.page_size}-byte pages")


def render(console: Any, res: PlanResult) -> None:
    """The text report of one profile."""
    from rich.table import Table

    console.print(f"pybpfmem plan: {_header(res)}")
    planned = [m for m in res.maps if m.status == "planned"]
    many_cgroups = len({m.spec.cgroup for m in res.maps}) > 1
    if planned:
        t = Table(title="charge (growth of memory.current, KiB)", title_justify="left")
        t.add_column("map", overflow="fold")
        if many_cgroups:
            t.add_column("cgroup", overflow="fold")
        for col in ("created", "when full", "churn +"):
            t.add_column(col, justify="right")
        t.add_column("at memory.max")
        for m in planned:
            row = [f"{m.spec.name}\n{m.spec.shape}"]
            if many_cgroups:
                row.append(m.spec.cgroup)
            row += [_kib(m.charged_at_creation), _kib(m.charged_when_full), _kib(m.churn_peak),
                    _at_max(m)]
            t.add_row(*row)
        console.print(t)
        t = Table(title="fdinfo memlock (bytes)", title_justify="left")
        t.add_column("map", overflow="fold")
        for col in ("empty", "full"):
            t.add_column(col, justify="right")
        if any(m.spec.input_memlock is not None for m in planned):
            t.add_column("input's", justify="right")
        for m in planned:
            row = [m.spec.name, _b(m.memlock_empty), _b(m.memlock_full)]
            if len(t.columns) == 4:
                row.append(_b(m.spec.input_memlock))
            t.add_row(*row)
        console.print(t)
    _render_notes(console, res)
    _render_totals(console, res)


def _render_notes(console: Any, res: PlanResult) -> None:
    words = sorted({_at_max(m) for m in res.maps if m.at_memory_max})
    for w in words:
        if w in AT_MAX_LEGEND:
            console.print(f"at memory.max, {w}: {AT_MAX_LEGEND[w]}")
    for m in res.maps:
        if m.status == "planned" and m.note:
            console.print(f"note: {m.spec.name}: {m.note}")
    for m in res.maps:
        if m.status == "not_planned":
            console.print(f"NOT PLANNED: {m.spec.name} ({m.spec.shape}): {m.error}")
    for m in res.failed:
        console.print(f"FAILED on {res.options.profile}: {m.spec.name} ({m.spec.shape}): "
                      f"{m.errno}: {m.error}")


def _render_totals(console: Any, res: PlanResult) -> None:
    from rich.table import Table

    o = res.options
    account = get_profile(o.profile).bpf.account
    for path, c in res.cgroups.items():
        t = Table(title=f"cgroup {path}" + (" (the root cgroup: no limit applies)"
                                            if path == "/" else ""),
                  title_justify="left", box=None, show_header=False, pad_edge=False)
        t.add_column("what", no_wrap=True)
        t.add_column("bytes", justify="right", no_wrap=True)
        t.add_column("how", overflow="fold")
        t.add_row("at creation", _b(c.charged_at_creation), "")
        t.add_row("when full", _b(c.charged_when_full), "")
        t.add_row("+ churn", _b(c.churn_peak), f"every possible CPU replaces {o.churn} "
                  "entries of each dynamic map within one RCU grace period")
        t.add_row("+ stock slack", _b(c.stock_slack), f"per-cpu stocks: {res.stock_slack_rule}")
        if not account:
            t.add_row("memory.max", "-", f"maps are not charged to memory cgroups on "
                      f"{o.profile}: RLIMIT_MEMLOCK is their limit")
        elif c.recommended_memory_max is None:
            t.add_row("memory.max", "-", "none recommended: a map of this cgroup cannot be "
                      "created (FAILED above)")
        else:
            t.add_row("memory.max >=", _b(c.recommended_memory_max),
                      f"{c.recommended_memory_max // MIB:,} MiB, for the maps alone")
        console.print(t)
    if res.rlimit_memlock is not None:
        default = get_profile(o.profile).bpf.default_memlock
        for uid, need in res.rlimit_memlock.items():
            console.print(f"RLIMIT_MEMLOCK: uid {uid} needs >= {need:,} bytes on {o.profile} "
                          f"(shared by every process of the uid; the default is {default:,})")
    if not res.complete:
        console.print("INCOMPLETE: the totals leave out what NOT PLANNED and the notes name")


def render_comparison(console: Any, results: list[PlanResult]) -> None:
    """Every profile side by side: per cgroup, its totals and recommendation."""
    from rich.table import Table

    n = len(results[0].maps)
    console.print(f"pybpfmem plan: {n} map{'s' if n != 1 else ''}, {results[0].options.cpus} "
                  f"possible CPUs, {results[0].options.page_size}-byte pages, every profile")
    paths = list(dict.fromkeys(p for r in results for p in r.cgroups))
    for path in paths:
        t = Table(title=f"cgroup {path} (KiB)", title_justify="left")
        t.add_column("profile")
        for col in ("created", "when full", "churn +", "slack +", "memory.max >="):
            t.add_column(col, justify="right")
        t.add_column("at memory.max")
        for r in results:
            c = r.cgroups.get(path)
            if c is None:
                continue
            words = sorted({_at_max(m) for m in r.maps
                            if m.spec.cgroup == path and m.at_memory_max
                            and m.at_memory_max != "no allocation"})
            rec = c.recommended_memory_max if get_profile(r.options.profile).bpf.account else None
            t.add_row(r.options.profile, _kib(c.charged_at_creation), _kib(c.charged_when_full),
                      _kib(c.churn_peak), _kib(c.stock_slack), _kib(rec), ", ".join(words) or "-")
        console.print(t)
    for r in results:
        if r.rlimit_memlock is not None:
            for uid, need in r.rlimit_memlock.items():
                console.print(f"{r.options.profile}: maps are not charged to memory cgroups; "
                              f"uid {uid} needs RLIMIT_MEMLOCK >= {need:,} bytes")
        for m in r.failed:
            console.print(f"FAILED on {r.options.profile}: {m.spec.name} ({m.spec.shape}): "
                          f"{m.errno}: {m.error}")
    words = sorted({_at_max(m) for r in results for m in r.maps if m.at_memory_max})
    for w in words:
        if w in AT_MAX_LEGEND and w not in ("no alloc", "evicts"):
            console.print(f"at memory.max, {w}: {AT_MAX_LEGEND[w]}")
    console.print(f"slack: the per-cpu stock slack of each profile ({results[-1].stock_slack_rule} "
                  f"on {results[-1].options.profile}); churn: every possible CPU replaces "
                  f"{results[0].options.churn} entries of each dynamic map within one RCU grace "
                  "period")
    if not all(r.complete for r in results):
        console.print("INCOMPLETE: some maps' charges when full are not planned (run one "
                      "profile for the notes)")
