"""``pybpfmem simulate FILE.toml``: scenario files.

A scenario describes a System, a cgroup tree with limits, tasks, and a list
of steps.  The file is checked whole first (scenario_file.py: unknown keys,
wrong types, names used but never created, duplicates are one-line errors
naming the file, line and key; exit 2).  Then every step runs and the report
shows, per step, what changed in every cgroup's memory.current and any error
with the model's explanation.  A step that fails (ENOMEM at a limit, say) is
reported like any other, and so is a later step naming the map that failed
to be created; the report is never cut short.  ``expect_errno`` and
``expect`` steps turn a scenario into a regression test: exit 1 when one
fails, including an ``expect`` that cannot be evaluated (a file the cgroup
does not have).  The format is documented in docs/scenarios.md.
"""

from __future__ import annotations

import argparse
import errno
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pybpfmem
from pybpfmem.bpf.errors import errname
from pybpfmem.commands import scenario_file
from pybpfmem.commands.btfopt import add_btf_argument, btf_warnings
from pybpfmem.commands.common import CommandError, check_plot_path
from pybpfmem.commands.scenario_file import (  # flag_value, map_type_by_name: plan uses them from here
    ACTIONS,
    DEFAULT_CPUS,
    Entry,
    ScenarioError,
    ScenarioFile,
    did_you_mean,
    flag_value,
    map_type_by_name,
    parse_size,
    show,
)
from pybpfmem.profiles import CURRENT_PROFILE, Profile, get_profile, profile_with_btf

EXIT_EXPECT_FAILED = 1
EXIT_BAD_FILE = 2

#: StepResult.error of a step that did not run because what it names does not exist
SKIPPED = "SKIPPED"

__all__ = ["ACTIONS", "EXIT_BAD_FILE", "EXIT_EXPECT_FAILED", "Scenario", "ScenarioError", "StepResult",
           "flag_value", "load", "main", "map_type_by_name", "run"]


class _Skip(Exception):
    """The step cannot run: a map or task it names does not exist (now)."""


@dataclass
class StepResult:
    index: int                           # 1-based step number
    action: str
    ok: bool
    line: int | None = None              # the step's [[step]] line in the file
    error: str | None = None             # errno name, or SKIPPED
    explanation: str | None = None
    deltas: dict[str, int] = field(default_factory=dict)
    expect_failed: str | None = None
    expected: bool = False               # the step has expect_errno (met or not)


