"""LPM_TRIE map (kernel/bpf/lpm_trie.c).

Creation: struct lpm_trie only (kzalloc GFP_USER | __GFP_NOWARN [| __GFP_ACCOUNT
v5.11]; bpf_map_area_alloc v6.1+).  Each update allocates one node of
sizeof(struct lpm_trie_node) + data_size + value_size and sometimes one
intermediate node (no value) of sizeof(node) + data_size, through the map's
memcg: v5.10 plain kmalloc GFP_ATOMIC (unaccounted), v5.11 GFP_ATOMIC (forced),
v6.0+ GFP_NOWAIT (fails at memory.max).  Since ≈v6.13 ("bpf: Use bpf_mem_alloc
in lpm trie") every node, leaf or intermediate, comes from one bpf_mem_alloc
cache of leaf size (prefilled at creation under the creator's objcg, refilled
with GFP_NOWAIT).  Replaced and removed nodes are freed after an RCU grace period
(kfree_rcu(); bpf_mem_cache_free_rcu() since ≈v6.13): the model's deferred work.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import numpy as np

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

    def __init__(self, system, attr, ctx) -> None:
        super().__init__(system, attr, ctx)
        # trie_map_ops: the generic lookup/update/delete batches (switch batch_lpm)
        if ctx.bprof.batch_lpm:
            self.batch_ops = frozenset({"lookup", "update", "delete"})

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
        self._bulk: _BulkLeaves | None = None
        self._addr_stream: Iterator[Any] | None = None
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
        self._link_bulk()
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
        data = bytes(key[4:])
        if self._bulk is not None and not data[0] & 0x80:
            self._link_bulk()          # the key's walk may reach the bulk-written leaves
        return int.from_bytes(key[:4], "little"), data

    def _node_free(self, addr) -> None:
        if self.ma is not None:
            self.ma.free(addr)               # bpf_mem_cache_free(_rcu)
        else:
            self.kfree(addr)

    def _node_free_rcu(self, addr) -> None:
        """A node replaced or deleted: kfree_rcu(), or bpf_mem_cache_free_rcu() (≈v6.13+):
        it stays allocated, and charged, until an RCU grace period (deferred work)."""
        if self.ma is not None:
            self.ma.free_rcu(addr)
        else:
            self.system.bpf_state.queue_work(lambda: self.kfree(addr))

    def _node_alloc(self, with_value: bool):
        """lpm_trie_node_alloc(): bpf_mem_cache_alloc() (≈v6.13+) or
        bpf_map_kmalloc_node(size, runtime gfp)."""
        if self._addr_stream is not None:         # _link_bulk(): the node was allocated
            return next(self._addr_stream)
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
        """Mirrors trie_lookup_elem(): the value of the longest prefix that matches the
        key's first prefixlen bits -- a prefix longer than the key's own never matches
        (longest_prefix_match() stops at the shorter of the two prefix lengths)."""
        plen, data = self._key(key)
        if plen > self.max_prefixlen:
            raise BpfError(errno.ENOENT, f"LPM_TRIE: prefixlen {plen} > {self.max_prefixlen}")
        node, found = self.root, None
        while node is not None:
            m = _match(node, data, plen)
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
        """Mirrors trie_update_elem().  Switch lpm_full_inplace (532d6b36b2bf): the node is
        allocated first and trie_check_add_elem() counts a new key only (-ENOSPC only for a
        new key in a full trie); before it: -ENOSPC for a full trie, then the node is
        allocated and counted before the walk.  Switch lpm_exist_flags (eae6a075e953):
        BPF_NOEXIST (-EEXIST) and BPF_EXIST (-ENOENT) are honoured; before, both act as
        BPF_ANY.  A failed update frees its node (and, counted early, uncounts it)."""
        plen, data = self._key(key)
        if flags > uapi.BPF_EXIST:
            raise BpfError(errno.EINVAL, f"LPM_TRIE: flags {flags:#x} > BPF_EXIST")
        if plen > self.max_prefixlen:
            raise BpfError(errno.EINVAL, f"LPM_TRIE: prefixlen {plen} > max_prefixlen {self.max_prefixlen}")
        inplace, exist = self.bprof.lpm_full_inplace, self.bprof.lpm_exist_flags
        full = BpfError(errno.ENOSPC, f"LPM_TRIE: trie full ({self.n_entries} of "
                        f"{self.attr.max_entries} entries)")
        if not inplace and self.n_entries == self.attr.max_entries:
            raise full
        new_addr = self._node_alloc(True)
        new = _Node(plen, data, bytes(value), new_addr)
        if not inplace:
            self.n_entries += 1              # counted before the walk
        missing = BpfError(errno.ENOENT, "LPM_TRIE: key missing with BPF_EXIST")

        def fail(err: BpfError) -> BpfError:
            if not inplace:
                self.n_entries -= 1
            self._node_free(new_addr)
            return err

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
            """trie_check_add_elem() (lpm_full_inplace), else the BPF_EXIST test of a new key."""
            if exist and flags == uapi.BPF_EXIST:
                raise fail(missing)
            if inplace:
                if self.n_entries == self.attr.max_entries:
                    raise fail(full)
                self.n_entries += 1

        if node is None:
            add_check()
            set_slot(new)
            return
        if node.prefixlen == m:
            if not node.flags & FLAG_IM:
                if exist and flags == uapi.BPF_NOEXIST:
                    raise fail(BpfError(errno.EEXIST, "LPM_TRIE: key exists with BPF_NOEXIST"))
                if not inplace:
                    self.n_entries -= 1      # the replaced leaf no longer counts
            else:
                add_check()
            new.child = node.child
            set_slot(new)
            self._node_free_rcu(node.addr)
            return
        add_check()
        if m == plen:
            new.child[_bit(node.data, m)] = node
            set_slot(new)
            return
        try:
            im_addr = self._node_alloc(False)
        except OSError:
            if inplace:
                self.n_entries -= 1          # counted by trie_check_add_elem()
            raise fail(BpfError(errno.ENOMEM, "LPM_TRIE: intermediate node allocation "
                                              "failed")) from None
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
            self._node_free_rcu(parent.addr)
            self._node_free_rcu(node.addr)
            return
        assign(trim, node.child[0] if node.child[0] is not None else node.child[1])
        self._node_free_rcu(node.addr)

    def get_next_key(self, key: bytes | None) -> bytes:
        """Mirrors trie_get_next_key(): post-order (more specific prefixes first).  The
        key is looked up along its path as an update would place it; not found (or
        NULL, or a prefixlen past max_prefixlen) -> the leftmost node of the trie;
        found -> the leftmost node of the next right subtree up the path, or the first
        non-intermediate ancestor; none -> -ENOENT."""
        self._link_bulk()
        if self.root is None:
            raise BpfError(errno.ENOENT, "LPM_TRIE: empty")
        search_root: _Node | None = self.root
        if key is not None:
            plen, data = self._key(key)
            if plen <= self.max_prefixlen:
                stack: list[_Node] = []
                node: _Node | None = self.root
                m = 0
                while node is not None:
                    stack.append(node)
                    m = _match(node, data, plen)
                    if node.prefixlen != m or node.prefixlen == plen:
                        break
                    node = node.child[_bit(data, node.prefixlen)]
                if node is not None and node.prefixlen == m and not node.flags & FLAG_IM:
                    search_root = None
                    while len(stack) > 1:
                        parent = stack[-2]
                        if parent.child[0] is node and parent.child[1] is not None:
                            search_root = parent.child[1]
                            break
                        if not parent.flags & FLAG_IM:
                            return self._key_of(parent)
                        stack.pop()
                        node = parent
                    if search_root is None:
                        raise BpfError(errno.ENOENT, "LPM_TRIE: last key")
        return self._key_of(self._leftmost(search_root))

    @staticmethod
    def _leftmost(node: _Node | None) -> _Node:
        """The leftmost non-intermediate node below ``node`` (intermediate nodes have
        two children, so there is one)."""
        found = None
        while node is not None:
            if node.flags & FLAG_IM:
                node = node.child[0]
            else:
                found = node
                node = node.child[0] if node.child[0] is not None else found.child[1]
        assert found is not None
        return found

    @staticmethod
    def _key_of(n: _Node) -> bytes:
        return n.prefixlen.to_bytes(4, "little") + n.data

    # -- bulk fill (bpf/fill.py) --
    def bulk_fill(self, n: int) -> bool:
        """n syscall updates (BPF_ANY, zero values) of the full-length keys whose data is
        0, 1, ..., n-1 (big-endian; the lower half of the key space), on the current cpu, in
        one or two C calls: the same node allocations in the same order and context as the
        loop -- a leaf, then, but into an empty trie, the intermediate node where the key
        leaves the trie -- and the same trie.  The trie may hold keys of the upper half
        only.  The leaves are linked into the trie when an operation first needs them (a
        key of the lower half, a walk of every node); until then the intermediate node at
        the top of the new keys stands for them.  Returns False, having done nothing,
        where the loop must run (n too big for the lower half or for the free entries)."""
        ds = self.data_size
        bits = 8 * ds
        if (self._bulk is not None or n < 1 or n > 1 << (bits - 1)
                or n > self.attr.max_entries - self.n_entries
                or (self.root is not None and not (self.root.data[0] & 0x80
                                                   and self.root.prefixlen >= 1))):
            return False
        top_im = self.root is not None      # the first key meets the upper half at bit 0
        count = 2 * n - (0 if top_im else 1)
        objs = self._alloc_nodes(count, top_im)
        got = len(objs)
        # insert j allocates its leaf, then its intermediate node (none for j = 0 into an
        # empty trie); an insert whose node fails gives its leaf back
        done, partial = (got // 2, got % 2) if top_im else ((got + 1) // 2, got and not got % 2)
        if partial:
            self._node_free(self._obj(int(objs[-1])))
            objs = objs[:-1]
        if done:
            first = 1 if top_im else 0
            leaf0 = int(objs[0])
            if done == 1:
                sub = _Node(bits, bytes(ds), bytes(self.attr.value_size), self._obj(leaf0))
            else:
                b = (done - 1).bit_length()     # keys 0 .. done-1 first differ at bit bits-b
                sub = _Node(bits - b, bytes(ds), None, self._obj(int(objs[2 * (1 << (b - 1)) + first])))
                sub.flags = FLAG_IM
            if top_im:
                assert self.root is not None
                im = _Node(0, self.root.data, None, self._obj(int(objs[1])))
                im.flags = FLAG_IM
                im.child = [sub, self.root]
                self.root = im
            else:
                self.root = sub
            stream = np.concatenate((objs[:1], objs[1 + first:]))
            self._bulk = _BulkLeaves(sub, done, stream)
            self.n_entries += done
        if done < n:
            if self.ma is not None:
                raise BpfError(errno.ENOMEM, f"LPM_TRIE: bpf_mem_alloc cache of "
                               f"{self._leaf_size()}-byte nodes is empty and its GFP_NOWAIT "
                               f"refill failed")
            raise BpfError(errno.ENOMEM, "LPM_TRIE: node allocation failed: cannot allocate "
                           "memory")
        return True

    def _obj(self, addr: int) -> Any:
        """A node's allocation as _node_alloc() returns it: a bpf_mem_alloc object or an
        address."""
        return (addr, 0) if self.ma is not None else addr

    def _alloc_nodes(self, count: int, top_im: bool) -> np.ndarray:
        """The nodes of the bulk fill, leaf and intermediate sizes alternating as the
        inserts ask for them, up to the first allocation that fails."""
        if self.ma is not None:
            return self.ma.alloc_many_addrs(count)     # objects (addr, 0), by address
        leaf = self.sizes.lpm_trie_node + self.data_size + self.attr.value_size
        sizes = np.full(count, self.sizes.lpm_trie_node + self.data_size, dtype=np.uint64)
        sizes[0 if top_im else 1::2] = leaf    # each insert's leaf comes first
        sizes[0] = leaf
        with self._map_memcg_active():
            got = self.system.allocs_until_fail("k" * count, sizes,
                                                self.acct(self.runtime_gfp()))
        is_leaf = sizes[:len(got)] == leaf
        self.record_many("k", got[is_leaf], leaf)
        self.record_many("k", got[~is_leaf], self.sizes.lpm_trie_node + self.data_size)
        return got

    def _link_bulk(self) -> None:
        """Build the nodes of the bulk-written keys: their inserts again, in order, on a
        trie of their own with the nodes they allocated, then in place of the stand-in."""
        bulk, self._bulk = self._bulk, None
        if bulk is None:
            return
        saved = self.root, self.n_entries
        self.root, self.n_entries = None, 0
        self._addr_stream = iter([self._obj(a) for a in bulk.nodes.tolist()])
        zero = bytes(self.attr.value_size)
        try:
            for j in range(bulk.n):
                key = (8 * self.data_size).to_bytes(4, "little") + j.to_bytes(self.data_size, "big")
                self.update_elem(key, zero, uapi.BPF_ANY)
        finally:
            self._addr_stream = None
        built = self.root
        self.root, self.n_entries = saved
        stand_in = bulk.top
        assert built is not None and (built.prefixlen, built.addr) == (stand_in.prefixlen, stand_in.addr)
        stand_in.child, stand_in.value, stand_in.flags = built.child, built.value, built.flags


@dataclass
class _BulkLeaves:
    """Keys written by LpmTrieMap.bulk_fill() and not yet linked: the node at their top
    (in the trie), how many, and the addresses of their nodes in allocation order."""

    top: _Node
    n: int
    nodes: np.ndarray
