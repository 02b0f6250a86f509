"""``pybpfmem simulate FILE.toml``: scenario files.

A scenario describes a System, a cgroup tree with limits, tasks, and a list
of steps.  Running it prints, per step, what changed in every cgroup's
memory.current and any error with the model's explanation; ``expect`` steps
turn a scenario into a regression test (non-zero exit when one fails).
The format is documented in docs/scenarios.md.  Errors in the file are
reported with the step's line and the offending key, never as a traceback.
"""

from __future__ import annotations

import argparse
import errno as errno_mod
import json
import random
import re
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pybpfmem
from pybpfmem.bpf import uapi
from pybpfmem.bpf.errors import errname
from pybpfmem.profiles import CURRENT_PROFILE

EXIT_EXPECT_FAILED = 1
EXIT_BAD_FILE = 2

ACTIONS = (
    "create_map", "update", "delete", "lookup", "close", "pin", "unpin", "load_prog",
    "migrate", "exit", "spawn", "mkdir", "rmdir", "set", "expect", "settle", "drain",
    "dentries", "thread", "drop_caches",
)


class ScenarioError(Exception):
    """A problem in the scenario file: where it is and what is wrong."""


def map_type_by_name(name: str) -> int:
    """bpftool's type names ("hash", "percpu_array") or uapi names ("BPF_MAP_TYPE_HASH")."""
    key = name.upper()
    if not key.startswith("BPF_MAP_TYPE_"):
        key = "BPF_MAP_TYPE_" + key
    value = getattr(uapi, key, None)
    if not isinstance(value, int) or key == "BPF_MAP_TYPE_UNSPEC":
        raise ValueError(f"unknown map type {name!r}")
    return value


def flag_value(names: Any, prefix: str = "BPF_F_") -> int:
    """A list of flag names (or an int) to the flag word."""
    if isinstance(names, int) and not isinstance(names, bool):
        return names
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list):
        raise ValueError("flags must be an integer or a list of names")
    total = 0
    for n in names:
        key = n.upper() if n.upper().startswith(prefix) else prefix + n.upper()
        value = getattr(uapi, key, None)
        if not isinstance(value, int):
            raise ValueError(f"unknown flag {n!r}")
        total |= value
    return total


