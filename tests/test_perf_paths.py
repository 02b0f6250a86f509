"""The performance shortcuts must not change the model: each fast path is run side
by side with the general path it replaces on two identical Systems, and every
observable (charges, statistics, allocator state, map contents, errors and
counts) must come out the same."""

from __future__ import annotations

import errno

import numpy as np
import pytest

import pybpfmem
from pybpfmem import bpf
from pybpfmem.commands.bench import OP_CHARGE, OP_UNCHARGE, pair_ops
from pybpfmem.system import OP_DTYPE


def _state(system: pybpfmem.System, cg: pybpfmem.MemCgroup) -> tuple:
    return (cg.read("memory.current"), cg.stat(), cg.events(), system.root.stat())


def _hash_pair(profile: str, max_entries: int, mem_max: str | None = None):
    out = []
    for _ in range(2):
        s = pybpfmem.System(nr_cpus=2, profile=profile, cgroup="v2", ram="1G")
        cg = s.root.mkdir("a")
        t = s.spawn(cgroup=cg)
        with t.running(cpu=0):
            fd = t.bpf_map_create(bpf.BPF_MAP_TYPE_HASH, 4, 8, max_entries, bpf.BPF_F_NO_PREALLOC)
        if mem_max is not None:
            cg.write("memory.max", mem_max)
        out.append((s, cg, t, fd))
    return out


def _batch_vs_loop(pair, keys: list[bytes], values: list[bytes]):
    """update_batch on the first System, the same elements one bpf_map_update_elem
    at a time on the second; returns (count, errno) of each."""
    (s1, cg1, t1, fd1), (s2, cg2, t2, fd2) = pair
    res = []
    with t1.running(cpu=0):
        try:
            res.append((t1.bpf_map_update_batch(fd1, keys, values), 0))
        except OSError as e:
            res.append((e.count, e.errno))
    with t2.running(cpu=0):
        done, err = 0, 0
        for k, v in zip(keys, values):
            try:
                t2.bpf_map_update_elem(fd2, k, v)
            except OSError as e:
                err = e.errno
                break
            done += 1
        res.append((done, err))
    return res


def _same(pair) -> None:
    (s1, cg1, t1, fd1), (s2, cg2, t2, fd2) = pair
    assert _state(s1, cg1) == _state(s2, cg2)
    m1 = t1.bpf_task.fds.get(fd1).obj
    m2 = t2.bpf_task.fds.get(fd2).obj
    assert m1.items() == m2.items()                              # contents and insertion order
    assert m1.elem_objs() == m2.elem_objs()                      # the same allocator objects per key
    assert [c.free for c in m1.ma.caches] == [c.free for c in m2.ma.caches]
    assert (m1.ma.live, m1.ma.nobj) == (m2.ma.live, m2.ma.nobj)


@pytest.mark.parametrize("n", [1, 3, 200])
def test_hash_update_batch_fast_path_matches_element_loop(n: int) -> None:
    # 6.18: no-prealloc hash elements come from bpf_mem_alloc; the batch path pops and
    # refills in runs (BpfMemAlloc.alloc_many) instead of one alloc() per element
    pair = _hash_pair("6.18", 1000)
    keys = [i.to_bytes(4, "little") for i in range(n)]
    values = [(i * 7).to_bytes(8, "little") for i in range(n)]
    r = _batch_vs_loop(pair, keys, values)
    assert r[0] == r[1] == (n, 0)
    _same(pair)


def test_hash_update_batch_full_map_stops_with_e2big_at_the_same_element() -> None:
    # max_entries 10: elements 0..9 go in, element 10 fails with E2BIG (count 10)
    pair = _hash_pair("6.18", 10)
    keys = [i.to_bytes(4, "little") for i in range(25)]
    r = _batch_vs_loop(pair, keys, [bytes(8)] * 25)
    assert r[0] == r[1] == (10, errno.E2BIG)
    _same(pair)


def test_hash_update_batch_enomem_at_the_same_element() -> None:
    # memory.max at the creation usage: once the pages the stocks already hold are
    # used up (5000 64-byte units need ~80 pages, a stock holds < 64), a refill
    # charges nothing and an element finds the cache empty: ENOMEM
    pair = _hash_pair("6.18", 100_000)
    for s, cg, t, fd in pair:
        cg.write("memory.max", str(cg.usage_pages * s.page_size))
    keys = [i.to_bytes(4, "little") for i in range(5000)]
    r = _batch_vs_loop(pair, keys, [bytes(8)] * 5000)
    assert r[0] == r[1] and r[0][1] == errno.ENOMEM and 0 < r[0][0] < 5000
    _same(pair)


