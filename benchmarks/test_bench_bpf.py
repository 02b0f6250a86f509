"""BPF-level benchmarks: element updates through the model's syscall surface."""

import pytest

from pybpfmem import bench, bpf


@pytest.fixture
def task_and_map():
    system = bench.new_system()
    cg = bench.chain(system, 1)
    task = system.spawn(cgroup=cg)
    with task.running(cpu=0):
        fd = task.bpf_map_create(bpf.BPF_MAP_TYPE_HASH, 4, 64, 1 << 20, bpf.BPF_F_NO_PREALLOC)
        yield task, fd


def test_update_elem_python(benchmark, task_and_map):
    task, fd = task_and_map
    counter = iter(range(1 << 20))
    value = bytes(64)
    benchmark(lambda: task.bpf_map_update_elem(fd, next(counter).to_bytes(4, "little"), value))


def test_update_batch_100k(benchmark):
    benchmark.pedantic(bench.bpf_update_batch, args=(100_000,), rounds=1)


def test_cilium_map_set_creation(benchmark):
    from pybpfmem import scenario

    def create():
        s = scenario.load("examples/cilium-agent.toml")
        return scenario.run(s)

    results = benchmark.pedantic(create, rounds=1)
    assert all(r.ok for r in results)
