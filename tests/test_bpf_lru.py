"""LRU hash maps: the lists of kernel/bpf/bpf_lru_list.c (csrc/bpf_lru_list.c) with
victims derived by hand from the kernel's rules, and the LRU paths of hashtab.py.

Notation in the comments: lists from head to tail, ``k3*`` = key 3 with its ref bit
set, ``fresh n`` = n never-used free nodes.  Rules used (kernel/bpf/bpf_lru_list.c):
  * a new element's node comes from the cpu's local free list; an empty one is
    refilled (bpf_lru_list_pop_free_to_local()): the cpu's pending nodes move to the
    head of active (referenced) or inactive, oldest first (__local_list_flush());
    rotation (__bpf_lru_list_rotate()); up to target_free free nodes; the rest
    shrunk from the tail of inactive (unreferenced ones evicted, referenced ones to
    active; none at all: the tail-most node of inactive, else active, is evicted);
  * target_free = 128, or (switch lru_target_free_clamp: 6.6, 6.12, 6.18)
    clamp(max_entries / possible cpus / 2, 1, 128);
  * the node joins the head of the cpu's pending list; a failed update, or a delete
    of a pending element, puts it on its cpu's local free list; the old node of a
    replaced element, or a deleted non-pending one, goes to the common free list;
  * BPF_F_NO_COMMON_LRU: each cpu has its own list set; a pop rotates it, shrinks
    PERCPU_FREE_TARGET (4) nodes into its free list when that is empty, and puts
    the first free node at the head of inactive.
The rotation of inactive ends where it began in every case below (its walk stops
at the node after the cursor, which was the list head), so only its ref moves
show.
"""
from __future__ import annotations

import errno

import pytest

from pybpfmem._core import ffi, lib
from pybpfmem.bpf import uapi
from pybpfmem.bpf.hashtab import percpu_lru_entries

from bpfutil import current, errno_of, k, setup
from lru_steps import keys_of, run_model

CLAMP = lib.BM_HTAB_LRU_TARGET_FREE_CLAMP
NAMES = {lib.BM_HTAB_LRU_ACTIVE: "active", lib.BM_HTAB_LRU_INACTIVE: "inactive", lib.BM_HTAB_LRU_FREE: "free"}


def lru(max_entries: int, flags: int = CLAMP, nr_cpus: int = 2, vs: int = 8):
    h = ffi.gc(lib.bm_htab_new(4, vs, 0, max_entries, lib.BM_HTAB_LRU), lib.bm_htab_free)
    assert lib.bm_htab_lru_init(h, nr_cpus, flags) == 0
    return h


def upd(h, key: int, flags: int = 0, cpu: int = 0, vs: int = 8) -> int:
    return lib.bm_htab_lru_update(h, cpu, k(key), bytes(vs), flags, 1)


def touch(h, *keys: int) -> None:
    """A program's lookups: each marks its element referenced."""
    for key in keys:
        assert lib.bm_htab_lru_lookup(h, k(key), ffi.NULL) == 0


def keys(h) -> set[int]:
    n = lib.bm_htab_count(h)
    buf = bytearray(4 * n)
    assert lib.bm_htab_dump(h, ffi.from_buffer(buf), ffi.NULL, ffi.NULL, n) == n
    return {int.from_bytes(buf[i:i + 4], "little") for i in range(0, 4 * n, 4)}


def lst(h, cpu: int, t: int):
    """One list: the keys (``"k*"`` when referenced) head to tail; a free list: its length."""
    n = lib.bm_htab_lru_list(h, cpu, t, ffi.NULL, ffi.NULL, 0)
    assert n >= 0
    if t in (lib.BM_HTAB_LRU_FREE, lib.BM_HTAB_LRU_LOCAL_FREE):
        return n
    kb, refs = bytearray(4 * n), bytearray(n)
    assert lib.bm_htab_lru_list(h, cpu, t, ffi.from_buffer(kb), ffi.from_buffer("uint8_t[]", refs),
                                n) == n
    return [int.from_bytes(kb[4 * i:4 * i + 4], "little") if not refs[i]
            else f"{int.from_bytes(kb[4 * i:4 * i + 4], 'little')}*" for i in range(n)]


