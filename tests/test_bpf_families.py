"""The BPF map families beyond arrays and hashes: creation charges and memlock,
validation errnos, per-update charges going to the map's memcg, element semantics,
and freeing.  Every expected number is derived from the kernel's rules in the
comment next to it; struct sizes come from pybpfmem.profiles (the profile's
StructSizes), never from a run.
"""

from __future__ import annotations

import errno
import struct

import pytest

import pybpfmem
from pybpfmem.bpf import uapi as U
from pybpfmem.profiles import get_profile

from map_shapes import BTF, SHAPES

PAGE = 4096
P = 2


def rup(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def make(profile: str):
    sys_ = pybpfmem.System(nr_cpus=P, page_size=PAGE, profile=profile, cgroup="v2", ram="8G")
    a = sys_.root.mkdir("a")
    task = sys_.spawn(cgroup=a, uid=0)
    return sys_, a, task


def map_info(sys_, map_id: int) -> dict:
    return next(m for m in sys_.bpf_maps() if m["id"] == map_id)


def map_id_of(task, fd: int) -> int:
    return int(task.fdinfo(fd)["map_id"])


def new_socket(task, kind: str = "tcp") -> int:
    return task.create_socket(kind)


def teardown_is_clean(sys_, task, fds, cgs) -> None:
    """Closing every fd and running the deferred frees frees every map and returns every
    cgroup to the kernel stacks of its tasks (memory.stat kernel_stack), up to the sub-page
    remainder drain_obj_stock() leaves in the objcg's nr_charged_bytes (one page at most
    when charges and frees ran on different cpus)."""
    with task.running(cpu=0):
        for fd in fds:
            task.close(fd)
    sys_.run_deferred()
    sys_.drain_all_stock()
    assert sys_.bpf_maps() == []
    for cg in cgs:
        assert int(cg.read("memory.current")) - cg.stat()["kernel_stack"] in (0, PAGE), cg.path
    sys_.check()


# --------------------------------------------------------------------------- RINGBUF

def test_ringbuf_6_18_memlock_and_charges():
    sys_, a, t = make("6.18")
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_RINGBUF, 0, 0, 1 << 20)
    info = map_info(sys_, map_id_of(t, fd))
    # ringbuf_map_mem_usage(): sizeof(bpf_ringbuf_map) 304 + (3 + 256) pages + (3 + 512) * 8
    assert t.fdinfo(fd)["memlock"] == str(304 + 259 * 4096 + 515 * 8) == "1065288"
    # each of the 259 pages is alloc_pages(GFP_KERNEL_ACCOUNT ...) in the creator's context
    assert info["requested"]["pages"] == 259 * PAGE
    # bpf_map_area_alloc(304) and bpf_map_area_alloc(515 * 8 = 4120) are both <= 32 KiB: kmalloc
    assert info["requested"]["slab"] == 304 + 4120
    assert info["memcg"] == "/a"
    teardown_is_clean(sys_, t, [fd], [a])


def test_ringbuf_5_11_page_array_is_vmalloc_unaccounted():
    sys_, a, t = make("5.11")
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_RINGBUF, 0, 0, 1 << 20)
    info = map_info(sys_, map_id_of(t, fd))
    sz = get_profile("5.11").sizes
    # v5.11: struct kzalloc(GFP_USER | __GFP_ACCOUNT): charged; the 4120-byte page array is
    # > PAGE_SIZE so vmalloc_node() with plain GFP_KERNEL: allocated (2 pages) but not charged
    assert info["requested"]["slab"] == sz.bpf_ringbuf_map
    assert info["allocated"]["vmalloc"] == 2 * PAGE and info["requested"]["vmalloc"] == 0
    assert info["requested"]["pages"] == 259 * PAGE
    # bpf_map_memory_footprint(): max_entries * rup(0 + 0, 8) = 0
    assert t.fdinfo(fd)["memlock"] == "0"
    teardown_is_clean(sys_, t, [fd], [a])


def test_ringbuf_5_10_legacy_memlock_nothing_charged():
    sys_, a, t = make("5.10")
    t.setrlimit(U.RLIMIT_MEMLOCK, U.RLIM_INFINITY, U.RLIM_INFINITY)
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_RINGBUF, 0, 0, 1 << 20)
    info = map_info(sys_, map_id_of(t, fd))
    # cost = sizeof(rb_map) + sizeof(struct bpf_ringbuf) (3 pages) + 1 MiB
    cost = get_profile("5.10").sizes.bpf_ringbuf_map + 3 * PAGE + (1 << 20)
    assert t.fdinfo(fd)["memlock"] == str(rup(cost, PAGE)) == "1064960"
    assert sum(info["requested"].values()) == 0
    teardown_is_clean(sys_, t, [fd], [a])


