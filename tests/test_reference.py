"""Hand-derived exact values for the pure-Python reference model (pybpfmem.reference).

Every expected number below is derived in a comment from the kernel's rules
(mm/memcontrol.c, mm/page_counter.c, mm/slab.h, mm/percpu-internal.h), not
copied from a run.
"""

from __future__ import annotations

import errno

import pytest

from pybpfmem.constants import (GFP_KERNEL, GFP_KERNEL_ACCOUNT, GFP_NOWAIT_5X, __GFP_NOFAIL, __GFP_NORETRY, __GFP_RETRY_MAYFAIL,
                                MEMCG_DATA_KMEM, MEMCG_DATA_OBJCGS)
from pybpfmem.reference import System, memparse
from pybpfmem.reference.slab import kmalloc_bucket, obj_full_size, pcpu_obj_full_size

PS = 4096


def mk(profile: str = "6.18", nr_cpus: int = 2, oom_kill: bool = False):
    """A System, /a (a child of root: its structures charge nothing) and a task in /a,
    forked in root and moved: its kernel stack is charged nowhere, so /a holds only what
    each test charges."""
    S = System(nr_cpus=nr_cpus, page_size=PS, profile=profile, cgroup="v2", oom_kill=oom_kill)
    a = S.root.mkdir("a")
    t = S.spawn()
    t.migrate(a)
    return S, a, t


@pytest.mark.parametrize("profile,batch", [("5.11", 32), ("6.18", 64)])
def test_first_charge_moves_a_batch_then_stock(profile: str, batch: int) -> None:
    # try_charge(1): stock empty -> page_counter_try_charge(batch) succeeds -> refill_stock(batch-1).
    S, a, t = mk(profile)
    a.try_charge(1, GFP_KERNEL)
    assert a.read("memory.current") == f"{batch * PS}\n"
    assert S.root.usage_pages == batch            # the root counter sees the child's batch
    # the next batch-1 single pages come from the stock: counters unchanged
    for _ in range(batch - 1):
        a.try_charge(1, GFP_KERNEL)
    assert a.usage_pages == batch
    # stock empty again: another whole batch
    a.try_charge(1, GFP_KERNEL)
    assert a.usage_pages == 2 * batch
    # drain returns the unused batch-1 pages: usage = pages actually charged = batch + 1
    S.drain_all_stock()
    assert a.usage_pages == batch + 1


def test_charge_larger_than_batch_is_exact() -> None:
    # nr > MEMCG_CHARGE_BATCH: batch = nr, nothing stocked
    S, a, t = mk("5.11")
    a.try_charge(40, GFP_KERNEL)
    assert a.usage_pages == 40
    S.drain_all_stock()
    assert a.usage_pages == 40


def test_batch_that_does_not_fit_charges_exactly() -> None:
    # max 10 pages: try_charge(32) fails at a -> batch = nr = 1 -> charged 1, no stock
    S, a, t = mk("5.11")
    a.write("memory.max", "40960")
    a.try_charge(1, GFP_KERNEL)
    assert a.usage_pages == 1
    assert a.info()["failcnt"] == 1      # 5.11 counts the failed batch attempt at a
    assert a.events()["max"] == 0        # the exact retry fit: no MAX event