def parse_size(text: Any) -> int:
    """"64M", "4K", 4096 -> bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("sizes must not be negative")
        return text
    if not isinstance(text, str):
        raise ValueError(f"expected a size, got {text!r}")
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"not a size: {text!r}")
    return int(m.group(1)) << (10 * "KMGT".find(m.group(2).upper()) + 10 if m.group(2) else 0)


def errno_by_name(name: str) -> int:
    if name.upper() == "ENOTSUPP":
        return 524
    value = getattr(errno_mod, name.upper(), None)
    if not isinstance(value, int):
        raise ValueError(f"unknown errno {name!r}")
    return value


@dataclass
class StepResult:
    index: int
    action: str
    ok: bool
    error: str | None = None
    explanation: str | None = None
    deltas: dict[str, int] = field(default_factory=dict)
    expect_failed: str | None = None


class Scenario:
    """A parsed scenario bound to a fresh System."""

    def __init__(self, doc: dict[str, Any], text: str = ""):
        self.doc = doc
        self.step_lines = [i + 1 for i, line in enumerate(text.splitlines()) if line.strip() == "[[step]]"]
        sysconf = doc.get("system", {})
        if not isinstance(sysconf, dict):
            raise ScenarioError("[system] must be a table")
        try:
            self.system = pybpfmem.System(
                nr_cpus=int(sysconf.get("cpus", 2)),
                page_size=int(sysconf.get("page_size", 4096)),
                profile=str(sysconf.get("profile", CURRENT_PROFILE)),
                cgroup=str(sysconf.get("cgroup", "v2")),
                ram=str(sysconf.get("ram", "8G")),
                memory_recursiveprot=bool(sysconf.get("memory_recursiveprot", False)),
            )
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"[system]: {exc}") from exc
        self.tasks: dict[str, Any] = {}
        self.maps: dict[str, tuple[Any, int]] = {}  # name -> (task, fd)
        for i, cg in enumerate(doc.get("cgroup", [])):
            self._where = f"[[cgroup]] #{i + 1}"
            self._mkdir(cg)
        for i, t in enumerate(doc.get("task", [])):
            self._where = f"[[task]] #{i + 1}"
            self._spawn(t)

    # -- helpers -------------------------------------------------------------
    def _req(self, table: dict[str, Any], key: str) -> Any:
        if key not in table:
            raise ScenarioError(f"{self._where}: missing key {key!r}")
        return table[key]

    def _cgroup(self, path: str) -> Any:
        cg = self.system.root
        for part in [p for p in str(path).split("/") if p]:
            match = [c for c in cg.children if c.name == part]
            if not match:
                raise ScenarioError(f"{self._where}: no cgroup {path!r}")
            cg = match[0]
        return cg

    def _mkdir(self, table: dict[str, Any]) -> None:
        path = str(self._req(table, "path"))
        cg = self.system.root
        for part in [p for p in path.split("/") if p]:
            match = [c for c in cg.children if c.name == part]
            cg = match[0] if match else cg.mkdir(part)
        for key, value in table.items():
            if key.startswith("memory."):
                cg.write(key, str(value))

    def _spawn(self, table: dict[str, Any]) -> None:
        name = str(self._req(table, "name"))
        task = self.system.spawn(cgroup=self._cgroup(table.get("cgroup", "/")), uid=int(table.get("uid", 0)))
        if "rlimit_memlock" in table:
            limit = table["rlimit_memlock"]
            value = (1 << 64) - 1 if limit == "unlimited" else parse_size(limit)
            task.setrlimit(pybpfmem.RLIMIT_MEMLOCK, value, value)
        self.tasks[name] = task

    def _task(self, step: dict[str, Any]) -> Any:
        name = str(self._req(step, "task"))
        if name not in self.tasks:
            raise ScenarioError(f"{self._where}: no task {name!r}")
        return self.tasks[name]

    def _map(self, step: dict[str, Any]) -> tuple[Any, int]:
        name = str(self._req(step, "map"))
        if name not in self.maps:
            raise ScenarioError(f"{self._where}: no map {name!r} (create it first)")
        return self.maps[name]

    def _context(self, step: dict[str, Any]) -> Any:
        """Where the step runs: a task (default: the map's creator) or "irq:CPU"."""
        ctx = step.get("context")
        if isinstance(ctx, str) and ctx.startswith("irq:"):
            return self.system.in_interrupt(cpu=int(ctx[4:]))
        task = self._task(step) if "task" in step else self._map(step)[0]
        return task.running()

    def _keys(self, step: dict[str, Any], key_size: int) -> list[bytes]:
        count = int(step.get("count", 1))
        start = int(step.get("start", 0))
        if count < 0 or count > 10_000_000:
            raise ScenarioError(f"{self._where}: count must be 0..10000000")
        pattern = step.get("key_pattern", "seq")
        if pattern == "seq":
            idx = range(start, start + count)
        elif pattern == "random":
            rng = random.Random(int(step.get("seed", 0)))
            idx = rng.sample(range(1 << min(8 * key_size, 31)), count)
        else:
            raise ScenarioError(f"{self._where}: key_pattern must be 'seq' or 'random'")
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

    # -- steps ---------------------------------------------------------------
    def run_step(self, index: int, step: dict[str, Any]) -> StepResult:
        line = self.step_lines[index] if index < len(self.step_lines) else None
        self._where = f"[[step]] #{index + 1}" + (f" (line {line})" if line else "")
        action = self._req(step, "action")
        if action not in ACTIONS:
            raise ScenarioError(f"{self._where}: key 'action': unknown action {action!r} (one of {', '.join(ACTIONS)})")
        before = self._usage()
        result = StepResult(index + 1, action, ok=True)
        expected = step.get("expect_errno")
        try:
            getattr(self, "_do_" + action)(step, result)
        except OSError as exc:
            result.ok = False
            result.error = errname(exc.errno or 0)
            result.explanation = exc.strerror
        except (ValueError, TypeError, KeyError) as exc:
            raise ScenarioError(f"{self._where}: {exc}") from exc
        if getattr(self.system, "run_deferred", None):
            self.system.run_deferred()
        after = self._usage()
        result.deltas = {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(before) | set(after)) if after.get(k, 0) != before.get(k, 0)}
        if expected is not None:
            want = str(expected).upper()
            got = result.error or "OK"
            if want != got:
                result.expect_failed = f"expected {want}, got {got}"
        elif not result.ok and step.get("may_fail") is not True and action != "expect":
            pass  # failures are reported, not fatal: the report shows them
        return result

    def _do_mkdir(self, step: dict[str, Any], result: StepResult) -> None:
        self._mkdir(step)

    def _do_rmdir(self, step: dict[str, Any], result: StepResult) -> None:
        self._cgroup(self._req(step, "cgroup")).rmdir()

    def _do_set(self, step: dict[str, Any], result: StepResult) -> None:
        self._cgroup(self._req(step, "cgroup")).write(str(self._req(step, "file")), str(self._req(step, "value")))

    def _do_spawn(self, step: dict[str, Any], result: StepResult) -> None:
        self._spawn(step)

    def _do_migrate(self, step: dict[str, Any], result: StepResult) -> None:
        self._task(step).migrate(self._cgroup(self._req(step, "cgroup")))

    def _do_exit(self, step: dict[str, Any], result: StepResult) -> None:
        self._task(step).exit()

    def _do_dentries(self, step: dict[str, Any], result: StepResult) -> None:
        """Lookups of `count` names that do not exist, by `task`: negative dentries that
        stay unused on the LRU of the task's cgroup (reclaim shrinks them)."""
        count = int(step.get("count", 1))
        if count < 0 or count > 10_000_000:
            raise ScenarioError(f"{self._where}: count must be 0..10000000")
        with self._task(step).running():
            made = len(self.system.create_dentries(count))
        if made < count:
            raise OSError(errno_mod.ENOMEM, f"d_alloc: {made} of {count} dentries, then ENOMEM")

    def _do_thread(self, step: dict[str, Any], result: StepResult) -> None:
        """clone(CLONE_THREAD) of `task`, known as `name` afterwards: a kernel stack more."""
        self.tasks[str(self._req(step, "name"))] = self._task(step).clone_thread()

    def _do_drop_caches(self, step: dict[str, Any], result: StepResult) -> None:
        self.system.drop_slab()

    def _do_settle(self, step: dict[str, Any], result: StepResult) -> None:
        self.system.run_deferred()

    def _do_drain(self, step: dict[str, Any], result: StepResult) -> None:
        self.system.drain_all_stock()

    def _do_create_map(self, step: dict[str, Any], result: StepResult) -> None:
        task = self._task(step)
        name = str(self._req(step, "name"))
        with task.running():
            fd = task.bpf_map_create(
                map_type_by_name(str(self._req(step, "type"))),
                int(step.get("key_size", 4)),
                int(step.get("value_size", 8)),
                int(self._req(step, "max_entries")),
                flag_value(step.get("flags", 0)),
                map_name=str(step.get("map_name", name))[:15],
                map_extra=int(step.get("map_extra", 0)),
            )
        self.maps[name] = (task, fd)

    def _value_size(self, task: Any, fd: int) -> tuple[int, int]:
        info = task.bpf_obj_get_info_by_fd(fd)
        return int(info["key_size"]), int(info["value_size"])

    def _do_update(self, step: dict[str, Any], result: StepResult) -> None:
        task, fd = self._map(step)
        key_size, value_size = self._value_size(task, fd)
        flags = flag_value(step.get("update_flags", 0), prefix="BPF_")
        ctx = step.get("context")
        irq = isinstance(ctx, str) and ctx.startswith("irq:")
        map_id = task.bpf_obj_get_info_by_fd(fd)["id"]
        value = bytes(value_size)
        with self._context(step):
            for key in self._keys(step, key_size):
                if irq:
                    self.system.helper_map_update_elem(map_id, key, value, flags)
                else:
                    task.bpf_map_update_elem(fd, key, value, flags)

    def _do_delete(self, step: dict[str, Any], result: StepResult) -> None:
        task, fd = self._map(step)
        key_size, _ = self._value_size(task, fd)
        with task.running():
            for key in self._keys(step, key_size):
                task.bpf_map_delete_elem(fd, key)

    def _do_lookup(self, step: dict[str, Any], result: StepResult) -> None:
        task, fd = self._map(step)
        key_size, _ = self._value_size(task, fd)
        with task.running():
            for key in self._keys(step, key_size):
                task.bpf_map_lookup_elem(fd, key)

    def _do_close(self, step: dict[str, Any], result: StepResult) -> None:
        task, fd = self._map(step)
        task.close(fd)
        del self.maps[str(step["map"])]

    def _do_pin(self, step: dict[str, Any], result: StepResult) -> None:
        task, fd = self._map(step)
        task.bpf_obj_pin(fd, str(self._req(step, "path")))

    def _do_unpin(self, step: dict[str, Any], result: StepResult) -> None:
        self.system.bpffs_unlink(str(self._req(step, "path")))

    def _do_load_prog(self, step: dict[str, Any], result: StepResult) -> None:
        task = self._task(step)
        prog_type = str(self._req(step, "prog_type")).upper()
        if not prog_type.startswith("BPF_PROG_TYPE_"):
            prog_type = "BPF_PROG_TYPE_" + prog_type
        value = getattr(uapi, prog_type, None)
        if not isinstance(value, int):
            raise ScenarioError(f"{self._where}: key 'prog_type': unknown program type {step['prog_type']!r}")
        with task.running():
            task.bpf_prog_load(value, int(self._req(step, "insns")))

    def _do_expect(self, step: dict[str, Any], result: StepResult) -> None:
        cg = self._cgroup(self._req(step, "cgroup"))
        what = str(self._req(step, "file"))
        if what.startswith("memory.stat:"):
            got = cg.stat()[what.split(":", 1)[1]]
        elif what.startswith("memory.events:"):
            got = cg.events()[what.split(":", 1)[1]]
        else:
            got = int(cg.read(what).strip()) if cg.read(what).strip().lstrip("-").isdigit() else cg.read(what).strip()
        checks = {k: step[k] for k in ("equals", "at_least", "at_most") if k in step}
        if not checks:
            raise ScenarioError(f"{self._where}: expect needs one of 'equals', 'at_least', 'at_most'")
        for kind, raw in checks.items():
            want = parse_size(raw) if isinstance(got, int) else str(raw)
            ok = {"equals": got == want, "at_least": got >= want, "at_most": got <= want}[kind]
            if not ok:
                result.expect_failed = f"{cg.path} {what} = {got}, expected {kind.replace('_', ' ')} {want}"