@pytest.mark.parametrize("ks,vs,max_entries,err", [
    (4, 0, 1 << 20, errno.EINVAL),        # key_size must be 0
    (0, 0, 3 * 4096, errno.EINVAL),       # not a power of two
    (0, 0, 2048, errno.EINVAL),           # not page aligned
])
def test_ringbuf_validation(ks, vs, max_entries, err):
    sys_, a, t = make("6.18")
    with t.running(cpu=0), pytest.raises(OSError) as ei:
        t.bpf_map_create(U.BPF_MAP_TYPE_RINGBUF, ks, vs, max_entries)
    assert ei.value.errno == err


def test_ringbuf_element_ops_enotsupp_and_reserve():
    sys_, a, t = make("6.18")
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096)
        with pytest.raises(OSError) as ei:
            t.bpf_map_get_next_key(fd, None)
        assert ei.value.errno == 524          # ringbuf_map_get_next_key -> -ENOTSUPP
        before = map_info(sys_, map_id_of(t, fd))["requested"]
        m = sys_.bpf_map_by_id(map_id_of(t, fd))
        # record length = rup(size + 8-byte header, 8); 4096-byte ring holds at most 4095
        r1 = m.helper_ringbuf_reserve(2000)
        r2 = m.helper_ringbuf_reserve(2000)   # 2008 + 2008 = 4016 <= 4095
        assert r1 == 0 and r2 == 2008
        assert m.helper_ringbuf_reserve(100) is None   # 4016 + 112 > 4095
        m.helper_ringbuf_submit(r1)
        m.helper_ringbuf_discard(r2)
        assert m.consume() == [2000]
        assert map_info(sys_, map_id_of(t, fd))["requested"] == before   # no allocation
    teardown_is_clean(sys_, t, [fd], [a])


# --------------------------------------------------------------------------- QUEUE/STACK

def test_queue_creation_charge_and_memlock():
    sys_, a, t = make("6.18")
    sz = get_profile("6.18").sizes
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_QUEUE, 0, 64, 1000)
    size = sz.bpf_queue_stack + 1001 * 64
    # queue_stack_map_mem_usage() = the one bpf_map_area_alloc; > 32 KiB so vmalloc (pages)
    assert t.fdinfo(fd)["memlock"] == str(size)
    assert map_info(sys_, map_id_of(t, fd))["requested"]["vmalloc"] == rup(size, PAGE)
    teardown_is_clean(sys_, t, [fd], [a])


def test_queue_and_stack_semantics():
    sys_, a, t = make("6.18")
    with t.running(cpu=0):
        q = t.bpf_map_create(U.BPF_MAP_TYPE_QUEUE, 0, 4, 2)
        s = t.bpf_map_create(U.BPF_MAP_TYPE_STACK, 0, 4, 2)
        for fd in (q, s):
            t.bpf_map_update_elem(fd, None, b"1111")
            t.bpf_map_update_elem(fd, None, b"2222")
            with pytest.raises(OSError) as ei:        # full: -E2BIG without BPF_EXIST
                t.bpf_map_update_elem(fd, None, b"3333")
            assert ei.value.errno == errno.E2BIG
            with pytest.raises(OSError) as ei:        # BPF_NOEXIST is rejected
                t.bpf_map_update_elem(fd, None, b"3333", U.BPF_NOEXIST)
            assert ei.value.errno == errno.EINVAL
            t.bpf_map_update_elem(fd, None, b"3333", U.BPF_EXIST)   # overwrites the oldest
            with pytest.raises(OSError) as ei:
                t.bpf_map_delete_elem(fd, None)
            assert ei.value.errno == errno.EINVAL
        # queue: oldest (1111) was dropped, FIFO order 2222, 3333; peek does not remove
        assert t.bpf_map_lookup_elem(q, None) == b"2222"
        assert t.bpf_map_lookup_and_delete_elem(q, None) == b"2222"
        assert t.bpf_map_lookup_and_delete_elem(q, None) == b"3333"
        # stack: LIFO 3333 then 2222
        assert t.bpf_map_lookup_and_delete_elem(s, None) == b"3333"
        assert t.bpf_map_lookup_and_delete_elem(s, None) == b"2222"
        for fd in (q, s):
            with pytest.raises(OSError) as ei:
                t.bpf_map_lookup_and_delete_elem(fd, None)
            assert ei.value.errno == errno.ENOENT
    teardown_is_clean(sys_, t, [q, s], [a])


@pytest.mark.parametrize("ks,vs,me,flags,err", [
    (4, 4, 10, 0, errno.EINVAL),                       # key_size must be 0
    (0, 0, 10, 0, errno.EINVAL),                       # value_size 0
    (0, 4, 0, 0, errno.EINVAL),                        # max_entries 0
    (0, 4, 10, U.BPF_F_NO_PREALLOC, errno.EINVAL),     # flag outside the mask
    (0, (4 << 20) + 1, 10, 0, errno.E2BIG),            # value_size > KMALLOC_MAX_SIZE
])
def test_queue_validation(ks, vs, me, flags, err):
    sys_, a, t = make("5.11")
    with t.running(cpu=0), pytest.raises(OSError) as ei:
        t.bpf_map_create(U.BPF_MAP_TYPE_QUEUE, ks, vs, me, flags)
    assert ei.value.errno == err


