"""``pybpfmem verify``: the model against the running kernel.

    pybpfmem verify [--quick] [--json | --markdown] [--case NAME] [--profile NAME]
    pybpfmem verify --semantics [...]          (pybpfmem/live/semantics.py)

Every case of the built-in matrix runs on the live kernel and on a model of this
host (pybpfmem/live/verify.py holds the machinery: cases, comparisons, summary);
this module parses the arguments, prints the rows and picks the exit code.

The model follows ``--profile NAME``, else the profile registry's entry for the
running kernel's release (pybpfmem.profiles.profile_for_release); a release the
registry has no entry for is an error that asks for --profile.

Exit codes: 0 agreement at or above the thresholds; 1 below; 2 bad arguments;
3 the kernel refuses (reason printed: not root, no bpf(), no memory controller, a
cgroup v2 memory controller that cannot be delegated, unprivileged_bpf_disabled);
4 the model cannot be built on this host (no profile for this kernel: name one);
128 + the signal number after SIGINT/SIGTERM, once the run's children and scratch
cgroups are gone (pybpfmem/live/session.py).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from pybpfmem.live import matrix as M
from pybpfmem.live.verify import Row, Verifier, run_cases, semantics_rows, summarize
from pybpfmem.profiles import PROFILE_NAMES

EXIT_OK, EXIT_BELOW, EXIT_USAGE, EXIT_REFUSED, EXIT_NO_MODEL = 0, 1, 2, 3, 4
#: steps of the map-command comparison (semantics.py) that --quick runs
QUICK_SEMANTICS_STEPS = 1200


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pybpfmem verify",
                                 description="measure the model against the running kernel")
    ap.add_argument("--quick", action="store_true", help="a subset that runs in under a minute (with a small budget of --semantics)")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--case", metavar="NAME", help="only the cases whose name contains NAME")
    ap.add_argument("--markdown", action="store_true", help="markdown tables (docs/fidelity.md)")
    ap.add_argument("--profile", choices=PROFILE_NAMES, metavar="NAME",
                    help="the kernel profile the model follows (default: the registry's "
                         f"profile of the running kernel; one of {', '.join(PROFILE_NAMES)})")
    from pybpfmem.live import semantics
    semantics.add_arguments(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    try:
        cases = M.select(M.all_cases(), args.quick, args.case)
    except KeyError:
        msg = f"no case matches {args.case!r}"
        print(json.dumps({"error": msg}) if args.json else f"verify: {msg}", file=sys.stderr)
        return EXIT_USAGE
    # SIGINT/SIGTERM from here on: clean up (children, scratch cgroups), then exit
    # 128 + signal number (session.py)
    from pybpfmem.live.session import LiveSession
    with LiveSession(exit_on_signal=True, name="verify") as session:
        rc = _run(args, cases, session)
    return rc


def _error(args: argparse.Namespace, key: str, msg: str) -> None:
    print(json.dumps({key: msg}) if args.json else f"verify: {msg}")


def _run(args: argparse.Namespace, cases: list[M.Case], session: Any) -> int:
    from pybpfmem.live.host import host_facts
    from pybpfmem.live.runner import bump_memlock_rlimit, refusal_reason
    reason = refusal_reason()
    if reason is not None:
        _error(args, "refused", f"kernel refuses: {reason}" if not args.json else reason)
        return EXIT_REFUSED
    try:
        bump_memlock_rlimit()      # as a loader does; the model's tasks get the same
        facts = host_facts(profile=args.profile)
        v = Verifier(full_bisect=not args.quick, session=session, facts=facts)
        v.model_factory().close()
    except (OSError, ValueError, TypeError) as e:
        _error(args, "error", f"model System cannot match this host: {e}")
        return EXIT_NO_MODEL
    if not (args.json or args.markdown):
        print(f"verify: kernel {facts.release}, profile {facts.profile} "
              f"({'--profile' if facts.profile_source == 'user' else 'the registry'}), "
              f"cgroup {facts.cgroup}", file=sys.stderr)
    if args.semantics or args.replay:
        from pybpfmem.live.semantics import main_semantics
        return main_semantics(args, session, facts)
    if args.json or args.markdown or args.quick:
        rows = run_cases(v, cases)
    else:
        from rich.progress import Progress
        with Progress(transient=True) as p:
            task = p.add_task("verify", total=len(cases))

            def step(c: M.Case) -> None:
                p.update(task, description=c.name[:40], completed=cases.index(c))
            rows = run_cases(v, cases, step)
    if args.quick and not args.case:
        rows += semantics_rows(session, QUICK_SEMANTICS_STEPS, str(args.seed), facts)
    summary = summarize(rows)
    if args.markdown:
        print(to_markdown(rows, summary, facts), end="")
    elif args.json:
        print(json.dumps({"host": asdict(facts), "quick": args.quick,
                          "rows": [r.to_dict() for r in rows], "summary": summary}))
    else:
        render(rows, summary, facts)
    return EXIT_OK if summary["pass"] else EXIT_BELOW


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


#: rows of these case prefixes share one table
_GROUPS = {"errno: ": "errnos", "semantics: ": "semantics (the map commands, step by step)"}


def _group(case: str) -> str:
    for prefix, title in _GROUPS.items():
        if case.startswith(prefix):
            return title
    return case


def render(rows: list[Row], summary: dict[str, Any], facts: Any, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table
    con = console or Console()
    by_case: dict[str, list[Row]] = {}
    for r in rows:
        by_case.setdefault(_group(r.case), []).append(r)
    style = {"ok": "green", "FAIL": "bold red", "deviation": "yellow", "info": "dim",
             "skip": "dim"}
    for case, rs in by_case.items():
        t = Table(title=case, title_justify="left", show_lines=False)
        for col in ("quantity", "model", "kernel", "difference", "verdict", "why"):
            t.add_column(col, overflow="fold")
        for r in rs:
            q = r.quantity if case == r.case else r.case.split(": ", 1)[1] + (
                "" if case == "errnos" else f": {r.quantity}")
            t.add_row(q, _fmt(r.model), _fmt(r.kernel), _fmt(r.diff),
                      f"[{style.get(r.verdict, '')}]{r.verdict}[/]", r.why)
        con.print(t)
    s = Table(title=f"summary (kernel {facts.release}, profile {facts.profile}, "
                    f"{facts.nr_cpus} possible CPUs, cgroup {facts.cgroup}, page "
                    f"{facts.page_size})", title_justify="left")
    for col in ("measure", "raw", "gated (without explained deviations)", "threshold"):
        s.add_column(col)
    thr = {"memlock_exact": "100%", "kmem_create_1page": ">= 95%", "kmem_create_2pages": "100%",
           "kmem_close_1page": "(info)", "errno": "100%", "behaviour": "100%",
           "semantics": "100%", "insert_err": "<= 2%", "limit_err": "<= 2%"}
    for k, t_ in thr.items():
        def cell(d: dict[str, Any]) -> str:
            if "rate" in d:
                return "-" if d["rate"] is None else f"{100 * d['rate']:.1f}% of {d['n']}"
            return "-" if d["max"] is None else f"{100 * d['max']:.2f}% (worst)"
        s.add_row(k, cell(summary["raw"][k]), cell(summary["gated"][k]), t_)
    con.print(s)
    verdict = "[green]PASS[/]" if summary["pass"] else f"[bold red]BELOW THRESHOLDS[/] {summary['failed']}"
    con.print(f"verify: {verdict}; {summary['deviations']} explained deviation(s), "
              f"{summary['fails']} failing row(s), {summary['skipped']} skipped case(s)")


def to_markdown(rows: list[Row], summary: dict[str, Any], facts: Any) -> str:
    """The per-case tables and the summary as markdown (for docs/fidelity.md)."""
    def cell(v: Any) -> str:
        return _fmt(v).replace("|", "\\|")
    out = []
    g, r = summary["gated"], summary["raw"]

    def fmt(d: dict[str, Any]) -> str:
        if "rate" in d:
            return "-" if d["rate"] is None else f"{100 * d['rate']:.1f}% of {d['n']}"
        return "-" if d["max"] is None else f"{100 * d['max']:.2f}% (worst)"
    import platform
    out.append(f"Host: kernel {facts.release} ({platform.version()}), profile {facts.profile}, "
               f"{facts.nr_cpus} possible CPUs, cgroup {facts.cgroup}, page {facts.page_size}.\n")
    out.append("| measure | raw | gated (without explained deviations) | threshold |")
    out.append("|---|---|---|---|")
    thr = {"memlock_exact": "100%", "kmem_create_1page": ">= 95%", "kmem_create_2pages": "100%",
           "kmem_close_1page": "(info)", "errno": "100%", "behaviour": "100%",
           "semantics": "100%", "insert_err": "<= 2%", "limit_err": "<= 2%"}
    for k, t in thr.items():
        out.append(f"| {k} | {fmt(r[k])} | {fmt(g[k])} | {t} |")
    out.append(f"\nResult: {'PASS' if summary['pass'] else 'BELOW ' + str(summary['failed'])}; "
               f"{summary['deviations']} explained deviation(s), {summary['fails']} failing "
               f"row(s), {summary['skipped']} skipped case(s).\n")
    out.append("| case | quantity | model | kernel | difference | verdict | why |")
    out.append("|---|---|---|---|---|---|---|")
    for x in rows:
        out.append(f"| {cell(x.case)} | {cell(x.quantity)} | {cell(x.model)} | {cell(x.kernel)} "
                   f"| {cell(x.diff)} | {x.verdict} | {cell(x.why)} |")
    return "\n".join(out) + "\n"