def load(path: str) -> Scenario:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ScenarioError(f"{path}: {exc.strerror}") from exc
    text = raw.decode("utf-8", "replace")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    return Scenario(doc, text)


def run(scenario: Scenario, progress: bool = False) -> list[StepResult]:
    """Run every step; with ``progress``, a progress bar on stderr (a terminal only)."""
    steps = scenario.doc.get("step", [])
    if not isinstance(steps, list):
        raise ScenarioError("'step' must be an array of tables ([[step]])")
    from rich.progress import Progress

    with Progress(transient=True, disable=not (progress and sys.stderr.isatty())) as bar:
        task = bar.add_task("steps", total=len(steps))
        out = []
        for i, step in enumerate(steps):
            out.append(scenario.run_step(i, step))
            bar.advance(task)
    return out


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="pybpfmem simulate", description="Run a TOML scenario file.")
    parser.add_argument("file")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plot", metavar="FILE.png")
    args = parser.parse_args(argv)
    try:
        scenario = load(args.file)
        results = run(scenario, progress=not args.json)
    except ScenarioError as exc:
        print(f"pybpfmem simulate: {exc}", file=sys.stderr)
        return EXIT_BAD_FILE
    failed = [r for r in results if r.expect_failed]
    if args.plot:
        from pybpfmem.commands.plotting import plot_timelines

        usage: dict[str, list[int]] = {}
        running: dict[str, int] = {}
        for r in results:
            for path, d in r.deltas.items():
                running[path] = running.get(path, 0) + d
            for path in running:
                usage.setdefault(path, [0] * (r.index - 1)).append(running[path])
        rc = plot_timelines({scenario.system.profile.name: {"steps": [f"{r.index}:{r.action}" for r in results], "memory.current": usage}}, args.plot)
        if rc:
            return rc
    if args.json:
        json.dump([r.__dict__ for r in results], sys.stdout, indent=2)
        print()
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{args.file} ({scenario.system.profile.name}, {scenario.system.cgroup_version})")
        table.add_column("#", justify="right")
        table.add_column("action")
        table.add_column("result", overflow="fold")
        table.add_column("memory.current changes", overflow="fold")
        for r in results:
            res = "ok" if r.ok else f"[red]{r.error}[/red] {r.explanation or ''}"
            if r.expect_failed:
                res += f" [bold red]EXPECT FAILED: {r.expect_failed}[/bold red]"
            table.add_row(str(r.index), r.action, res, ", ".join(f"{p} {d:+,}" for p, d in r.deltas.items()))
        Console().print(table)
        print(f"{len(results)} steps, {sum(not r.ok for r in results)} errors, {len(failed)} failed expectations")
    return EXIT_EXPECT_FAILED if failed else 0
