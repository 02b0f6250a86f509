"""ARRAY / PERCPU_ARRAY: creation charges, memlock and element semantics per profile.

Every expected value is derived by hand from the kernel's rules (x86_64, 4 KiB pages,
P = 2 possible cpus).  Struct sizes: sizeof(struct bpf_array) = 272 in the v5.x
profiles (the model's estimate, a multiple of 64 as bpf_map was cache-line aligned),
312 on 6.18 (calibrated from the fdinfo memlock of a live 6.18 kernel).

Charge rules used below:
* bpf_map_area_alloc(size): size <= 32 KiB -> kmalloc; a kmalloc of <= 8 KiB is one
  object of its kmalloc bucket + the 8-byte objcg slot (obj_full_size()); 8 KiB < size
  <= 32 KiB is kmalloc_large(): the compound page of order get_order(size); above
  32 KiB (or mmapable) vmalloc, one charged page per page.
* alloc_percpu(size): ALIGN(size, 4) x P bytes (+ size/4 x 8 objcg slots on 6.18).
* Object-charged bytes (slab, percpu) reach memory.current in whole pages: with the
  stocks drained, ceil(bytes / 4096) pages per objcg.
* 5.10: nothing BPF allocates carries __GFP_ACCOUNT; the cost goes to locked_vm.
"""

import errno

import pytest

from pybpfmem.bpf import (BPF_ANY, BPF_EXIST, BPF_F_MMAPABLE, BPF_MAP_TYPE_ARRAY,
                          BPF_MAP_TYPE_PERCPU_ARRAY, BPF_NOEXIST, RLIM_INFINITY,
                          RLIMIT_MEMLOCK)

from bpfutil import PAGE, current, errno_of, k, setup


# (value_size, max_entries) -> memory.current of the creator's cgroup after creation
#  4/8/1:    5.11 272+8 = 280 -> kmalloc-512 + 8 = 520 bytes -> 1 page
#            6.18 312+8 = 320 -> kmalloc-512 + 8 = 520 bytes -> 1 page
#  4/8/2000: 5.11 272+16000 = 16272, 6.18 16312: kmalloc_large order 2 -> 16384
#  4/64/1000: 5.11 64272, 6.18 64312: vmalloc of 16 pages -> 65536
@pytest.mark.parametrize("profile", ["5.11", "6.18"])
@pytest.mark.parametrize("vs,me,want", [(8, 1, 4096), (8, 2000, 16384), (64, 1000, 65536)])
def test_array_creation_charge(profile, vs, me, want):
    s, a, t = setup(profile)
    t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, vs, me)
    assert current(s, a) == want
    m = s.bpf_maps()[0]
    assert m["memcg"] == "/a"
    if (vs, me) == (8, 1):
        assert a.stat()["slab_unreclaimable"] == 520
        assert m["charged"] == {"slab": 520, "vmalloc": 0, "percpu": 0, "pages": 0}
    if (vs, me) == (64, 1000):
        assert m["charged"]["vmalloc"] == 65536


def test_array_510_charges_locked_vm_not_memcg():
    # cost 272 + 1000*64 = 64272 -> 16 pages on uid 0's user_struct; memcg sees nothing
    s, a, t = setup("5.10")
    fd = t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 64, 1000)
    assert current(s, a) == 0
    assert s.bpf_state.rlimit.users[0].locked_vm == 16
    assert t.fdinfo(fd)["memlock"] == str(16 * PAGE)
    assert s.bpf_maps()[0]["legacy_pages"] == 16 and s.bpf_maps()[0]["memcg"] is None