def test_queue_needs_cap_bpf():
    sys_, a, _ = make("5.11")
    user = sys_.spawn(cgroup=a, uid=1000)
    with user.running(cpu=0), pytest.raises(OSError) as ei:
        user.bpf_map_create(U.BPF_MAP_TYPE_QUEUE, 0, 4, 10)
    assert ei.value.errno == errno.EPERM


def test_bloom_filter_only_in_6_18():
    sys_, a, t = make("5.11")
    with t.running(cpu=0), pytest.raises(OSError) as ei:
        t.bpf_map_create(U.BPF_MAP_TYPE_BLOOM_FILTER, 0, 4, 100)
    assert ei.value.errno == errno.EINVAL
    sys_, a, t = make("6.18")
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_BLOOM_FILTER, 0, 4, 1000)
    # 5 hashes: 1000 * 5 / 5 * 7 = 7000 bits -> pow2 8192 bits = 1024 bytes
    assert t.fdinfo(fd)["memlock"] == str(get_profile("6.18").sizes.bpf_bloom_filter + 1024)
    m = sys_.bpf_map_by_id(map_id_of(t, fd))
    with t.running(cpu=0):
        m.helper_push_elem(b"abcd")
        m.helper_peek_elem(b"abcd")
    teardown_is_clean(sys_, t, [fd], [a])


# --------------------------------------------------------------------------- LPM_TRIE

def lpm_key(plen: int, addr: str) -> bytes:
    return struct.pack("<I", plen) + bytes(int(x) for x in addr.split("."))


def test_lpm_longest_prefix_semantics():
    sys_, a, t = make("6.18")
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 10, U.BPF_F_NO_PREALLOC)
        t.bpf_map_update_elem(fd, lpm_key(8, "10.0.0.0"), b"AAAA")
        t.bpf_map_update_elem(fd, lpm_key(16, "10.1.0.0"), b"BBBB")
        assert t.bpf_map_lookup_elem(fd, lpm_key(32, "10.1.2.3")) == b"BBBB"
        assert t.bpf_map_lookup_elem(fd, lpm_key(32, "10.2.0.1")) == b"AAAA"
        with pytest.raises(OSError) as ei:
            t.bpf_map_lookup_elem(fd, lpm_key(32, "11.0.0.1"))
        assert ei.value.errno == errno.ENOENT
        t.bpf_map_delete_elem(fd, lpm_key(16, "10.1.0.0"))
        assert t.bpf_map_lookup_elem(fd, lpm_key(32, "10.1.2.3")) == b"AAAA"
        with pytest.raises(OSError) as ei:
            t.bpf_map_delete_elem(fd, lpm_key(16, "10.1.0.0"))
        assert ei.value.errno == errno.ENOENT
        with pytest.raises(OSError) as ei:          # prefixlen 33 > max_prefixlen 32
            t.bpf_map_update_elem(fd, lpm_key(33, "10.0.0.0"), b"CCCC")
        assert ei.value.errno == errno.EINVAL
    teardown_is_clean(sys_, t, [fd], [a])


def test_lpm_5_11_nodes_charged_to_map_memcg_from_interrupt():
    sys_, a, t = make("5.11")
    b = sys_.root.mkdir("b")
    other = sys_.spawn(cgroup=b, uid=0)
    sz = get_profile("5.11").sizes
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 10, U.BPF_F_NO_PREALLOC)
    mid = map_id_of(t, fd)
    base = map_info(sys_, mid)["requested"]["slab"]
    leaf = sz.lpm_trie_node + 4 + 4          # node + data_size + value_size
    im = sz.lpm_trie_node + 4                # intermediate node: no value
    with sys_.in_interrupt(cpu=1):
        assert sys_.helper_map_update_elem(mid, lpm_key(8, "10.0.0.0"), b"AAAA") == 0
    # 10/8 and 11/8 share 7 leading bits: the second insert adds a leaf and an IM node
    with other.running(cpu=0):
        assert sys_.helper_map_update_elem(mid, lpm_key(8, "11.0.0.0"), b"BBBB") == 0
    assert map_info(sys_, mid)["requested"]["slab"] == base + 2 * leaf + im
    assert map_info(sys_, mid)["memcg"] == "/a"
    # nothing went to the updating task's cgroup: it holds only that task's kernel stack
    assert int(b.read("memory.current")) == b.stat()["kernel_stack"] == 4 * 4096
    teardown_is_clean(sys_, t, [fd], [a, b])


