"""ARRAY and PERCPU_ARRAY (kernel/bpf/arraymap.c).

Values are stored only once written (dict index -> bytes), so creating a big
array costs host memory independent of max_entries; the simulated kernel
memory is still allocated in full through the map's allocation services.
"""

from __future__ import annotations

import errno
import struct
from typing import Any

from . import uapi as U
from .errors import BpfError
from .map import (KMALLOC_MAX_SIZE, PCPU_MIN_UNIT_SIZE, BpfMap, CreateCtx, MapAttr,
                  pow2, register_map, rup)

_ACCESS = U.BPF_F_RDONLY | U.BPF_F_WRONLY | U.BPF_F_RDONLY_PROG | U.BPF_F_WRONLY_PROG
ARRAY_CREATE_FLAG_MASK = (U.BPF_F_NUMA_NODE | U.BPF_F_MMAPABLE | _ACCESS | U.BPF_F_INNER_MAP
                          | U.BPF_F_PRESERVE_ELEMS)


def flags_access_ok(flags: int) -> bool:
    """bpf_map_flags_access_ok(): not both RDONLY_PROG and WRONLY_PROG."""
    return not (flags & U.BPF_F_RDONLY_PROG and flags & U.BPF_F_WRONLY_PROG)


@register_map
class ArrayMap(BpfMap):
    """struct bpf_array: value area inline (ARRAY) or per-cpu pointers (PERCPU_ARRAY)."""

    map_types = (U.BPF_MAP_TYPE_ARRAY, U.BPF_MAP_TYPE_PERCPU_ARRAY)
    batch_ops = frozenset({"lookup", "update"})

    @classmethod
    def alloc_check(cls, attr: MapAttr, ctx: CreateCtx) -> None:
        """Mirrors array_map_alloc_check() and the checks of array_map_alloc()."""
        percpu = attr.map_type == U.BPF_MAP_TYPE_PERCPU_ARRAY
        f = attr.map_flags
        if percpu and f & U.BPF_F_NUMA_NODE:
            raise BpfError(errno.EINVAL, "array_map_alloc_check: NUMA node with PERCPU_ARRAY")
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size == 0
                or f & ~ARRAY_CREATE_FLAG_MASK or not flags_access_ok(f)):
            raise BpfError(errno.EINVAL,
                           f"array_map_alloc_check: max_entries {attr.max_entries} (>0), "
                           f"key_size {attr.key_size} (==4), value_size {attr.value_size} "
                           f"(>0), map_flags {f:#x} (allowed {ARRAY_CREATE_FLAG_MASK:#x})")
        if attr.map_type != U.BPF_MAP_TYPE_ARRAY and f & (U.BPF_F_MMAPABLE | U.BPF_F_INNER_MAP):
            raise BpfError(errno.EINVAL, "array_map_alloc_check: BPF_F_MMAPABLE/BPF_F_INNER_MAP "
                                         "only for BPF_MAP_TYPE_ARRAY")
        if attr.map_type != U.BPF_MAP_TYPE_PERF_EVENT_ARRAY and f & U.BPF_F_PRESERVE_ELEMS:
            raise BpfError(errno.EINVAL, "array_map_alloc_check: BPF_F_PRESERVE_ELEMS only for "
                                         "PERF_EVENT_ARRAY")
        limit = U.INT_MAX if ctx.bprof.attr_line == "6" else KMALLOC_MAX_SIZE
        if attr.value_size > limit:
            raise BpfError(errno.E2BIG, f"array_map_alloc_check: value_size "
                                        f"{attr.value_size} > {limit}")
        if percpu and rup(attr.value_size, 8) > PCPU_MIN_UNIT_SIZE:
            raise BpfError(errno.E2BIG, f"array_map_alloc_check: per-cpu value "
                                        f"{rup(attr.value_size, 8)} > PCPU_MIN_UNIT_SIZE "
                                        f"{PCPU_MIN_UNIT_SIZE}")
        if not ctx.perfmon_capable() and pow2(attr.max_entries) > U.U32_MAX:
            raise BpfError(errno.E2BIG, f"array_map_alloc: max_entries {attr.max_entries} "
                                        f"rounded up to a power of two overflows u32")

    def __init__(self, system: Any, attr: MapAttr, ctx: CreateCtx) -> None:
        super().__init__(system, attr, ctx)
        self.percpu = attr.map_type == U.BPF_MAP_TYPE_PERCPU_ARRAY
        self.mmapable = bool(attr.map_flags & U.BPF_F_MMAPABLE)
        self.elem_size = rup(attr.value_size, 8)
        # unprivileged creators get a power-of-two sized array (Spectre v1 index masking)
        self.n_alloc = attr.max_entries if ctx.perfmon_capable() else pow2(attr.max_entries)
        self.values: dict[int, bytes] = {}
        self.pptrs: list[int] = []
        self.area = 0

    def _array_size(self) -> int:
        sz, page = self.sizes.bpf_array, self.system.page_size
        if self.percpu:
            return sz + self.n_alloc * 8
        if self.mmapable:
            return rup(sz, page) + rup(self.n_alloc * self.elem_size, page)
        return sz + self.n_alloc * self.elem_size

    def legacy_cost(self) -> int:
        """v5.10 array_map_alloc() cost."""
        cost = self._array_size()
        if self.percpu:
            cost += self.max_entries * self.elem_size * self.system.nr_cpus
        return cost

    def alloc(self) -> None:
        """Mirrors array_map_alloc(): the array area, then one per-cpu value per
        attribute entry (bpf_array_alloc_percpu)."""
        self.area = self.area_alloc(self._array_size(), mmapable=self.mmapable)
        if self.percpu:
            g = self.gfp
            for _ in range(self.max_entries):
                if self.bprof.account:
                    p = self.map_alloc_percpu(self.elem_size, 8, g.USER | g.NOWARN)
                else:  # v5.10: __alloc_percpu_gfp(), not accounted
                    p = self.plain_alloc_percpu(self.elem_size, 8, g.USER | g.NOWARN)
                self.pptrs.append(p)

    def free(self) -> None:
        """Mirrors array_map_free()."""
        for p in self.pptrs:
            self.free_percpu(p)
        self.pptrs.clear()
        if self.area:
            self.area_free(self.area)
            self.area = 0

    def mem_usage(self) -> int:
        """Mirrors array_map_mem_usage() (uses the attribute max_entries)."""
        sz, page, n = self.sizes.bpf_array, self.system.page_size, self.max_entries
        if self.percpu:
            return sz + n * 8 + n * self.elem_size * self.system.nr_cpus
        if self.mmapable:
            return rup(sz, page) + rup(n * self.elem_size, page)
        return sz + n * self.elem_size

    # --- element ops
    def _index(self, key: bytes | None) -> int:
        self.check_key(key)
        assert key is not None
        return struct.unpack("<I", key)[0]

    def _zero(self) -> bytes:
        return bytes(self.syscall_value_size())

    def lookup_elem(self, key: bytes | None) -> bytes:
        """array_map_lookup_elem / bpf_percpu_array_copy."""
        i = self._index(key)
        if i >= self.max_entries:
            raise BpfError(errno.ENOENT, f"array lookup: index {i} >= max_entries "
                                         f"{self.max_entries}")
        return self.values.get(i) or self._zero()

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Mirrors array_map_update_elem() / bpf_percpu_array_update(): in place, no
        allocation."""
        i = self._index(key)
        if (flags & ~U.BPF_F_LOCK) > U.BPF_EXIST:
            raise BpfError(errno.EINVAL, f"array update: flags {flags:#x} > BPF_EXIST")
        if i >= self.max_entries:
            raise BpfError(errno.E2BIG, f"array update: index {i} >= max_entries "
                                        f"{self.max_entries}")
        if flags & U.BPF_NOEXIST:
            raise BpfError(errno.EEXIST, "array update: BPF_NOEXIST but every slot exists")
        # per-cpu: the syscall buffer holds v8 per possible cpu and the kernel copies
        # round_up(value_size, 8) bytes per cpu, padding included (copy_map_value_long()
        # in bpf_percpu_array_update())
        self.values[i] = bytes(value) if self.percpu else bytes(value[:self.value_size])

    def helper_update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Program side: per-cpu arrays update only the current cpu's copy."""
        if not self.percpu:
            return self.update_elem(key, value, flags)
        i = self._index(key)
        if (flags & ~U.BPF_F_LOCK) > U.BPF_EXIST:
            raise BpfError(errno.EINVAL, f"array update: flags {flags:#x} > BPF_EXIST")
        if i >= self.max_entries:
            raise BpfError(errno.E2BIG, f"array update: index {i} >= max_entries")
        if flags & U.BPF_NOEXIST:
            raise BpfError(errno.EEXIST, "array update: BPF_NOEXIST")
        if len(value) != self.value_size:
            raise ValueError(f"helper value must be {self.value_size} bytes")
        cpu = self.system.current_cpu or 0
        cur = bytearray(self.values.get(i) or self._zero())
        v8 = self.elem_size
        cur[cpu * v8:cpu * v8 + self.value_size] = value
        self.values[i] = bytes(cur)
        return None

    def helper_lookup_elem(self, key: bytes | None) -> bytes | None:
        if not self.percpu:
            return super().helper_lookup_elem(key)
        i = self._index(key)
        if i >= self.max_entries:
            return None
        cpu = self.system.current_cpu or 0
        v = self.values.get(i) or self._zero()
        return v[cpu * self.elem_size:cpu * self.elem_size + self.value_size]

    def delete_elem(self, key: bytes | None) -> None:
        raise BpfError(errno.EINVAL, "array_map_delete_elem: array elements cannot be deleted")

    def get_next_key(self, key: bytes | None) -> bytes:
        """Mirrors array_map_get_next_key()."""
        if key is None:
            return struct.pack("<I", 0)
        i = self._index(key)
        if i >= self.max_entries:
            return struct.pack("<I", 0)
        if i == self.max_entries - 1:
            raise BpfError(errno.ENOENT, "array get_next_key: last index")
        return struct.pack("<I", i + 1)
