"""`current` contexts: task.running(), in_interrupt(), active_memcg(), tasks
and OOM kills (mirrors in_task()/in_interrupt(), set_active_memcg(),
get_obj_cgroup_from_current(), mem_cgroup_oom())."""

from __future__ import annotations

import contextlib
import errno

import pytest

from pybpfmem import GFP_KERNEL_ACCOUNT, System

PS = 4096


@pytest.fixture
def s():
    sysobj = System(profile="6.18", ram="64M", nr_cpus=2)
    yield sysobj
    sysobj.close()


def test_context_stack(s: System) -> None:
    a = s.root.mkdir("a")
    t0, t1 = s.spawn(a), s.spawn(a)
    assert s.current_cpu is None and s.current_task is None
    with t1.running():                              # default cpu: pid 1001 % 2 = 1
        assert (s.current_cpu, s.current_task, t1.cpu) == (1, t1, 1)
        with s.in_interrupt(cpu=0):
            assert (s.current_cpu, s.current_task) == (0, None)
        with t0.running():                          # pid 1000 % 2 = 0
            assert (s.current_cpu, s.current_task) == (0, t0)
            with s.in_interrupt(cpu=0):             # interrupts the running task
                assert (s.current_cpu, s.current_task) == (0, t0)
        assert (s.current_cpu, s.current_task) == (1, t1)
    assert s.current_cpu is None and t1.cpu is None


def test_context_misuse(s: System) -> None:
    a = s.root.mkdir("a")
    t0, t1 = s.spawn(a), s.spawn(a)
    with t0.running(cpu=0):
        with pytest.raises(RuntimeError):
            with t1.running(cpu=0):                 # cpu 0 already runs t0
                pass
        with pytest.raises(RuntimeError):
            with t0.running(cpu=1):                 # t0 cannot run on two cpus
                pass
        with t0.running(cpu=0):                     # nesting the same task is fine
            assert s.current_task is t0
        with pytest.raises(RuntimeError):
            t0.exit()                               # still running
    with pytest.raises(ValueError):
        t0.running(cpu=2)
    with pytest.raises(ValueError):
        s.in_interrupt(cpu=-1)
    t0.exit()
    assert not t0.alive
    with pytest.raises(RuntimeError):
        with t0.running():
            pass


def test_task_charges_its_memcg_and_migrate(s: System) -> None:
    a, b = s.root.mkdir("a"), s.root.mkdir("b")
    t = s.spawn(a, uid=1000)
    assert (t.pid, t.uid, t.cgroup) == (1000, 1000, a)
    with t.running(cpu=0):
        x = s.kmalloc(100, GFP_KERNEL_ACCOUNT)
        t.migrate(b)                                # existing charges stay in a
        y = s.kmalloc(100, GFP_KERNEL_ACCOUNT)
    # 6.18 __account_obj_stock(): x's 136 bytes were cached in cpu 0's object stock; y's
    # charge switched the stock to b's objcg, whose drain flushed a's 136 to a, and y's
    # own 136 now wait in the stock
    assert a.stat()["slab_unreclaimable"] == 136 and b.stat()["slab_unreclaimable"] == 0
    assert s.stock_info(0)["nr_slab_unreclaimable_b"] == 136
    assert a.read("cgroup.procs") == "" and b.read("cgroup.procs") == "1000\n"
    s.kfree(x)
    s.kfree(y)
    a.rmdir()                                       # the task no longer pins a
    with pytest.raises(OSError) as e:
        t.migrate(a)
    assert e.value.errno == errno.ENODEV


def test_interrupt_without_and_with_active_memcg(s: System) -> None:
    a = s.root.mkdir("a")
    with s.in_interrupt(cpu=1):
        x = s.kmalloc(100, GFP_KERNEL_ACCOUNT)      # no memcg in interrupt context
        assert s.obj_cgroup_of(x) == (None, None)
        assert a.usage_pages == 0 and s.root.usage_pages == 0 and s.root.stat()["slab_unreclaimable"] == 0
        with s.active_memcg(a):                     # int_active_memcg
            y = s.kmalloc(100, GFP_KERNEL_ACCOUNT)
    # the first slab delta of cpu 1's stock is only cached there (__account_obj_stock)
    assert a.stat()["slab_unreclaimable"] == 0 and s.stock_info(1)["nr_slab_unreclaimable_b"] == 136
    assert a.usage_pages == 64                      # one page through the batch
    assert s.obj_cgroup_of(y)[1] is a
    s.kfree(x)
    s.kfree(y)                                      # on cpu 0: -136 cached there, +136 on cpu 1
    assert a.stat()["slab_unreclaimable"] == 0
    s.drain_all_stock()
    assert a.stat()["slab_unreclaimable"] == 0


