"""The pybpfmem command: every subcommand's output values and error paths."""

from __future__ import annotations

import json
import pathlib

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
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--no-such-flag"])
    assert exc.value.code == 2


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


def test_simulate_reports_bad_files_with_line_and_key(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[system]\nprofile = "6.18"\n\n[[step]]\naction = "create_map"\ntask = "nobody"\n')
    rc, _, err = run(capsys, "simulate", str(bad))
    assert rc == 2 and "[[step]] #1 (line 4)" in err and "no task 'nobody'" in err
    bad.write_text('[[step]]\naction = "explode"\n')
    rc, _, err = run(capsys, "simulate", str(bad))
    assert rc == 2 and "key 'action'" in err
    bad.write_text("[system\n")
    rc, _, err = run(capsys, "simulate", str(bad))
    assert rc == 2 and "line 1" in err
    rc, _, err = run(capsys, "simulate", str(tmp_path / "missing.toml"))
    assert rc == 2


def test_simulate_expect_failure_exits_1(capsys, tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[[cgroup]]\npath = "/a"\n\n[[step]]\naction = "expect"\ncgroup = "/a"\n'
                 'file = "memory.current"\nequals = 4096\n')
    rc, out, _ = run(capsys, "simulate", str(f))
    assert rc == 1 and "EXPECT FAILED" in out


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
    rc, _, err = run(capsys, "plan")
    assert rc == 2 and "no maps" in err
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


def test_plan_host_reads_the_live_maps(capsys):
    from pybpfmem.live import bpf as live
    from pybpfmem.live.runner import refusal_reason

    reason = refusal_reason()
    if reason:
        pytest.skip(reason)
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
