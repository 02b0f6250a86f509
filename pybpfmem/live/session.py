"""One live run's scratch cgroups, forked children and signal handling, in one place.

Every live command (``verify``, ``plan --host``, the live tests, the measurement
campaign) runs inside a ``LiveSession``:

* **Signals.**  While a session is open, SIGINT and SIGTERM raise ``Interrupted``
  (a KeyboardInterrupt) in the main thread, so every ``finally`` runs; without
  this, SIGTERM's default action would end the process with its case cgroups,
  children and fds left behind.  During the session's own clean-up both signals
  are only recorded: a second signal (``timeout`` signals the process and then its
  whole group; an impatient user presses ^C twice) cannot cut the clean-up short.
  Nested sessions share the outermost one's handlers.
* **Children.**  ``fork()`` records each child; the child gets the default
  SIGINT/SIGTERM action back (a group signal ends it at once) and
  PR_SET_PDEATHSIG = SIGKILL, so it cannot outlive a parent killed by SIGKILL.
  Clean-up SIGKILLs and reaps every child still running.
* **Scratch cgroups.**  ``case()`` creates ``pybpfmem-<pid>-<n>`` directly below our
  own memory cgroup (cgroupfs.CgroupDriver); clean-up removes them after the
  children are gone.  On entry a session sweeps the scratch cgroups of earlier
  runs whose owning pid no longer exists: only directories named
  ``pybpfmem-<pid>-<n>`` (and a v2 self leaf ``pybpfmem-<pid>-self``, cgroupfs.py),
  only directly below our own memory cgroup (the pid check
  assumes every run sharing that cgroup shares our pid namespace, as on the
  project's machines).
"""
from __future__ import annotations

import ctypes
import os
import re
import signal
import sys
import threading
from types import FrameType
from typing import Any

from . import cgroupfs

SCRATCH_PREFIX = "pybpfmem"
_SCRATCH_RE = re.compile(rf"^{SCRATCH_PREFIX}-(\d+)-(\d+|{cgroupfs.SELF_LEAF})$")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PR_SET_PDEATHSIG = 1


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived while a live session was open."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_scratch(driver: cgroupfs.CgroupDriver) -> list[str]:
    """Scratch cgroups directly below our own cgroup whose owning pid is gone."""
    out = []
    try:
        names = sorted(os.listdir(driver.own))
    except OSError:
        return []
    for name in names:
        m = _SCRATCH_RE.match(name)
        path = os.path.join(driver.own, name)
        if m and os.path.isdir(path) and int(m.group(1)) != os.getpid() \
                and not _pid_alive(int(m.group(1))):
            out.append(path)
    return out


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def sweep(driver: cgroupfs.CgroupDriver, timeout: float = 5.0) -> list[str]:
    """Remove the stale scratch cgroups of dead runs; returns the paths removed.

    A dead run's forked children die with it (PR_SET_PDEATHSIG); a process still
    found inside is an orphan of that run (forked before its prctl) and is
    SIGKILLed so the cgroup can go.  A directory still busy after ``timeout`` is
    left for the next run."""
    removed = []
    for path in stale_scratch(driver):
        try:
            cgroupfs.remove_tree(driver, path, _kill, timeout)
            removed.append(path)
        except OSError:
            pass
    return removed


