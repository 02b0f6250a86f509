"""LPM_TRIE map (kernel/bpf/lpm_trie.c).

Creation: struct lpm_trie only (kzalloc GFP_USER | __GFP_NOWARN [| __GFP_ACCOUNT
v5.11]; bpf_map_area_alloc v6.1+).  Each update allocates one node of
sizeof(struct lpm_trie_node) + data_size + value_size and sometimes one
intermediate node (no value) of sizeof(node) + data_size, through the map's
memcg: v5.10 plain kmalloc GFP_ATOMIC (unaccounted), v5.11 GFP_ATOMIC (forced),
v6.0+ GFP_NOWAIT (fails at memory.max).  Since ≈v6.13 ("bpf: Use bpf_mem_alloc
in lpm trie") every node, leaf or intermediate, comes from one bpf_mem_alloc
cache of leaf size (prefilled at creation under the creator's objcg, refilled
with GFP_NOWAIT).  Replaced/removed kmalloc'd nodes are freed at once (the
kernel frees them after an RCU grace period).
"""

from __future__ import annotations

import errno
from typing import ClassVar

from . import uapi
from .caps import require_cap
from .errors import BpfError
from .map import KMALLOC_MAX_SIZE, BpfMap, flags_access_ok, register_map
from .memalloc import BpfMemAlloc

_CREATE_FLAG_MASK = (uapi.BPF_F_NO_PREALLOC | uapi.BPF_F_NUMA_NODE | uapi.BPF_F_RDONLY
                     | uapi.BPF_F_WRONLY | uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_WRONLY_PROG)
LPM_DATA_SIZE_MAX = 256
LPM_KEY_SIZE_MIN = 4 + 1
LPM_KEY_SIZE_MAX = 4 + LPM_DATA_SIZE_MAX
FLAG_IM = 1


class _Node:
    __slots__ = ("child", "prefixlen", "flags", "data", "value", "addr")

    def __init__(self, prefixlen: int, data: bytes, value: bytes | None, addr: int) -> None:
        self.child: list[_Node | None] = [None, None]
        self.prefixlen = prefixlen
        self.flags = 0
        self.data = data
        self.value = value
        self.addr = addr