def test_limit_failure_gfp_rules_5_11() -> None:
    # max = 4 pages, usage 4 (exact charges). A 1-page charge:
    S, a, t = mk("5.11")
    a.write("memory.max", str(4 * PS))
    a.try_charge(4, GFP_KERNEL)
    assert a.usage_pages == 4
    # NORETRY: pass 1 MAX, nothing to reclaim, drain, pass 2 MAX, NORETRY -> ENOMEM: 2 events
    with pytest.raises(OSError) as ei:
        a.try_charge(1, GFP_KERNEL | __GFP_NORETRY)
    assert ei.value.errno == errno.ENOMEM
    assert a.events()["max"] == 2 and a.usage_pages == 4
    # RETRY_MAYFAIL: MAX on pass 1, drain retry, then 16 more retries: 18 MAX events, no OOM
    with pytest.raises(OSError):
        a.try_charge(1, GFP_KERNEL | __GFP_RETRY_MAYFAIL)
    assert a.events()["max"] == 2 + 18 and a.events()["oom"] == 0
    # NOFAIL: the same 18 MAX events, then forced over the limit by exactly 1 page
    a.try_charge(1, GFP_KERNEL | __GFP_NOFAIL)
    assert a.usage_pages == 5 and a.events()["max"] == 38 and a.events()["oom"] == 0
    # plain GFP_KERNEL, nothing killable: 18 MAX, OOM event, OOM_FAILED forces (5.11)
    a.try_charge(1, GFP_KERNEL)
    assert a.usage_pages == 6 and a.events()["oom"] == 1
    # GFP_ATOMIC (has __GFP_ATOMIC in 5.11) is forced without reclaim or events
    a.try_charge(1, S.gfp.GFP_ATOMIC)
    assert a.usage_pages == 7 and a.events()["max"] == 56
    # GFP_NOWAIT cannot block: ENOMEM without any event
    with pytest.raises(OSError):
        a.try_charge(1, GFP_NOWAIT_5X)
    assert a.events()["max"] == 56


def test_limit_failure_gfp_rules_6_18() -> None:
    S, a, t = mk("6.18")
    a.write("memory.max", str(4 * PS))
    a.try_charge(4, GFP_KERNEL)
    # GFP_KERNEL with nothing killable: 18 MAX, one OOM event, OOM fails -> ENOMEM (current)
    with pytest.raises(OSError):
        a.try_charge(1, GFP_KERNEL)
    assert a.events() | {} == {"low": 0, "high": 0, "max": 18, "oom": 1, "oom_kill": 0}
    # GFP_ATOMIC = HIGH|KSWAPD: cannot block -> nomem -> __GFP_HIGH forces, MAX raised at force
    a.try_charge(1, S.gfp.GFP_ATOMIC)
    assert a.usage_pages == 5 and a.events()["max"] == 19
    # failcnt is v1-only in the current kernel
    assert a.info()["failcnt"] == 0


def test_oom_kill_then_force_5_11() -> None:
    # with the OOM killer on: the task in a is killed (OOM_SUCCESS, retry with 16 new retries:
    # 17 more MAX events), the second OOM finds nobody -> OOM_FAILED -> force.
    S, a, t = mk("5.11", oom_kill=True)
    a.write("memory.max", str(4 * PS))
    a.try_charge(4, GFP_KERNEL)
    a.try_charge(1, GFP_KERNEL)
    ev = a.events()
    assert (ev["max"], ev["oom"], ev["oom_kill"]) == (18 + 17, 2, 1)
    assert t.killed and a.usage_pages == 5


def test_drain_before_failing_lets_the_charge_fit() -> None:
    # cpu 1's stock holds 31 pages of a; max = 33; a charge of 2 on cpu 0 fails at first
    # (32 + 2 > 33 for the batch and for the exact 2), drains, then fits exactly.
    S, a, t = mk("5.11")
    a.try_charge(1, GFP_KERNEL, cpu=1)            # usage 32, stock(cpu1) 31
    a.write("memory.max", str(33 * PS))
    a.try_charge(2, GFP_KERNEL, cpu=0)
    assert a.usage_pages == 3 and a.events()["max"] == 1


def test_reclaim_of_file_pages_before_failing() -> None:
    # max 8 pages, 8 file pages charged exactly (nr 8 < batch but batch 32 does not fit ->
    # exact). A 1-page anon charge reclaims max(1, SWAP_CLUSTER_MAX)=32 -> all 8 file pages.
    S, a, t = mk("5.11")
    a.write("memory.max", str(8 * PS))
    a.charge_user(8, file=True)
    a.charge_user(1)
    assert a.usage_pages == 1 and a.stat()["file"] == 0 and a.stat()["anon"] == PS
    assert a.events()["max"] == 1