class Scenario:
    """A checked scenario file bound to a fresh System, its cgroups and tasks made."""

    def __init__(self, sf: ScenarioFile, btf: str | None = None) -> None:
        self.file = sf
        self.system = _system(sf, btf)
        self.tasks: dict[str, Any] = {}
        self.maps: dict[str, tuple[Any, int]] = {}     # name -> (creator task, fd)
        self.gone: dict[str, str] = {}                 # map or task name -> why it is missing
        for e in sf.cgroups:
            self._make_cgroup(e)
        for e in sf.tasks:
            try:
                self._spawn(e.values)
            except OSError as exc:
                raise sf.error(e, f"cannot start the task: {_oserror(exc)}") from None

    # -- the tables ------------------------------------------------------------------
    def _make_cgroup(self, e: Entry) -> None:
        cg = self._mkdir_p(e.values["path"])
        files = cg.files()
        for key, value in e.values.items():
            if key == "path":
                continue
            if key not in files:
                kind = f"cgroup {self.system.cgroup_version}"
                raise self.file.error(e, f"a {kind} memory cgroup has no file {key!r}"
                                         f"{did_you_mean(key, files)}", key)
            text = value if isinstance(value, str) else show(value)
            try:
                cg.write(key, text)
            except OSError as exc:
                raise self.file.error(e, f"writing {show(text)} to {key} fails: {_oserror(exc)}", key) from None

    def _mkdir_p(self, path: str) -> Any:
        cg = self.system.root
        for part in [p for p in path.split("/") if p]:
            cg = next((c for c in cg.children if c.name == part), None) or cg.mkdir(part)
        return cg

    def _spawn(self, v: dict[str, Any]) -> None:
        task = self.system.spawn(cgroup=self._cgroup(v.get("cgroup", "/")), uid=v.get("uid", 0))
        if "rlimit_memlock" in v:
            task.setrlimit(pybpfmem.RLIMIT_MEMLOCK, v["rlimit_memlock"], v["rlimit_memlock"])
        self.tasks[v["name"]] = task
        self.gone.pop(v["name"], None)

    # -- lookups at run time ---------------------------------------------------------
    def _cgroup(self, path: str) -> Any:
        cg = self.system.root
        for part in [p for p in path.split("/") if p]:
            nxt = next((c for c in cg.children if c.name == part), None)
            if nxt is None:
                raise OSError(errno.ENOENT, f"no cgroup {path} (removed, or not created yet)")
            cg = nxt
        return cg

    def _task(self, name: str) -> Any:
        if name not in self.tasks:
            raise _Skip(f"task {name!r} does not exist {self.gone.get(name, 'yet')}")
        return self.tasks[name]

    def _map(self, name: str) -> tuple[Any, int]:
        if name not in self.maps:
            why = self.gone.get(name)
            if why is None:
                why = f"yet (step {self.file.map_creators[name] + 1} creates it)"
            raise _Skip(f"map {name!r} does not exist: {why}")
        return self.maps[name]

    def _keys(self, v: dict[str, Any], key_size: int) -> list[bytes]:
        count, start = v.get("count", 1), v.get("start", 0)
        space = 1 << min(8 * key_size, 63)
        if key_size == 0 or start + count > space:
            raise OSError(errno.EINVAL, f"{count} keys from {start} do not fit a {key_size}-byte key")
        if v.get("key_pattern", "seq") == "seq":
            idx: Sequence[int] = range(start, start + count)
        else:
            rng = random.Random(v.get("seed", 0))
            idx = rng.sample(range(min(space, 1 << 31)), count)
        return [i.to_bytes(key_size, "little") for i in idx]

    def _usage(self) -> dict[str, int]:
        """memory.current of every non-root cgroup (the root has no such file)."""
        out = {}
        stack = list(self.system.root.children)
        while stack:
            cg = stack.pop()
            out[cg.path] = cg.usage_pages * self.system.page_size
            stack.extend(cg.children)
        return out

    # -- steps -----------------------------------------------------------------------
    def run_step(self, e: Entry) -> StepResult:
        v = e.values
        action = v["action"]
        result = StepResult(e.index + 1, action, ok=True, line=e.line)
        before = self._usage()
        try:
            getattr(self, "_do_" + action)(v, result)
        except _Skip as exc:
            result.ok, result.error, result.explanation = False, SKIPPED, str(exc)
        except OSError as exc:
            result.ok, result.error, result.explanation = False, errname(exc.errno or 0), exc.strerror or str(exc)
        except (ValueError, TypeError) as exc:     # an argument the model refuses, as EINVAL
            result.ok, result.error, result.explanation = False, "EINVAL", str(exc)
        self.system.run_deferred()
        after = self._usage()
        result.deltas = {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(before) | set(after))
                         if after.get(k, 0) != before.get(k, 0)}
        if "expect_errno" in v:
            result.expected = True
            want, got = v["expect_errno"], result.error or "OK"
            if want != got:
                result.expect_failed = f"expected {want}, got {got}"
        return result

    def _do_mkdir(self, v: dict[str, Any], result: StepResult) -> None:
        parts = [p for p in v["path"].split("/") if p]
        if not parts:
            raise OSError(errno.EEXIST, "mkdir /: the root cgroup exists")
        parent = self._mkdir_p("/".join(parts[:-1]))
        parent.mkdir(parts[-1])          # EEXIST when it exists, as mkdir(2)

    def _do_rmdir(self, v: dict[str, Any], result: StepResult) -> None:
        self._cgroup(v["cgroup"]).rmdir()

    def _do_set(self, v: dict[str, Any], result: StepResult) -> None:
        self._cgroup(v["cgroup"]).write(v["file"], v["value"])

    def _do_spawn(self, v: dict[str, Any], result: StepResult) -> None:
        self._spawn(v)

    def _do_migrate(self, v: dict[str, Any], result: StepResult) -> None:
        self._task(v["task"]).migrate(self._cgroup(v["cgroup"]))

    def _do_exit(self, v: dict[str, Any], result: StepResult) -> None:
        self._task(v["task"]).exit()
        del self.tasks[v["task"]]
        self.gone[v["task"]] = f"(it exited at step {result.index})"

    def _do_dentries(self, v: dict[str, Any], result: StepResult) -> None:
        """Lookups of `count` names that do not exist, by `task`: negative dentries that
        stay unused on the LRU of the task's cgroup (reclaim shrinks them)."""
        count = v.get("count", 1)
        with self._task(v["task"]).running():
            made = len(self.system.create_dentries(count))
        if made < count:
            raise OSError(errno.ENOMEM, f"d_alloc: {made} of {count} dentries, then ENOMEM")

    def _do_thread(self, v: dict[str, Any], result: StepResult) -> None:
        """clone(CLONE_THREAD) of `task`, known as `name` afterwards: a kernel stack more."""
        self.tasks[v["name"]] = self._task(v["task"]).clone_thread()
        self.gone.pop(v["name"], None)

    def _do_drop_caches(self, v: dict[str, Any], result: StepResult) -> None:
        self.system.drop_slab()

    def _do_settle(self, v: dict[str, Any], result: StepResult) -> None:
        self.system.run_deferred()

    def _do_drain(self, v: dict[str, Any], result: StepResult) -> None:
        self.system.drain_all_stock()

    def _do_create_map(self, v: dict[str, Any], result: StepResult) -> None:
        task, name = self._task(v["task"]), v["name"]
        try:
            with task.running():
                fd = task.bpf_map_create(v["type"], v["key_size"], v["value_size"], v["max_entries"],
                                         v.get("flags", 0), map_name=name, map_extra=v.get("map_extra", 0))
        except OSError as exc:
            self.gone[name] = f"its create_map (step {result.index}) failed with {errname(exc.errno or 0)}"
            raise
        self.maps[name] = (task, fd)

    def _sizes(self, task: Any, fd: int) -> tuple[int, int, int]:
        info = task.bpf_obj_get_info_by_fd(fd)
        return int(info["key_size"]), int(info["value_size"]), int(info["id"])

    def _do_update(self, v: dict[str, Any], result: StepResult) -> None:
        task, fd = self._map(v["map"])
        key_size, value_size, map_id = self._sizes(task, fd)
        flags, value = v.get("update_flags", 0), bytes(value_size)
        keys = self._keys(v, key_size)
        if "context" in v:       # a program in interrupt context: the helper
            with self.system.in_interrupt(cpu=v["context"]):
                for key in keys:
                    rc = self.system.helper_map_update_elem(map_id, key, value, flags)
                    if rc < 0:
                        raise OSError(-rc, f"bpf_map_update_elem() helper returned {rc} at key {key.hex()}")
            return
        updater = self._task(v["task"]) if "task" in v else task
        if updater is task:
            with task.running():
                for key in keys:
                    task.bpf_map_update_elem(fd, key, value, flags)
            return
        # another task updates through an fd passed to it (SCM_RIGHTS), closed after the step
        their_fd = task.dup_fd_to(updater, fd)
        try:
            with updater.running():
                for key in keys:
                    updater.bpf_map_update_elem(their_fd, key, value, flags)
        finally:
            updater.close(their_fd)

    def _do_delete(self, v: dict[str, Any], result: StepResult) -> None:
        task, fd = self._map(v["map"])
        with task.running():
            for key in self._keys(v, self._sizes(task, fd)[0]):
                task.bpf_map_delete_elem(fd, key)

    def _do_lookup(self, v: dict[str, Any], result: StepResult) -> None:
        task, fd = self._map(v["map"])
        with task.running():
            for key in self._keys(v, self._sizes(task, fd)[0]):
                task.bpf_map_lookup_elem(fd, key)

    def _do_close(self, v: dict[str, Any], result: StepResult) -> None:
        task, fd = self._map(v["map"])
        task.close(fd)
        del self.maps[v["map"]]
        self.gone[v["map"]] = f"its fd was closed at step {result.index}"

    def _do_pin(self, v: dict[str, Any], result: StepResult) -> None:
        task, fd = self._map(v["map"])
        task.bpf_obj_pin(fd, v["path"])

    def _do_unpin(self, v: dict[str, Any], result: StepResult) -> None:
        self.system.bpffs_unlink(v["path"])

    def _do_load_prog(self, v: dict[str, Any], result: StepResult) -> None:
        task = self._task(v["task"])
        with task.running():
            task.bpf_prog_load(v["prog_type"], v["insns"])

    def _do_expect(self, v: dict[str, Any], result: StepResult) -> None:
        """A check that cannot be evaluated (no such cgroup, file or key, a number
        compared with text) is a failed expectation, never a pass."""
        try:
            got = self._read(v["cgroup"], v["file"])
        except OSError as exc:
            result.expect_failed = f"cannot read {v['cgroup']} {v['file']}: {exc.strerror or exc}"
            return
        for kind in ("equals", "at_least", "at_most"):
            if kind not in v:
                continue
            raw = v[kind]
            try:
                want: int | str = parse_size(raw) if isinstance(got, int) else str(raw)
            except ValueError:
                result.expect_failed = (f"{v['cgroup']} {v['file']} = {got}, a number; "
                                        f"{kind} {show(raw)} is not one")
                return
            if kind == "equals":
                ok = got == want
            elif isinstance(got, int) and isinstance(want, int):
                ok = got >= want if kind == "at_least" else got <= want
            else:
                result.expect_failed = f"{v['cgroup']} {v['file']} = {got!r}, not a number: {kind} cannot compare it"
                return
            if not ok:
                result.expect_failed = f"{v['cgroup']} {v['file']} = {got}, expected {kind.replace('_', ' ')} {want}"
                return

    def _read(self, path: str, what: str) -> int | str:
        """A cgroup file's value: memory.stat:KEY / memory.events:KEY, or the file's text
        (an integer when it holds one)."""
        cg = self._cgroup(path)
        name, _, key = what.partition(":")
        if key:
            if name not in ("memory.stat", "memory.events"):
                raise OSError(errno.ENOENT, f"only memory.stat and memory.events take ':KEY', not {name}")
            values = cg.stat() if name == "memory.stat" else cg.events()
            if key not in values:
                raise OSError(errno.ENOENT, f"{name} has no key {key!r}{did_you_mean(key, values)}")
            return int(values[key])
        text = cg.read(name).strip()
        return int(text) if text.lstrip("-").isdigit() else text


