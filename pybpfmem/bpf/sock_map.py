"""SOCKMAP and SOCKHASH (net/core/sock_map.c).

Creation: SOCKMAP struct bpf_stab (kzalloc GFP_USER [| __GFP_ACCOUNT v5.11]; area
alloc v6.1+) + max_entries socket pointers (bpf_map_area_alloc); SOCKHASH struct
bpf_shtab + pow2(max_entries) buckets.  Each update allocates a struct
sk_psock_link (GFP_ATOMIC | __GFP_NOWARN; through the map's memcg from v5.11),
and SOCKHASH an element of sizeof(struct bpf_shtab_elem) + rup(key_size, 8)
(bpf_map_kmalloc_node, GFP_ATOMIC | __GFP_NOWARN).  The socket's psock (created
on first insertion, plain GFP_ATOMIC, never charged to the map) is tracked as a
flag only (simplification).  Frees are immediate (the kernel uses RCU).
"""

from __future__ import annotations

import errno
import struct
from typing import Any, ClassVar

from . import uapi
from .caps import require_cap
from .errors import BpfError
from .kobjects import Socket, XdpSocket, current_task, fd_object
from .map import BpfMap, pow2, register_map, rup
from .uapi import MAX_BPF_STACK, U32_MAX

_CREATE_FLAGS = uapi.BPF_F_NUMA_NODE | uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY


class _SockMapBase(BpfMap):
    kind: ClassVar[str] = ""

    def _socket_from_value(self, value: bytes) -> Socket:
        """sock_map_update_elem_sys(): the fd (a u64 or a u32, as the value size says) must
        fit in an int (-EINVAL), then sockfd_lookup() + sock_map_sk_is_suitable() +
        sock_map_sk_state_allowed()."""
        fd = int.from_bytes(value[: self.attr.value_size], "little")
        if fd > 0x7FFFFFFF:
            raise BpfError(errno.EINVAL, f"{self.kind}: fd {fd} > S32_MAX")
        sk = fd_object(current_task(self.system), fd)
        if not isinstance(sk, Socket):
            # sockfd_lookup(): a file that is no socket is -ENOTSOCK; a socket of a
            # family sock maps cannot hold (AF_XDP) fails sock_map_sk_is_suitable()
            raise BpfError(errno.EOPNOTSUPP if isinstance(sk, XdpSocket) else errno.ENOTSOCK,
                           f"{self.kind}: fd {fd} is not a socket a sock map can hold")
        if sk.closed or (sk.kind == "tcp" and not sk.established):
            raise BpfError(errno.EOPNOTSUPP, f"{self.kind}: socket state not allowed "
                           f"(TCP must be established or listening)")
        return sk

    def _link_alloc(self) -> int:
        """sk_psock_init_link(): the per-(socket, map) link."""
        try:
            return self.map_kmalloc(self.sizes.sk_psock_link, self.atomic_gfp() | self.gfp.ZERO)
        except OSError as exc:
            raise BpfError(errno.ENOMEM, f"{self.kind}: sk_psock_link allocation failed: "
                           f"{exc.strerror or exc}") from None

    def _link(self, sk: Socket, key: Any, link: int) -> None:
        """sock_map_link() + sock_map_add_link(): psock on first use, link recorded."""
        if sk.psock is None:
            sk.psock = 1
        sk.links.append((self, key, link))

    def _unref(self, sk: Socket, key: Any) -> None:
        """sock_map_unref() / sock_map_del_link(): drop this map slot's link."""
        for i, (m, k, link) in enumerate(sk.links):
            if m is self and k == key:
                del sk.links[i]
                self.kfree(link)
                break
        if not sk.links:
            sk.psock = None


