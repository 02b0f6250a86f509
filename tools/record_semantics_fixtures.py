"""Record the live kernel's answers to the regression scripts of ``verify --semantics``.

Each case below is one class of divergence the harness found between the model and
the kernel (now fixed in the model): a short script and the kernel rule behind it.
Run as root on a 2-CPU host (the per-cpu values are two copies long)::

    .venv/bin/python tools/record_semantics_fixtures.py

It writes tests/fixtures/semantics/<case>.json with the script, what the running
kernel answered at each step and the kernel's release.  tests/test_bpf_semantics.py
replays every fixture on the model and compares with the recorded answers; its live
test replays them on the running kernel again.
"""
from __future__ import annotations

import json
import os
import platform
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pybpfmem.live import semantics as S  # noqa: E402
from pybpfmem.live.bpf import possible_cpus  # noqa: E402
from pybpfmem.live.session import LiveSession  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "semantics")
NO_PREALLOC, RDONLY, WRONLY, ZERO_SEED = 1, 8, 16, 64


def k(i: int, n: int = 4) -> str:
    return i.to_bytes(n, "little").hex()


def lpm(plen: int, data: bytes) -> str:
    return (plen.to_bytes(4, "little") + data).hex()


CASES: dict[str, tuple[str, list[dict]]] = {
    "std_fds": (
        "fds 0-2 are open and no map: __bpf_map_get() is -EINVAL for them (-EBADF only for "
        "a closed fd); bpf_map_meta_alloc() of inner_map_fd 0 too; bpf_obj_get_info_by_fd() "
        "of a closed fd is -EBADFD",
        [{"op": "lookup", "map": "@0", "key": k(0)},
         {"op": "update", "map": "@1", "key": k(0), "value": k(0), "flags": 0},
         {"op": "freeze", "map": "@2"},
         {"op": "lookup", "map": "@999", "key": k(0)},
         {"op": "create", "map": "o", "type": "ARRAY_OF_MAPS", "key": 4, "value": 4, "max": 2,
          "inner": 0},
         {"op": "create", "map": "o", "type": "HASH_OF_MAPS", "key": 4, "value": 4, "max": 2,
          "inner": "@999"},
         {"op": "lookup_batch", "map": "@0", "count": 4}]),
    "map_flags_of_the_fd": (
        "bpf_map_init_from_attr() keeps bpf_map_flags_retain_permanent(map_flags): "
        "BPF_F_RDONLY/WRONLY belong to the fd, bpf_map_info.map_flags drops them",
        [{"op": "create", "map": "m", "type": "HASH", "key": 4, "value": 4, "max": 4,
          "flags": RDONLY | ZERO_SEED},
         {"op": "create", "map": "w", "type": "ARRAY", "key": 4, "value": 4, "max": 4,
          "flags": WRONLY},
         {"op": "update", "map": "m", "key": k(1), "value": k(1), "flags": 0},
         {"op": "lookup", "map": "w", "key": k(1)}]),
    "lookup_flags_first": (
        "map_lookup_elem() and map_lookup_and_delete_elem() refuse flags other than "
        "BPF_F_LOCK before they look at the fd; BPF_F_LOCK itself is -EINVAL without a "
        "bpf_spin_lock in the value, after the access checks",
        [{"op": "lookup", "map": "@999", "key": k(0), "flags": 8},
         {"op": "lookup_and_delete", "map": "@999", "key": k(0), "flags": 1},
         {"op": "create", "map": "m", "type": "HASH", "key": 4, "value": 4, "max": 4},
         {"op": "lookup", "map": "m", "key": k(7), "flags": 4},
         {"op": "lookup_and_delete", "map": "m", "key": k(7), "flags": 4}]),
    "lookup_and_delete_types": (
        "map_lookup_and_delete_elem(): a queue/stack with any flag is -EINVAL; only queue, "
        "stack, the hash family and (v6.18) STACK_TRACE have the operation, every other "
        "type is -ENOTSUPP after the key is copied",
        [{"op": "create", "map": "q", "type": "QUEUE", "key": 0, "value": 4, "max": 2},
         {"op": "update", "map": "q", "key": None, "value": k(5), "flags": 0},
         {"op": "lookup_and_delete", "map": "q", "key": None, "flags": 4},
         {"op": "lookup_and_delete", "map": "q", "key": None, "flags": 0},
         {"op": "create", "map": "a", "type": "ARRAY", "key": 4, "value": 4, "max": 2},
         {"op": "lookup_and_delete", "map": "a", "key": k(0)},
         {"op": "create", "map": "s", "type": "STACK_TRACE", "key": 4, "value": 8, "max": 4},
         {"op": "lookup_and_delete", "map": "s", "key": k(1)}]),
    "freeze_twice": (
        "map_freeze() (v6.5+) needs write access as map_get_sys_perms() reports it, checked "
        "before the -EBUSY checks; a frozen map has none, so a second freeze is -EPERM, as "
        "is freezing through a read-only fd",
        [{"op": "create", "map": "m", "type": "ARRAY", "key": 4, "value": 4, "max": 2},
         {"op": "freeze", "map": "m"},
         {"op": "freeze", "map": "m"},
         {"op": "update", "map": "m", "key": k(0), "value": k(1), "flags": 0},
         {"op": "lookup", "map": "m", "key": k(0)},
         {"op": "create", "map": "r", "type": "ARRAY", "key": 4, "value": 4, "max": 2,
          "flags": RDONLY},
         {"op": "freeze", "map": "r"}]),
    "batch_flags": (
        "bpf_map_do_batch(): the generic batch ops never look at batch.flags (a hash "
        "delete batch with flags 1 deletes); the hash lookup batches refuse it "
        "(__htab_map_lookup_and_delete_batch()); an in_batch bucket past the table is "
        "-ENOENT with the count put to 0 first",
        [{"op": "create", "map": "m", "type": "HASH", "key": 4, "value": 4, "max": 4,
          "flags": ZERO_SEED},
         {"op": "update_batch", "map": "m", "keys": [k(1), k(2), k(3)],
          "values": [k(10), k(20), k(30)], "elem_flags": 0, "flags": 1},
         {"op": "delete_batch", "map": "m", "keys": [k(1), k(9)], "flags": 1},
         {"op": "lookup_batch", "map": "m", "count": 4, "flags": 1},
         {"op": "lookup_batch", "map": "m", "count": 3, "in_batch": "ffffffff"},
         {"op": "walk", "map": "m"}]),
    "hash_batch_buckets": (
        "__htab_map_lookup_and_delete_batch() walks the buckets of htab_map_hash() (jhash2 "
        "of the key, seed 0 with BPF_F_ZERO_SEED): whole buckets per call, -ENOSPC when the "
        "first one does not fit, out_batch the next bucket, -ENOENT at the end",
        [{"op": "create", "map": "m", "type": "HASH", "key": 4, "value": 4, "max": 8,
          "flags": ZERO_SEED},
         {"op": "update_batch", "map": "m", "keys": [k(i) for i in range(8)],
          "values": [k(100 + i) for i in range(8)]},
         {"op": "lookup_batch", "map": "m", "count": 1},
         {"op": "lookup_batch", "map": "m", "count": 3, "in_batch": "prev"},
         {"op": "lookup_batch", "map": "m", "count": 3, "in_batch": "prev", "delete": True},
         {"op": "lookup_batch", "map": "m", "count": 8, "in_batch": "prev"},
         {"op": "walk", "map": "m"}]),
    "lpm_prefixlen": (
        "trie_lookup_elem(): longest_prefix_match() stops at the lookup key's own prefixlen, "
        "so a longer stored prefix never matches a shorter key; trie_get_next_key() "
        "finds the key along its path (post-order walk)",
        [{"op": "create", "map": "m", "type": "LPM_TRIE", "key": 8, "value": 4, "max": 8,
          "flags": NO_PREALLOC},
         {"op": "update", "map": "m", "key": lpm(24, bytes([192, 168, 1, 0])), "value": k(24),
          "flags": 0},
         {"op": "update", "map": "m", "key": lpm(16, bytes([192, 168, 0, 0])), "value": k(16),
          "flags": 0},
         {"op": "lookup", "map": "m", "key": lpm(32, bytes([192, 168, 1, 7]))},
         {"op": "lookup", "map": "m", "key": lpm(20, bytes([192, 168, 1, 7]))},
         {"op": "lookup", "map": "m", "key": lpm(8, bytes([192, 168, 1, 7]))},
         {"op": "update", "map": "m", "key": lpm(16, bytes([192, 168, 9, 9])), "value": k(99),
          "flags": 2},
         {"op": "update", "map": "m", "key": lpm(16, bytes([192, 168, 0, 0])), "value": k(7),
          "flags": 1},
         {"op": "lookup", "map": "m", "key": lpm(16, bytes([192, 168, 0, 0]))},
         {"op": "next", "map": "m", "key": lpm(24, bytes([192, 168, 1, 99]))},
         {"op": "next", "map": "m", "key": lpm(16, bytes([192, 168, 0, 0]))},
         {"op": "walk", "map": "m"}]),
    "lpm_batch": (
        "trie_map_ops has the generic lookup/update/delete batches (v5.13): element by "
        "element, stopping at the first error with the count done",
        [{"op": "create", "map": "m", "type": "LPM_TRIE", "key": 5, "value": 4, "max": 3,
          "flags": NO_PREALLOC},
         {"op": "update_batch", "map": "m", "keys": [lpm(8, b"\x0a"), lpm(4, b"\x00"),
                                                    lpm(9, b"\x0a"), lpm(3, b"\xe0")],
          "values": [k(1), k(2), k(3), k(4)]},
         {"op": "lookup_batch", "map": "m", "count": 2},
         {"op": "lookup_batch", "map": "m", "count": 2, "in_batch": "prev"},
         {"op": "delete_batch", "map": "m", "keys": [lpm(8, b"\x0a"), lpm(8, b"\x0a")]},
         {"op": "lookup_batch", "map": "m", "count": 1, "delete": True}]),
    "map_in_map_batch": (
        "v5.19: ARRAY_OF_MAPS has the generic lookup/update batches and HASH_OF_MAPS the "
        "hash ones; values go in as fds and come out as the inner maps' ids",
        [{"op": "create", "map": "i1", "type": "ARRAY", "key": 4, "value": 8, "max": 2},
         {"op": "create", "map": "i2", "type": "ARRAY", "key": 4, "value": 8, "max": 2},
         {"op": "create", "map": "a", "type": "ARRAY_OF_MAPS", "key": 4, "value": 4, "max": 3,
          "inner": "i1"},
         {"op": "update_batch", "map": "a", "keys": [k(0), k(2), k(5)],
          "values": ["fd:i1", "fd:i2", "fd:i1"]},
         {"op": "lookup_batch", "map": "a", "count": 5},
         {"op": "create", "map": "h", "type": "HASH_OF_MAPS", "key": 4, "value": 4, "max": 3,
          "inner": "i1", "flags": ZERO_SEED},
         {"op": "update_batch", "map": "h", "keys": [k(3), k(4)], "values": ["fd:i2", "fd:i1"]},
         {"op": "close", "map": "i2"},
         {"op": "lookup_batch", "map": "h", "count": 4, "delete": True},
         {"op": "walk", "map": "h"}]),
    "bloom_peek": (
        "map_lookup_elem() of a bloom filter copies the value in from the user buffer and "
        "peeks it (nothing is copied back); the bits are jhash2/jhash seeded with "
        "hash_seed + i (0 with BPF_F_ZERO_SEED)",
        [{"op": "create", "map": "b", "type": "BLOOM_FILTER", "key": 0, "value": 4, "max": 1,
          "flags": ZERO_SEED, "extra": 1},
         {"op": "update", "map": "b", "key": None, "value": k(1), "flags": 0},
         {"op": "lookup", "map": "b", "key": None, "value": k(1)}]
        + [{"op": "lookup", "map": "b", "key": None, "value": k(v)} for v in range(2, 70)]),
    "stack_trace_ids": (
        "stack_map_delete_elem(): an id past n_buckets is -E2BIG; stack_map_get_next_key() "
        "starts over from id 0 when the key's bucket is empty",
        [{"op": "create", "map": "s", "type": "STACK_TRACE", "key": 4, "value": 16, "max": 3},
         {"op": "delete", "map": "s", "key": k(3)},
         {"op": "delete", "map": "s", "key": k(4)},
         {"op": "next", "map": "s", "key": k(2)},
         {"op": "next", "map": "s", "key": None}]),
    "cpumap_entry_prog": (
        "__cpu_map_entry_alloc(): an entry program fd that is no XDP cpumap program makes "
        "the whole allocation fail, reported as -ENOMEM; the entry's value holds qsize and "
        "the program id (0), not the fd that was passed",
        [{"op": "create", "map": "c", "type": "CPUMAP", "key": 4, "value": 8, "max": 2},
         {"op": "update", "map": "c", "key": k(0), "value": k(8) + k(999), "flags": 0},
         {"op": "update", "map": "c", "key": k(0), "value": k(8) + "ffffffff", "flags": 0},
         {"op": "lookup", "map": "c", "key": k(0)},
         {"op": "update", "map": "c", "key": k(1), "value": k(16) + k(0), "flags": 0},
         {"op": "lookup", "map": "c", "key": k(1)}]),
    "sock_map_fds": (
        "sock_map_update_elem_sys(): the value is a u64 fd when value_size is 8 and must fit "
        "in an int (-EINVAL); a file that is no socket is -ENOTSOCK (sockfd_lookup()); a "
        "TCP socket neither established nor listening is -EOPNOTSUPP; lookups return the "
        "socket's cookie (value_size 8) or -ENOSPC",
        [{"op": "socket", "name": "s", "kind": "tcp"},
         {"op": "socket", "name": "c", "kind": "tcp_new"},
         {"op": "create", "map": "m", "type": "SOCKMAP", "key": 4, "value": 8, "max": 4},
         {"op": "update", "map": "m", "key": k(0), "value": "0000008000000000", "flags": 0},
         {"op": "update", "map": "m", "key": k(0), "value": "fd:m", "flags": 0},
         {"op": "update", "map": "m", "key": k(0), "value": "fd:c", "flags": 0},
         {"op": "update", "map": "m", "key": k(1), "value": "fd:s", "flags": 0},
         {"op": "lookup", "map": "m", "key": k(1)},
         {"op": "create", "map": "h", "type": "SOCKHASH", "key": 4, "value": 4, "max": 4},
         {"op": "update", "map": "h", "key": k(9), "value": "fd:s", "flags": 0},
         {"op": "lookup", "map": "h", "key": k(9)},
         {"op": "close", "map": "s"},
         {"op": "lookup", "map": "m", "key": k(1)}]),
    "prog_array_owner": (
        "__bpf_prog_map_compatible(): the first program put in a prog array owns it (type "
        "and, v6.18, expected_attach_type); programs that differ are -EINVAL, also after the "
        "owner's slot is emptied; lookups return program ids",
        [{"op": "prog", "name": "p1", "type": "SOCKET_FILTER"},
         {"op": "prog", "name": "p2", "type": "SOCKET_FILTER"},
         {"op": "prog", "name": "px", "type": "XDP"},
         {"op": "prog", "name": "pd", "type": "XDP", "attach": 33},
         {"op": "create", "map": "a", "type": "PROG_ARRAY", "key": 4, "value": 4, "max": 4},
         {"op": "update", "map": "a", "key": k(0), "value": "fd:p1", "flags": 0},
         {"op": "update", "map": "a", "key": k(1), "value": "fd:px", "flags": 0},
         {"op": "update", "map": "a", "key": k(1), "value": "fd:p2", "flags": 0},
         {"op": "delete", "map": "a", "key": k(0)},
         {"op": "delete", "map": "a", "key": k(1)},
         {"op": "update", "map": "a", "key": k(2), "value": "fd:px", "flags": 0},
         {"op": "lookup", "map": "a", "key": k(1)},
         {"op": "create", "map": "b", "type": "PROG_ARRAY", "key": 4, "value": 4, "max": 4},
         {"op": "update", "map": "b", "key": k(0), "value": "fd:px", "flags": 0},
         {"op": "update", "map": "b", "key": k(1), "value": "fd:pd", "flags": 0},
         {"op": "lookup", "map": "b", "key": k(0)}]),
    "devmap_entry_prog": (
        "__dev_map_alloc_node(): an entry program must be XDP with expected_attach_type "
        "BPF_XDP_DEVMAP (33) (-EINVAL), the value then holds its id; "
        "__dev_map_hash_update_elem() refuses ifindex 0 (-EINVAL) where the array devmap "
        "empties the slot",
        [{"op": "prog", "name": "pd", "type": "XDP", "attach": 33},
         {"op": "prog", "name": "pc", "type": "XDP", "attach": 35},
         {"op": "create", "map": "d", "type": "DEVMAP", "key": 4, "value": 8, "max": 4},
         {"op": "update", "map": "d", "key": k(0), "value": k(1) + "|pc", "flags": 0},
         {"op": "update", "map": "d", "key": k(0), "value": k(1) + "|pd", "flags": 0},
         {"op": "lookup", "map": "d", "key": k(0)},
         {"op": "update", "map": "d", "key": k(0), "value": k(0) + k(0), "flags": 0},
         {"op": "lookup", "map": "d", "key": k(0)},
         {"op": "create", "map": "h", "type": "DEVMAP_HASH", "key": 4, "value": 8, "max": 4},
         {"op": "update", "map": "h", "key": k(7), "value": k(1) + k(0), "flags": 0},
         {"op": "update", "map": "h", "key": k(7), "value": k(0) + k(0), "flags": 1},
         {"op": "create", "map": "c", "type": "CPUMAP", "key": 4, "value": 8, "max": 2},
         {"op": "update", "map": "c", "key": k(0), "value": k(16) + "|pc", "flags": 0},
         {"op": "lookup", "map": "c", "key": k(0)},
         {"op": "update", "map": "c", "key": k(1), "value": k(16) + "|pd", "flags": 0}]),
}


def main() -> int:
    ncpus = possible_cpus()
    if ncpus != 2:
        print(f"record on a 2-CPU host (this one has {ncpus})", file=sys.stderr)
        return 2
    os.makedirs(OUT, exist_ok=True)
    with LiveSession() as sess, S.LiveRunner(sess, ncpus) as live:
        for name, (about, steps) in CASES.items():
            scr = {"family": "regression", "seed": name, "steps": steps}
            obs = live.run(scr)
            with open(os.path.join(OUT, name + ".json"), "w") as fh:
                json.dump({"about": about, "kernel": platform.release(), "ncpus": ncpus,
                           "script": scr, "kernel_observed": obs}, fh, indent=1)
                fh.write("\n")
            print(name, [o.get("errno") for o in obs])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
