"""Hot paths of the C core through the bulk replay entry point and through Python.

Each benchmark times one call that applies many operations, so pytest-benchmark's
per-round overhead is amortised; divide by N for ns/op (`pybpfmem bench` does that
and quotes ratios to floors measured in the same run).
"""

import numpy as np
import pytest

import pybpfmem
from pybpfmem.commands import bench

N = 200_000


@pytest.fixture
def leaf():
    system = bench.new_system()
    return system, bench.chain(system, 1)


def test_stock_hit_charge_uncharge(benchmark, leaf):
    system, cg = leaf
    ops = bench.pair_ops(N // 2, bench.OP_CHARGE, bench.OP_UNCHARGE, cg.id, 1, pybpfmem.GFP_KERNEL)
    results = benchmark(system.replay, ops)
    assert not results.any()


@pytest.mark.parametrize("depth", [1, 4, 8])
def test_stock_miss_walk(benchmark, depth):
    system = bench.new_system()
    cg = bench.chain(system, depth)
    nr = system.profile.charge_batch + 1
    ops = bench.pair_ops(N // 2, bench.OP_CHARGE, bench.OP_UNCHARGE, cg.id, nr, pybpfmem.GFP_KERNEL)
    results = benchmark(system.replay, ops)
    assert not results.any()


def test_limit_failure(benchmark, leaf):
    system, cg = leaf
    cg.write("memory.max", "0")
    ops = bench.ops_array(2_000)
    ops["op"], ops["handle"], ops["arg"] = bench.OP_CHARGE, cg.id, 1
    ops["gfp"] = pybpfmem.GFP_KERNEL | pybpfmem.__GFP_NORETRY
    results = benchmark(system.replay, ops)
    assert (results < 0).all()


@pytest.mark.parametrize("gfp", [pybpfmem.GFP_KERNEL, pybpfmem.GFP_KERNEL_ACCOUNT], ids=["plain", "accounted"])
def test_kmalloc_kfree_64(benchmark, leaf, gfp):
    system, cg = leaf
    task = system.spawn(cgroup=cg)
    ops = bench.pair_ops(N // 2, bench.OP_KMALLOC, bench.OP_KFREE_RESULT, 0, 64, gfp, second_arg=lambda i: i)
    with task.running(cpu=0):
        results = benchmark(system.replay, ops)
    assert (results[1::2] == 0).all()


def test_single_python_charge(benchmark, leaf):
    system, cg = leaf
    charge, uncharge, gfp = cg.try_charge, cg.uncharge, pybpfmem.GFP_KERNEL

    def pair():
        charge(1, gfp)
        uncharge(1)

    benchmark(pair)


def test_cffi_empty_call(benchmark, leaf):
    system, _ = leaf
    benchmark(pybpfmem._ffi.lib.bm_system_nr_dying, system._sys)


@pytest.mark.parametrize("n", [1_000, 100_000, 1_000_000])
def test_bulk_numpy(benchmark, leaf, n):
    system, cg = leaf

    def run():
        return system.replay(bench.pair_ops(n // 2, bench.OP_CHARGE, bench.OP_UNCHARGE, cg.id, 1, pybpfmem.GFP_KERNEL))

    results = benchmark(run)
    assert not np.asarray(results).any()


def test_reference_stock_hit(benchmark):
    from pybpfmem import reference

    rsys = reference.System(nr_cpus=2, profile="6.18", cgroup="v2")
    cg = rsys.root.mkdir("l0")
    gfp = pybpfmem.GFP_KERNEL

    def loop():
        for _ in range(1_000):
            cg.try_charge(1, gfp)
            cg.uncharge(1)

    benchmark(loop)


@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("direct", [False, True], ids=["stock", "shared"])
def test_threads(benchmark, nthreads, direct):
    benchmark.pedantic(bench.threads, args=(500_000, nthreads, direct), rounds=3)