def test_memory_max_write_below_usage() -> None:
    # memory_max_write: sets max, drains, 16 failed reclaims, OOM event, nothing to kill:
    # returns with usage above max.
    S, a, t = mk("6.18")
    a.try_charge(10, GFP_KERNEL)
    assert a.usage_pages == 64
    a.write("memory.max", str(5 * PS))
    assert a.usage_pages == 10 and a.read("memory.max") == f"{5 * PS}\n"
    assert a.events()["oom"] == 1


def test_watermark_and_hierarchy() -> None:
    S, a, t = mk("5.11")
    b = a.mkdir("b")
    # mkdir b charges a with b's structures (5.11: 2 percpu memcg_vmstats_percpu of 1120 and
    # 2 percpu lruvec_stat of 304, on 2 cpus: 5696 bytes): a's objcg takes 2 pages, through
    # a batch of 32 that leaves 30 in cpu 0's page stock
    assert a.usage_pages == 32
    b.try_charge(40, GFP_KERNEL)
    a.try_charge(33, GFP_KERNEL)
    # a = the batch 32 + own 33 + b 40; root = 105
    assert (b.usage_pages, a.usage_pages, S.root.usage_pages) == (40, 105, 105)
    # refill_stock(b, 40) on cpu 0: the one-slot stock switches from a (its 30 pages go
    # back) to b, then drains b's 40 (above the batch): a = 105 - 30 - 40
    b.uncharge(40)
    assert a.usage_pages == 35 and a.info()["watermark"] == 105


def test_memparse_rounding_and_errors() -> None:
    cmax = ((1 << 63) - 1) // PS
    assert memparse("4097", PS, cmax, "max") == 1
    assert memparse("4095", PS, cmax, "max") == 0
    assert memparse("64M\n", PS, cmax, "max") == 16384
    assert memparse("0x2000", PS, cmax, "max") == 2
    assert memparse("max", PS, cmax, "max") == cmax
    for bad in ("12x", "-1", "1.5G"):
        with pytest.raises(OSError) as ei:
            memparse(bad, PS, cmax, "max")
        assert ei.value.errno == errno.EINVAL


def test_kmalloc_sizes() -> None:
    # kmalloc(100): bucket 128, obj_full_size = 128 + 8 = 136
    assert kmalloc_bucket(100) == 128 and obj_full_size(128) == 136
    assert [kmalloc_bucket(n) for n in (1, 9, 65, 97, 129, 4097)] == [8, 16, 96, 128, 192, 8192]


