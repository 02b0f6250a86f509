"""The C element store behind the hash maps (csrc/htab_store.c) on its own: the
update decisions of htab_map_update_elem(), insertion-order iteration, deletion
from a linear-probing table, and bulk inserts."""

from __future__ import annotations

import errno

import numpy as np

from pybpfmem._core import ffi, lib

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2


def _store(ks: int = 4, vs: int = 8, naux: int = 1, max_entries: int = 1 << 20, mode: int = 0):
    return ffi.gc(lib.bm_htab_new(ks, vs, naux, max_entries, mode), lib.bm_htab_free)


def _k(i: int) -> bytes:
    return i.to_bytes(4, "little")


def _keys(h, ks: int = 4) -> list[bytes]:
    n = lib.bm_htab_count(h)
    buf = bytearray(ks * n)
    assert lib.bm_htab_dump(h, ffi.from_buffer(buf), ffi.NULL, ffi.NULL, n) == n
    return [bytes(buf[i * ks:(i + 1) * ks]) for i in range(n)]


def test_update_flags_and_full_map() -> None:
    # check_flags(): NOEXIST on a present key -EEXIST, EXIST on a missing one -ENOENT;
    # a new key at max_entries (2) -E2BIG, a replace at max_entries still works
    h = _store(naux=0, max_entries=2)
    assert lib.bm_htab_update(h, _k(1), b"a" * 8, BPF_EXIST) == -errno.ENOENT
    assert lib.bm_htab_update(h, _k(1), b"a" * 8, BPF_NOEXIST) == 0
    assert lib.bm_htab_update(h, _k(1), b"b" * 8, BPF_NOEXIST) == -errno.EEXIST
    assert lib.bm_htab_update(h, _k(2), b"c" * 8, BPF_ANY) == 0
    assert lib.bm_htab_update(h, _k(3), b"d" * 8, BPF_ANY) == -errno.E2BIG
    assert lib.bm_htab_update(h, _k(1), b"e" * 8, BPF_EXIST) == 0
    v = ffi.new("char[8]")
    assert lib.bm_htab_lookup(h, _k(1), v, ffi.NULL) == 0 and ffi.unpack(v, 8) == b"e" * 8
    assert lib.bm_htab_count(h) == 2


def test_alloc_modes_ask_first_and_commit_returns_the_old_aux() -> None:
    # ALLOC_NEW: a new key returns 1 and changes nothing until the commit;
    # ALLOC_REPLACE: so does a present key, and the commit hands back its old aux word
    mode = lib.BM_HTAB_ALLOC_NEW | lib.BM_HTAB_ALLOC_REPLACE
    h, aux, old = _store(max_entries=10, mode=mode), ffi.new("uint64_t[4]"), ffi.new("uint64_t[4]")
    assert lib.bm_htab_update(h, _k(7), b"x" * 8, 0) == 1
    assert lib.bm_htab_count(h) == 0
    aux[0] = 0x1000
    assert lib.bm_htab_commit(h, _k(7), b"x" * 8, aux, old) == 0
    assert lib.bm_htab_update(h, _k(7), b"y" * 8, 0) == 1
    aux[0] = 0x2000
    assert lib.bm_htab_commit(h, _k(7), b"y" * 8, aux, old) == 1 and old[0] == 0x1000
    assert lib.bm_htab_delete(h, _k(7), old) == 0 and old[0] == 0x2000
    assert lib.bm_htab_delete(h, _k(7), old) == -errno.ENOENT


def test_lru_store_takes_updates_only_through_the_lru() -> None:
    # an LRU store's nodes are the LRU lists' (tests/test_bpf_lru.py): the plain update,
    # commit and bulk insert would bypass them, so they refuse it
    h = _store(naux=0, max_entries=3, mode=lib.BM_HTAB_LRU)
    assert lib.bm_htab_update(h, _k(1), bytes(8), 0) == -errno.EINVAL
    assert lib.bm_htab_commit(h, _k(1), bytes(8), ffi.NULL, ffi.NULL) == -errno.EINVAL
    assert lib.bm_htab_insert_bulk(h, _k(1), bytes(8), ffi.NULL, 1) == -errno.EINVAL
    assert lib.bm_htab_delete(h, _k(1), ffi.NULL) == -errno.EINVAL      # lists not set up
    assert lib.bm_htab_lru_init(h, 2, 0) == 0
    assert lib.bm_htab_lru_update(h, 1, _k(1), bytes(8), 0, 1) == 0
    assert _keys(h) == [_k(1)]
    assert lib.bm_htab_delete(h, _k(1), ffi.NULL) == 0 and _keys(h) == []


def test_next_key_follows_insertion_order_across_deletes() -> None:
    # insert 0..9, delete 3 and 0, re-insert 3: order 1 2 4 5 6 7 8 9 3
    h, old = _store(naux=0, max_entries=100), ffi.new("uint64_t[4]")
    for i in range(10):
        assert lib.bm_htab_update(h, _k(i), bytes(8), 0) == 0
    assert lib.bm_htab_delete(h, _k(3), old) == 0 and lib.bm_htab_delete(h, _k(0), old) == 0
    assert lib.bm_htab_update(h, _k(3), bytes(8), 0) == 0
    expect = [1, 2, 4, 5, 6, 7, 8, 9, 3]
    out, got, key = ffi.new("char[4]"), [], ffi.NULL
    while lib.bm_htab_next_key(h, key, out) == 0:
        got.append(int.from_bytes(ffi.unpack(out, 4), "little"))
        key = ffi.unpack(out, 4)
    assert got == expect
    # an absent key restarts at the first key
    assert lib.bm_htab_next_key(h, _k(77), out) == 0 and ffi.unpack(out, 4) == _k(1)


def test_bulk_insert_and_deletes_keep_every_key_findable() -> None:
    # 5000 keys in bulk with aux = 3*i; delete every third; the rest are all found with
    # their aux, the deleted ones are not (backward-shift deletion keeps probe chains)
    n = 5000
    h = _store()
    keys = np.arange(n, dtype=np.uint32).tobytes()
    aux = np.arange(n, dtype=np.uint64) * 3
    assert lib.bm_htab_all_new(h, keys, n) == 1
    assert lib.bm_htab_insert_bulk(h, keys, bytes(8 * n), ffi.cast("uint64_t *", ffi.from_buffer(aux)), n) == n
    assert lib.bm_htab_all_new(h, keys[:4], 1) == 0                  # key 0 is present now
    assert lib.bm_htab_all_new(h, _k(n) + _k(n), 2) == 0             # a repeated key
    out = ffi.new("uint64_t[4]")
    for i in range(0, n, 3):
        assert lib.bm_htab_delete(h, _k(i), out) == 0 and out[0] == 3 * i
    for i in range(n):
        rc = lib.bm_htab_lookup(h, _k(i), ffi.NULL, out)
        assert (rc, out[0] if rc == 0 else None) == ((-errno.ENOENT, None) if i % 3 == 0 else (0, 3 * i))
    assert lib.bm_htab_count(h) == n - len(range(0, n, 3))
