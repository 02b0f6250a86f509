"""Kernel-memory allocators of the C core at the cffi level: page frames and
memcg_data, slab/kmalloc with the object stock, vmalloc/kvmalloc, percpu and
the bulk paths.

Every expected number is derived by hand from the kernel's rules in the
comment next to it (v5.11: mm/memcontrol.c try_charge / refill_stock /
obj_cgroup_charge / refill_obj_stock / drain_obj_stock, mm/slab.h hooks,
mm/vmalloc.c, mm/percpu.c; 6.18: the current versions).  Shared setup: 4
possible cpus, 4 KiB pages, cgroup v2.
"""

from __future__ import annotations

import errno

import pytest

from pybpfmem._core import ffi, lib
from pybpfmem.profiles import get_profile

PAGE = 4096
GFP_KERNEL = 0xCC0
GFP_KERNEL_ACCOUNT = GFP_KERNEL | lib.BM_GFP_ACCOUNT
GFP_ATOMIC_511 = lib.BM_GFP_HIGH | lib.BM_GFP_ATOMIC | lib.BM_GFP_KSWAPD_RECLAIM
NORETRY = lib.BM_GFP_NORETRY
DIRECT_MAP = 0  # addr // PAGE is the pfn (the simulated direct map, docs/architecture.md)

# the profile switches come from the one profile table (pybpfmem/profiles.py)
PROFILES = {name: get_profile(name).switches() for name in ("5.11", "6.18")}


def make_config(profile: str = "5.11", nr_cpus: int = 4, page_size: int = PAGE,
                ram_pages: int = 1 << 16, cgroup_v1: int = 0):
    cfg = ffi.new("struct bm_config *")
    cfg.nr_cpus = nr_cpus
    cfg.page_size = page_size
    cfg.cgroup_v1 = cgroup_v1
    cfg.oom_kill_current = 0
    cfg.ram_pages = ram_pages
    for name, value in PROFILES[profile].items():
        setattr(cfg.profile, name, value)
    return cfg


def make_system(profile: str = "5.11", **kw):
    cfg = make_config(profile, **kw)
    assert lib.bm_config_check(cfg) == 0
    sys_ = lib.bm_system_new(cfg)
    assert sys_ != ffi.NULL
    return ffi.gc(sys_, lib.bm_system_free)


def memcg_info(s, memcg):
    out = ffi.new("struct bm_memcg_info *")
    assert lib.bm_memcg_info(s, memcg, out) == 0
    return out


def usage(s, memcg) -> int:
    return memcg_info(s, memcg).memory.usage


def objcg_info(s, objcg):
    out = ffi.new("struct bm_objcg_info *")
    assert lib.bm_objcg_info(s, objcg, out) == 0
    return out


def stock(s, cpu):
    out = ffi.new("struct bm_cpu_stock_info *")
    assert lib.bm_stock_info(s, cpu, out) == 0
    return out


def page_info(s, pfn):
    out = ffi.new("struct bm_page_info *")
    assert lib.bm_page_info(s, pfn, out) == 0
    return out


def kmalloc(s, size, gfp=GFP_KERNEL_ACCOUNT, cpu=0) -> int:
    addr = ffi.new("uint64_t *")
    assert lib.bm_kmalloc(s, cpu, size, gfp, addr) == 0
    return addr[0]


def kmalloc_err(s, size, gfp=GFP_KERNEL_ACCOUNT, cpu=0) -> int:
    addr = ffi.new("uint64_t *")
    return lib.bm_kmalloc(s, cpu, size, gfp, addr)


def vmalloc(s, size, gfp=GFP_KERNEL_ACCOUNT, cpu=0) -> int:
    addr = ffi.new("uint64_t *")
    assert lib.bm_vmalloc(s, cpu, size, gfp, addr) == 0
    return addr[0]


def alloc_percpu(s, size, align=8, gfp=GFP_KERNEL_ACCOUNT, cpu=0) -> int:
    addr = ffi.new("uint64_t *")
    assert lib.bm_alloc_percpu(s, cpu, size, align, gfp, addr) == 0
    return addr[0]


def pfn_of(addr: int) -> int:
    return (addr - DIRECT_MAP) // PAGE


def objcg_of(s, addr):
    o = ffi.new("int32_t *")
    m = ffi.new("int32_t *")
    assert lib.bm_obj_cgroup_of(s, addr, o, m) == 0
    return o[0], m[0]


def cgroup_with_task(s, parent=0, cpus=(0,)):
    cg = lib.bm_memcg_create(s, parent, 0)
    assert cg > 0
    for cpu in cpus:
        assert lib.bm_set_task(s, cpu, cg, -1) == 0
    return cg


# ---------------------------------------------------------------- kmalloc


def test_kmalloc_100_charges_136_bytes_through_the_object_stock_511():
    s = make_system("5.11")
    a = cgroup_with_task(s)
    objcg = memcg_info(s, a).objcg
    addr = kmalloc(s, 100)
    # kmalloc-128: obj_full_size = 128 + 8 = 136 bytes.  Object stock empty ->
    # obj_cgroup_charge charges ceil(136/4096) = 1 page via try_charge, which
    # charges a whole batch (32) and stocks 31; the unused 4096-136 = 3960
    # bytes of the page go to this cpu's object stock.
    info = memcg_info(s, a)
    assert info.memory.usage == 32
    assert usage(s, 0) == 32                      # root counter is the parent of a's
    assert info.stock_pages == 31
    st = stock(s, 0)
    assert st.cached[0] == a and st.nr_pages[0] == 31
    assert st.cached_objcg == objcg and st.nr_bytes == 3960
    assert objcg_info(s, objcg).stock_bytes == 3960
    assert objcg_info(s, objcg).nr_charged_bytes == 0
    assert info.stat_local[lib.BM_STAT_SLAB_UNRECLAIMABLE_B] == 136
    size = ffi.new("uint64_t *")
    assert lib.bm_ksize(s, addr, size) == 0 and size[0] == 128
    assert objcg_of(s, addr) == (objcg, a)
    # kmalloc-128 slabs are order 0 (4096/128 = 32 >= min_objects = 4*(fls(4)+1) = 16)
    assert lib.bm_ram_used_pages(s) == 1