@pytest.mark.parametrize("profile", ["5.11", "6.18"])
def test_kmalloc_100_through_the_object_stock(profile: str) -> None:
    # obj_cgroup_charge(136): stock miss -> 1 page charged (batch through the page stock),
    # refill_obj_stock(4096 - 136 = 3960). The memcg counter sees whole pages only.
    S, a, t = mk(profile)
    batch = S.profile.charge_batch
    with t.running(cpu=0):
        x = S.kmalloc(100, GFP_KERNEL_ACCOUNT)
        ys = [S.kmalloc(100, GFP_KERNEL_ACCOUNT) for _ in range(29)]
    # 30 * 136 = 4080 <= 4096: all from the same stocked page
    assert a.usage_pages == batch and S.obj_stock[0].nr_bytes == 4096 - 30 * 136
    S.drain_all_stock()
    # drain: 16 bytes left in the stock -> nr_charged_bytes; 1 page stays charged
    assert a.usage_pages == 1 and a._st.objcg.nr_charged_bytes == 16
    assert a.stat()["slab_unreclaimable"] == 30 * 136
    idx, cg = S.obj_cgroup_of(x)
    assert cg is a and S.page_memcg_data(x // PS) & 3 == MEMCG_DATA_OBJCGS
    with t.running(cpu=0):
        for y in [x] + ys:
            S.kfree(y)
    S.drain_all_stock()
    # the stock adopted the 16 bytes, got 4080 back = 4096: whole page returned at drain
    assert a.usage_pages == 0 and a._st.objcg.nr_charged_bytes == 0
    assert a.stat()["slab"] == 0


def test_kfree_5_11_drains_stock_above_page_size() -> None:
    # 5.11 refill_obj_stock: nr_bytes > PAGE_SIZE drains the whole object stock
    S, a, t = mk("5.11")
    with t.running(cpu=0):
        x = S.kmalloc(4000, GFP_KERNEL_ACCOUNT)   # 4096 + 8 = 4104 bytes -> 2 pages, rem 4088
        # stock = 8192 - 4104 = 4088 bytes; usage: batch 32
        S.kfree(x)                                # 4088 + 4104 = 8192 > 4096 -> drain 2 pages
    # 5.11 drain_obj_stock -> __memcg_kmem_uncharge -> refill_stock: back into the page stock
    assert a.usage_pages == 32
    S.drain_all_stock()
    assert a.usage_pages == 0


def test_large_kmalloc_is_a_kmem_page() -> None:
    # kmalloc(8193): order 2 (4 pages) KMEM page, no +8
    S, a, t = mk("6.18")
    with t.running(cpu=0):
        x = S.kmalloc(8193, GFP_KERNEL_ACCOUNT)
    S.drain_all_stock()
    assert a.usage_pages == 4 and S.page_memcg_data(x // PS) & 3 == MEMCG_DATA_KMEM
    assert a.stat()["slab_unreclaimable"] == 4 * PS and a.stat()["kernel"] == 4 * PS


def test_vmalloc_3_pages_plus_one_byte() -> None:
    S, a, t = mk("6.18")
    with t.running(cpu=0):
        v = S.vmalloc(3 * PS + 1, GFP_KERNEL_ACCOUNT)
    S.drain_all_stock()
    assert a.usage_pages == 4 and a.stat()["vmalloc"] == 4 * PS
    with t.running(cpu=0):
        S.vfree(v)
    S.drain_all_stock()
    assert a.usage_pages == 0 and a.stat()["vmalloc"] == 0


@pytest.mark.parametrize("profile,full", [("5.11", 64 * 4), ("6.18", 64 * 4 + 16 * 8)])
def test_percpu_sizes(profile: str, full: int) -> None:
    # 64 bytes on 4 cpus: 5.11 charges 256; since 2022 + (64/4) * 8 = 128 bytes of pointers
    assert pcpu_obj_full_size(64, 4, profile == "6.18") == full
    S, a, t = mk(profile, nr_cpus=4)
    with t.running(cpu=0):
        p = S.alloc_percpu(64, 8, GFP_KERNEL_ACCOUNT)
    assert a.stat()["percpu"] == full
    S.drain_all_stock()
    assert a.usage_pages == 1 and a._st.objcg.nr_charged_bytes == PS - full
    with t.running(cpu=0):
        S.free_percpu(p)
    assert a.stat()["percpu"] == 0


def test_interrupt_context_and_active_memcg() -> None:
    S, a, t = mk("5.11")
    b = S.root.mkdir("b")
    with S.in_interrupt(cpu=1):
        x = S.kmalloc(64, GFP_KERNEL_ACCOUNT)        # no memcg in interrupt: not charged
        with S.active_memcg(b):
            y = S.kmalloc(64, GFP_KERNEL_ACCOUNT)    # remote charge to b
    assert S.obj_cgroup_of(x) == (None, None) and S.obj_cgroup_of(y)[1] is b
    assert a.usage_pages == 0 and b.usage_pages == 32
    with pytest.raises(OSError) as ei:
        S.kmalloc(64, GFP_KERNEL_ACCOUNT)            # no context at all
    assert ei.value.errno == errno.EINVAL


def test_root_task_kernel_memory_not_charged() -> None:
    S, a, t = mk("6.18")
    r = S.spawn()
    with r.running(cpu=0):
        x = S.kmalloc(64, GFP_KERNEL_ACCOUNT)
        p = S.alloc_pages(0, GFP_KERNEL_ACCOUNT)
    assert S.obj_cgroup_of(x) == (None, None) and S.page_memcg_data(p) == 0
    assert S.root.usage_pages == 0


@pytest.mark.parametrize("profile", ["5.11", "6.18"])
def test_reparenting_on_rmdir(profile: str) -> None:
    # objects allocated in a/b; b removed; the frees uncharge a (the parent) but not b.
    S, a, t = mk(profile)
    b = a.mkdir("b")
    tb = S.spawn(cgroup=b)
    with tb.running(cpu=0):
        xs = [S.kmalloc(1000, GFP_KERNEL_ACCOUNT) for _ in range(3)]   # 3 * 1032 = 3096 bytes
    tb.exit()
    b.rmdir()
    # offline drains the page stock (its css ref on b goes); slab objects pin the objcg,
    # not b's css, so nothing keeps b: it is freed at once (not dying) in both profiles,
    # and its structures with it, giving a back the bytes they charged (drained below)
    assert not b.dying and S.dying_cgroups == 0
    S.drain_all_stock()
    assert b.usage_pages == 1 and a.usage_pages == 1    # the page holding 3096 bytes
    with t.running(cpu=0):
        for x in xs:
            S.kfree(x)
    S.drain_all_stock()
    # the 1 page charged in b is returned to a and root; b keeps its frozen residue of 1
    assert a.usage_pages == 0 and S.root.usage_pages == 0 and b.usage_pages == 1
    assert S.dying_cgroups == 0


def test_rmdir_busy() -> None:
    S, a, t = mk("6.18")
    with pytest.raises(OSError) as ei:
        a.rmdir()
    assert ei.value.errno == errno.EBUSY
    a.mkdir("c")
    t.exit()
    with pytest.raises(OSError) as ei:
        a.rmdir()
    assert ei.value.errno == errno.EBUSY


def test_user_pages_pin_a_dying_memcg() -> None:
    S, a, t = mk("6.18")
    b = a.mkdir("b")
    b.charge_user(3)
    b.rmdir()
    assert S.dying_cgroups == 1
    b.uncharge_user(3)
    assert S.dying_cgroups == 0
    S.drain_all_stock()          # b's structures were freed with b: a is back to 0
    assert a.usage_pages == 0


def test_teardown_returns_to_zero() -> None:
    # after freeing everything and draining, only nr_charged_bytes-parked pages remain;
    # here the sizes add up to whole pages, so every counter is 0
    S, a, t = mk("6.18")
    with t.running(cpu=1):
        xs = [S.kmalloc(n, GFP_KERNEL_ACCOUNT) for n in (10, 200, 3000, 9000)]
        v = S.kvmalloc(20000, GFP_KERNEL_ACCOUNT)
        p = S.alloc_pages(1, GFP_KERNEL_ACCOUNT)
    with t.running(cpu=0):
        for x in xs:
            S.kfree(x)
        S.kvfree(v)
        S.free_pages(p, 1)
    S.drain_all_stock()
    parked = a._st.objcg.nr_charged_bytes
    assert parked % PS == 0 and a.usage_pages == parked // PS
    S.check()


def test_v1_failcnt_5_11_counts_every_failure() -> None:
    S, a, t = mk("5.11")
    a.write("memory.max", str(PS))
    a.try_charge(1, GFP_KERNEL)                    # batch fails (failcnt 1), exact fits
    with pytest.raises(OSError):
        a.try_charge(1, GFP_KERNEL | __GFP_NORETRY)  # batch fail + exact fail twice: +3
    assert a.info()["failcnt"] == 4