def test_active_memcg_in_task_context_and_restore(s: System) -> None:
    a, b = s.root.mkdir("a"), s.root.mkdir("b")
    t = s.spawn(a)
    with t.running(cpu=0):
        with s.active_memcg(b):                     # remote charging: b wins over the task's a
            x = s.kmalloc(100, GFP_KERNEL_ACCOUNT)
            with s.active_memcg(None):              # set_active_memcg(NULL) restores the task's memcg
                y = s.kmalloc(100, GFP_KERNEL_ACCOUNT)
        z = s.kmalloc(100, GFP_KERNEL_ACCOUNT)      # old value restored: a again
    # 6.18 __account_obj_stock(): x's 136 wait in cpu 0's stock until y switches it to a's
    # objcg (the drain flushes them to b); y's and z's 2 x 136 are still cached
    assert b.stat()["slab_unreclaimable"] == 136
    assert a.stat()["slab_unreclaimable"] == 0
    assert s.stock_info(0)["nr_slab_unreclaimable_b"] == 2 * 136
    s.drain_all_stock()
    assert a.stat()["slab_unreclaimable"] == 2 * 136
    for o in (x, y, z):
        s.kfree(o)
    with pytest.raises(OSError) as e:
        with s.active_memcg(a):                     # no context to set it in
            pass
    assert e.value.errno == errno.EINVAL


def test_root_task_kmem_is_not_charged_to_a_child(s: System) -> None:
    a = s.root.mkdir("a")
    t = s.spawn()                                   # root cgroup
    with t.running(cpu=0):
        x = s.kmalloc(100, GFP_KERNEL_ACCOUNT)
    # 6.18: the root objcg updates statistics but skips the page counters
    assert a.usage_pages == 0 and s.root.usage_pages == 0
    s.kfree(x)


def test_oom_kill_of_the_charging_task() -> None:
    for prof in ("6.18", "5.11"):
        with System(profile=prof, ram="64M", oom_kill=True) as s:
            a = s.root.mkdir("a")
            a.write("memory.max", "16K")            # 4 pages
            t = s.spawn(a)
            with t.running(cpu=0):
                # order-3 (8 pages) large kmalloc over a 4-page max with GFP_KERNEL: reclaim
                # finds nothing, mem_cgroup_oom (order <= PAGE_ALLOC_COSTLY_ORDER) kills current.
                # 6.18: passed_oom && task_is_dying() -> -ENOMEM; v5.11: the dying task's
                # charge is forced (should_force_charge) and succeeds.
                if prof == "6.18":
                    with pytest.raises(OSError) as e:
                        s.kmalloc(8 * PS, GFP_KERNEL_ACCOUNT)
                    assert e.value.errno == errno.ENOMEM
                    assert t.killed
                else:
                    x = s.kmalloc(8 * PS, GFP_KERNEL_ACCOUNT)
            assert t.killed and not t.alive, prof
            ev = a.events()
            assert (ev["oom"], ev["oom_kill"]) == (1, 1), prof
            assert a.read("cgroup.procs") == ""
            if prof == "5.11":
                s.kfree(x)
            with pytest.raises(RuntimeError):
                with t.running():
                    pass
            a.rmdir()                               # the killed task left the cgroup


def test_no_oom_kill_when_disabled() -> None:
    with System(profile="6.18", ram="64M", oom_kill=False) as s:
        a = s.root.mkdir("a")
        a.write("memory.max", "16K")
        t = s.spawn(a)
        with t.running(cpu=0):
            with pytest.raises(OSError) as e:
                s.kmalloc(8 * PS, GFP_KERNEL_ACCOUNT)
            assert e.value.errno == errno.ENOMEM
        assert t.alive and not t.killed
        assert a.events()["oom"] == 1 and a.events()["oom_kill"] == 0