def common(h, nr_cpus: int = 2) -> dict:
    """The common LRU's lists and each cpu's local free (length) and pending lists."""
    out = {name: lst(h, 0, t) for t, name in NAMES.items()}
    for c in range(nr_cpus):
        out[f"free{c}"] = lst(h, c, lib.BM_HTAB_LRU_LOCAL_FREE)
        out[f"pending{c}"] = lst(h, c, lib.BM_HTAB_LRU_LOCAL_PENDING)
    return out


def percpu(h, cpu: int) -> dict:
    return {name: lst(h, cpu, t) for t, name in NAMES.items()}


def fill(h, n: int, cpu: int = 0) -> None:
    for i in range(n):
        assert upd(h, i, cpu=cpu) == 0


# ------------------------------------------------------------------ common LRU
def test_fill_then_refs_protect_and_shrink_frees_target_free():
    # max_entries 8 on 2 cpus, 6.18: target_free = clamp(8 / 2 / 2, 1, 128) = 2.
    h = lru(8)
    fill(h, 8)
    # each refill flushes the 2 pending nodes into inactive and takes 2 fresh nodes:
    # k0 k1 from refill 1, k2 k3 from refill 2 (k0 k1 to inactive) ... k6 k7 from refill 4
    assert common(h) == {"active": [], "inactive": [5, 4, 3, 2, 1, 0], "free": 0,
                         "free0": 0, "pending0": [7, 6], "free1": 0, "pending1": []}
    touch(h, 0, 1)
    assert lst(h, 0, lib.BM_HTAB_LRU_INACTIVE) == [5, 4, 3, 2, "1*", "0*"]
    # k8: refill: flush k6, k7 -> inactive [7 6 5 4 3 2 1* 0*]; rotation moves the
    # referenced k0, then k1, to active (refs cleared); nothing free, so shrink 2 from
    # the tail of inactive: k2, k3 evicted onto the local free list; k8 takes one
    assert upd(h, 8) == 0
    assert common(h) == {"active": [1, 0], "inactive": [7, 6, 5, 4], "free": 0,
                         "free0": 1, "pending0": [8], "free1": 0, "pending1": []}
    assert keys(h) == {0, 1, 4, 5, 6, 7, 8}
    assert upd(h, 9) == 0           # the second node of that refill: no eviction
    # k10: flush k8, k9 -> inactive [9 8 7 6 5 4]; shrink 2: k4, k5
    assert upd(h, 10) == 0
    assert keys(h) == {0, 1, 6, 7, 8, 9, 10}
    assert common(h)["inactive"] == [9, 8, 7, 6] and common(h)["active"] == [1, 0]


def test_target_free_128_without_the_clamp():
    # the same steps before d4adf1c9ee77 (target_free 128): the first refill takes
    # all 8 fresh nodes, so k0..k7 all wait on cpu0's pending list; k8's refill
    # flushes them (k0*, k1* to active, the rest to inactive) and shrinks up to
    # 128 from inactive: all six unreferenced keys go at once
    h = lru(8, flags=0)
    fill(h, 8)
    assert common(h)["pending0"] == [7, 6, 5, 4, 3, 2, 1, 0] and common(h)["free"] == 0
    touch(h, 0, 1)
    assert upd(h, 8) == 0
    assert common(h) == {"active": [1, 0], "inactive": [], "free": 0,
                         "free0": 5, "pending0": [8], "free1": 0, "pending1": []}
    assert keys(h) == {0, 1, 8}


