"""Program-side helpers through the System: ringbuf, local storage, stack ids, bloom
peek — in whatever context is current — and the owners' teardown."""

import errno

import pytest

import pybpfmem
from pybpfmem.bpf import uapi as U

BTF = {"btf_fd": 3, "btf_key_type_id": 1, "btf_value_type_id": 2}


def setup(profile="6.18"):
    s = pybpfmem.System(nr_cpus=2, profile=profile)
    a = s.root.mkdir("a")
    t = s.spawn(cgroup=a)
    return s, a, t


def map_id(t, fd):
    return t.bpf_obj_get_info_by_fd(fd)["id"]


def test_ringbuf_helpers_in_interrupt_context():
    s, a, t = setup()
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096)
    mid = map_id(t, fd)
    with s.in_interrupt(cpu=1):
        # __bpf_ringbuf_reserve: records are size + 8-byte header, 8-aligned; a
        # 4096-byte ring holds at most 4095 bytes of records: 2008 + 2008 fit
        r1 = s.helper_ringbuf_reserve(mid, 2000)
        r2 = s.helper_ringbuf_reserve(mid, 2000)
        assert r1 == 0 and r2 == 2008
        assert s.helper_ringbuf_reserve(mid, 100) is None        # 4016 + 112 > 4095
        s.helper_ringbuf_submit(mid, r1)
        s.helper_ringbuf_discard(mid, r2)
        with pytest.raises(OSError):
            s.helper_ringbuf_submit(mid, r1)                     # not reserved any more
    with pytest.raises(OSError) as ei:                           # no context at all
        s.helper_ringbuf_reserve(mid, 8)
    assert ei.value.errno == errno.EINVAL


def test_task_storage_is_freed_when_the_task_exits():
    s, a, t = setup()
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_TASK_STORAGE, 4, 16, 0, U.BPF_F_NO_PREALLOC, **BTF)
    mid = map_id(t, fd)
    other = s.spawn(cgroup=a)
    s.drain_all_stock()
    before = s.bpf_maps()[0]["charged"]
    with s.in_interrupt(cpu=1):
        # F_CREATE from interrupt context: charged to the map's memcg
        assert s.helper_task_storage_get(mid, other, None, 1) == bytes(16)
        assert s.helper_task_storage_get(mid, other) == bytes(16)   # found, no create
    grown = s.bpf_maps()[0]["charged"]
    assert grown != before
    other.exit()                                    # bpf_task_storage_free()
    assert s.bpf_maps()[0]["charged"] == before


def test_cgrp_storage_is_freed_with_the_cgroup():
    s, a, t = setup()
    b = s.root.mkdir("b")
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_CGRP_STORAGE, 4, 8, 0, U.BPF_F_NO_PREALLOC, **BTF)
        mid = map_id(t, fd)
        before = s.bpf_maps()[0]["charged"]
        assert s.helper_cgrp_storage_get(mid, b, b"\x01" * 8, 1) == b"\x01" * 8
    b.rmdir()
    assert s.bpf_maps()[0]["charged"] == before


def test_helper_on_the_wrong_map_type_is_refused():
    s, a, t = setup()
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_ARRAY, 4, 8, 4)
        mid = map_id(t, fd)
        for call in (lambda: s.helper_ringbuf_reserve(mid, 8),
                     lambda: s.helper_sk_storage_get(mid, object()),
                     lambda: s.helper_get_stackid(mid, bytes(8))):
            with pytest.raises(OSError) as ei:
                call()
            assert ei.value.errno == errno.EINVAL


def test_bloom_peek_membership():
    s, a, t = setup()
    with t.running(cpu=0):
        fd = t.bpf_map_create(U.BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 100)
        mid = map_id(t, fd)
        # an empty filter has no bit set: every value is "definitely not in" it
        assert s.helper_map_peek_elem(mid, b"12345678") == -errno.ENOENT
        assert s.helper_map_push_elem(mid, b"12345678") == 0
        assert s.helper_map_peek_elem(mid, b"12345678") == 0


