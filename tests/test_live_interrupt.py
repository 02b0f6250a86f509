"""A running ``pybpfmem verify`` interrupted the way ``timeout`` does it (the signal
to the process, then to its whole process group, children included) leaves
nothing behind: no scratch cgroup, no child process, no map.  Also with a second
signal during the clean-up, and after a SIGKILL the next run sweeps the remains."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pybpfmem.live import bpf, cgroupfs, session

pytestmark = pytest.mark.live
ROOT = Path(__file__).resolve().parents[1]


class Run:
    """``pybpfmem verify --quick`` in its own process group, watched from outside."""

    def __init__(self) -> None:
        self.own = cgroupfs.detect().own
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.p = subprocess.Popen([sys.executable, "-m", "pybpfmem", "verify", "--quick", "--json"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, start_new_session=True,
                                  bufsize=0)   # no read-ahead past a line we wait for
        self.prefix = f"pybpfmem-{self.p.pid}-"
        self.dirs: set[str] = set()
        self.children: set[int] = set()
        self.maps: set[int] = set()

    def scratch(self) -> list[str]:
        return [n for n in os.listdir(self.own) if n.startswith(self.prefix)]

    def watch_until(self, n_dirs: int, timeout: float = 90.0) -> None:
        """Until the n-th scratch cgroup of the run exists with its child inside;
        records every child pid and map id seen on the way."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.p.poll() is None, "verify ended before the interruption point"
            for name in self.scratch():
                self.dirs.add(name)
                for d, _, files in os.walk(os.path.join(self.own, name)):
                    if "cgroup.procs" in files:
                        try:
                            pids = cgroupfs.CaseCgroup(None, d).procs()  # type: ignore[arg-type]
                        except OSError:
                            continue
                        for pid in pids:
                            self.children.add(pid)
                            self.maps |= set(_held_maps(pid))
            if len(self.dirs) >= n_dirs and self.children:
                return
            time.sleep(0.003)
        pytest.fail(f"no {n_dirs}th scratch cgroup within {timeout} s")

    def signal(self, sig: int) -> None:
        """What timeout(1) does: the process, then its process group."""
        os.kill(self.p.pid, sig)
        os.killpg(self.p.pid, sig)

    def wait_for_stderr(self, text: str) -> list[str]:
        lines = []
        for raw in self.p.stderr:  # type: ignore[union-attr]
            lines.append(raw.decode())
            if text in lines[-1]:
                break
        return lines

    def finish(self) -> tuple[int, str]:
        _, err = self.p.communicate(timeout=60)
        return self.p.returncode, err.decode()


def _held_maps(pid: int) -> list[int]:
    out = []
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        return out
    for fd in fds:
        try:
            info = bpf.fdinfo(int(fd), pid)
        except (OSError, ValueError):
            continue
        if "map_id" in info:
            out.append(int(info["map_id"]))
    return out


def _assert_nothing_left(run: Run) -> None:
    assert run.scratch() == [], "scratch cgroups left behind"
    for pid in run.children:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue   # gone
        assert b"pybpfmem" not in cmd, f"child {pid} still runs"
    live_ids = set(bpf.map_ids())
    assert not (run.maps & live_ids), f"maps {run.maps & live_ids} outlived the run"


# points: the n-th scratch cgroup of the run is there with its child inside
# (1: the first shape case; 6: the 10000-insert case, the child in a long step)
@pytest.mark.parametrize("sig, point", [(signal.SIGINT, 1), (signal.SIGTERM, 6)])
def test_interrupted_verify_leaves_nothing(sig, point):
    run = Run()
    try:
        run.watch_until(point)
        run.signal(sig)
        rc, err = run.finish()
    finally:
        if run.p.poll() is None:
            os.killpg(run.p.pid, signal.SIGKILL)
            run.p.wait()
    assert rc == 128 + sig, err
    assert f"interrupted by {signal.Signals(sig).name}; cleaning up" in err
    assert f"cleaned up after {signal.Signals(sig).name}" in err
    _assert_nothing_left(run)


@pytest.mark.parametrize("when", ["back to back", "when the clean-up starts"])
def test_second_signal_during_cleanup_leaves_nothing(when):
    run = Run()
    head = ""
    try:
        run.watch_until(3)
        run.signal(signal.SIGINT)
        # ... and a SIGTERM: at once (timeout's group signal right after its own),
        # or the moment the clean-up reports itself (an impatient ^C, then kill)
        if when != "back to back":
            head = "".join(run.wait_for_stderr("cleaning up"))
        run.signal(signal.SIGTERM)
        rc, err = run.finish()
    finally:
        if run.p.poll() is None:
            os.killpg(run.p.pid, signal.SIGKILL)
            run.p.wait()
    err = head + err
    assert rc == 128 + signal.SIGINT, err
    assert "cleaned up after SIGINT" in err
    if when == "back to back":
        # the second one can only have come while the first was being handled
        assert "SIGTERM during clean-up: finishing the clean-up first" in err
    _assert_nothing_left(run)


def test_after_sigkill_the_next_run_sweeps_the_scratch():
    run = Run()
    try:
        run.watch_until(2)
    finally:
        os.killpg(run.p.pid, signal.SIGKILL)   # no clean-up possible
        run.p.wait()
    left = run.scratch()
    assert left, "a SIGKILLed run leaves its scratch cgroups"
    # its children died with it (PR_SET_PDEATHSIG or the group SIGKILL)
    deadline = time.monotonic() + 5
    while any(os.path.exists(f"/proc/{p}") for p in run.children) and time.monotonic() < deadline:
        time.sleep(0.02)
    with session.LiveSession() as s:
        assert sorted(s.swept) == sorted(os.path.join(run.own, n) for n in left)
    _assert_nothing_left(run)
