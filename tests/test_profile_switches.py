"""One test per profile switch added or corrected for the fleet profiles, each comparing
the releases on either side of the change.  Every expected value is derived by hand in
the comment beside it from the kernel's code of those releases (the function the switch
names in pybpfmem/profiles/switches.py); the C core's charge-level switches are also
covered at the cffi level in tests/test_core_counters.py.

Shared setup unless said otherwise: 2 possible cpus, 4 KiB pages, cgroup v2, a task in /a.
"""

from __future__ import annotations

import dataclasses
import errno
import struct

import pytest

import pybpfmem
from pybpfmem import constants as K
from pybpfmem import reference
from pybpfmem.bpf import uapi as U
from pybpfmem.profiles import get_profile

from bpfutil import errno_of, k, setup

GFP_KERNEL_ACCOUNT = K.GFP_KERNEL | K.__GFP_ACCOUNT
ENOTSUPP = U.ENOTSUPP


def _map(s, t, fd):
    return s.bpf_map_by_id(int(t.fdinfo(fd)["map_id"]))


# --------------------------------------------------------------------------- memory layer

@pytest.mark.parametrize("profile, task_bytes, irq, page_stock, parked_pages, left", [
    # kmalloc(100) -> kmalloc-128, obj_full_size 128 + 8 = 136 bytes.  The task's object
    # charges one page of a batch (5.11/5.15: 32, 6.1: 64): 31/63 stay in the page stock,
    # 4096 - 136 = 3960 bytes in the object stock.  The interrupt on the same cpu:
    # 5.11/6.1: the same object stock pays (3960 - 136 = 3824);
    # 5.15 (get_obj_stock(): irq_obj): its own stock is empty -> one more page from the
    #       page stock (31 -> 30) and irq_obj keeps 3960.
    # drain_all_stock(): the page stock goes back; whole pages of the object stocks too, the
    # remainders (< 1 page each) are parked: 5.11/6.1 one page still charged, 5.15 two.
    # The frees: the task's refill_obj_stock() adopts everything parked (5.11/6.1: 3824 +
    # 136 = 3960; the interrupt's free then makes 4096, a whole page at the drain: 0 left).
    # 5.15: the task stock adopts 7920 + 136 = 8056, splits one page off and keeps 3960;
    # irq_obj starts again from 136; the drain parks 3960 + 136 = 4096: one page stays
    # charged to the objcg until it is released.
    # The task's kernel stack (THREAD_SIZE, 4 pages, memcg_charge_kernel_stack() at spawn on
    # cpu 0) came from that batch first and stays charged while the task lives: 4 pages
    # fewer in the page stock, 4 more in /a's usage throughout.
    ("5.11", 3824, (-1, 0), 31 - 4, 1 + 4, 0 + 4),
    ("5.15", 3960, (True, 3960), 30 - 4, 2 + 4, 1 + 4),
    ("6.1", 3824, (-1, 0), 63 - 4, 1 + 4, 0 + 4),
])
def test_task_and_irq_object_stocks(profile, task_bytes, irq, page_stock, parked_pages, left):
    s = pybpfmem.System(nr_cpus=2, profile=profile, oom_kill=False)
    a = s.root.mkdir("a")
    t = s.spawn(cgroup=a)
    with t.running(0):
        x = s.kmalloc(100, GFP_KERNEL_ACCOUNT)
    with s.in_interrupt(0), s.active_memcg(a):
        y = s.kmalloc(100, s.gfp.GFP_ATOMIC | K.__GFP_ACCOUNT)
    st = s.stock_info(0)
    objcg = st["cached_objcg"]
    assert objcg >= 0 and st["nr_bytes"] == task_bytes
    assert st["nr_pages"][0] == page_stock
    want_irq_objcg = objcg if irq[0] is True else irq[0]
    assert (st["irq_cached_objcg"], st["irq_nr_bytes"]) == (want_irq_objcg, irq[1])
    s.drain_all_stock()
    assert a.usage_pages == parked_pages
    with t.running(0):
        s.kfree(x)
    with s.in_interrupt(0):
        s.kfree(y)
    s.drain_all_stock()
    assert a.usage_pages == left
    s.check()