def test_failed_update_on_a_full_map_still_evicts():
    # max 4 on 2 cpus: target_free 1.  After k0..k4: inactive [3 2 1], pending [4]
    # (k0 was evicted for k4).  BPF_EXIST on a missing key: htab_lru_map_update_elem()
    # pops a node first -- a refill flushes k4 and shrinks 1: k1 goes -- then
    # check_flags() says -ENOENT and the node goes to cpu0's local free list.
    h = lru(4)
    fill(h, 5)
    assert keys(h) == {1, 2, 3, 4}
    assert upd(h, 100, uapi.BPF_EXIST) == -errno.ENOENT
    assert keys(h) == {2, 3, 4}
    assert common(h) == {"active": [], "inactive": [4, 3, 2], "free": 0,
                         "free0": 1, "pending0": [], "free1": 0, "pending1": []}
    # with a node on the local free list a failed update evicts nothing
    assert upd(h, 2, uapi.BPF_NOEXIST) == -errno.EEXIST
    assert upd(h, 200, uapi.BPF_EXIST) == -errno.ENOENT
    assert keys(h) == {2, 3, 4} and common(h)["free0"] == 1


def test_update_of_an_existing_key_can_evict_it_and_a_replace_is_referenced():
    h = lru(8)
    fill(h, 8)                      # inactive [5 4 3 2 1 0], pending0 [7 6]
    # updating k0 needs a node: the refill shrinks k0 and k1 -- k0 is gone before
    # the lookup, so the update inserts it anew (no ref: not a replace)
    assert upd(h, 0) == 0
    assert keys(h) == {0, 2, 3, 4, 5, 6, 7}
    # k2 is there: its new node (from the local free list) is marked referenced and
    # the old node goes to the common free list
    assert upd(h, 2) == 0
    assert common(h) == {"active": [], "inactive": [7, 6, 5, 4, 3], "free": 1,
                         "free0": 0, "pending0": ["2*", 0], "free1": 0, "pending1": []}
    # k8: flush k0 (inactive head), k2* (active); the free node, then shrink 1: k3
    assert upd(h, 8) == 0
    assert keys(h) == {0, 2, 4, 5, 6, 7, 8}
    assert common(h)["active"] == [2] and common(h)["inactive"] == [0, 7, 6, 5, 4]


def test_all_referenced_force_shrink_then_active_rotation():
    h = lru(4)
    fill(h, 4)                      # inactive [2 1 0], pending0 [3]
    touch(h, 0, 1, 2, 3)
    # k4: flush k3* -> active [3]; rotation moves k0*, k1*, k2* to active:
    # [2 1 0 3]; shrinking inactive frees nothing, so the force shrink takes the
    # tail of active (inactive is empty): k3
    assert upd(h, 4) == 0
    assert keys(h) == {0, 1, 2, 4}
    assert common(h)["active"] == [2, 1, 0] and common(h)["pending0"] == [4]
    # k5: flush k4 -> inactive [4]; inactive (1) < active (3), so the active list
    # rotates from its tail: k0, k1, k2 (unreferenced) to the head of inactive:
    # [2 1 0 4]; the shrink takes the tail: the newest key, k4
    assert upd(h, 5) == 0
    assert keys(h) == {0, 1, 2, 5}
    assert common(h)["inactive"] == [2, 1, 0] and common(h)["active"] == []


def test_deletes_return_pending_nodes_locally_and_others_to_the_common_list():
    h = lru(8)
    fill(h, 8)                      # inactive [5 4 3 2 1 0], pending0 [7 6]
    assert lib.bm_htab_delete(h, k(7), ffi.NULL) == 0       # pending: cpu0's free list
    assert lib.bm_htab_delete(h, k(0), ffi.NULL) == 0       # inactive: common free list
    assert lib.bm_htab_delete(h, k(0), ffi.NULL) == -errno.ENOENT
    assert common(h) == {"active": [], "inactive": [5, 4, 3, 2, 1], "free": 1,
                         "free0": 1, "pending0": [6], "free1": 0, "pending1": []}
    assert upd(h, 8) == 0           # the local free node
    # k9: flush k6, k8; the common free node; shrink 1 from the tail: k1
    assert upd(h, 9) == 0
    assert keys(h) == {2, 3, 4, 5, 6, 8, 9}


