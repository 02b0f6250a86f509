"""``pybpfmem doctor`` on fakes of other hosts (a root directory with their /proc and /sys
files, a probe answer, a release) and, live, on this machine."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from pybpfmem.commands import doctor
from pybpfmem.live.runner import refusal_reason

REASON = refusal_reason()

MOUNTS_V2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
MOUNTS_V1 = ("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
             "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
             "36 31 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n")


def fake_host(tmp: Path, *, cmdline: str = "ro quiet", mounts: str = MOUNTS_V2,
              proc_cgroup: str = "0::/system.slice/agent.service\n",
              files: dict[str, str] | None = None) -> Path:
    """A directory laid out as / of another host."""
    base = {
        "proc/cmdline": cmdline + "\n",
        "proc/self/mountinfo": mounts,
        "proc/self/cgroup": proc_cgroup,
        "proc/sys/kernel/perf_event_mlock_kb": "516\n",
        "proc/sys/kernel/unprivileged_bpf_disabled": "2\n",
        "sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n",
    }
    for rel, text in {**base, **(files or {})}.items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp


def test_v2_memcg_host_with_an_unknown_boot_option(tmp_path: Path) -> None:
    # Debian 12 (6.1) node, cgroup v2, agent.service limited to 256 MiB, nobpf on the
    # command line: 6.1 has no cgroup.memory=nobpf (v6.3), so the kernel ignores it
    root = fake_host(tmp_path, cmdline="ro cgroup.memory=nosocket,nobpf -- init-arg",
                     files={"sys/fs/cgroup/system.slice/agent.service/memory.max": "268435456\n"})
    r = doctor.gather(root, probe=lambda: None, release="6.1.0-57-amd64",
                      getrlimit=lambda _: (8 << 20, 8 << 20))
    assert (r.profile, r.regime, r.cgroup) == ("6.1", "memcg", "v2")
    assert r.cmdline == {"nobpf": True, "nokmem": False, "nosocket": True}
    assert r.memory_controller == "v2 at /sys/fs/cgroup"
    assert (r.memcg, r.memcg_is_root, r.memcg_limit) == ("/system.slice/agent.service", False,
                                                          268435456)
    assert r.rlimit_memlock == (8 << 20, 8 << 20)
    assert (r.perf_event_mlock_kb, r.unprivileged_bpf_disabled) == (516, 2)
    assert r.at_the_limit.startswith("ENOMEM") and "268,435,456 bytes" in r.at_the_limit
    assert r.notes == ["cgroup.memory=nobpf is given, but kernels of profile 6.1 do not know it "
                       "(v6.3+): ignored"]


def test_v1_rlimit_host(tmp_path: Path) -> None:
    # Debian 11 (5.10) node, cgroup v1: the probe's map is refused at RLIMIT_MEMLOCK 0
    root = fake_host(tmp_path, mounts=MOUNTS_V1, proc_cgroup="4:memory:/agents\n0::/\n",
                     files={"sys/fs/cgroup/memory/agents/memory.limit_in_bytes":
                            "9223372036854771712\n"})
    r = doctor.gather(root, probe=lambda: errno.EPERM, release="5.10.0-46-amd64",
                      getrlimit=lambda _: (64 << 10, 64 << 10))
    assert (r.profile, r.regime, r.cgroup) == ("5.10", "rlimit", "v1")
    assert (r.memory_controller, r.memcg, r.memcg_limit) == ("v1 at /sys/fs/cgroup/memory",
                                                             "/agents", None)
    assert r.at_the_limit.startswith("EPERM") and "65,536 bytes" in r.at_the_limit
    assert r.notes == []


def test_root_cgroup_nobpf_and_backports(tmp_path: Path) -> None:
    # 6.6 with nobpf, the caller in the root cgroup
    root = fake_host(tmp_path, cmdline="cgroup.memory=nobpf", proc_cgroup="0::/\n")
    r = doctor.gather(root, probe=lambda: None, release="6.6.87-generic",
                      getrlimit=lambda _: (os.sysconf("SC_PAGE_SIZE"), -1))
    assert r.memcg_is_root is True
    assert r.notes == ["cgroup.memory=nobpf: BPF maps and programs are charged to no memory "
                       "cgroup",
                       "this process is in the root memory cgroup: maps it creates are charged "
                       "to no limit"]
    # a 5.10-line kernel that charges memcg (a distro backport of the v5.11 series)
    r = doctor.gather(fake_host(tmp_path / "b"), probe=lambda: None, release="5.10.0-99-xyz")
    assert r.regime == "memcg" and "backport" in r.notes[0]
    # a release with no profile; a probe with no answer
    r = doctor.gather(fake_host(tmp_path / "c"), probe=lambda: errno.ENOSYS, release="4.19.0")
    assert (r.profile, r.regime) == (None, "unknown") and "ENOSYS" in r.probe
    assert r.notes[0].startswith("no profile for kernel 4.19.0")
    # nothing mounted, nothing readable
    r = doctor.gather(tmp_path / "empty", probe=lambda: None, release="6.12.1")
    assert (r.cgroup, r.memory_controller, r.memcg, r.perf_event_mlock_kb) == ("none", None,
                                                                              None, None)


def test_main_json_and_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    fake = doctor.gather(fake_host(tmp_path), probe=lambda: None, release="6.12.118+deb13-amd64")
    monkeypatch.setattr(doctor, "gather", lambda: fake)
    assert doctor.main(["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["profile"], out["regime"]) == ("6.12", "memcg")
    assert doctor.main([]) == 0
    text = capsys.readouterr().out
    assert "memory cgroups" in text and "6.12.118+deb13-amd64 (profile 6.12)" in text


@pytest.mark.live
@pytest.mark.skipif(REASON is not None, reason=str(REASON))
def test_doctor_here() -> None:
    # this machine: root, a v1 memory controller, a 6.18 kernel that charges memcg
    from pybpfmem.live import cgroupfs
    from pybpfmem.profiles import profile_for_release
    r = doctor.gather()
    assert r.regime == "memcg"                  # bpftool's probe: the map was created
    assert r.profile == profile_for_release(os.uname().release)
    version, path = cgroupfs.own_memory_cgroup()
    assert r.memcg == path and r.memory_controller.startswith(f"v{version} at ")
    assert r.at_the_limit.startswith("ENOMEM")