def _release_scenario(profile, mod=pybpfmem):
    """p/c; an object from each cpu, each freed on the other cpu, then c removed.

    kmalloc(100) on cpu 0 -> 136 bytes (object stock 0: 4096 - 136 = 3960), kmalloc(200)
    on cpu 1 -> kmalloc-256, 264 bytes (object stock 1: 4096 - 264 = 3832).  Free the first
    on cpu 1 (stock 1: 3832 + 136 = 3968) and the second on cpu 0 (stock 0: 3960 + 264 =
    4224 > PAGE_SIZE: the free path splits one page off, 128 bytes stay).  rmdir c
    reparents the objcg to p (the tasks exit first); the two object stocks hold 128 + 3968 =
    4096 bytes, one page still charged.

    Beside the objects: c = p.mkdir() charged c's mem_cgroup_alloc() structures to p (cpu 0,
    through p's own objcg; tests/test_cgroup_cost.py), and each task's kernel stack to c
    (back in c's page stock at exit, drained by the rmdir).  The objcg's release frees c,
    whose structures go back through p's objcg on cpu 0 (the model's kworker): all the
    bytes p's objcg was charged for them, whole pages, now in cpu 0's stocks."""
    s = mod.System(nr_cpus=2, profile=profile, oom_kill=False)
    p = s.root.mkdir("p")
    c = p.mkdir("c")
    t0, t1 = s.spawn(cgroup=c), s.spawn(cgroup=c)
    with t0.running(0):
        x = s.kmalloc(100, GFP_KERNEL_ACCOUNT)
    with t1.running(1):
        y = s.kmalloc(200, GFP_KERNEL_ACCOUNT)
    with t1.running(1):
        s.kfree(x)
    with t0.running(0):
        s.kfree(y)
    t0.exit()
    t1.exit()
    c.rmdir()
    return s, p, c


@pytest.mark.parametrize("impl", ["core", "reference"])
@pytest.mark.parametrize("profile, ok, max_events, oom_events", [("5.15", False, 18, 1),
                                                                  ("6.1", True, 2, 0)])
def test_kvmalloc_any_gfp(impl, profile, ok, max_events, oom_events):
    # kvmalloc(8192, GFP_NOFS | __GFP_ACCOUNT) in c (memory.max 2 pages), from an interrupt
    # with c active.  kmalloc-cg-8k would charge 8192 + 8 bytes: 3 pages, over the limit.
    # 5.15: GFP_NOFS is not GFP_KERNEL-compatible, so kmalloc only, with the caller's flags:
    #   try_charge_memcg() raises max, drains, then retries MAX_RECLAIM_RETRIES = 16 times
    #   (18 max events) and calls the OOM killer (1 oom, no victim here): ENOMEM.
    # 6.1 (a421ef303008): the kmalloc attempt adds __GFP_NORETRY (2 max events: the first
    #   try and the one after the stock drain), then vmalloc takes the 2 pages, which fit.
    from pybpfmem import reference
    mod = pybpfmem if impl == "core" else reference
    s = mod.System(nr_cpus=2, page_size=4096, profile=profile, cgroup="v2", oom_kill=False)
    c = s.root.mkdir("c")
    c.write("memory.max", str(2 * 4096))
    gfp = K.GFP_NOFS | K.__GFP_ACCOUNT
    with s.in_interrupt(cpu=0), s.active_memcg(c):
        if ok:
            s.kvmalloc(8192, gfp)
        else:
            with pytest.raises(OSError) as ei:
                s.kvmalloc(8192, gfp)
            assert ei.value.errno == errno.ENOMEM
    ev = c.events_local()
    assert (c.usage_pages, ev["max"], ev["oom"]) == (2 if ok else 0, max_events, oom_events)


