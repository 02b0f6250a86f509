"""`pybpfmem simulate`: the scenario file's schema (each mistake: one line naming the
file, line and key, exit 2), and how a run reports failing steps (never cut short;
an expectation that cannot be evaluated fails, exit 1)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pybpfmem.commands import cli
from pybpfmem.commands.scenario_file import ACTIONS, CGROUP, SYSTEM, TASK

ROOT = Path(__file__).resolve().parent.parent

# a valid file; the cases below change one thing in it
BASE = """\
[system]
profile = "6.18"

[[cgroup]]
path = "/agents/a"
"memory.max" = "1M"

[[task]]
name = "agent"
cgroup = "/agents/a"

[[step]]
action = "create_map"
task = "agent"
name = "conns"
type = "hash"
key_size = 4
value_size = 4096
max_entries = 1000
expect_errno = "ENOMEM"

[[step]]
action = "update"
map = "conns"
count = 10
"""


def simulate(capsys, tmp_path, text, *extra):
    f = tmp_path / "s.toml"
    f.write_text(text)
    rc = cli.main(["simulate", str(f), *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err.replace(str(f), "s.toml")


BAD_FILES = [
    # a misspelled key of a step
    (BASE.replace("value_size = 4096", "value_sise = 64"),
     "s.toml:18: [[step]] #1 (create_map): unknown key 'value_sise' (did you mean 'value_size'?); "
     "[[step]] with action 'create_map' takes action, expect_errno, task, name, type, key_size, "
     "value_size, max_entries, flags, map_extra"),
    # a misspelled table: its profile would silently not apply
    (BASE.replace("[system]", "[sytem]"),
     "s.toml:1: top level: unknown table 'sytem' (did you mean 'system'?); a scenario has [system], "
     "[[cgroup]], [[task]] and [[step]]"),
    ('profile = "5.10"\n' + BASE.replace('[system]\nprofile = "6.18"\n', ""),
     "s.toml:1: top level: unknown key 'profile' (it belongs under [system]); a scenario has "
     "[system], [[cgroup]], [[task]] and [[step]]"),
    (BASE.replace("[system]", "[[system]]"),
     "s.toml:1: top level: 'system' must be written as [system] (one table)"),
    # wrong types and ranges
    (BASE.replace("max_entries = 1000", "max_entries = 1000.5"),
     "s.toml:19: [[step]] #1 (create_map): key 'max_entries': must be an integer in 0..4294967295, got 1000.5"),
    (BASE.replace("max_entries = 1000", 'max_entries = "two"'),
     "s.toml:19: [[step]] #1 (create_map): key 'max_entries': must be an integer in 0..4294967295, got \"two\""),
    (BASE.replace("max_entries = 1000", "max_entries = 4294967296"),
     "s.toml:19: [[step]] #1 (create_map): key 'max_entries': must be an integer in 0..4294967295, got 4294967296"),
    (BASE.replace("max_entries = 1000", "max_entries = true"),
     "s.toml:19: [[step]] #1 (create_map): key 'max_entries': must be an integer in 0..4294967295, got true"),
    (BASE.replace("max_entries = 1000", 'max_entries = 1000\nflags = "NO_PREALLOC"'),
     "s.toml:20: [[step]] #1 (create_map): key 'flags': must be a list of flag names such as "
     "[\"NO_PREALLOC\"] or an integer, got \"NO_PREALLOC\""),
    (BASE.replace("max_entries = 1000", 'max_entries = 1000\nflags = ["NO_PRELLOC"]'),
     "s.toml:20: [[step]] #1 (create_map): key 'flags': unknown flag 'NO_PRELLOC' (did you mean 'NO_PREALLOC'?)"),
    (BASE.replace("count = 10", 'count = 10\ncontext = "softirq"'),
     "s.toml:26: [[step]] #2 (update): key 'context': must be \"irq:CPU\" (a program in interrupt "
     "context on CPU), got \"softirq\""),
    (BASE.replace('type = "hash"', 'type = "hsah"'),
     "s.toml:16: [[step]] #1 (create_map): key 'type': unknown map type 'hsah' (did you mean 'hash'?)"),
    (BASE.replace('expect_errno = "ENOMEM"', 'expect_errno = "ENOMEME"'),
     "s.toml:20: [[step]] #1 (create_map): key 'expect_errno': must be an errno name such as "
     "\"ENOMEM\", or \"OK\", got \"ENOMEME\" (did you mean 'ENOMEM'?)"),
    # a typo of 6.18 ("6.81" would be closest to the 6.8 profile)
    (BASE.replace('profile = "6.18"', 'profile = "6.118"'),
     "s.toml:2: [system]: key 'profile': must be one of "
     + ", ".join(f'"{p}"' for p in SYSTEM and __import__("pybpfmem").PROFILE_NAMES)
     + ", got \"6.118\" (did you mean '6.18'?)"),
    (BASE.replace('name = "conns"', 'name = "conn-table"'),
     "s.toml:15: [[step]] #1 (create_map): key 'name': must be a map name of letters, digits, '_' "
     "and '.' (the kernel's rule), got \"conn-table\""),
    (BASE.replace("[[step]]\naction = \"update\"", "[[step]]\naction = \"upadte\""),
     "s.toml:23: [[step]] #2: key 'action': unknown action \"upadte\" (did you mean 'update'?) (one of "
     + ", ".join(ACTIONS) + ")"),
    (BASE + '\n[[step]]\naction = "expect"\ncgroup = "/agents/a"\nfile = "memory.current"\n',
     "s.toml:27: [[step]] #3 (expect): an expect step needs one of 'equals', 'at_least', 'at_most'"),
    (BASE.replace("max_entries = 1000\n", ""),
     "s.toml:12: [[step]] #1 (create_map): missing key 'max_entries'"),
    # names used but never created
    (BASE.replace('task = "agent"', 'task = "agnet"'),
     "s.toml:14: [[step]] #1 (create_map): key 'task': no task 'agnet': name it in a [[task]] table "
     "or a spawn step (did you mean 'agent'?)"),
    (BASE.replace('map = "conns"', 'map = "cons"'),
     "s.toml:24: [[step]] #2 (update): key 'map': no map 'cons': no create_map step names it "
     "(did you mean 'conns'?)"),
    (BASE.replace('cgroup = "/agents/a"', 'cgroup = "/agent/a"'),
     "s.toml:10: [[task]] #1: key 'cgroup': no cgroup '/agent/a': no [[cgroup]] table or mkdir step "
     "creates it (did you mean '/agents/a'?)"),
    # duplicates
    (BASE + '\n[[task]]\nname = "agent"\n',
     "s.toml:28: [[task]] #2: key 'name': a task named 'agent' already exists ([[task]] #1, line 8); "
     "task names are unique"),
    (BASE + '\n[[step]]\naction = "create_map"\ntask = "agent"\nname = "conns"\ntype = "array"\n'
            'key_size = 4\nvalue_size = 4\nmax_entries = 1\n',
     "s.toml:30: [[step]] #3 (create_map): key 'name': a map named 'conns' is already created by "
     "[[step]] #1 (create_map), line 12; map names are unique"),
    (BASE + '\n[[cgroup]]\npath = "agents/a/"\n',
     "s.toml:28: [[cgroup]] #2: key 'path': cgroup '/agents/a' is already described by [[cgroup]] #1, line 4"),
    # cgroup files: checked against the files the cgroup version has, values as the kernel parses them
    (BASE.replace('"memory.max" = "1M"', '"memory.mxa" = "200M"'),
     "s.toml:6: [[cgroup]] #1: key 'memory.mxa': a cgroup v2 memory cgroup has no file 'memory.mxa' "
     "(did you mean 'memory.max'?)"),
    (BASE.replace('"memory.max" = "1M"', '"memory.max" = "-5M"'),
     "s.toml:6: [[cgroup]] #1: key 'memory.max': writing \"-5M\" to memory.max fails: EINVAL "
     "(page_counter_memparse: invalid value '-5M' (trailing '-5M'))"),
    (BASE.replace('"memory.max" = "1M"', 'max = "1M"'),
     "s.toml:6: [[cgroup]] #1: unknown key 'max'; [[cgroup]] takes path and cgroup files such as 'memory.max'"),
    # not TOML, not text
    ("[system\n", "s.toml:1: not valid TOML: Expected ']' at the end of a table declaration"),
    (BASE + "\n[[step]]\naction = \n", "s.toml:28: not valid TOML: Invalid value"),
]


@pytest.mark.parametrize("text,message", BAD_FILES, ids=range(len(BAD_FILES)))
def test_bad_file_is_one_line_naming_file_line_and_key(capsys, tmp_path, text, message):
    rc, out, err = simulate(capsys, tmp_path, text)
    assert (rc, out, err) == (2, "", f"pybpfmem simulate: {message}\n")


def test_unreadable_and_undecodable_files(capsys, tmp_path):
    rc = cli.main(["simulate", str(tmp_path / "missing.toml")])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"pybpfmem simulate: {tmp_path}/missing.toml: cannot read: No such file or directory\n"
    f = tmp_path / "latin1.toml"
    f.write_bytes(b'[system]\nprofile = "6.18"  # caf\xe9\n')
    rc = cli.main(["simulate", str(f)])
    err = capsys.readouterr().err
    assert rc == 2 and err == f"pybpfmem simulate: {f}:2: not UTF-8 text (byte 0xe9 at offset 32)\n"


def test_failed_creation_is_reported_per_step(capsys, tmp_path):
    # HASH k4 v4096 x1000 prealloc: the element area (~4 MB, vmalloc) cannot fit a
    # 1M memory.max: ENOMEM, which the step expects; the update naming the map is
    # then skipped with the reason, and the report goes on to its last line
    rc, out, err = simulate(capsys, tmp_path, BASE, "--json")
    assert rc == 0 and err == ""
    create, update = json.loads(out)
    assert (create["error"], create["expected"], create["expect_failed"], create["line"]) == ("ENOMEM", True, None, 12)
    assert (update["error"], update["explanation"], update["expect_failed"]) == (
        "SKIPPED", "map 'conns' does not exist: its create_map (step 1) failed with ENOMEM", None)
    rc, out, _ = simulate(capsys, tmp_path, BASE)
    assert rc == 0
    assert out.splitlines()[-1] == "2 steps, 1 error (1 expected), 1 skipped, 0 failed expectations"


def test_unexpected_outcomes_fail_the_run(capsys, tmp_path):
    # the same creation expected to succeed: a failed expectation, exit 1; the skipped
    # update with expect_errno = "OK" is one too
    text = BASE.replace('expect_errno = "ENOMEM"', 'expect_errno = "OK"') + 'expect_errno = "OK"\n'
    rc, out, _ = simulate(capsys, tmp_path, text, "--json")
    create, update = json.loads(out)
    assert rc == 1
    assert create["expect_failed"] == "expected OK, got ENOMEM"
    assert update["expect_failed"] == "expected OK, got SKIPPED"


EXPECT_UNEVALUABLE = [
    ('file = "memory.stat:slab_unreclaimble"\nequals = 0',
     "cannot read /agents/a memory.stat:slab_unreclaimble: memory.stat has no key "
     "'slab_unreclaimble' (did you mean 'slab_unreclaimable'?)"),
    ('file = "memory.mxa"\nequals = 0',
     "cannot read /agents/a memory.mxa: /agents/a/memory.mxa: no such file (cgroup v2, profile 6.18)"),
    ('file = "memory.current:x"\nequals = 0',
     "cannot read /agents/a memory.current:x: only memory.stat and memory.events take ':KEY', not memory.current"),
    ('file = "memory.max"\nat_least = "1M"',
     # memory.max holds "1048576": a number, compared as one (1M = 1048576): met
     None),
    ('file = "memory.high"\nat_least = 0',
     "/agents/a memory.high = 'max', not a number: at_least cannot compare it"),
    # the task's kernel stack: 4 pages, charged through a stock batch of 64 (6.18)
    ('file = "memory.current"\nequals = "lots"',
     "/agents/a memory.current = 262144, a number; equals \"lots\" is not one"),
]


@pytest.mark.parametrize("check,failure", EXPECT_UNEVALUABLE, ids=range(len(EXPECT_UNEVALUABLE)))
def test_an_expect_that_cannot_be_evaluated_fails(capsys, tmp_path, check, failure):
    text = BASE.split("[[step]]")[0] + f'[[step]]\naction = "expect"\ncgroup = "/agents/a"\n{check}\n'
    rc, out, _ = simulate(capsys, tmp_path, text, "--json")
    (step,) = json.loads(out)
    assert (rc, step["expect_failed"]) == ((1, failure) if failure else (0, None))


def test_runtime_errors_are_step_results(capsys, tmp_path):
    # rmdir of a cgroup with a task: EBUSY (cgroup_destroy_locked); a later mkdir of an
    # existing cgroup: EEXIST; set with a value the kernel refuses: EINVAL
    text = BASE.split("[[step]]")[0] + (
        '[[step]]\naction = "rmdir"\ncgroup = "/agents/a"\n\n'
        '[[step]]\naction = "mkdir"\npath = "/agents/a"\n\n'
        '[[step]]\naction = "set"\ncgroup = "/agents/a"\nfile = "memory.max"\nvalue = "-5M"\n'
        'expect_errno = "EINVAL"\n')
    rc, out, _ = simulate(capsys, tmp_path, text, "--json")
    assert rc == 0
    assert [s["error"] for s in json.loads(out)] == ["EBUSY", "EEXIST", "EINVAL"]


def test_updates_from_another_task_and_from_an_interrupt(capsys, tmp_path):
    # NO_PREALLOC hash k8 v64, 6.18: every element is charged to the map's memcg
    # (/owner), whoever updates it: a task in /other through a passed fd, or a program
    # in interrupt context; /other is charged nothing but its task's kernel stack
    text = """\
