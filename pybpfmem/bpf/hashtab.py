"""HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH (kernel/bpf/hashtab.c).

Elements live in a C element store (csrc/htab_store.c, `bm_htab_*`): key, value
and the simulated addresses of the element's allocations, with the update
decisions of htab_map_update_elem() made in C; every simulated allocation is
still made here through the mm layer.  LRU maps keep the kernel's LRU lists in C
(csrc/bpf_lru_list.c): victims are exactly the kernel's, per simulated cpu (the
cpu of the calling context).  Simplifications (documented): iteration
(get_next_key) follows insertion order, not bucket order; batch lookups go
bucket by bucket with the kernel's jhash (exact for BPF_F_ZERO_SEED maps; the
kernel seeds other maps at random, the model with 0).
"""

from __future__ import annotations

import errno
import struct
from typing import Any

import numpy as np

from .._ffi import ffi, lib

from . import uapi as U
from .caps import bpf_capable
from .errors import BpfError
from .jhash import jhash_any
from .map import (KMALLOC_MAX_SIZE, PCPU_MIN_UNIT_SIZE, BpfMap, CreateCtx, MapAttr, pow2,
                  register_map, rup)
from .memalloc import LLIST_NODE_SZ, BpfMemAlloc

_ACCESS = U.BPF_F_RDONLY | U.BPF_F_WRONLY | U.BPF_F_RDONLY_PROG | U.BPF_F_WRONLY_PROG
HTAB_CREATE_FLAG_MASK = (U.BPF_F_NO_PREALLOC | U.BPF_F_NO_COMMON_LRU | U.BPF_F_NUMA_NODE
                         | _ACCESS | U.BPF_F_ZERO_SEED)
HASHTAB_MAP_LOCK_COUNT = 8
PERCPU_TYPES = (U.BPF_MAP_TYPE_PERCPU_HASH, U.BPF_MAP_TYPE_LRU_PERCPU_HASH)
LRU_TYPES = (U.BPF_MAP_TYPE_LRU_HASH, U.BPF_MAP_TYPE_LRU_PERCPU_HASH)


def percpu_lru_entries(max_entries: int, nr_cpus: int) -> int:
    """htab_map_alloc() with BPF_F_NO_COMMON_LRU: max_entries rounded up to a multiple
    of the possible cpus, so each cpu's LRU list gets max_entries / nr_cpus nodes; the
    kernel's roundup() computes in u32, and where that wrapped it rounds down instead
    (the 2^31 / n_buckets checks then refuse the map).  The same in every release
    (since v4.10)."""
    up = ((max_entries + nr_cpus - 1) & U.U32_MAX) // nr_cpus * nr_cpus
    return up if up >= max_entries else max_entries - max_entries % nr_cpus