@pytest.mark.parametrize("impl", ["core", "reference"])
def test_orig_objcg_release_6_12(impl):
    # 6.12 (one page-stock slot, memcg->orig_objcg): the rmdir's drain_all_stock(c) drains
    # the page stocks of cpus 0 and 1 (both cache c) and, one slot, their object stocks too:
    # 128 then 3968 bytes parked in nr_charged_bytes = 4096.  The stocks' references go, but
    # c's orig_objcg still holds the objcg; the drained page stocks held c's last css
    # references, so c is freed, and __mem_cgroup_free() drops orig_objcg: the release has
    # no cpu (the kernel's free work) and uncharges the page from p at once.  (Before
    # v6.7 the second drain released it on cpu 1, into cpu 1's page stock:
    # test_objcg_put_after_stock_drain.)
    # c's structures (6.12, 2 cpus: 2056 + 4352 + 1032 + 1984 = 9424 bytes, 3 pages, 2864
    # bytes parked in p's objcg) come back on cpu 0 one by one into its object stock, which
    # adopts the 2864: 4920 -> 1 page split off, 824; 5176 -> 1 page, 1080; 2112; 4096 (not
    # above PAGE_SIZE, stays): cpu 0 holds p's objcg with 4096 bytes and 2 pages of p.
    from pybpfmem import reference
    s, p, c = _release_scenario("6.12", pybpfmem if impl == "core" else reference)
    assert s.dying_cgroups == 0
    if impl == "core":
        st0, st1 = s.stock_info(0), s.stock_info(1)
        assert (st1["cached"][0], st1["nr_pages"][0], st1["cached_objcg"]) == (-1, 0, -1)
        assert (st0["cached"][0], st0["nr_pages"][0], st0["nr_bytes"]) == (p.id, 2, 4096)
        assert s.objcg_memcg(st0["cached_objcg"]).path == p.path
    assert p.usage_pages == 2 + 1
    s.drain_local_stock(0)
    assert p.usage_pages == 0
    s.check()


@pytest.mark.parametrize("impl", ["core", "reference"])
@pytest.mark.parametrize("profile, events, pages", [("5.15", 17, 228), ("6.1", 34, 260), ("6.18", 34, 260)])
def test_sync_high_over_batch(impl, profile, events, pages):
    # A task in c (memory.high 0; the write drained c's stock: its 4 stack pages are left)
    # vmallocs 200 pages, each charged on its own (try_charge_memcg(), one page), in one
    # call.  Every charge that misses the stock charges a batch and adds it to the task's
    # debt; nothing is reclaimable, so each mem_cgroup_handle_over_high() runs reclaim_high()
    # 1 + MAX_RECLAIM_RETRIES = 17 times, one high event each.
    # 5.15 (batch 32): 7 charges (pages 1, 33, .., 193), debt 224, paid once at the return
    #   to user: 17 events; usage 4 + 224.
    # 6.1+ (batch 64, c9afe31ec443): charges at pages 1, 65, 129, 193; the debt passes 64 at
    #   the second and the fourth, paid at once each time: 34 events, nothing left to pay
    #   at the return; usage 4 + 256.
    mod = pybpfmem if impl == "core" else reference
    s = mod.System(nr_cpus=2, page_size=4096, profile=profile, cgroup="v2", oom_kill=False)
    c = s.root.mkdir("c")
    t = s.spawn(cgroup=c)
    c.write("memory.high", "0")
    assert c.usage_pages == 4
    with t.running(cpu=0):
        s.vmalloc(200 * 4096, GFP_KERNEL_ACCOUNT)
    assert (c.events()["high"], c.usage_pages) == (events, pages)


@pytest.mark.parametrize("impl", ["core", "reference"])
@pytest.mark.parametrize("profile, p_pages", [
    ("5.10", 0), ("5.11", 0), ("5.15", 0), ("6.1", 1), ("6.6", 1)])
def test_objcg_put_after_stock_drain(impl, profile, p_pages):
    # The rmdir's drain_all_stock(c) drains cpu 0 (128 bytes parked) then cpu 1 (3968:
    # 4096 parked); cpu 1's drop of the objcg is its last reference, so obj_cgroup_release()
    # returns one page with refill_stock(p, 1) on cpu 1.  Before v5.19 drain_obj_stock()
    # drops it before drain_local_stock() drains cpu 1's page stock, which then takes that
    # page too: p reads 0.  From v5.19 (objcg_put_after_stock_drain) the put
    # comes after the drain: the page waits in cpu 1's stock, p reads 1 until it drains.
    # (5.10/5.11: no page split on free, cpu 0's stock drained the 4224 bytes at the
    # kfree, 128 parked then; the same numbers.)  The model puts the killed objcg's
    # percpu_ref in atomic mode at once (docs/model.md); in the kernel this ordering decides
    # a drain that drops the last reference after that RCU grace period.
    from pybpfmem import reference
    # c's structures, freed with c, are back in cpu 0's stocks (see _release_scenario):
    # draining cpu 0 leaves the page of the release alone
    s, p, c = _release_scenario(profile, pybpfmem if impl == "core" else reference)
    s.drain_local_stock(0)
    assert p.usage_pages == p_pages
    s.drain_all_stock()
    assert p.usage_pages == 0


