"""HASH family: creation charges, per-element charges, memlock and element semantics.

Hand derivations (x86_64, 4 KiB pages, P = 2).  elem_size = sizeof(htab_elem) 48 +
rup(key, 8) + (per-cpu ? 8 : rup(value, 8)); key 4 value 64 -> 120 (per-cpu: 64).
n_buckets = pow2(max_entries) = 1024 for 1000 -> 16384 bytes of buckets.
sizeof(struct bpf_htab): 576 in the v5.x profiles (estimate), 832 on 6.18.

Charge rules: a kmalloc <= 8 KiB charges its kmalloc bucket + 8 (objcg slot); 8 KiB <
size <= 32 KiB (bpf_map_area_alloc) is kmalloc_large, order get_order(size); larger
areas are vmalloc'ed page by page; alloc_percpu charges ALIGN(size,4) x P (+ size/4 x
8 on 6.18).  Object bytes (slab + percpu) reach memory.current as whole pages per objcg
once the stocks are drained.  On 6.18 every bpf_map_alloc_percpu() made inside
map_alloc is charged to nobody (the map's objcg is saved after map_alloc).
"""

import errno

import pytest

from pybpfmem.bpf import (BPF_EXIST, BPF_F_NO_PREALLOC, BPF_MAP_TYPE_HASH,
                          BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_PERCPU_HASH, BPF_NOEXIST,
                          ENOTSUPP, RLIM_INFINITY, RLIMIT_MEMLOCK)

from bpfutil import PAGE, current, errno_of, k, setup


def slab_b(s, cg) -> int:
    """slab_unreclaimable of cg counting the deltas its objcgs still have cached in the
    per-cpu object stocks (6.18 __account_obj_stock(): memory.stat lags by those until a
    stock flush), i.e. what the allocations so far add up to."""
    pending = 0
    for cpu in range(s.nr_cpus):
        info = s.stock_info(cpu)
        if info["cached_objcg"] >= 0 and s.objcg_memcg(info["cached_objcg"]) is cg:
            pending += info["nr_slab_unreclaimable_b"]
    return cg.stat()["slab_unreclaimable"] + pending


# HASH 4/64/1000 prealloc:
#  5.11: struct kzalloc 576 -> kmalloc-1024 + 8 = 1032; buckets 16384 -> kmalloc_large
#        16384; map_locked 8 x alloc_percpu(4) = 8 x 8 = 64; elements 120 x (1000 + 2)
#        = 120240 -> vmalloc 30 pages = 122880; extra elems alloc_percpu(8) = 16.
#        objcg bytes 1032 + 80 = 1112 -> 1 page.  Total 16384 + 122880 + 4096 = 143360
#  6.18: struct 832 from bpf_map_area_alloc -> kmalloc-1024 + 8 = 1032; buckets and
#        elements as above; map_locked and the extra elems' per-cpu pointer uncharged.
#        Total 143360, percpu 0
# HASH 4/64/1000 NO_PREALLOC:
#  5.11: 1032 + 16384 + 64 percpu -> 16384 + 1 page = 20480
#  6.18: 1032 + 16384 + bpf_mem_alloc prefill of 4 objects per cpu of unit 120 + 8 = 128
#        (kmalloc-128 + 8 = 136): 8 x 136 = 1088 -> slab 1032 + 16384 + 1088 = 18504,
#        objcg bytes 2120 -> 1 page: 20480
# PERCPU_HASH 4/64/1000 prealloc (elem_size 64, num = max_entries):
#  5.11: elements 64000 -> 16 pages; per-cpu values 1000 x 64 x 2 = 128000 + map_locked
#        64 = 128064 percpu; objcg 1032 + 128064 = 129096 -> 32 pages;
#        16384 + 65536 + 131072 = 212992
#  6.18: 16384 + 65536 + 1 page (1032) = 86016, per-cpu values uncharged
@pytest.mark.parametrize("profile,ty,flags,want,slab,pcpu", [
    ("5.11", BPF_MAP_TYPE_HASH, 0, 143360, 1032, 80),
    ("6.18", BPF_MAP_TYPE_HASH, 0, 143360, 1032 + 16384, 0),
    ("5.11", BPF_MAP_TYPE_HASH, BPF_F_NO_PREALLOC, 20480, 1032, 64),
    ("6.18", BPF_MAP_TYPE_HASH, BPF_F_NO_PREALLOC, 20480, 18504, 0),
    ("5.11", BPF_MAP_TYPE_PERCPU_HASH, 0, 212992, 1032, 128064),
    ("6.18", BPF_MAP_TYPE_PERCPU_HASH, 0, 86016, 1032 + 16384, 0),
])
def test_hash_creation_charge(profile, ty, flags, want, slab, pcpu):
    # (5.11 keeps kmalloc_large pages out of slab_unreclaimable: only v5.12+ counts them)
    s, a, t = setup(profile)
    t.bpf_map_create(ty, 4, 64, 1000, flags)
    assert current(s, a) == want
    st = a.stat()
    assert st["slab_unreclaimable"] == slab and st["percpu"] == pcpu
    assert s.bpf_maps()[0]["charged"]["percpu"] == pcpu


