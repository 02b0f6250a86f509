"""Differential state machines: C core vs the pure-Python reference, per profile.

The machines live in pybpfmem/reference/differential.py (shared with ``pybpfmem fuzz``).
Scale: PYBPFMEM_FUZZ_EXAMPLES examples x PYBPFMEM_FUZZ_STEPS steps per profile
(defaults below).  A failing run shrinks for at most PYBPFMEM_FUZZ_SHRINK_SECONDS
(default 20 s; 0 disables shrinking) and prints a replayable script:

    from pybpfmem.reference.differential import Diff_5_10
    state = Diff_5_10()
    state.mkdir(parent=0)
    ...
"""

from __future__ import annotations

import os

import pytest
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pybpfmem.reference.differential import MACHINES
from pybpfmem.reference.fuzzing import StepStats, machine_settings, run_machine, summary_for

EXAMPLES = int(os.environ.get("PYBPFMEM_FUZZ_EXAMPLES", "400"))
STEPS = int(os.environ.get("PYBPFMEM_FUZZ_STEPS", "50"))
SHRINK_SECONDS = float(os.environ.get("PYBPFMEM_FUZZ_SHRINK_SECONDS", "20"))


@pytest.mark.parametrize("profile", sorted(MACHINES))
def test_differential(profile: str, record_property: pytest.RecordProperty,
                      pytestconfig: pytest.Config) -> None:
    stats = StepStats()
    res = run_machine(MACHINES[profile],
                      machine_settings(EXAMPLES, STEPS, shrink=SHRINK_SECONDS > 0),
                      stats, shrink_seconds=SHRINK_SECONDS)
    summary_for(pytestconfig).add(f"differential ops, memcg machine {profile}", res.ops)
    record_property("ops", res.ops)
    record_property("ops_per_second", round(res.ops_per_second))
    assert res.failure is None, res.failure
    # the machine really ran: each example executes at least one step (hypothesis may end
    # an example early, but never all of them at step 0 with this many examples)
    assert res.ops >= EXAMPLES, f"only {res.ops} steps in {res.examples} examples"


class Counter(RuleBasedStateMachine):
    """A machine whose only failure is an invariant's, checked between steps."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    @rule()
    def add(self) -> None:
        self.n += 1

    @invariant()
    def below_three(self) -> None:
        if self.n >= 3:        # not an assert: pytest would rewrite its message
            raise AssertionError(f"n = {self.n}")


def test_replay_script_checks_the_invariants() -> None:
    # the script `pybpfmem fuzz` prints must fail as the run did: most divergences are
    # found by an invariant after a step, so the replay checks them after each step
    res = run_machine(Counter, machine_settings(50, 10), StepStats(), shrink_seconds=5)
    assert res.failure is not None
    head, script = res.failure.split("\n", 1)
    assert head == "AssertionError: n = 3"
    assert script.count("state.add()") == 3
    with pytest.raises(AssertionError, match="n = 3"):
        exec(script, {})