@pytest.mark.parametrize("via_stock, p_pages", [(0, 0), (1, 1)])
def test_objcg_release_switch_on_6_18(via_stock, p_pages):
    # 6.18 (multi-slot stocks): the rmdir drains the page slots of c only; the object stocks
    # cache an objcg now of p, not of c, so they stay (128 and 3968 bytes).  Draining cpu
    # 0 then cpu 1 parks 4096 bytes and releases the objcg on cpu 1: v6.16+ uncharges the
    # page from p at once; with objcg_release_via_stock (<= v6.15) it goes to cpu 1's
    # page stock, so p still shows it
    prof = get_profile("6.18")
    prof = dataclasses.replace(prof, mm=dataclasses.replace(prof.mm,
                                                             objcg_release_via_stock=via_stock))
    # c's structures (10160 bytes, 3 pages charged through p's objcg) came back on cpu 0
    # after the kmalloc there switched its object stock: the 128 bytes of c's (reparented)
    # objcg were parked in it, and cpu 0 now caches p's objcg: its 2128 parked bytes +
    # 10160 = 12288, 2 pages split off into cpu 0's page stock and 4096 bytes kept.  Draining
    # cpu 0 then returns those 3 pages; cpu 1's drain parks 3968 + 128 = 4096 and releases.
    s, p, c = _release_scenario(prof)
    assert (s.stock_info(0)["nr_bytes"], s.stock_info(1)["nr_bytes"]) == (4096, 3968)
    assert p.usage_pages == 1 + 3
    s.drain_local_stock(0)
    s.drain_local_stock(1)
    assert p.usage_pages == p_pages
    s.drain_all_stock()
    assert p.usage_pages == 0
    s.check()


@pytest.mark.parametrize("profile", ["6.1", "6.12"])
def test_memory_peak_is_writable_from_6_12(profile):
    s = pybpfmem.System(nr_cpus=2, profile=profile)
    a = s.root.mkdir("a")
    a.try_charge(1, K.GFP_KERNEL)            # one batch of 64 pages
    assert a.read("memory.peak") == f"{64 * 4096}\n"
    if get_profile(profile).memory_peak_write:
        a.write("memory.peak", "0")          # memory_peak_write(): the fd's peak restarts
        assert a.read("memory.peak") == f"{64 * 4096}\n"   # at the current usage
    else:
        with pytest.raises(OSError) as ei:   # no write handler: the open fails
            a.write("memory.peak", "0")
        assert ei.value.errno == errno.EACCES


@pytest.mark.parametrize("profile, rlimit", [("5.15", 64 << 10), ("6.1", 8 << 20)])
def test_default_memlock_rlimit(profile, rlimit):
    # MLOCK_LIMIT: 64 KiB up to v5.15, 8 MiB from v5.16 (9dcc38e2813e)
    s = pybpfmem.System(nr_cpus=2, profile=profile)
    t = s.spawn(cgroup=s.root.mkdir("a"))
    assert t.getrlimit(U.RLIMIT_MEMLOCK) == (rlimit, rlimit)


# --------------------------------------------------------------------------- map creation

@pytest.mark.parametrize("profile, err", [("5.10", errno.E2BIG), ("5.11", errno.ENOMEM),
                                          ("5.15", errno.E2BIG), ("6.8", errno.ENOMEM),
                                          ("6.12", errno.E2BIG)])
def test_percpu_value_limit(profile, err):
    # round_up(40000, 8) = 40000 > PCPU_MIN_UNIT_SIZE (32768): array_map_alloc_check() and
    # htab_map_alloc_check() say -E2BIG with 1d244784be6b (v6.12; 5.10.227, 5.15.168);
    # before, the per-cpu allocation fails (pcpu_alloc() refuses the size): -ENOMEM
    s, a, t = setup(profile)
    assert errno_of(t.bpf_map_create, U.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 40000, 1) == err
    assert errno_of(t.bpf_map_create, U.BPF_MAP_TYPE_PERCPU_HASH, 4, 40000, 1) == err


