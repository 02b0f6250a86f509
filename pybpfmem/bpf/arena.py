"""ARENA map (kernel/bpf/arena.c, v6.9+: map type 33, so absent from profiles whose
last map type is below it).

Creation (arena_map_alloc()): key and value size 0, max_entries (pages) > 0,
BPF_F_MMAPABLE required and no flags but BPF_F_SEGV_ON_FAULT / BPF_F_NO_USER_CONV
besides it, else -EINVAL; map_extra (the user VMA start) page aligned, else -EINVAL;
max_entries * PAGE_SIZE above 4 GiB is -E2BIG; a user range crossing a 4 GiB
boundary is -ERANGE; CAP_BPF (map_create()).  What it charges: the struct, from
bpf_map_area_alloc() in the creator's context.  The 4 GiB + guard kernel VM area
(get_vm_area(), GFP_KERNEL) and the range-tree node of the free pages (from
bpf_global_ma) are not charged to the creator; arena_map_mem_usage() is 0, so fdinfo
memlock is 0.  From userspace the map has no element commands: lookup -EINVAL,
update/delete/get_next_key -EOPNOTSUPP.

Simplified: the arena's pages (allocated on a user page fault or by
bpf_arena_alloc_pages(), charged to the map's memcg) are not modelled -- the model
has no mmap() and runs no programs; sizeof(struct bpf_arena) is the 6.18 x86_64
figure (StructSizes has no entry for it).
"""

from __future__ import annotations

import errno
from typing import ClassVar

from . import uapi
from .errors import BpfError
from .map import BpfMap, register_map

#: sizeof(struct bpf_arena), 6.18 x86_64 BTF
BPF_ARENA_SIZE = 400
_FLAGS = uapi.BPF_F_SEGV_ON_FAULT | uapi.BPF_F_MMAPABLE | uapi.BPF_F_NO_USER_CONV
SZ_4G = 1 << 32


@register_map
class ArenaMap(BpfMap):
    """BPF_MAP_TYPE_ARENA (struct bpf_arena)."""

    map_types: ClassVar[tuple[int, ...]] = (uapi.BPF_MAP_TYPE_ARENA,)
    null_key: ClassVar[bool] = True

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """The checks of arena_map_alloc(), in its order."""
        f = attr.map_flags
        if (attr.key_size or attr.value_size or attr.max_entries == 0
                or not f & uapi.BPF_F_MMAPABLE or f & ~_FLAGS):
            raise BpfError(errno.EINVAL, f"ARENA: arena_map_alloc: need key_size 0 (got "
                           f"{attr.key_size}), value_size 0 (got {attr.value_size}), "
                           f"max_entries > 0, BPF_F_MMAPABLE and no flags outside {_FLAGS:#x} "
                           f"(got {f:#x})")
        page = ctx.system.page_size
        if attr.map_extra % page:
            raise BpfError(errno.EINVAL, f"ARENA: map_extra {attr.map_extra:#x} (the user VMA "
                                         f"start) is not page aligned")
        vm_range = attr.max_entries * page
        if vm_range > SZ_4G:
            raise BpfError(errno.E2BIG, f"ARENA: {attr.max_entries} pages are more than 4 GiB")
        if attr.map_extra >> 32 != (attr.map_extra + vm_range - 1) >> 32:
            raise BpfError(errno.ERANGE, "ARENA: the user VMA would cross a 4 GiB boundary")

    def alloc(self) -> None:
        """Mirrors arena_map_alloc(): the struct from bpf_map_area_alloc()."""
        self.area_alloc(BPF_ARENA_SIZE)

    def mem_usage(self) -> int:
        """arena_map_mem_usage(): 0."""
        return 0

    def update_allocates(self) -> bool:
        return False

    def lookup_elem(self, key: bytes | None) -> bytes:
        """arena_map_lookup_elem(): -EINVAL."""
        raise BpfError(errno.EINVAL, "ARENA: no lookup (arena_map_lookup_elem)")

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        raise BpfError(errno.EOPNOTSUPP, "ARENA: no update (arena_map_update_elem)")

    def delete_elem(self, key: bytes | None) -> None:
        raise BpfError(errno.EOPNOTSUPP, "ARENA: no delete (arena_map_delete_elem)")

    def get_next_key(self, key: bytes | None) -> bytes:
        raise BpfError(errno.EOPNOTSUPP, "ARENA: no get_next_key (arena_map_get_next_key)")
