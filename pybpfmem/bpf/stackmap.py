"""STACK_TRACE map (kernel/bpf/stackmap.c).

Creation: struct bpf_stack_map with its bucket-pointer array (n_buckets =
pow2(max_entries)) in one bpf_map_area_alloc, the preallocated elements
(sizeof(struct stack_map_bucket) + value_size) * max_entries in another, and a
per-cpu freelist head (plain alloc_percpu, not accounted).  The global perf
callchain buffers (get_callchain_buffers()) are shared and unaccounted: not
modelled.  Programs fill it through bpf_get_stackid(); syscall updates -EINVAL.
"""

from __future__ import annotations

import errno
import hashlib
import struct
from typing import ClassVar

from . import uapi
from .caps import require_cap
from .errors import BpfError
from .map import BpfMap, pow2, register_map

_CREATE_FLAG_MASK = (uapi.BPF_F_NUMA_NODE | uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY
                     | uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_WRONLY_PROG | uapi.BPF_F_STACK_BUILD_ID)
PERF_EVENT_MAX_STACK = 127          # sysctl kernel.perf_event_max_stack default
BPF_STACK_BUILD_ID_SIZE = 32        # sizeof(struct bpf_stack_build_id)
PCPU_FREELIST_HEAD_SIZE = 16        # sizeof(struct pcpu_freelist_head)
BPF_F_REUSE_STACKID = 1 << 10


