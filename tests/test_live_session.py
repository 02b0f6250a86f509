"""pybpfmem.live.session: SIGINT/SIGTERM during a live run, a second signal during
the clean-up, and the sweep of scratch cgroups left by dead runs."""
import os
import signal
import subprocess
import sys
import time

import pytest

from pybpfmem.live import cgroupfs, session as S

live = pytest.mark.live


def _dead_pid() -> int:
    """A pid that just exited (reuse within the test is not a concern here)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _idle_child(sess: S.LiveSession, cg: cgroupfs.CaseCgroup) -> int:
    pid = sess.fork()
    if pid == 0:
        try:
            while True:
                time.sleep(1)
        finally:
            os._exit(0)
    cg.move(pid)
    return pid


def test_interrupted_names_the_signal():
    e = S.Interrupted(signal.SIGTERM)
    assert isinstance(e, KeyboardInterrupt) and e.signum == signal.SIGTERM
    assert str(e) == "SIGTERM"


def test_handlers_installed_once_and_restored():
    before = signal.getsignal(signal.SIGTERM)
    with S.LiveSession() as outer:
        h = signal.getsignal(signal.SIGTERM)
        assert h.__self__ is outer
        with S.LiveSession() as inner:
            # nested: the outermost session's handlers stay
            assert signal.getsignal(signal.SIGTERM).__self__ is outer
            assert inner._saved is None
        assert signal.getsignal(signal.SIGTERM) == h
    assert signal.getsignal(signal.SIGTERM) == before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@live
def test_sigterm_raises_interrupted_after_children_and_cgroups_are_gone():
    with pytest.raises(S.Interrupted) as ei:
        with S.LiveSession() as sess:
            c = sess.case()
            a = c.mkchild("A")
            pid = _idle_child(sess, a)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)   # the handler raises before this ends
    assert ei.value.signum == signal.SIGTERM
    assert _gone(pid)
    assert not os.path.exists(a.path) and not os.path.exists(c.path)
    assert sess.children == [] and sess.driver.created == []


@live
def test_second_signal_during_cleanup_waits_for_the_cleanup(monkeypatch):
    real_cleanup = S.LiveSession.cleanup
    seen = {}

    def cleanup_hit_by_a_signal(self):
        os.kill(os.getpid(), signal.SIGINT)      # arrives while we clean up
        seen["handler"] = signal.getsignal(signal.SIGINT)
        real_cleanup(self)

    monkeypatch.setattr(S.LiveSession, "cleanup", cleanup_hit_by_a_signal)
    with pytest.raises(S.Interrupted) as ei:
        with S.LiveSession() as sess:
            c = sess.case()
            pid = _idle_child(sess, c.mkchild("A"))
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    # the first signal is the one reported; the second only got recorded
    assert ei.value.signum == signal.SIGTERM
    assert seen["handler"].__func__ is S.LiveSession._record
    assert sess._pending == signal.SIGINT
    assert _gone(pid) and not os.path.exists(c.path)


@live
def test_signal_only_during_cleanup_is_raised_after_it(monkeypatch):
    real_cleanup = S.LiveSession.cleanup

    def cleanup_hit_by_a_signal(self):
        os.kill(os.getpid(), signal.SIGTERM)
        real_cleanup(self)

    monkeypatch.setattr(S.LiveSession, "cleanup", cleanup_hit_by_a_signal)
    with pytest.raises(S.Interrupted) as ei:
        with S.LiveSession() as sess:
            c = sess.case()
    assert ei.value.signum == signal.SIGTERM and not os.path.exists(c.path)


@live
def test_commands_exit_128_plus_signal():
    with pytest.raises(SystemExit) as ei:
        with S.LiveSession(exit_on_signal=True, name="test") as sess:
            c = sess.case()
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    assert ei.value.code == 128 + signal.SIGINT and not os.path.exists(c.path)


@live
def test_sweep_removes_only_stale_scratch_of_dead_runs():
    d = cgroupfs.detect()
    dead = _dead_pid()
    keeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    paths = {name: os.path.join(d.own, name) for name in (
        f"pybpfmem-{dead}-0", f"pybpfmem-{dead}-7",       # stale: swept
        f"pybpfmem-{keeper.pid}-0",                       # its owner runs: kept
        f"pybpfmem-{os.getpid()}-999",                    # ours: kept
        f"other-{dead}-0", f"pybpfmem-{dead}")}           # not a scratch name: kept
    orphan = None
    try:
        for p in paths.values():
            os.mkdir(p)
        os.mkdir(os.path.join(paths[f"pybpfmem-{dead}-0"], "A"))
        # an orphan of the dead run still inside its scratch cgroup
        orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        cgroupfs.CaseCgroup(d, os.path.join(paths[f"pybpfmem-{dead}-0"], "A")).move(orphan.pid)
        assert sorted(S.stale_scratch(d)) == sorted(
            [paths[f"pybpfmem-{dead}-0"], paths[f"pybpfmem-{dead}-7"]])
        removed = S.sweep(d)
        assert sorted(removed) == sorted(
            [paths[f"pybpfmem-{dead}-0"], paths[f"pybpfmem-{dead}-7"]])
        assert orphan.wait(timeout=5) == -signal.SIGKILL
        left = {n for n, p in paths.items() if os.path.exists(p)}
        assert left == {f"pybpfmem-{keeper.pid}-0", f"pybpfmem-{os.getpid()}-999",
                        f"other-{dead}-0", f"pybpfmem-{dead}"}
    finally:
        keeper.kill()
        keeper.wait()
        if orphan is not None and orphan.poll() is None:
            orphan.kill()
            orphan.wait()
        for p in paths.values():
            for sub in ("A", ""):
                try:
                    os.rmdir(os.path.join(p, sub) if sub else p)
                except OSError:
                    pass