def test_hash_510_legacy_cost():
    # cost 1024*16 + 120*1000 + 120*2 = 136624 -> 34 pages > default 16 -> EPERM;
    # NO_PREALLOC pays the same estimate; PERCPU_HASH: 16384 + 64*1000 + 64*2*1000 =
    # 208384 -> 51 pages
    s, a, t = setup("5.10", unlimited=False)
    assert errno_of(t.bpf_map_create, BPF_MAP_TYPE_HASH, 4, 64, 1000) == errno.EPERM
    t.setrlimit(RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY)
    f1 = t.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 64, 1000, BPF_F_NO_PREALLOC)
    f2 = t.bpf_map_create(BPF_MAP_TYPE_PERCPU_HASH, 4, 64, 1000)
    assert t.fdinfo(f1)["memlock"] == str(34 * PAGE)
    assert t.fdinfo(f2)["memlock"] == str(51 * PAGE)
    assert s.bpf_state.rlimit.users[0].locked_vm == 85
    for i in range(100):           # no runtime charge in 5.10
        t.bpf_map_update_elem(f1, k(i), bytes(64))
    assert current(s, a) == 0
    assert s.bpf_state.rlimit.users[0].locked_vm == 85


def test_lru_needs_cap_bpf():
    s, a, t = setup("5.10", uid=1000, unlimited=False)
    assert errno_of(t.bpf_map_create, BPF_MAP_TYPE_LRU_HASH, 4, 8, 16) == errno.EPERM
    s2, a2, t2 = setup("6.18", uid=1000, unlimited=False)
    assert errno_of(t2.bpf_map_create, BPF_MAP_TYPE_LRU_HASH, 4, 8, 16) == errno.EPERM


def test_511_nopre_element_charges():
    # each new element: bpf_map_kmalloc_node(120, GFP_ATOMIC) -> kmalloc-128 + 8 = 136 on
    # the map's memcg; delete frees it (the kernel after an RCU grace period)
    s, a, t = setup("5.11")
    fd = t.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 64, 1000, BPF_F_NO_PREALLOC)
    base = a.stat()["slab_unreclaimable"]
    for i in range(10):
        t.bpf_map_update_elem(fd, k(i), bytes(64))
    assert a.stat()["slab_unreclaimable"] == base + 10 * 136
    # replacing an existing key allocates the new element and frees the old one
    t.bpf_map_update_elem(fd, k(3), b"x" * 64)
    assert a.stat()["slab_unreclaimable"] == base + 10 * 136
    for i in range(10):
        t.bpf_map_delete_elem(fd, k(i))
    assert a.stat()["slab_unreclaimable"] == base
    # footprint memlock does not move: rup(1000 * rup(4 + 64, 8), 4096) = 73728
    assert t.fdinfo(fd)["memlock"] == "73728"


