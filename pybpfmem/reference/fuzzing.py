"""Running the differential state machines: step counting, bounded shrinking, settings.

Shared by tests/test_differential*.py and ``pybpfmem fuzz``.  Needs hypothesis
(a development dependency).
"""

from __future__ import annotations

import contextlib
import functools
import io
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class StepStats:
    """Counts of one run: rule steps executed, examples (machine instances) started."""

    ops: int = 0
    examples: int = 0
    started: float = field(default_factory=time.perf_counter)
    limit_ops: int | None = None        # stop generating once this many steps ran
    deadline: float | None = None       # stop generating after this perf_counter() value

    def exhausted(self) -> bool:
        if self.limit_ops is not None and self.ops >= self.limit_ops:
            return True
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def rate(self) -> float:
        dt = time.perf_counter() - self.started
        return self.ops / dt if dt > 0 else 0.0


def counted(fn: F) -> F:
    """Rule decorator: count one step in ``self.stats`` (when a run installed one)."""

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        stats = type(self).stats
        if stats is not None:
            stats.ops += 1
        return fn(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def with_stats(cls: type, stats: StepStats) -> type:
    """A subclass of machine ``cls`` that counts into ``stats``; it keeps ``cls``'s name so a
    failing run prints as ``state = <cls>()``, replayable with the module's own class."""
    sub = type(cls.__name__, (cls,), {"stats": stats, "__module__": cls.__module__})
    sub.__qualname__ = cls.__qualname__
    return sub


@contextlib.contextmanager
def bounded_shrinking(seconds: float) -> Iterator[None]:
    """Bound hypothesis's shrinking time (its engine allows 300 s by default), so a failing
    run reports within ``seconds`` plus one replay.  Uses an engine-internal constant; where
    it is missing the bound is not applied (callers may drop Phase.shrink instead)."""
    try:
        from hypothesis.internal.conjecture import engine
    except ImportError:  # pragma: no cover - hypothesis layout changed
        yield
        return
    old = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if old is None:
        yield
        return
    engine.MAX_SHRINKING_SECONDS = int(max(1, seconds))
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = old


def machine_settings(examples: int, steps: int, shrink: bool = True,
                     derandomize: bool = True) -> Any:
    """Settings without a deadline or example database; ``shrink=False`` drops the shrink
    phase; ``derandomize`` (the CI default) makes every run generate the same examples."""
    from hypothesis import HealthCheck, Phase, settings
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                    suppress_health_check=list(HealthCheck), derandomize=derandomize,
                    phases=phases, database=None, print_blob=False,
                    report_multiple_bugs=False)


@dataclass
class RunResult:
    name: str
    ops: int
    examples: int
    seconds: float
    failure: str | None = None        # the replayable script, when the machine failed

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0


def check_invariants(state: Any) -> None:
    """Run every @invariant of a state machine, as hypothesis does after each step
    (RuleBasedStateMachine.check_invariants(), without its output and timing)."""
    for inv in state.invariants:
        if all(pre(state) for pre in inv.preconditions):
            inv.function(state)


def replay_script(cls: type, report: str) -> str:
    """Turn hypothesis's 'Falsifying example' printout into a standalone script that
    checks the invariants after every step, as the run did (most failures are theirs)."""
    checks = tuple(f"state.{n}()" for n in dir(cls)
                   if getattr(getattr(cls, n, None), "hypothesis_stateful_invariant", None))
    lines = [ln.strip() for ln in report.splitlines()]
    body = [ln for ln in lines if ln.startswith("state") and ln not in checks]
    if not body:
        return report
    out = [f"from {cls.__module__} import {cls.__name__}",
           f"from {__name__} import check_invariants"]
    for ln in body:
        out.append(ln)
        if not ln.startswith("state.teardown("):
            out.append("check_invariants(state)")
    return "\n".join(out)


def run_machine(cls: type, settings: Any, stats: StepStats,
                shrink_seconds: float = 20) -> RunResult:
    """Run machine ``cls`` under ``settings`` counting into ``stats``; never raises for a
    machine failure: the failure comes back as a replayable script."""
    from hypothesis.stateful import run_state_machine_as_test
    sub = with_stats(cls, stats)
    t0, ops0, ex0 = time.perf_counter(), stats.ops, stats.examples
    failure = None
    out = io.StringIO()
    try:
        with bounded_shrinking(shrink_seconds), contextlib.redirect_stdout(out):
            run_state_machine_as_test(sub, settings=settings)
    except Exception as exc:  # noqa: BLE001 - every machine failure is reported, not raised
        first = exc
        while isinstance(first, BaseExceptionGroup) and first.exceptions:
            first = first.exceptions[0]
        text = "\n".join(getattr(first, "__notes__", []) or []) or out.getvalue()
        failure = f"{type(first).__name__}: {first}\n" + replay_script(cls, text or str(first))
    return RunResult(cls.__name__, stats.ops - ops0, stats.examples - ex0,
                     time.perf_counter() - t0, failure)


class PytestSummary:
    """A pytest plugin object that prints the fuzzing counts at the end of a session.
    Test modules register one per config (``summary_for(config)``) and add lines to it."""

    NAME = "pybpfmem-fuzz-summary"

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, key: str, n: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.counts:
            return
        terminalreporter.section("pybpfmem fuzzing counts")
        for key, n in sorted(self.counts.items()):
            terminalreporter.write_line(f"{key}: {n}")
        diff = sum(n for k, n in self.counts.items() if k.startswith("differential ops"))
        if diff:
            terminalreporter.write_line(f"differential ops total: {diff}")


def summary_for(config: Any) -> PytestSummary:
    """The session's PytestSummary, registered on first use."""
    pm = config.pluginmanager
    plugin = pm.get_plugin(PytestSummary.NAME)
    if plugin is None:
        plugin = PytestSummary()
        pm.register(plugin, PytestSummary.NAME)
    return plugin