[[cgroup]]
path = "/owner"
[[cgroup]]
path = "/other"
[[task]]
name = "owner"
cgroup = "/owner"
[[task]]
name = "other"
cgroup = "/other"
[[step]]
action = "create_map"
task = "owner"
name = "m"
type = "hash"
key_size = 8
value_size = 64
max_entries = 10000
flags = ["NO_PREALLOC"]
[[step]]
action = "update"
map = "m"
task = "other"
count = 500
[[step]]
action = "update"
map = "m"
context = "irq:1"
start = 500
count = 500
[[step]]
action = "drain"
[[step]]
action = "expect"
cgroup = "/other"
file = "memory.current"
equals = "16K"
[[step]]
action = "expect"
cgroup = "/other"
file = "memory.stat:slab"
equals = 0
[[step]]
action = "expect"
cgroup = "/owner"
file = "memory.current"
at_least = "100K"
"""
    rc, out, _ = simulate(capsys, tmp_path, text, "--json")
    steps = json.loads(out)
    assert rc == 0, steps
    assert all(s["ok"] for s in steps)


def test_docs_name_every_key():
    """docs/scenarios.md documents every table, action and key of the schema."""
    doc = (ROOT / "docs" / "scenarios.md").read_text()
    for table, keys in (("[system]", SYSTEM), ("[[cgroup]]", CGROUP), ("[[task]]", TASK)):
        section = doc.split(f"## `{table}`", 1)[1].split("\n## ", 1)[0]
        for key in keys:
            assert f"`{key}`" in section, (table, key)
    steps = doc.split("## `[[step]]`", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", steps, re.M)}
    for action, keys in ACTIONS.items():
        assert action in rows, action
        for key in keys:
            assert f"`{key}`" in rows[action], (action, key)


def test_the_docs_example_runs_as_described(capsys, tmp_path):
    # 5.10 HASH k4 v64 x1000: the creation estimate is 34 pages (htab_map_alloc's cost),
    # over the 16-page (64K) rlimit: EPERM as the step expects; the update is skipped
    doc = (ROOT / "docs" / "scenarios.md").read_text()
    example = doc.split("## Example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    rc, out, _ = simulate(capsys, tmp_path, example, "--json")
    create, update = json.loads(out)
    assert rc == 0
    assert (create["error"], create["expect_failed"], update["error"]) == ("EPERM", None, "SKIPPED")


def _toml(doc: dict) -> str:
    """A scenario document back to TOML (flat tables of scalars and lists, as the schema has)."""
    def value(v):
        return json.dumps(v) if not isinstance(v, bool) else ("true" if v else "false")
    out = []
    for name, body in doc.items():
        for table in (body if isinstance(body, list) else [body]):
            out.append(f"[[{name}]]" if isinstance(body, list) else f"[{name}]")
            out += [f"{json.dumps(k)} = {value(v)}" for k, v in table.items()]
    return "\n".join(out) + "\n"


def test_mutated_examples_never_crash(capsys, tmp_path):
    """Every example with one value replaced by a value of another type or range, or one
    key dropped or misspelled: exit 0, 1 or 2, and a bad file is one line on stderr."""
    import random
    import tomllib

    rng = random.Random(14)
    odd = [-1, 0, 1.5, "x", [], ["NOEXIST"], True, 1 << 40, "irq:0", "irq:9", "/", "/nope", "ENOMEM",
           "64M", "max", "hash", 4294967296]
    for path in sorted((ROOT / "examples").glob("*.toml")):
        base = tomllib.loads(path.read_text())
        for _ in range(25):
            doc = json.loads(json.dumps(base))
            tables = [t for body in doc.values() for t in (body if isinstance(body, list) else [body])]
            table = rng.choice(tables)
            key = rng.choice(list(table))
            how = rng.randrange(3)
            if how == 0:
                table[key] = rng.choice(odd)
            elif how == 1:
                del table[key]
            else:
                table[key + "x"] = table.pop(key)
            f = tmp_path / "m.toml"
            f.write_text(_toml(doc))
            rc = cli.main(["simulate", str(f), "--json"])
            out = capsys.readouterr()
            assert rc in (0, 1, 2), (table, out.err)
            if rc == 2:
                assert out.out == "" and out.err.count("\n") == 1 and "Traceback" not in out.err, out.err
            else:
                assert json.loads(out.out)


def test_threads_dentries_and_drop_caches(capsys, tmp_path):
    # a thread is a task of its own name with a kernel stack charged to its process's
    # cgroup; dentries leave slab_reclaimable that drop_caches frees (6.18: 10 x 200 B)
    text = """\
[[cgroup]]
path = "/job"
[[task]]
name = "main"
cgroup = "/job"
[[step]]
action = "thread"
task = "main"
name = "worker"
[[step]]
action = "dentries"
task = "worker"
count = 10
[[step]]
action = "drain"
[[step]]
action = "expect"
cgroup = "/job"
file = "memory.stat:kernel_stack"
equals = "32K"
[[step]]
action = "expect"
cgroup = "/job"
file = "memory.stat:slab_reclaimable"
equals = 2000
[[step]]
action = "drop_caches"
[[step]]
action = "exit"
task = "worker"
[[step]]
action = "drain"
[[step]]
action = "expect"
cgroup = "/job"
file = "memory.stat:slab_reclaimable"
equals = 0
[[step]]
action = "expect"
cgroup = "/job"
file = "memory.stat:kernel_stack"
equals = "16K"
"""
    rc, out, _ = simulate(capsys, tmp_path, text, "--json")
    steps = json.loads(out)
    assert rc == 0, steps
    assert all(s["ok"] for s in steps)
    # a thread's name is a task name: unique among them
    rc, _, err = simulate(capsys, tmp_path, text.replace('name = "worker"', 'name = "main"', 1))
    assert rc == 2 and "a task named 'main' already exists" in err