def test_511_nopre_percpu_element_charges():
    # PERCPU_HASH: element 48 + 8 + 8 = 64 -> kmalloc-64 + 8 = 72, plus
    # bpf_map_alloc_percpu(64) -> 64 x 2 = 128 per element
    s, a, t = setup("5.11")
    fd = t.bpf_map_create(BPF_MAP_TYPE_PERCPU_HASH, 4, 64, 1000, BPF_F_NO_PREALLOC)
    st0 = a.stat()
    for i in range(5):
        t.bpf_map_update_elem(fd, k(i), bytes(128))
    st = a.stat()
    assert st["slab_unreclaimable"] - st0["slab_unreclaimable"] == 5 * 72
    assert st["percpu"] - st0["percpu"] == 5 * 128


def test_618_nopre_bpf_mem_alloc_batches():
    # Syscalls run on cpu 0.  Its cache holds the 4 prefilled objects (unit 128, low 32,
    # high 96, batch (96-32)/4*3 = 48).  Insert 1 pops one -> 3 < 32 -> refill 48 -> 51.
    # Insert j leaves 51-(j-1) objects; the next refill comes at j = 21 (31 < 32).
    s, a, t = setup("6.18")
    fd = t.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 64, 1000, BPF_F_NO_PREALLOC)
    base = slab_b(s, a)
    for i in range(20):
        t.bpf_map_update_elem(fd, k(i), bytes(64))
    assert slab_b(s, a) == base + 48 * 136
    t.bpf_map_update_elem(fd, k(20), bytes(64))
    assert slab_b(s, a) == base + 96 * 136
    # memlock counts live elements only: 17280 + 21 x (120 + 8)
    assert t.fdinfo(fd)["memlock"] == str(17280 + 21 * 128)
    # Frees go back to cpu 0's cache: 79 cached after 21 inserts; 17 deletes -> 96 (not
    # above high); the 18th -> 97 > 96 -> trimmed to (96+32)/2 = 64, 33 objects freed
    # after the RCU grace period (deferred work, settled at syscall exit)
    for i in range(17):
        t.bpf_map_delete_elem(fd, k(i))
    assert slab_b(s, a) == base + 96 * 136
    t.bpf_map_delete_elem(fd, k(17))
    assert slab_b(s, a) == base + (96 - 33) * 136
    assert t.fdinfo(fd)["memlock"] == str(17280 + 3 * 128)


def test_618_nopre_percpu_hash_element_charges():
    # element cache: unit 64 + 8 = 72 (kmalloc-96 + 8 = 104); per-cpu value cache: low 1,
    # high 3, batch 1, prefill 1 per cpu; each object = kmalloc(16) (16 + 8 = 24) +
    # alloc_percpu(64) = 64 x 2 + 16 x 8 = 256.
    # Insert 1: element refill 48 x 104 = 4992; every insert pops the per-cpu cache to
    # 0 < 1 -> refill 1 object (24 slab + 256 percpu).
    s, a, t = setup("6.18")
    fd = t.bpf_map_create(BPF_MAP_TYPE_PERCPU_HASH, 4, 64, 1000, BPF_F_NO_PREALLOC)
    st0, slab0 = a.stat(), slab_b(s, a)
    for i in range(3):
        t.bpf_map_update_elem(fd, k(i), bytes(128))
    st = a.stat()
    assert slab_b(s, a) - slab0 == 4992 + 3 * 24
    assert st["percpu"] - st0["percpu"] == 3 * 256
    # mem_usage: 17280 + (64 + 8) + (8 + 8) + 64 x 2 = 216 per element
    assert t.fdinfo(fd)["memlock"] == str(17280 + 3 * 216)