def _system(sf: ScenarioFile, btf: str | None = None) -> pybpfmem.System:
    v = sf.system.values
    name: str = v.get("profile", CURRENT_PROFILE)
    profile: str | Profile = name
    if btf is not None:       # --btf: that kernel's struct sizes, the profile's rules
        try:
            profile, _ = profile_with_btf(get_profile(name), btf, v.get("page_size", 4096))
        except (OSError, ValueError) as exc:
            raise ScenarioError(f"--btf {btf}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return pybpfmem.System(nr_cpus=v.get("cpus", DEFAULT_CPUS), page_size=v.get("page_size", 4096),
                               profile=profile, cgroup=v.get("cgroup", "v2"),
                               ram=v.get("ram", "8G"),
                               memory_recursiveprot=v.get("memory_recursiveprot", False))
    except (TypeError, ValueError) as exc:
        # the System's own range checks (cpus above the core's limit, ram too small/large)
        param = str(exc).split(" ", 1)[0].split("=", 1)[0]
        key = {"nr_cpus": "cpus", "ram": "ram", "page_size": "page_size"}.get(param)
        raise sf.error(sf.system, str(exc), key) from None


def load(path: str, btf: str | None = None) -> Scenario:
    """Read and check a scenario file and make its System, cgroups and tasks
    (ScenarioError: one line, file:line: where: what); ``btf``: struct sizes from
    that vmlinux BTF."""
    return Scenario(scenario_file.load(path), btf)


