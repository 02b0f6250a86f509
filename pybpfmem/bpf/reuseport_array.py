"""REUSEPORT_SOCKARRAY map (kernel/bpf/reuseport_array.c).

One bpf_map_area_alloc(sizeof(struct reuseport_array) + max_entries * 8) at
creation; updates store a socket pointer and allocate nothing.
"""

from __future__ import annotations

import errno
import struct
from typing import ClassVar

from . import uapi
from .caps import require_cap
from .errors import BpfError
from .kobjects import Socket, current_task, fd_object
from .map import BpfMap, register_map

_ARRAY_FLAGS = (uapi.BPF_F_NUMA_NODE | uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY
                | uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_WRONLY_PROG)


@register_map
class ReuseportArray(BpfMap):
    """BPF_MAP_TYPE_REUSEPORT_SOCKARRAY (struct reuseport_array)."""

    map_types: ClassVar[tuple[int, ...]] = (uapi.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY,)

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """Mirrors reuseport_array_alloc_check() (array_map_alloc_check() + value 4/8)
        and the bpf_capable() test of reuseport_array_alloc()."""
        if attr.value_size not in (4, 8):
            raise BpfError(errno.EINVAL, f"REUSEPORT_SOCKARRAY: value_size {attr.value_size} "
                           f"must be 4 or 8 (a socket fd)")
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.map_flags & ~_ARRAY_FLAGS):
            raise BpfError(errno.EINVAL, f"REUSEPORT_SOCKARRAY: array_map_alloc_check: need "
                           f"max_entries > 0 (got {attr.max_entries}), key_size 4 (got "
                           f"{attr.key_size}), flags within {_ARRAY_FLAGS:#x} (got {attr.map_flags:#x})")
        require_cap(ctx.task, "bpf", "REUSEPORT_SOCKARRAY")

    def _size(self) -> int:
        return self.sizes.reuseport_array + self.attr.max_entries * 8

    def legacy_cost(self) -> int:
        return self._size()

    def alloc(self) -> None:
        """Mirrors reuseport_array_alloc()."""
        self.area_alloc(self._size())
        self._socks: dict[int, Socket] = {}

    def mem_usage(self) -> int:
        """Mirrors reuseport_array_mem_usage()."""
        return self._size()

    def _index(self, key: bytes | None) -> int:
        if key is None or len(key) != 4:
            raise BpfError(errno.EINVAL, "REUSEPORT_SOCKARRAY: key must be 4 bytes")
        return struct.unpack("<I", key)[0]

    def lookup_elem(self, key: bytes | None) -> bytes:
        """Syscall lookup: bpf_fd_reuseport_array_lookup_elem() returns the socket cookie."""
        idx = self._index(key)
        sk = self._socks.get(idx) if idx < self.attr.max_entries else None
        if sk is None:
            raise BpfError(errno.ENOENT, f"REUSEPORT_SOCKARRAY: index {idx} is empty")
        return struct.pack("<Q", sk.ino)[: self.attr.value_size]

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Mirrors bpf_fd_reuseport_array_update_elem(): no allocation."""
        idx = self._index(key)
        if flags > uapi.BPF_EXIST:
            raise BpfError(errno.EINVAL, f"REUSEPORT_SOCKARRAY: flags {flags:#x} > BPF_EXIST")
        if idx >= self.attr.max_entries:
            raise BpfError(errno.E2BIG, f"REUSEPORT_SOCKARRAY: index {idx} >= max_entries "
                           f"{self.attr.max_entries}")
        fd = int.from_bytes(value[:4], "little")
        sk = fd_object(current_task(self.system), fd)
        if not isinstance(sk, Socket):
            raise BpfError(errno.EINVAL, f"REUSEPORT_SOCKARRAY: fd {fd} is not a socket")
        if sk.kind not in ("tcp", "udp"):
            raise BpfError(524,
                           "REUSEPORT_SOCKARRAY: socket type not supported")
        old = self._socks.get(idx)
        if old is None and flags == uapi.BPF_EXIST:
            raise BpfError(errno.ENOENT, f"REUSEPORT_SOCKARRAY: index {idx} empty with BPF_EXIST")
        if old is not None and flags == uapi.BPF_NOEXIST:
            raise BpfError(errno.EEXIST, f"REUSEPORT_SOCKARRAY: index {idx} in use with BPF_NOEXIST")
        self._socks[idx] = sk

    def delete_elem(self, key: bytes | None) -> None:
        """Mirrors reuseport_array_delete_elem()."""
        idx = self._index(key)
        if idx >= self.attr.max_entries:
            raise BpfError(errno.E2BIG, f"REUSEPORT_SOCKARRAY: index {idx} >= max_entries")
        if self._socks.pop(idx, None) is None:
            raise BpfError(errno.ENOENT, f"REUSEPORT_SOCKARRAY: index {idx} is empty")

    def get_next_key(self, key: bytes | None) -> bytes:
        """Mirrors reuseport_array_get_next_key()."""
        if key is None:
            return struct.pack("<I", 0)
        idx = self._index(key)
        if idx >= self.attr.max_entries:
            return struct.pack("<I", 0)
        if idx == self.attr.max_entries - 1:
            raise BpfError(errno.ENOENT, "REUSEPORT_SOCKARRAY: last index")
        return struct.pack("<I", idx + 1)