def test_steal_from_another_cpus_lists():
    # Without the clamp (target_free 128) cpu0's first refill takes all 4 nodes, so
    # cpu1 finds its lists and the common ones empty and steals, round-robin from its
    # next_steal (itself first, then cpu0): cpu0's pending list, unreferenced tail-most
    # first.  (With the clamp a cpu holds at most target_free <= max_entries /
    # nr_cpus / 2 nodes, so on 6.18 this path is not reached with 2 cpus.)
    h = lru(4, flags=0)
    fill(h, 4)                      # pending0 [3 2 1 0]
    touch(h, 0)
    assert upd(h, 4, cpu=1) == 0
    assert keys(h) == {0, 2, 3, 4}  # k0* skipped, k1 stolen
    assert common(h)["pending0"] == [3, 2, "0*"] and common(h)["pending1"] == [4]
    touch(h, 2, 3)
    # cpu0 refills: its pending k0*, k2*, k3* go to active, their bits cleared by the
    # move; inactive (0) < active (3), so the active rotation moves all three to
    # inactive, and the shrink (up to 128) evicts them all
    assert upd(h, 5, cpu=0) == 0
    assert keys(h) == {4, 5}
    assert common(h) == {"active": [], "inactive": [], "free": 0,
                         "free0": 2, "pending0": [5], "free1": 0, "pending1": [4]}
    h2 = lru(4, flags=0)
    fill(h2, 4)
    touch(h2, 0, 1, 2, 3)           # all referenced: the second pass ignores the bits
    assert upd(h2, 4, cpu=1) == 0
    assert keys(h2) == {1, 2, 3, 4}


# ------------------------------------------------------------------ BPF_F_NO_COMMON_LRU
def test_no_common_lru_each_cpu_evicts_from_its_own_list():
    # max 8 on 2 cpus: 4 nodes per cpu.  cpu0: k0..k3 -> inactive [3 2 1 0]
    h = lru(8, flags=lib.BM_HTAB_LRU_NO_COMMON)
    fill(h, 4)
    assert percpu(h, 0) == {"active": [], "inactive": [3, 2, 1, 0], "free": 0}
    assert percpu(h, 1) == {"active": [], "inactive": [], "free": 4}
    touch(h, 1)
    # k4: rotation moves k1* to active; the free list is empty, so shrink up to
    # PERCPU_FREE_TARGET (4) from inactive: k0, k2, k3 -- all three
    assert upd(h, 4) == 0
    assert keys(h) == {1, 4}
    assert percpu(h, 0) == {"active": [1], "inactive": [4], "free": 2}
    # cpu1 has its own 4 nodes: no eviction on cpu0's list
    assert upd(h, 5, cpu=1) == 0 and upd(h, 6, cpu=1) == 0
    assert keys(h) == {1, 4, 5, 6}
    # a node goes back to the list of the cpu that owns it, whoever deletes it
    assert lib.bm_htab_delete(h, k(1), ffi.NULL) == 0
    assert percpu(h, 0)["free"] == 3 and percpu(h, 1)["free"] == 2


def test_no_common_lru_store_needs_a_multiple_of_the_cpus():
    h = ffi.gc(lib.bm_htab_new(4, 8, 0, 7, lib.BM_HTAB_LRU), lib.bm_htab_free)
    assert lib.bm_htab_lru_init(h, 2, lib.BM_HTAB_LRU_NO_COMMON) == -errno.EINVAL
    assert lib.bm_htab_lru_init(h, 2, 0) == 0
    assert lib.bm_htab_lru_init(h, 2, 0) == -errno.EINVAL                 # once
    assert lib.bm_htab_lru_update(h, 2, k(1), bytes(8), 0, 1) == -errno.EINVAL   # cpu 2
    assert lib.bm_htab_lru_update(h, 0, k(1), bytes(8), uapi.BPF_F_LOCK, 1) == -errno.EINVAL
    assert lib.bm_htab_lru_list(h, 0, 5, ffi.NULL, ffi.NULL, 0) == -errno.EINVAL
    assert lib.bm_htab_lru_list(h, 2, lib.BM_HTAB_LRU_LOCAL_FREE, ffi.NULL, ffi.NULL, 0) == -errno.EINVAL
    assert lib.bm_htab_lru_lookup(h, k(1), ffi.NULL) == -errno.ENOENT
    plain = ffi.gc(lib.bm_htab_new(4, 8, 0, 8, 0), lib.bm_htab_free)
    assert lib.bm_htab_lru_init(plain, 2, 0) == -errno.EINVAL             # not an LRU store
    assert lib.bm_htab_lru_update(plain, 0, k(1), bytes(8), 0, 1) == -errno.EINVAL