@register_map
class HashMap(BpfMap):
    map_types = (U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_PERCPU_HASH, U.BPF_MAP_TYPE_LRU_HASH,
                 U.BPF_MAP_TYPE_LRU_PERCPU_HASH)
    batch_ops = frozenset({"lookup", "lookup_and_delete", "update", "delete"})
    batch_token_size = 4   # in_batch/out_batch hold a u32 bucket index
    fast_update: Any = None   # plain HASH-family maps: a closure (_make_fast_update)

    @classmethod
    def alloc_check(cls, attr: MapAttr, ctx: CreateCtx) -> None:
        """Mirrors htab_map_alloc_check() and the size checks of htab_map_alloc()."""
        t, f = attr.map_type, attr.map_flags
        percpu, lru = t in PERCPU_TYPES, t in LRU_TYPES
        prealloc = not f & U.BPF_F_NO_PREALLOC
        percpu_lru = bool(f & U.BPF_F_NO_COMMON_LRU)
        if lru and not ctx.bprof.caps_central and not bpf_capable(ctx.task):
            raise BpfError(errno.EPERM, "htab_map_alloc_check: LRU maps need CAP_BPF")
        if f & U.BPF_F_ZERO_SEED and not ctx.capable(U.CAP_SYS_ADMIN):
            raise BpfError(errno.EPERM, "htab_map_alloc_check: BPF_F_ZERO_SEED needs "
                                        "CAP_SYS_ADMIN")
        if f & ~HTAB_CREATE_FLAG_MASK or (f & U.BPF_F_RDONLY_PROG and f & U.BPF_F_WRONLY_PROG):
            raise BpfError(errno.EINVAL, f"htab_map_alloc_check: map_flags {f:#x} not in "
                                         f"{HTAB_CREATE_FLAG_MASK:#x} or bad access flags")
        if not lru and percpu_lru:
            raise BpfError(errno.EINVAL, "htab_map_alloc_check: BPF_F_NO_COMMON_LRU on a "
                                         "non-LRU map")
        if lru and not prealloc:
            raise BpfError(U.ENOTSUPP, "htab_map_alloc_check: LRU maps cannot be "
                                       "BPF_F_NO_PREALLOC (-ENOTSUPP)")
        if f & U.BPF_F_NUMA_NODE and (percpu or percpu_lru):
            raise BpfError(errno.EINVAL, "htab_map_alloc_check: NUMA node with per-cpu map")
        if attr.max_entries == 0 or attr.key_size == 0 or attr.value_size == 0:
            raise BpfError(errno.EINVAL, f"htab_map_alloc_check: max_entries "
                                         f"{attr.max_entries}, key_size {attr.key_size}, "
                                         f"value_size {attr.value_size} must be > 0")
        # switch htab_large_key: key_size + value_size bound instead of key_size <=
        # MAX_BPF_STACK (the live 6.18 kernel creates a 600-byte key, docs/fidelity.md)
        if attr.key_size > U.MAX_BPF_STACK and not ctx.bprof.htab_large_key:
            raise BpfError(errno.E2BIG, f"htab_map_alloc_check: key_size {attr.key_size} > "
                                        f"MAX_BPF_STACK {U.MAX_BPF_STACK}")
        he = ctx.sizes.htab_elem
        if ctx.bprof.htab_large_key:
            if attr.key_size + attr.value_size >= KMALLOC_MAX_SIZE - he:
                raise BpfError(errno.E2BIG, f"htab_map_alloc_check: key_size + value_size "
                                            f"{attr.key_size + attr.value_size} >= "
                                            f"KMALLOC_MAX_SIZE - {he}")
        elif attr.value_size >= KMALLOC_MAX_SIZE - U.MAX_BPF_STACK - he:
            raise BpfError(errno.E2BIG, f"htab_map_alloc_check: value_size {attr.value_size}"
                                        f" >= KMALLOC_MAX_SIZE - 512 - {he}")
        if ctx.bprof.percpu_value_limit and percpu and rup(attr.value_size, 8) > \
                PCPU_MIN_UNIT_SIZE:
            raise BpfError(errno.E2BIG, "htab_map_alloc_check: per-cpu value > "
                                        "PCPU_MIN_UNIT_SIZE")
        max_e = attr.max_entries
        if percpu_lru:
            max_e = percpu_lru_entries(max_e, ctx.system.nr_cpus)
        if ctx.bprof.htab_max_2g and max_e > 1 << 31:
            raise BpfError(errno.E2BIG, f"htab_map_alloc: max_entries {max_e} > 2^31")
        nb = pow2(max_e)
        if nb == 0 or nb > U.U32_MAX // ctx.sizes.bucket:
            raise BpfError(errno.E2BIG, f"htab_map_alloc: n_buckets {nb} > U32_MAX/"
                                        f"{ctx.sizes.bucket}")

    def __init__(self, system: Any, attr: MapAttr, ctx: CreateCtx) -> None:
        super().__init__(system, attr, ctx)
        t = attr.map_type
        self.percpu = t in PERCPU_TYPES
        self.lru = t in LRU_TYPES
        self.prealloc = not attr.map_flags & U.BPF_F_NO_PREALLOC
        if attr.map_flags & U.BPF_F_NO_COMMON_LRU:
            self.max_entries = percpu_lru_entries(self.max_entries, system.nr_cpus)
        self.n_buckets = pow2(self.max_entries)
        self.elem_size = ctx.sizes.htab_elem + rup(self.key_size, 8) + (
            8 if self.percpu else rup(self.value_size, 8))
        self.v8 = rup(self.value_size, 8)
        # the element store: stored value bytes (per-cpu: v8 per possible cpu; fd maps:
        # the 8-byte slot) and the aux words of a no-prealloc element's allocations:
        # v5.x kmalloc (addr, percpu addr); bpf_mem_alloc addr [, pcpu obj addr, percpu addr]
        if t in PERCPU_TYPES:
            self._vsize = self.v8 * system.nr_cpus
        elif t == U.BPF_MAP_TYPE_HASH_OF_MAPS:
            self._vsize = 8
        else:
            self._vsize = self.value_size
        if self.prealloc:
            self._naux = 0
        elif ctx.bprof.htab_mem_alloc:
            self._naux = 3 if self.percpu else 1
        else:
            self._naux = 2
        self._mode = ((lib.BM_HTAB_ALLOC_NEW if not self.prealloc else 0)
                      | (lib.BM_HTAB_ALLOC_REPLACE if not self.prealloc and not self.percpu else 0)
                      | (lib.BM_HTAB_LRU if self.lru else 0))
        self._store = self._new_store()
        self._aux = ffi.new("uint64_t[4]")
        self._old = ffi.new("uint64_t[4]")
        self._vbuf = ffi.new("char[]", self._vsize)
        self._struct = 0
        self._buckets = 0
        self._locked: list[int] = []
        self._elems_area = 0
        self._pptrs = 0                 # the preallocated per-cpu values (one array)
        self._extra = 0
        self.ma: BpfMemAlloc | None = None
        self.pcpu_ma: BpfMemAlloc | None = None

    def _new_store(self) -> Any:
        h = lib.bm_htab_new(self.key_size, self._vsize, self._naux, self.max_entries, self._mode)
        if h == ffi.NULL:
            raise MemoryError("bm_htab_new failed")
        h = ffi.gc(h, lib.bm_htab_free)
        if self.lru:
            # prealloc_init(): bpf_lru_init() + bpf_lru_populate() of max_entries nodes
            flags = ((lib.BM_HTAB_LRU_NO_COMMON if self.attr.map_flags & U.BPF_F_NO_COMMON_LRU else 0)
                     | (lib.BM_HTAB_LRU_PERCPU_VALUES if self.percpu else 0)
                     | (lib.BM_HTAB_LRU_TARGET_FREE_CLAMP if self.bprof.lru_target_free_clamp else 0))
            rc = lib.bm_htab_lru_init(h, self.system.nr_cpus, flags)
            if rc:
                raise MemoryError(f"bm_htab_lru_init failed ({rc})")
        return h

    def __len__(self) -> int:
        return int(lib.bm_htab_count(self._store))

    def items(self) -> list[tuple[bytes, bytes]]:
        """(key, stored value) of every element, in iteration (insertion) order."""
        n = len(self)
        ks, vs = self.key_size, self._vsize
        kb, vb = bytearray(ks * n), bytearray(vs * n)
        if n:
            lib.bm_htab_dump(self._store, ffi.from_buffer(kb), ffi.from_buffer(vb), ffi.NULL, n)
        return [(bytes(kb[i * ks:(i + 1) * ks]), bytes(vb[i * vs:(i + 1) * vs])) for i in range(n)]

    def elem_objs(self) -> list[Any]:
        """The allocator objects of every no-prealloc element, in iteration order."""
        n = len(self)
        if not self._naux or not n:
            return []
        aux = np.zeros(n * self._naux, dtype=np.uint64)
        lib.bm_htab_dump(self._store, ffi.NULL, ffi.NULL,
                         ffi.cast("uint64_t *", ffi.from_buffer(aux)), n)
        w = aux.reshape(n, self._naux).tolist()
        return [self._aux_obj(row) for row in w]

    def _obj_aux(self, obj: Any, out: Any) -> Any:
        """An allocation handle as aux words in `out` (the inverse of _aux_obj)."""
        kind, a, p = obj
        if kind == "k":
            out[0], out[1] = a, p
        else:
            out[0] = a[0]
            if p is not None:
                out[1], out[2] = p
        return out

    def _aux_obj(self, w: Any) -> Any:
        if self._naux == 2:
            return ("k", int(w[0]), int(w[1]))
        if self._naux == 3:
            return ("ma", (int(w[0]), 0), (int(w[1]), int(w[2])))
        return ("ma", (int(w[0]), 0), None)

    def _get(self, key: bytes) -> bytes | None:
        if lib.bm_htab_lookup(self._store, bytes(key), self._vbuf, ffi.NULL):
            return None
        return ffi.unpack(self._vbuf, self._vsize)

    def update_allocates(self) -> bool:
        # LRU maps allocate nothing, but their update takes a node from the calling
        # cpu's lists, so it runs in the syscall's context too
        return not self.prealloc or self.lru or type(self) is not HashMap

    # --- creation
    def _has_extra_elems(self) -> bool:
        """htab_has_extra_elems(): not per-cpu, not LRU, and (switch fd_htab_extra_elems
        off: v6.16+) not an fd hash (HASH_OF_MAPS)."""
        if self.percpu or self.lru:
            return False
        return self.bprof.fd_htab_extra_elems or self.attr.map_type != U.BPF_MAP_TYPE_HASH_OF_MAPS

    def _num_prealloc(self) -> int:
        """prealloc_init(): max_entries, plus one extra element per possible cpu where
        htab_has_extra_elems()."""
        return self.max_entries + (self.system.nr_cpus if self._has_extra_elems() else 0)

    def legacy_cost(self) -> int:
        """v5.10 htab_map_alloc() cost (same for prealloc and no-prealloc)."""
        p = self.system.nr_cpus
        cost = self.n_buckets * self.sizes.bucket + self.elem_size * self.max_entries
        if self.percpu:
            cost += self.v8 * p * self.max_entries
        else:
            cost += self.elem_size * p
        return cost

    def alloc(self) -> None:
        """Mirrors htab_map_alloc(): struct, buckets, map_locked per-cpu ints (switch
        htab_map_locked), then prealloc_init() (+ alloc_extra_elems()) or
        bpf_mem_alloc_init()."""
        g, bp = self.gfp, self.bprof
        if bp.struct_area_alloc:
            self._struct = self.area_alloc(self.sizes.bpf_htab)
        else:
            acct = g.ACCOUNT if bp.account else 0
            self._struct = self.kzalloc_account(self.sizes.bpf_htab, g.USER | g.ZERO | acct)
        self._buckets = self.area_alloc(self.n_buckets * self.sizes.bucket)
        for _ in range(HASHTAB_MAP_LOCK_COUNT if bp.htab_map_locked else 0):
            if bp.account:
                self._locked.append(self.map_alloc_percpu(4, 4, g.USER))
            else:
                self._locked.append(self.plain_alloc_percpu(4, 4, g.USER))
        pcpu = self.map_alloc_percpu if bp.account else self.plain_alloc_percpu
        if self.prealloc:
            num = self._num_prealloc()
            self._elems_area = self.area_alloc(self.elem_size * num)
            if self.percpu:
                # prealloc_init(): bpf_map_alloc_percpu() per element, as one array
                self._pptrs = self.map_alloc_percpu_array(self.v8, 8, g.USER | g.NOWARN, num,
                                                          accounted=bp.account)
            # pcpu_freelist_init() / bpf_lru_init(): alloc_percpu() without __GFP_ACCOUNT
            # in every release, never charged (not modelled; the LRU lists are in C)
            if self._has_extra_elems():
                self._extra = pcpu(8, 8, g.USER | g.NOWARN)   # alloc_extra_elems()
        elif bp.htab_mem_alloc:
            self.ma = BpfMemAlloc(self, self.elem_size, False)
            if self.percpu:
                self.pcpu_ma = BpfMemAlloc(self, self.v8, True)
        if type(self) is HashMap:
            self.fast_update = self._make_fast_update()   # now with the map's caches

    def free(self) -> None:
        """Mirrors htab_map_free(): elements, mem caches, areas, per-cpu ints."""
        objs = self.elem_objs()
        self._store = self._new_store()
        for obj in objs:
            self._free_obj(obj)
        for ma in (self.ma, self.pcpu_ma):
            if ma is not None:
                ma.destroy()
        self.ma = self.pcpu_ma = None
        if type(self) is HashMap:
            self.fast_update = self._make_fast_update()
        self.free_all()

    def mem_usage(self) -> int:
        """Mirrors htab_map_mem_usage() (v6.4+): the map_locked counters and the extra_elems
        pointers of every non-LRU, non-per-cpu preallocated map are counted in every
        release that has it, also where they are no longer allocated (6.18: no map_locked
        counters, no extra elements for HASH_OF_MAPS)."""
        p = self.system.nr_cpus
        usage = self.sizes.bpf_htab + self.sizes.bucket * self.n_buckets
        usage += 4 * p * HASHTAB_MAP_LOCK_COUNT
        if self.prealloc:
            num = self._num_prealloc()
            usage += self.elem_size * num
            if self.percpu:
                usage += self.v8 * p * num
            elif not self.lru:
                usage += 8 * p
        else:
            n = len(self)
            usage += (self.elem_size + LLIST_NODE_SZ) * n
            if self.percpu:
                usage += (8 + LLIST_NODE_SZ) * n + self.v8 * p * n
        return usage

    # --- element allocation (no-prealloc)
    def _alloc_obj(self) -> Any:
        """alloc_htab_elem()'s allocation: v5.x bpf_map_kmalloc_node (GFP_ATOMIC) +
        bpf_map_alloc_percpu; v6.1+ bpf_mem_cache_alloc on ma (+ pcpu_ma)."""
        if self.ma is not None:
            obj = self.ma.alloc()
            if obj is None:
                raise self._cache_enomem()
            if self.pcpu_ma is not None:
                pobj = self.pcpu_ma.alloc()
                if pobj is None:
                    self.ma.free(obj)
                    raise BpfError(errno.ENOMEM, "htab update: per-cpu bpf_mem_cache_alloc "
                                                 "failed")
                return ("ma", obj, pobj)
            return ("ma", obj, None)
        gfp = self.runtime_gfp()
        a = self.map_kmalloc(self.elem_size, gfp)
        p = 0
        if self.percpu:
            try:
                p = self.map_alloc_percpu(self.v8, 8, gfp)
            except BpfError:
                self.kfree(a)
                raise
        return ("k", a, p)

    def _cache_enomem(self) -> BpfError:
        return BpfError(errno.ENOMEM, f"htab update: bpf_mem_cache_alloc found the cache "
                                      f"empty and refill failed (map {self.id}; memcg "
                                      f"{self.memcg_path()})")

    def _free_obj(self, obj: Any) -> None:
        kind, a, p = obj
        if kind == "ma":
            assert self.ma is not None
            self.ma.free(a)
            if p is not None and self.pcpu_ma is not None:
                self.pcpu_ma.free(p)
        else:
            self.kfree(a)
            if p:
                self.free_percpu(p)

    def _free_obj_rcu(self, obj: Any) -> None:
        """free_htab_elem() of a deleted or replaced element: bpf_mem_cache_free() at once
        (v6.1+: the cache reuses it, holding back only what is above its high watermark),
        or call_rcu(htab_elem_free_rcu) on v5.x: the element and its per-cpu value stay
        allocated, and charged, until an RCU grace period (the model's deferred work)."""
        if obj[0] == "ma":
            self._free_obj(obj)
        else:
            self.system.bpf_state.queue_work(lambda: self._free_obj(obj))

    # --- element ops
    def _norm_value(self, value: bytes) -> bytes:
        # per-cpu: pcpu_copy_value() copies round_up(value_size, 8) per cpu, padding included
        return bytes(value) if self.percpu else bytes(value[:self.value_size])

    def lookup_elem(self, key: bytes | None) -> bytes:
        self.check_key(key)
        assert key is not None
        key = bytes(key)
        if lib.bm_htab_lookup(self._store, key, self._vbuf, ffi.NULL):
            raise BpfError(errno.ENOENT, "htab lookup: no such key")
        return ffi.unpack(self._vbuf, self._vsize)

    def _update(self, key: bytes, value: bytes, flags: int, onallcpus: bool = True) -> None:
        """Mirrors htab_map_update_elem() / htab_percpu_map_update_elem(): the store
        decides (check_flags(), -EEXIST/-ENOENT, -E2BIG when full); a no-prealloc
        element is allocated here between the decision and the commit, as
        alloc_htab_elem() does, and a replaced element is freed after its replacement
        exists.  LRU maps: htab_lru_map_update_elem() / __htab_lru_percpu_map_update_elem()
        on the calling cpu (onallcpus False: a program's update of a per-cpu value)."""
        if len(value) != self._vsize:
            raise ValueError(f"value must be {self._vsize} bytes, got {len(value)}")
        if not 0 <= flags < 1 << 64:
            raise BpfError(errno.EINVAL, f"htab update: flags {flags:#x} > BPF_EXIST")
        if self.lru:
            rc = lib.bm_htab_lru_update(self._store, self.system.current_cpu or 0, key, value,
                                        flags, onallcpus)
            if rc:
                raise self._update_error(-rc, flags)
            return
        rc = lib.bm_htab_update(self._store, key, value, flags)
        if rc:
            self._update_rest(rc, key, value, flags)

    def _make_fast_update(self) -> Any:
        """fast_update(key, value, flags): the syscall update for well-formed input (key
        and value bytes of the sizes bpf_map_update_elem() copies, flags BPF_ANY/NOEXIST/
        EXIST) in one frame, with the same outcome as update_elem().  Returns False,
        having done nothing, for anything else (the caller then takes the general path).
        perf: a closure over the store and sizes (no attribute lookups per call); it
        is rebuilt when the store is (free())."""
        store, ks, vs = self._store, self.key_size, self._vsize
        update, rest = lib.bm_htab_update, self._update_rest
        if self.lru:
            # htab_lru_map_update_elem() on the calling cpu's LRU lists
            lru_update, system, error = lib.bm_htab_lru_update, self.system, self._update_error

            def fast_update_lru(key: Any, value: Any, flags: int) -> bool:
                if type(key) is not bytes or len(key) != ks or type(value) is not bytes \
                        or len(value) != vs:
                    return False
                rc = lru_update(store, system.current_cpu or 0, key, value, flags, 1)
                if rc:
                    raise error(-rc, flags)
                return True
            return fast_update_lru
        ma = self.ma if self.pcpu_ma is None and self._naux == 1 else None
        if ma is None:
            def fast_update(key: Any, value: Any, flags: int) -> bool:
                if type(key) is not bytes or len(key) != ks or type(value) is not bytes \
                        or len(value) != vs:
                    return False
                rc = update(store, key, value, flags)
                if rc:
                    rest(rc, key, value, flags)
                return True
            return fast_update
        # v6.1+ no-prealloc plain hash: _update_rest()'s allocate-and-commit inlined
        # (bpf_mem_cache_alloc() of one (addr, 0) object; a replaced one is freed after)
        commit, alloc_addr, aux, old = lib.bm_htab_commit, ma.alloc_addr, self._aux, self._old

        def fast_update_ma(key: Any, value: Any, flags: int) -> bool:
            if type(key) is not bytes or len(key) != ks or type(value) is not bytes \
                    or len(value) != vs:
                return False
            rc = update(store, key, value, flags)
            if rc == 1:
                a = alloc_addr()
                if not a:
                    raise self._cache_enomem()
                aux[0] = a
                if commit(store, key, value, aux, old) == 1:
                    ma.free((int(old[0]), 0))
            elif rc:
                rest(rc, key, value, flags)
            return True
        return fast_update_ma

    def _update_rest(self, rc: int, key: bytes, value: bytes, flags: int) -> None:
        """After bm_htab_update(): an errno, or 1 = allocate the element and commit."""
        if rc < 0:
            raise self._update_error(-rc, flags)
        obj = self._alloc_obj()
        rc = lib.bm_htab_commit(self._store, key, value, self._obj_aux(obj, self._aux), self._old)
        if rc < 0:   # pragma: no cover - host out of memory
            self._free_obj(obj)
            raise MemoryError("bm_htab_commit failed")
        if rc == 1:
            self._free_obj_rcu(self._aux_obj(self._old))

    def _update_error(self, err: int, flags: int) -> BpfError:
        if err == errno.EINVAL:
            return BpfError(err, f"htab update: flags {flags:#x} > BPF_EXIST")
        if err == errno.EEXIST:
            return BpfError(err, "htab update: BPF_NOEXIST but the key exists")
        if err == errno.ENOENT:
            return BpfError(err, "htab update: BPF_EXIST but the key is missing")
        if err == errno.E2BIG:
            return BpfError(err, f"htab update: map full ({len(self)} of max_entries "
                                 f"{self.max_entries})")
        if err == errno.ENOMEM and self.lru:
            return BpfError(err, "htab_lru_map_update_elem: bpf_lru_pop_free() found no "
                                 "free node")
        return BpfError(err, f"htab update: element store error {err}")  # pragma: no cover

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        if type(key) is not bytes or len(key) != self.key_size:
            self.check_key(key)
            assert key is not None
            key = bytes(key)
        self._update(key, self._norm_value(value), flags)

    def update_batch_fast(self, kb: bytes, vb: bytes, n: int,
                          flags: int) -> tuple[int, BpfError | None] | None:
        """generic_map_update_batch()'s element loop for n new, distinct keys of a plain
        hash (BPF_ANY / BPF_NOEXIST): the same outcome as n update_elem() calls -- the
        same allocations in the same order (BpfMemAlloc.alloc_many_addrs), insertion
        order, and the same first error (E2BIG when full, ENOMEM when the cache runs
        dry) with the count done before it -- in a few C calls.  Returns None, having
        changed nothing, for any other case (the caller then loops)."""
        ks, vs = self.key_size, self.value_size
        if (type(self) is not HashMap or self.percpu or self.lru or self.pcpu_ma is not None
                or (not self.prealloc and self.ma is None) or flags & U.BPF_EXIST
                or (flags & ~U.BPF_F_LOCK) > U.BPF_EXIST or len(kb) != ks * n
                or len(vb) != vs * n):
            return None
        if lib.bm_htab_all_new(self._store, kb, n) != 1:
            return None
        done = min(n, self.max_entries - len(self))
        err: BpfError | None = None
        if done < n:
            err = BpfError(errno.E2BIG, f"htab update: map full ({self.max_entries} of "
                                        f"max_entries {self.max_entries})")
        aux = ffi.NULL
        if not self.prealloc:
            assert self.ma is not None
            addrs = self.ma.alloc_many_addrs(done)
            if len(addrs) < done:
                done = len(addrs)
                err = BpfError(errno.ENOMEM, f"htab update: bpf_mem_cache_alloc found the "
                                             f"cache empty and refill failed (map {self.id}; "
                                             f"memcg {self.memcg_path()})")
            aux = ffi.cast("uint64_t *", ffi.from_buffer(addrs))
        if done and lib.bm_htab_insert_bulk(self._store, kb, vb, aux, done) != done:
            raise MemoryError("bm_htab_insert_bulk failed")   # pragma: no cover
        return done, err

    def bulk_fill(self, kb: bytes, n: int, *, distinct_new: bool = False) -> bool:
        """n syscall updates (BPF_ANY, zero values) of the new, distinct keys in ``kb`` on
        the current cpu, in a few C calls (bpf/fill.py): the same allocations in the same
        order and context as the loop (a no-prealloc element: bpf_mem_cache_alloc() on
        v6.1+, bpf_map_kmalloc_node() [+ bpf_map_alloc_percpu()] under the map's memcg
        before), the same element state, and the same first error (E2BIG at max_entries,
        ENOMEM when an allocation fails) after the updates before it.  Returns False,
        having done nothing, where the loop must run instead (LRU maps, a per-cpu
        bpf_mem_alloc pair, a key already in the map).  ``distinct_new``: the caller knows
        the keys are distinct and the map empty (perf: no check)."""
        if (type(self) is not HashMap or self.lru or self.pcpu_ma is not None
                or len(kb) != self.key_size * n):
            return False
        if not (distinct_new and not len(self)) and lib.bm_htab_all_new(self._store, kb, n) != 1:
            return False
        done = min(n, self.max_entries - len(self))
        err: BpfError | None = None
        if done < n:
            err = BpfError(errno.E2BIG, f"htab update: map full ({self.max_entries} of "
                                        f"max_entries {self.max_entries})")
        aux: np.ndarray | None = None
        if self.ma is not None:
            aux = self.ma.alloc_many_addrs(done)
            if len(aux) < done:
                done, err = len(aux), self._cache_enomem()
        elif not self.prealloc:
            aux, done, err = self._kmalloc_elems(done, err)
        vb = bytes(self._vsize * done)
        ptr = ffi.NULL if aux is None else ffi.cast("uint64_t *", ffi.from_buffer(aux))
        if done and lib.bm_htab_insert_bulk(self._store, kb, vb, ptr, done) != done:
            raise MemoryError("bm_htab_insert_bulk failed")   # pragma: no cover
        if err is not None:
            raise err
        return True

    def _kmalloc_elems(self, n: int, err: BpfError | None) -> tuple[np.ndarray, int, BpfError | None]:
        """_alloc_obj()'s v5.x allocations of n elements in one C call that stops at the
        first failure: the element under the map's memcg, then its per-cpu value; an
        element whose per-cpu value fails gives its element back.  Returns the aux words
        (addr, percpu addr) of the elements made, their number and the error."""
        gfp = self.acct(self.runtime_gfp())
        kinds = "kp" if self.percpu else "k"
        sizes = np.tile(np.array([self.elem_size, self.v8][:len(kinds)], dtype=np.uint64), n)
        with self._map_memcg_active():
            got = self.system.allocs_until_fail(kinds * n, sizes, gfp)
        done = len(got) // len(kinds)
        if done < n:
            what, size = ("bpf_map_alloc_percpu", self.v8) if len(got) % len(kinds) else \
                ("bpf_map_kmalloc_node", self.elem_size)
            if len(got) % len(kinds):
                self.system.kfree(int(got[-1]))
            err = BpfError(errno.ENOMEM, f"{what}({size}) for map {self.name or self.id!r} "
                                         f"failed: cannot allocate memory")
        got = got[:done * len(kinds)]
        aux = np.zeros((done, 2), dtype=np.uint64)
        aux[:, 0] = got[0::len(kinds)]
        self.record_many("k", aux[:, 0], self.elem_size)
        if self.percpu:
            aux[:, 1] = got[1::2]
            self.record_many("p", aux[:, 1], self.v8)
        return aux.reshape(-1), done, err

    def helper_update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Program side: per-cpu maps write the current cpu's copy only."""
        if not self.percpu:
            return self.update_elem(key, value, flags)
        self.check_key(key)
        assert key is not None
        if len(value) != self.value_size:
            raise ValueError(f"helper value must be {self.value_size} bytes")
        cpu = self.system.current_cpu or 0
        if self.lru:
            # pcpu_copy_value() / pcpu_init_value() with onallcpus false: only this
            # cpu's copy; the store writes it (a new element zeroes the others)
            cur = bytearray(self._vsize)
            cur[cpu * self.v8:cpu * self.v8 + self.value_size] = value
            self._update(bytes(key), bytes(cur), flags, onallcpus=False)
            return None
        cur = bytearray(self._get(key) or bytes(self.v8 * self.system.nr_cpus))
        cur[cpu * self.v8:cpu * self.v8 + self.value_size] = value
        self._update(key, bytes(cur), flags)
        return None

    def helper_lookup_elem(self, key: bytes | None) -> bytes | None:
        """Program side: LRU maps mark the element referenced
        (htab_lru_map_lookup_elem(), htab_lru_percpu_map_lookup_elem())."""
        self.check_key(key)
        assert key is not None
        if self.lru:
            if lib.bm_htab_lru_lookup(self._store, bytes(key), self._vbuf):
                return None
            v: bytes | None = ffi.unpack(self._vbuf, self._vsize)
        else:
            v = self._get(key)
        if v is None or not self.percpu:
            return v
        cpu = self.system.current_cpu or 0
        return v[cpu * self.v8:cpu * self.v8 + self.value_size]

    def delete_elem(self, key: bytes | None) -> None:
        """Mirrors htab_map_delete_elem(): missing -> ENOENT; frees a no-prealloc element."""
        self.check_key(key)
        assert key is not None
        if lib.bm_htab_delete(self._store, bytes(key), self._old):
            raise BpfError(errno.ENOENT, "htab delete: no such key")
        if self._naux:
            self._free_obj_rcu(self._aux_obj(self._old))

    def lookup_and_delete_elem(self, key: bytes | None) -> bytes:
        if not self.bprof.lookup_and_delete_hash:
            return super().lookup_and_delete_elem(key)
        v = self.lookup_elem(key)
        self.delete_elem(key)
        return v

    def get_next_key(self, key: bytes | None) -> bytes:
        """Mirrors htab_map_get_next_key(): NULL or unknown key -> first; last -> ENOENT
        (order: insertion order, a simplification)."""
        if key is not None:
            self.check_key(key)
        out = ffi.new("char[]", self.key_size)
        if lib.bm_htab_next_key(self._store, ffi.NULL if key is None else bytes(key), out):
            raise BpfError(errno.ENOENT, "htab get_next_key: map empty" if not len(self)
                           else "htab get_next_key: last key")
        return ffi.unpack(out, self.key_size)

    def _batch_value(self, key: bytes, stored: bytes) -> bytes:
        """The value a batch lookup copies out for a stored element."""
        return stored

    def bucket_of(self, key: bytes) -> int:
        """__select_bucket(htab, htab_map_hash(key, key_size, hashrnd)): jhash2 for keys of
        whole words, jhash otherwise.  hashrnd is 0 with BPF_F_ZERO_SEED, as in the
        kernel; without it the kernel draws a random seed and the model keeps 0 (a
        simplification: which keys share a bucket then differs, nothing else does)."""
        return jhash_any(key, 0) & (self.n_buckets - 1)

    def _batch_value(self, key: bytes, stored: bytes) -> bytes:
        """The value a lookup batch copies out for an element (fd htabs: the inner map's id)."""
        return stored

    def lookup_batch(self, c: Any, delete: bool) -> int:
        """Mirrors __htab_map_lookup_and_delete_batch(): bucket by bucket from the
        in_batch bucket; a first bucket that does not fit -> ENOSPC; end -> ENOENT
        with the partial count; out_batch = the next bucket index."""
        a = c.a
        max_count = a["count"]
        batch = struct.unpack("<I", c.umem.read(a["in_batch"], 4))[0] if a["in_batch"] else 0
        if batch >= self.n_buckets:
            raise BpfError(errno.ENOENT, f"htab batch: bucket {batch} >= n_buckets")
        by_bucket: dict[int, list[bytes]] = {}
        elems = dict(self.items())
        for k in elems:
            b = self.bucket_of(k)
            if b >= batch:
                by_bucket.setdefault(b, []).append(k)
        ks, vs = self.key_size, self.syscall_value_size()
        total = 0
        err: BpfError | None = None
        order = sorted(by_bucket)
        i = 0
        while True:
            if i >= len(order):
                batch = self.n_buckets
                err = BpfError(errno.ENOENT, "htab batch: end of map")
                break
            b = order[i]
            bucket = by_bucket[b]
            if len(bucket) > max_count - total:
                batch = b
                if total == 0:
                    err = BpfError(errno.ENOSPC, f"htab batch: bucket {b} holds "
                                                 f"{len(bucket)} elements > count {max_count}")
                break
            for k in bucket:
                c.umem.write(a["keys"] + total * ks, k)
                c.umem.write(a["values"] + total * vs, self._batch_value(k, elems[k]))
                total += 1
                if delete:
                    self.delete_elem(k)
            batch = b + 1
            i += 1
            if batch >= self.n_buckets:
                err = BpfError(errno.ENOENT, "htab batch: end of map")
                break
        if a["out_batch"]:
            c.umem.write(a["out_batch"], struct.pack("<I", min(batch, U.U32_MAX)))
        c.write_back("count", total)
        if err is not None:
            raise err
        return 0