@pytest.mark.parametrize("profile, memlock", [
    # htab_map_mem_usage(): sizeof(bpf_htab) + 16 buckets * 16 + 4 * 2 cpus * 8 map_locked
    # + elem_size (48 + 8 + 8 = 64) * entries + 8 * 2 extra_elems pointers.
    # 6.12: bpf_htab 896, entries 10 + 2 extra = 12: 896 + 256 + 64 + 768 + 16 = 2000
    # 6.18: bpf_htab 832, no extra elements for an fd hash: 832 + 256 + 64 + 640 + 16 = 1808
    ("6.12", 2000), ("6.18", 1808)])
def test_hash_of_maps_extra_elems(profile, memlock):
    s, a, t = setup(profile)
    inner = t.bpf_map_create(U.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    fd = t.bpf_map_create(U.BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 10, inner_map_fd=inner)
    assert t.fdinfo(fd)["memlock"] == str(memlock)


@pytest.mark.parametrize("profile, percpu", [
    # per-cpu bytes a preallocated HASH (key 4, value 8, 10 entries) holds on 2 cpus:
    # 6.12: 8 map_locked ints (4 bytes) + the extra_elems pointer: (32 + 8) * 2 = 80;
    # 6.18 (rqspinlock, 4fa8d68aa53e): the pointer only, 16.  Both charged to root (the
    # map's objcg is saved after ->map_alloc), so memory.current does not change.
    ("6.12", 80), ("6.18", 16)])
def test_hash_map_locked_counters(profile, percpu):
    s, a, t = setup(profile)
    fd = t.bpf_map_create(U.BPF_MAP_TYPE_HASH, 4, 8, 10)
    assert _map(s, t, fd).allocated_bytes()["percpu"] == percpu


# --------------------------------------------------------------------------- element ops

@pytest.mark.parametrize("profile, supported", [("6.12", False), ("6.18", True)])
def test_stack_trace_lookup_and_delete(profile, supported):
    s, a, t = setup(profile)
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_STACK_TRACE, 4, 8 * 4, 8)
        sid = s.helper_get_stackid(_map(s, t, fd).id, struct.pack("<2Q", 1, 2))
        assert sid >= 0
        if not supported:
            assert errno_of(t.bpf_map_lookup_and_delete_elem, fd, k(sid)) == ENOTSUPP
            return
        # bpf_stackmap_extract(delete): the trace zero-padded to value_size, then gone
        assert t.bpf_map_lookup_and_delete_elem(fd, k(sid)) == struct.pack("<4Q", 1, 2, 0, 0)
        assert errno_of(t.bpf_map_lookup_elem, fd, k(sid)) == errno.ENOENT
        assert errno_of(t.bpf_map_lookup_and_delete_elem, fd, k(99)) == errno.ENOENT


def _lpm_key(addr: int, plen: int = 32) -> bytes:
    return struct.pack("<I", plen) + addr.to_bytes(4, "big")


@pytest.mark.parametrize("profile, replace_full, noexist, exist", [
    # replace_full: update the only key of a full trie (max_entries 1);
    # noexist: BPF_NOEXIST on an existing key; exist: BPF_EXIST on a missing key
    ("5.11", errno.ENOSPC, 0, 0),          # v5.x: -ENOSPC before the walk, flags ignored
    ("5.10", errno.ENOSPC, errno.EEXIST, errno.ENOENT),   # 5.10.231: flags, not in place
    ("5.15", errno.ENOSPC, errno.EEXIST, errno.ENOENT),   # 5.15.174: the same
    ("6.1", 0, errno.EEXIST, errno.ENOENT),               # 6.1.120: both
    ("6.8", errno.ENOSPC, 0, 0),           # 6.8.0: neither (6.8.y ended first)
    ("6.12", 0, errno.EEXIST, errno.ENOENT),
    ("6.18", 0, errno.EEXIST, errno.ENOENT),
])
def test_lpm_update_flags(profile, replace_full, noexist, exist):
    s, a, t = setup(profile)

    def outcome(fn, *args) -> int:
        try:
            fn(*args)
        except OSError as e:
            return e.errno
        return 0

    with t.running(cpu=0):
        full = t.bpf_map_create(U.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 1, U.BPF_F_NO_PREALLOC)
        t.bpf_map_update_elem(full, _lpm_key(0x0A000001), k(1))
        assert outcome(t.bpf_map_update_elem, full, _lpm_key(0x0A000001), k(2)) == replace_full
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 4, U.BPF_F_NO_PREALLOC)
        t.bpf_map_update_elem(fd, _lpm_key(0x0A000001), k(1))
        assert outcome(t.bpf_map_update_elem, fd, _lpm_key(0x0A000001), k(2),
                       U.BPF_NOEXIST) == noexist
        assert outcome(t.bpf_map_update_elem, fd, _lpm_key(0x0A000002), k(3),
                       U.BPF_EXIST) == exist
        # whatever the flags did, the trie holds 1 or 2 keys and counts them
        keys = 2 if exist == 0 else 1
        assert _map(s, t, fd).n_entries == keys


