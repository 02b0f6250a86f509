"""BLOOM_FILTER map (kernel/bpf/bloom_filter.c, v5.16+; absent from the 5.10/5.11 profiles).

One bpf_map_area_alloc of sizeof(struct bpf_bloom_filter) + the bitset at
creation; push/peek never allocate.  The bits are the kernel's: jhash2 (jhash for
values that are not whole words) seeded with hash_seed + i for hash function i.
hash_seed is 0 with BPF_F_ZERO_SEED, as in the kernel; otherwise the kernel draws
a random seed and the model keeps 0 (a simplification: which values collide then
differs, nothing else does).
"""

from __future__ import annotations

import errno
from typing import ClassVar

from . import uapi
from .caps import require_cap
from .errors import BpfError
from .jhash import jhash_any
from .map import KMALLOC_MAX_SIZE, BpfMap, flags_access_ok, pow2, register_map, rup
from .uapi import U32_MAX

_CREATE_FLAG_MASK = (uapi.BPF_F_NUMA_NODE | uapi.BPF_F_ZERO_SEED | uapi.BPF_F_RDONLY
                     | uapi.BPF_F_WRONLY | uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_WRONLY_PROG)


def bitset_geometry(max_entries: int, map_extra: int) -> tuple[int, int, int]:
    """(nr_hash_funcs, bitset_mask, bitset_bytes) as bloom_map_alloc() computes them:
    bits = max_entries * k * 7 / 5 (k / ln 2), at least 64, rounded up to a power of
    two; 2^32 bits when that overflows."""
    k = map_extra & 0xF or 5
    nr_bits = max_entries * k
    if nr_bits > U32_MAX or (nr_bits // 5) * 7 > U32_MAX or (nr_bits // 5) * 7 > (1 << 31):
        bitset_bytes = (U32_MAX + 7) // 8
        mask = U32_MAX
    else:
        nr_bits = (nr_bits // 5) * 7
        nr_bits = 64 if nr_bits <= 64 else pow2(nr_bits)
        bitset_bytes = (nr_bits + 7) // 8
        mask = nr_bits - 1
    return k, mask, rup(bitset_bytes, 8)


@register_map
class BloomFilterMap(BpfMap):
    """BPF_MAP_TYPE_BLOOM_FILTER (struct bpf_bloom_filter)."""

    map_types: ClassVar[tuple[int, ...]] = (uapi.BPF_MAP_TYPE_BLOOM_FILTER,)
    null_key: ClassVar[bool] = True

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """bloom_map_alloc_check() and the checks at the top of bloom_map_alloc()."""
        if attr.value_size > KMALLOC_MAX_SIZE:
            raise BpfError(errno.E2BIG, f"BLOOM_FILTER: value_size {attr.value_size} > "
                           f"KMALLOC_MAX_SIZE {KMALLOC_MAX_SIZE}")
        require_cap(ctx.task, "bpf", "BLOOM_FILTER")
        if (attr.key_size != 0 or attr.value_size == 0 or attr.max_entries == 0
                or attr.map_flags & ~_CREATE_FLAG_MASK
                or not flags_access_ok(attr.map_flags) or attr.map_extra & ~0xF):
            raise BpfError(errno.EINVAL, f"BLOOM_FILTER: bloom_map_alloc: need key_size 0 (got "
                           f"{attr.key_size}), value_size > 0 (got {attr.value_size}), "
                           f"max_entries > 0 (got {attr.max_entries}), flags within "
                           f"{_CREATE_FLAG_MASK:#x} (got {attr.map_flags:#x}), map_extra <= 0xf "
                           f"(got {attr.map_extra:#x})")

    def _geometry(self) -> tuple[int, int, int]:
        return bitset_geometry(self.attr.max_entries, self.attr.map_extra)

    def alloc(self) -> None:
        """Mirrors bloom_map_alloc(): one bpf_map_area_alloc of struct + bitset."""
        self.nr_hash_funcs, self.bitset_mask, nbytes = self._geometry()
        self.area_alloc(self.sizes.bpf_bloom_filter + nbytes)
        self._bits: set[int] = set()
        self._seed = 0     # bloom->hash_seed (the kernel's is random without BPF_F_ZERO_SEED)

    def mem_usage(self) -> int:
        """Mirrors bloom_map_mem_usage(): struct + bitset bytes (rounded to longs)."""
        _, mask, _ = self._geometry()
        return self.sizes.bpf_bloom_filter + rup((mask + 1 + 7) // 8, 8)

    def _hash(self, value: bytes, i: int) -> int:
        """hash(): jhash2/jhash of the value seeded with hash_seed + index, masked."""
        return jhash_any(value, (self._seed + i) & 0xFFFFFFFF) & self.bitset_mask

    def push_elem(self, value: bytes, flags: int = 0) -> None:
        """Mirrors bloom_map_push_elem(): only BPF_ANY."""
        if flags != uapi.BPF_ANY:
            raise BpfError(errno.EINVAL, f"BLOOM_FILTER push: flags {flags:#x} must be BPF_ANY")
        for i in range(self.nr_hash_funcs):
            self._bits.add(self._hash(bytes(value), i))

    def peek_elem(self, value: bytes) -> None:
        """Mirrors bloom_map_peek_elem(): -ENOENT when some bit is clear."""
        for i in range(self.nr_hash_funcs):
            if self._hash(bytes(value), i) not in self._bits:
                raise BpfError(errno.ENOENT, "BLOOM_FILTER: value is definitely not present")

    helper_push_elem = push_elem
    helper_peek_elem = peek_elem

    def helper_pop_elem(self) -> bytes:
        raise BpfError(errno.EOPNOTSUPP, "BLOOM_FILTER: pop is not supported")

    # syscall: LOOKUP with NULL key and a value buffer is peek; UPDATE is push
    def lookup_elem(self, key: bytes | None, value: bytes | None = None) -> bytes:
        """bpf_map_copy_value(): the syscall lookup of a bloom filter is a peek of the
        value passed in the value buffer; returns that value when (maybe) present."""
        if key is not None:
            raise BpfError(errno.EINVAL, "BLOOM_FILTER lookup: key must be NULL")
        if value is None:
            raise BpfError(errno.EINVAL, "BLOOM_FILTER lookup: the value to test goes in the value buffer")
        self.peek_elem(value)
        return bytes(value)

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        if key is not None:
            raise BpfError(errno.EINVAL, "BLOOM_FILTER update: key must be NULL")
        self.push_elem(value, flags)

    def helper_update_elem(self, key: bytes | None, value: bytes, flags: int = 0) -> None:
        """bloom_map_update_elem() from a program: -EINVAL (use push)."""
        raise BpfError(errno.EINVAL, "BLOOM_FILTER: map_update_elem is not supported, use push")

    def delete_elem(self, key: bytes | None) -> None:
        raise BpfError(errno.EOPNOTSUPP, "BLOOM_FILTER: delete is not supported (bloom_map_delete_elem)")

    def get_next_key(self, key: bytes | None) -> bytes:
        raise BpfError(errno.EOPNOTSUPP, "BLOOM_FILTER: get_next_key is not supported")