@pytest.mark.parametrize("profile", ["5.10", "5.11", "6.18"])
@pytest.mark.parametrize("flags", [0, BPF_F_NO_PREALLOC])
def test_hash_element_errnos(profile, flags):
    s, a, t = setup(profile)
    fd = t.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 8, 2, flags)
    assert errno_of(t.bpf_map_lookup_elem, fd, k(0)) == errno.ENOENT
    assert errno_of(t.bpf_map_update_elem, fd, k(0), bytes(8), BPF_EXIST) == errno.ENOENT
    assert errno_of(t.bpf_map_update_elem, fd, k(0), bytes(8), 3) == errno.EINVAL
    t.bpf_map_update_elem(fd, k(0), b"a" * 8, BPF_NOEXIST)
    assert errno_of(t.bpf_map_update_elem, fd, k(0), bytes(8), BPF_NOEXIST) == errno.EEXIST
    t.bpf_map_update_elem(fd, k(1), b"b" * 8)
    assert errno_of(t.bpf_map_update_elem, fd, k(2), bytes(8)) == errno.E2BIG   # full
    t.bpf_map_update_elem(fd, k(1), b"c" * 8, BPF_EXIST)   # replacing works when full
    assert t.bpf_map_lookup_elem(fd, k(1)) == b"c" * 8
    assert errno_of(t.bpf_map_delete_elem, fd, k(5)) == errno.ENOENT
    t.bpf_map_delete_elem(fd, k(0))
    assert errno_of(t.bpf_map_lookup_elem, fd, k(0)) == errno.ENOENT
    # lookup_and_delete on a hash: ENOTSUPP before 5.14, works on 6.18
    if profile == "6.18":
        assert t.bpf_map_lookup_and_delete_elem(fd, k(1)) == b"c" * 8
        assert errno_of(t.bpf_map_lookup_elem, fd, k(1)) == errno.ENOENT
    else:
        assert errno_of(t.bpf_map_lookup_and_delete_elem, fd, k(1)) == ENOTSUPP


@pytest.mark.parametrize("flags", [0, BPF_F_NO_PREALLOC])
def test_hash_get_next_key_walks_every_key_once(flags):
    # htab_map_get_next_key(): NULL or a missing key -> the first element; each key's
    # successor; the last -> ENOENT.  The walk visits every key exactly once.
    s, a, t = setup("6.18")
    fd = t.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 8, 64, flags)
    assert errno_of(t.bpf_map_get_next_key, fd, None) == errno.ENOENT     # empty
    want = {k(i) for i in range(0, 100, 3)}
    for key in want:
        t.bpf_map_update_elem(fd, key, bytes(8))
    first = t.bpf_map_get_next_key(fd, None)
    assert t.bpf_map_get_next_key(fd, k(1)) == first                      # missing key
    seen = [first]
    while True:
        try:
            seen.append(t.bpf_map_get_next_key(fd, seen[-1]))
        except OSError as e:
            assert e.errno == errno.ENOENT
            break
    assert len(seen) == len(want) and set(seen) == want


def test_lru_evicts_instead_of_e2big():
    # LRU_HASH max 4 filled by one cpu: a 5th key evicts the least recently used (key 0);
    # no E2BIG
    s, a, t = setup("6.18")
    fd = t.bpf_map_create(BPF_MAP_TYPE_LRU_HASH, 4, 8, 4)
    before = current(s, a)
    for i in range(5):
        t.bpf_map_update_elem(fd, k(i), bytes(8))
    assert errno_of(t.bpf_map_lookup_elem, fd, k(0)) == errno.ENOENT
    for i in range(1, 5):
        assert t.bpf_map_lookup_elem(fd, k(i)) == bytes(8)
    assert current(s, a) == before        # preallocated: eviction allocates nothing
    assert errno_of(t.bpf_map_create, BPF_MAP_TYPE_LRU_HASH, 4, 8, 4,
                    BPF_F_NO_PREALLOC) == ENOTSUPP


@pytest.mark.parametrize("profile", ["5.11", "6.18"])
def test_hash_batches_and_baseline(profile):
    s, a, t = setup(profile)
    fd = t.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 8, 100, BPF_F_NO_PREALLOC)
    keys = [k(i) for i in range(30)]
    vals = [i.to_bytes(8, "little") for i in range(30)]
    assert t.bpf_map_update_batch(fd, keys, vals) == 30
    assert t.bpf_map_delete_batch(fd, keys[:10]) == 10
    with pytest.raises(OSError) as ei:           # ENOENT at the end, all 20 copied
        t.bpf_map_lookup_and_delete_batch(fd, None, 100)
    e = ei.value
    assert e.errno == errno.ENOENT and e.count == 20
    assert dict(zip(e.keys, e.values)) == dict(zip(keys[10:], vals[10:]))
    assert errno_of(t.bpf_map_get_next_key, fd, None) == errno.ENOENT
    t.close(fd)
    assert current(s, a) == 0
    s.check()