def test_kmalloc_100_on_618_batch_64_and_kernel_stat():
    s = make_system("6.18")
    a = cgroup_with_task(s)
    objcg = memcg_info(s, a).objcg
    kmalloc(s, 100)
    # MEMCG_CHARGE_BATCH = 64: 64 charged, 63 stocked; the 3960-byte tail is
    # refilled with allow_uncharge=false and stays; obj_cgroup_charge_pages
    # adds 1 page to MEMCG_KMEM.
    info = memcg_info(s, a)
    assert info.memory.usage == 64 and info.stock_pages == 63
    assert stock(s, 0).nr_bytes == 3960 and stock(s, 0).cached_objcg == objcg
    assert info.stat_local[lib.BM_STAT_KERNEL] == 1
    # __account_obj_stock(): the first slab delta (136) only waits in cpu 0's stock
    assert info.stat_local[lib.BM_STAT_SLAB_UNRECLAIMABLE_B] == 0
    assert stock(s, 0).nr_slab_unreclaimable_b == 136


def test_run_of_small_kmallocs_consumes_the_same_stocked_page():
    s = make_system("5.11")
    a = cgroup_with_task(s)
    addrs = [kmalloc(s, 100) for _ in range(30)]
    # 29 more objects come out of the 3960 stocked bytes: 3960 - 29*136 = 16
    assert stock(s, 0).nr_bytes == 16
    assert memcg_info(s, a).memory.usage == 32 and memcg_info(s, a).stock_pages == 31
    # the 31st does not fit in 16 bytes: one page from the page stock (31 -> 30),
    # 3960 more bytes into the object stock: 16 + 3960 = 3976
    addrs.append(kmalloc(s, 100))
    assert stock(s, 0).nr_bytes == 3976
    assert memcg_info(s, a).memory.usage == 32 and memcg_info(s, a).stock_pages == 30
    # all 31 objects of kmalloc-128 share one 32-object slab page
    pfns = {pfn_of(x) for x in addrs}
    assert len(pfns) == 1
    pi = page_info(s, pfns.pop())
    assert pi.kind == lib.BM_PAGE_SLAB and pi.nr_objects == 31 and pi.order == 0
    assert pi.memcg_data & lib.BM_MEMCG_DATA_FLAGS_MASK == lib.BM_MEMCG_DATA_OBJCGS
    assert pi.memcg_data & ~3 != 0                # the objcgs vector
    assert pi.memcg == -1                         # page_memcg_check() is NULL for slab pages
    assert len(set(addrs)) == 31 and all((x - min(addrs)) % 128 == 0 for x in addrs)
    assert memcg_info(s, a).stat_local[lib.BM_STAT_SLAB_UNRECLAIMABLE_B] == 31 * 136


def test_kfree_returns_bytes_to_the_object_stock_511():
    s = make_system("5.11")
    a = cgroup_with_task(s)
    objcg = memcg_info(s, a).objcg
    addrs = [kmalloc(s, 100) for _ in range(31)]     # stock: 3976 bytes, 30 pages
    assert lib.bm_kfree(s, 0, addrs.pop()) == 0
    # refill_obj_stock(136): 3976 + 136 = 4112 > 4096 -> v5.11 drains the whole
    # object stock: 1 page back through refill_stock (30 -> 31), 16 bytes parked
    st = stock(s, 0)
    assert st.cached_objcg == -1 and st.nr_bytes == 0
    assert objcg_info(s, objcg).nr_charged_bytes == 16
    assert memcg_info(s, a).stock_pages == 31 and usage(s, a) == 32
    assert lib.bm_kfree(s, 0, addrs.pop()) == 0
    # the next refill re-caches the objcg and adopts the parked 16: 16 + 136
    assert stock(s, 0).nr_bytes == 152 and objcg_info(s, objcg).nr_charged_bytes == 0
    assert memcg_info(s, a).stat_local[lib.BM_STAT_SLAB_UNRECLAIMABLE_B] == 29 * 136


def test_kfree_on_618_splits_whole_pages_and_keeps_the_objcg_cached():
    s = make_system("6.18")
    a = cgroup_with_task(s)
    objcg = memcg_info(s, a).objcg
    addrs = [kmalloc(s, 100) for _ in range(31)]
    # batch 64: 64 charged, 63 stocked, the 31st page from the stock -> 62;
    # object stock 3960 - 29*136 + 3960 = 3976
    assert memcg_info(s, a).stock_pages == 62 and stock(s, 0).nr_bytes == 3976
    assert lib.bm_kfree(s, 0, addrs.pop()) == 0
    # allow_uncharge: 4112 > 4096 -> split 1 page off (refill_stock 62 -> 63),
    # keep 16 bytes, objcg stays cached, nothing parked
    st = stock(s, 0)
    assert st.cached_objcg == objcg and st.nr_bytes == 16
    assert objcg_info(s, objcg).nr_charged_bytes == 0
    assert memcg_info(s, a).stock_pages == 63 and usage(s, a) == 64


def test_drain_moves_whole_pages_back_and_parks_the_remainder():
    s = make_system("5.11")
    a = cgroup_with_task(s)
    objcg = memcg_info(s, a).objcg
    addrs = [kmalloc(s, 100) for _ in range(31)]   # 2 pages used, 30 stocked, 3976 bytes
    assert lib.bm_drain_all_stock(s, 0) == 0
    # drain_obj_stock: 3976 >> 12 = 0 pages, 3976 parked; drain_stock: 30 pages off
    assert objcg_info(s, objcg).nr_charged_bytes == 3976
    assert objcg_info(s, objcg).stock_bytes == 0
    assert usage(s, a) == 2 and usage(s, 0) == 2
    # bytes: 2 pages = 31 * 136 + 3976 = 8192
    for x in addrs:
        assert lib.bm_kfree(s, 0, x) == 0
    # first free adopts 3976: 4112 > 4096 -> 1 page to the page stock, 16 parked;
    # the other 30 frees: 16 + 30*136 = 4096, not above a page, stays cached
    assert stock(s, 0).nr_bytes == 4096 and stock(s, 0).nr_pages[0] == 1
    assert lib.bm_drain_all_stock(s, 0) == 0
    # drain_obj_stock: 1 whole page -> refill_stock; drain_stock uncharges 2
    assert usage(s, a) == 0 and usage(s, 0) == 0
    assert objcg_info(s, objcg).nr_charged_bytes == 0
    assert memcg_info(s, a).stat_local[lib.BM_STAT_SLAB_UNRECLAIMABLE_B] == 0


