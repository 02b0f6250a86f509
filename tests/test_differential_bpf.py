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


def test_grace_period_frees_may_complete_in_a_failed_op() -> None:
    """5.11 (found by the fuzzer): an interrupt-context update replaces a no-prealloc hash
    element; htab_elem_free_rcu() of the old one is queued for a grace period (an irq
    update is no syscall, so nothing settles).  The next syscall, a delete of a missing
    key, fails with ENOENT and the queued free completes at its end: root's
    slab_unreclaimable drops by the element's kmalloc-64 slot + 8-byte objcg pointer
    (htab_elem 48 on 5.11 + key 4 rounded to 8 + value 4 rounded to 8 = 64: kmalloc-64; 72
    bytes).  That drop is the grace period, not the failed op: the check allows it, and
    still refuses any rise."""
    m = MACHINES["5.11"]()
    m.mkdir(parent=0)
    m.spawn(idx=0, uid=0)
    m.spawn(idx=1, uid=0)
    m.exit_task(task=0)
    m.map_create(entries=1, kind="hash_noprealloc", ks=4, task=0, vs=4)
    m.update_batch(flags=0, m=0, n=1, start=1)
    m.update(cpu=0, ctx="irq", flags=0, k=1, m=0)
    before = m.sys.root.stat()["slab_unreclaimable"]
    assert len(m.sys.bpf_state.pending) == 1
    m.delete(irq=False, k=0, m=0)
    m.sys.drain_all_stock()
    assert m.sys.root.stat()["slab_unreclaimable"] == before - 72
    assert m.sys.bpf_state.pending == []
    m.teardown()
