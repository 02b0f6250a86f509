"""The pybpfmem command: every subcommand's output values and error paths."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from pybpfmem.commands import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))


def run(capsys, *argv):
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_help_lists_every_command(capsys):
    rc, out, _ = run(capsys, "--help")
    assert rc == 0
    for name in ("demo", "simulate", "plan", "verify", "fuzz", "bench"):
        assert name in out


def test_unknown_command_is_a_usage_error(capsys):
    rc, _, err = run(capsys, "frobnicate")
    assert rc == 2 and "unknown command 'frobnicate'" in err


def test_bad_flag_exits_2(capsys):
    rc, _, err = run(capsys, "demo", "--no-such-flag")
    assert rc == 2 and err.splitlines()[-1] == "pybpfmem demo: error: unrecognized arguments: --no-such-flag"


@pytest.fixture(scope="module")
def demo():
    from pybpfmem.commands import demo as demo_mod

    return demo_mod.run()


def test_demo_shared_rlimit_budget(demo):
    # uid 0's locked_vm is shared: agent-a's hash map costs 161 pages of a 256-page
    # (1 MiB) RLIMIT_MEMLOCK, so agent-b's identical map (161 more) fails with EPERM
    # in 5.10; with memcg accounting both fit their own 8M cgroups
    rows = {p: demo["acts"][p]["shared_budget"]["rows"] for p in demo["profiles"]}
    assert rows["5.10"][1]["error"]["name"] == "EPERM"
    assert "161 pages" in rows["5.10"][1]["error"]["message"]
    for p in ("5.11", "6.18"):
        assert rows[p][1]["error"] is None
        # 16 MiB of array values cannot fit agent-b's 8 MiB memory.max
        assert rows[p][2]["error"]["name"] == "ENOMEM"
        assert rows[p][3]["error"] is None


def test_demo_estimate_vs_real(demo):
    est = {p: {r["map"]: r for r in demo["acts"][p]["estimate_vs_real"]} for p in demo["profiles"]}
    # 6.18 ARRAY 4/64 x1000: memlock = sizeof(bpf_array) 312 + 1000 * 64 = 64312;
    # the one 64312-byte bpf_map_area_alloc is > 32 KiB, so vmalloc: 16 pages
    arr = est["6.18"]["array 4/64 x1000"]
    assert arr["memlock"] == 64312 and arr["charged"] == 16 * 4096
    # 5.10: the estimate goes to locked_vm; memcg sees nothing of a BPF map
    assert est["5.10"]["array 4/64 x1000"]["charged"] == 0
    assert est["5.10"]["array 4/64 x1000"]["memlock"] == 16 * 4096
    # 5.11 footprint: round_up(1000 * round_up(4 + 64, 8), PAGE) = 73728
    assert est["5.11"]["array 4/64 x1000"]["memlock"] == 73728


def test_demo_failure_leaves_nothing_charged(demo):
    for p in ("5.11", "6.18"):
        r = demo["acts"][p]["half_way_failure"]
        assert r["error"]["name"] == "ENOMEM"
        assert r["memory.current after"] == r["memory.current before"]


def test_demo_half_way_failure_names_the_map_and_its_peak(demo):
    # HASH k4 v1024 x2000 under memory.max 512K: the buckets fit, the element area
    # (~2 MB of vmalloc) does not; the charge climbed to memory.max (the watermark,
    # memory.peak = 512K) before ENOMEM gave every page back
    for p in ("5.11", "6.18"):
        r = demo["acts"][p]["half_way_failure"]
        assert r["map"] == "sessions (hash 4/1024 x2000)"
        assert r["memory.peak"] == 512 * 1024
        assert set(r["memory.stat after"].values()) == {0}
        assert r["events"]["max"] > 0
    # 5.10: memcg is not charged at all; the creation succeeds (unlimited rlimit)
    r = demo["acts"]["5.10"]["half_way_failure"]
    assert r["error"] is None and r["memory.peak"] == 0


def test_demo_acts_show_memory_stat(demo):
    # after act 1 on 5.11, each agent holds its hash map: bpf_htab (kmalloc-1k slot
    # + 8-byte objcg pointer = 1032 B of slab) and its per-cpu extra elements
    a = demo["acts"]["5.11"]["shared_budget"]["memory.stat"]["agent-a"]
    assert a["slab_unreclaimable"] == 1032
    # 6.18 ARRAY 4/64 x1000: 16 vmalloc pages, in memory.stat's vmalloc entry
    arr = demo["acts"]["6.18"]["estimate_vs_real"][0]
    assert arr["memory.stat"]["vmalloc"] == 16 * 4096
    for p in demo["profiles"]:
        acts = demo["acts"][p]
        assert all("memory.stat" in r for r in acts["estimate_vs_real"])
        assert all("owner slab_unreclaimable" in r for r in acts["remote_charging"]["rows"])
        assert all("svc slab_unreclaimable" in s for s in acts["pinned_dying"]["states"])


def test_demo_every_act_has_a_caption_and_no_name_is_cut(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    rc, out, _ = run(capsys, "demo")
    assert rc == 0 and "…" not in out
    titles = [i for i, line in enumerate(out.splitlines()) if re.match(r"\d\. ", line)]
    assert len(titles) == 6
    lines = out.splitlines()
    for start, end in zip(titles, titles[1:] + [len(lines)]):
        section = lines[start:end]
        last_border = max(i for i, line in enumerate(section) if line.startswith("└"))
        caption = " ".join(section[last_border + 1:]).strip()
        assert len(caption) > 40, f"act {section[0][:2]} has no caption"


def test_demo_plot_data_has_limits_and_locked_vm(demo):
    tl = demo["timelines"]["5.10"]
    steps = tl["steps"]
    # act 1 (steps 0-3): RLIMIT_MEMLOCK 1M; agent-a's hash costs 161 pages of locked_vm
    # (the 5.10 estimate), agent-b's identical map is refused (EPERM), then agent-a's
    # array adds 16 pages
    assert tl["RLIMIT_MEMLOCK"][:4] == [1 << 20] * 4
    assert [v // 4096 for v in tl["locked_vm"][:4]] == [161, 161, 161, 177]
    assert tl["memory.max"]["/agent-a"][:4] == [8 << 20] * 4 and tl["memory.max"]["/agent-a"][4] is None
    # the later acts set no limit: no RLIMIT line there
    assert tl["RLIMIT_MEMLOCK"][4:] == [None] * (len(steps) - 4)
    # 5.11+ charge no locked_vm: their panels draw none
    assert not any(demo["timelines"]["6.18"]["locked_vm"])


def test_demo_remote_updates_charge_the_owner(demo):
    for p in ("5.11", "6.18"):
        for row in demo["acts"][p]["remote_charging"]["rows"]:
            assert row["owner charged"] > 0 and row["other charged"] == 0
    for row in demo["acts"]["5.10"]["remote_charging"]["rows"]:
        assert row["owner charged"] == 0


def test_demo_pinned_map_keeps_dying_cgroup_in_5_11(demo):
    s511 = demo["acts"]["5.11"]["pinned_dying"]["states"]
    assert [s["dying"] for s in s511] == [0, 1, 0]
    assert s511[1]["svc"] == s511[0]["svc"] > 0 and s511[2]["svc"] == 0


def test_demo_json_and_table(capsys):
    rc, out, _ = run(capsys, "demo", "--json", "--profile", "6.18")
    assert rc == 0
    doc = json.loads(out)
    assert doc["profiles"] == ["6.18"]
    rc, out, _ = run(capsys, "demo", "--profile", "5.11")
    assert rc == 0 and "Two root daemons" in out


def test_demo_plot_missing_extra(capsys, monkeypatch, tmp_path):
    import pybpfmem.commands.plotting as plotting

    monkeypatch.setattr(plotting, "_pyplot", lambda: None)
    rc, _, err = run(capsys, "demo", "--profile", "6.18", "--plot", str(tmp_path / "x.png"))
    assert rc == plotting.EXIT_NO_PLOT and "pip install" in err


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_meet_their_expectations(capsys, path):
    rc, out, err = run(capsys, "simulate", str(path), "--json")
    assert rc == 0, err
    steps = json.loads(out)
    assert steps and not any(s["expect_failed"] for s in steps)


def test_plan_bpftool_fixture(capsys):
    rc, out, _ = run(capsys, "plan", "--bpftool", str(ROOT / "tests/fixtures/bpftool-map-show.json"), "--json")
    assert rc == 0
    doc = json.loads(out)
    maps = {m["name"]: m for m in doc["maps"]}
    # ARRAY 4/64 x1000 on 6.18: one vmalloc'd area of 312 + 64000 bytes = 16 pages
    assert maps["cfg"]["charged_at_creation"] == 16 * 4096
    assert maps["cfg"]["memlock_empty"] == 64312
    # the input's memlock (from a 5.11-6.3 kernel: the footprint) is shown, not copied
    assert maps["cfg"]["input_memlock"] == 73728
    # HASH 4/64 x1000 prealloc: bpf_htab (832 -> kmalloc-1k, 1032 B with the objcg
    # slot: one page through the object stock), buckets 1024 * 16 = 16 KiB (kmalloc_large:
    # 4 pages), elements 120 * 1002 = 120240 B (vmalloc: 30 pages); the per-cpu
    # allocations happen before the objcg is saved and are not charged: 35 pages
    assert maps["flows"]["charged_at_creation"] == 35 * 4096
    assert maps["flows"]["charged_when_full"] == maps["flows"]["charged_at_creation"]
    assert maps["flows"]["memlock_empty"] == 137536
    # memory.max recommendation: everything when full and churned + 2 cpus x (64 stock
    # pages x 7 slots + 1 page)
    total = sum(m["charged_when_full"] + m["churn_peak"] for m in doc["maps"])
    slack = 2 * (64 * 7 * 4096 + 4096)
    assert doc["recommended_memory_max"] == -(-(total + slack) // (1 << 20)) * (1 << 20)


def test_plan_errors(capsys, tmp_path):
    # (no maps at all plans the built-in example; an input without maps: tests/test_plan.py)
    rc, _, err = run(capsys, "plan", "--map", "hash:4:64")
    assert rc == 2 and "TYPE:KEY:VALUE:MAX" in err
    rc, _, err = run(capsys, "plan", "--map", "nosuchtype:4:4:1")
    assert rc == 2 and "unknown map type" in err
    bad = tmp_path / "b.json"
    bad.write_text('{"not": "a list"}')
    rc, _, err = run(capsys, "plan", "--bpftool", str(bad))
    assert rc == 2 and "JSON list" in err
    rc, _, err = run(capsys, "plan", "--map", "array:4:8:10", "--cpus", "0")
    assert rc == 2


def test_plan_compare_profiles(capsys):
    rc, out, _ = run(capsys, "plan", "--map", "array:4:64:1000", "--compare-profiles", "--json")
    assert rc == 0
    doc = json.loads(out)
    # 5.10 memlock: the estimate 312 + 64000 rounded up to pages (16 pages);
    # 5.11: the footprint 73728; 6.18: map_mem_usage 64312
    assert [doc[p]["maps"][0]["memlock_empty"] for p in ("5.10", "5.11", "6.18")] == [65536, 73728, 64312]


@pytest.mark.live
def test_plan_host_reads_the_live_maps(capsys):
    from pybpfmem.live import bpf as live

    m = live.map_create("ARRAY", 4, 64, 1000)
    try:
        map_id = live.obj_get_info_by_fd(m.fd).id
        rc, out, _ = run(capsys, "plan", "--host", "--json")
    finally:
        m.close()
    assert rc == 0
    doc = json.loads(out)
    rows = [r for r in doc["maps"] if r["id"] == map_id]
    assert len(rows) == 1 and rows[0]["type"] == "array"
    # the live kernel's fdinfo memlock (array_map_mem_usage(): 312 + 1000 * 64) is shown beside
    assert rows[0]["input_memlock"] == 64312
    # the model's 6.18 prediction for the same shape equals the live fdinfo figure
    assert rows[0]["memlock_empty"] == 64312
    import os

    assert rows[0]["cgroup"] == live.memory_cgroup_of(os.getpid())


def test_demo_plot_draws_a_png(capsys, tmp_path):
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    out = tmp_path / "demo.png"
    rc, _, _ = run(capsys, "demo", "--profile", "6.18", "--plot", str(out))
    assert rc == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_timeline_leaves_gaps_between_acts(demo):
    # each act runs on a fresh System: a cgroup of one act has no value in another's steps
    tl = demo["timelines"]["6.18"]
    steps = len(tl["steps"])
    assert all(len(series) == steps for series in tl["memory.current"].values())
    agent_a = tl["memory.current"]["/agent-a"]
    assert agent_a[0] is not None and agent_a[-1] is None


# ---------------------------------------------------------------- bench
def fake_workloads(full):
    from pybpfmem.commands.bench import Measurement

    # ratios 1.5 (target 2: met), 3.0 (target 1.5: missed), 1/250 vs a 1/200 target (met:
    # 250x faster), the thread pair (1 thread 20 ns, 2 threads 12.5 ns: 1.6x throughput,
    # target 1.7x: missed), and a note on a row without a target
    yield lambda: Measurement("hit", 3.0, "plain add", 2.0, 2.0)
    yield lambda: Measurement("miss", 30.0, "2 atomic adds", 10.0, 1.5, "a note on miss")
    yield lambda: Measurement("vs reference", 4.0, "reference model", 1000.0, 1 / 200)
    yield lambda: Measurement("1 thread(s), per-cpu stock", 20.0)
    yield lambda: Measurement("2 thread(s), per-cpu stock", 12.5, note="a note on threads")


def test_bench_says_met_or_missed_per_target(capsys, monkeypatch):
    from pybpfmem.commands import bench

    monkeypatch.setattr(bench, "workloads", fake_workloads)
    monkeypatch.setattr(bench, "machine", lambda: {"cpu": "cpu", "cpus": "2", "kernel": "6.18"})
    monkeypatch.setenv("COLUMNS", "120")
    rc, out, _ = run(capsys, "bench")
    assert rc == 0
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in out.splitlines() if line.startswith("│")}
    # ns/op, ratio, vs, target, met
    assert rows["hit"] == ["3.0", "1.50x", "plain add", "<= 2x", "yes"]
    assert rows["miss [1]"] == ["30.0", "3.00x", "2 atomic adds", "<= 1.5x", "no"]
    assert rows["vs reference"] == ["4.0", "250x faster", "reference model", ">= 200x faster", "yes"]
    assert rows["1 thread(s), per-cpu stock"] == ["20.0", "-", "", "-", ""]
    assert rows["2 thread(s), per-cpu stock [2]"] == ["12.5", "1.60x throughput", "1 thread",
                                                      ">= 1.7x throughput", "no"]
    lines = out.splitlines()
    assert "[1] a note on miss" in lines and "[2] a note on threads" in lines
    assert lines[-1] == "targets met: 2 of 4 (the 'no' rows; what bounds each: docs/performance.md)"
    rc, _, _ = run(capsys, "bench", "--check")
    assert rc == 1


def test_bench_checks_output_paths_before_running(capsys, monkeypatch, tmp_path):
    from pybpfmem.commands import bench

    def never(full):
        raise AssertionError("the benchmarks ran before the output paths were checked")

    monkeypatch.setattr(bench, "workloads", never)
    missing = tmp_path / "no" / "such"
    for argv, message in (
            (["--output", f"{missing}/b.json"], f"--output {missing}/b.json: directory {missing} does not exist"),
            (["--svg", f"{missing}/b.svg"], f"--svg {missing}/b.svg: directory {missing} does not exist"),
            (["--plot", f"{missing}/b.png"], f"--plot {missing}/b.png: directory {missing} does not exist"),
            (["--plot", "x.txt"], "--plot x.txt: the file name must end in .png, .svg or .pdf"),
            (["--output", str(tmp_path)], f"--output {tmp_path}: is a directory")):
        rc, out, err = run(capsys, "bench", *argv)
        assert (rc, out, err) == (2, "", f"pybpfmem bench: {message}\n")


# ---------------------------------------------------------------- --help
class _Parsed(Exception):
    def __init__(self, parser):
        self.parser = parser


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_option_has_help_without_markup(name, monkeypatch):
    """`pybpfmem NAME --help` explains every option and argument, in plain text (no RST
    ``literals`` from docstrings)."""
    import argparse
    import importlib

    def capture(self, *args, **kwargs):
        raise _Parsed(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    module = importlib.import_module(cli.COMMANDS[name][0])
    with pytest.raises(_Parsed) as got:
        module.main(["--help"])
    parser = got.value.parser
    assert parser.prog == f"pybpfmem {name}"
    texts = [parser.description or "", parser.epilog or ""]
    for action in parser._actions:
        assert action.help, f"pybpfmem {name} {'/'.join(action.option_strings) or action.dest}: no help"
        texts.append(action.help)
    for text in texts:
        assert "``" not in text and ":func:" not in text and ":class:" not in text, text


def test_top_level_help_and_version(capsys):
    rc, out, _ = run(capsys, "--help")
    assert rc == 0 and "--version" in out and "`pybpfmem COMMAND --help`" in out
    rc, _, err = run(capsys)
    assert rc == 2 and err.startswith("usage: pybpfmem")


# ---------------------------------------------------------------- plan's input files
# (plan's own checks of each map are the plan command's tests, tests/test_plan.py; these
# are the first-hour issue's: no Python internals, no decode error without the file)
PLAN_BAD_INPUT = [
    ("--bpftool", "b.json", b'[{"id": 1, "type": "hash"}]', "b.json: map #0: key 'bytes_key' is missing"),
    ("--bpftool", "b.json", b"{bad", "b.json: not valid JSON: Expecting property name enclosed in double "
                                     "quotes: line 1 column 2 (char 1)"),
    ("--bpftool", "b.json", b"\xff", "b.json: not a text file (expected the JSON of bpftool -j map show)"),
    ("--file", "p.toml", b"[[map]]\n", "p.toml: [[map]] #1: type is missing"),
    ("--file", "p.toml", b"\xff", "p.toml: not a text file (expected TOML with [[map]] tables)"),
    ("--file", "missing.toml", None, "missing.toml: No such file or directory"),
]


@pytest.mark.parametrize("option,name,content,message", PLAN_BAD_INPUT, ids=range(len(PLAN_BAD_INPUT)))
def test_plan_input_files_are_one_line_errors(capsys, tmp_path, monkeypatch, option, name, content, message):
    monkeypatch.chdir(tmp_path)
    if content is not None:
        (tmp_path / name).write_bytes(content)
    rc, out, err = run(capsys, "plan", option, name)
    assert (rc, out, err) == (2, "", f"pybpfmem plan: {message}\n")
