"""BPF-level benchmarks: element updates through the model's syscall surface."""

import pytest

from pybpfmem import bpf
from pybpfmem.commands import bench


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


def test_real_bpf_update_elem(benchmark):
    """The real bpf(BPF_MAP_UPDATE_ELEM) of this machine, minimal ctypes call, for comparison."""
    import ctypes

    from pybpfmem.bpf import uapi
    from pybpfmem.live import bpf as live

    try:
        m = live.map_create("hash", 4, 64, 1 << 20, bpf.BPF_F_NO_PREALLOC)
    except OSError as e:
        pytest.skip(f"bpf() not available: {e}")
    kbuf, vbuf = ctypes.create_string_buffer(4), ctypes.create_string_buffer(64)
    attr = uapi.pack_attr(uapi.BPF_MAP_UPDATE_ELEM, map_fd=m.fd, key=ctypes.addressof(kbuf),
                          value=ctypes.addressof(vbuf), flags=0)
    abuf = ctypes.create_string_buffer(attr, len(attr))
    call, nr, cmd, size = m._sys.libc.syscall, m._sys.nr, uapi.BPF_MAP_UPDATE_ELEM, len(attr)
    counter = iter(range(1 << 20))

    def update():
        kbuf.raw = next(counter).to_bytes(4, "little")
        assert call(nr, cmd, abuf, size) == 0

    try:
        benchmark.pedantic(update, rounds=5, iterations=20_000)   # 100k keys: stays below max_entries
    finally:
        m.close()


@pytest.mark.parametrize("n", [100_000, 1_000_000])
def test_update_batch(benchmark, n):
    benchmark.pedantic(bench.bpf_update_batch, args=(n,), rounds=1)


def test_cilium_map_set_creation(benchmark):
    from pybpfmem.commands import scenario

    def create():
        s = scenario.load("examples/cilium-agent.toml")
        return scenario.run(s)

    results = benchmark.pedantic(create, rounds=1)
    assert all(r.ok for r in results)