def _oserror(exc: OSError) -> str:
    return f"{errname(exc.errno or 0)} ({exc.strerror or exc})"


def run(scenario: Scenario, progress: bool = False) -> list[StepResult]:
    """Run every step; with ``progress``, a progress bar on stderr (a terminal only)."""
    from rich.progress import Progress

    steps = scenario.file.steps
    with Progress(transient=True, disable=not (progress and sys.stderr.isatty())) as bar:
        task = bar.add_task("steps", total=len(steps))
        out = []
        for e in steps:
            out.append(scenario.run_step(e))
            bar.advance(task)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pybpfmem simulate",
        description="Run a TOML scenario file (format: docs/scenarios.md) and print, per step, the "
                    "change of memory.current in every cgroup and any error. Exit 0 when every "
                    "expectation is met, 1 when one fails, 2 when the file is wrong.")
    parser.add_argument("file", metavar="FILE.toml", help="the scenario file")
    parser.add_argument("--json", action="store_true", help="print the per-step results as JSON")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="draw memory.current of each cgroup over the steps (needs matplotlib)")
    add_btf_argument(parser)
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.plot:
            check_plot_path("--plot", args.plot)
    except CommandError as exc:
        print(f"pybpfmem simulate: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        with btf_warnings("pybpfmem simulate"):
            scenario = load(args.file, args.btf)
    except ScenarioError as exc:
        print(f"pybpfmem simulate: {exc}", file=sys.stderr)
        return EXIT_BAD_FILE
    results = run(scenario, progress=not args.json)
    failed = [r for r in results if r.expect_failed]
    if args.plot:
        from pybpfmem.commands.plotting import plot_timelines

        usage: dict[str, list[int | None]] = {}
        running: dict[str, int] = {}
        for r in results:
            for path, d in r.deltas.items():
                running[path] = running.get(path, 0) + d
            for path in running:
                usage.setdefault(path, [None] * (r.index - 1)).append(running[path])
        steps = [f"{r.index}:{r.action}" for r in results]
        rc = plot_timelines({scenario.system.profile.name: {"steps": steps, "memory.current": usage}}, args.plot)
        if rc:
            return rc
    if args.json:
        json.dump([asdict(r) for r in results], sys.stdout, indent=2)
        print()
    else:
        _render(args.file, scenario, results)
    return EXIT_EXPECT_FAILED if failed else 0


def _render(path: str, scenario: Scenario, results: list[StepResult]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    system = scenario.system
    table = Table(title=f"{path} ({system.profile.name}, {system.cgroup_version})")
    table.add_column("#", justify="right")
    table.add_column("action")
    table.add_column("result", overflow="fold")
    table.add_column("memory.current changes", overflow="fold")
    for r in results:
        if r.ok:
            res = "ok"
        elif r.error == SKIPPED:
            res = f"[yellow]skipped[/yellow]: {escape(r.explanation or '')}"
        else:
            met = "" if r.expect_failed or not r.expected else " (expected)"
            res = f"[red]{r.error}[/red]{met} {escape(r.explanation or '')}"
        if r.expect_failed:
            failed_text = f"[bold red]EXPECT FAILED: {escape(r.expect_failed)}[/bold red]"
            res = failed_text if r.ok else f"{res} {failed_text}"
        table.add_row(str(r.index), r.action, res, ", ".join(f"{p} {d:+,}" for p, d in r.deltas.items()))
    Console().print(table)
    print(summary(results))


def summary(results: list[StepResult]) -> str:
    """The report's last line: steps, errors (how many of them expected), skipped steps,
    failed expectations."""
    errors = [r for r in results if not r.ok and r.error != SKIPPED]
    expected = sum(r.expected and not r.expect_failed for r in errors)
    skipped = sum(r.error == SKIPPED for r in results)
    failed = sum(bool(r.expect_failed) for r in results)

    def n(count: int, noun: str) -> str:
        return f"{count} {noun}{'' if count == 1 else 's'}"

    return (f"{n(len(results), 'step')}, {n(len(errors), 'error')} ({expected} expected), "
            f"{skipped} skipped, {n(failed, 'failed expectation')}")
