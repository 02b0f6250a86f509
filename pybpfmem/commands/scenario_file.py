"""Scenario files (``pybpfmem simulate``): reading, the schema, and where each key is.

A scenario file is checked whole before anything runs: every table and key is
known, every value has the right type and range, every task, map and cgroup a
step names is created somewhere in the file, and no two of them share a name.
Each problem is one line naming the file, the line and the key
(``seed.toml:14: [[step]] #2 (create_map): unknown key 'value_sise' (did you
mean 'value_size'?)``).  tomllib gives no line numbers, so ``KeyLines`` finds
them in the source text: a small scan of table headers and ``key =`` lines
(keys written inside inline tables or multi-line arrays fall back to their
table's line).  The format is documented key by key in docs/scenarios.md;
The tables under "the schema" below (SYSTEM, CGROUP, TASK, STEP_COMMON, ACTIONS)
are the one place that lists the keys.
"""

from __future__ import annotations

import difflib
import errno as errno_mod
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pybpfmem.bpf import uapi
from pybpfmem.constants import U32_MAX, U64_MAX
from pybpfmem.mm.system import parse_size as _parse_size
from pybpfmem.profiles import PROFILE_NAMES

#: [system] cpus when the file does not say
DEFAULT_CPUS = 2
#: how many keys one update/delete/lookup step may touch
MAX_COUNT = 10_000_000
#: ENOTSUPP (include/linux/errno.h): the kernel-internal errno bpf() can return
ENOTSUPP = 524


class ScenarioError(Exception):
    """A problem in the scenario file: where it is and what is wrong (one line)."""


class Bad(ValueError):
    """A value the schema refuses; the message says what was expected."""


# ------------------------------------------------------------------ names the kernel has
def map_type_by_name(name: str) -> int:
    """bpftool's type names ("hash", "percpu_array") or uapi names ("BPF_MAP_TYPE_HASH")."""
    return _uapi_name(name, "BPF_MAP_TYPE_", "map type")


def prog_type_by_name(name: str) -> int:
    """"socket_filter" or "BPF_PROG_TYPE_SOCKET_FILTER"."""
    return _uapi_name(name, "BPF_PROG_TYPE_", "program type")


def _uapi_name(name: str, prefix: str, what: str) -> int:
    key = name.upper()
    if not key.startswith(prefix):
        key = prefix + key
    value = getattr(uapi, key, None)
    if not isinstance(value, int) or key.endswith("_UNSPEC"):
        known = [k[len(prefix):].lower() for k in dir(uapi) if k.startswith(prefix) and not k.endswith("_UNSPEC")]
        raise ValueError(f"unknown {what} {name!r}{did_you_mean(name.lower(), known)}")
    return value


def flag_value(names: Any, prefix: str = "BPF_F_") -> int:
    """A list of flag names (``["NO_PREALLOC"]``, with or without the prefix) or the
    flag word as an integer."""
    if isinstance(names, int) and not isinstance(names, bool):
        if not 0 <= names <= U32_MAX:
            raise ValueError(f"a flag word is a u32, got {names}")
        return names
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"must be a list of flag names such as [\"{'NO_PREALLOC' if prefix == 'BPF_F_' else 'NOEXIST'}\"]"
                         f" or an integer, got {show(names)}")
    total = 0
    for n in names:
        key = n.upper() if n.upper().startswith(prefix) else prefix + n.upper()
        value = getattr(uapi, key, None)
        if not isinstance(value, int):
            known = [k[len(prefix):] for k in dir(uapi) if k.startswith(prefix)]
            raise ValueError(f"unknown flag {n!r}{did_you_mean(n.upper(), known)}")
        total |= value
    return total


def errno_by_name(name: str) -> int:
    """"ENOMEM" -> 12; "ENOTSUPP" (kernel-internal, 524) too."""
    if name.upper() == "ENOTSUPP":
        return ENOTSUPP
    value = getattr(errno_mod, name.upper(), None)
    if not name.upper().startswith("E") or not isinstance(value, int):
        raise ValueError(f"unknown errno {name!r}")
    return value


def parse_size(value: Any) -> int:
    """4096, "4K", "64M" -> bytes (powers of 1024, as memparse() reads them)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected a size such as 4096 or \"64M\", got {show(value)}")
    try:
        return _parse_size(value, "size")
    except (TypeError, ValueError):
        raise ValueError(f"expected a size such as 4096 or \"64M\", got {show(value)}") from None


def show(value: Any) -> str:
    """A value as it is written in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, list, dict)):
        return json.dumps(value)
    return str(value)