def test_lpm_full_and_validation():
    sys_, a, t = make("5.11")
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 1, U.BPF_F_NO_PREALLOC)
        t.bpf_map_update_elem(fd, lpm_key(8, "10.0.0.0"), b"AAAA")
        with pytest.raises(OSError) as ei:          # n_entries == max_entries -> -ENOSPC
            t.bpf_map_update_elem(fd, lpm_key(8, "11.0.0.0"), b"BBBB")
        assert ei.value.errno == errno.ENOSPC
        # v5.x tests fullness before the walk: even replacing the existing key fails
        with pytest.raises(OSError) as ei:
            t.bpf_map_update_elem(fd, lpm_key(8, "10.0.0.0"), b"CCCC")
        assert ei.value.errno == errno.ENOSPC
        for ks, flags in ((8, 0), (4, U.BPF_F_NO_PREALLOC), (261, U.BPF_F_NO_PREALLOC)):
            with pytest.raises(OSError) as ei:
                t.bpf_map_create(U.BPF_MAP_TYPE_LPM_TRIE, ks, 4, 10, flags)
            assert ei.value.errno == errno.EINVAL
    teardown_is_clean(sys_, t, [fd], [a])


def test_lpm_6_18_mem_usage_counts_leaves():
    sys_, a, t = make("6.18")
    sz = get_profile("6.18").sizes
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 10, U.BPF_F_NO_PREALLOC)
        t.bpf_map_update_elem(fd, lpm_key(8, "10.0.0.0"), b"AAAA")
        t.bpf_map_update_elem(fd, lpm_key(8, "11.0.0.0"), b"BBBB")
    # trie_mem_usage(): (sizeof(node) + data_size + value_size) * n_entries, no IM nodes
    assert t.fdinfo(fd)["memlock"] == str((sz.lpm_trie_node + 4 + 4) * 2)
    teardown_is_clean(sys_, t, [fd], [a])


# --------------------------------------------------------------------------- SOCKMAP/SOCKHASH

def test_sockhash_elements_links_and_full():
    sys_, a, t = make("6.18")
    sz = get_profile("6.18").sizes
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_SOCKHASH, 4, 4, 2)
        socks = [new_socket(t) for _ in range(3)]
        mid = map_id_of(t, fd)
        base = map_info(sys_, mid)["requested"]["slab"]
        t.bpf_map_update_elem(fd, b"k000", struct.pack("<I", socks[0]))
        t.bpf_map_update_elem(fd, b"k001", struct.pack("<I", socks[1]))
        with pytest.raises(OSError) as ei:          # sock_hash_alloc_elem(): count > max_entries
            t.bpf_map_update_elem(fd, b"k002", struct.pack("<I", socks[2]))
        assert ei.value.errno == errno.E2BIG
    elem = sz.bpf_shtab_elem + 8                     # + rup(key_size 4, 8)
    link = sz.sk_psock_link
    # two elements and two links, the failed update kept nothing
    assert map_info(sys_, mid)["requested"]["slab"] == base + 2 * (elem + link)
    # sock_hash_mem_usage(): struct + pow2(2) * bucket + count * elem_size
    assert t.fdinfo(fd)["memlock"] == str(sz.bpf_shtab + 2 * sz.bpf_shtab_bucket + 2 * elem)
    teardown_is_clean(sys_, t, [fd], [a])


def test_sockmap_semantics_and_cap():
    sys_, a, t = make("5.11")
    user = sys_.spawn(cgroup=a, uid=1000)
    with user.running(cpu=0), pytest.raises(OSError) as ei:
        user.bpf_map_create(U.BPF_MAP_TYPE_SOCKMAP, 4, 4, 4)
    assert ei.value.errno == errno.EPERM
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_SOCKMAP, 4, 8, 4)
        s = new_socket(t)
        key = struct.pack("<I", 1)
        t.bpf_map_update_elem(fd, key, struct.pack("<Q", s), U.BPF_NOEXIST)
        with pytest.raises(OSError) as ei:
            t.bpf_map_update_elem(fd, key, struct.pack("<Q", s), U.BPF_NOEXIST)
        assert ei.value.errno == errno.EEXIST
        with pytest.raises(OSError) as ei:          # index >= max_entries
            t.bpf_map_update_elem(fd, struct.pack("<I", 4), struct.pack("<Q", s))
        assert ei.value.errno == errno.E2BIG
        t.bpf_map_delete_elem(fd, key)
        with pytest.raises(OSError) as ei:          # __sock_map_delete() on an empty slot
            t.bpf_map_delete_elem(fd, key)
        assert ei.value.errno == errno.EINVAL
    teardown_is_clean(sys_, t, [fd], [a])


# --------------------------------------------------------------------------- DEVMAP / XSKMAP / CPUMAP