def test_everything_freed_and_drained_leaves_whole_pages_parked_in_the_objcg():
    """Invariant 13: after all frees and drain_all_stock, a memcg keeps exactly
    the pages parked in its objcgs' nr_charged_bytes (a multiple of PAGE_SIZE)."""
    s = make_system("5.11")
    a = cgroup_with_task(s, cpus=(0, 1))
    objcg = memcg_info(s, a).objcg
    x1 = kmalloc(s, 100, cpu=0)      # cpu0: 32 charged, 31 stocked, 3960 bytes
    x2 = kmalloc(s, 100, cpu=0)      # cpu0: 3824 bytes
    x3 = kmalloc(s, 100, cpu=1)      # cpu1: 32 more charged (64), 31 stocked, 3960 bytes
    assert usage(s, a) == 64
    assert lib.bm_kfree(s, 1, x1) == 0   # cpu1: 3960 + 136 = 4096, stays
    assert lib.bm_kfree(s, 1, x2) == 0   # cpu1: 4232 > 4096: 1 page to cpu1's page stock, 136 parked
    assert objcg_info(s, objcg).nr_charged_bytes == 136
    assert stock(s, 1).nr_pages[0] == 32
    assert lib.bm_kfree(s, 1, x3) == 0   # cpu1 adopts 136: 272
    assert stock(s, 1).nr_bytes == 272 and stock(s, 0).nr_bytes == 3824
    assert lib.bm_drain_all_stock(s, 0) == 0
    # parked: 3824 + 272 = 4096; page stocks 31 + 32 uncharged: 64 - 63 = 1
    assert objcg_info(s, objcg).nr_charged_bytes == 4096
    assert usage(s, a) == 1 and usage(s, 0) == 1
    info = memcg_info(s, a)
    assert info.stock_pages == 0
    assert info.stat_local[lib.BM_STAT_SLAB_UNRECLAIMABLE_B] == 0


def test_slab_page_has_objcgs_and_large_kmalloc_page_has_kmem_511():
    s = make_system("5.11")
    a = cgroup_with_task(s)
    small = kmalloc(s, 64)
    assert page_info(s, pfn_of(small)).memcg_data & 3 == lib.BM_MEMCG_DATA_OBJCGS
    big = kmalloc(s, 8193)
    # > KMALLOC_MAX_CACHE_SIZE (8192): compound page of get_order(8193) = 2,
    # charged as 4 KMEM pages; v5.11 records memcg | KMEM, no slab stat on the memcg
    pi = page_info(s, pfn_of(big))
    assert pi.kind == lib.BM_PAGE_KMEM and pi.order == 2
    assert pi.memcg_data & 3 == lib.BM_MEMCG_DATA_KMEM
    assert pi.memcg == a and pi.objcg == -1
    assert page_info(s, pfn_of(big) + 3).kind == lib.BM_PAGE_TAIL
    assert objcg_of(s, big) == (-1, a)
    size = ffi.new("uint64_t *")
    assert lib.bm_ksize(s, big, size) == 0 and size[0] == 4 * PAGE
    # small: 32 charged, 31 stocked; big: 4 pages from the stock -> 27
    assert usage(s, a) == 32 and memcg_info(s, a).stock_pages == 27
    assert memcg_info(s, a).stat_local[lib.BM_STAT_SLAB_UNRECLAIMABLE_B] == 72
    assert lib.bm_kfree(s, 0, big + PAGE) == -errno.EINVAL      # interior
    assert lib.bm_kfree(s, 0, big) == 0
    # free_pages_prepare -> __memcg_kmem_uncharge_page -> refill_stock(4): 31
    assert memcg_info(s, a).stock_pages == 31
    assert page_info(s, pfn_of(big)).kind == lib.BM_PAGE_FREE
    assert page_info(s, pfn_of(big)).memcg_data == 0


def test_large_kmalloc_page_records_objcg_and_slab_stat_618():
    s = make_system("6.18")
    a = cgroup_with_task(s)
    objcg = memcg_info(s, a).objcg
    big = kmalloc(s, 16385)          # get_order(16385) = 3: 8 pages
    pi = page_info(s, pfn_of(big))
    assert pi.order == 3 and pi.memcg_data & 3 == lib.BM_MEMCG_DATA_KMEM
    assert pi.objcg == objcg and pi.memcg == a
    assert (pi.memcg_data & ~3) != 0
    info = memcg_info(s, a)
    assert info.memory.usage == 64 and info.stock_pages == 56
    assert info.stat_local[lib.BM_STAT_SLAB_UNRECLAIMABLE_B] == 8 * PAGE
    assert info.stat_local[lib.BM_STAT_KERNEL] == 8
    assert lib.bm_kfree(s, 0, big) == 0
    info = memcg_info(s, a)
    assert info.stat_local[lib.BM_STAT_SLAB_UNRECLAIMABLE_B] == 0
    assert info.stat_local[lib.BM_STAT_KERNEL] == 0
    assert info.stock_pages == 64


def test_kmalloc_cg_caches_separate_accounted_objects_618_only():
    for profile, shared in (("5.11", True), ("6.18", False)):
        s = make_system(profile)
        cgroup_with_task(s)
        x = kmalloc(s, 64, GFP_KERNEL)
        y = kmalloc(s, 64, GFP_KERNEL_ACCOUNT)
        assert (pfn_of(x) == pfn_of(y)) is shared, profile
        # the unaccounted object's slot is empty
        assert objcg_of(s, x) == (-1, -1)


def test_kmem_cache_slab_account_charges_without_gfp_account():
    s = make_system("5.11")
    a = cgroup_with_task(s)
    cache = ffi.new("int32_t *")
    assert lib.bm_kmem_cache_create(s, 40, lib.BM_SLAB_ACCOUNT, cache) == 0
    addr = ffi.new("uint64_t *")
    assert lib.bm_kmem_cache_alloc(s, 0, cache[0], GFP_KERNEL, addr) == 0
    # SLAB_ACCOUNT: obj_full_size = 40 + 8 = 48; 4096 - 48 = 4048 in the stock
    assert stock(s, 0).nr_bytes == 4048 and usage(s, a) == 32
    assert page_info(s, pfn_of(addr[0])).memcg_data & 3 == lib.BM_MEMCG_DATA_OBJCGS
    other = ffi.new("int32_t *")
    assert lib.bm_kmem_cache_create(s, 40, 0, other) == 0
    assert lib.bm_kmem_cache_free(s, 0, other[0], addr[0]) == -errno.EINVAL   # wrong cache
    assert lib.bm_kmem_cache_free(s, 0, cache[0], addr[0]) == 0
    assert stock(s, 0).nr_bytes == 4096
    assert lib.bm_kmem_cache_free(s, 0, cache[0], addr[0]) == -errno.EINVAL   # double free
    # an unaccounted cache's slab page gets no vector
    assert lib.bm_kmem_cache_alloc(s, 0, other[0], GFP_KERNEL, addr) == 0
    assert page_info(s, pfn_of(addr[0])).memcg_data == 0
    assert lib.bm_kmem_cache_create(s, 40, 0x1, other) == -errno.EINVAL      # unknown flag
    assert lib.bm_kmem_cache_create(s, 0, 0, other) == -errno.EINVAL
    assert lib.bm_kmem_cache_alloc(s, 0, 999, GFP_KERNEL, addr) == -errno.EINVAL