# --------------------------------------------------------------------------- batch ops

@pytest.mark.parametrize("profile, supported", [("5.11", False), ("5.15", True)])
def test_batch_percpu_array_and_lpm(profile, supported):
    s, a, t = setup(profile)
    with t.running(cpu=0):
        arr = t.bpf_map_create(U.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 2)
        lpm = t.bpf_map_create(U.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 4, U.BPF_F_NO_PREALLOC)
        t.bpf_map_update_elem(lpm, _lpm_key(0x0A000001), k(7))
        if not supported:
            assert errno_of(t.bpf_map_lookup_batch, arr, None, 2) == ENOTSUPP
            assert errno_of(t.bpf_map_lookup_batch, lpm, None, 4) == ENOTSUPP
            return
        # generic_map_lookup_batch(): both entries of the array (8 bytes x 2 cpus each)
        keys, values, _ = t.bpf_map_lookup_batch(arr, None, 2)
        assert keys == [k(0), k(1)] and values == [bytes(16)] * 2
        # the trie's one key, then -ENOENT with the partial count at the end of the map
        with pytest.raises(OSError) as ei:
            t.bpf_map_lookup_batch(lpm, None, 4)
        assert ei.value.errno == errno.ENOENT and ei.value.count == 1
        assert ei.value.keys == [_lpm_key(0x0A000001)] and ei.value.values == [k(7)]
        assert t.bpf_map_delete_batch(lpm, [_lpm_key(0x0A000001)]) == 1