def did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ------------------------------------------------------------------ value checkers
Check = Callable[[Any], Any]


def integer(lo: int, hi: int) -> Check:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise Bad(f"must be an integer in {lo}..{hi}, got {show(v)}")
        if not lo <= v <= hi:
            raise Bad(f"must be an integer in {lo}..{hi}, got {v}")
        return v
    return check


def choice(*options: Any) -> Check:
    def check(v: Any) -> Any:
        if isinstance(v, bool) or v not in options:
            listed = ", ".join(show(o) for o in options)
            hint = did_you_mean(v, [o for o in options if isinstance(o, str)]) if isinstance(v, str) else ""
            raise Bad(f"must be one of {listed}, got {show(v)}{hint}")
        return v
    return check


def text(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise Bad(f"must be a non-empty string, got {show(v)}")
    return v


def size(v: Any) -> int:
    try:
        return parse_size(v)
    except ValueError as exc:
        raise Bad(str(exc)) from None


def memlock_limit(v: Any) -> int:
    if v == "unlimited":
        return U64_MAX        # RLIM_INFINITY
    try:
        return parse_size(v)
    except ValueError:
        raise Bad(f"expected a size such as \"64K\" or \"unlimited\", got {show(v)}") from None


def limit_value(v: Any) -> str:
    """What is written to a cgroup file: a string (\"64M\", \"max\") or an integer."""
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise Bad(f"must be a string such as \"64M\" or \"max\", or an integer, got {show(v)}")
    return str(v)


def expected_value(v: Any) -> int | str:
    """A bound of an expect step: bytes or a count (an integer, \"500K\"), or the text of a
    file that holds no number (\"max\")."""
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise Bad(f"must be an integer, a size such as \"500K\", or a string, got {show(v)}")
    return v


def cgroup_path(v: Any) -> str:
    """"/a/b" (also "a/b"): normalized to "/a/b"; "/" is the root."""
    if not isinstance(v, str) or not v:
        raise Bad(f"must be a cgroup path such as \"/agents/a\", got {show(v)}")
    parts = [p for p in v.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise Bad(f"must be a cgroup path without '.' or '..', got {show(v)}")
    return "/" + "/".join(parts)


_MAP_NAME = re.compile(r"[A-Za-z0-9_.]+")


def map_label(v: Any) -> str:
    """The name steps use for a map; also its kernel name (bpf_obj_name_cpy() takes
    letters, digits, '_' and '.'; libbpf keeps the first 15 characters)."""
    if not isinstance(v, str) or not _MAP_NAME.fullmatch(v):
        raise Bad(f"must be a map name of letters, digits, '_' and '.' (the kernel's rule), got {show(v)}")
    return v


def map_type(v: Any) -> int:
    if not isinstance(v, str):
        raise Bad(f"must be a map type name such as \"hash\", got {show(v)}")
    try:
        return map_type_by_name(v)
    except ValueError as exc:
        raise Bad(str(exc)) from None


def prog_type(v: Any) -> int:
    if not isinstance(v, str):
        raise Bad(f"must be a program type name such as \"socket_filter\", got {show(v)}")
    try:
        return prog_type_by_name(v)
    except ValueError as exc:
        raise Bad(str(exc)) from None


def map_flags(v: Any) -> int:
    try:
        return flag_value(v, "BPF_F_")
    except ValueError as exc:
        raise Bad(str(exc)) from None


def update_flags(v: Any) -> int:
    try:
        return flag_value(v, "BPF_")
    except ValueError as exc:
        raise Bad(str(exc)) from None


def errno_or_ok(v: Any) -> str:
    if not isinstance(v, str):
        raise Bad(f"must be an errno name such as \"ENOMEM\", or \"OK\", got {show(v)}")
    if v.upper() == "OK":
        return "OK"
    try:
        errno_by_name(v)
    except ValueError:
        known = [*errno_mod.errorcode.values(), "ENOTSUPP"]
        raise Bad(f"must be an errno name such as \"ENOMEM\", or \"OK\", got {show(v)}"
                  f"{did_you_mean(v.upper(), known)}") from None
    return v.upper()


_IRQ = re.compile(r"irq:(\d+)")


def irq_context(v: Any) -> int:
    """"irq:CPU": a program run from an interrupt on CPU; returns the cpu."""
    m = _IRQ.fullmatch(v) if isinstance(v, str) else None
    if not m:
        raise Bad(f"must be \"irq:CPU\" (a program in interrupt context on CPU), got {show(v)}")
    return int(m.group(1))


def boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise Bad(f"must be true or false, got {show(v)}")
    return v


# ------------------------------------------------------------------ the schema
@dataclass(frozen=True)
class Key:
    check: Check
    required: bool = False


def req(check: Check) -> Key:
    return Key(check, True)


def opt(check: Check) -> Key:
    return Key(check)


U32 = integer(0, U32_MAX)
_KEYS = {"count": opt(integer(0, MAX_COUNT)), "start": opt(integer(0, U32_MAX)),
         "key_pattern": opt(choice("seq", "random")), "seed": opt(integer(0, U64_MAX))}
_TASK = {"name": req(text), "cgroup": opt(cgroup_path), "uid": opt(integer(0, U32_MAX - 1)),  # -1: no uid
         "rlimit_memlock": opt(memlock_limit)}

SYSTEM: dict[str, Key] = {
    "profile": opt(choice(*PROFILE_NAMES)), "cpus": opt(integer(1, 4096)),
    "page_size": opt(choice(4096, 16384, 65536)), "cgroup": opt(choice("v1", "v2")), "ram": opt(size),
    "memory_recursiveprot": opt(boolean),
}
#: [[cgroup]]: "path" and any cgroup file name ("memory.max" = "8M"), checked against the
#: files a memory cgroup of the file's cgroup version has
CGROUP: dict[str, Key] = {"path": req(cgroup_path)}
TASK: dict[str, Key] = dict(_TASK)
#: [[step]] keys of every action
STEP_COMMON: dict[str, Key] = {"action": req(text), "expect_errno": opt(errno_or_ok)}
#: [[step]] keys per action
ACTIONS: dict[str, dict[str, Key]] = {
    "create_map": {"task": req(text), "name": req(map_label), "type": req(map_type),
                   "key_size": req(U32), "value_size": req(U32), "max_entries": req(U32),
                   "flags": opt(map_flags), "map_extra": opt(integer(0, U64_MAX))},
    "update": {"map": req(map_label), **_KEYS, "update_flags": opt(update_flags),
               "task": opt(text), "context": opt(irq_context)},
    "delete": {"map": req(map_label), **_KEYS},
    "lookup": {"map": req(map_label), **_KEYS},
    "close": {"map": req(map_label)},
    "pin": {"map": req(map_label), "path": req(text)},
    "unpin": {"path": req(text)},
    "load_prog": {"task": req(text), "prog_type": req(prog_type), "insns": req(integer(1, 1_000_000))},
    "spawn": dict(_TASK),
    "exit": {"task": req(text)},
    "migrate": {"task": req(text), "cgroup": req(cgroup_path)},
    "mkdir": {"path": req(cgroup_path)},
    "rmdir": {"cgroup": req(cgroup_path)},
    "set": {"cgroup": req(cgroup_path), "file": req(text), "value": req(limit_value)},
    "drain": {},
    "settle": {},
    "dentries": {"task": req(text), "count": opt(integer(0, MAX_COUNT))},
    "thread": {"task": req(text), "name": req(text)},
    "drop_caches": {},
    "expect": {"cgroup": req(cgroup_path), "file": req(text), "equals": opt(expected_value),
               "at_least": opt(expected_value), "at_most": opt(expected_value)},
}
#: the top-level tables: name -> (array of tables?, keys)
TABLES: dict[str, tuple[bool, dict[str, Key]]] = {
    "system": (False, SYSTEM), "cgroup": (True, CGROUP), "task": (True, TASK), "step": (True, STEP_COMMON),
}


# ------------------------------------------------------------------ where keys are
_HEADER = re.compile(r"\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_KEYLINE = re.compile(r"\s*(\"(?:[^\"\\]|\\.)*\"|'[^']*'|[A-Za-z0-9_.-]+)\s*=")


class KeyLines:
    """Line numbers of the tables and keys of a TOML text, found by scanning it.

    Tables are addressed as (name, occurrence): ``("step", 2)`` is the third
    ``[[step]]``; ``("", 0)`` is the top level.  Only what a scenario file uses is
    recognised: ``[name]``/``[[name]]`` headers and ``key = ...`` lines (bare or
    quoted keys); multi-line strings are skipped."""

    def __init__(self, source: str) -> None:
        self.tables: dict[tuple[str, int], int] = {}
        self.keys: dict[tuple[str, int], dict[str, int]] = {("", 0): {}}
        seen: dict[str, int] = {}
        current = ("", 0)
        in_string: str | None = None
        for lineno, line in enumerate(source.splitlines(), 1):
            if in_string:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            header = _HEADER.match(line)
            if header and not _KEYLINE.match(line):
                name = header.group(2).strip().strip("\"'")
                n = seen.get(name, -1) + 1 if header.group(1) == "[[" else 0
                seen[name] = n
                current = (name, n)
                self.tables.setdefault(current, lineno)
                self.keys.setdefault(current, {})
                continue
            key = _KEYLINE.match(line)
            if key:
                self.keys[current].setdefault(key.group(1).strip("\"'"), lineno)
            for quote in ('"""', "'''"):
                if line.count(quote) % 2 == 1:
                    in_string = quote
                    break

    def line(self, table: str, index: int, key: str | None = None) -> int | None:
        where = (table, index)
        if key is not None and key in self.keys.get(where, {}):
            return self.keys[where][key]
        return self.tables.get(where)


# ------------------------------------------------------------------ the checked file
@dataclass
class Entry:
    """One table of the file after checking: its values (normalized), where it is."""
    table: str              # "system", "cgroup", "task", "step"
    index: int              # 0-based occurrence among the tables of that name
    values: dict[str, Any]
    line: int | None

    @property
    def where(self) -> str:
        if self.table == "system":
            return "[system]"
        label = f"[[{self.table}]] #{self.index + 1}"
        action = self.values.get("action")
        if self.table == "step" and isinstance(action, str) and action in ACTIONS:
            label += f" ({self.values['action']})"
        return label


@dataclass
class ScenarioFile:
    path: str
    system: Entry
    cgroups: list[Entry]
    tasks: list[Entry]
    steps: list[Entry]
    lines: KeyLines
    #: map name -> index of the step that creates it
    map_creators: dict[str, int] = field(default_factory=dict)

    def error(self, entry: Entry, message: str, key: str | None = None, name_key: bool = True) -> ScenarioError:
        """A ScenarioError located at `entry` (at `key`'s line, naming it first
        unless `name_key` is false: the message names it itself)."""
        line = self.lines.line(entry.table, entry.index, key)
        return located(self.path, line, entry.where, message, key if name_key else None)


def located(path: str, line: int | None, where: str, message: str, key: str | None = None) -> ScenarioError:
    place = f"{path}:{line}" if line else path
    return ScenarioError(f"{place}: {where}: " + (f"key {key!r}: " if key else "") + message)


def load(path: str) -> ScenarioFile:
    """Read and check a scenario file (ScenarioError: one line, file:line: where: what)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = raw[:exc.start].count(b"\n") + 1
        raise ScenarioError(f"{path}:{bad_line}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})") from None
    try:
        doc = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)|\(at end of document\)", str(exc))
        reason = str(exc)[:m.start()].strip() if m else str(exc)
        line = m.group(1) if m and m.group(1) else str(source.count("\n") + 1)
        raise ScenarioError(f"{path}:{line}: not valid TOML: {reason}") from None
    return check(path, doc, KeyLines(source))


def check(path: str, doc: dict[str, Any], lines: KeyLines) -> ScenarioFile:
    """The schema, then the cross-references (names used are created, no duplicates)."""
    for name, value in doc.items():
        if name not in TABLES:
            line = lines.line(name, 0) or lines.line("", 0, name)
            hint = did_you_mean(name, TABLES)
            if name in SYSTEM:
                hint = " (it belongs under [system])"
            kind = "table" if isinstance(value, (dict, list)) else "key"
            raise located(path, line, "top level", f"unknown {kind} {name!r}{hint}; a scenario has "
                          "[system], [[cgroup]], [[task]] and [[step]]")
        array, _ = TABLES[name]
        ok = isinstance(value, list) and all(isinstance(t, dict) for t in value) if array else isinstance(value, dict)
        if not ok:
            form = f"[[{name}]] (an array of tables)" if array else f"[{name}] (one table)"
            raise located(path, lines.line(name, 0) or lines.line("", 0, name), "top level",
                          f"{name!r} must be written as {form}")
    system = Entry("system", 0, dict(doc.get("system", {})), lines.line("system", 0))
    sf = ScenarioFile(
        path, system,
        [Entry("cgroup", i, dict(t), lines.line("cgroup", i)) for i, t in enumerate(doc.get("cgroup", []))],
        [Entry("task", i, dict(t), lines.line("task", i)) for i, t in enumerate(doc.get("task", []))],
        [Entry("step", i, dict(t), lines.line("step", i)) for i, t in enumerate(doc.get("step", []))],
        lines)
    _check_keys(sf, system, SYSTEM)
    for e in sf.cgroups:
        _check_keys(sf, e, CGROUP, extra=lambda k: k.startswith("memory.") or k.startswith("cgroup."))
    for e in sf.tasks:
        _check_keys(sf, e, TASK)
    for e in sf.steps:
        action = e.values.get("action")
        if action is None:
            raise sf.error(e, "missing key 'action'")
        if not isinstance(action, str) or action not in ACTIONS:
            raise sf.error(e, f"unknown action {show(action)}{did_you_mean(str(action), ACTIONS)} "
                              f"(one of {', '.join(ACTIONS)})", "action")
        _check_keys(sf, e, {**STEP_COMMON, **ACTIONS[action]})
        if action == "expect" and not {"equals", "at_least", "at_most"} & set(e.values):
            raise sf.error(e, "an expect step needs one of 'equals', 'at_least', 'at_most'")
    _check_names(sf)
    return sf


def _check_keys(sf: ScenarioFile, e: Entry, keys: dict[str, Key],
                extra: Callable[[str], bool] | None = None) -> None:
    for k in list(e.values):
        if k in keys:
            try:
                e.values[k] = keys[k].check(e.values[k])
            except Bad as exc:
                raise sf.error(e, str(exc), k) from None
        elif not (extra and extra(k)):
            takes = e.where.split(" #")[0] + (f" with action {e.values['action']!r}" if e.table == "step" else "")
            files = " and cgroup files such as 'memory.max'" if extra else ""
            raise sf.error(e, f"unknown key {k!r}{did_you_mean(k, keys)}; {takes} takes "
                              f"{', '.join(keys)}{files}", k, name_key=False)
    for k, spec in keys.items():
        if spec.required and k not in e.values:
            raise sf.error(e, f"missing key {k!r}")


def _check_names(sf: ScenarioFile) -> None:
    """Every task, map and cgroup a step names is created in the file, and names are unique."""
    tasks: dict[str, Entry] = {}
    cgroups: dict[str, Entry] = {}
    created_paths = {"/"}

    def add_path(path: str) -> None:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            created_paths.add("/" + "/".join(parts[:i]))

    def first(prev: Entry) -> str:
        line = sf.lines.line(prev.table, prev.index)
        return f"{prev.where}" + (f", line {line}" if line else "")

    for e in sf.cgroups:
        path = e.values["path"]
        if path in cgroups:
            raise sf.error(e, f"cgroup {path!r} is already described by {first(cgroups[path])}", "path")
        cgroups[path] = e
        add_path(path)
    for e in [*sf.tasks, *(s for s in sf.steps if s.values["action"] in ("spawn", "thread"))]:
        name = e.values["name"]
        if name in tasks:
            raise sf.error(e, f"a task named {name!r} already exists ({first(tasks[name])}); task names are unique", "name")
        tasks[name] = e
    for s in sf.steps:
        if s.values["action"] == "mkdir":
            add_path(s.values["path"])
        if s.values["action"] == "create_map":
            name = s.values["name"]
            if name in sf.map_creators:
                prev = sf.steps[sf.map_creators[name]]
                raise sf.error(s, f"a map named {name!r} is already created by {first(prev)}; map names are unique", "name")
            sf.map_creators[name] = s.index
    cpus = sf.system.values.get("cpus", DEFAULT_CPUS)
    for e in [*sf.tasks, *sf.steps]:
        v = e.values
        if "context" in v and v["context"] >= cpus:
            raise sf.error(e, f"irq:{v['context']}: the system has cpus 0..{cpus - 1} ([system] cpus)", "context")
        if "task" in v and v["task"] not in tasks:
            raise sf.error(e, f"no task {v['task']!r}: name it in a [[task]] table or a spawn step"
                              f"{did_you_mean(v['task'], tasks)}", "task")
        if "map" in v and v["map"] not in sf.map_creators:
            raise sf.error(e, f"no map {v['map']!r}: no create_map step names it"
                              f"{did_you_mean(v['map'], sf.map_creators)}", "map")
        if "cgroup" in v and v["cgroup"] not in created_paths:
            raise sf.error(e, f"no cgroup {v['cgroup']!r}: no [[cgroup]] table or mkdir step creates it"
                              f"{did_you_mean(v['cgroup'], created_paths)}", "cgroup")