# ---------------------------------------------------------------- vmalloc / kvmalloc


@pytest.mark.parametrize("profile,batch,stat", [("5.11", 32, 0), ("6.18", 64, 4)])
def test_vmalloc_three_pages_plus_one_byte_charges_four_pages(profile, batch, stat):
    s = make_system(profile)
    a = cgroup_with_task(s)
    used = lib.bm_ram_used_pages(s)
    v = vmalloc(s, 3 * PAGE + 1)
    # PAGE_ALIGN(12289) / 4096 = 4 order-0 pages, each a 1-page KMEM charge:
    # the first charges a batch and stocks batch-1, the next three consume it
    info = memcg_info(s, a)
    assert info.memory.usage == batch and info.stock_pages == batch - 4
    assert info.stat_local[lib.BM_STAT_VMALLOC] == stat      # MEMCG_VMALLOC only on 6.18
    assert lib.bm_ram_used_pages(s) == used + 4
    assert objcg_of(s, v)[1] == a
    assert lib.bm_kfree(s, 0, v) == -errno.EINVAL            # wrong free function
    assert lib.bm_vfree(s, 0, v + PAGE) == -errno.EINVAL     # not the area start
    assert lib.bm_vfree(s, 0, v) == 0
    info = memcg_info(s, a)
    assert info.stock_pages == batch and info.stat_local[lib.BM_STAT_VMALLOC] == 0
    assert lib.bm_ram_used_pages(s) == used
    assert lib.bm_vfree(s, 0, v) == -errno.EINVAL            # double vfree
    assert lib.bm_drain_all_stock(s, 0) == 0
    assert usage(s, a) == 0


def test_vmalloc_failing_part_way_leaks_nothing():
    s = make_system("5.11")
    a = cgroup_with_task(s)
    assert lib.bm_memcg_write(s, a, lib.BM_WRITE_MAX, 2) == 0
    used = lib.bm_ram_used_pages(s)
    addr = ffi.new("uint64_t *")
    # page 1: batch 32 > max, retried with 1 page; page 2 likewise; page 3
    # fails (__GFP_NORETRY: no OOM) -> pages 1-2 are freed and uncharged
    assert lib.bm_vmalloc(s, 0, 5 * PAGE, GFP_KERNEL_ACCOUNT | NORETRY, addr) == -errno.ENOMEM
    assert lib.bm_ram_used_pages(s) == used
    # the two uncharges went to the page stock (kmem_uncharge_via_stock)
    assert memcg_info(s, a).stock_pages == 2
    assert lib.bm_drain_all_stock(s, 0) == 0
    assert usage(s, a) == 0 and usage(s, 0) == 0


def test_kvmalloc_chooses_kmalloc_or_vmalloc_like_mm_util_511():
    s = make_system("5.11")
    a = cgroup_with_task(s)
    addr = ffi.new("uint64_t *")
    # size <= PAGE_SIZE: kmalloc only -> a direct-map address
    assert lib.bm_kvmalloc(s, 0, PAGE, GFP_KERNEL_ACCOUNT, addr) == 0
    assert addr[0] >= DIRECT_MAP and addr[0] < 0xFFFFC90000000000
    assert lib.bm_kvfree(s, 0, addr[0]) == 0
    # > KMALLOC_MAX_SIZE (4 MiB): the kmalloc attempt fails, vmalloc takes it
    assert lib.bm_kvmalloc(s, 0, (4 << 20) + 1, GFP_KERNEL_ACCOUNT, addr) == 0
    assert addr[0] >= 0xFFFFC90000000000
    # before it: kmalloc-4096 took 4104 bytes = 2 pages (32 charged) and its
    # free gave 4088 + 4104 = 8192 bytes back -> 2 pages to the stock: 32 stocked.
    # 1025 single pages: 32 from the stock, then 993 more in batches of 32
    # (31 batches = 992, the 32nd batch leaves 31 stocked): usage 32 + 32*32
    info = memcg_info(s, a)
    assert info.memory.usage == 1056 and info.stock_pages == 31
    assert lib.bm_kvfree(s, 0, addr[0]) == 0
    # 1025 refills of 1 page: 31 -> 33 drains, then 31 more cycles of 33
    # (1023 = 31 * 33): the stock ends empty and every page is uncharged
    assert usage(s, a) == 0 and memcg_info(s, a).stock_pages == 0
    # not GFP_KERNEL-compatible (GFP_ATOMIC): kmalloc only, no vmalloc fallback
    assert lib.bm_kvmalloc(s, 0, (4 << 20) + 1, GFP_ATOMIC_511 | lib.BM_GFP_ACCOUNT, addr) == -errno.ENOMEM
    assert lib.bm_drain_all_stock(s, 0) == 0
    assert usage(s, a) == 0


def test_kvmalloc_falls_back_to_vmalloc_when_the_memcg_refuses_contiguous_pages():
    s = make_system("5.11")
    a = cgroup_with_task(s)
    addr = ffi.new("uint64_t *")
    # memory.max 6 pages: kvmalloc(5 pages) tries a large kmalloc of order 3
    # (8 pages) with __GFP_NORETRY -> over max, fails without OOM; vmalloc then
    # charges 5 single pages (each batch 32 > room -> exact 1-page charges)
    assert lib.bm_memcg_write(s, a, lib.BM_WRITE_MAX, 6) == 0
    assert lib.bm_kvmalloc(s, 0, 5 * PAGE, GFP_KERNEL_ACCOUNT, addr) == 0
    assert addr[0] >= 0xFFFFC90000000000
    assert usage(s, a) == 5 and memcg_info(s, a).stock_pages == 0
    assert lib.bm_kvfree(s, 0, addr[0]) == 0


