"""bpf() entry checks, per-type validation errnos and batch partial results."""

import errno

import pytest

import pybpfmem
from pybpfmem.bpf import (BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, BPF_MAP_CREATE,
                          BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH,
                          BPF_MAP_TYPE_PERCPU_ARRAY, ENOTSUPP, pack_attr)


@pytest.fixture
def task():
    s = pybpfmem.System(nr_cpus=2, page_size=4096, profile="6.18")
    return s.spawn(cgroup=s.root.mkdir("a"), uid=0)


def err(fn, *a, **k):
    with pytest.raises(OSError) as ei:
        fn(*a, **k)
    return ei.value.errno


def test_entry_checks(task):
    ok = pack_attr(BPF_MAP_CREATE, map_type=2, key_size=4, value_size=4, max_entries=1)
    assert err(task.bpf, 99, ok) == errno.EINVAL                       # unknown command
    assert err(task.bpf, BPF_MAP_CREATE, ok.ljust(4097, b"\0")) == errno.E2BIG  # > PAGE
    assert err(task.bpf, BPF_MAP_CREATE, ok.ljust(200, b"\0") + b"\1") == errno.E2BIG  # tail
    bad = bytearray(ok.ljust(152, b"\0"))
    bad[100] = 1                                   # after map_token_fd (ends at 80)
    assert err(task.bpf, BPF_MAP_CREATE, bytes(bad)) == errno.EINVAL  # CHECK_ATTR
    assert task.bpf(BPF_MAP_CREATE, ok) == 3       # lowest free fd after stdio


def test_array_validation(task):
    c = task.bpf_map_create
    assert err(c, BPF_MAP_TYPE_ARRAY, 8, 4, 1) == errno.EINVAL          # key_size != 4
    assert err(c, BPF_MAP_TYPE_ARRAY, 4, 0, 1) == errno.EINVAL          # value_size 0
    assert err(c, BPF_MAP_TYPE_ARRAY, 4, 4, 0) == errno.EINVAL          # max_entries 0
    assert err(c, BPF_MAP_TYPE_PERCPU_ARRAY, 4, 4, 1, BPF_F_MMAPABLE) == errno.EINVAL
    assert err(c, BPF_MAP_TYPE_PERCPU_ARRAY, 4, 32769, 1) == errno.E2BIG  # v8 > 32 KiB
    fd = c(BPF_MAP_TYPE_ARRAY, 4, 4, 2)
    k = (5).to_bytes(4, "little")
    assert err(task.bpf_map_update_elem, fd, k, b"abcd") == errno.E2BIG
    assert err(task.bpf_map_lookup_elem, fd, k) == errno.ENOENT
    assert err(task.bpf_map_update_elem, fd, bytes(4), b"abcd", 1) == errno.EEXIST
    assert err(task.bpf_map_delete_elem, fd, bytes(4)) == errno.EINVAL
    with pytest.raises(ValueError):
        task.bpf_map_update_elem(fd, bytes(3), b"abcd")


def test_hash_validation(task):
    c = task.bpf_map_create
    # 6.x: no key_size > MAX_BPF_STACK check any more (the live 6.18 kernel takes 600);
    # key_size + value_size >= KMALLOC_MAX_SIZE (4 MiB) - sizeof(htab_elem) is E2BIG
    assert err(c, BPF_MAP_TYPE_HASH, 4, (4 << 20) - 52, 1) == errno.E2BIG
    assert err(c, BPF_MAP_TYPE_HASH, 0, 4, 1) == errno.EINVAL
    assert err(c, BPF_MAP_TYPE_LRU_HASH, 4, 4, 1, BPF_F_NO_PREALLOC) == ENOTSUPP
    fd = c(BPF_MAP_TYPE_HASH, 4, 4, 2)
    assert err(task.bpf_map_update_elem, fd, bytes(4), b"abcd", 2) == errno.ENOENT
    task.bpf_map_update_elem(fd, bytes(4), b"abcd")
    assert err(task.bpf_map_update_elem, fd, bytes(4), b"abcd", 1) == errno.EEXIST
    assert err(task.bpf_map_delete_elem, fd, b"\1\0\0\0") == errno.ENOENT


def test_update_batch_partial_count(task):
    # max_entries 2: the third new key hits E2BIG; count reports the 2 done
    fd = task.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 4, 2, BPF_F_NO_PREALLOC)
    keys = [i.to_bytes(4, "little") for i in range(3)]
    with pytest.raises(OSError) as ei:
        task.bpf_map_update_batch(fd, keys, [b"vvvv"] * 3)
    assert ei.value.errno == errno.E2BIG and ei.value.count == 2


def test_array_lookup_batch_end(task):
    # 3 entries, count 5: all 3 copied, then -ENOENT with count 3 and out_batch = key 2
    fd = task.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 4, 3)
    task.bpf_map_update_elem(fd, (1).to_bytes(4, "little"), b"xxxx")
    with pytest.raises(OSError) as ei:
        task.bpf_map_lookup_batch(fd, None, 5)
    e = ei.value
    assert e.errno == errno.ENOENT and e.count == 3
    assert e.values == [bytes(4), b"xxxx", bytes(4)]
    assert e.out_batch == (2).to_bytes(4, "little")


def test_one_bpf_command_returns_to_user_once():
    # 5.15 (no payment inside try_charge_memcg before c9afe31ec443): a prealloc hash of
    # 16384 entries is created with many charges (the htab, its bucket array and its
    # element area, each a separate allocation, charging 11 batches of 32 pages between
    # them), all in one bpf() call over memory.high 0.  The debt is paid once, on the
    # way out: reclaim_high() 1 + MAX_RECLAIM_RETRIES = 17 times with nothing
    # reclaimable, one high event each (paid after each allocation it was 51).
    s = pybpfmem.System(nr_cpus=2, page_size=4096, profile="5.15", cgroup="v2", oom_kill=False)
    c = s.root.mkdir("c")
    t = s.spawn(cgroup=c)
    c.write("memory.high", "0")                     # drains c's stock: 4 stack pages left
    t.bpf_map_create(BPF_MAP_TYPE_HASH, 8, 8, 16384)
    assert (c.events()["high"], c.usage_pages) == (17, 4 + 11 * 32)