def test_array_510_unprivileged_rounding_trips_default_rlimit():
    # uid 1000 without CAP_PERFMON: n = pow2(1000) = 1024; cost 272 + 1024*64 = 65808
    # -> 17 pages > default RLIMIT_MEMLOCK 64 KiB = 16 pages -> EPERM.  The privileged
    # creator's 16 pages fit exactly (16 <= 16).
    s, a, t = setup("5.10", uid=1000, unlimited=False)
    with pytest.raises(OSError) as ei:
        t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 64, 1000)
    assert ei.value.errno == errno.EPERM
    assert "17 pages" in str(ei.value) and "RLIMIT_MEMLOCK" in str(ei.value)
    root = s.spawn(cgroup=a, uid=0)
    root.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 64, 1000)
    assert s.bpf_state.rlimit.users[0].locked_vm == 16
    assert 1000 not in s.bpf_state.rlimit.users      # the failed charge left nothing


@pytest.mark.parametrize("profile,memlock", [("5.11", 73728), ("6.18", 64312)])
def test_array_unprivileged_allocates_pow2_but_memlock_uses_max_entries(profile, memlock):
    # n = 1024: 5.11 272 + 65536 = 65808, 6.18 312 + 65536 = 65848 -> vmalloc 17 pages.
    # memlock: 5.11 footprint rup(1000 * rup(4 + 64, 8), 4096) = rup(72000) = 73728;
    #          6.18 array_map_mem_usage with the attribute max_entries: 312 + 64000.
    s, a, t = setup(profile, uid=1000, unlimited=False)   # no rlimit in 5.11+
    fd = t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 64, 1000)
    assert current(s, a) == 17 * PAGE
    assert t.fdinfo(fd)["memlock"] == str(memlock)


def test_mmapable_array_618():
    # mmapable: vmalloc of PAGE_ALIGN(312) + PAGE_ALIGN(64000) = 4096 + 65536 = 69632;
    # mem_usage is the same sum
    s, a, t = setup("6.18")
    fd = t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 64, 1000, BPF_F_MMAPABLE)
    assert current(s, a) == 69632
    assert a.stat()["vmalloc"] == 69632
    assert t.fdinfo(fd)["memlock"] == "69632"


# PERCPU_ARRAY 4/64/1000:
#  area: 5.11 272 + 1000*8 = 8272, 6.18 312 + 8000 = 8312 -> kmalloc_large order 2 = 16384
#  values: 1000 x alloc_percpu(64): 5.11 charged to the creator, 64*2 = 128 each ->
#          128000 bytes -> 32 pages; 6.18: bpf_map_alloc_percpu runs before the objcg is
#          saved -> root -> uncharged
@pytest.mark.parametrize("profile,want,pcpu", [("5.11", 16384 + 32 * PAGE, 128000),
                                               ("6.18", 16384, 0)])
def test_percpu_array_creation_charge(profile, want, pcpu):
    s, a, t = setup(profile)
    fd = t.bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 64, 1000)
    assert current(s, a) == want
    assert a.stat()["percpu"] == pcpu
    assert s.bpf_maps()[0]["charged"]["percpu"] == pcpu
    # memlock: 5.11 rup(1000 * rup(4 + 128, 8), 4096) = rup(136000) = 139264;
    #          6.18 312 + 8000 + 1000*64*2 = 136312
    assert t.fdinfo(fd)["memlock"] == {"5.11": "139264", "6.18": "136312"}[profile]


def test_percpu_array_510_cost_over_default_limit():
    # cost 272 + 1000*8 + 1000*64*2 = 136272 -> 34 pages > 16 -> EPERM; unlimited: memlock
    # 34 pages = 139264
    s, a, t = setup("5.10", unlimited=False)
    assert errno_of(t.bpf_map_create, BPF_MAP_TYPE_PERCPU_ARRAY, 4, 64, 1000) == errno.EPERM
    t.setrlimit(RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY)
    fd = t.bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 64, 1000)
    assert t.fdinfo(fd)["memlock"] == "139264"
    assert current(s, a) == 0


