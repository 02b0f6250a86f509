"""Kernel stacks (kernel/fork.c, CONFIG_VMAP_STACK): every task and every thread holds
THREAD_SIZE (16 KiB on x86_64) of vmalloc from fork to exit, allocated without
__GFP_ACCOUNT and then charged page by page as one-page KMEM pages to the memcg of the
task that forks it (memcg_charge_kernel_stack()), and counted in NR_KERNEL_STACK_KB
(account_kernel_stack(): memory.stat kernel_stack, v2 only; the v1 kmem counter and
MEMCG_KMEM count the pages).  The live 6.18.44 kernel charges 22,480 bytes of kmem per
thread: this stack, and the task_struct (5888 + 8) and struct pid (192 + 8) the model does
not allocate (tests/test_live_memcg.py).

Also the tail pages of a compound page: /proc/kpagecgroup (page_cgroup_ino()) reports the
head's memcg for a tail since v6.4 (it reads the page's folio), none before.
"""

from __future__ import annotations

import errno

import pytest

import pybpfmem
from pybpfmem import reference
from pybpfmem.constants import GFP_KERNEL_ACCOUNT

PS = 4096
STACK = 16384


@pytest.mark.parametrize("impl", ["core", "reference"])
@pytest.mark.parametrize("profile", ["5.11", "6.18"])
def test_task_and_threads_have_stacks(impl: str, profile: str) -> None:
    mod = pybpfmem if impl == "core" else reference
    s = mod.System(nr_cpus=2, page_size=PS, profile=profile, cgroup="v2", oom_kill=False)
    a, b = s.root.mkdir("a"), s.root.mkdir("b")
    t = s.spawn(cgroup=a)
    threads = [t.clone_thread() for _ in range(3)]
    s.drain_all_stock()
    assert a.usage_pages == 4 * STACK // PS and a.stat()["kernel_stack"] == 4 * STACK
    if s.profile.stat_kernel:
        assert a.stat()["kernel"] == 4 * STACK
    # the process moves (with its threads): new threads are charged to b, the old
    # stacks stay in a, and a thread exits alone
    t.migrate(b)
    t.clone_thread()
    threads[0].exit()
    s.drain_all_stock()
    assert (a.stat()["kernel_stack"], b.stat()["kernel_stack"]) == (3 * STACK, STACK)
    t.exit()                                      # exit_group: every thread goes
    s.drain_all_stock()
    assert a.usage_pages == b.usage_pages == 0
    assert a.stat()["kernel_stack"] == b.stat()["kernel_stack"] == 0


def test_threads_in_cgroup_files() -> None:
    s = pybpfmem.System(nr_cpus=2, profile="6.18")
    a = s.root.mkdir("a")
    t = s.spawn(cgroup=a)
    th = t.clone_thread()
    assert th.leader is t and th.tgid == t.pid and t.group() == [t, th]
    assert a.read("cgroup.procs") == f"{t.pid}\n"           # thread-group leaders only
    with pytest.raises(OSError) as e:
        a.rmdir()
    assert e.value.errno == errno.EBUSY
    with th.running(cpu=1):                                 # a thread is a context too
        x = s.kmalloc(100, GFP_KERNEL_ACCOUNT)
    assert s.obj_cgroup_of(x)[1] is a
    s.kfree(x)
    t.exit()
    assert not th.alive and th.stack == 0
    with pytest.raises(OSError) as e:
        th.clone_thread()
    assert e.value.errno == errno.ESRCH


def test_v1_kmem_counter_and_fork_failure() -> None:
    # v1: the stack's 4 pages are in memory.kmem.usage_in_bytes.  With memory.limit at 3
    # pages a fork fails with ENOMEM (the 4th page's charge, GFP_KERNEL: reclaim, OOM
    # with no victim here) and leaves nothing charged: the pages charged so far are
    # uncharged before the stack is freed (no vmalloc statistic either: the stack's
    # vmalloc is not __GFP_ACCOUNT)
    s = pybpfmem.System(nr_cpus=2, profile="6.18", cgroup="v1", oom_kill=False)
    a = s.root.mkdir("a")
    t = s.spawn(cgroup=a)
    s.drain_all_stock()
    assert a.read("memory.kmem.usage_in_bytes") == f"{STACK}\n"
    b = s.root.mkdir("b")
    b.write("memory.limit_in_bytes", str(3 * PS))
    with pytest.raises(OSError) as e:
        s.spawn(cgroup=b)
    assert e.value.errno == errno.ENOMEM
    s.drain_all_stock()
    assert b.usage_pages == 0 and b.read("memory.kmem.usage_in_bytes") == "0\n"
    t.exit()
    s.check()


def test_vmalloc_stat_untouched_by_a_failed_fork() -> None:
    s = pybpfmem.System(nr_cpus=2, profile="6.18", oom_kill=False)
    b = s.root.mkdir("b")
    b.write("memory.max", str(2 * PS))
    with pytest.raises(OSError):
        s.spawn(cgroup=b)
    s.drain_all_stock()
    assert b.stat()["vmalloc"] == 0 and b.stat()["kernel"] == 0 and b.usage_pages == 0


def test_thread_size_with_64k_pages() -> None:
    # THREAD_SIZE is at least a page (arm64 with 64K pages: THREAD_SHIFT = PAGE_SHIFT)
    s = pybpfmem.System(nr_cpus=2, page_size=65536, profile="6.18")
    a = s.root.mkdir("a")
    s.spawn(cgroup=a)
    s.drain_all_stock()
    assert a.stat()["kernel_stack"] == 65536 and a.usage_pages == 1


def test_a_stack_is_freed_with_its_task_only() -> None:
    s = pybpfmem.System(nr_cpus=2, profile="6.18")
    a = s.root.mkdir("a")
    t = s.spawn(cgroup=a)
    with pytest.raises(OSError) as e:
        s.vfree(t.stack)                  # not through vfree: the task owns it
    assert e.value.errno == errno.EINVAL
    t.exit()


@pytest.mark.parametrize("profile,tail_owner", [("5.11", False), ("6.18", True)])
def test_tail_pages_of_a_large_kmalloc(profile: str, tail_owner: bool) -> None:
    # kmalloc(16384) > KMALLOC_MAX_CACHE_SIZE: an order-2 compound (__GFP_COMP) KMEM page.
    # page_cgroup_ino() v6.4+ reads page_folio(tail) = the head: the head's owner; before,
    # the tail's own memcg_data: none.  alloc_pages(order 2) without __GFP_COMP has no
    # folio spanning its pages: its tails report none in every profile.
    s = pybpfmem.System(nr_cpus=2, profile=profile)
    a = s.root.mkdir("a")
    t = s.spawn(cgroup=a)
    with t.running(cpu=0):
        big = s.kmalloc(16384, GFP_KERNEL_ACCOUNT)
        pfn = s.alloc_pages(2, GFP_KERNEL_ACCOUNT)
    head = s.virt_to_pfn(big)
    assert s.page_info(head)["memcg"] == a.id
    for i in (1, 2, 3):
        info = s.page_info(head + i)
        assert info["kind_name"] == "tail"
        assert info["memcg"] == (a.id if tail_owner else None)
        if profile == "6.18":
            assert info["objcg"] == s.page_info(head)["objcg"] is not None
        assert s.page_info(pfn + i)["memcg"] is None
    s.kfree(big)
    s.free_pages(pfn, 2)
    t.exit()