class LiveSession:
    """Context manager: signal handling, forked children and scratch cgroups of a run.

    ``exit_on_signal=True`` (the commands) turns an interruption into
    ``SystemExit(128 + signum)`` after the clean-up, with one line on stderr;
    otherwise (library use, tests) ``Interrupted`` propagates."""

    def __init__(self, driver: cgroupfs.CgroupDriver | None = None,
                 exit_on_signal: bool = False, name: str = "pybpfmem") -> None:
        self._driver = driver
        self.exit_on_signal = exit_on_signal
        self.name = name
        self.children: list[int] = []
        self.swept: list[str] = []
        self._saved: dict[int, Any] | None = None
        self._pending: int | None = None

    # -- cgroups -----------------------------------------------------------------------
    @property
    def driver(self) -> cgroupfs.CgroupDriver:
        if self._driver is None:
            self._driver = cgroupfs.detect()
        return self._driver

    def case(self) -> cgroupfs.CaseCgroup:
        """A fresh scratch cgroup below our own memory cgroup, removed at clean-up
        (with everything the driver made)."""
        return self.driver.create_case(SCRATCH_PREFIX)

    # -- children ----------------------------------------------------------------------
    def fork(self) -> int:
        """os.fork(); in the child: default SIGINT/SIGTERM actions and death with the
        parent.  The parent records the child for clean-up.  Both signals are
        blocked across the fork, so neither side can be interrupted before that
        is in place (the child would otherwise run our clean-up code)."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                for s in _SIGNALS:
                    signal.signal(s, signal.SIG_DFL)
                try:
                    libc = ctypes.CDLL(None, use_errno=True)
                    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                except (OSError, AttributeError):
                    pass
                return 0
            self.children.append(pid)
            return pid
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def reap(self, pid: int, kill: bool = False) -> int | None:
        """waitpid() a child (SIGKILL first when ``kill``); its wait status, None if gone."""
        if kill:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = None
        if pid in self.children:
            self.children.remove(pid)
        return status

    # -- lifecycle ---------------------------------------------------------------------
    def _raise(self, signum: int, frame: FrameType | None) -> None:
        # From here on signals are only recorded: the unwinding ``finally`` blocks
        # and the clean-up run to the end whatever arrives next.
        self._swap_handlers(self._record)
        raise Interrupted(signum)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self._pending = self._pending or signum
        if self.exit_on_signal:   # os.write: a handler must not re-enter sys.stderr
            os.write(2, f"{self.name}: {signal.Signals(signum).name} during clean-up: "
                        "finishing the clean-up first\n".encode())

    def _swap_handlers(self, handler: Any) -> dict[int, Any] | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        old = {s: signal.getsignal(s) for s in _SIGNALS}
        for s in _SIGNALS:
            signal.signal(s, handler)
        return old

    def __enter__(self) -> "LiveSession":
        outer = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
        if not isinstance(outer, LiveSession):
            self._saved = self._swap_handlers(self._raise)
        try:
            if self._driver is not None or os.geteuid() == 0:
                self.swept = sweep(self.driver)
        except OSError:
            pass   # no memory controller here: nothing to sweep
        return self

    def cleanup(self) -> None:
        """SIGKILL and reap our children, then remove our scratch cgroups."""
        for pid in list(self.children):
            self.reap(pid, kill=True)
        if self._driver is None:
            return
        errs: list[OSError] = []
        for c in reversed(self._driver.created):
            try:
                c.remove()
            except OSError as e:
                errs.append(e)
        self._driver.created = [c for c in self._driver.created if not c.removed]
        if errs:
            raise errs[0]
        self._driver.release()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        interrupted = isinstance(exc, Interrupted)
        if interrupted and self.exit_on_signal:
            print(f"{self.name}: interrupted by {signal.Signals(exc.signum).name}; "  # type: ignore[union-attr]
                  "cleaning up", file=sys.stderr, flush=True)
        during = self._swap_handlers(self._record)
        try:
            self.cleanup()
        finally:
            signum = exc.signum if interrupted else self._pending   # type: ignore[union-attr]
            # A command about to exit keeps recording signals (a late second one
            # must not turn the orderly exit into a death by signal); otherwise
            # the handlers from before the session come back.
            if during is not None and not (signum and self.exit_on_signal):
                restore = self._saved if self._saved is not None else during
                for s, h in restore.items():
                    signal.signal(s, h)
        if signum is None:
            return False
        if self.exit_on_signal:
            print(f"{self.name}: cleaned up after {signal.Signals(signum).name}",
                  file=sys.stderr, flush=True)
            # ignored, not recorded, from here: interpreter shutdown would put the
            # default actions back and a late signal would end us by signal
            self._swap_handlers(signal.SIG_IGN)
            raise SystemExit(128 + signum)
        if not interrupted and exc is None:
            raise Interrupted(signum)
        return False