# ---------------------------------------------------------------- percpu


@pytest.mark.parametrize("profile,charged", [("5.11", 256), ("6.18", 384)])
def test_percpu_64_bytes_on_4_cpus(profile, charged):
    s = make_system(profile)
    a = cgroup_with_task(s)
    objcg = memcg_info(s, a).objcg
    p = alloc_percpu(s, 64)
    # v5.11: ALIGN(64, 4) * 4 cpus = 256; 2022+: + 64/4 * 8 = 128 -> 384
    info = memcg_info(s, a)
    assert info.stat_local[lib.BM_STAT_PERCPU_B] == charged
    assert stock(s, 0).nr_bytes == PAGE - charged
    assert objcg_of(s, p) == (objcg, a)
    assert lib.bm_free_percpu(s, 0, p + 4) == -errno.EINVAL
    assert lib.bm_kfree(s, 0, p) == -errno.EINVAL
    assert lib.bm_free_percpu(s, 0, p) == 0
    assert memcg_info(s, a).stat_local[lib.BM_STAT_PERCPU_B] == 0
    assert stock(s, 0).nr_bytes == PAGE          # (PAGE - charged) + charged, not above a page
    assert lib.bm_free_percpu(s, 0, p) == -errno.EINVAL


def test_percpu_argument_checks_of_pcpu_alloc():
    s = make_system("5.11")
    cgroup_with_task(s)
    addr = ffi.new("uint64_t *")
    for size, align in ((0, 8), ((32 << 10) + 1, 8), (8, 12), (8, 2 * PAGE)):
        assert lib.bm_alloc_percpu(s, 0, size, align, GFP_KERNEL_ACCOUNT, addr) == -errno.EINVAL
    # align below 4 is raised to PCPU_MIN_ALLOC_SIZE, not refused
    assert lib.bm_alloc_percpu(s, 0, 5, 0, GFP_KERNEL_ACCOUNT, addr) == 0
    assert addr[0] % 4 == 0
    # ALIGN(5, 4) = 8 bytes * 4 cpus
    assert stock(s, 0).nr_bytes == PAGE - 32


# ---------------------------------------------------------------- contexts


def test_interrupt_context_charges_only_the_active_memcg():
    s = make_system("5.11")
    a = cgroup_with_task(s)
    b = lib.bm_memcg_create(s, 0, 0)
    assert lib.bm_set_interrupt(s, 0, 1) == 0
    x = kmalloc(s, 100)
    # in_interrupt() without int_active_memcg: memcg_kmem_bypass() -> no charge
    assert usage(s, a) == 0 and objcg_of(s, x) == (-1, -1)
    old = ffi.new("int32_t *")
    assert lib.bm_set_active_memcg(s, 0, b, old) == 0
    y = kmalloc(s, 100)
    assert usage(s, b) == 32 and usage(s, a) == 0
    assert objcg_of(s, y) == (memcg_info(s, b).objcg, b)
    # the free in task context uncharges b, the recorded objcg
    assert lib.bm_set_active_memcg(s, 0, old[0], old) == 0
    assert lib.bm_set_interrupt(s, 0, 0) == 0
    assert lib.bm_kfree(s, 0, y) == 0
    assert lib.bm_kfree(s, 0, x) == 0
    assert lib.bm_drain_all_stock(s, 0) == 0
    assert usage(s, a) == 0 and usage(s, b) == 0


def test_root_task_and_kthread_allocations_are_not_charged_511():
    s = make_system("5.11")
    assert lib.bm_set_task(s, 0, 0, -1) == 0            # task in the root cgroup
    x = kmalloc(s, 100)
    big = kmalloc(s, 3 * PAGE)
    assert usage(s, 0) == 0
    assert page_info(s, pfn_of(big)).memcg_data == 0    # root never sets KMEM
    assert lib.bm_kfree(s, 0, x) == 0 and lib.bm_kfree(s, 0, big) == 0


def test_objects_of_an_offlined_cgroup_uncharge_its_parent():
    s = make_system("5.11")
    p = lib.bm_memcg_create(s, 0, 0)
    a = cgroup_with_task(s, parent=p)
    objcg = memcg_info(s, a).objcg
    x = kmalloc(s, 100)
    assert lib.bm_drain_all_stock(s, 0) == 0
    # 1 page stays charged: 136 for x + 3960 parked
    assert usage(s, a) == 1 and usage(s, p) == 1 and usage(s, 0) == 1
    assert lib.bm_memcg_get(s, a) == 0                  # keep a readable while dying
    assert lib.bm_set_task(s, 0, p, -1) == 0
    assert lib.bm_memcg_offline(s, a) == 0
    assert memcg_info(s, a).state == lib.BM_MEMCG_DYING
    # memcg_reparent_objcgs: the objcg now points at p
    assert objcg_of(s, x) == (objcg, p)
    assert lib.bm_kfree(s, 3, x) == 0
    # cpu3 caches the objcg, adopts 3960 parked: 4096, not above a page
    assert stock(s, 3).nr_bytes == 4096
    assert lib.bm_drain_all_stock(s, 0) == 0
    # the page goes back through objcg->memcg = p: p and root drop to 0, the
    # dying a keeps its residual page
    assert usage(s, p) == 0 and usage(s, 0) == 0
    assert usage(s, a) == 1
    assert lib.bm_system_nr_dying(s) == 1
    assert lib.bm_memcg_put(s, a) == 0
    assert lib.bm_system_nr_dying(s) == 0


def test_a_kmem_page_pins_the_dying_memcg_511():
    s = make_system("5.11")
    a = cgroup_with_task(s)
    big = kmalloc(s, 3 * PAGE)                          # order 2, memcg | KMEM pins a
    assert lib.bm_set_task(s, 0, 0, -1) == 0
    assert lib.bm_memcg_offline(s, a) == 0
    assert lib.bm_system_nr_dying(s) == 1
    assert page_info(s, pfn_of(big)).memcg == a
    assert lib.bm_kfree(s, 0, big) == 0                 # uncharges a itself (v5.11)
    assert lib.bm_drain_all_stock(s, 0) == 0
    assert usage(s, 0) == 0
    assert lib.bm_system_nr_dying(s) == 0


# ---------------------------------------------------------------- failures and bad input