def test_devmap_nodes_and_legacy_einval():
    sys_, a, t = make("5.11")
    dev = sys_.create_netdev("eth0")
    sz = get_profile("5.11").sizes
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_DEVMAP, 4, 4, 8)
        mid = map_id_of(t, fd)
        base = map_info(sys_, mid)["requested"]["slab"]
        t.bpf_map_update_elem(fd, struct.pack("<I", 0), struct.pack("<I", dev.ifindex))
        assert map_info(sys_, mid)["requested"]["slab"] == base + sz.bpf_dtab_netdev
        assert dev.refcnt == 2
        with pytest.raises(OSError) as ei:          # unknown ifindex
            t.bpf_map_update_elem(fd, struct.pack("<I", 1), struct.pack("<I", 999))
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(OSError) as ei:          # every DEVMAP slot "exists"
            t.bpf_map_update_elem(fd, struct.pack("<I", 1), struct.pack("<I", dev.ifindex),
                                  U.BPF_NOEXIST)
        assert ei.value.errno == errno.EEXIST
        t.bpf_map_update_elem(fd, struct.pack("<I", 0), struct.pack("<I", 0))   # ifindex 0 clears
        assert map_info(sys_, mid)["requested"]["slab"] == base and dev.refcnt == 1
    teardown_is_clean(sys_, t, [fd], [a])
    # v5.10: an RLIMIT_MEMLOCK failure of dev_map_init_map() is -EINVAL, not -EPERM
    sys_, a, t = make("5.10")
    t.setrlimit(U.RLIMIT_MEMLOCK, 0, 0)
    with t.running(cpu=0), pytest.raises(OSError) as ei:
        t.bpf_map_create(U.BPF_MAP_TYPE_DEVMAP, 4, 4, 8)
    assert ei.value.errno == errno.EINVAL


def test_xskmap_node_per_update():
    sys_, a, t = make("6.18")
    sz = get_profile("6.18").sizes
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_XSKMAP, 4, 4, 4)
        xs = t.create_xsk()
        t.bpf_map_update_elem(fd, struct.pack("<I", 2), struct.pack("<I", xs))
    # xsk_map_mem_usage(): struct_size(xsk_map, 4) + count * sizeof(xsk_map_node)
    assert t.fdinfo(fd)["memlock"] == str(sz.xsk_map + 4 * 8 + sz.xsk_map_node)
    teardown_is_clean(sys_, t, [fd], [a])


def test_cpumap_entry_errnos():
    sys_, a, t = make("6.18")
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_CPUMAP, 4, 4, 4)
        for key, qsize, err in ((1, 16385, errno.EOVERFLOW), (3, 64, errno.ENODEV),
                                (4, 64, errno.E2BIG)):
            with pytest.raises(OSError) as ei:
                t.bpf_map_update_elem(fd, struct.pack("<I", key), struct.pack("<I", qsize))
            assert ei.value.errno == err
        t.bpf_map_update_elem(fd, struct.pack("<I", 1), struct.pack("<I", 64))
        assert t.bpf_map_lookup_elem(fd, struct.pack("<I", 1)) == struct.pack("<I", 64)
    # cpu_map_mem_usage(): entries are not counted
    assert t.fdinfo(fd)["memlock"] == str(get_profile("6.18").sizes.bpf_cpu_map + 4 * 8)
    teardown_is_clean(sys_, t, [fd], [a])


# --------------------------------------------------------------------------- cgroup storage

def test_cgroup_storage_attach_charges_the_map_memcg_5_11():
    # v5.11 (3a61c7c58b30, part of the memcg accounting series): bpf_cgroup_storage_alloc()
    # allocates with bpf_map_kmalloc_node() -- the map's memcg (/a), not the attaching
    # task's (/b); the 5.11 profile used to charge /b, which no release did
    sys_, a, t = make("5.11")
    b = sys_.root.mkdir("b")
    attacher = sys_.spawn(cgroup=b, uid=0)
    sz = get_profile("5.11").sizes
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_CGROUP_STORAGE, 16, 64, 0)
    m = sys_.bpf_map_by_id(map_id_of(t, fd))
    before = map_info(sys_, m.id)["requested"]["slab"]
    assert int(b.read("memory.current")) == b.stat()["kernel_stack"] == 4 * 4096   # a stack only
    with attacher.running(cpu=1):
        m.attach_storage(b)
    # storage struct + (bpf_storage_buffer + value), GFP_USER | __GFP_ACCOUNT, map memcg /a
    assert map_info(sys_, m.id)["requested"]["slab"] == before + sz.bpf_cgroup_storage + sz.bpf_storage_buffer + 64
    assert int(b.read("memory.current")) == 4 * 4096    # still the attacher's stack only
    assert m.memcg_path() == "/a"
    key = struct.pack("<QII", b.id, 0, 0)
    with t.running(cpu=0):
        assert t.bpf_map_lookup_elem(fd, key) == bytes(64)
        t.bpf_map_update_elem(fd, key, b"x" * 64)
        assert t.bpf_map_lookup_elem(fd, key) == b"x" * 64
        with pytest.raises(OSError) as ei:
            t.bpf_map_update_elem(fd, key, b"y" * 64, U.BPF_NOEXIST)
        assert ei.value.errno == errno.EINVAL
    with attacher.running(cpu=1):
        m.detach_storage(b)
    teardown_is_clean(sys_, t, [fd], [a, b])


