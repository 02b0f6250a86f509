"""Writing many new entries into a map at once: what n BPF_MAP_UPDATE_ELEM calls leave
behind, without n trips through the syscall path (``pybpfmem plan`` fills maps with it).

``fill(task, fd, n)`` writes n entries with new keys (zero values unless given) into the
map behind the task's fd, as n updates from that task on cpu 0 would: the same
allocations in the same order and context, and the same element state.  Where a family's
update rule allows it the bulk of them is done in a few C calls (``HashMap.bulk_fill()``,
``LpmTrieMap.bulk_fill()``); any other map, and ``bulk=False``, takes the element loop
itself.  tests/test_fill.py compares the two at several sizes for every map family under
every profile.

The keys: a little-endian counter in hash keys, the index in arrays, full-length
prefixes in an LPM trie (``spare`` keys in the upper half of the key space, written
first one by one, then the rest from 0 up in the lower half: an operation on a spare key
never reaches the bulk-written ones).  ``capacity()`` is how many distinct keys a map can
hold.
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

from . import uapi as U
from .errors import BpfError
from .hashtab import HashMap
from .map import BpfMap

# map types without a key (BPF_MAP_UPDATE_ELEM pushes the value)
_PUSHED = (U.BPF_MAP_TYPE_QUEUE, U.BPF_MAP_TYPE_STACK, U.BPF_MAP_TYPE_BLOOM_FILTER)
# map types indexed 0..max_entries-1
_INDEXED = (U.BPF_MAP_TYPE_ARRAY, U.BPF_MAP_TYPE_PERCPU_ARRAY, U.BPF_MAP_TYPE_PROG_ARRAY,
            U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, U.BPF_MAP_TYPE_CGROUP_ARRAY,
            U.BPF_MAP_TYPE_ARRAY_OF_MAPS, U.BPF_MAP_TYPE_DEVMAP)
# map types keyed by a counter
_COUNTED = (U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_PERCPU_HASH, U.BPF_MAP_TYPE_LRU_HASH,
            U.BPF_MAP_TYPE_LRU_PERCPU_HASH, U.BPF_MAP_TYPE_HASH_OF_MAPS,
            U.BPF_MAP_TYPE_DEVMAP_HASH)
FILLABLE = frozenset(_PUSHED + _INDEXED + _COUNTED + (U.BPF_MAP_TYPE_LPM_TRIE,))


def capacity(m: BpfMap) -> int:
    """How many entries ``fill()`` can write into the empty map: max_entries, or fewer
    where the key has fewer distinct values (a 1-byte hash key: 256; an LPM trie's
    full-length prefixes)."""
    if m.map_type not in FILLABLE:
        raise ValueError(f"map type {U.MAP_TYPE_NAMES.get(m.map_type)} cannot be filled")
    if m.map_type in _COUNTED:
        return min(m.max_entries, 1 << (8 * m.key_size))
    if m.map_type == U.BPF_MAP_TYPE_LPM_TRIE:
        return min(m.max_entries, 1 << (8 * (m.key_size - 4)))
    return m.max_entries


def _hash_keys(key_size: int, start: int, n: int) -> bytes:
    """Keys start .. start+n-1 as little-endian counters of key_size bytes."""
    idx = np.arange(start, start + n, dtype=np.uint64)
    width = min(key_size, 8)
    keys = np.zeros((n, key_size), dtype=np.uint8)
    keys[:, :width] = idx.astype("<u8").view(np.uint8).reshape(n, 8)[:, :width]
    return keys.tobytes()


def lpm_key(m: BpfMap, j: int, upper: bool) -> bytes:
    """The full-length prefix number j of the lower (or upper) half of the key space."""
    ds = m.key_size - 4
    data = j | (1 << (8 * ds - 1)) if upper else j
    return (8 * ds).to_bytes(4, "little") + data.to_bytes(ds, "big")


def key_at(m: BpfMap, i: int) -> bytes | None:
    """The key of fill entry i (the bulk part of an LPM trie: its lower half)."""
    if m.map_type in _PUSHED:
        return None
    if m.map_type == U.BPF_MAP_TYPE_LPM_TRIE:
        return lpm_key(m, i, False)
    if m.map_type in _INDEXED:
        return i.to_bytes(4, "little")
    return _hash_keys(m.key_size, i, 1)


def fill(task: Any, fd: int, n: int, *, spare: int = 0, value: bytes | None = None,
         bulk: bool = True) -> list[bytes]:
    """Write n entries with new keys into the map behind ``fd`` as n BPF_MAP_UPDATE_ELEM
    calls of ``task`` (BPF_ANY) would, on cpu 0 unless the task is running.  ``value`` is
    the syscall value of every entry (an fd for the maps of fds; zeros by default).
    Returns ``spare`` of the keys written that the caller may delete and write again
    without an operation on the others.  Errors as the loop's first failing update (with
    the updates before it done)."""
    m = _map_of(task, fd)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not 0 <= spare <= n:
        raise ValueError(f"spare must be in 0..{n}, got {spare!r}")
    cap = capacity(m)
    if n > cap:
        raise ValueError(f"map {m.name or m.id!r} holds at most {cap} distinct keys, not {n}")
    vs = m.syscall_value_size()
    if value is None:
        value = bytes(vs)
    elif len(value) != vs:
        raise ValueError(f"value must be {vs} bytes, got {len(value)}")
    t = m.map_type
    if t in _PUSHED:
        _loop(task, fd, [None] * n, value)
        return []
    if t == U.BPF_MAP_TYPE_LPM_TRIE:
        upper = [lpm_key(m, j, True) for j in range(spare)]
        _loop(task, fd, upper, value)
        rest = n - spare
        if not (bulk and value == bytes(vs) and rest and _bulk(task, fd, m, lambda: m.bulk_fill(rest))):
            _loop(task, fd, [lpm_key(m, j, False) for j in range(rest)], value)
        return upper
    if t in _INDEXED:
        keys = [i.to_bytes(4, "little") for i in range(n)]
        _loop(task, fd, keys, value)
        return keys[:spare]
    first = len(m) if isinstance(m, HashMap) else 0
    kb = _hash_keys(m.key_size, first, n)
    keys_of = m.key_size
    # counter keys are distinct; into an empty map they are new
    if not (bulk and value == bytes(vs) and isinstance(m, HashMap) and n
            and _bulk(task, fd, m, lambda: m.bulk_fill(kb, n, distinct_new=first == 0))):
        _loop(task, fd, [kb[i * keys_of:(i + 1) * keys_of] for i in range(n)], value)
    return [kb[i * keys_of:(i + 1) * keys_of] for i in range(spare)]


def _map_of(task: Any, fd: int) -> BpfMap:
    f = task.bpf_task.fds.get(fd)
    if not isinstance(f.obj, BpfMap):
        raise BpfError(errno.EINVAL, f"fd {fd} is not a map")
    return f.obj


def _loop(task: Any, fd: int, keys: list[bytes | None], value: bytes) -> None:
    """The element path: one syscall update per key."""
    update = task.bpf_map_update_elem
    with _running(task):
        for k in keys:
            update(fd, k, value)


def _bulk(task: Any, fd: int, m: BpfMap, run: Callable[[], bool]) -> bool:
    """A family's bulk fill, with the checks each syscall update makes first (the
    entry check, write permission) and the deferred work it settles after."""
    from .syscall import check_update, entry_check

    if not task.alive:
        raise BpfError(errno.ESRCH, f"task {task.pid} has exited")
    entry_check(task, U.BPF_MAP_UPDATE_ELEM)
    check_update(task.bpf_task.fds.get(fd), m, U.BPF_ANY)
    try:
        with _running(task):
            return run()
    finally:
        task.system.bpf_state.settle_now()


@contextmanager
def _running(task: Any) -> Iterator[None]:
    """The task's context on cpu 0 unless it runs already (as a syscall runs)."""
    if task.system.current_task is task:
        yield
    else:
        with task.running(cpu=0):
            yield


__all__ = ["fill", "capacity", "key_at", "lpm_key", "FILLABLE"]