def test_failed_slab_charge_leaves_every_counter_as_it_was():
    s = make_system("5.11")
    a = cgroup_with_task(s)
    assert lib.bm_memcg_write(s, a, lib.BM_WRITE_MAX, 0) == 0
    objcg = memcg_info(s, a).objcg
    refs = objcg_info(s, objcg).refcnt
    used = lib.bm_ram_used_pages(s)
    assert kmalloc_err(s, 100, GFP_KERNEL_ACCOUNT | NORETRY) == -errno.ENOMEM
    # pre-charge failed before any slab page was taken; objcg ref returned
    assert lib.bm_ram_used_pages(s) == used
    assert objcg_info(s, objcg).refcnt == refs
    assert usage(s, a) == 0 and memcg_info(s, a).stat_local[lib.BM_STAT_SLAB_UNRECLAIMABLE_B] == 0
    assert kmalloc_err(s, 3 * PAGE, GFP_KERNEL_ACCOUNT | NORETRY) == -errno.ENOMEM
    assert lib.bm_ram_used_pages(s) == used


def test_bad_input_is_refused_without_side_effects():
    s = make_system("5.11")
    a = cgroup_with_task(s)
    addr = ffi.new("uint64_t *")
    # kmalloc(0) is ZERO_SIZE_PTR and charges nothing; kfree of it/NULL is a no-op
    assert lib.bm_kmalloc(s, 0, 0, GFP_KERNEL_ACCOUNT, addr) == 0 and addr[0] == 16
    assert usage(s, a) == 0
    assert lib.bm_kfree(s, 0, 16) == 0 and lib.bm_kfree(s, 0, 0) == 0
    # above KMALLOC_MAX_SIZE = 4096 << 10: the page allocator returns NULL
    assert lib.bm_kmalloc(s, 0, (4 << 20) + 1, GFP_KERNEL_ACCOUNT, addr) == -errno.ENOMEM
    assert lib.bm_kmalloc(s, 0, 2**64 - 1, GFP_KERNEL_ACCOUNT, addr) == -errno.ENOMEM
    assert lib.bm_kmalloc(s, 0, 8, 0x800000, addr) == -errno.EINVAL        # unknown gfp bit
    assert lib.bm_kmalloc(s, 4, 8, GFP_KERNEL, addr) == -errno.EINVAL      # no cpu 4
    assert lib.bm_kmalloc(s, 0, 8, GFP_KERNEL, ffi.NULL) == -errno.EINVAL
    x = kmalloc(s, 100)
    charged = usage(s, a), stock(s, 0).nr_bytes
    assert lib.bm_kfree(s, 0, x + 8) == -errno.EINVAL                     # interior
    assert lib.bm_vfree(s, 0, x) == -errno.EINVAL                         # wrong free
    assert lib.bm_free_percpu(s, 0, x) == -errno.EINVAL
    assert lib.bm_free_pages(s, 0, pfn_of(x), 0) == -errno.EINVAL         # slab page
    assert lib.bm_kfree(s, 0, 0xFFFF000000000000) == -errno.EINVAL        # unknown
    assert lib.bm_kfree(s, 0, DIRECT_MAP + (1 << 16) * PAGE) == -errno.EINVAL  # past RAM
    assert (usage(s, a), stock(s, 0).nr_bytes) == charged
    assert lib.bm_kfree(s, 0, x) == 0
    assert lib.bm_kfree(s, 0, x) == -errno.EINVAL                         # double free
    assert stock(s, 0).nr_bytes == charged[1] + 136
    size = ffi.new("uint64_t *")
    assert lib.bm_ksize(s, x, size) == -errno.EINVAL                      # freed
    # page allocator
    pfn = ffi.new("uint64_t *")
    assert lib.bm_alloc_pages(s, 0, -1, GFP_KERNEL, pfn) == -errno.EINVAL
    assert lib.bm_alloc_pages(s, 0, 11, GFP_KERNEL, pfn) == -errno.ENOMEM   # >= MAX_ORDER
    assert lib.bm_alloc_pages(s, 0, 2, GFP_KERNEL_ACCOUNT, pfn) == 0
    assert page_info(s, pfn[0]).memcg_data & 3 == lib.BM_MEMCG_DATA_KMEM
    assert lib.bm_free_pages(s, 0, pfn[0], 1) == -errno.EINVAL            # wrong order
    assert lib.bm_free_pages(s, 0, pfn[0] + 1, 0) == -errno.EINVAL        # tail
    assert lib.bm_kfree(s, 0, DIRECT_MAP + pfn[0] * PAGE) == -errno.EINVAL  # not kmalloc'ed
    assert lib.bm_free_pages(s, 0, pfn[0], 2) == 0
    assert lib.bm_free_pages(s, 0, pfn[0], 2) == -errno.EINVAL            # free page
    out = ffi.new("struct bm_page_info *")
    assert lib.bm_page_info(s, 1 << 16, out) == -errno.EINVAL
    assert lib.bm_vmalloc(s, 0, 0, GFP_KERNEL, addr) == -errno.ENOMEM      # vmalloc(0) is NULL


def test_out_of_frames_is_enomem_and_frees_coalesce():
    s = make_system("5.11", ram_pages=2048 + 16)
    cgroup_with_task(s)
    pfn = ffi.new("uint64_t *")
    got = []
    # pfn 0 is reserved, so the first max-order block [0, 1024) yields 63 order-4
    # blocks (its [0, 16) block is split around pfn 0 into orders 0..3), the second
    # block [1024, 2048) yields 64, and the 16-frame tail one more: 128 in all
    while lib.bm_alloc_pages(s, 0, 4, GFP_KERNEL_ACCOUNT, pfn) == 0:
        got.append(pfn[0])
    assert len(got) == 63 + 64 + 1
    assert 0 not in got
    assert lib.bm_ram_used_pages(s) == 128 * 16
    for p in got:
        assert lib.bm_free_pages(s, 0, p, 4) == 0
    assert lib.bm_ram_used_pages(s) == 0
    # the block [1024, 2048) coalesced back: an order-10 allocation fits again
    assert lib.bm_alloc_pages(s, 0, 10, GFP_KERNEL, pfn) == 0
    assert pfn[0] == 1024


def test_pfn_zero_is_reserved():
    s = make_system("6.18")
    # address / PAGE_SIZE is the pfn, and no allocation lives in pfn 0
    assert lib.bm_free_pages(s, 0, 0, 0) == -errno.EINVAL
    info = ffi.new("struct bm_page_info *")
    assert lib.bm_page_info(s, 0, info) == 0 and info.kind == lib.BM_PAGE_KMEM
    assert lib.bm_kfree(s, 0, 100) == -errno.EINVAL


