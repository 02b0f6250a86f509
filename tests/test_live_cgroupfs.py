"""cgroupfs drivers and the forked-child runner on the live kernel; clean-up on failure."""
import os

import pytest

from pybpfmem.live import cgroupfs, runner

live = pytest.mark.live


def test_own_cgroup_parsing(tmp_path):
    p = tmp_path / "cgroup"
    p.write_text("9:name=systemd:/\n4:memory:/a/b\n0::/\n")
    assert cgroupfs.own_memory_cgroup(str(p)) == (1, "/a/b")
    p.write_text("0::/user.slice/x\n")
    assert cgroupfs.own_memory_cgroup(str(p)) == (2, "/user.slice/x")


@live
def test_case_cgroup_is_below_own_and_removed():
    d = cgroupfs.detect()
    c = d.create_case()
    try:
        assert os.path.dirname(c.path) == d.own
        assert c.kmem() == 0 and c.procs() == []
        with pytest.raises(PermissionError):
            d._mkdir(os.path.join(os.path.dirname(d.own), "escape"))
    finally:
        d.cleanup()
    assert not os.path.exists(c.path) and d.leftovers() == []


def _kernel_profile():
    """The registry's profile of the running kernel (skip where it has none)."""
    from pybpfmem.live.host import NoProfile, host_profile
    from pybpfmem.profiles import get_profile
    try:
        return get_profile(host_profile())
    except NoProfile as e:
        pytest.skip(str(e))


@live
def test_runner_array_charge_and_close():
    # ARRAY k4 v4096 max 256: bpf_map_area_alloc(sizeof(struct bpf_array) + 256 * 4096),
    # over PAGE_SIZE << PAGE_ALLOC_COSTLY_ORDER, so vmalloc'ed in whole pages: 257
    # (its pages[] array is unaccounted: gfp & GFP_RECLAIM_MASK).  The fd's struct file
    # (filp, 192 + 8 for the objcg pointer on 6.18) and dentry (192 + 8) are charged by
    # the byte: 400 bytes in a fresh cgroup's objcg = 1 page.  258 pages, all of it
    # returned by the close -- where maps are charged to the memcg at all (switch
    # ``account``); before (5.10) only the fd's page.  fdinfo memlock: the area's bytes
    # (array_map_mem_usage(), switch ``map_mem_usage``), else 5.11-6.3's
    # bpf_map_memory_footprint() round_up(256 * round_up(4 + 4096, 8), PAGE_SIZE), else
    # (5.10) the rlimit charge, the area rounded up to pages.  Where cgroup v2 has no
    # kmem counter the runner's drained memory.current is the same number.
    from pybpfmem.btf import read_struct_sizes
    prof = _kernel_profile()
    page = os.sysconf("SC_PAGE_SIZE")
    area = read_struct_sizes(names=("bpf_array",))["bpf_array"] + 256 * 4096

    def page_align(n: int) -> int:
        return -(-n // page) * page
    if prof.map_mem_usage:
        memlock = area
    elif prof.account:
        memlock = page_align(256 * ((4 + 4096 + 7) // 8 * 8))
    else:
        memlock = page_align(area)
    charged = (page_align(area) + page) if prof.account else page
    r = runner.run_scenario({"steps": [
        {"op": "create", "map": "m", "type": "ARRAY", "key": 4, "value": 4096, "max": 256},
        {"op": "close", "map": "m"}]})
    assert r.error is None and r.killed_by is None
    create, close = r.steps
    key = "kmem" if create["delta"]["A"]["kmem"] is not None else "usage"
    assert create["memlock"] == memlock
    assert create["delta"]["A"][key] == charged
    assert close["delta"]["A"][key] == -charged
    assert r.final["A"][key] == 0


@live
def test_runner_errno_observed_not_raised():
    bad = {"op": "create", "map": "m", "type": "HASH", "key": 0, "value": 8, "max": 1}
    r = runner.run_scenario({"steps": [dict(bad), dict(bad), dict(bad), {"op": "close", "map": "m"}]})
    for step in r.steps[:3]:
        assert step["ok"] is False and step["errno"] == 22   # htab_map_alloc_check()
        # map_create() fails in map_alloc_check before allocating anything, and the
        # child makes no other syscall in A: not one byte of kmem
        assert step["delta"]["A"]["kmem"] == 0
    assert r.steps[3].get("skipped") is True


@live
def test_fresh_cgroup_reading_is_the_objects_bytes_page_aligned():
    # ARRAY k4 v4 m1: bpf_array 312 + 8 = 320 bytes -> kmalloc-cg-512 (512 + 8), plus
    # file 200 and dentry 200: 920 bytes in a fresh objcg -> exactly one page, and
    # exactly none after the close, in every repetition (the canonical reading of
    # runner.Probe.snapshot: no remainder of earlier activity, no parked page).
    steps = []
    cgroups = {}
    for r in range(3):
        cgroups[f"A{r}"] = {}
        steps += [{"op": "move", "cgroup": f"A{r}"},
                  {"op": "create", "map": "m", "type": "ARRAY", "key": 4, "value": 4, "max": 1},
                  {"op": "close", "map": "m"}]
    res = runner.run_scenario({"cgroups": cgroups, "cpu": 0, "steps": steps})
    got = [(o["op"], o["delta"][o["cgroup"]]["kmem"]) for o in res.steps if o["op"] != "move"]
    assert got == [("create", 4096), ("close", -4096)] * 3


@live
def test_cleanup_on_injected_failure(monkeypatch):
    d = cgroupfs.detect()

    real_mkchild = cgroupfs.CaseCgroup.mkchild
    calls = []

    def failing_mkchild(self, name):
        calls.append(name)
        if len(calls) == 2:  # fail mid-case, after A exists and before B does
            raise OSError(28, "injected failure")
        return real_mkchild(self, name)

    monkeypatch.setattr(cgroupfs.CaseCgroup, "mkchild", failing_mkchild)
    with pytest.raises(OSError, match="injected"):
        runner.run_scenario({"cgroups": {"A": {}, "B": {}}, "steps": [{"op": "noop"}]}, driver=d)
    assert calls == ["A", "B"]
    assert d.leftovers() == [] and d.created == []


@live
def test_cleanup_when_sigterm_arrives_while_child_runs(monkeypatch):
    import signal
    from pybpfmem.live import session as S
    d = cgroupfs.detect()
    real_call = runner.Probe.call
    seen = {}

    def call_then_sigterm(self, req):
        out = real_call(self, req)
        if req["op"] == "create":    # the child is alive and holds a map in A
            seen["pid"] = self.pid
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(runner.Probe, "call", call_then_sigterm)
    with pytest.raises(S.Interrupted):
        runner.run_scenario({"steps": [
            {"op": "create", "map": "m", "type": "ARRAY", "key": 4, "value": 8, "max": 1},
            {"op": "noop"}]}, driver=d)
    assert d.leftovers() == [] and d.created == []
    with pytest.raises(ProcessLookupError):
        os.kill(seen["pid"], 0)