@pytest.mark.parametrize("profile", ["5.10", "5.11", "6.18"])
def test_array_element_ops(profile):
    # array_map_*_elem(): every slot exists; updates copy in place and allocate nothing
    s, a, t = setup(profile)
    fd = t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 4, 3)
    before = current(s, a)
    assert t.bpf_map_lookup_elem(fd, k(2)) == bytes(4)              # zero-filled
    t.bpf_map_update_elem(fd, k(1), b"abcd", BPF_ANY)
    t.bpf_map_update_elem(fd, k(1), b"efgh", BPF_EXIST)
    assert t.bpf_map_lookup_elem(fd, k(1)) == b"efgh"
    assert errno_of(t.bpf_map_update_elem, fd, k(0), b"abcd", BPF_NOEXIST) == errno.EEXIST
    assert errno_of(t.bpf_map_update_elem, fd, k(3), b"abcd") == errno.E2BIG
    assert errno_of(t.bpf_map_update_elem, fd, k(0), b"abcd", 3) == errno.EINVAL  # > EXIST
    assert errno_of(t.bpf_map_lookup_elem, fd, k(3)) == errno.ENOENT
    assert errno_of(t.bpf_map_delete_elem, fd, k(0)) == errno.EINVAL
    # get_next_key: NULL -> 0, i -> i+1, last -> ENOENT, out of range -> 0
    assert t.bpf_map_get_next_key(fd, None) == k(0)
    assert t.bpf_map_get_next_key(fd, k(1)) == k(2)
    assert errno_of(t.bpf_map_get_next_key, fd, k(2)) == errno.ENOENT
    assert t.bpf_map_get_next_key(fd, k(7)) == k(0)
    for i in range(50):
        t.bpf_map_update_elem(fd, k(i % 3), i.to_bytes(4, "little"))
    assert current(s, a) == before


def test_percpu_array_values_per_cpu():
    # value_size 4 -> v8 = 8; the syscall buffer is 8 x P = 16 bytes, and the kernel
    # copies round_up(value_size, 8) bytes per cpu (bpf_percpu_array_update /
    # bpf_percpu_array_copy use the rounded size), padding included
    s, a, t = setup("6.18")
    fd = t.bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 2)
    assert t.bpf_map_lookup_elem(fd, k(0)) == bytes(16)
    val = b"\1\2\3\4pad1\5\6\7\x08pad2"
    t.bpf_map_update_elem(fd, k(0), val)
    assert t.bpf_map_lookup_elem(fd, k(0)) == val
    with pytest.raises(ValueError):
        t.bpf_map_update_elem(fd, k(0), bytes(4))     # needs 16 bytes
    # a program on cpu 1 writes value_size bytes of cpu 1's copy only
    mid = s.bpf_maps()[0]["id"]
    with t.running(cpu=1):
        assert s.helper_map_update_elem(mid, k(0), b"WXYZ") == 0
        assert s.helper_map_lookup_elem(mid, k(0)) == b"WXYZ"
    assert t.bpf_map_lookup_elem(fd, k(0)) == b"\1\2\3\4pad1WXYZpad2"


def test_array_update_batch_stops_at_first_error():
    # generic_map_update_batch(): keys 0, 5, 1 on a 3-entry array -> the second fails with
    # E2BIG, count = 1 and key 1 is not written
    s, a, t = setup("6.18")
    fd = t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 4, 3)
    with pytest.raises(OSError) as ei:
        t.bpf_map_update_batch(fd, [k(0), k(5), k(1)], [b"aaaa", b"bbbb", b"cccc"])
    assert ei.value.errno == errno.E2BIG and ei.value.count == 1
    assert t.bpf_map_lookup_elem(fd, k(0)) == b"aaaa"
    assert t.bpf_map_lookup_elem(fd, k(1)) == bytes(4)


@pytest.mark.parametrize("profile", ["5.10", "5.11", "6.18"])
def test_array_free_returns_everything(profile):
    s, a, t = setup(profile)
    fds = [t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 64, 1000),
           t.bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 64, 1000),
           t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1)]
    for fd in fds:
        t.close(fd)
    assert current(s, a) == 0
    assert a.stat()["percpu"] == 0 and a.stat()["slab_unreclaimable"] == 0
    assert s.bpf_state.rlimit.users.get(0) is None
    s.check()