def test_cgroup_storage_5_10_memlock_per_attach():
    sys_, a, t = make("5.10")
    t.setrlimit(U.RLIMIT_MEMLOCK, U.RLIM_INFINITY, U.RLIM_INFINITY)
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_CGROUP_STORAGE, 16, 64, 0)
        assert t.fdinfo(fd)["memlock"] == "4096"   # sizeof(bpf_cgroup_storage_map) -> 1 page
        m = sys_.bpf_map_by_id(map_id_of(t, fd))
        m.attach_storage(a)
        # + rup(sizeof(storage) + sizeof(buffer) + 64, PAGE) = 1 page
        assert t.fdinfo(fd)["memlock"] == "8192"
        m.detach_storage(a)
        assert t.fdinfo(fd)["memlock"] == "4096"
    teardown_is_clean(sys_, t, [fd], [a])


@pytest.mark.parametrize("ks,vs,me,err", [
    (4, 64, 0, errno.EINVAL),          # key must be 16 or 8 bytes
    (16, 0, 0, errno.EINVAL),          # value_size 0
    (16, 64, 1, errno.EINVAL),         # max_entries must be 0
    (16, 4097, 0, errno.E2BIG),        # v5.x: value_size > PAGE_SIZE
])
def test_cgroup_storage_validation(ks, vs, me, err):
    sys_, a, t = make("5.11")
    with t.running(cpu=0), pytest.raises(OSError) as ei:
        t.bpf_map_create(U.BPF_MAP_TYPE_CGROUP_STORAGE, ks, vs, me)
    assert ei.value.errno == err


# --------------------------------------------------------------------------- local storage

def test_sk_storage_elements_and_optmem():
    sys_, a, t = make("6.18")
    sz = get_profile("6.18").sizes
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_SK_STORAGE, 4, 64, 0, U.BPF_F_NO_PREALLOC, **BTF)
        s1 = new_socket(t)
        mid = map_id_of(t, fd)
        base = map_info(sys_, mid)["requested"]["slab"]
        t.bpf_map_update_elem(fd, struct.pack("<i", s1), b"v" * 64)
        assert t.bpf_map_lookup_elem(fd, struct.pack("<i", s1)) == b"v" * 64
        with pytest.raises(OSError) as ei:
            t.bpf_map_update_elem(fd, struct.pack("<i", s1), b"w" * 64, U.BPF_NOEXIST)
        assert ei.value.errno == errno.EEXIST
        with pytest.raises(OSError) as ei:
            t.bpf_map_get_next_key(fd, None)
        assert ei.value.errno == 524
    # v6.4+ elem_size = offsetof(selem, sdata.data) 72 + 64; first element adds the storage
    elem = 72 + 64
    assert map_info(sys_, mid)["requested"]["slab"] == base + elem + sz.bpf_local_storage
    sk = t.fd_object(s1)
    assert sk.sk_omem_alloc == elem + sz.bpf_local_storage
    # optmem: a second socket with net.core.optmem_max below the element size
    sys_.set_optmem_max(elem)     # elem + 0 < elem is false -> -ENOMEM
    with t.running(cpu=0):
        s2 = new_socket(t)
        with pytest.raises(OSError) as ei:
            t.bpf_map_update_elem(fd, struct.pack("<i", s2), b"v" * 64)
        assert ei.value.errno == errno.ENOMEM
        t.bpf_map_delete_elem(fd, struct.pack("<i", s1))
    assert sk.sk_omem_alloc == 0
    assert map_info(sys_, mid)["requested"]["slab"] == base
    teardown_is_clean(sys_, t, [fd], [a])


def test_task_storage_helper_create_from_interrupt_charges_map_memcg():
    sys_, a, t = make("5.11")
    sz = get_profile("5.11").sizes
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_TASK_STORAGE, 4, 16, 0, U.BPF_F_NO_PREALLOC, **BTF)
    m = sys_.bpf_map_by_id(map_id_of(t, fd))
    base = map_info(sys_, m.id)["requested"]["slab"]
    with sys_.in_interrupt(cpu=1):
        assert m.helper_task_storage_get(t, None, 1) == bytes(16)   # F_CREATE
    # v5.x elem_size = sizeof(selem) + value_size; plus the task's bpf_local_storage
    assert map_info(sys_, m.id)["requested"]["slab"] == base + sz.bpf_local_storage_elem + 16 + sz.bpf_local_storage
    teardown_is_clean(sys_, t, [fd], [a])


def test_task_storage_absent_in_5_10_cgrp_storage_absent_in_5_11():
    for prof, mt in (("5.10", U.BPF_MAP_TYPE_TASK_STORAGE), ("5.11", U.BPF_MAP_TYPE_CGRP_STORAGE)):
        sys_, a, t = make(prof)
        with t.running(cpu=0), pytest.raises(OSError) as ei:
            t.bpf_map_create(mt, 4, 16, 0, U.BPF_F_NO_PREALLOC, **BTF)
        assert ei.value.errno == errno.EINVAL