@register_map
class HashOfMaps(HashMap):
    """HASH_OF_MAPS (kernel/bpf/hashtab.c htab_of_map_alloc / fd_htab_*): a hash whose
    8-byte values point to referenced inner maps; syscall values are a u32 map fd
    (update) or map id (lookup)."""

    map_types = (U.BPF_MAP_TYPE_HASH_OF_MAPS,)
    batch_ops = frozenset()

    def _batch_value(self, key: bytes, stored: bytes) -> bytes:
        """__htab_map_lookup_and_delete_batch() of an fd hash: the inner map's id
        (map_fd_sys_lookup_elem()), not the stored pointer."""
        from .arraymap import fd_sys_lookup
        return fd_sys_lookup(self, self.ptrs[key])

    @classmethod
    def alloc_check(cls, attr: MapAttr, ctx: CreateCtx) -> None:
        """Mirrors fd_htab_map_alloc_check(): value_size must be 4."""
        if attr.value_size != 4:
            raise BpfError(errno.EINVAL, f"fd_htab_map_alloc_check: value_size "
                                         f"{attr.value_size} != 4")
        super().alloc_check(attr, ctx)

    def __init__(self, system: Any, attr: MapAttr, ctx: CreateCtx) -> None:
        super().__init__(system, attr, ctx)
        if ctx.bprof.batch_map_in_map:       # htab_of_maps_map_ops: BATCH_OPS(htab)
            self.batch_ops = HashMap.batch_ops
        self.ptrs: dict[bytes, Any] = {}
        self.inner_meta: Any = None

    def alloc(self) -> None:
        """htab_of_map_alloc(): bpf_map_meta_alloc() then htab_map_alloc()."""
        from .arraymap import bpf_map_meta_alloc
        self.inner_meta = bpf_map_meta_alloc(self, self.ctx)
        super().alloc()

    def free(self) -> None:
        """htab_of_map_free(): put every inner map, then the table and the meta."""
        from .arraymap import fd_put_ptr
        for key in list(self.ptrs):
            fd_put_ptr(self, self.ptrs.pop(key))
        super().free()

    def _batch_value(self, key: bytes, stored: bytes) -> bytes:
        from .arraymap import fd_sys_lookup
        return fd_sys_lookup(self, self.ptrs[key])

    def lookup_elem(self, key: bytes | None) -> bytes:
        """bpf_fd_htab_map_lookup_elem(): the inner map's id."""
        from .arraymap import fd_sys_lookup
        super().lookup_elem(key)
        assert key is not None
        return fd_sys_lookup(self, self.ptrs[key])

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Mirrors bpf_fd_htab_map_update_elem(): resolve the fd, then the ordinary
        htab update (its flag checks and -E2BIG); on failure the reference is put."""
        from .arraymap import fd_get_ptr, fd_put_ptr
        self.check_key(key)
        assert key is not None
        ptr = fd_get_ptr(self, struct.unpack("<I", value[:4])[0])
        try:
            self._update(key, bytes(8), flags)
        except BaseException:
            fd_put_ptr(self, ptr)
            raise
        old = self.ptrs.get(key)
        self.ptrs[key] = ptr
        if old is not None:
            fd_put_ptr(self, old)

    def delete_elem(self, key: bytes | None) -> None:
        from .arraymap import fd_put_ptr
        super().delete_elem(key)
        assert key is not None
        fd_put_ptr(self, self.ptrs.pop(key))

    def lookup_and_delete_elem(self, key: bytes | None) -> bytes:
        raise self._nosup("map_lookup_and_delete_elem")

    def helper_update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        raise BpfError(errno.EINVAL, "programs cannot update map-in-map (verifier rejects)")
