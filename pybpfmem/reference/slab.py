"""Charge sizes of the kernel allocators (reference model).

kmalloc size classes as mm/slab_common.c builds them for x86_64 SLUB
(kmalloc_info[], kmalloc_index()); obj_full_size() of mm/slab.h /
mm/memcontrol.c; vmalloc backing pages (mm/vmalloc.c); percpu charge
sizes (mm/percpu.c, mm/percpu-internal.h pcpu_obj_full_size()).
"""

from __future__ import annotations

KMALLOC_MIN_SIZE = 8
OBJCG_POINTER_SIZE = 8          # sizeof(struct obj_cgroup *) on 64-bit
PCPU_MIN_ALLOC_SIZE = 4         # 1 << PCPU_MIN_ALLOC_SHIFT
PCPU_MIN_UNIT_SIZE = 32 << 10   # largest percpu allocation pcpu_alloc() accepts
_BUCKETS = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)


def kmalloc_max_cache_size(page_size: int) -> int:
    """KMALLOC_MAX_CACHE_SIZE = 1 << (PAGE_SHIFT + 1) on SLUB."""
    return 2 * page_size


def kmalloc_bucket(size: int, page_size: int = 4096) -> int:
    """Object size of the kmalloc-N cache that serves ``size`` bytes (kmalloc_index()).

    Simplified: for page sizes above 4096 the power-of-two buckets simply continue
    up to 2 * page_size.
    """
    if size <= 0:
        raise ValueError("kmalloc_bucket of a non-positive size")
    for b in _BUCKETS:
        if size <= b:
            return b
    b = 8192
    while b < size:
        b *= 2
    if b > kmalloc_max_cache_size(page_size):
        raise ValueError(f"{size} bytes is a large kmalloc, not a slab object")
    return b


def obj_full_size(object_size: int) -> int:
    """Bytes charged per accounted slab object: s->size plus the objcg pointer slot."""
    return object_size + OBJCG_POINTER_SIZE


def get_order(size: int, page_size: int) -> int:
    """get_order(): smallest order whose 2^order pages hold ``size`` bytes."""
    pages = max(1, -(-size // page_size))
    order = 0
    while (1 << order) < pages:
        order += 1
    return order


def vmalloc_nr_pages(size: int, page_size: int) -> int:
    """Backing pages of vmalloc(size): PAGE_ALIGN(size) / PAGE_SIZE (no guard page)."""
    return -(-size // page_size)


def pcpu_aligned_size(size: int) -> int:
    """pcpu_alloc() rounds the size up to PCPU_MIN_ALLOC_SIZE before the memcg hook."""
    return -(-size // PCPU_MIN_ALLOC_SIZE) * PCPU_MIN_ALLOC_SIZE


def pcpu_obj_full_size(size: int, nr_cpus: int, pointer_overhead: bool) -> int:
    """Bytes charged for one percpu allocation of ``size`` bytes.

    v5.11: ALIGN(size, 4) * num_possible_cpus(); since 2022 (pcpu_obj_full_size())
    plus one objcg pointer per 4-byte unit.
    """
    aligned = pcpu_aligned_size(size)
    extra = (aligned // PCPU_MIN_ALLOC_SIZE) * OBJCG_POINTER_SIZE if pointer_overhead else 0
    return aligned * nr_cpus + extra