@pytest.mark.parametrize("profile, supported", [("5.15", False), ("6.1", True)])
def test_batch_map_in_map(profile, supported):
    s, a, t = setup(profile)
    with t.running(cpu=0):
        inner = t.bpf_map_create(U.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
        inner_id = int(t.fdinfo(inner)["map_id"])
        aom = t.bpf_map_create(U.BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 2, inner_map_fd=inner)
        hom = t.bpf_map_create(U.BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 2, inner_map_fd=inner)
        if not supported:
            assert errno_of(t.bpf_map_update_batch, aom, [k(0)], [k(inner)]) == ENOTSUPP
            assert errno_of(t.bpf_map_lookup_batch, hom, None, 2) == ENOTSUPP
            return
        # 9263dddc7b6f: the values go in as map fds and come out as map ids
        assert t.bpf_map_update_batch(aom, [k(0), k(1)], [k(inner), k(inner)]) == 2
        keys, values, _ = t.bpf_map_lookup_batch(aom, None, 2)
        assert keys == [k(0), k(1)] and values == [k(inner_id)] * 2
        assert t.bpf_map_update_batch(hom, [k(5)], [k(inner)]) == 1
        with pytest.raises(OSError) as ei:          # one bucket, then the end of the map
            t.bpf_map_lookup_batch(hom, None, 2)
        assert ei.value.errno == errno.ENOENT and ei.value.count == 1
        assert ei.value.keys == [k(5)] and ei.value.values == [k(inner_id)]


# --------------------------------------------------------------------------- permissions

@pytest.mark.parametrize("profile, lookup, bad_create", [
    # an unprivileged task (no CAP_BPF) with kernel.unprivileged_bpf_disabled = 2:
    # lookup on a map fd it already holds: refused at __sys_bpf() entry for every command up
    # to v5.18, allowed from c8644cd0efe7 (v5.19); a MAP_CREATE of an unknown map type:
    # -EPERM at entry up to v6.4, -EINVAL from 1d28635abcf1 (v6.5: the attr is checked first)
    ("5.15", errno.EPERM, errno.EPERM), ("6.1", 0, errno.EPERM), ("6.6", 0, errno.EINVAL)])
def test_unprivileged_bpf_disabled_per_command(profile, lookup, bad_create):
    s, a, t = setup(profile, uid=1000, unlimited=False)   # created while the sysctl is 0
    fd = t.bpf_map_create(U.BPF_MAP_TYPE_ARRAY, 4, 8, 1)
    s.unprivileged_bpf_disabled = 2
    if lookup:
        assert errno_of(t.bpf_map_lookup_elem, fd, k(0)) == lookup
    else:
        assert t.bpf_map_lookup_elem(fd, k(0)) == bytes(8)
    assert errno_of(t.bpf_map_create, 9999, 4, 8, 1) == bad_create


@pytest.mark.parametrize("profile, rdonly_root, unpriv_writable", [
    # map_freeze(): up to v6.4 CAP_BPF decides (the fd's access does not); from
    # c4c84f6fb2c4 (v6.5) a writable fd does (CAP_BPF does not)
    ("6.1", 0, errno.EPERM), ("6.6", errno.EPERM, 0)])
def test_freeze_permission(profile, rdonly_root, unpriv_writable):
    s, a, t = setup(profile)
    ro = t.bpf_map_create(U.BPF_MAP_TYPE_ARRAY, 4, 8, 1, U.BPF_F_RDONLY)
    if rdonly_root:
        assert errno_of(t.bpf_map_freeze, ro) == rdonly_root
    else:
        t.bpf_map_freeze(ro)
    s.unprivileged_bpf_disabled = 0
    u = s.spawn(cgroup=a, uid=1000)
    fd = u.bpf_map_create(U.BPF_MAP_TYPE_ARRAY, 4, 8, 1)
    if unpriv_writable:
        assert errno_of(u.bpf_map_freeze, fd) == unpriv_writable
    else:
        u.bpf_map_freeze(fd)


# --------------------------------------------------------------------------- bpf_mem_alloc

@pytest.mark.parametrize("profile, low, high, batch, prefilled", [
    # the pcpu_ma of a no-prealloc PERCPU_HASH with value 8: c->unit_size is the value size
    # (8 <= 256): before v6.8 low 32, high 96, batch (96 - 32) / 4 * 3 = 48, prefill 4 per cpu;
    # v6.8 (0e2ba9f96f9b, 5b95e638f134): 1, 3, max((3 - 1) / 4 * 3, 1) = 1, prefill 1
    ("6.6", 32, 96, 48, 4 * 2), ("6.8", 1, 3, 1, 1 * 2)])
def test_percpu_mem_cache_watermarks(profile, low, high, batch, prefilled):
    s, a, t = setup(profile)
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 16, U.BPF_F_NO_PREALLOC)
    ma = _map(s, t, fd).pcpu_ma
    assert {(c.low, c.high, c.batch) for c in ma.caches} == {(low, high, batch)}
    assert ma.nobj == prefilled


@pytest.mark.parametrize("profile, max_events, oom_events", [
    # /a limited to one page.  HASH key 4, value 3000, 1 entry, no prealloc: the htab struct
    # (kmalloc-1k, 1032 bytes) takes the one page (a batch does not fit, one page does) and
    # the bucket (kmalloc-16, 24 bytes) its remainder.  bpf_mem_alloc_init(): elem_size
    # 48 + 8 + 3000 = 3056, unit 3064 > 256: one kmalloc-4k object (4104 bytes, 2 pages) per
    # cpu, which cannot fit.  6.1 prefills with GFP_NOWAIT: -ENOMEM at once, no event.  6.6
    # (d1a02358d48d) with GFP_KERNEL: per cpu, 1 + 1 (after the drain) + 16 retries = 18
    # MEMCG_MAX, then the memcg OOM (order 1) finds no victim: one OOM event and -ENOMEM.
    # Both create the map with empty caches.
    ("6.1", 0, 0), ("6.6", 36, 2)])