def _bit(data: bytes, index: int) -> int:
    """extract_bit()."""
    return (data[index // 8] >> (7 - index % 8)) & 1


def _match(node: _Node, data: bytes, prefixlen: int) -> int:
    """longest_prefix_match(): common leading bits, capped at both prefix lengths."""
    limit = min(node.prefixlen, prefixlen)
    x = int.from_bytes(node.data, "big") ^ int.from_bytes(data, "big")
    nbits = len(data) * 8
    common = nbits - x.bit_length()
    return min(common, limit)


@register_map
class LpmTrieMap(BpfMap):
    """BPF_MAP_TYPE_LPM_TRIE (struct lpm_trie)."""

    map_types: ClassVar[tuple[int, ...]] = (uapi.BPF_MAP_TYPE_LPM_TRIE,)

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """The checks of trie_alloc()."""
        require_cap(ctx.task, "bpf", "LPM_TRIE")
        val_max = KMALLOC_MAX_SIZE - LPM_DATA_SIZE_MAX - ctx.sizes.lpm_trie_node
        if (attr.max_entries == 0 or not attr.map_flags & uapi.BPF_F_NO_PREALLOC
                or attr.map_flags & ~_CREATE_FLAG_MASK or not flags_access_ok(attr.map_flags)
                or not LPM_KEY_SIZE_MIN <= attr.key_size <= LPM_KEY_SIZE_MAX
                or not 1 <= attr.value_size <= val_max):
            raise BpfError(errno.EINVAL, f"LPM_TRIE: trie_alloc: need max_entries > 0 (got "
                           f"{attr.max_entries}), BPF_F_NO_PREALLOC set and flags within "
                           f"{_CREATE_FLAG_MASK:#x} (got {attr.map_flags:#x}), key_size "
                           f"{LPM_KEY_SIZE_MIN}..{LPM_KEY_SIZE_MAX} (got {attr.key_size}), "
                           f"value_size 1..{val_max} (got {attr.value_size})")

    @property
    def data_size(self) -> int:
        return self.attr.key_size - 4

    @property
    def max_prefixlen(self) -> int:
        return self.data_size * 8

    def _leaf_size(self) -> int:
        return self.sizes.lpm_trie_node + self.data_size + self.attr.value_size

    def legacy_cost(self) -> int:
        """v5.10 trie_alloc() cost: struct + max_entries full nodes."""
        return self.sizes.lpm_trie + self.attr.max_entries * self._leaf_size()

    def alloc(self) -> None:
        """Mirrors trie_alloc()."""
        g = self.gfp
        self.root: _Node | None = None
        self.n_entries = 0
        self.ma: BpfMemAlloc | None = None
        if self.bprof.struct_area_alloc:
            self.area_alloc(self.sizes.lpm_trie)
        else:
            self.kzalloc_account(self.sizes.lpm_trie, self.acct(g.USER | g.NOWARN | g.ZERO))
        if self.bprof.lpm_trie_mem_alloc:
            # bpf_mem_alloc_init(&trie->ma, leaf_size, false) inside map_alloc
            self.ma = BpfMemAlloc(self, self._leaf_size(), False)

    def free(self) -> None:
        """Mirrors trie_free(): every node, then the bpf_mem_alloc caches and the struct."""
        stack = [self.root]
        while stack:
            n = stack.pop()
            if n is not None:
                stack.extend(n.child)
                self._node_free(n.addr)
        self.root = None
        if self.ma is not None:
            self.ma.destroy()
            self.ma = None
        self.free_all()

    def mem_usage(self) -> int:
        """Mirrors trie_mem_usage(): live leaf nodes only (no struct, no intermediates)."""
        return self._leaf_size() * self.n_entries

    # -- keys --
    def _key(self, key: bytes | None) -> tuple[int, bytes]:
        if key is None or len(key) != self.attr.key_size:
            raise BpfError(errno.EINVAL, f"LPM_TRIE: key must be {self.attr.key_size} bytes")
        return int.from_bytes(key[:4], "little"), bytes(key[4:])

    def _node_free(self, addr) -> None:
        if self.ma is not None:
            self.ma.free(addr)               # bpf_mem_cache_free(_rcu)
        else:
            self.kfree(addr)

    def _node_alloc(self, with_value: bool):
        """lpm_trie_node_alloc(): bpf_mem_cache_alloc() (≈v6.13+) or
        bpf_map_kmalloc_node(size, runtime gfp)."""
        if self.ma is not None:
            obj = self.ma.alloc()
            if obj is None:
                raise BpfError(errno.ENOMEM, f"LPM_TRIE: bpf_mem_alloc cache of {self._leaf_size()}"
                               f"-byte nodes is empty and its GFP_NOWAIT refill failed")
            return obj
        size = self.sizes.lpm_trie_node + self.data_size
        if with_value:
            size += self.attr.value_size
        try:
            return self.map_kmalloc(size, self.runtime_gfp())
        except OSError as exc:
            raise BpfError(errno.ENOMEM, f"LPM_TRIE: node allocation of {size} bytes failed: "
                           f"{exc.strerror or exc}") from None

    # -- element ops --
    def lookup_elem(self, key: bytes | None) -> bytes:
        """Mirrors trie_lookup_elem(): the value of the longest matching prefix."""
        plen, data = self._key(key)
        if plen > self.max_prefixlen:
            raise BpfError(errno.ENOENT, f"LPM_TRIE: prefixlen {plen} > {self.max_prefixlen}")
        node, found = self.root, None
        while node is not None:
            m = _match(node, data, self.max_prefixlen)
            if m == self.max_prefixlen:
                found = node
                break
            if m < node.prefixlen:
                break
            if not node.flags & FLAG_IM:
                found = node
            node = node.child[_bit(data, node.prefixlen)]
        if found is None:
            raise BpfError(errno.ENOENT, "LPM_TRIE: no matching prefix")
        assert found.value is not None
        return found.value

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Mirrors trie_update_elem() (v5.10 order: ENOSPC before the walk; ≈v6.13+:
        node first, BPF_NOEXIST/BPF_EXIST honoured, full trie only for new keys)."""
        plen, data = self._key(key)
        if flags > uapi.BPF_EXIST:
            raise BpfError(errno.EINVAL, f"LPM_TRIE: flags {flags:#x} > BPF_EXIST")
        if plen > self.max_prefixlen:
            raise BpfError(errno.EINVAL, f"LPM_TRIE: prefixlen {plen} > max_prefixlen {self.max_prefixlen}")
        new_api = self.bprof.lpm_trie_update_flags
        full = BpfError(errno.ENOSPC, f"LPM_TRIE: trie full ({self.n_entries} of "
                        f"{self.attr.max_entries} entries)")
        if not new_api and self.n_entries == self.attr.max_entries:
            raise full
        new_addr = self._node_alloc(True)
        new = _Node(plen, data, bytes(value), new_addr)
        if not new_api:
            self.n_entries += 1              # v5.x counts the new node before the walk
        # walk to the slot (same loop as the kernel)
        parent: _Node | None = None
        side = 0
        node = self.root
        m = 0
        while node is not None:
            m = _match(node, data, plen)
            if node.prefixlen != m or node.prefixlen == plen or node.prefixlen == self.max_prefixlen:
                break
            parent, side = node, _bit(data, node.prefixlen)
            node = node.child[side]

        def set_slot(n: _Node) -> None:
            if parent is None:
                self.root = n
            else:
                parent.child[side] = n

        def add_check() -> None:
            if new_api:
                if flags == uapi.BPF_EXIST:
                    self._node_free(new_addr)
                    raise BpfError(errno.ENOENT, "LPM_TRIE: key missing with BPF_EXIST")
                if self.n_entries == self.attr.max_entries:
                    self._node_free(new_addr)
                    raise full
                self.n_entries += 1

        if node is None:
            add_check()
            set_slot(new)
            return
        if node.prefixlen == m:
            if not node.flags & FLAG_IM:
                if new_api and flags == uapi.BPF_NOEXIST:
                    self._node_free(new_addr)
                    raise BpfError(errno.EEXIST, "LPM_TRIE: key exists with BPF_NOEXIST")
                if not new_api:
                    self.n_entries -= 1      # the replaced leaf no longer counts
            else:
                add_check()
            new.child = node.child
            set_slot(new)
            self._node_free(node.addr)            # kfree_rcu(node) (immediate in the model)
            return
        add_check()
        if m == plen:
            new.child[_bit(node.data, m)] = node
            set_slot(new)
            return
        try:
            im_addr = self._node_alloc(False)
        except OSError:
            self.n_entries -= 1
            self._node_free(new_addr)
            raise
        im = _Node(m, node.data, None, im_addr)
        im.flags = FLAG_IM
        if _bit(data, m):
            im.child = [node, new]
        else:
            im.child = [new, node]
        set_slot(im)

    def delete_elem(self, key: bytes | None) -> None:
        """Mirrors trie_delete_elem()."""
        plen, data = self._key(key)
        if plen > self.max_prefixlen:
            raise BpfError(errno.EINVAL, f"LPM_TRIE: prefixlen {plen} > max_prefixlen")
        # path of (holder, side) slots; holder None = root
        trim: tuple[_Node | None, int] = (None, 0)
        trim2 = trim
        parent: _Node | None = None
        node = self.root
        m = 0
        while node is not None:
            m = _match(node, data, plen)
            if node.prefixlen != m or node.prefixlen == plen:
                break
            parent = node
            trim2 = trim
            side = _bit(data, node.prefixlen)
            trim = (node, side)
            node = node.child[side]
        if node is None or node.prefixlen != plen or node.prefixlen != m or node.flags & FLAG_IM:
            raise BpfError(errno.ENOENT, "LPM_TRIE: no such prefix")

        def assign(slot: tuple[_Node | None, int], n: _Node | None) -> None:
            if slot[0] is None:
                self.root = n
            else:
                slot[0].child[slot[1]] = n

        self.n_entries -= 1
        if node.child[0] is not None and node.child[1] is not None:
            node.flags |= FLAG_IM          # keeps its memory (value unused)
            return
        if (parent is not None and parent.flags & FLAG_IM
                and node.child[0] is None and node.child[1] is None):
            other = parent.child[1] if node is parent.child[0] else parent.child[0]
            assign(trim2, other)
            self._node_free(parent.addr)
            self._node_free(node.addr)
            return
        assign(trim, node.child[0] if node.child[0] is not None else node.child[1])
        self._node_free(node.addr)

    def get_next_key(self, key: bytes | None) -> bytes:
        """Mirrors trie_get_next_key(): post-order walk of the non-intermediate nodes."""
        order: list[_Node] = []

        def walk(n: _Node | None) -> None:
            if n is None:
                return
            walk(n.child[0])
            walk(n.child[1])
            if not n.flags & FLAG_IM:
                order.append(n)

        walk(self.root)
        if not order:
            raise BpfError(errno.ENOENT, "LPM_TRIE: empty")
        idx = 0
        if key is not None:
            plen, data = self._key(key)
            pos = [i for i, n in enumerate(order) if n.prefixlen == plen and n.data == data]
            idx = pos[0] + 1 if pos else 0
        if idx >= len(order):
            raise BpfError(errno.ENOENT, "LPM_TRIE: last key")
        n = order[idx]
        return n.prefixlen.to_bytes(4, "little") + n.data
