"""The BPF-level state machine (pybpfmem/reference/differential_bpf.py) per profile:
map create/update/delete/batch/close/pin/unpin across tasks, cgroups and interrupt
context, with invariants after every step and the teardown baseline (every statistic 0,
usage down to parked objcg pages, every user's locked_vm 0 in 5.10).

Scale: PYBPFMEM_FUZZ_BPF_EXAMPLES examples x PYBPFMEM_FUZZ_STEPS steps per profile;
PYBPFMEM_FUZZ_SHRINK_SECONDS bounds shrinking of a failure (0 disables it).
"""

from __future__ import annotations

import os

import pytest

from pybpfmem.reference.differential_bpf import MACHINES
from pybpfmem.reference.fuzzing import StepStats, machine_settings, run_machine, summary_for

EXAMPLES = int(os.environ.get("PYBPFMEM_FUZZ_BPF_EXAMPLES", "400"))
STEPS = int(os.environ.get("PYBPFMEM_FUZZ_STEPS", "50"))
SHRINK_SECONDS = float(os.environ.get("PYBPFMEM_FUZZ_SHRINK_SECONDS", "20"))


@pytest.mark.parametrize("profile", sorted(MACHINES))
def test_differential_bpf(profile: str, record_property: pytest.RecordProperty,
                          pytestconfig: pytest.Config) -> None:
    stats = StepStats()
    res = run_machine(MACHINES[profile],
                      machine_settings(EXAMPLES, STEPS, shrink=SHRINK_SECONDS > 0),
                      stats, shrink_seconds=SHRINK_SECONDS)
    summary_for(pytestconfig).add(f"differential ops, bpf machine {profile}", res.ops)
    record_property("ops", res.ops)
    record_property("ops_per_second", round(res.ops_per_second))
    assert res.failure is None, res.failure
    assert res.ops >= EXAMPLES, f"only {res.ops} steps in {res.examples} examples"


def test_bpf_machine_teardown_catches_a_leak() -> None:
    """The baseline check is not vacuous: a charge left behind fails teardown.

    5.11: a 1-page raw charge on b1 stays in b1's usage after every map is gone and every
    stock drained; no objcg parks a page (nothing was allocated through one), so
    teardown must report b1's 1 page against 0 parked."""
    from pybpfmem import constants as K
    m = MACHINES["5.11"]()
    m.mkdir(parent=0)
    m.cgs[1].try_charge(1, K.GFP_KERNEL)
    with pytest.raises(AssertionError, match="1 pages left after teardown, 0 parked"):
        m.teardown()