def test_hash_update_batch_duplicates_and_existing_keys_take_the_general_path() -> None:
    pair = _hash_pair("6.18", 100)
    first = [i.to_bytes(4, "little") for i in range(5)]
    assert _batch_vs_loop(pair, first, [bytes(8)] * 5) == [(5, 0), (5, 0)]
    # an existing key (replace) and a key twice in one batch
    keys = [b"\x03\0\0\0", b"\x09\0\0\0", b"\x09\0\0\0"]
    vals = [b"A" * 8, b"B" * 8, b"C" * 8]
    assert _batch_vs_loop(pair, keys, vals) == [(3, 0), (3, 0)]
    _same(pair)


@pytest.mark.parametrize("profile", ["5.11", "6.18"])
def test_replay_stock_path_matches_single_calls(profile: str) -> None:
    # bm_replay keeps the cpu's stock lock across a run of charge ops and finishes
    # stock hits inline; the same ops one Python call at a time must end the same
    systems = []
    for _ in range(2):
        s = pybpfmem.System(nr_cpus=2, profile=profile, cgroup="v2", ram="1G")
        a = s.root.mkdir("a")
        b = a.mkdir("b")
        systems.append((s, a, b))
    ops = np.concatenate([
        pair_ops(40, OP_CHARGE, OP_UNCHARGE, systems[0][2].id, 1, pybpfmem.GFP_KERNEL),
        pair_ops(10, OP_CHARGE, OP_CHARGE, systems[0][1].id, 3, pybpfmem.GFP_KERNEL, cpu=1),
        pair_ops(5, OP_UNCHARGE, OP_UNCHARGE, systems[0][1].id, 3, 0, cpu=0),   # other cpu's share
        pair_ops(3, OP_CHARGE, OP_UNCHARGE, systems[0][2].id, 100, pybpfmem.GFP_KERNEL),  # > batch
        pair_ops(1, OP_UNCHARGE, OP_UNCHARGE, systems[0][2].id, 1, 0),          # more than charged
    ])
    assert ops.dtype == OP_DTYPE
    s1, a1, b1 = systems[0]
    results = s1.replay(ops)
    s2, a2, b2 = systems[1]
    single = []
    for op in ops:
        cg = {a1.id: a2, b1.id: b2}[int(op["handle"])]
        try:
            if op["op"] == OP_CHARGE:
                cg.try_charge(int(op["arg"]), int(op["gfp"]), int(op["cpu"]))
            else:
                cg.uncharge(int(op["arg"]), int(op["cpu"]))
            single.append(0)
        except OSError as e:
            single.append(-e.errno)
    assert results.tolist() == single
    # the last two uncharges exceed what was charged: -EINVAL, nothing changed
    assert single[-2:] == [-errno.EINVAL, -errno.EINVAL]
    for x, y in ((a1, a2), (b1, b2)):
        assert _state(s1, x) == _state(s2, y)
    for cpu in range(2):
        assert s1.stock_info(cpu) == s2.stock_info(cpu)
    s1.drain_all_stock()
    s2.drain_all_stock()
    s1.check()
    s2.check()
    assert a1.read("memory.current") == a2.read("memory.current")


def test_ledger_shares_across_cpus_under_threads() -> None:
    # one thread charges on cpu 0 (the pages' ledger lands in cpu 0's stock slot),
    # another uncharges them on cpu 1 (which must collect cpu 0's share, racing with
    # its hits): every page is uncharged exactly once, -EINVAL only while cpu 0 has
    # not charged it yet, and everything is back to zero at the end
    import threading

    s = pybpfmem.System(nr_cpus=2, profile="6.18", cgroup="v2", ram="1G")
    a = s.root.mkdir("a")
    n = 20_000
    done = []

    def charger() -> None:
        for _ in range(n):
            a.try_charge(1, pybpfmem.GFP_KERNEL, cpu=0)

    def uncharger() -> None:
        got = 0
        while got < n:
            try:
                a.uncharge(1, cpu=1)
                got += 1
            except OSError as e:
                assert e.errno == errno.EINVAL
        done.append(got)

    threads = [threading.Thread(target=charger), threading.Thread(target=uncharger)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done == [n]
    with pytest.raises(OSError):      # nothing left to uncharge anywhere
        a.uncharge(1, cpu=0)
    s.drain_all_stock()
    assert a.usage_pages == 0
    s.check()