# ---------------------------------------------------------------- bulk


def _op(op, arg=0, gfp=0, cpu=0, handle=0):
    return (op, cpu, gfp, handle, arg)


def _ops_array(ops):
    arr = ffi.new("struct bm_op[]", len(ops))
    for i, (op, cpu, gfp, handle, arg) in enumerate(ops):
        arr[i].op = op
        arr[i].cpu = cpu
        arr[i].gfp = gfp
        arr[i].handle = handle
        arr[i].arg = arg
    return arr


def test_replay_results_equal_single_calls():
    G = GFP_KERNEL_ACCOUNT
    ops = [
        _op(lib.BM_OP_KMALLOC, 100, G),
        _op(lib.BM_OP_KMALLOC, 9000, G, cpu=1),
        _op(lib.BM_OP_VMALLOC, 3 * PAGE + 1, G),
        _op(lib.BM_OP_ALLOC_PERCPU, 64, G),
        _op(lib.BM_OP_ALLOC_PAGES, 1, G),
        _op(lib.BM_OP_KMALLOC, 0, G),
        _op(lib.BM_OP_KFREE_RESULT, 0),
        _op(lib.BM_OP_FREE_RESULT, 2),
        _op(lib.BM_OP_FREE_RESULT, 3),
        _op(lib.BM_OP_KFREE, 0xFFFF888000000008),       # bad address
        _op(lib.BM_OP_FREE_RESULT, 4),
        _op(lib.BM_OP_KFREE_RESULT, 2),                 # not a kmalloc result
        _op(lib.BM_OP_KMALLOC, 10, G, cpu=9),           # no such cpu
        _op(lib.BM_OP_FREE_RESULT, 99),                 # not an earlier op
    ]
    s1 = make_system("5.11")
    a1 = cgroup_with_task(s1, cpus=(0, 1))
    res = ffi.new("int64_t[]", len(ops))
    assert lib.bm_replay(s1, _ops_array(ops), len(ops), res) == 4

    s2 = make_system("5.11")
    a2 = cgroup_with_task(s2, cpus=(0, 1))
    out = ffi.new("uint64_t *")
    single = []
    assert lib.bm_kmalloc(s2, 0, 100, G, out) == 0; single.append(out[0])
    assert lib.bm_kmalloc(s2, 1, 9000, G, out) == 0; single.append(out[0])
    assert lib.bm_vmalloc(s2, 0, 3 * PAGE + 1, G, out) == 0; single.append(out[0])
    assert lib.bm_alloc_percpu(s2, 0, 64, 8, G, out) == 0; single.append(out[0])
    assert lib.bm_alloc_pages(s2, 0, 1, G, out) == 0; single.append(out[0])
    assert lib.bm_kmalloc(s2, 0, 0, G, out) == 0; single.append(out[0])
    single.append(lib.bm_kfree(s2, 0, single[0]))
    single.append(lib.bm_vfree(s2, 0, single[2]))
    single.append(lib.bm_free_percpu(s2, 0, single[3]))
    single.append(lib.bm_kfree(s2, 0, 0xFFFF888000000008))
    single.append(lib.bm_free_pages(s2, 0, single[4], 1))
    single += [-errno.EINVAL] * 3

    as_u64 = [r & (2**64 - 1) for r in res]
    assert as_u64 == [r & (2**64 - 1) for r in single]
    for m1, m2 in ((a1, a2), (0, 0)):
        i1, i2 = memcg_info(s1, m1), memcg_info(s2, m2)
        assert i1.memory.usage == i2.memory.usage and i1.stock_pages == i2.stock_pages
        assert list(i1.stat_local) == list(i2.stat_local)
    for cpu in range(4):
        assert stock(s1, cpu).nr_bytes == stock(s2, cpu).nr_bytes
    assert lib.bm_ram_used_pages(s1) == lib.bm_ram_used_pages(s2)


def test_replay_argument_checks():
    s = make_system("5.11")
    res = ffi.new("int64_t[]", 1)
    assert lib.bm_replay(s, ffi.NULL, -1, res) == -errno.EINVAL
    assert lib.bm_replay(s, ffi.NULL, 1, res) == -errno.EINVAL
    assert lib.bm_replay(s, ffi.NULL, 0, ffi.NULL) == 0
    bad = _ops_array([_op(200)])
    assert lib.bm_replay(s, bad, 1, res) == 1 and res[0] == -errno.EINVAL
    padded = _ops_array([_op(lib.BM_OP_KMALLOC, 8)])
    padded[0].pad1 = 1
    assert lib.bm_replay(s, padded, 1, res) == 1 and res[0] == -errno.EINVAL


def test_replay_free_pages_refuses_what_bm_free_pages_refuses():
    # BM_OP_FREE_PAGES takes what bm_free_pages takes (one check serves both): the
    # reserved pfn 0 and a block freed with the wrong order are refused, and the frame
    # count is unchanged (it once freed pfn 0 and counted -1 frames in use)
    s = make_system("5.11")
    pfn = ffi.new("uint64_t *")
    assert lib.bm_alloc_pages(s, 0, 1, 0, pfn) == 0
    used = lib.bm_ram_used_pages(s)
    assert used == 2                                   # one order-1 block
    ops = _ops_array([_op(lib.BM_OP_FREE_PAGES, 0, handle=0),
                      _op(lib.BM_OP_FREE_PAGES, pfn[0], handle=0),
                      _op(lib.BM_OP_FREE_PAGES, pfn[0], handle=1)])
    res = ffi.new("int64_t[]", 3)
    assert lib.bm_replay(s, ops, 3, res) == 2
    assert list(res) == [-errno.EINVAL, -errno.EINVAL, 0]
    assert lib.bm_ram_used_pages(s) == 0
    assert lib.bm_free_pages(s, 0, 0, 0) == -errno.EINVAL