def test_stack_trace_creation_and_syscall_update():
    sys_, a, t = make("6.18")
    sz = get_profile("6.18").sizes
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_STACK_TRACE, 4, 8 * 16, 1000)
        with pytest.raises(OSError) as ei:
            t.bpf_map_update_elem(fd, struct.pack("<I", 0), bytes(128))
        assert ei.value.errno == errno.EINVAL
    # stack_map_mem_usage(): smap + 1024 bucket pointers + 1000 * (16 + 128)
    assert t.fdinfo(fd)["memlock"] == str(sz.bpf_stack_map + 1024 * 8 + 1000 * (16 + 128))
    teardown_is_clean(sys_, t, [fd], [a])


@pytest.mark.parametrize("profile", ["5.11", "6.18"])
def test_lpm_node_at_memory_max_forced_in_5_11_enomem_in_6_18(profile):
    """Runtime LPM nodes: v5.11 GFP_ATOMIC (__GFP_HIGH) is force-charged past memory.max;
    v6.0+ GFP_NOWAIT fails the charge and the update returns -ENOMEM."""
    sys_, a, t = make(profile)
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 100000, U.BPF_F_NO_PREALLOC)
    sys_.drain_all_stock()
    limit = int(a.read("memory.current"))
    a.write("memory.max", str(limit))
    errs = []
    with t.running(cpu=0):
        # 200 leaves of 40+ bytes need more than one page: at least one page charge
        for i in range(200):
            try:
                t.bpf_map_update_elem(fd, lpm_key(32, f"10.0.{i}.1"), b"AAAA")
            except OSError as e:
                errs.append(e.errno)
    if profile == "5.11":
        assert errs == []
        assert int(a.read("memory.current")) > limit
    else:
        assert errs and set(errs) == {errno.ENOMEM}
        assert int(a.read("memory.current")) <= limit
    a.write("memory.max", "max")
    teardown_is_clean(sys_, t, [fd], [a])


def _slab(sys_, map_id: int) -> int:
    return map_info(sys_, map_id)["requested"]["slab"]


def test_socket_last_close_leaves_sock_maps_and_frees_sk_storage():
    """Closing the last file of a socket releases it: sock_map_close() removes it from
    every sockmap and sockhash (sock_map_remove_links()), and __sk_destruct() frees its
    SK_STORAGE (bpf_sk_storage_free()).  A file still open elsewhere keeps it."""
    sys_, a, t = make("5.11")
    sz = get_profile("5.11").sizes
    other = sys_.spawn(cgroup=a)
    with t.running(cpu=0):
        sm = t.bpf_map_create(U.BPF_MAP_TYPE_SOCKMAP, 4, 8, 4)
        sh = t.bpf_map_create(U.BPF_MAP_TYPE_SOCKHASH, 4, 8, 4)
        st = t.bpf_map_create(U.BPF_MAP_TYPE_SK_STORAGE, 4, 8, 0, U.BPF_F_NO_PREALLOC, **BTF)
        s = new_socket(t)
        ids = [map_id_of(t, fd) for fd in (sm, sh, st)]
        base = [_slab(sys_, i) for i in ids]
        t.bpf_map_update_elem(sm, struct.pack("<I", 1), struct.pack("<Q", s))
        t.bpf_map_update_elem(sh, b"kkkk", struct.pack("<Q", s))
        t.bpf_map_update_elem(st, struct.pack("<i", s), b"12345678")
        s2 = t.dup_fd_to(other, s)                       # a second file reference
    sk = t.fd_object(s)
    # sockmap: one sk_psock_link; sockhash: the element (bpf_shtab_elem + round_up(4, 8))
    # and a link; SK_STORAGE (v5.11 elem_size = sizeof(selem) + 8) and the owner's
    # bpf_local_storage, both charged to sk_omem_alloc too
    linked = [base[0] + sz.sk_psock_link,
              base[1] + sz.bpf_shtab_elem + 8 + sz.sk_psock_link,
              base[2] + sz.bpf_local_storage_elem + 8 + sz.bpf_local_storage]
    assert [_slab(sys_, i) for i in ids] == linked
    assert sk.sk_omem_alloc == sz.bpf_local_storage_elem + 8 + sz.bpf_local_storage
    with t.running(cpu=0):
        t.close(s)                                       # other's file keeps the socket
        assert t.bpf_map_lookup_elem(sh, b"kkkk") == struct.pack("<Q", sk.ino)
    assert [_slab(sys_, i) for i in ids] == linked and not sk.closed
    with other.running(cpu=1):
        other.close(s2)                                  # the last file: the socket goes
    assert sk.closed and sk.links == [] and sk.sk_omem_alloc == 0
    assert [_slab(sys_, i) for i in ids] == base
    with t.running(cpu=0):
        for fd, key in ((sm, struct.pack("<I", 1)), (sh, b"kkkk")):
            with pytest.raises(OSError) as ei:
                t.bpf_map_lookup_elem(fd, key)
            assert ei.value.errno == errno.ENOENT
    teardown_is_clean(sys_, t, [sm, sh, st], [a])