@register_map
class StackTraceMap(BpfMap):
    """BPF_MAP_TYPE_STACK_TRACE (struct bpf_stack_map)."""

    map_types: ClassVar[tuple[int, ...]] = (uapi.BPF_MAP_TYPE_STACK_TRACE,)

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """The checks of stack_map_alloc()."""
        require_cap(ctx.task, "bpf", "STACK_TRACE")
        if attr.map_flags & ~_CREATE_FLAG_MASK:
            raise BpfError(errno.EINVAL, f"STACK_TRACE: map_flags {attr.map_flags:#x} outside "
                           f"{_CREATE_FLAG_MASK:#x}")
        vs = attr.value_size
        if attr.max_entries == 0 or attr.key_size != 4 or vs < 8 or vs % 8:
            raise BpfError(errno.EINVAL, f"STACK_TRACE: need max_entries > 0 (got "
                           f"{attr.max_entries}), key_size 4 (got {attr.key_size}), value_size a "
                           f"multiple of 8 and >= 8 (got {vs})")
        if attr.map_flags & uapi.BPF_F_STACK_BUILD_ID:
            if vs % BPF_STACK_BUILD_ID_SIZE or vs // BPF_STACK_BUILD_ID_SIZE > PERF_EVENT_MAX_STACK:
                raise BpfError(errno.EINVAL, f"STACK_TRACE: build-id value_size {vs} must be a "
                               f"multiple of {BPF_STACK_BUILD_ID_SIZE} with at most "
                               f"{PERF_EVENT_MAX_STACK} frames (perf_event_max_stack)")
        elif vs // 8 > PERF_EVENT_MAX_STACK:
            raise BpfError(errno.EINVAL, f"STACK_TRACE: {vs // 8} frames > perf_event_max_stack "
                           f"{PERF_EVENT_MAX_STACK}")
        if attr.max_entries > 1 << 31:
            raise BpfError(errno.E2BIG, f"STACK_TRACE: max_entries {attr.max_entries} > 2^31")

    @property
    def n_buckets(self) -> int:
        return pow2(self.attr.max_entries)

    def _elem_size(self) -> int:
        return self.sizes.stack_map_bucket + self.attr.value_size

    def legacy_cost(self) -> int:
        """v5.10 stack_map_alloc(): counts n_buckets (not max_entries) elements."""
        nb = self.n_buckets
        return self.sizes.bpf_stack_map + nb * 8 + nb * self._elem_size()

    def alloc(self) -> None:
        """Mirrors stack_map_alloc() + prealloc_elems_and_freelist()."""
        self.area_alloc(self.sizes.bpf_stack_map + self.n_buckets * 8)
        self.area_alloc(self._elem_size() * self.attr.max_entries)
        # pcpu_freelist_init(): alloc_percpu(struct pcpu_freelist_head), GFP_KERNEL, unaccounted
        self.plain_alloc_percpu(PCPU_FREELIST_HEAD_SIZE, 8, self.gfp.KERNEL)
        self._buckets: dict[int, bytes] = {}

    def mem_usage(self) -> int:
        """Mirrors stack_map_mem_usage()."""
        return (self.sizes.bpf_stack_map + self.n_buckets * 8
                + self.attr.max_entries * self._elem_size())

    # -- program side: bpf_get_stackid() --
    def get_stackid(self, frames: bytes, flags: int = 0) -> int:
        """Mirrors __bpf_get_stackid(): hash the trace into a bucket id; -EEXIST when the
        bucket holds another trace and BPF_F_REUSE_STACKID is not set; -ENOMEM when the
        preallocated elements are used up."""
        if len(frames) % 8 or len(frames) > self.attr.value_size or not frames:
            raise BpfError(errno.EFAULT, "STACK_TRACE: trace must be 8-byte frames fitting value_size")
        h = int.from_bytes(hashlib.blake2b(frames, digest_size=4).digest(), "little")
        idx = h & (self.n_buckets - 1)
        old = self._buckets.get(idx)
        if old is not None:
            if old == frames:
                return idx
            if not flags & BPF_F_REUSE_STACKID:
                raise BpfError(errno.EEXIST, f"STACK_TRACE: bucket {idx} holds another trace")
        elif len(self._buckets) >= self.attr.max_entries:
            raise BpfError(errno.ENOMEM, "STACK_TRACE: freelist empty (all elements in use)")
        self._buckets[idx] = bytes(frames)
        return idx

    helper_get_stackid = get_stackid

    def _id(self, key: bytes | None) -> int:
        if key is None or len(key) != 4:
            raise BpfError(errno.EINVAL, "STACK_TRACE: key must be 4 bytes")
        return struct.unpack("<I", key)[0]

    def lookup_elem(self, key: bytes | None) -> bytes:
        """Mirrors bpf_stackmap_copy(): the trace zero-padded to value_size."""
        idx = self._id(key)
        tr = self._buckets.get(idx) if idx < self.n_buckets else None
        if tr is None:
            raise BpfError(errno.ENOENT, f"STACK_TRACE: no trace with id {idx}")
        return tr + bytes(self.attr.value_size - len(tr))

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Mirrors stack_map_update_elem(): -EINVAL."""
        raise BpfError(errno.EINVAL, "STACK_TRACE: update from syscall is not supported")

    def delete_elem(self, key: bytes | None) -> None:
        """Mirrors stack_map_delete_elem(): an id past the buckets is -E2BIG, an empty
        bucket -ENOENT."""
        idx = self._id(key)
        if idx >= self.n_buckets:
            raise BpfError(errno.E2BIG, f"STACK_TRACE: id {idx} >= n_buckets {self.n_buckets}")
        if self._buckets.pop(idx, None) is None:
            raise BpfError(errno.ENOENT, f"STACK_TRACE: no trace with id {idx}")

    def lookup_and_delete_elem(self, key: bytes | None) -> bytes:
        """Mirrors stack_map_lookup_and_delete_elem() -> bpf_stackmap_extract(delete=true)
        (switch lookup_and_delete_stack_trace; -ENOTSUPP before): the trace, then its
        bucket back to the freelist; an id >= n_buckets is -ENOENT."""
        if not self.bprof.lookup_and_delete_stack_trace:
            return super().lookup_and_delete_elem(key)
        idx = self._id(key)
        tr = self._buckets.pop(idx, None) if idx < self.n_buckets else None
        if tr is None:
            raise BpfError(errno.ENOENT, f"STACK_TRACE: no trace with id {idx}")
        return tr + bytes(self.attr.value_size - len(tr))

    def get_next_key(self, key: bytes | None) -> bytes:
        """Mirrors stack_map_get_next_key(): the next id with a trace after the key's;
        from the start when the key is past the buckets or its bucket is empty."""
        start = 0
        if key is not None:
            idx = self._id(key)
            start = 0 if idx >= self.n_buckets or idx not in self._buckets else idx + 1
        nxt = [i for i in self._buckets if i >= start]
        if not nxt:
            raise BpfError(errno.ENOENT, "STACK_TRACE: no further trace")
        return struct.pack("<I", min(nxt))