@register_map
class SockMap(_SockMapBase):
    """BPF_MAP_TYPE_SOCKMAP (struct bpf_stab)."""

    map_types: ClassVar[tuple[int, ...]] = (uapi.BPF_MAP_TYPE_SOCKMAP,)
    kind = "SOCKMAP"

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """The checks of sock_map_alloc()."""
        require_cap(ctx.task, "net_admin", "SOCKMAP")
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size not in (4, 8)
                or attr.map_flags & ~_CREATE_FLAGS):
            raise BpfError(errno.EINVAL, f"SOCKMAP: need max_entries > 0 (got {attr.max_entries}), "
                           f"key_size 4 (got {attr.key_size}), value_size 4 or 8 (got "
                           f"{attr.value_size}), flags within {_CREATE_FLAGS:#x} (got {attr.map_flags:#x})")

    def legacy_cost(self) -> int:
        return self.attr.max_entries * 8

    def alloc(self) -> None:
        """Mirrors sock_map_alloc()."""
        self._sks: dict[int, Socket] = {}
        self.struct_alloc(self.sizes.bpf_stab)
        self.area_alloc(self.attr.max_entries * 8)

    def free(self) -> None:
        """Mirrors sock_map_free(): unlink every socket, then the areas."""
        for idx in list(self._sks):
            self._unref(self._sks.pop(idx), idx)
        self.free_all()

    def mem_usage(self) -> int:
        """Mirrors sock_map_mem_usage()."""
        return self.sizes.bpf_stab + self.attr.max_entries * 8

    def _idx(self, key: bytes | None) -> int:
        if key is None or len(key) != 4:
            raise BpfError(errno.EINVAL, "SOCKMAP: key must be 4 bytes")
        return struct.unpack("<I", key)[0]

    def socket_closed(self, sk: Socket, key: int) -> None:
        """sock_map_remove_links() for this map's slot."""
        if self._sks.get(key) is sk:
            del self._sks[key]
            self._unref(sk, key)

    def lookup_elem(self, key: bytes | None) -> bytes:
        """sock_map_lookup_sys(): the socket cookie; value_size must be 8."""
        idx = self._idx(key)
        if self.attr.value_size != 8:
            raise BpfError(errno.ENOSPC, "SOCKMAP lookup: value_size must be 8 for the cookie")
        sk = self._sks.get(idx)
        if sk is None:
            raise BpfError(errno.ENOENT, f"SOCKMAP: index {idx} is empty")
        return struct.pack("<Q", sk.ino)

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Mirrors sock_map_update_elem() + sock_map_update_common()."""
        idx = self._idx(key)
        sk = self._socket_from_value(value)
        if flags > uapi.BPF_EXIST:
            raise BpfError(errno.EINVAL, f"SOCKMAP: flags {flags:#x} > BPF_EXIST")
        if idx >= self.attr.max_entries:
            raise BpfError(errno.E2BIG, f"SOCKMAP: index {idx} >= max_entries {self.attr.max_entries}")
        link = self._link_alloc()
        osk = self._sks.get(idx)
        if osk is not None and flags == uapi.BPF_NOEXIST:
            self.kfree(link)
            raise BpfError(errno.EEXIST, f"SOCKMAP: index {idx} in use with BPF_NOEXIST")
        if osk is None and flags == uapi.BPF_EXIST:
            self.kfree(link)
            raise BpfError(errno.ENOENT, f"SOCKMAP: index {idx} empty with BPF_EXIST")
        if osk is not None:
            self._unref(osk, idx)
        self._link(sk, idx, link)
        self._sks[idx] = sk

    def delete_elem(self, key: bytes | None) -> None:
        """Mirrors sock_map_delete_elem() / __sock_map_delete(): empty slot -> -EINVAL."""
        idx = self._idx(key)
        if idx >= self.attr.max_entries:
            raise BpfError(errno.EINVAL, f"SOCKMAP: index {idx} >= max_entries")
        sk = self._sks.pop(idx, None)
        if sk is None:
            raise BpfError(errno.EINVAL, f"SOCKMAP: index {idx} is empty")
        self._unref(sk, idx)

    def get_next_key(self, key: bytes | None) -> bytes:
        """Mirrors sock_map_get_next_key()."""
        if key is None or self._idx(key) >= self.attr.max_entries:
            return struct.pack("<I", 0)
        k = self._idx(key)
        if k == self.attr.max_entries - 1:
            raise BpfError(errno.ENOENT, "SOCKMAP: last index")
        return struct.pack("<I", k + 1)


@register_map
class SockHash(_SockMapBase):
    """BPF_MAP_TYPE_SOCKHASH (struct bpf_shtab)."""

    map_types: ClassVar[tuple[int, ...]] = (uapi.BPF_MAP_TYPE_SOCKHASH,)
    kind = "SOCKHASH"

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """The checks of sock_hash_alloc()."""
        require_cap(ctx.task, "net_admin", "SOCKHASH")
        if (attr.max_entries == 0 or attr.key_size == 0 or attr.value_size not in (4, 8)
                or attr.map_flags & ~_CREATE_FLAGS):
            raise BpfError(errno.EINVAL, f"SOCKHASH: need max_entries > 0 (got {attr.max_entries}), "
                           f"key_size > 0 (got {attr.key_size}), value_size 4 or 8 (got "
                           f"{attr.value_size}), flags within {_CREATE_FLAGS:#x} (got {attr.map_flags:#x})")
        if attr.key_size > MAX_BPF_STACK:
            raise BpfError(errno.E2BIG, f"SOCKHASH: key_size {attr.key_size} > MAX_BPF_STACK {MAX_BPF_STACK}")
        nb = pow2(attr.max_entries)
        if nb > U32_MAX // 16:
            raise BpfError(errno.EINVAL, f"SOCKHASH: {nb} buckets overflow")

    @property
    def buckets_num(self) -> int:
        return pow2(self.attr.max_entries)

    @property
    def elem_size(self) -> int:
        return self.sizes.bpf_shtab_elem + rup(self.attr.key_size, 8)

    def legacy_cost(self) -> int:
        """v5.10 sock_hash_alloc(): buckets + max_entries elements; its own
        cost >= U32_MAX - PAGE_SIZE check returns -EINVAL."""
        cost = (self.buckets_num * self.sizes.bpf_shtab_bucket
                + self.elem_size * self.attr.max_entries)
        if cost >= U32_MAX - self.system.page_size:
            raise BpfError(errno.EINVAL, f"SOCKHASH: cost {cost} >= U32_MAX - PAGE_SIZE")
        return cost

    def alloc(self) -> None:
        """Mirrors sock_hash_alloc()."""
        self._elems: dict[bytes, tuple[Socket, int]] = {}    # key -> (socket, elem addr)
        self.struct_alloc(self.sizes.bpf_shtab)
        self.area_alloc(self.buckets_num * self.sizes.bpf_shtab_bucket)

    def free(self) -> None:
        """Mirrors sock_hash_free()."""
        for k in list(self._elems):
            self._remove(k)
        self.free_all()

    def mem_usage(self) -> int:
        """Mirrors sock_hash_mem_usage(): struct + buckets + count * elem_size."""
        return (self.sizes.bpf_shtab + self.buckets_num * self.sizes.bpf_shtab_bucket
                + len(self._elems) * self.elem_size)

    def _key(self, key: bytes | None) -> bytes:
        if key is None or len(key) != self.attr.key_size:
            raise BpfError(errno.EINVAL, f"SOCKHASH: key must be {self.attr.key_size} bytes")
        return bytes(key)

    def _remove(self, k: bytes) -> None:
        sk, elem = self._elems.pop(k)
        self._unref(sk, k)
        self.kfree(elem)                      # sock_hash_free_elem(): kfree_rcu

    def socket_closed(self, sk: Socket, key: bytes) -> None:
        """sock_map_remove_links() for this map's element (element freed)."""
        e = self._elems.get(key)
        if e is not None and e[0] is sk:
            self._remove(key)

    def lookup_elem(self, key: bytes | None) -> bytes:
        """sock_hash_lookup_sys(): the socket cookie; value_size must be 8."""
        k = self._key(key)
        if self.attr.value_size != 8:
            raise BpfError(errno.ENOSPC, "SOCKHASH lookup: value_size must be 8 for the cookie")
        e = self._elems.get(k)
        if e is None:
            raise BpfError(errno.ENOENT, "SOCKHASH: key not present")
        return struct.pack("<Q", e[0].ino)

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Mirrors sock_hash_update_common() + sock_hash_alloc_elem()."""
        k = self._key(key)
        sk = self._socket_from_value(value)
        if flags > uapi.BPF_EXIST:
            raise BpfError(errno.EINVAL, f"SOCKHASH: flags {flags:#x} > BPF_EXIST")
        link = self._link_alloc()
        old = self._elems.get(k)
        if old is not None and flags == uapi.BPF_NOEXIST:
            self.kfree(link)
            raise BpfError(errno.EEXIST, "SOCKHASH: key exists with BPF_NOEXIST")
        if old is None and flags == uapi.BPF_EXIST:
            self.kfree(link)
            raise BpfError(errno.ENOENT, "SOCKHASH: key missing with BPF_EXIST")
        if old is None and len(self._elems) + 1 > self.attr.max_entries:
            self.kfree(link)
            raise BpfError(errno.E2BIG, f"SOCKHASH: full ({len(self._elems)} of "
                           f"{self.attr.max_entries} elements), sock_hash_alloc_elem")
        try:
            elem = self.map_kmalloc(self.elem_size, self.atomic_gfp())
        except OSError as exc:
            self.kfree(link)
            raise BpfError(errno.ENOMEM, f"SOCKHASH: element allocation failed: "
                           f"{exc.strerror or exc}") from None
        if old is not None:
            self._remove(k)
        self._link(sk, k, link)
        self._elems[k] = (sk, elem)

    def delete_elem(self, key: bytes | None) -> None:
        """Mirrors sock_hash_delete_elem()."""
        k = self._key(key)
        if k not in self._elems:
            raise BpfError(errno.ENOENT, "SOCKHASH: key not present")
        self._remove(k)

    def get_next_key(self, key: bytes | None) -> bytes:
        """Mirrors sock_hash_get_next_key() (model order: insertion order)."""
        keys = list(self._elems)
        if not keys:
            raise BpfError(errno.ENOENT, "SOCKHASH: empty")
        if key is None or bytes(key) not in self._elems:
            return keys[0]
        i = keys.index(bytes(key))
        if i + 1 >= len(keys):
            raise BpfError(errno.ENOENT, "SOCKHASH: last key")
        return keys[i + 1]