def test_mem_cache_prefill_gfp(profile, max_events, oom_events):
    s = pybpfmem.System(nr_cpus=2, profile=profile, oom_kill=False)
    a = s.root.mkdir("a")
    # the task's kernel stack (4 pages, charged at spawn: the batch does not fit, 4 pages do,
    # no event) + the one page of the test
    a.write("memory.max", str(5 * 4096))
    t = s.spawn(cgroup=a)
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_HASH, 4, 3000, 1, U.BPF_F_NO_PREALLOC)
    assert _map(s, t, fd).ma.nobj == 0
    ev = a.events()
    assert (ev["max"], ev["oom"]) == (max_events, oom_events)


@pytest.mark.parametrize("profile, nobj, waiting", [
    # 1 cpu, settle off (the RCU-deferred frees wait).  HASH key 4 value 8 no prealloc:
    # elem 64 + 8 = 72 bytes, low 32 / high 96 / batch 48, prefill 4.
    # 21 inserts: refill at the 1st (3 left -> 51) and the 21st pop (31 -> 79): 100 objects.
    # 21 deletes: the 18th makes 97 > 96: 33 wait for a grace period, 64 stay; 67 free.
    # 40 inserts: the 36th pop leaves 31: refill 48.  6.1 kmallocs 48 (148 objects, 33 still
    # waiting); 6.6 (04fabf00b4d3) takes the 33 waiting ones back first and kmallocs 15 (115).
    ("6.1", 148, 33), ("6.6", 115, 0)])
def test_mem_cache_refill_reuses_waiting_objects(profile, nobj, waiting):
    s = pybpfmem.System(nr_cpus=1, profile=profile, settle=False)
    a = s.root.mkdir("a")
    t = s.spawn(cgroup=a)
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_HASH, 4, 8, 64, U.BPF_F_NO_PREALLOC)
        ma = _map(s, t, fd).ma
        for i in range(21):
            t.bpf_map_update_elem(fd, k(i), bytes(8))
        assert ma.nobj == 100
        for i in range(21):
            t.bpf_map_delete_elem(fd, k(i))
        for i in range(40):
            t.bpf_map_update_elem(fd, k(i), bytes(8))
    assert ma.nobj == nobj
    assert sum(len(objs) for _, objs in ma._waiting) == waiting
    s.bpf_state.run_deferred()          # the grace period: both end with 115 objects
    assert ma.nobj == 115


@pytest.mark.parametrize("profile", ["5.10", "6.18"])
def test_no_common_lru_rounds_down_when_rounding_up_wraps(profile):
    # htab_map_alloc() (every release since v4.10): max_entries = roundup(attr, possible
    # cpus) in u32; if that came out smaller (it wrapped), rounddown() instead.  3 cpus:
    # 10 -> 12; 0xFFFFFFFF + 2 wraps to 1, 1 / 3 * 3 = 0 < 0xFFFFFFFF -> 0xFFFFFFFF / 3 * 3
    # = 0xFFFFFFFF (a multiple of 3 already).  No -E2BIG for the rounding itself: that huge
    # map fails on its bucket count (pow2 -> 2^32 > U32_MAX / 16), E2BIG either way.
    from pybpfmem.bpf.hashtab import percpu_lru_entries
    assert percpu_lru_entries(10, 3) == 12
    assert percpu_lru_entries(0xFFFFFFFF, 3) == 0xFFFFFFFF
    assert percpu_lru_entries(0xFFFFFFFE, 4) == 0xFFFFFFFC         # (+3 wraps to 1) -> down
    s = pybpfmem.System(nr_cpus=3, profile=profile)
    t = s.spawn(cgroup=s.root.mkdir("a"))
    t.setrlimit(U.RLIMIT_MEMLOCK, U.RLIM_INFINITY, U.RLIM_INFINITY)
    fd = t.bpf_map_create(U.BPF_MAP_TYPE_LRU_HASH, 4, 8, 10, U.BPF_F_NO_COMMON_LRU)
    assert _map(s, t, fd).max_entries == 12
    assert errno_of(t.bpf_map_create, U.BPF_MAP_TYPE_LRU_HASH, 4, 8, 0xFFFFFFFF,
                    U.BPF_F_NO_COMMON_LRU) == errno.E2BIG
