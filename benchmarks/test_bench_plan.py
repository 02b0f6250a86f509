"""`pybpfmem plan` of the Cilium default maps (plan's built-in example), and the
bulk fill it stands on against the element loop (the targets: docs/performance.md)."""

import pytest

from pybpfmem.commands import bench
from pybpfmem.commands.plan import run_plans
from pybpfmem.commands.plan_inputs import DEFAULT_SET, bpftool_specs
from pybpfmem.commands.planner import PlanOptions
from pybpfmem.profiles import CURRENT_PROFILE, PROFILE_NAMES


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "element-loop"])
def test_fill_hash_and_lpm(benchmark, bulk):
    benchmark.pedantic(bench.fill_ns, args=(5_000, bulk), rounds=3)


@pytest.mark.parametrize("profiles", [(CURRENT_PROFILE,), PROFILE_NAMES], ids=["one-profile", "every-profile"])
def test_plan_cilium(benchmark, profiles):
    specs = bpftool_specs(DEFAULT_SET)
    results = benchmark.pedantic(run_plans, args=(specs, [PlanOptions(profile=p) for p in profiles]),
                                 rounds=1)
    assert all(not r.failed for r in results)
