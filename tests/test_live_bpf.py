"""The real bpf() syscall: attr packing, element commands, fdinfo memlock, errnos."""
import errno
import struct

import pytest

from pybpfmem.bpf import uapi
from pybpfmem.live import bpf

live = pytest.mark.live


def test_pack_map_create_offsets():
    # union bpf_attr MAP_CREATE: map_type@0 key@4 value@8 max@12 flags@16 name@28 map_extra@64
    a = bpf.pack_map_create(1, 4, 64, 1000, 1, name="abc", map_extra=7)
    assert struct.unpack_from("<IIIII", a, 0) == (1, 4, 64, 1000, 1)
    assert a[28:31] == b"abc" and a[31:44] == bytes(13)
    assert struct.unpack_from("<Q", a, 64)[0] == 7


def test_pack_rejects_bad_python_input():
    with pytest.raises(ValueError):
        bpf.pack_map_create(1, -1, 4, 1)
    with pytest.raises(ValueError):
        bpf.pack_map_create(1, 4, 4, 1, name="x" * 17)
    with pytest.raises(ValueError):
        bpf.map_type_id("NOT_A_TYPE")
    with pytest.raises(TypeError):
        bpf.map_type_id(1.5)  # type: ignore[arg-type]


def test_libc_handle_forks_nothing(monkeypatch):
    # ctypes.util.find_library() runs /sbin/ldconfig in a child process; inside a live
    # case that fork's kernel memory was charged to the measured cgroup (the "extra
    # page" of docs/fidelity.md).  The handle must come from dlopen(NULL) instead.
    import ctypes.util
    import subprocess

    def no(*a, **k):
        raise AssertionError("bpf() wrapper started a process")
    monkeypatch.setattr(ctypes.util, "find_library", no)
    monkeypatch.setattr(subprocess, "Popen", no)
    s = bpf._libc()
    assert s.libc.syscall.restype is ctypes.c_long and s.nr == bpf.syscall_number()


def test_syscall_number_table():
    assert bpf.syscall_number("x86_64") == 321
    assert bpf.syscall_number("aarch64") == 280
    with pytest.raises(OSError) as ei:
        bpf.syscall_number("vax")
    assert ei.value.errno == errno.ENOSYS


def test_cpu_list():
    assert bpf.parse_cpu_list("0-1\n") == 2
    assert bpf.parse_cpu_list("0-3,6,8-9") == 7


@live
def test_array_memlock_and_ops():
    # array_map_mem_usage(): sizeof(struct bpf_array) + max_entries * round_up(value, 8)
    from pybpfmem.btf import read_struct_sizes as host_struct_sizes
    arr = host_struct_sizes(names=("bpf_array",))["bpf_array"]
    with bpf.map_create("ARRAY", 4, 64, 1000) as m:
        assert m.memlock == arr + 1000 * 64
        m.update(3, b"x" * 64)
        assert m.lookup(3) == b"x" * 64
        # array_map_delete_elem() always refuses
        with pytest.raises(OSError) as ei:
            m.delete(3)
        assert ei.value.errno == errno.EINVAL
        info = m.info()
        assert (info.type, info.key_size, info.value_size, info.max_entries) == (2, 4, 64, 1000)


@live
def test_hash_elements_batch_and_freeze():
    with bpf.map_create("HASH", 4, 8, 16, bpf.BPF_F_NO_PREALLOC) as m:
        empty = m.memlock
        keys = [i.to_bytes(4, "little") for i in range(5)]
        assert m.update_batch(keys, [b"v" * 8] * 5) == 5
        # htab_map_mem_usage() no-prealloc: per live element elem_size + LLIST_NODE_SZ =
        # (htab_elem 48 + round8(key 4) + round8(value 8)) + 8 (bpf_mem_alloc's llist node)
        assert m.memlock - empty == 5 * (48 + 8 + 8 + 8)
        assert sorted(k for k, _ in m.lookup_batch(chunk=8)) == keys
        with pytest.raises(OSError) as ei:
            m.update(0, b"w" * 8, uapi.BPF_NOEXIST)
        assert ei.value.errno == errno.EEXIST
        m.delete(0)
        with pytest.raises(OSError) as ei:
            m.delete(0)
        assert ei.value.errno == errno.ENOENT
        m.freeze()
        with pytest.raises(OSError) as ei:
            m.update(9, b"w" * 8)
        assert ei.value.errno == errno.EPERM  # map_update_elem(): frozen map
        fd = bpf.map_get_fd_by_id(m.info().id)
        try:
            assert bpf.obj_get_info_by_fd(fd).id == m.info().id
        finally:
            bpf.close(fd)


@live
@pytest.mark.parametrize("mt, k, v, mx, flags, err", [
    ("HASH", 0, 8, 10, 0, errno.EINVAL),            # htab_map_alloc_check(): key_size 0
    ("ARRAY", 4, 0, 10, 0, errno.EINVAL),           # array_map_alloc_check(): value_size 0
    ("ARRAY", 4, 8, 0, 0, errno.EINVAL),            # max_entries 0
    ("LRU_HASH", 4, 8, 10, 1, uapi.ENOTSUPP),       # htab_map_alloc_check(): LRU + NO_PREALLOC
    ("RINGBUF", 0, 0, 12345, 0, errno.EINVAL),      # ringbuf_map_alloc(): not a power of 2
    ("ARRAY", 4, 8, 10, 8 | 16, errno.EINVAL),      # RDONLY|WRONLY both
])
def test_invalid_attr_errnos(mt, k, v, mx, flags, err):
    with pytest.raises(OSError) as ei:
        bpf.map_create(mt, k, v, mx, flags)
    assert ei.value.errno == err
    assert "BPF_MAP_CREATE" in str(ei.value)