def test_task_exit_closes_its_sockets():
    """exit_files() at task exit closes the task's files: the socket whose last file the
    exiting task held leaves the sockhash another task put it in."""
    sys_, a, t = make("6.18")
    sz = get_profile("6.18").sizes
    owner = sys_.spawn(cgroup=a)
    with t.running(cpu=0):
        sh = t.bpf_map_create(U.BPF_MAP_TYPE_SOCKHASH, 4, 8, 4)
        mid = map_id_of(t, sh)
        base = _slab(sys_, mid)
    with owner.running(cpu=1):
        s = owner.create_socket()
    with t.running(cpu=0):
        s_in_t = owner.dup_fd_to(t, s)
        t.bpf_map_update_elem(sh, b"kkkk", struct.pack("<Q", s_in_t))
        t.close(s_in_t)                                  # owner still holds the socket
    assert _slab(sys_, mid) == base + sz.bpf_shtab_elem + 8 + sz.sk_psock_link
    owner.exit()
    assert _slab(sys_, mid) == base
    teardown_is_clean(sys_, t, [sh], [a])


def test_xsk_last_close_empties_xskmap_slots():
    """xsk_release() -> xsk_delete_from_maps(): a closed AF_XDP socket leaves every XSKMAP
    slot, freeing the xsk_map_node of each."""
    sys_, a, t = make("6.18")
    sz = get_profile("6.18").sizes
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_XSKMAP, 4, 4, 4)
        mid = map_id_of(t, fd)
        base = _slab(sys_, mid)
        xs = t.create_xsk()
        for idx in (0, 2):
            t.bpf_map_update_elem(fd, struct.pack("<I", idx), struct.pack("<I", xs))
        assert _slab(sys_, mid) == base + 2 * sz.xsk_map_node
        t.close(xs)
    assert _slab(sys_, mid) == base
    teardown_is_clean(sys_, t, [fd], [a])


def test_pinning_a_socket_fd_is_einval():
    """bpf_obj_pin() -> bpf_fd_probe_obj(): only maps and programs can be pinned."""
    sys_, a, t = make("6.18")
    with t.running(cpu=0):
        s = t.create_socket()
        with pytest.raises(OSError) as ei:
            t.bpf_obj_pin(s, "/sys/fs/bpf/sk")
    assert ei.value.errno == errno.EINVAL
    assert sys_.bpffs_ls() == []


# the families of this file (the array and hash families, map-in-map, the event and
# cgroup arrays and ARENA have tests of their own)
_FAMILY_SHAPES = [s for s in SHAPES if s[0] not in (
    U.BPF_MAP_TYPE_ARRAY, U.BPF_MAP_TYPE_PERCPU_ARRAY, U.BPF_MAP_TYPE_HASH,
    U.BPF_MAP_TYPE_PERCPU_HASH, U.BPF_MAP_TYPE_LRU_HASH, U.BPF_MAP_TYPE_LRU_PERCPU_HASH,
    U.BPF_MAP_TYPE_PROG_ARRAY, U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, U.BPF_MAP_TYPE_CGROUP_ARRAY,
    U.BPF_MAP_TYPE_ARRAY_OF_MAPS, U.BPF_MAP_TYPE_HASH_OF_MAPS, U.BPF_MAP_TYPE_ARENA)]


@pytest.mark.parametrize("profile", pybpfmem.PROFILE_NAMES)
@pytest.mark.parametrize("shape", _FAMILY_SHAPES, ids=lambda s: U.MAP_TYPE_NAMES[s[0]])
def test_every_family_creates_and_frees_cleanly(profile, shape):
    mt, ks, vs, me, flags, kw, since = shape
    sys_, a, t = make(profile)
    if profile == "5.10":
        t.setrlimit(U.RLIMIT_MEMLOCK, U.RLIM_INFINITY, U.RLIM_INFINITY)
    exists = pybpfmem.PROFILE_NAMES.index(profile) >= pybpfmem.PROFILE_NAMES.index(since)
    with t.running(cpu=0):
        if not exists:                              # type unknown to that kernel -> -EINVAL
            with pytest.raises(OSError) as ei:
                t.bpf_map_create(mt, ks, vs, me, flags, **kw)
            assert ei.value.errno == errno.EINVAL
            return
        fd = t.bpf_map_create(mt, ks, vs, me, flags, **kw)
    info = map_info(sys_, map_id_of(t, fd))
    if profile == "5.10":
        # the legacy regime accounts nothing to memcg for map creation
        assert sum(info["requested"].values()) == 0
        assert int(t.fdinfo(fd)["memlock"]) % PAGE == 0
    else:
        assert info["memcg"] == "/a"
    teardown_is_clean(sys_, t, [fd], [a])


def test_local_storage_without_btf_is_einval():
    # live 6.18: SK_STORAGE without btf_key_type_id/btf_value_type_id -> EINVAL
    sys_, a, t = make("6.18")
    with t.running(cpu=0), pytest.raises(OSError) as ei:
        t.bpf_map_create(U.BPF_MAP_TYPE_SK_STORAGE, 4, 64, 0, U.BPF_F_NO_PREALLOC)
    assert ei.value.errno == errno.EINVAL
