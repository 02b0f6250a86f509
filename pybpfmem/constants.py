"""Kernel constants by their kernel names.

GFP bit values follow include/linux/gfp.h (v5.10/v5.11) and
include/linux/gfp_types.h (current); they are the same bits in both eras
except ``__GFP_ATOMIC`` (0x200), which v6.3 removed (2973d8229b78, profile
switch has_gfp_atomic), so ``GFP_ATOMIC`` is 0xA20 on the 5.x profiles and
0x820 on 6.18.  ``GFP_NOWAIT`` gained ``__GFP_NOWARN`` in v6.8 (16f5dfbc851b,
switch nowait_nowarn), so it is 0x800 on 5.x and 0x2800 on 6.18.

The module-level composite values (``GFP_ATOMIC``, ``GFP_NOWAIT``) are those
of the *current* kernel (the "6.18" profile).  Per-profile values live in
``System.gfp`` (a :class:`GfpFlags`).
"""

from __future__ import annotations

import re
from typing import Final

# --- individual __GFP_* bits (include/linux/gfp_types.h) ---
__GFP_DMA: Final = 0x1
__GFP_HIGHMEM: Final = 0x2
__GFP_DMA32: Final = 0x4
__GFP_MOVABLE: Final = 0x8
__GFP_RECLAIMABLE: Final = 0x10
__GFP_HIGH: Final = 0x20
__GFP_IO: Final = 0x40
__GFP_FS: Final = 0x80
__GFP_ZERO: Final = 0x100
__GFP_ATOMIC: Final = 0x200          # v5.x only (removed in v6.3)
__GFP_DIRECT_RECLAIM: Final = 0x400
__GFP_KSWAPD_RECLAIM: Final = 0x800
__GFP_WRITE: Final = 0x1000
__GFP_NOWARN: Final = 0x2000
__GFP_RETRY_MAYFAIL: Final = 0x4000
__GFP_NOFAIL: Final = 0x8000
__GFP_NORETRY: Final = 0x10000
__GFP_MEMALLOC: Final = 0x20000
__GFP_COMP: Final = 0x40000
__GFP_NOMEMALLOC: Final = 0x80000
__GFP_HARDWALL: Final = 0x100000
__GFP_THISNODE: Final = 0x200000
__GFP_ACCOUNT: Final = 0x400000
__GFP_RECLAIM: Final = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM

#: every bit the C core accepts (BM_GFP_VALID_MASK)
GFP_VALID_MASK: Final = 0x7FFFFF

# --- composite flags (same in every profile) ---
GFP_KERNEL: Final = __GFP_RECLAIM | __GFP_IO | __GFP_FS                  # 0xCC0
GFP_KERNEL_ACCOUNT: Final = GFP_KERNEL | __GFP_ACCOUNT                    # 0x400CC0
GFP_NOIO: Final = __GFP_RECLAIM                                           # 0xC00
GFP_NOFS: Final = __GFP_RECLAIM | __GFP_IO                                # 0xC40
GFP_USER: Final = __GFP_RECLAIM | __GFP_IO | __GFP_FS | __GFP_HARDWALL    # 0x100CC0

# --- composite flags that changed between releases: current-kernel values ---
GFP_ATOMIC_5X: Final = __GFP_HIGH | __GFP_ATOMIC | __GFP_KSWAPD_RECLAIM   # 0xA20
GFP_ATOMIC_CURRENT: Final = __GFP_HIGH | __GFP_KSWAPD_RECLAIM             # 0x820
GFP_NOWAIT_5X: Final = __GFP_KSWAPD_RECLAIM                               # 0x800
GFP_NOWAIT_CURRENT: Final = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN           # 0x2800
GFP_ATOMIC: Final = GFP_ATOMIC_CURRENT
GFP_NOWAIT: Final = GFP_NOWAIT_CURRENT

# --- page->memcg_data flags (include/linux/memcontrol.h, enum memcg_data_flags) ---
MEMCG_DATA_OBJCGS: Final = 0x1
MEMCG_DATA_KMEM: Final = 0x2
MEMCG_DATA_FLAGS_MASK: Final = 0x3

