"""fd-holding arrays and map-in-map (kernel/bpf/arraymap.c, kernel/bpf/map_in_map.c):
value_size 4, the referenced objects, ids or ENOTSUPP on lookup, PROG_ARRAY's bpf_array_aux, inner map metadata,
clearing on the last user reference."""

import errno

import pytest

from pybpfmem.bpf import (BPF_EXIST, BPF_F_INNER_MAP, BPF_MAP_TYPE_ARRAY,
                          BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_CGROUP_ARRAY,
                          BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_HASH_OF_MAPS, BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                          BPF_MAP_TYPE_PROG_ARRAY, BPF_NOEXIST, BPF_PROG_TYPE_SOCKET_FILTER,
                          BPF_PROG_TYPE_XDP, ENOTSUPP)

from bpfutil import current, errno_of, k, setup


def fdv(fd):
    return fd.to_bytes(4, "little")


@pytest.mark.parametrize("ty", [BPF_MAP_TYPE_PROG_ARRAY, BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                                BPF_MAP_TYPE_CGROUP_ARRAY])
def test_fd_array_value_size_must_be_4(ty):
    s, a, t = setup()
    assert errno_of(t.bpf_map_create, ty, 4, 8, 4) == errno.EINVAL
    assert errno_of(t.bpf_map_create, ty, 4, 4, 4, 1 << 7) == errno.EINVAL  # RDONLY_PROG
    t.bpf_map_create(ty, 4, 4, 4)


@pytest.mark.parametrize("profile,want", [("5.10", 0), ("5.11", 4096), ("6.18", 4096)])
def test_prog_array_creation_charge(profile, want):
    # struct bpf_array 320 (5.11) / 312 (6.18) + 4 x 8 = 352 / 344 -> kmalloc-512 + 8 = 520,
    # plus struct bpf_array_aux 96 (5.11) / 88 (6.18) -> kmalloc-96 + 8 = 104
    # (GFP_KERNEL_ACCOUNT from 5.11): 624 object bytes -> 1 page; 5.10 accounts nothing.
    # Sizes: the profiles' structs/<name>.json (5.11 compiled from v5.11, 6.18 from BTF)
    s, a, t = setup(profile)
    fd = t.bpf_map_create(BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4)
    assert current(s, a) == want
    assert a.stat()["slab_unreclaimable"] == (0 if profile == "5.10" else 624)
    # memlock: 5.10 cost 352 -> 1 page; 5.11 footprint rup(4 * rup(4 + 4, 8)) = 4096;
    # 6.18 array_map_mem_usage 312 + 4 x 8 = 344
    assert t.fdinfo(fd)["memlock"] == {"5.10": "4096", "5.11": "4096", "6.18": "344"}[profile]


def test_prog_array_holds_programs_and_clears_on_last_uref():
    s, a, t = setup()
    mfd = t.bpf_map_create(BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4)
    pfd = t.bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, 10)
    pid = s.bpf_progs()[0]["id"]
    assert errno_of(t.bpf_map_update_elem, mfd, k(0), fdv(pfd), BPF_NOEXIST) == errno.EINVAL
    assert errno_of(t.bpf_map_update_elem, mfd, k(4), fdv(pfd)) == errno.E2BIG
    assert errno_of(t.bpf_map_update_elem, mfd, k(0), fdv(mfd)) == errno.EINVAL  # a map
    assert errno_of(t.bpf_map_update_elem, mfd, k(0), fdv(99)) == errno.EBADF
    assert errno_of(t.bpf_map_lookup_elem, mfd, k(0)) == errno.ENOENT
    t.bpf_map_update_elem(mfd, k(0), fdv(pfd))
    assert t.bpf_map_lookup_elem(mfd, k(0)) == pid.to_bytes(4, "little")   # the prog id
    t.close(pfd)
    assert [p["id"] for p in s.bpf_progs()] == [pid]     # the array holds it
    t.bpf_obj_pin(mfd, "/sys/fs/bpf/pa")
    t.close(mfd)                                          # the pin keeps a user ref
    assert len(s.bpf_progs()) == 1
    s.bpffs_unlink("/sys/fs/bpf/pa")                      # last uref: array cleared
    assert s.bpf_progs() == [] and s.bpf_maps() == []
    assert current(s, a) == 0


def test_prog_array_delete():
    s, a, t = setup()
    mfd = t.bpf_map_create(BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 2)
    pfd = t.bpf_prog_load(BPF_PROG_TYPE_XDP, 10)
    t.bpf_map_update_elem(mfd, k(1), fdv(pfd))
    assert errno_of(t.bpf_map_delete_elem, mfd, k(0)) == errno.ENOENT
    assert errno_of(t.bpf_map_delete_elem, mfd, k(2)) == errno.E2BIG
    t.bpf_map_delete_elem(mfd, k(1))
    t.close(pfd)
    assert s.bpf_progs() == []