def test_free_without_context_uses_cpu0_kworker(s: System) -> None:
    a = s.root.mkdir("a")
    t = s.spawn(a)
    with t.running(cpu=1):
        x = s.kmalloc(100, GFP_KERNEL_ACCOUNT)
    s.kfree(x)                                      # uncharges the object's objcg, not `current`
    assert a.stat()["slab_unreclaimable"] == 0
    assert s.stock_info(0)["nr_bytes"] == 136       # the bytes landed in cpu 0's object stock


@pytest.mark.parametrize("impl", ["core", "reference"])
@pytest.mark.parametrize("profile", ["5.15", "6.1"])
@pytest.mark.parametrize("one_call", [False, True], ids=["two-returns", "one-syscall"])
def test_a_syscall_pays_its_memory_high_debt_once(impl: str, profile: str, one_call: bool) -> None:
    # A task in c (memory.high 0; the write drained c's stock, 4 stack pages are left)
    # vmallocs 40 pages twice.  Nothing is reclaimable, so each payment
    # (mem_cgroup_handle_over_high()) runs reclaim_high() 1 + MAX_RECLAIM_RETRIES = 17
    # times, one high event each.
    # 5.15 (batch 32, no payment inside the charge): charges at pages 1 and 33 of the first
    #   vmalloc, 25 of the second (24 were left in the stock): usage 4 + 96.  Two returns to
    #   user pay twice (34 events); one system call pays its 96-page debt once (17).
    # 6.1 (batch 64): the first vmalloc charges at page 1 (debt 64), the second at page 25:
    #   usage 4 + 128.  Two returns pay 64 each (34); in one system call the debt reaches 128
    #   inside the second charge, paid there (c9afe31ec443), and nothing is left at the
    #   return (17).
    # The reference pays once per running() block: one block is one system call.
    from pybpfmem import reference
    mod = System if impl == "core" else reference.System
    sysobj = mod(nr_cpus=2, page_size=PS, profile=profile, cgroup="v2", oom_kill=False)
    c = sysobj.root.mkdir("c")
    t = sysobj.spawn(cgroup=c)
    c.write("memory.high", "0")
    if one_call:
        with t.running(cpu=0), (t.syscall() if impl == "core" else contextlib.nullcontext()):
            sysobj.vmalloc(40 * PS, GFP_KERNEL_ACCOUNT)
            sysobj.vmalloc(40 * PS, GFP_KERNEL_ACCOUNT)
    else:
        for _ in range(2):
            with t.running(cpu=0):
                sysobj.vmalloc(40 * PS, GFP_KERNEL_ACCOUNT)
    usage = 4 + (96 if profile == "5.15" else 128)
    assert (c.events()["high"], c.usage_pages) == (17 if one_call else 34, usage)


def test_syscall_needs_the_task_current(s: System) -> None:
    t = s.spawn(s.root.mkdir("a"))
    with pytest.raises(RuntimeError, match="not current"):
        with t.syscall():
            pass
    with t.running(cpu=1), t.syscall():
        s.kmalloc(64, GFP_KERNEL_ACCOUNT)


def test_a_system_closed_inside_a_syscall_defers_nothing_after() -> None:
    # the deferral belongs to the calling thread: the exit still ends the call when its
    # System was closed meanwhile, so the next System this thread uses pays at once
    s1 = System(nr_cpus=2, profile="6.18", oom_kill=False)
    t = s1.spawn(s1.root.mkdir("a"))
    with t.running(cpu=0), t.syscall():
        s1.close()
    s2 = System(nr_cpus=2, page_size=PS, profile="6.18", cgroup="v2", oom_kill=False)
    c = s2.root.mkdir("c")
    t2 = s2.spawn(cgroup=c)
    c.write("memory.high", "0")
    with t2.running(cpu=0):
        s2.vmalloc(PS, GFP_KERNEL_ACCOUNT)          # paid at the end of the vmalloc
        assert c.events()["high"] == 17
    s2.close()
