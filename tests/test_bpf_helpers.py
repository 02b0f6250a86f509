"""Program-side helpers through the System: ringbuf, local storage, stack ids, bloom
peek — in whatever context is current — and the owners' teardown."""

import errno

import pytest

import pybpfmem
from pybpfmem.bpf import kobjects
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