# --- kmem_cache_create flags (include/linux/slab.h) ---
SLAB_RECLAIM_ACCOUNT: Final = 0x20000
SLAB_ACCOUNT: Final = 0x4000000

# --- simulated address space (x86_64 layout, csrc/mm_internal.h) ---
#: page_offset_base: direct-map address of pfn 0 (kmalloc and page memory)
PAGE_OFFSET: Final = 0
#: VMALLOC_START: vmalloc addresses live above this
VMALLOC_START: Final = 0xFFFFC90000000000

# --- misc ---
RLIMIT_MEMLOCK: Final = 8

# --- integer limits (include/linux/limits.h, x86_64) ---
U16_MAX: Final = (1 << 16) - 1
U32_MAX: Final = (1 << 32) - 1
U64_MAX: Final = (1 << 64) - 1
INT_MAX: Final = (1 << 31) - 1
#: include/linux/page_counter.h: PAGE_COUNTER_MAX = LONG_MAX / PAGE_SIZE
LONG_MAX: Final = (1 << 63) - 1


def page_counter_max(page_size: int) -> int:
    """PAGE_COUNTER_MAX for a page size (include/linux/page_counter.h, 64-bit)."""
    return LONG_MAX // page_size


class GfpFlags:
    """The gfp values of one kernel profile (``System.gfp``), read-only.

    Attributes carry the kernel names (``GFP_ATOMIC``, ``__GFP_ACCOUNT``...).
    Because Python mangles ``obj.__NAME`` written inside a class body into
    ``obj._Class__NAME``, mangled lookups are mapped back to the kernel name.
    """

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, int]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> int:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        m = re.fullmatch(r"_[A-Za-z0-9]\w*?(__GFP_\w+)", name)
        if m and m.group(1) in values:
            return values[m.group(1)]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("GfpFlags is read-only")

    def __getitem__(self, name: str) -> int:
        return object.__getattribute__(self, "_values")[name]

    def as_dict(self) -> dict[str, int]:
        return dict(object.__getattribute__(self, "_values"))

    def __dir__(self) -> list[str]:
        return sorted(object.__getattribute__(self, "_values"))

    def __repr__(self) -> str:
        vals = object.__getattribute__(self, "_values")
        return "GfpFlags(" + ", ".join(f"{k}={v:#x}" for k, v in vals.items()) + ")"


_GFP_BITS = ("__GFP_DMA", "__GFP_RECLAIMABLE", "__GFP_HIGH", "__GFP_IO", "__GFP_FS", "__GFP_ZERO",
             "__GFP_DIRECT_RECLAIM", "__GFP_KSWAPD_RECLAIM", "__GFP_WRITE", "__GFP_NOWARN",
             "__GFP_RETRY_MAYFAIL", "__GFP_NOFAIL", "__GFP_NORETRY", "__GFP_MEMALLOC", "__GFP_COMP",
             "__GFP_NOMEMALLOC", "__GFP_HARDWALL", "__GFP_THISNODE", "__GFP_ACCOUNT", "__GFP_RECLAIM")


def gfp_flags(has_gfp_atomic: bool, nowait_nowarn: bool) -> GfpFlags:
    """Build the gfp table of a profile (__GFP_ATOMIC is 0 where the bit does not exist)."""
    g = globals()
    values = {name: g[name] for name in _GFP_BITS}
    values["__GFP_ATOMIC"] = __GFP_ATOMIC if has_gfp_atomic else 0
    values.update(
        GFP_KERNEL=GFP_KERNEL,
        GFP_KERNEL_ACCOUNT=GFP_KERNEL_ACCOUNT,
        GFP_ATOMIC=GFP_ATOMIC_5X if has_gfp_atomic else GFP_ATOMIC_CURRENT,
        GFP_NOWAIT=GFP_NOWAIT_CURRENT if nowait_nowarn else GFP_NOWAIT_5X,
        GFP_USER=GFP_USER,
        GFP_NOIO=GFP_NOIO,
        GFP_NOFS=GFP_NOFS,
    )
    return GfpFlags(values)