# ------------------------------------------------------------------ LRU_PERCPU_HASH
def test_percpu_values_update_in_place_but_still_pop_a_node():
    # __htab_lru_percpu_map_update_elem(): a node is popped unless flags == BPF_EXIST,
    # even for a key that exists (updated in place, marked referenced; the node goes
    # back).  max 4, target_free 1; values 8 bytes x 2 cpus.
    h = lru(4, flags=CLAMP | lib.BM_HTAB_LRU_PERCPU_VALUES, vs=16)
    for i in range(4):
        assert upd(h, i, vs=16) == 0          # inactive [2 1 0], pending0 [3]
    # BPF_ANY on k1: the pop's refill flushes k3 and evicts k0; k1 is updated in place
    assert upd(h, 1, vs=16) == 0
    assert keys(h) == {1, 2, 3} and common(h)["free0"] == 1
    assert upd(h, 2, uapi.BPF_EXIST, vs=16) == 0      # no pop: nothing moves but k2's ref
    assert common(h)["inactive"] == [3, "2*", "1*"]
    assert upd(h, 9, vs=16) == 0                      # the local free node
    # k10: flush k9; rotation moves k1*, k2* to active; shrink 1: k3
    assert upd(h, 10, vs=16) == 0
    assert keys(h) == {1, 2, 9, 10}


def test_program_update_of_a_percpu_value_writes_its_cpu_only():
    # onallcpus false (pcpu_copy_value() / pcpu_init_value() from a program)
    h = lru(4, flags=CLAMP | lib.BM_HTAB_LRU_PERCPU_VALUES, vs=16)
    assert lib.bm_htab_lru_update(h, 1, k(5), b"A" * 16, 0, 0) == 0    # new: cpu0 zeroed
    assert lib.bm_htab_lru_update(h, 0, k(5), b"B" * 16, 0, 0) == 0    # in place: cpu0 only
    v = ffi.new("char[16]")
    assert lib.bm_htab_lookup(h, k(5), v, ffi.NULL) == 0
    assert ffi.unpack(v, 16) == b"B" * 8 + b"A" * 8


# ------------------------------------------------------------------ the map (hashtab.py)
def test_no_common_lru_rounds_max_entries_up_and_down_on_wrap():
    # htab_map_alloc(): roundup(max_entries, possible cpus) in u32; wrapped: rounddown
    assert percpu_lru_entries(5, 2) == 6 and percpu_lru_entries(6, 2) == 6
    assert percpu_lru_entries(7, 4) == 8
    assert percpu_lru_entries(0xFFFFFFFF, 2) == 0xFFFFFFFE     # 0xFFFFFFFF + 1 wraps to 0
    s, a, t = setup("6.18")
    fd = t.bpf_map_create(uapi.BPF_MAP_TYPE_LRU_HASH, 4, 8, 5, uapi.BPF_F_NO_COMMON_LRU)
    assert t.bpf_obj_get_info_by_fd(fd)["max_entries"] == 6
    for profile in ("5.10", "6.18"):      # then E2BIG: 2^31 (6.18), n_buckets (5.10)
        s, a, t = setup(profile)
        assert errno_of(t.bpf_map_create, uapi.BPF_MAP_TYPE_LRU_HASH, 4, 8, 0xFFFFFFFF,
                        uapi.BPF_F_NO_COMMON_LRU) == errno.E2BIG


