"""Shared set-up of the BPF model tests (imported by tests/test_bpf_*.py)."""

import pytest

import pybpfmem
from pybpfmem.bpf import RLIM_INFINITY, RLIMIT_MEMLOCK

PAGE = 4096


def setup(profile="6.18", uid=0, unlimited=True):
    """A 2-cpu System, cgroup /a and a task in it (RLIMIT_MEMLOCK unlimited by default)."""
    s = pybpfmem.System(nr_cpus=2, page_size=PAGE, profile=profile)
    a = s.root.mkdir("a")
    if uid:
        s.unprivileged_bpf_disabled = 0
    t = s.spawn(cgroup=a, uid=uid)
    if unlimited:
        t.setrlimit(RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY)
    return s, a, t


def current(s, cg):
    """memory.current after draining the per-cpu stocks, less the kernel stacks of the
    tasks in the subtree (memory.stat kernel_stack: THREAD_SIZE of KMEM pages per task
    from spawn to exit), so what is left is what the BPF objects charge."""
    s.drain_all_stock()
    return int(cg.read("memory.current")) - cg.stat()["kernel_stack"]


def errno_of(fn, *args, **kw):
    with pytest.raises(OSError) as ei:
        fn(*args, **kw)
    return ei.value.errno


def k(i):
    """A 4-byte key."""
    return i.to_bytes(4, "little")