def _storage_prog(t, storage_fd):
    return t.bpf_prog_load(U.BPF_PROG_TYPE_CGROUP_SKB, 4, maps=[storage_fd])


@pytest.mark.parametrize("profile", ["5.11", "6.18"])
def test_cgroup_prog_attach_allocates_storage_and_detach_frees_it(profile):
    s, a, t = setup(profile)
    b = s.root.mkdir("b")
    with t.running(cpu=0):
        st_fd = t.bpf_map_create(U.BPF_MAP_TYPE_CGROUP_STORAGE, 16, 64, 0)
        prog = _storage_prog(t, st_fd)
        cg_fd = t.open_cgroup(b)
        m = s.bpf_maps()[0]
        before = m["charged"]
        t.bpf_prog_attach(prog, cg_fd, U.BPF_CGROUP_INET_INGRESS)
    # one bpf_cgroup_storage + a shared buffer (bpf_storage_buffer + 64 bytes)
    after = s.bpf_maps()[0]["charged"]
    assert after["slab"] > before["slab"]
    # attaching the same program twice to the same point is EEXIST; a second
    # program without BPF_F_ALLOW_MULTI is EPERM; with it, the instance is shared
    with t.running(cpu=0):
        with pytest.raises(OSError) as ei:
            t.bpf_prog_attach(prog, cg_fd, U.BPF_CGROUP_INET_INGRESS)
        assert ei.value.errno == errno.EEXIST
        prog2 = _storage_prog(t, st_fd)
        with pytest.raises(OSError) as ei:
            t.bpf_prog_attach(prog2, cg_fd, U.BPF_CGROUP_INET_INGRESS)
        assert ei.value.errno == errno.EPERM
        t.bpf_prog_attach(prog2, cg_fd, U.BPF_CGROUP_INET_INGRESS, U.BPF_F_ALLOW_MULTI)
    assert s.bpf_maps()[0]["charged"] == after
    # the key of a CGROUP_STORAGE element: u64 cgroup id + u32 attach type (+ pad)
    key = b.id.to_bytes(8, "little") + U.BPF_CGROUP_INET_INGRESS.to_bytes(4, "little") + bytes(4)
    assert t.bpf_map_lookup_elem(st_fd, key) == bytes(64)
    with t.running(cpu=0):
        t.bpf_prog_detach(cg_fd, U.BPF_CGROUP_INET_INGRESS, prog)
        assert s.bpf_maps()[0]["charged"] == after          # prog2 still uses it
        t.bpf_prog_detach(cg_fd, U.BPF_CGROUP_INET_INGRESS, prog2)
        assert s.bpf_maps()[0]["charged"] == before
        with pytest.raises(OSError) as ei:
            t.bpf_prog_detach(cg_fd, U.BPF_CGROUP_INET_INGRESS, prog2)
        assert ei.value.errno == errno.ENOENT


def test_rmdir_detaches_cgroup_programs():
    s, a, t = setup("6.18")
    b = s.root.mkdir("b")
    with t.running(cpu=0):
        st_fd = t.bpf_map_create(U.BPF_MAP_TYPE_CGROUP_STORAGE, 16, 64, 0)
        prog = _storage_prog(t, st_fd)
        cg_fd = t.open_cgroup(b)
        before = s.bpf_maps()[0]["charged"]
        t.bpf_prog_attach(prog, cg_fd, U.BPF_CGROUP_INET_EGRESS)
        t.close(cg_fd)
    b.rmdir()
    assert s.bpf_maps()[0]["charged"] == before
    with pytest.raises(OSError) as ei:
        t.bpf_prog_attach(prog, st_fd, U.BPF_CGROUP_INET_EGRESS)   # not a cgroup fd
    assert ei.value.errno == errno.EBADF