# lru_target_free_clamp: v6.16, in 6.6.99 and 6.12.39 (6.6.150 and 6.12.94 have it; 6.1.166,
# 5.15.215, 5.10.265 and 6.8.0 do not)
_CLAMPED = [0, 1, 6, 7, 8, 9, 10]        # test_fill_then_refs_protect_and_...
_UNCLAMPED = [0, 1, 8, 9, 10]            # test_target_free_128_without_the_clamp


@pytest.mark.parametrize("profile, survivors", [
    ("5.10", _UNCLAMPED), ("5.11", _UNCLAMPED), ("5.15", _UNCLAMPED), ("6.1", _UNCLAMPED),
    ("6.6", _CLAMPED), ("6.8", _UNCLAMPED), ("6.12", _CLAMPED), ("6.18", _CLAMPED),
])
def test_program_lookups_and_updates_through_the_syscalls(profile, survivors):
    steps = [["create", "LRU_HASH", 8, 0]] + [["update", i, 0] for i in range(8)] + \
            [["sys_lookup", 2], ["lookup", [0, 1]], ["sys_lookup", 3]] + \
            [["update", i, 0] for i in (8, 9, 10)]
    obs = run_model(steps, profile)
    assert keys_of(obs[-1]) == survivors


def test_updates_run_on_the_calling_cpu():
    # two tasks on two cpus, NO_COMMON_LRU max 4 (2 per cpu): each cpu's third key
    # evicts from that cpu's own list (shrink up to 4: both of its keys)
    s, a, t0 = setup("6.18")
    t1 = s.spawn(cgroup=a)
    with t0.running(cpu=0):
        fd = t0.bpf_map_create(uapi.BPF_MAP_TYPE_LRU_HASH, 4, 8, 4, uapi.BPF_F_NO_COMMON_LRU)
        t0.bpf_map_update_elem(fd, k(0), bytes(8))
        t0.bpf_map_update_elem(fd, k(1), bytes(8))
    t1_fd = t1.bpf_map_get_fd_by_id(t0.fd_object(fd).id)
    with t1.running(cpu=1):
        for i in (10, 11):
            t1.bpf_map_update_elem(t1_fd, k(i), bytes(8))
    m = t0.fd_object(fd)
    assert sorted(int.from_bytes(x, "little") for x, _ in m.items()) == [0, 1, 10, 11]
    with t0.running(cpu=0):
        t0.bpf_map_update_elem(fd, k(2), bytes(8))
    assert sorted(int.from_bytes(x, "little") for x, _ in m.items()) == [2, 10, 11]
    # a syscall of a task that is not running runs on cpu 0 (_in_syscall)
    t1.bpf_map_update_elem(t1_fd, k(3), bytes(8))
    assert sorted(int.from_bytes(x, "little") for x, _ in m.items()) == [2, 3, 10, 11]


@pytest.mark.parametrize("profile", ["5.11", "6.18"])
def test_lru_churn_charges_nothing(profile):
    # prealloc: htab_map_alloc() allocates every element; updates, evictions and
    # deletes allocate and free nothing (the LRU lists' per-cpu heads are plain
    # alloc_percpu() without __GFP_ACCOUNT in every release: never charged)
    s, a, t = setup(profile)
    with t.running(cpu=0):
        fd = t.bpf_map_create(uapi.BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 8, 64)
        before = current(s, a)
        for i in range(500):
            t.bpf_map_update_elem(fd, k(i % 97), bytes(16))
            if i % 7 == 0:
                s.helper_map_lookup_elem(t.fd_object(fd).id, k(i % 13))
            if i % 11 == 0:
                try:
                    t.bpf_map_delete_elem(fd, k(i % 89))
                except OSError:
                    pass
        assert len(t.fd_object(fd)) <= 64
        assert current(s, a) == before
    s.check()
