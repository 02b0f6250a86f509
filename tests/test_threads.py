"""The threading contract (docs/api.md, "Threads"): every public call is safe from any
Python thread.  Each thread has its own current context; a simulated cpu is driven by one
thread at a time (a second thread entering it gets RuntimeError), so two threads on two
cpus behave as two CPUs; close() never frees the C system under a call in flight.
Reproducers of issue 15, items 1 and 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

import pybpfmem
from pybpfmem import GFP_KERNEL_ACCOUNT
from pybpfmem.bpf import BPF_F_NO_PREALLOC, BPF_MAP_TYPE_HASH


def _run_threads(n, fn):
    """Run fn(i) in n threads at once; re-raise the first exception."""
    errors: list[BaseException] = []

    def wrap(i):
        try:
            fn(i)
        except BaseException as exc:   # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_two_threads_on_two_cpus_behave_as_two_cpus():
    """Issue 15 repro 1: two threads, each its own task, cgroup and cpu, 5,000
    kmalloc(64, GFP_KERNEL_ACCOUNT) each: 10,000 distinct addresses, each cgroup charged
    exactly its own objects, nothing left after the frees."""
    system = pybpfmem.System(nr_cpus=2, profile="6.18")
    cgs = [system.root.mkdir(f"t{i}") for i in range(2)]
    tasks = [system.spawn(cgroup=cg) for cg in cgs]
    addrs: list[list[int]] = [[], []]
    barrier = threading.Barrier(2)

    def alloc(i):
        with tasks[i].running(cpu=i):
            barrier.wait()
            for _ in range(5000):
                addrs[i].append(system.kmalloc(64, GFP_KERNEL_ACCOUNT))

    _run_threads(2, alloc)
    assert len(set(addrs[0]) | set(addrs[1])) == 10000
    system.drain_all_stock()
    for i, cg in enumerate(cgs):
        # 6.18: kmalloc-cg-64 slot 64 + the 8-byte objcg pointer (obj_full_size) = 72 bytes,
        # 5000 objects = 360,000 bytes of slab; the object stock charged whole pages:
        # ceil(360000 / 4096) = 88 pages, the 448-byte rest waits in nr_charged_bytes;
        # plus the task's kernel stack, THREAD_SIZE = 16 KiB of vmalloc: 4 pages
        assert cg.stat()["slab_unreclaimable"] == 360000
        assert cg.read("memory.current") == f"{88 * 4096 + 16384}\n"
        assert {system.obj_cgroup_of(a)[1] for a in addrs[i][::97]} == {cg}

    def free(i):
        with tasks[i].running(cpu=i):
            barrier.wait()
            for a in addrs[i]:
                system.kfree(a)

    _run_threads(2, free)
    system.drain_all_stock()
    for cg in cgs:
        assert cg.read("memory.current") == "16384\n"     # the kernel stack, until exit
        assert cg.stat()["slab_unreclaimable"] == 0
    for t in tasks:
        t.exit()          # the stacks' pages go back through cpu 0's page stock
    system.drain_all_stock()
    for cg in cgs:
        assert cg.read("memory.current") == "0\n"
    system.check()


def test_each_thread_has_its_own_context():
    system = pybpfmem.System(nr_cpus=2)
    task = system.spawn(cgroup=system.root.mkdir("a"))
    seen = {}
    inside = threading.Event()
    leave = threading.Event()

    def runner():
        with task.running(cpu=1):
            seen["runner"] = (system.current_cpu, system.current_task)
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=runner)
    t.start()
    inside.wait(10)
    # this thread entered no context: the other thread's cpu is not its current cpu
    assert system.current_cpu is None and system.current_task is None
    with pytest.raises(OSError):
        system.kmalloc(64, GFP_KERNEL_ACCOUNT)       # no context here: EINVAL
    leave.set()
    t.join()
    assert seen["runner"] == (1, task)


def test_a_cpu_is_driven_by_one_thread_at_a_time():
    """A cpu runs one context at a time: a second thread entering a cpu that another thread
    drives gets RuntimeError (a task or an interrupt alike); it may enter once the first
    thread left, and any other cpu at any time.  A free needs no context: it runs as a
    kworker on cpu 0 even while another thread drives cpu 0 (the core's stock lock)."""
    system = pybpfmem.System(nr_cpus=2)
    a = system.spawn(cgroup=system.root.mkdir("a"))
    b = system.spawn(cgroup=system.root.mkdir("b"))
    inside, leave = threading.Event(), threading.Event()

    def holder():
        with a.running(cpu=0):
            with system.in_interrupt(0):    # interrupts nest on the cpu's own thread
                pass
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    inside.wait(10)
    with pytest.raises(RuntimeError, match="cpu 0 is driven by another thread"):
        with b.running(cpu=0):
            pass
    with pytest.raises(RuntimeError, match="cpu 0 is driven by another thread"):
        with system.in_interrupt(0):
            pass
    with b.running(cpu=1):                  # the other cpu is free
        addr = system.kmalloc(64, GFP_KERNEL_ACCOUNT)
    system.kfree(addr)                      # no context: a kworker on cpu 0
    leave.set()
    t.join()
    with b.running(cpu=0):                  # free again once the thread left
        pass
    system.check()


def test_threads_share_maps_through_the_system_lock():
    """The BPF layer serialises on the System lock: two threads updating and deleting in
    one hash map (each its own task and cpu) lose nothing."""
    system = pybpfmem.System(nr_cpus=2, profile="6.18")
    cg = system.root.mkdir("m")
    owner = system.spawn(cgroup=cg)
    fd = owner.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 8, 4096, BPF_F_NO_PREALLOC)
    users = [system.spawn(cgroup=cg) for _ in range(2)]
    fds = [owner.dup_fd_to(u, fd) for u in users]

    def work(i):
        with users[i].running(cpu=i):
            for k in range(1000):
                key = (i * 1000 + k).to_bytes(4, "little")
                users[i].bpf_map_update_elem(fds[i], key, bytes(8))
                if k % 2:
                    users[i].bpf_map_delete_elem(fds[i], key)

    _run_threads(2, work)
    keys = set()
    key = None
    while True:
        try:
            key = owner.bpf_map_get_next_key(fd, key)
        except OSError:
            break
        keys.add(int.from_bytes(key, "little"))
    assert keys == {i * 1000 + k for i in range(2) for k in range(0, 1000, 2)}
    system.check()


