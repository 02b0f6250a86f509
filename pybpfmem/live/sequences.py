"""Random operation sequences per map family, for ``verify --semantics``.

Each family's generator makes one script (pybpfmem/live/semantics.py has the format)
from a ``random.Random``: creates with invalid attributes (each expected to fail
the same way on both sides), a valid create, then a random mix of updates with
every flag combination, lookups, deletes, get_next_key steps and whole walks,
lookup-and-delete, the four batch commands (counts that stop early, in_batch
tokens carried from the previous batch, keys that are missing half way), freeze
and the commands after it, and commands on fds that are not maps (the process's
standard fds 0-2, a closed fd).  Keys come from a small key space, so updates hit
existing keys and fill the map; sizes stay small (the live kernel runs these).

The seed of a script is ``"<base>:<family>:<n>"``: ``script(family, seed)``
makes the same steps again on any machine with the same number of possible CPUs
(per-cpu values are that many copies long).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

from ..bpf import uapi as U

Step = dict[str, Any]

ANY, NOEXIST, EXIST, LOCK = U.BPF_ANY, U.BPF_NOEXIST, U.BPF_EXIST, U.BPF_F_LOCK
NO_PREALLOC, NO_COMMON_LRU = U.BPF_F_NO_PREALLOC, U.BPF_F_NO_COMMON_LRU
ZERO_SEED, RDONLY, WRONLY = U.BPF_F_ZERO_SEED, U.BPF_F_RDONLY, U.BPF_F_WRONLY
#: update flags tried: the three valid ones, BPF_F_LOCK (no spin lock: EINVAL), and
#: combinations and unknown bits
UPDATE_FLAGS = (ANY, ANY, ANY, NOEXIST, NOEXIST, EXIST, EXIST, NOEXIST | EXIST, LOCK,
                LOCK | EXIST, 8, 1 << 32)
LOOKUP_FLAGS = (0, 0, 0, 0, 0, LOCK, NOEXIST, 8)
UNKNOWN_MAP_FLAG = 1 << 25
STD_FDS = ("@0", "@1", "@2", "@999")


def _rup(x: int, a: int) -> int:
    return (x + a - 1) // a * a


class Gen:
    """Shared state of one script being generated: the rng, the steps so far, the
    map under test and its key/value shapes."""

    def __init__(self, rng: random.Random, ncpus: int) -> None:
        self.rng = rng
        self.ncpus = ncpus
        self.steps: list[Step] = []
        self.map = "m"
        self.key_size = 4
        self.value_io = 4         # bytes of a value in the syscall buffer
        self.keys: list[str] = []
        self.values: list[str] = []

    # -- building blocks
    def add(self, **st: Any) -> None:
        self.steps.append(st)

    def rand_bytes(self, n: int) -> str:
        return self.rng.randbytes(n).hex() if n else ""

    def value(self) -> str:
        return self.rng.choice(self.values) if self.values and self.rng.random() < 0.3 \
            else self.rand_bytes(self.value_io)

    def key(self) -> str:
        return self.rng.choice(self.keys)

    def flag(self, choices: tuple[int, ...]) -> int:
        return self.rng.choice(choices)

    def bad_creates(self, valid: Step, mutations: list[dict[str, Any]], n: int) -> None:
        """``n`` creates of ``valid`` with one mutation each (each should fail)."""
        common = [{"flags": valid.get("flags", 0) | UNKNOWN_MAP_FLAG},
                  {"flags": valid.get("flags", 0) | RDONLY | WRONLY},
                  {"name": "bad-name"}, {"name": "sixteen_chars_xx"},
                  {"flags": valid.get("flags", 0) | U.BPF_F_NUMA_NODE, "numa": 7}]
        pool = mutations + common
        for mut in self.rng.sample(pool, min(n, len(pool))):
            self.add(**{**valid, "map": "bad", **mut})
            self.add(op="close", map="bad")

    def std_fd_op(self) -> None:
        """A command on an fd that is no map: 0-2 are open (stdin/out/err), 999 is not."""
        fd = self.rng.choice(STD_FDS)
        op = self.rng.choice(("lookup", "update", "delete", "next", "freeze",
                              "lookup_batch", "lookup_and_delete"))
        if op == "update":
            self.add(op=op, map=fd, key="00000000", value="00000000", flags=0)
        elif op == "lookup_batch":
            self.add(op=op, map=fd, count=4)
        elif op in ("lookup", "delete", "lookup_and_delete", "next"):
            self.add(op=op, map=fd, key="00000000")
        else:
            self.add(op=op, map=fd)

    # -- keyed element commands
    def op_update(self) -> None:
        self.add(op="update", map=self.map, key=self.key(), value=self.value(),
                 flags=self.flag(UPDATE_FLAGS))

    def op_lookup(self) -> None:
        self.add(op="lookup", map=self.map, key=self.key(), flags=self.flag(LOOKUP_FLAGS))

    def op_delete(self) -> None:
        self.add(op="delete", map=self.map, key=self.key())

    def op_lookup_and_delete(self) -> None:
        self.add(op="lookup_and_delete", map=self.map, key=self.key(),
                 flags=self.flag((0, 0, 0, LOCK, 1)))

    def op_next(self, ordered: bool) -> None:
        """get_next_key from NULL, from a key of the key space, or (where the order is
        not promised, so which key comes last is not either) from a key surely absent:
        both return some key of the map."""
        r = self.rng.random()
        if r < 0.3:
            self.add(op="next", map=self.map, key=None)
        elif ordered:
            self.add(op="next", map=self.map, key=self.key())
        else:
            self.add(op="next", map=self.map, key=self.missing_key())

    def missing_key(self) -> str:
        while True:
            k = self.rand_bytes(self.key_size)
            if k not in self.keys:
                return k

    def op_walk(self) -> None:
        self.add(op="walk", map=self.map)

    def op_update_batch(self) -> None:
        n = self.rng.randint(1, 6)
        keys = [self.key() for _ in range(n)]
        self.add(op="update_batch", map=self.map, keys=keys,
                 values=[self.value() for _ in keys], elem_flags=self.flag(
                     (ANY, ANY, NOEXIST, EXIST, LOCK, 8)), flags=self.flag((0, 0, 0, 0, 1)))

    def op_delete_batch(self) -> None:
        keys = [self.key() for _ in range(self.rng.randint(1, 5))]
        self.add(op="delete_batch", map=self.map, keys=keys,
                 elem_flags=self.flag((0, 0, 0, 0, LOCK, 1)), flags=self.flag((0, 0, 0, 0, 1)))

    def op_lookup_batch(self, full_only: bool = False) -> None:
        """A lookup (or lookup-and-delete) batch: from the start, or from the token the
        previous batch returned; ``full_only``: one batch big enough for every element
        (where the split into buckets depends on a random hash seed)."""
        delete = self.rng.random() < 0.25
        if full_only:
            self.add(op="lookup_batch", map=self.map, count=len(self.keys) + 4,
                     delete=delete, elem_flags=0, flags=0)
            return
        r = self.rng.random()
        in_batch = None if r < 0.5 else ("prev" if r < 0.9 else "ff" * max(self.key_size, 4))
        self.add(op="lookup_batch", map=self.map, count=self.rng.choice((0, 1, 1, 2, 3, 5, 64)),
                 in_batch=in_batch, delete=delete,
                 elem_flags=self.flag((0, 0, 0, 0, 0, LOCK, 2)), flags=self.flag((0,) * 6 + (1,)))

    def op_bad_pointer(self) -> None:
        """A key or value pointer nothing maps: EFAULT where the command copies it."""
        if self.rng.random() < 0.5:
            self.add(op=self.rng.choice(("lookup", "delete", "next", "lookup_and_delete")),
                     map=self.map, key="bad")
        else:
            self.add(op="update", map=self.map, key=self.rng.choice((self.key(), "bad")),
                     value="bad", flags=0)

    def op_freeze(self) -> None:
        """Freeze, then what a frozen map still allows (reads) and refuses (writes,
        a second freeze)."""
        self.add(op="freeze", map=self.map)
        self.op_update()
        self.op_lookup()
        self.add(op="freeze", map=self.map)

    def mix(self, weights: dict[Callable[[], None], int], n: int) -> None:
        ops = list(weights)
        w = [weights[o] for o in ops]
        for _ in range(n):
            self.rng.choices(ops, w)[0]()


@dataclass(frozen=True)
class Family:
    name: str
    about: str
    make: Callable[[Gen], None]
    #: a create the family's scripts need the kernel to accept (else: skipped, with why)
    probe: dict[str, Any] | None = None


# ------------------------------------------------------------------ hash family
def _hash(kind: str) -> Callable[[Gen], None]:
    t = {"hash": "HASH", "hash_nopre": "HASH", "percpu_hash": "PERCPU_HASH",
         "percpu_hash_nopre": "PERCPU_HASH", "lru_hash": "LRU_HASH",
         "lru_percpu_hash": "LRU_PERCPU_HASH", "lru_hash_nocommon": "LRU_HASH"}[kind]
    percpu, lru = "PERCPU" in t, "LRU" in t

    def make(g: Gen) -> None:
        rng = g.rng
        ks = rng.choice((1, 2, 3, 4, 4, 4, 5, 8, 8, 12, 16))
        vs = rng.choice((1, 4, 8, 8, 12, 16, 32))
        mx = rng.randint(1, 12) if not lru else rng.randint(2, 12)
        flags = rng.choice((0, ZERO_SEED, ZERO_SEED, ZERO_SEED))
        if kind.endswith("nopre"):
            flags |= NO_PREALLOC
        if kind.endswith("nocommon"):
            flags |= NO_COMMON_LRU
        # (an LRU map's victims are read by walks: its fd stays readable and writable)
        flags |= rng.choice((0,) * 8 + ((RDONLY, WRONLY) if not lru else ())
                            + (U.BPF_F_RDONLY_PROG,))
        g.key_size = ks
        g.value_io = _rup(vs, 8) * g.ncpus if percpu else vs
        g.keys = sorted({g.rand_bytes(ks) for _ in range(mx * 2 + 2)})
        valid = {"op": "create", "map": "m", "type": t, "key": ks, "value": vs, "max": mx,
                 "flags": flags, "name": "m"}
        g.bad_creates(valid, [
            {"key": 0}, {"value": 0}, {"max": 0},
            {"flags": flags ^ NO_COMMON_LRU}, {"flags": flags | NO_PREALLOC},
            {"key": 256, "value": (4 << 20) - 200}, {"flags": flags | U.BPF_F_MMAPABLE},
            {"flags": flags | U.BPF_F_RDONLY_PROG | U.BPF_F_WRONLY_PROG},
            {"extra": 1}], rng.randint(1, 4))
        g.add(**valid)
        exact_batches = bool(flags & ZERO_SEED)
        g.mix({g.op_update: 30 if not lru else 40, g.op_lookup: 16, g.op_delete: 8,
               lambda: g.op_next(False): 6, g.op_walk: 4, g.op_lookup_and_delete: 5,
               g.op_update_batch: 5, g.op_delete_batch: 3,
               lambda: g.op_lookup_batch(full_only=not exact_batches): 6,
               g.std_fd_op: 1, g.op_bad_pointer: 1}, rng.randint(25, 50))
        if rng.random() < 0.3:
            g.op_freeze()
        g.op_walk()
    return make


# ------------------------------------------------------------------ arrays
def _array(percpu: bool) -> Callable[[Gen], None]:
    t = "PERCPU_ARRAY" if percpu else "ARRAY"

    def make(g: Gen) -> None:
        rng = g.rng
        vs = rng.choice((1, 4, 8, 13, 64))
        mx = rng.randint(1, 10)
        flags = rng.choice((0, 0, 0, RDONLY, WRONLY, U.BPF_F_RDONLY_PROG)
                           + (() if percpu else (U.BPF_F_MMAPABLE, U.BPF_F_INNER_MAP)))
        g.value_io = _rup(vs, 8) * g.ncpus if percpu else vs
        g.keys = [i.to_bytes(4, "little").hex() for i in range(mx + 2)] + ["ffffffff"]
        valid = {"op": "create", "map": "m", "type": t, "key": 4, "value": vs, "max": mx,
                 "flags": flags}
        g.bad_creates(valid, [
            {"key": 8}, {"key": 0}, {"value": 0}, {"max": 0}, {"flags": NO_PREALLOC},
            {"flags": U.BPF_F_MMAPABLE if percpu else U.BPF_F_PRESERVE_ELEMS},
            {"flags": U.BPF_F_INNER_MAP} if percpu else {"flags": ZERO_SEED},
            {"value": (1 << 31) if not percpu else 40000}, {"extra": 2}], rng.randint(1, 4))
        g.add(**valid)
        g.mix({g.op_update: 25, g.op_lookup: 15, g.op_delete: 4, lambda: g.op_next(True): 8,
               g.op_walk: 3, g.op_lookup_and_delete: 3, g.op_update_batch: 6,
               g.op_delete_batch: 2, g.op_lookup_batch: 8, g.std_fd_op: 1,
               g.op_bad_pointer: 1}, rng.randint(25, 45))
        if rng.random() < 0.3:
            g.op_freeze()
        g.op_walk()
    return make


# ------------------------------------------------------------------ LPM trie
def _lpm(g: Gen) -> None:
    rng = g.rng
    ds = rng.choice((1, 2, 4, 4, 8, 16))
    vs = rng.choice((1, 4, 8))
    mx = rng.randint(1, 12)
    flags = NO_PREALLOC | rng.choice((0,) * 6 + (RDONLY, WRONLY))
    g.key_size, g.value_io = 4 + ds, vs
    bases = [rng.randbytes(ds) for _ in range(rng.randint(1, 3))]
    keys = set()
    for _ in range(mx * 3 + 3):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(0, 2)):          # a few flipped bits: shared prefixes
            bit = rng.randrange(8 * ds)
            data[bit // 8] ^= 0x80 >> (bit % 8)
        plen = rng.randint(0, 8 * ds) if rng.random() < 0.95 else 8 * ds + rng.randint(1, 8)
        keys.add((plen.to_bytes(4, "little") + bytes(data)).hex())
    g.keys = sorted(keys)
    valid = {"op": "create", "map": "m", "type": "LPM_TRIE", "key": 4 + ds, "value": vs,
             "max": mx, "flags": flags}
    g.bad_creates(valid, [
        {"flags": flags & ~NO_PREALLOC}, {"key": 4}, {"key": 4 + 257}, {"value": 0},
        {"max": 0}, {"flags": flags | ZERO_SEED}, {"extra": 3}], rng.randint(1, 4))
    g.add(**valid)
    g.mix({g.op_update: 30, g.op_lookup: 20, g.op_delete: 8, lambda: g.op_next(True): 8,
           g.op_walk: 4, g.op_lookup_and_delete: 2, g.op_update_batch: 5,
           g.op_delete_batch: 3, g.op_lookup_batch: 6, g.std_fd_op: 1, g.op_bad_pointer: 1},
          rng.randint(25, 50))
    if rng.random() < 0.3:
        g.op_freeze()
    g.op_walk()


# ------------------------------------------------------------------ queue / stack
def _queue_stack(t: str) -> Callable[[Gen], None]:
    def make(g: Gen) -> None:
        rng = g.rng
        vs = rng.choice((1, 4, 8, 16))
        mx = rng.randint(1, 8)
        flags = rng.choice((0, 0, 0, 0, RDONLY, WRONLY))
        g.key_size, g.value_io = 0, vs
        g.keys = ["00000000"]
        valid = {"op": "create", "map": "m", "type": t, "key": 0, "value": vs, "max": mx,
                 "flags": flags}
        g.bad_creates(valid, [{"key": 4}, {"value": 0}, {"max": 0}, {"flags": NO_PREALLOC},
                              {"value": (4 << 20) + 1}, {"flags": ZERO_SEED}],
                      rng.randint(1, 4))
        g.add(**valid)

        def push() -> None:
            g.add(op="update", map="m", key=None, value=g.value(), flags=g.flag(
                (ANY, ANY, ANY, EXIST, EXIST, NOEXIST, LOCK, 3)))

        def with_key() -> None:    # a key pointer for a map of key_size 0
            g.add(op=rng.choice(("update", "lookup", "lookup_and_delete")), map="m",
                  key="00000000", value=g.value(), flags=0)

        g.mix({push: 30, lambda: g.add(op="lookup", map="m", key=None,
                                       flags=g.flag(LOOKUP_FLAGS)): 12,
               lambda: g.add(op="lookup_and_delete", map="m", key=None,
                             flags=g.flag((0, 0, 0, LOCK, 1))): 14,
               lambda: g.add(op="delete", map="m", key=None): 2,
               lambda: g.add(op="next", map="m", key=None): 2, with_key: 2,
               lambda: g.add(op="update_batch", map="m", keys=[""], values=[g.value()]): 1,
               lambda: g.add(op="lookup_batch", map="m", count=4): 1, g.std_fd_op: 1},
              rng.randint(25, 45))
        if rng.random() < 0.3:
            g.add(op="freeze", map="m")
            push()
            g.add(op="lookup", map="m", key=None)
            g.add(op="lookup_and_delete", map="m", key=None)
            g.add(op="freeze", map="m")
    return make


# ------------------------------------------------------------------ bloom filter
def _bloom(g: Gen) -> None:
    rng = g.rng
    vs = rng.choice((1, 3, 4, 8, 12, 16))
    mx = rng.randint(1, 40)
    zero = rng.random() < 0.8
    flags = (ZERO_SEED if zero else 0) | rng.choice((0,) * 8 + (RDONLY, WRONLY))
    extra = rng.choice((0, 0, 1, 3, 5, 15))
    g.key_size, g.value_io = 0, vs
    pushed: list[str] = []          # every value an update offered
    sure: list[str] = []            # those the filter holds: BPF_ANY on a writable map
    writable = not flags & RDONLY
    valid = {"op": "create", "map": "m", "type": "BLOOM_FILTER", "key": 0, "value": vs,
             "max": mx, "flags": flags, "extra": extra}
    g.bad_creates(valid, [{"key": 4}, {"value": 0}, {"max": 0}, {"extra": 16},
                          {"flags": flags | NO_PREALLOC}, {"value": (4 << 20) + 1}],
                  rng.randint(1, 4))
    g.add(**valid)

    def push() -> None:
        v = g.rand_bytes(vs)
        f = g.flag((ANY,) * 6 + (EXIST, NOEXIST, LOCK))
        pushed.append(v)
        if f == ANY and writable:     # bloom_map_push_elem() takes BPF_ANY only
            sure.append(v)
        g.add(op="update", map="m", key=None, value=v, flags=f)

    def peek() -> None:
        # with a random seed only values surely pushed are surely found: any other may be
        # a false positive of the kernel's seed, which the model cannot know
        pool = pushed if zero else sure
        v = rng.choice(pool) if pool and (not zero or rng.random() < 0.5) else (
            g.rand_bytes(vs) if zero else None)
        if v is not None:
            g.add(op="lookup", map="m", key=None, value=v, flags=g.flag(LOOKUP_FLAGS))

    g.mix({push: 20, peek: 20, lambda: g.add(op="lookup_and_delete", map="m", key=None): 2,
           lambda: g.add(op="delete", map="m", key=None): 2,
           lambda: g.add(op="next", map="m", key=None): 2,
           lambda: g.add(op="update", map="m", key="00000000", value=g.rand_bytes(vs)): 1,
           lambda: g.add(op="lookup_batch", map="m", count=2): 1, g.std_fd_op: 1},
          rng.randint(20, 40))
    if rng.random() < 0.3:
        g.add(op="freeze", map="m")
        writable = False                # a frozen map refuses syscall writes
        push()
        peek()
        g.add(op="freeze", map="m")


# ------------------------------------------------------------------ map-in-map
def _map_in_map(t: str) -> Callable[[Gen], None]:
    def make(g: Gen) -> None:
        rng = g.rng
        inner = {"op": "create", "type": "ARRAY", "key": 4, "value": 8, "max": 4}
        for name in ("i1", "i2", "i3"):
            g.add(**inner, map=name)
        g.add(**{**inner, "max": 8}, map="ij")                      # other max_entries
        g.add(op="create", map="ix", type="HASH", key=4, value=8, max=4)   # other type
        ks = 4 if t == "ARRAY_OF_MAPS" else rng.choice((4, 8))
        mx = rng.randint(1, 6)
        flags = rng.choice((0, 0, 0, 0, RDONLY, WRONLY))
        g.key_size, g.value_io = ks, 4
        if t == "ARRAY_OF_MAPS":
            g.keys = [i.to_bytes(4, "little").hex() for i in range(mx + 2)]
        else:
            flags |= rng.choice((0, ZERO_SEED, ZERO_SEED))
            g.keys = sorted({g.rand_bytes(ks) for _ in range(mx * 2 + 2)})
        g.values = ["fd:i1", "fd:i2", "fd:i3", "fd:ij", "fd:ix", "fd:@0", "fd:@999", "fd:m"]
        valid = {"op": "create", "map": "m", "type": t, "key": ks, "value": 4, "max": mx,
                 "flags": flags, "inner": "i1"}
        g.bad_creates(valid, [{"value": 8}, {"inner": "@999"}, {"inner": "@0"},
                              {"inner": "@2"}, {"inner": 0}, {"max": 0}, {"key": 0}],
                      rng.randint(1, 4))
        g.add(**valid)
        g.add(op="create", map="nest", type=t, key=ks, value=4, max=2, inner="m")  # nested

        def close_inner() -> None:
            g.add(op="close", map=rng.choice(("i2", "i3")))

        g.mix({g.op_update: 25, g.op_lookup: 15, g.op_delete: 8,
               lambda: g.op_next(t == "ARRAY_OF_MAPS"): 5, g.op_walk: 3,
               g.op_lookup_and_delete: 2, g.op_update_batch: 4, g.op_delete_batch: 2,
               lambda: g.op_lookup_batch(full_only=not flags & ZERO_SEED and t != "ARRAY_OF_MAPS"): 5,
               close_inner: 1, g.std_fd_op: 1}, rng.randint(20, 40))
        if rng.random() < 0.3:
            g.op_freeze()
        g.op_walk()
    return make


# ------------------------------------------------------------------ ring buffers, arena
def _ringbuf(t: str) -> Callable[[Gen], None]:
    def make(g: Gen) -> None:
        rng = g.rng
        mx = rng.choice((4096, 8192, 1 << 16))
        valid = {"op": "create", "map": "m", "type": t, "key": 0, "value": 0, "max": mx,
                 "flags": rng.choice((0, 0, RDONLY, WRONLY))}
        g.bad_creates(valid, [{"key": 4}, {"value": 8}, {"max": 0}, {"max": 12288},
                              {"max": 2048}, {"flags": NO_PREALLOC}, {"flags": U.BPF_F_MMAPABLE}],
                      rng.randint(2, 5))
        g.add(**valid)
        g.key_size, g.value_io = 0, 8
        g.keys = ["00000000"]
        for _ in range(rng.randint(6, 14)):
            op = rng.choice(("update", "lookup", "delete", "next", "lookup_and_delete",
                             "lookup_batch", "update_batch", "delete_batch", "freeze"))
            key = rng.choice((None, "00000000"))
            if op == "update":
                g.add(op=op, map="m", key=key, value=g.rand_bytes(8), flags=0)
            elif op in ("lookup_batch",):
                g.add(op=op, map="m", count=2)
            elif op in ("update_batch", "delete_batch"):
                g.add(op=op, map="m", keys=[""], values=[""])
            elif op == "freeze":
                g.add(op=op, map="m")
            else:
                g.add(op=op, map="m", key=key)
    return make


def _arena(g: Gen) -> None:
    rng = g.rng
    mmap = U.BPF_F_MMAPABLE
    valid = {"op": "create", "map": "m", "type": "ARENA", "key": 0, "value": 0,
             "max": rng.choice((1, 16, 256)), "flags": mmap,
             "extra": rng.choice((0, 0, 1 << 32, 0x7f0000000000))}
    g.bad_creates(valid, [{"key": 4}, {"value": 8}, {"max": 0}, {"flags": 0},
                          {"flags": mmap | NO_PREALLOC}, {"extra": 4097},
                          {"max": (1 << 20) + 1}, {"extra": (1 << 32) - 4096, "max": 2},
                          {"flags": mmap | U.BPF_F_SEGV_ON_FAULT | U.BPF_F_NO_USER_CONV}],
                  rng.randint(2, 6))
    g.add(**valid)
    for _ in range(rng.randint(4, 10)):
        op = rng.choice(("update", "lookup", "delete", "next", "lookup_and_delete",
                         "lookup_batch", "freeze"))
        if op == "update":
            g.add(op=op, map="m", key=None, value="", flags=0)
        elif op == "lookup_batch":
            g.add(op=op, map="m", count=2)
        elif op == "freeze":
            g.add(op=op, map="m")
        else:
            g.add(op=op, map="m", key=None)


# ------------------------------------------------------------------ devmap, cpumap, stack trace
def _devmap(hashed: bool, netdevs: tuple[int, ...]) -> Callable[[Gen], None]:
    t = "DEVMAP_HASH" if hashed else "DEVMAP"

    def make(g: Gen) -> None:
        rng = g.rng
        vs = rng.choice((4, 8))
        mx = rng.randint(1, 8)
        flags = rng.choice((0, 0, 0, RDONLY, WRONLY, U.BPF_F_RDONLY_PROG))
        g.value_io = vs
        if hashed:
            g.keys = sorted({rng.randrange(1 << 32).to_bytes(4, "little").hex()
                             for _ in range(mx * 2 + 2)})
        else:
            g.keys = [i.to_bytes(4, "little").hex() for i in range(mx + 2)]
        ifs = list(netdevs) + [0, 0, 99]
        progs = (0, 0, 0, 0xFFFFFFFF, 999)
        g.values = [(i.to_bytes(4, "little") + (p.to_bytes(4, "little") if vs == 8 else b"")).hex()
                    for i in ifs for p in progs]
        if vs == 8 and rng.random() < 0.5:      # entry programs: the right kind and others
            _progs(g)
            g.values += [i.to_bytes(4, "little").hex() + "|" + p
                         for i in ifs[:2] for p in ("pd", "px", "p1")]
        valid = {"op": "create", "map": "m", "type": t, "key": 4, "value": vs, "max": mx,
                 "flags": flags}
        g.bad_creates(valid, [{"key": 8}, {"value": 12}, {"value": 2}, {"max": 0},
                              {"flags": NO_PREALLOC}, {"flags": ZERO_SEED}], rng.randint(1, 4))
        g.add(**valid)
        g.mix({g.op_update: 25, g.op_lookup: 15, g.op_delete: 8,
               lambda: g.op_next(not hashed): 6, g.op_walk: 3, g.op_lookup_and_delete: 2,
               g.op_update_batch: 2, g.op_lookup_batch: 2, g.std_fd_op: 1},
              rng.randint(20, 40))
        if rng.random() < 0.3:
            g.op_freeze()
        g.op_walk()
    return make


def _cpumap(g: Gen) -> None:
    rng = g.rng
    vs = rng.choice((4, 8))
    mx = rng.randint(1, g.ncpus + 2)
    g.value_io = vs
    g.keys = [i.to_bytes(4, "little").hex() for i in range(mx + 1)]
    qs = (0, 1, 8, 64, 16384, 16385)
    g.values = [(q.to_bytes(4, "little") + (p.to_bytes(4, "little") if vs == 8 else b"")).hex()
                for q in qs for p in (0, 0, 0xFFFFFFFF, 999)]
    if vs == 8 and rng.random() < 0.5:
        _progs(g)
        g.values += [q.to_bytes(4, "little").hex() + "|" + p for q in (8, 64)
                     for p in ("pc", "px", "pd")]
    valid = {"op": "create", "map": "m", "type": "CPUMAP", "key": 4, "value": vs, "max": mx,
             "flags": rng.choice((0, 0, 0, RDONLY, WRONLY))}
    g.bad_creates(valid, [{"key": 8}, {"value": 12}, {"value": 2}, {"max": 0},
                          {"max": 100000}, {"flags": NO_PREALLOC}], rng.randint(1, 4))
    g.add(**valid)
    g.mix({g.op_update: 15, g.op_lookup: 12, g.op_delete: 8, lambda: g.op_next(True): 5,
           g.op_walk: 3, g.op_lookup_and_delete: 2, g.op_lookup_batch: 1, g.std_fd_op: 1},
          rng.randint(12, 25))
    if rng.random() < 0.3:
        g.op_freeze()
    g.op_walk()


def _stack_trace(g: Gen) -> None:
    rng = g.rng
    vs = rng.choice((8, 16, 64, 8 * 127))
    mx = rng.randint(1, 16)
    g.value_io = vs
    g.keys = [i.to_bytes(4, "little").hex() for i in range(mx + 2)]
    valid = {"op": "create", "map": "m", "type": "STACK_TRACE", "key": 4, "value": vs,
             "max": mx, "flags": rng.choice((0, 0, 0, RDONLY, WRONLY))}
    g.bad_creates(valid, [{"key": 8}, {"value": 12}, {"value": 0}, {"max": 0},
                          {"value": 8 * 128}, {"flags": NO_PREALLOC},
                          {"flags": U.BPF_F_STACK_BUILD_ID}], rng.randint(1, 4))
    g.add(**valid)
    g.mix({g.op_update: 5, g.op_lookup: 8, g.op_delete: 6, lambda: g.op_next(True): 4,
           g.op_walk: 2, g.op_lookup_and_delete: 4, g.op_lookup_batch: 2, g.std_fd_op: 1},
          rng.randint(10, 20))
    if rng.random() < 0.3:
        g.op_freeze()


# ------------------------------------------------------------------ programs and sockets


def _progs(g: Gen) -> None:
    """Programs a script's maps can hold: two socket filters, an XDP program and the
    XDP programs a devmap / cpumap entry may run."""
    g.add(op="prog", name="p1", type="SOCKET_FILTER")
    g.add(op="prog", name="p2", type="SOCKET_FILTER")
    g.add(op="prog", name="px", type="XDP")
    g.add(op="prog", name="pd", type="XDP", attach=U.BPF_XDP_DEVMAP)
    g.add(op="prog", name="pc", type="XDP", attach=U.BPF_XDP_CPUMAP)


def _prog_array(g: Gen) -> None:
    rng = g.rng
    _progs(g)
    mx = rng.randint(1, 6)
    g.keys = [i.to_bytes(4, "little").hex() for i in range(mx + 2)]
    g.values = ["fd:p1", "fd:p2", "fd:px", "fd:pd", "fd:@0", "fd:@999", "fd:m"]
    valid = {"op": "create", "map": "m", "type": "PROG_ARRAY", "key": 4, "value": 4, "max": mx,
             "flags": rng.choice((0, 0, 0, RDONLY, WRONLY))}
    g.bad_creates(valid, [{"value": 8}, {"key": 8}, {"max": 0},
                          {"flags": U.BPF_F_RDONLY_PROG}, {"flags": NO_PREALLOC}],
                  rng.randint(1, 3))
    g.add(**valid)

    def close_prog() -> None:
        g.add(op="close", map=rng.choice(("p2", "px")))

    g.mix({g.op_update: 20, g.op_lookup: 15, g.op_delete: 8, lambda: g.op_next(True): 5,
           g.op_walk: 3, g.op_lookup_and_delete: 2, g.op_update_batch: 2,
           g.op_lookup_batch: 2, close_prog: 1, g.std_fd_op: 1}, rng.randint(15, 35))
    if rng.random() < 0.3:
        g.op_freeze()
    g.op_walk()


def _sock_map(hashed: bool) -> Callable[[Gen], None]:
    t = "SOCKHASH" if hashed else "SOCKMAP"

    def make(g: Gen) -> None:
        rng = g.rng
        names = []
        for i, kind in enumerate(("tcp", "tcp", "listen", "udp", "tcp_new")):
            g.add(op="socket", name=f"s{i}", kind=kind)
            names.append(f"s{i}")
        vs = rng.choice((4, 8))
        ks = rng.choice((4, 8, 12)) if hashed else 4
        mx = rng.randint(1, 6)
        g.key_size, g.value_io = ks, vs
        if hashed:
            g.keys = sorted({g.rand_bytes(ks) for _ in range(mx * 2 + 2)})
        else:
            g.keys = [i.to_bytes(4, "little").hex() for i in range(mx + 2)]
        g.values = ["fd:" + n for n in names] + ["fd:@0", "fd:@999", "fd:m"] + (
            ["00000080" + "00" * (vs - 4)] if vs == 8 else [])
        valid = {"op": "create", "map": "m", "type": t, "key": ks, "value": vs, "max": mx,
                 "flags": rng.choice((0, 0, 0, RDONLY, WRONLY))}
        g.bad_creates(valid, [{"value": 2}, {"value": 12}, {"max": 0}, {"flags": NO_PREALLOC}]
                      + ([{"key": 8}] if not hashed else [{"key": 0}]), rng.randint(1, 3))
        g.add(**valid)

        def close_sock() -> None:
            g.add(op="close", map=rng.choice(names[:2]))

        g.mix({g.op_update: 20, g.op_lookup: 15, g.op_delete: 8,
               lambda: g.op_next(not hashed): 5, g.op_walk: 3, g.op_lookup_and_delete: 2,
               g.op_update_batch: 2, g.op_lookup_batch: 2, close_sock: 1, g.std_fd_op: 1},
              rng.randint(15, 35))
        if rng.random() < 0.3:
            g.op_freeze()
        g.op_walk()
    return make


# ------------------------------------------------------------------ fds
def _fds(g: Gen) -> None:
    """Commands on fds that are not maps (the standard fds, a closed fd, a closed map)
    and map-in-map creates whose inner_map_fd is one of them."""
    rng = g.rng
    for _ in range(rng.randint(2, 5)):
        g.add(op="create", map="o", type=rng.choice(("ARRAY_OF_MAPS", "HASH_OF_MAPS")),
              key=4, value=4, max=2, inner=rng.choice((0, 1, 2, "@999")))
        g.add(op="close", map="o")
    g.add(op="create", map="m", type="ARRAY", key=4, value=4, max=2)
    g.add(op="close", map="m")
    g.map = "m"
    g.keys = ["00000000"]
    for _ in range(rng.randint(10, 20)):
        g.std_fd_op() if rng.random() < 0.8 else g.rng.choice((g.op_lookup, g.op_update))()


def families(ncpus: int, netdevs: tuple[int, ...] = (1,)) -> dict[str, Family]:
    """Every family the harness drives, by name."""
    fams = [
        Family("hash", "HASH (preallocated)", _hash("hash")),
        Family("hash_nopre", "HASH, BPF_F_NO_PREALLOC", _hash("hash_nopre")),
        Family("percpu_hash", "PERCPU_HASH (preallocated)", _hash("percpu_hash")),
        Family("percpu_hash_nopre", "PERCPU_HASH, BPF_F_NO_PREALLOC", _hash("percpu_hash_nopre")),
        Family("lru_hash", "LRU_HASH (common LRU)", _hash("lru_hash")),
        Family("lru_hash_nocommon", "LRU_HASH, BPF_F_NO_COMMON_LRU", _hash("lru_hash_nocommon")),
        Family("lru_percpu_hash", "LRU_PERCPU_HASH", _hash("lru_percpu_hash")),
        Family("array", "ARRAY", _array(False)),
        Family("percpu_array", "PERCPU_ARRAY", _array(True)),
        Family("lpm", "LPM_TRIE", _lpm),
        Family("queue", "QUEUE", _queue_stack("QUEUE")),
        Family("stack", "STACK", _queue_stack("STACK")),
        Family("bloom", "BLOOM_FILTER", _bloom),
        Family("array_of_maps", "ARRAY_OF_MAPS", _map_in_map("ARRAY_OF_MAPS")),
        Family("hash_of_maps", "HASH_OF_MAPS", _map_in_map("HASH_OF_MAPS")),
        Family("ringbuf", "RINGBUF from userspace", _ringbuf("RINGBUF")),
        Family("user_ringbuf", "USER_RINGBUF from userspace", _ringbuf("USER_RINGBUF")),
        Family("devmap", "DEVMAP", _devmap(False, netdevs)),
        Family("devmap_hash", "DEVMAP_HASH", _devmap(True, netdevs)),
        Family("cpumap", "CPUMAP", _cpumap),
        Family("stack_trace", "STACK_TRACE from userspace", _stack_trace),
        Family("arena", "ARENA", _arena,
               {"op": "create", "map": "m", "type": "ARENA", "key": 0, "value": 0, "max": 1,
                "flags": U.BPF_F_MMAPABLE}),
        Family("prog_array", "PROG_ARRAY", _prog_array),
        Family("sockmap", "SOCKMAP", _sock_map(False)),
        Family("sockhash", "SOCKHASH", _sock_map(True)),
        Family("fds", "fds that are not maps", _fds),
    ]
    return {f.name: f for f in fams}


def script(family: Family, seed: str, ncpus: int) -> dict[str, Any]:
    """One script of ``family`` from ``seed``."""
    g = Gen(random.Random(seed), ncpus)
    family.make(g)
    return {"family": family.name, "seed": seed, "steps": g.steps}