def test_kmalloc_bulk_and_kfree_bulk_match_single_calls():
    sizes = [8, 100, 100, 0, 5000, 9000, 1 << 30, 192]
    s1 = make_system("5.11")
    a1 = cgroup_with_task(s1)
    n = len(sizes)
    sz = ffi.new("uint64_t[]", sizes)
    addrs = ffi.new("uint64_t[]", n)
    # 1 << 30 is above KMALLOC_MAX_SIZE: that one fails with NULL
    assert lib.bm_kmalloc_bulk(s1, 0, sz, n, GFP_KERNEL_ACCOUNT, addrs) == 1
    assert addrs[6] == 0 and addrs[3] == 16

    s2 = make_system("5.11")
    a2 = cgroup_with_task(s2)
    single = []
    for size in sizes:
        out = ffi.new("uint64_t *")
        single.append(out[0] if lib.bm_kmalloc(s2, 0, size, GFP_KERNEL_ACCOUNT, out) == 0 else 0)
    assert list(addrs) == single
    assert usage(s1, a1) == usage(s2, a2) and stock(s1, 0).nr_bytes == stock(s2, 0).nr_bytes

    res = ffi.new("int64_t[]", n + 1)
    frees = ffi.new("uint64_t[]", list(addrs) + [addrs[0]])     # the last is a double free
    assert lib.bm_kfree_bulk(s1, 0, frees, n + 1, res) == 1
    assert list(res) == [0] * n + [-errno.EINVAL]
    for x in single:
        assert lib.bm_kfree(s2, 0, x) == 0
    assert stock(s1, 0).nr_bytes == stock(s2, 0).nr_bytes
    assert memcg_info(s1, a1).stat_local[lib.BM_STAT_SLAB_UNRECLAIMABLE_B] == 0
    assert lib.bm_kmalloc_bulk(s1, 0, sz, -1, 0, addrs) == -errno.EINVAL
    assert lib.bm_kfree_bulk(s1, 0, ffi.NULL, 1, res) == -errno.EINVAL


# ---------------------------------------------------------------- size classes and page sizes


def test_kmalloc_size_classes_follow_kmalloc_index():
    s = make_system("5.11")
    cgroup_with_task(s)
    size = ffi.new("uint64_t *")
    # kmalloc_index(): 1..8 -> 8, 65..96 -> 96, 129..192 -> 192, else the next power of two
    for n, bucket in ((1, 8), (8, 8), (9, 16), (64, 64), (65, 96), (96, 96), (97, 128),
                      (129, 192), (193, 256), (4097, 8192), (8192, 8192)):
        x = kmalloc(s, n)
        assert lib.bm_ksize(s, x, size) == 0 and size[0] == bucket, n
        assert lib.bm_kfree(s, 0, x) == 0


def test_16k_pages_extend_the_caches_to_two_pages():
    s = make_system("5.11", page_size=16384)
    a = cgroup_with_task(s)
    x = kmalloc(s, 20000)
    # KMALLOC_SHIFT_HIGH = 14 + 1: kmalloc-32768 is a slab cache.  Charge
    # 32768 + 8 = 32776 bytes = 3 pages (2 whole + 8 bytes): batch 32, 29
    # stocked, 16384 - 8 = 16376 bytes into the object stock
    size = ffi.new("uint64_t *")
    assert lib.bm_ksize(s, x, size) == 0 and size[0] == 32768
    assert usage(s, a) == 32 and memcg_info(s, a).stock_pages == 29
    assert stock(s, 0).nr_bytes == 16376
    pi = page_info(s, (x - DIRECT_MAP) // 16384)
    # 4 objects per order-3 slab < min_objects 16: capped at PAGE_ALLOC_COSTLY_ORDER
    assert pi.kind == lib.BM_PAGE_SLAB and pi.order == 3
    big = kmalloc(s, 32769)
    # above 2 pages: large kmalloc, get_order(32769) = 2 with 16 KiB pages
    assert page_info(s, (big - DIRECT_MAP) // 16384).order == 2
    assert memcg_info(s, a).stock_pages == 25


def test_config_check_bounds_ram_pages_by_the_frame_index():
    assert lib.bm_config_check(make_config(ram_pages=2**32)) == -errno.EINVAL
    assert lib.bm_config_check(make_config(page_size=65536, ram_pages=2**30 + 1)) == -errno.EINVAL
    assert lib.bm_config_check(make_config(page_size=65536, ram_pages=2**30)) == 0


# charge-path refills (allow_uncharge=false) can leave up to PAGE_SIZE plus one
# charge in the 6.18 object stock (kmalloc-8k charges 8200 bytes; this seed
# reaches 8384), which bm_system_check allows
@pytest.mark.parametrize("profile", ["5.11", "6.18"])
def test_system_check_holds_after_mixed_churn(profile):
    import random

    rng = random.Random(1234)
    s = make_system(profile, ram_pages=1 << 14)
    a = cgroup_with_task(s, cpus=(0, 1, 2, 3))
    live = []
    alloc = {
        "k": lambda cpu: lib.bm_kmalloc(s, cpu, rng.choice([8, 100, 700, 5000, 9000, 70000]), GFP_KERNEL_ACCOUNT, out),
        "v": lambda cpu: lib.bm_vmalloc(s, cpu, rng.randrange(1, 5 * PAGE), GFP_KERNEL_ACCOUNT, out),
        "p": lambda cpu: lib.bm_alloc_percpu(s, cpu, rng.randrange(1, 300), 8, GFP_KERNEL_ACCOUNT, out),
    }
    free = {"k": lib.bm_kfree, "v": lib.bm_vfree, "p": lib.bm_free_percpu}
    out = ffi.new("uint64_t *")
    for _ in range(600):
        cpu = rng.randrange(4)
        if live and rng.random() < 0.45:
            kind, addr = live.pop(rng.randrange(len(live)))
            assert free[kind](s, cpu, addr) == 0
        else:
            kind = rng.choice("kvp")
            assert alloc[kind](cpu) == 0
            live.append((kind, out[0]))
    msg = ffi.new("char[256]")
    assert lib.bm_system_check(s, msg, 256) == 0, ffi.string(msg)
    for kind, addr in live:
        assert free[kind](s, 0, addr) == 0
    assert lib.bm_drain_all_stock(s, 0) == 0
    assert lib.bm_system_check(s, msg, 256) == 0, ffi.string(msg)
    # invariant 13: what stays charged is exactly the pages parked in the objcg
    info = memcg_info(s, a)
    parked = objcg_info(s, info.objcg).nr_charged_bytes
    assert parked % PAGE == 0
    assert info.memory.usage * PAGE == parked
    assert info.stat_local[lib.BM_STAT_SLAB_UNRECLAIMABLE_B] == 0
    assert info.stat_local[lib.BM_STAT_PERCPU_B] == 0
    assert info.stat_local[lib.BM_STAT_VMALLOC] == 0
