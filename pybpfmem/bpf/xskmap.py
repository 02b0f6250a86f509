"""XSKMAP (net/xdp/xskmap.c).

Creation: one bpf_map_area_alloc(sizeof(struct xsk_map) + max_entries * 8).
Each update allocates a struct xsk_map_node (bpf_map_kzalloc, GFP_ATOMIC |
__GFP_NOWARN: the map's memcg, forced over memory.max) linking the AF_XDP socket
to the map slot; it is freed when the slot is cleared or overwritten.
"""

from __future__ import annotations

import errno
import struct
from typing import ClassVar

from . import uapi
from .caps import require_cap
from .errors import BpfError
from .kobjects import XdpSocket, current_task, fd_object
from .map import BpfMap, register_map

_CREATE_FLAGS = uapi.BPF_F_NUMA_NODE | uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY


@register_map
class XskMap(BpfMap):
    """BPF_MAP_TYPE_XSKMAP (struct xsk_map)."""

    map_types: ClassVar[tuple[int, ...]] = (uapi.BPF_MAP_TYPE_XSKMAP,)

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """The checks of xsk_map_alloc()."""
        require_cap(ctx.task, "net_admin", "XSKMAP")
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size != 4
                or attr.map_flags & ~_CREATE_FLAGS):
            raise BpfError(errno.EINVAL, f"XSKMAP: need max_entries > 0 (got {attr.max_entries}), "
                           f"key_size 4 (got {attr.key_size}), value_size 4 (got "
                           f"{attr.value_size}), flags within {_CREATE_FLAGS:#x} (got "
                           f"{attr.map_flags:#x})")

    def _size(self) -> int:
        return self.sizes.xsk_map + self.attr.max_entries * 8

    def legacy_cost(self) -> int:
        return self._size()

    def alloc(self) -> None:
        """Mirrors xsk_map_alloc()."""
        self._slots: dict[int, tuple[XdpSocket, int]] = {}   # index -> (xsk, node addr)
        self.area_alloc(self._size())

    def free(self) -> None:
        """Mirrors xsk_map_free(): drop socket links (nodes), then the area."""
        for idx in list(self._slots):
            self._clear(idx)
        self.free_all()

    def mem_usage(self) -> int:
        """Mirrors xsk_map_mem_usage(): area + count * sizeof(struct xsk_map_node)."""
        return self._size() + len(self._slots) * self.sizes.xsk_map_node

    def _index(self, key: bytes | None) -> int:
        if key is None or len(key) != 4:
            raise BpfError(errno.EINVAL, "XSKMAP: key must be 4 bytes")
        return struct.unpack("<I", key)[0]

    def _clear(self, idx: int) -> None:
        """xsk_map_sock_delete(): unlink the socket and free its node."""
        xs, node = self._slots.pop(idx)
        xs.map_nodes = [n for n in xs.map_nodes if n[2] != node]
        self.kfree(node)

    def lookup_elem(self, key: bytes | None) -> bytes:
        """Mirrors xsk_map_lookup_elem_sys(): -EOPNOTSUPP."""
        raise BpfError(errno.EOPNOTSUPP, "XSKMAP: lookup from syscall is not supported")

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Mirrors xsk_map_update_elem()."""
        idx = self._index(key)
        if flags > uapi.BPF_EXIST:
            raise BpfError(errno.EINVAL, f"XSKMAP: flags {flags:#x} > BPF_EXIST")
        if idx >= self.attr.max_entries:
            raise BpfError(errno.E2BIG, f"XSKMAP: index {idx} >= max_entries {self.attr.max_entries}")
        fd = int.from_bytes(value[:4], "little")
        xs = fd_object(current_task(self.system), fd)
        if not isinstance(xs, XdpSocket):
            raise BpfError(errno.EOPNOTSUPP, f"XSKMAP: fd {fd} is not an AF_XDP socket")
        # xsk_map_node_alloc(): bpf_map_kzalloc(GFP_ATOMIC | __GFP_NOWARN)
        node = self.map_kmalloc(self.sizes.xsk_map_node, self.atomic_gfp() | self.gfp.ZERO)
        old = self._slots.get(idx)
        if old is not None and old[0] is xs:
            self.kfree(node)
            return
        if old is not None and flags == uapi.BPF_NOEXIST:
            self.kfree(node)
            raise BpfError(errno.EEXIST, f"XSKMAP: index {idx} in use with BPF_NOEXIST")
        if old is None and flags == uapi.BPF_EXIST:
            self.kfree(node)
            raise BpfError(errno.ENOENT, f"XSKMAP: index {idx} empty with BPF_EXIST")
        if old is not None:
            self._clear(idx)
        xs.map_nodes.append((self, idx, node))
        self._slots[idx] = (xs, node)

    def delete_elem(self, key: bytes | None) -> None:
        """Mirrors xsk_map_delete_elem(): clearing an empty slot is not an error."""
        idx = self._index(key)
        if idx >= self.attr.max_entries:
            raise BpfError(errno.EINVAL, f"XSKMAP: index {idx} >= max_entries")
        if idx in self._slots:
            self._clear(idx)

    def get_next_key(self, key: bytes | None) -> bytes:
        """Mirrors xsk_map_get_next_key()."""
        idx = 0 if key is None else self._index(key)
        if key is None or idx >= self.attr.max_entries:
            return struct.pack("<I", 0)
        if idx == self.attr.max_entries - 1:
            raise BpfError(errno.ENOENT, "XSKMAP: last index")
        return struct.pack("<I", idx + 1)

    def socket_closed(self, xs: XdpSocket) -> None:
        """xsk_delete_from_maps(): a released socket leaves every slot it occupies."""
        for idx, (s, _node) in list(self._slots.items()):
            if s is xs:
                self._clear(idx)