def test_perf_event_and_cgroup_arrays_lookup_enotsupp():
    s, a, t = setup()
    pe = t.bpf_map_create(BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 2)
    cga = t.bpf_map_create(BPF_MAP_TYPE_CGROUP_ARRAY, 4, 4, 2)
    ev = t.perf_event_open(cpu=0)
    cgfd = t.open_cgroup(a)
    assert errno_of(t.bpf_map_update_elem, pe, k(0), fdv(cgfd)) == errno.EBADF
    assert errno_of(t.bpf_map_update_elem, cga, k(0), fdv(ev)) == errno.EBADF
    t.bpf_map_update_elem(pe, k(0), fdv(ev))
    t.bpf_map_update_elem(cga, k(1), fdv(cgfd))
    assert errno_of(t.bpf_map_lookup_elem, pe, k(0)) == ENOTSUPP
    assert errno_of(t.bpf_map_lookup_elem, cga, k(1)) == ENOTSUPP
    # the bpf_event_entry (40 bytes) is a plain kzalloc: never charged
    assert s.bpf_maps()[0]["charged"]["slab"] == 520     # 312 + 16 -> kmalloc-512 + 8
    t.bpf_map_delete_elem(pe, k(0))
    t.bpf_map_delete_elem(cga, k(1))
    assert errno_of(t.bpf_map_delete_elem, cga, k(1)) == errno.ENOENT


@pytest.mark.parametrize("outer", [BPF_MAP_TYPE_ARRAY_OF_MAPS, BPF_MAP_TYPE_HASH_OF_MAPS])
def test_map_in_map(outer):
    s, a, t = setup()
    inner = t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 16)
    ev = t.perf_event_open()                           # not a map: __bpf_map_get -EINVAL
    assert errno_of(t.bpf_map_create, outer, 4, 4, 4, inner_map_fd=ev) == errno.EINVAL
    assert errno_of(t.bpf_map_create, outer, 4, 4, 4, inner_map_fd=99) == errno.EBADF
    assert errno_of(t.bpf_map_create, outer, 4, 8, 4, inner_map_fd=inner) == errno.EINVAL
    o = t.bpf_map_create(outer, 4, 4, 4, inner_map_fd=inner)
    # no second level: the outer map cannot be an inner map template
    assert errno_of(t.bpf_map_create, outer, 4, 4, 4, inner_map_fd=o) == errno.EINVAL
    other = t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 32)       # max_entries differ
    h = t.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 8, 16)            # type differs
    same = t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 16)
    assert errno_of(t.bpf_map_update_elem, o, k(0), fdv(other)) == errno.EINVAL
    assert errno_of(t.bpf_map_update_elem, o, k(0), fdv(h)) == errno.EINVAL
    t.bpf_map_update_elem(o, k(1), fdv(same))
    sid = t.bpf_obj_get_info_by_fd(same)["id"]
    assert t.bpf_map_lookup_elem(o, k(1)) == sid.to_bytes(4, "little")
    if outer == BPF_MAP_TYPE_HASH_OF_MAPS:
        assert errno_of(t.bpf_map_update_elem, o, k(1), fdv(same), BPF_NOEXIST) == errno.EEXIST
        assert errno_of(t.bpf_map_update_elem, o, k(2), fdv(same), BPF_EXIST) == errno.ENOENT
    t.close(same)
    assert sid in [m["id"] for m in s.bpf_maps()]                # held by the outer map
    # ids of the inner map stay visible; closing the outer map frees it
    t.close(o)
    assert sid not in [m["id"] for m in s.bpf_maps()]
    for fd in (inner, other, h):
        t.close(fd)
    assert s.bpf_maps() == [] and current(s, a) == 0
    s.check()


def test_inner_map_flag_allows_other_sizes():
    # array_map_meta_equal(): with BPF_F_INNER_MAP the max_entries may differ
    s, a, t = setup()
    inner = t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 16, BPF_F_INNER_MAP)
    o = t.bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 2, inner_map_fd=inner)
    big = t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1000, BPF_F_INNER_MAP)
    t.bpf_map_update_elem(o, k(0), fdv(big))


def test_hash_of_maps_has_no_extra_elements():
    # htab_has_extra_elems() is false for fd hash maps (is_fd_htab), so the 6.18
    # memlock of HASH_OF_MAPS key 4 value 4 x1000 is sizeof(bpf_htab) 832 + 1024
    # buckets * 16 + the lock counters 4 * 2 cpus * 8 + elem_size (48 + 8 + 8) * 1000
    # + the per-cpu extra-element pointers 8 * 2 = 81296 (what the live kernel shows)
    s, a, t = setup()
    inner = t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 16)
    o = t.bpf_map_create(BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 1000, inner_map_fd=inner)
    assert t.fdinfo(o)["memlock"] == str(832 + 1024 * 16 + 64 + 64 * 1000 + 16) == "81296"


def test_hash_key_above_max_bpf_stack_is_allowed_from_5_11():
    # the live 6.18 kernel creates HASH key 600 value 8 x10: 832 + 16 * 16 + 64 +
    # elem_size (48 + 600 + 8) * (10 + 2 extra) + 8 * 2 = 9040.  c6bde958a62b ("bpf: Lift
    # hashtab key_size limit") is in v5.11 (5.11.0's htab_map_alloc_check() bounds key_size +
    # value_size only); 5.10.y still says E2BIG for key_size > MAX_BPF_STACK
    s, a, t = setup("6.18")
    fd = t.bpf_map_create(BPF_MAP_TYPE_HASH, 600, 8, 10)
    assert t.fdinfo(fd)["memlock"] == "9040"
    s511, _, t511 = setup("5.11")
    assert t511.bpf_map_create(BPF_MAP_TYPE_HASH, 600, 8, 10) >= 0
    s510, _, t510 = setup("5.10")
    assert errno_of(t510.bpf_map_create, BPF_MAP_TYPE_HASH, 600, 8, 10) == errno.E2BIG