_CLOSE_IN_FLIGHT = textwrap.dedent("""
    import random, threading, pybpfmem
    from pybpfmem import GFP_KERNEL_ACCOUNT
    for trial in range(1000):
        system = pybpfmem.System(nr_cpus=2)
        cg = system.root.mkdir("a")
        task = system.spawn(cgroup=cg)
        started = threading.Event()
        outcome = []

        def caller():
            try:
                with task.running(cpu=1):
                    started.set()
                    while True:
                        system.kfree(system.kmalloc(64, GFP_KERNEL_ACCOUNT))
                        cg.read("memory.stat")
            except ValueError as exc:
                outcome.append(str(exc))

        t = threading.Thread(target=caller)
        t.start()
        started.wait()
        for _ in range(random.randrange(50)):
            pass
        system.close()
        t.join()
        assert outcome and "closed System" in outcome[0], outcome
    print("ok")
""")


def test_close_with_calls_in_flight():
    """Issue 15 repro 2: close() from one thread while another is inside calls: the caller's
    next call raises ValueError, never a crash (1,000 trials, in a child process so that a
    SIGSEGV fails the test instead of killing the run)."""
    r = subprocess.run([sys.executable, "-c", _CLOSE_IN_FLIGHT], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.strip() == "ok"


def test_every_core_entry_point_is_a_read_side_section():
    """csrc/handles.c frees a memcg or objcg once every reader counter was seen at zero:
    that is safe only if every bm_* call that can meet one is a read-side section
    (BM_RCU_READ_SECTION).  The few that touch no memcg, or run alone, are listed."""
    import re
    from pathlib import Path

    alone = {"bm_system_new", "bm_system_free", "bm_config_check", "bm_system_nr_dying",
             "bm_fail_nth_alloc", "bm_mm_init", "bm_mm_destroy"}
    missing = []
    for path in sorted((Path(__file__).resolve().parents[1] / "csrc").glob("*.c")):
        src = path.read_text()
        for m in re.finditer(r"^(?:int|int32_t|int64_t)\s+(bm_\w+)\(([^)]*)\)\s*\n\{\n(.*)", src,
                             re.M):
            name, params, first = m.groups()
            if "bm_system *sys" in params and name not in alone and \
                    "BM_RCU_READ_SECTION" not in first:
                missing.append(f"{path.name}: {name}")
    assert missing == []
