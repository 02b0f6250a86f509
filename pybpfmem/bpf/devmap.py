"""DEVMAP and DEVMAP_HASH (kernel/bpf/devmap.c).

Creation: struct bpf_dtab (kzalloc GFP_USER [| __GFP_ACCOUNT v5.11]; area alloc
v6.1+) and either a pointer array of max_entries * 8 (DEVMAP) or pow2(max_entries)
hlist heads (DEVMAP_HASH), both bpf_map_area_alloc.  Each update allocates a
struct bpf_dtab_netdev through the map's memcg (GFP_ATOMIC v5.11, GFP_NOWAIT
v6.0+) holding a netdev reference.  In v5.10 an RLIMIT_MEMLOCK failure is
returned as -EINVAL, not -EPERM.  Replaced nodes are freed at once (the kernel
waits for an RCU grace period).
"""

from __future__ import annotations

import errno
import struct
from typing import Any, ClassVar

from . import uapi
from .caps import require_cap
from .errors import BpfError
from .kobjects import current_task, fd_object, registry
from .map import BpfMap, pow2, register_map

_CREATE_FLAGS = (uapi.BPF_F_NUMA_NODE | uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY)
BPF_XDP_DEVMAP = uapi.BPF_XDP_DEVMAP


@register_map
class DevMap(BpfMap):
    """BPF_MAP_TYPE_DEVMAP / DEVMAP_HASH (struct bpf_dtab)."""

    map_types: ClassVar[tuple[int, ...]] = (uapi.BPF_MAP_TYPE_DEVMAP, uapi.BPF_MAP_TYPE_DEVMAP_HASH)
    legacy_charge_errno: ClassVar[int] = errno.EINVAL   # dev_map_init_map(): charge failure -> -EINVAL

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """Mirrors the checks of dev_map_alloc() / dev_map_init_map()."""
        name = "DEVMAP_HASH" if attr.map_type == uapi.BPF_MAP_TYPE_DEVMAP_HASH else "DEVMAP"
        require_cap(ctx.task, "net_admin", name)
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size not in (4, 8)
                or attr.map_flags & ~_CREATE_FLAGS):
            raise BpfError(errno.EINVAL, f"{name}: dev_map_init_map: need max_entries > 0 (got "
                           f"{attr.max_entries}), key_size 4 (got {attr.key_size}), value_size 4 "
                           f"or 8 (got {attr.value_size}), flags within {_CREATE_FLAGS:#x} (got "
                           f"{attr.map_flags:#x})")
        if name == "DEVMAP_HASH" and attr.max_entries > 1 << 31:
            raise BpfError(errno.EINVAL, f"DEVMAP_HASH: max_entries {attr.max_entries} > 2^31 "
                           f"(n_buckets overflow)")

    @property
    def is_hash(self) -> bool:
        return self.attr.map_type == uapi.BPF_MAP_TYPE_DEVMAP_HASH

    def _table_bytes(self) -> int:
        if self.is_hash:
            return pow2(self.attr.max_entries) * 8
        return self.attr.max_entries * 8

    def legacy_cost(self) -> int:
        """v5.10 dev_map_init_map(): the table only."""
        return self._table_bytes()

    def alloc(self) -> None:
        """Mirrors dev_map_alloc() + dev_map_init_map()."""
        # the map is forced to BPF_F_RDONLY_PROG (lookup returns a pointer into the node)
        self.map_flags |= uapi.BPF_F_RDONLY_PROG
        self.attr.map_flags |= uapi.BPF_F_RDONLY_PROG
        self._entries: dict[int, tuple[Any, int, bytes]] = {}   # key -> (netdev, node addr, value)
        self.struct_alloc(self.sizes.bpf_dtab)
        self.area_alloc(self._table_bytes())

    def free(self) -> None:
        """Mirrors dev_map_free(): drop every node (netdev references), then the areas."""
        for k in list(self._entries):
            self._drop(k)
        self.free_all()

    def mem_usage(self) -> int:
        """Mirrors dev_map_mem_usage(): dtab + table + items * sizeof(bpf_dtab_netdev)."""
        return (self.sizes.bpf_dtab + self._table_bytes()
                + len(self._entries) * self.sizes.bpf_dtab_netdev)

    def _idx(self, key: bytes | None) -> int:
        if key is None or len(key) != 4:
            raise BpfError(errno.EINVAL, "DEVMAP: key must be 4 bytes")
        return struct.unpack("<I", key)[0]

    def _drop(self, k: int) -> None:
        dev, node, _ = self._entries.pop(k)
        dev.refcnt -= 1                       # dev_put() in __dev_map_entry_free()
        self.kfree(node)

    def _alloc_node(self, value: bytes) -> tuple[Any, int, bytes]:
        """Mirrors __dev_map_alloc_node(): node first, then the netdev and prog lookups."""
        ifindex = int.from_bytes(value[:4], "little")
        prog_fd = int.from_bytes(value[4:8], "little", signed=True) if len(value) >= 8 else 0
        try:
            node = self.map_kmalloc(self.sizes.bpf_dtab_netdev, self.runtime_gfp())
        except OSError as exc:
            raise BpfError(errno.ENOMEM, f"DEVMAP: bpf_dtab_netdev allocation failed: "
                           f"{exc.strerror or exc}") from None
        dev = registry(self.system).netdev(ifindex)
        if dev is None:
            self.kfree(node)
            raise BpfError(errno.EINVAL, f"DEVMAP: no net device with ifindex {ifindex}")
        prog_id = 0
        if prog_fd > 0:
            prog = None
            try:
                prog = fd_object(current_task(self.system), prog_fd)
            except OSError:
                pass
            if (prog is None or getattr(prog, "prog_type", None) != uapi.BPF_PROG_TYPE_XDP
                    or getattr(prog, "expected_attach_type", None) != BPF_XDP_DEVMAP):
                self.kfree(node)
                raise BpfError(errno.EINVAL, f"DEVMAP: fd {prog_fd} is not an XDP program for devmap")
            prog_id = int(getattr(prog, "id", 0))
        dev.refcnt += 1                       # dev_get_by_index()
        val = struct.pack("<I", ifindex) + (struct.pack("<I", prog_id) if self.attr.value_size == 8 else b"")
        return dev, node, val

    def lookup_elem(self, key: bytes | None) -> bytes:
        """dev_map_lookup_elem() / dev_map_hash_lookup_elem(): the stored bpf_devmap_val."""
        k = self._idx(key)
        e = self._entries.get(k)
        if e is None:
            raise BpfError(errno.ENOENT, f"DEVMAP: key {k} not present")
        return e[2]

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Mirrors __dev_map_update_elem() / __dev_map_hash_update_elem()."""
        k = self._idx(key)
        if flags > uapi.BPF_EXIST:
            raise BpfError(errno.EINVAL, f"DEVMAP: flags {flags:#x} > BPF_EXIST")
        ifindex = int.from_bytes(value[:4], "little")
        if not self.is_hash:
            if k >= self.attr.max_entries:
                raise BpfError(errno.E2BIG, f"DEVMAP: index {k} >= max_entries {self.attr.max_entries}")
            if flags == uapi.BPF_NOEXIST:
                raise BpfError(errno.EEXIST, "DEVMAP: BPF_NOEXIST (every slot exists)")
            if ifindex == 0:
                if len(value) >= 8 and int.from_bytes(value[4:8], "little", signed=True) > 0:
                    raise BpfError(errno.EINVAL, "DEVMAP: a program fd needs an ifindex")
                if k in self._entries:
                    self._drop(k)
                return
            new = self._alloc_node(value)
            if k in self._entries:
                self._drop(k)
            self._entries[k] = new
            return
        if ifindex == 0:          # __dev_map_hash_update_elem(): no "ifindex 0 deletes" here
            raise BpfError(errno.EINVAL, "DEVMAP_HASH: ifindex 0")
        old = self._entries.get(k)
        if old is not None and flags & uapi.BPF_NOEXIST:
            raise BpfError(errno.EEXIST, f"DEVMAP_HASH: key {k} exists with BPF_NOEXIST")
        new = self._alloc_node(value)
        if old is not None:
            self._drop(k)
        elif len(self._entries) >= self.attr.max_entries:
            dev, node, _ = new
            dev.refcnt -= 1
            self.kfree(node)
            raise BpfError(errno.E2BIG, f"DEVMAP_HASH: full ({len(self._entries)} of "
                           f"{self.attr.max_entries} items)")
        self._entries[k] = new

    def delete_elem(self, key: bytes | None) -> None:
        """dev_map_delete_elem() (-EINVAL out of range, empty slot fine) /
        dev_map_hash_delete_elem() (-ENOENT when missing)."""
        k = self._idx(key)
        if not self.is_hash:
            if k >= self.attr.max_entries:
                raise BpfError(errno.EINVAL, f"DEVMAP: index {k} >= max_entries")
            if k in self._entries:
                self._drop(k)
            return
        if k not in self._entries:
            raise BpfError(errno.ENOENT, f"DEVMAP_HASH: key {k} not present")
        self._drop(k)

    def get_next_key(self, key: bytes | None) -> bytes:
        """dev_map_get_next_key() (array order) / dev_map_hash_get_next_key()."""
        if not self.is_hash:
            if key is None or self._idx(key) >= self.attr.max_entries:
                return struct.pack("<I", 0)
            k = self._idx(key)
            if k == self.attr.max_entries - 1:
                raise BpfError(errno.ENOENT, "DEVMAP: last index")
            return struct.pack("<I", k + 1)
        keys = sorted(self._entries)
        if not keys:
            raise BpfError(errno.ENOENT, "DEVMAP_HASH: empty")
        if key is None or self._idx(key) not in self._entries:
            return struct.pack("<I", keys[0])
        i = keys.index(self._idx(key))
        if i + 1 >= len(keys):
            raise BpfError(errno.ENOENT, "DEVMAP_HASH: last key")
        return struct.pack("<I", keys[i + 1])
