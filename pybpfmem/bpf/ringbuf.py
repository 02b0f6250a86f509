"""RINGBUF and USER_RINGBUF maps (kernel/bpf/ringbuf.c).

Creation allocates the struct bpf_ringbuf_map, a page-pointer array of
(3 + 2 * data_pages) entries (the data pages are mapped twice for wrap-around)
and 3 + data_pages single pages; nothing is allocated afterwards.  Records are
reserved/committed by programs (bpf_ringbuf_reserve/submit/discard); element
syscalls return -ENOTSUPP (524).
"""

from __future__ import annotations

import errno
from typing import ClassVar

from . import uapi
from .errors import BpfError
from .map import BpfMap, register_map, rup
from .uapi import ENOTSUPP

RINGBUF_NR_META_PAGES = 3        # header page + consumer page + producer page
BPF_RINGBUF_HDR_SZ = 8
BPF_RB_NO_WAKEUP = 1
BPF_RB_FORCE_WAKEUP = 2


@register_map
class RingbufMap(BpfMap):
    """BPF_MAP_TYPE_RINGBUF / USER_RINGBUF (struct bpf_ringbuf_map)."""

    map_types: ClassVar[tuple[int, ...]] = (uapi.BPF_MAP_TYPE_RINGBUF, uapi.BPF_MAP_TYPE_USER_RINGBUF)
    null_key: ClassVar[bool] = True

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """The checks at the top of ringbuf_map_alloc() (no capability needed)."""
        name = "USER_RINGBUF" if attr.map_type == uapi.BPF_MAP_TYPE_USER_RINGBUF else "RINGBUF"
        page = ctx.system.page_size
        if attr.map_flags & ~uapi.BPF_F_NUMA_NODE:
            raise BpfError(errno.EINVAL, f"{name}: map_flags {attr.map_flags:#x}: only "
                           f"BPF_F_NUMA_NODE allowed (ringbuf_map_alloc)")
        n = attr.max_entries
        if attr.key_size or attr.value_size or n == 0 or n & (n - 1) or n % page:
            raise BpfError(errno.EINVAL, f"{name}: key_size {attr.key_size} and value_size "
                           f"{attr.value_size} must be 0, max_entries {n} a power of two and a "
                           f"multiple of PAGE_SIZE {page} (ringbuf_map_alloc)")
        max_data = ((1 << 24) - 2 - 1) * page   # RINGBUF_MAX_DATA_SZ
        if n > max_data:
            raise BpfError(errno.E2BIG, f"{name}: max_entries {n} > RINGBUF_MAX_DATA_SZ {max_data}")

    @property
    def _data_pages(self) -> int:
        return self.attr.max_entries // self.system.page_size

    def legacy_cost(self) -> int:
        """v5.10 ringbuf_map_alloc(): sizeof(rb_map) + sizeof(struct bpf_ringbuf) + max_entries.

        sizeof(struct bpf_ringbuf) is the meta part up to data[], i.e. 3 pages
        (its consumer/producer positions and data are page aligned).
        """
        return (self.sizes.bpf_ringbuf_map
                + RINGBUF_NR_META_PAGES * self.system.page_size + self.attr.max_entries)

    def alloc(self) -> None:
        """Mirrors ringbuf_map_alloc() + bpf_ringbuf_area_alloc()."""
        sys_ = self.system
        g = self.gfp
        page = sys_.page_size
        self._pages: list[int] = []
        self._records: dict[int, tuple[int, int]] = {}   # offset -> (len, state)
        self._prod = 0
        self._cons = 0
        # struct bpf_ringbuf_map: v5.10 kzalloc(GFP_USER) (unaccounted), v5.11
        # GFP_USER | __GFP_ACCOUNT, v6.1+ bpf_map_area_alloc
        self.struct_alloc(self.sizes.bpf_ringbuf_map)
        nr_data = self._data_pages
        array_size = (RINGBUF_NR_META_PAGES + 2 * nr_data) * 8
        flags = self.acct(g.KERNEL | g.RETRY_MAYFAIL | g.NOWARN | g.ZERO)
        if self.bprof.struct_area_alloc:
            self.area_alloc(array_size)             # v6.1+: bpf_map_area_alloc
        elif array_size > page:
            # v5.10/v5.11: vmalloc_node() with plain GFP_KERNEL: not accounted
            try:
                addr = sys_.vmalloc(array_size, g.KERNEL)
            except OSError as exc:
                raise BpfError(errno.ENOMEM, f"RINGBUF: vmalloc of the {array_size}-byte "
                               f"page array failed: {exc}") from None
            self.adopt_alloc("v", addr, rup(array_size, page))
        else:
            self.kzalloc_account(array_size, flags)  # kmalloc_node(flags)
        for _ in range(RINGBUF_NR_META_PAGES + nr_data):
            # alloc_pages_node(flags, 0) per page, charged to the creator (v5.11+)
            self._pages.append(self.alloc_pages(0, flags))
        # vmap() of the pages: the vm area bookkeeping is not modelled (simplification)

    def free(self) -> None:
        """Mirrors ringbuf_map_free() / bpf_ringbuf_free(): pages, array, struct."""
        self.free_all()
        self._pages = []

    def mem_usage(self) -> int:
        """Mirrors ringbuf_map_mem_usage(): struct + pages + page-pointer array."""
        nr_data = self._data_pages
        return (self.sizes.bpf_ringbuf_map
                + (RINGBUF_NR_META_PAGES + nr_data) * self.system.page_size
                + (RINGBUF_NR_META_PAGES + 2 * nr_data) * 8)

    # -- element syscalls: ringbuf_map_{lookup,update,delete}_elem, get_next_key --
    def _enotsupp(self, op: str) -> Exception:
        return BpfError(ENOTSUPP, f"RINGBUF: {op} is not supported (ringbuf_map_{op} -> -ENOTSUPP)")

    def lookup_elem(self, key: bytes | None) -> bytes:
        raise self._enotsupp("lookup_elem")

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        raise self._enotsupp("update_elem")

    def delete_elem(self, key: bytes | None) -> None:
        raise self._enotsupp("delete_elem")

    def get_next_key(self, key: bytes | None) -> bytes:
        raise self._enotsupp("get_next_key")

    # -- program side: bpf_ringbuf_reserve / submit / discard / output --
    def reserve(self, size: int, flags: int = 0) -> int | None:
        """Mirrors bpf_ringbuf_reserve() / __bpf_ringbuf_reserve(): a record offset, or
        None (the helper's NULL) when flags are set, the record is too large or there is
        no room.  Never allocates memory."""
        if flags:
            return None
        if size > (1 << 32) // 4 - 1:        # RINGBUF_MAX_RECORD_SZ
            return None
        length = rup(size + BPF_RINGBUF_HDR_SZ, 8)
        total = self.attr.max_entries
        if length > total:
            return None
        if self._prod + length - self._cons > total - 1:
            return None
        off = self._prod
        self._records[off] = (length, 0)     # state 0: busy
        self._prod += length
        return off

    def _commit(self, rec: int, discard: bool) -> None:
        """Mirrors bpf_ringbuf_commit(): clear the busy bit (and mark discarded)."""
        if rec not in self._records or self._records[rec][1] != 0:
            raise BpfError(errno.EINVAL, f"RINGBUF: record {rec} is not a reserved record")
        self._records[rec] = (self._records[rec][0], 2 if discard else 1)

    def submit(self, rec: int, flags: int = 0) -> None:
        self._commit(rec, False)

    def discard(self, rec: int, flags: int = 0) -> None:
        self._commit(rec, True)

    def output(self, data: bytes, flags: int = 0) -> None:
        """Mirrors bpf_ringbuf_output(): reserve + copy + commit; -EAGAIN when full."""
        if flags & ~(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP):
            raise BpfError(errno.EINVAL, f"RINGBUF output: flags {flags:#x}")
        rec = self.reserve(len(data))
        if rec is None:
            raise BpfError(errno.EAGAIN, f"RINGBUF output: no room for {len(data)} bytes")
        self._commit(rec, False)

    def consume(self) -> list[int]:
        """User space consumer: advance consumer_pos over committed records, returning
        the lengths of the submitted (not discarded) ones."""
        out = []
        while self._cons < self._prod:
            length, state = self._records[self._cons]
            if state == 0:
                break
            del self._records[self._cons]
            if state == 1:
                out.append(length - BPF_RINGBUF_HDR_SZ)
            self._cons += length
        return out

    helper_ringbuf_reserve = reserve
    helper_ringbuf_submit = submit
    helper_ringbuf_discard = discard
    helper_ringbuf_output = output
