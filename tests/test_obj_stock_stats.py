"""Slab statistics cached in the per-cpu object stock (__account_obj_stock(), mm/memcontrol.c).

Current kernels (profile switch obj_stock_slab_stats, 6.18) keep the NR_SLAB_[UN]RECLAIMABLE_B
deltas of the stock's objcg in the stock: an item's first delta is only cached, later ones add
to it, and the sum reaches the memcg once it is above PAGE_SIZE either way, or when the stock
is drained (drain_obj_stock()), always to the objcg's memcg of that moment.  v5.11 applies
every delta at once (mod_objcg_state()).  4 KiB pages; kmalloc(100) is a kmalloc(-cg)-128
object, obj_full_size = 128 + 8 = 136 bytes.
"""

from __future__ import annotations

import pybpfmem
from pybpfmem import constants as K

OBJ = 136


def setup(profile: str):
    s = pybpfmem.System(nr_cpus=2, page_size=4096, profile=profile, cgroup="v2", oom_kill=False)
    a = s.root.mkdir("a")
    return s, a, s.spawn(cgroup=a)


def test_618_flush_above_page_size() -> None:
    # 30 objects: 30 x 136 = 4080 <= 4096, all cached.  The 31st makes 4216 > 4096: the sum
    # goes to the memcg and the cache restarts at 0; the 32nd is a first delta again.
    s, a, t = setup("6.18")
    with t.running(cpu=0):
        xs = [s.kmalloc(100, K.GFP_KERNEL_ACCOUNT) for _ in range(30)]
        assert a.stat()["slab_unreclaimable"] == 0
        assert s.stock_info(0)["nr_slab_unreclaimable_b"] == 30 * OBJ
        xs.append(s.kmalloc(100, K.GFP_KERNEL_ACCOUNT))
        assert a.stat()["slab_unreclaimable"] == 31 * OBJ
        assert s.stock_info(0)["nr_slab_unreclaimable_b"] == 0
        xs.append(s.kmalloc(100, K.GFP_KERNEL_ACCOUNT))
    assert a.stat()["slab_unreclaimable"] == 31 * OBJ
    assert s.stock_info(0)["nr_slab_unreclaimable_b"] == OBJ
    # 32 frees on cpu 0, -136 each: the first cancels the cached +136 (0, nothing flushed);
    # the second is a first delta again (-136); after free k the cache holds -(k-1) x 136,
    # which passes -4096 at k = 32: -4216 is flushed, 31 x 136 - 31 x 136 = 0 in memory.stat
    for x in xs:
        s.kfree(x)
    assert a.stat()["slab_unreclaimable"] == 0
    assert s.stock_info(0)["nr_slab_unreclaimable_b"] == 0
    s.drain_all_stock()
    assert a.stat()["slab_unreclaimable"] == 0
    s.check()


def test_511_applies_at_once() -> None:
    s, a, t = setup("5.11")
    with t.running(cpu=0):
        x = s.kmalloc(100, K.GFP_KERNEL_ACCOUNT)
    assert a.stat()["slab_unreclaimable"] == OBJ
    assert s.stock_info(0)["nr_slab_unreclaimable_b"] == 0
    s.kfree(x)
    assert a.stat()["slab_unreclaimable"] == 0


def test_618_reclaimable_item_and_drain() -> None:
    # __GFP_RECLAIMABLE: kmalloc-rcl-128 (SLAB_RECLAIM_ACCOUNT), NR_SLAB_RECLAIMABLE_B; each
    # item has its own cached delta
    s, a, t = setup("6.18")
    with t.running(cpu=1):
        x = s.kmalloc(100, K.GFP_KERNEL_ACCOUNT | K.__GFP_RECLAIMABLE)
        y = s.kmalloc(100, K.GFP_KERNEL_ACCOUNT)
    info = s.stock_info(1)
    assert (info["nr_slab_reclaimable_b"], info["nr_slab_unreclaimable_b"]) == (OBJ, OBJ)
    st = a.stat()
    assert (st["slab_reclaimable"], st["slab_unreclaimable"], st["slab"]) == (0, 0, 0)
    s.drain_all_stock()                       # drain_obj_stock() flushes both items
    st = a.stat()
    assert (st["slab_reclaimable"], st["slab_unreclaimable"], st["slab"]) == (OBJ, OBJ, 2 * OBJ)
    s.kfree(x)
    s.kfree(y)


def test_618_free_on_other_cpu_caches_a_negative_delta() -> None:
    # allocated on cpu 0 (+136 cached there), freed on cpu 1: cpu 1's stock switches to the
    # objcg and caches -136 as its first delta; memory.stat shows 0 until both flush
    s, a, t = setup("6.18")
    with t.running(cpu=0):
        x = s.kmalloc(100, K.GFP_KERNEL_ACCOUNT)
    with t.running(cpu=1):
        s.kfree(x)
    assert s.stock_info(0)["nr_slab_unreclaimable_b"] == OBJ
    assert s.stock_info(1)["nr_slab_unreclaimable_b"] == -OBJ
    s.drain_local_stock(1)
    assert a.stat()["slab_unreclaimable"] == -OBJ    # the kernel's per-cpu stats can lag below 0
    s.drain_local_stock(0)
    assert a.stat()["slab_unreclaimable"] == 0


def test_618_flush_after_reparenting_lands_in_the_parent() -> None:
    # the cached 136 bytes belong to the child's objcg; rmdir reparents it to p (its drain
    # of the child skips cpu 0: the objcg's memcg is p now, not a descendant of c), and
    # the later flush goes to obj_cgroup_memcg() = p, not to the dying child
    s = pybpfmem.System(nr_cpus=2, page_size=4096, profile="6.18", cgroup="v2", oom_kill=False)
    p = s.root.mkdir("p")
    c = p.mkdir("c")
    t = s.spawn(cgroup=c)
    with t.running(cpu=0):
        x = s.kmalloc(100, K.GFP_KERNEL_ACCOUNT)
    t.exit()
    s.memcg_get(c)                # css_get(): keep the child dying (readable) after rmdir
    c.rmdir()
    assert c.dying and s.stock_info(0)["nr_slab_unreclaimable_b"] == OBJ
    s.drain_all_stock()
    # p also has c's own structures while c lives: mem_cgroup_alloc()'s kzalloc'ed
    # memcg_vmstats (1712 bytes: kmalloc-cg-2048) and lruvec_stats (792: kmalloc-cg-1024),
    # charged to p with their objcg pointer slots
    structs = (2048 + 8) + (1024 + 8)
    assert c.stat()["slab_unreclaimable"] == 0
    assert p.stat()["slab_unreclaimable"] == OBJ + structs
    s.kfree(x)
    s.drain_all_stock()
    assert p.stat()["slab_unreclaimable"] == structs
    s.memcg_put(c)                # the last reference: c is freed, its structures too
    s.drain_all_stock()
    assert p.stat()["slab_unreclaimable"] == 0
