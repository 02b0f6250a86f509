"""Kernel-memory allocation API through Python: expected values
derived from the kernel's rules (mm/slab.h / mm/slub.c obj_full_size,
obj_cgroup_charge + the object stock, __memcg_kmem_charge_page, vmalloc,
pcpu_obj_full_size)."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from pybpfmem import (GFP_KERNEL, GFP_KERNEL_ACCOUNT, MEMCG_DATA_FLAGS_MASK, MEMCG_DATA_KMEM,
                      MEMCG_DATA_OBJCGS, SLAB_ACCOUNT, System)
from pybpfmem.system import OP_DTYPE

PS = 4096
# Every task holds a kernel stack from spawn to exit: THREAD_SIZE (16 KiB on x86_64) of
# vmalloc, each page charged as a one-page KMEM page to the memcg it was forked in
# (kernel/fork.c memcg_charge_kernel_stack()).  The fixture's task is spawned in /a with no
# context, so on cpu 0: the 4 one-page charges take a batch there and leave the rest of it in
# cpu 0's page stock.
STACK = 16384


@pytest.fixture(params=["6.18", "5.11"])
def env(request):
    s = System(profile=request.param, ram="64M", nr_cpus=2)
    a = s.root.mkdir("a")
    t = s.spawn(a)
    yield s, a, t
    s.close()


def batch(s: System) -> int:
    return s.profile.charge_batch


def test_kmalloc_100(env) -> None:
    s, a, t = env
    with t.running(cpu=0):
        x = s.kmalloc(100, GFP_KERNEL_ACCOUNT)
    # kmalloc-128 (kmalloc-cg-128 on 6.18): obj_full_size = 128 + 8-byte objcg pointer = 136.
    # The object stock charges one whole page, which try_charge takes as a batch.
    # 6.18 (__account_obj_stock): the first NR_SLAB_UNRECLAIMABLE_B delta of the stock's
    # objcg is only cached in cpu 0's stock; v5.11 applies it at once (mod_objcg_state).
    cached = s.profile.obj_stock_slab_stats
    st = a.stat()
    assert st["slab_unreclaimable"] == (0 if cached else 136) and st["slab"] == st["slab_unreclaimable"]
    assert s.stock_info(0)["nr_slab_unreclaimable_b"] == (136 if cached else 0)
    assert a.read("memory.current") == f"{batch(s) * PS}\n"
    if s.profile.stat_kernel:
        assert st["kernel"] == PS + STACK            # MEMCG_KMEM: the objcg's page, the stack
    pfn = s.virt_to_pfn(x)
    assert s.page_memcg_data(pfn) & MEMCG_DATA_FLAGS_MASK == MEMCG_DATA_OBJCGS
    objcg, memcg = s.obj_cgroup_of(x)
    assert memcg is a and objcg is not None
    # a run of small kmallocs consumes the same stocked page: 29 more objects of 136 bytes
    # fit in 4096 (30 * 136 = 4080), the page counter does not move.  6.18: the cached
    # delta grows to 4080, not above PAGE_SIZE, so nothing is flushed yet.
    with t.running(cpu=0):
        xs = [s.kmalloc(100, GFP_KERNEL_ACCOUNT) for _ in range(29)]
    assert a.stat()["slab_unreclaimable"] == (0 if cached else 30 * 136)
    assert s.stock_info(0)["nr_slab_unreclaimable_b"] == (30 * 136 if cached else 0)
    assert a.usage_pages == batch(s)
    s.kfree(x)                                      # a free with no context: cpu 0, kworker
    for y in xs:
        s.kfree(y)
    assert a.stat()["slab_unreclaimable"] == 0
    assert a.usage_pages == batch(s)               # bytes went back to the object stock
    s.drain_all_stock()
    # drain_obj_stock returns the whole page; the page stock returns the rest of the batch;
    # the task's stack stays
    assert a.read("memory.current") == f"{STACK}\n"
    s.check()


def test_kfree_bad_addresses(env) -> None:
    s, a, t = env
    with t.running(cpu=0):
        x = s.kmalloc(64, GFP_KERNEL_ACCOUNT)
        v = s.vmalloc(PS, GFP_KERNEL_ACCOUNT)
    before = a.info()
    s.kfree(0)                                      # kfree(NULL) is a no-op, as in the kernel
    for bad in (x + 8, 12345):
        with pytest.raises(OSError) as e:
            s.kfree(bad)
        assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        s.kfree(v)                                  # wrong free function for a vmalloc address
    with pytest.raises(ValueError):
        s.kfree(-1)
    with pytest.raises(TypeError):
        s.kfree(1.0)  # type: ignore[arg-type]
    assert a.info() == before
    s.kfree(x)
    with pytest.raises(OSError) as e:
        s.kfree(x)                                  # double free
    assert e.value.errno == errno.EINVAL
    s.vfree(v)


def test_alloc_with_no_context(env) -> None:
    s, a, _ = env
    before = s.root.info()
    for call in (lambda: s.kmalloc(8, GFP_KERNEL_ACCOUNT), lambda: s.vmalloc(8, GFP_KERNEL_ACCOUNT),
                 lambda: s.alloc_pages(0, GFP_KERNEL_ACCOUNT), lambda: s.alloc_percpu(8, 8, GFP_KERNEL_ACCOUNT)):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EINVAL and "no current context" in str(e.value)
    assert s.root.info() == before


def test_large_kmalloc_and_alloc_pages(env) -> None:
    s, a, t = env
    with t.running(cpu=0):
        big = s.kmalloc(16384, GFP_KERNEL_ACCOUNT)  # > KMALLOC_MAX_CACHE_SIZE: order-2 pages
        pfn = s.alloc_pages(1, GFP_KERNEL_ACCOUNT)
    assert s.page_memcg_data(s.virt_to_pfn(big)) & MEMCG_DATA_FLAGS_MASK == MEMCG_DATA_KMEM
    assert s.page_memcg_data(pfn) & MEMCG_DATA_FLAGS_MASK == MEMCG_DATA_KMEM
    # large kmalloc pages count in the memcg slab stat since v5.12
    assert a.stat()["slab_unreclaimable"] == (16384 if s.profile.large_kmalloc_memcg_stat else 0)
    s.drain_all_stock()
    assert a.usage_pages == 4 + 2 + STACK // PS
    s.kfree(big)
    s.free_pages(pfn, 1)
    assert s.page_memcg_data(pfn) == 0
    s.drain_all_stock()
    assert a.usage_pages == STACK // PS


def test_vmalloc_three_pages_plus_one(env) -> None:
    s, a, t = env
    with t.running(cpu=1):
        v = s.vmalloc(3 * PS + 1, GFP_KERNEL_ACCOUNT)
    s.drain_all_stock()
    # 4 backing pages (metadata unaccounted) besides the task's stack
    assert a.read("memory.current") == f"{4 * PS + STACK}\n"
    if s.profile.stat_vmalloc:
        assert a.stat()["vmalloc"] == 4 * PS         # the stack's vmalloc is not __GFP_ACCOUNT
        assert a.stat()["kernel"] == 4 * PS + STACK
    s.vfree(v)
    s.drain_all_stock()
    assert a.usage_pages == STACK // PS


def test_percpu_64_bytes_on_4_cpus() -> None:
    for prof, want in (("5.11", 64 * 4), ("6.18", 64 * 4 + 64 // 4 * 8)):
        # pcpu_obj_full_size: size * possible cpus (+ one objcg pointer per 4-byte unit, 2022+)
        with System(profile=prof, nr_cpus=4, ram="64M") as s:
            a = s.root.mkdir("a")
            t = s.spawn(a)
            with t.running(cpu=3):
                p = s.alloc_percpu(64, 8, GFP_KERNEL_ACCOUNT)
            assert a.stat()["percpu"] == want, prof
            s.free_percpu(p)
            assert a.stat()["percpu"] == 0


def test_unaccounted_gfp_charges_nothing(env) -> None:
    s, a, t = env
    s.drain_all_stock()
    with t.running(cpu=0):
        x = s.kmalloc(100, GFP_KERNEL)               # no __GFP_ACCOUNT
    assert a.usage_pages == STACK // PS and a.stat()["slab_unreclaimable"] == 0
    assert s.obj_cgroup_of(x) == (None, None)
    s.kfree(x)


def test_kmem_cache_account(env) -> None:
    s, a, t = env
    c = s.kmem_cache_create("bpf_test", 200, SLAB_ACCOUNT)
    with t.running(cpu=0):
        o = c.alloc(GFP_KERNEL)                      # SLAB_ACCOUNT accounts without __GFP_ACCOUNT
    # 208 bytes: applied at once on v5.11, cached in cpu 0's object stock on 6.18
    # (__account_obj_stock keeps an item's first delta), flushed by the drain
    cached = s.profile.obj_stock_slab_stats
    assert a.stat()["slab_unreclaimable"] == (0 if cached else 200 + 8)
    s.drain_all_stock()
    assert a.stat()["slab_unreclaimable"] == 200 + 8
    c.free(o)                                        # first delta of the new stock: cached
    assert a.stat()["slab_unreclaimable"] == (200 + 8 if cached else 0)
    s.drain_all_stock()
    assert a.stat()["slab_unreclaimable"] == 0


def test_free_after_rmdir_uncharges_the_parent(env) -> None:
    s, _, _ = env
    p = s.root.mkdir("p")
    base = p.usage_pages                           # a child of root charges root nothing
    a = p.mkdir("a")
    s.drain_all_stock()
    # mkdir of a: mem_cgroup_alloc()'s accounted structures are charged to p (whole pages
    # once drained; the sub-page rest stays in the objcg's nr_charged_bytes)
    cost = p.usage_pages - base
    assert cost == -(-sum(s.pcpu_obj_full_size(size) if kind == "percpu" else size + 8
                          for _, kind, size in s.profile.memcg_allocs()) // PS)
    t = s.spawn(a)
    with t.running(cpu=0):
        x = s.kmalloc(100, GFP_KERNEL_ACCOUNT)
    t.migrate(p)
    s.drain_all_stock()
    # the objcg's stocked page and t's stack, which stays where t was forked
    assert (a.usage_pages, p.usage_pages) == (1 + STACK // PS, cost + 1 + STACK // PS)
    t.exit()
    a.rmdir()
    # memcg_reparent_objcgs: the objcg now points at the parent
    _, memcg = s.obj_cgroup_of(x)
    assert memcg is p
    s.kfree(x)
    s.drain_all_stock()
    # a was freed with its last reference: its structures went too
    assert s.dying_cgroups == 0
    assert p.usage_pages == 0 and p.stat()["slab_unreclaimable"] == 0
    s.check()


def test_bulk_and_replay(env) -> None:
    s, a, t = env
    sizes = np.full(30, 100, dtype=np.uint64)
    with t.running(cpu=0):
        addrs = s.kmalloc_bulk(sizes, GFP_KERNEL_ACCOUNT)
    assert addrs.dtype == np.uint64 and len(addrs) == 30 and (addrs != 0).all()
    # 6.18: the 30 deltas (4080 bytes, not above PAGE_SIZE) wait in cpu 0's object stock
    cached = s.profile.obj_stock_slab_stats
    assert a.stat()["slab_unreclaimable"] == (0 if cached else 30 * 136)
    assert s.stock_info(0)["nr_slab_unreclaimable_b"] == (30 * 136 if cached else 0)
    res = s.kfree_bulk(addrs)
    assert (res == 0).all() and a.stat()["slab_unreclaimable"] == 0
    with pytest.raises(ValueError):
        s.kfree_bulk(np.array([-1]))
    with pytest.raises(TypeError):
        s.kmalloc_bulk(np.array([1.5]), GFP_KERNEL_ACCOUNT)
    ops = np.zeros(3, dtype=OP_DTYPE)
    ops[0] = (1, 0, 0, GFP_KERNEL, a.id, 0, 1)       # BM_OP_CHARGE 1 page on cpu 0
    ops[1] = (2, 0, 0, 0, a.id, 0, 1)                # BM_OP_UNCHARGE 1 page
    ops[2] = (1, 0, 0, GFP_KERNEL, 99999, 0, 1)      # bad handle
    res = s.replay(ops)
    assert res.dtype == np.int64 and list(res[:2]) == [0, 0] and res[2] < 0
    with pytest.raises(TypeError):
        s.replay(np.zeros(3, dtype=np.int64))


def test_objcg_refs_and_queries(env) -> None:
    s, a, t = env
    with t.running(cpu=0):
        objcg = s.get_obj_cgroup_from_current()
    assert objcg is not None and s.objcg_memcg(objcg) is a
    s.obj_cgroup_put(objcg)
    with s.in_interrupt(cpu=1):
        assert s.get_obj_cgroup_from_current() is None   # no memcg in interrupt context
    with pytest.raises(OSError):
        s.page_info(1 << 40)
