"""The memory layer's public services the BPF layer builds on (bpf/services.py) and its
lifecycle hooks, on the memory System alone (pybpfmem.mm, no BPF layer)."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from pybpfmem import GFP_KERNEL, GFP_KERNEL_ACCOUNT, GFP_NOWAIT, __GFP_ACCOUNT, mm

PAGE = 4096


def machine(profile: str = "6.18") -> tuple[mm.System, mm.MemCgroup, mm.Task]:
    s = mm.System(nr_cpus=2, page_size=PAGE, profile=profile)
    a = s.root.mkdir("a")
    return s, a, s.spawn(cgroup=a)


def test_memory_system_alone_spawns_memory_tasks() -> None:
    s, a, t = machine()
    assert type(t) is mm.Task and not hasattr(t, "bpf_task")
    assert not hasattr(s, "bpf_state")


def test_kmalloc_charged_size_is_obj_full_size() -> None:
    """obj_full_size(): the slab object plus its objcg pointer slot; a large kmalloc (above
    KMALLOC_MAX_CACHE_SIZE, two pages) charges its compound page."""
    s, a, t = machine()
    with t.running(cpu=0):
        small = s.kmalloc(100, GFP_KERNEL_ACCOUNT)     # kmalloc-cg-128
        odd = s.kmalloc(65, GFP_KERNEL_ACCOUNT)        # kmalloc-cg-96
        large = s.kmalloc(10000, GFP_KERNEL_ACCOUNT)   # order 2: 16384
    assert [s.kmalloc_charged_size(x) for x in (small, odd, large)] == [128 + 8, 96 + 8, 4 * PAGE]
    # the core charged exactly that: 136 + 104 bytes through cpu 0's object stock (then in
    # slab_unreclaimable once drained), the large one as whole pages
    s.drain_all_stock()
    assert a.stat()["slab_unreclaimable"] == 136 + 104 + 4 * PAGE


@pytest.mark.parametrize("profile, expected", [("5.11", 24), ("6.18", 48)])
def test_pcpu_obj_full_size_matches_the_core(profile: str, expected: int) -> None:
    """pcpu_obj_full_size(10) on 2 cpus: ALIGN(10, 4) = 12 per cpu = 24; with the objcg
    pointer array (6.18) 12 / 4 units x 8 bytes more = 48."""
    s, a, t = machine(profile)
    assert s.pcpu_obj_full_size(10) == expected
    with t.running(cpu=0):
        s.alloc_percpu(10, 4, GFP_KERNEL_ACCOUNT)
    s.drain_all_stock()
    assert a.stat()["percpu"] == expected


def test_memcg_ids_of_asks_the_core() -> None:
    """Accounted objects name their cgroup (slab, large kmalloc, vmalloc, percpu);
    unaccounted ones and root's (no objcg for root: get_obj_cgroup_from_current() is NULL)
    are -1."""
    s, a, t = machine()
    r = s.spawn()
    with t.running(cpu=0):
        objs = [s.kmalloc(100, GFP_KERNEL_ACCOUNT), s.kmalloc(100, GFP_KERNEL),
                s.kmalloc(10000, GFP_KERNEL_ACCOUNT), s.vmalloc(5000, GFP_KERNEL_ACCOUNT),
                s.alloc_percpu(10, 4, GFP_KERNEL_ACCOUNT)]
    with r.running(cpu=1):
        objs.append(s.kmalloc(100, GFP_KERNEL_ACCOUNT))
    assert s.memcg_ids_of(objs).tolist() == [a.id, -1, a.id, a.id, a.id, -1]
    assert [s.obj_cgroup_of(x)[1] for x in objs[:1]] == [a]
    with pytest.raises(OSError) as ei:
        s.memcg_ids_of([12345 * PAGE])                 # a free page
    assert ei.value.errno in (errno.ENOENT, errno.EINVAL)


def test_kmalloc_until_fail_is_the_loop_that_stops_at_the_first_failure() -> None:
    """alloc_bulk(): kmallocs until the first one fails.  Compared with the same loop made
    of single kmalloc() calls on an identical machine: the same objects, the same charge."""
    def run(bulk: bool) -> tuple[int, str]:
        s, a, t = machine()
        a.write("memory.max", str(4 * PAGE + a.stat()["kernel_stack"]))   # + t's stack
        gfp = GFP_NOWAIT | __GFP_ACCOUNT                # no reclaim: fails at the limit
        with t.running(cpu=0):
            if bulk:
                got = len(s.kmalloc_until_fail(2048, 100, gfp))
            else:
                got = 0
                try:
                    while got < 100:
                        s.kmalloc(2048, gfp)
                        got += 1
                except OSError as e:
                    assert e.errno == errno.ENOMEM
        return got, a.read("memory.current")
    bulk, loop = run(True), run(False)
    assert bulk == loop and 0 < bulk[0] < 100


def test_kmalloc_until_fail_needs_a_context() -> None:
    s, a, t = machine()
    with pytest.raises(OSError) as ei:
        s.kmalloc_until_fail(64, 4, GFP_KERNEL)
    assert ei.value.errno == errno.EINVAL
    with t.running(cpu=0):
        assert s.kmalloc_until_fail(64, 0, GFP_KERNEL).tolist() == []


def test_lifecycle_hooks_run_where_the_kernel_would() -> None:
    """do_exit() runs the task-exit hooks before cgroup_exit() drops the css reference;
    cgroup_rmdir() runs the offline hooks once the memcg is offline."""
    s, a, t = machine()
    seen: list[tuple[str, object, int]] = []
    s.hooks.on_task_exit(lambda task: seen.append(("exit", task, a.info()["refcnt"])))
    s.hooks.on_cgroup_offline(lambda cg: seen.append(("offline", cg, int(cg.online))))
    refs = a.info()["refcnt"]
    t.exit()
    assert seen == [("exit", t, refs)] and a.info()["refcnt"] == refs - 1
    a.rmdir()
    assert seen[1] == ("offline", a, 0)


def test_an_oom_killed_task_runs_the_exit_hooks_once_off_the_cpu() -> None:
    """A memcg OOM kill of the charging task (order-0 charges over memory.max, reclaim
    finds nothing): the task is killed at once and exits when it leaves the cpu."""
    s, a, t = machine()
    exits: list[object] = []
    s.hooks.on_task_exit(exits.append)
    a.write("memory.max", str(8 * PAGE))
    with t.running(cpu=0):
        addrs = s.kmalloc_bulk(np.full(64, PAGE, dtype=np.uint64), GFP_KERNEL_ACCOUNT)
        assert (addrs == 0).any()
        assert t.killed and not t.exited and exits == []
    assert t.exited and exits == [t]
