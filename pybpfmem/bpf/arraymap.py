"""ARRAY and PERCPU_ARRAY (kernel/bpf/arraymap.c).

Values are stored only once written (dict index -> bytes), so creating a big
array costs host memory independent of max_entries; the simulated kernel
memory is still allocated in full through the map's allocation services.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import Any

from . import uapi as U
from .caps import perfmon_capable
from .errors import BpfError
from .fd import map_inc, map_put, prog_put
from .kobjects import CgroupFile, PerfEventFile
from .map import (KMALLOC_MAX_SIZE, PCPU_MIN_UNIT_SIZE, BpfMap, CreateCtx, MapAttr,
                  flags_access_ok, pow2, register_map, rup)

_ACCESS = U.BPF_F_RDONLY | U.BPF_F_WRONLY | U.BPF_F_RDONLY_PROG | U.BPF_F_WRONLY_PROG
ARRAY_CREATE_FLAG_MASK = (U.BPF_F_NUMA_NODE | U.BPF_F_MMAPABLE | _ACCESS | U.BPF_F_INNER_MAP
                          | U.BPF_F_PRESERVE_ELEMS)


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
        # value_size bound: KMALLOC_MAX_SIZE, INT_MAX with switch array_value_int_max
        limit = U.INT_MAX if ctx.bprof.array_value_int_max else KMALLOC_MAX_SIZE
        if attr.value_size > limit:
            raise BpfError(errno.E2BIG, f"array_map_alloc_check: value_size "
                                        f"{attr.value_size} > {limit}")
        if ctx.bprof.percpu_value_limit and percpu and rup(attr.value_size, 8) > \
                PCPU_MIN_UNIT_SIZE:
            raise BpfError(errno.E2BIG, f"array_map_alloc_check: per-cpu value "
                                        f"{rup(attr.value_size, 8)} > PCPU_MIN_UNIT_SIZE "
                                        f"{PCPU_MIN_UNIT_SIZE}")
        if not perfmon_capable(ctx.task) and pow2(attr.max_entries) > U.U32_MAX:
            raise BpfError(errno.E2BIG, f"array_map_alloc: max_entries {attr.max_entries} "
                                        f"rounded up to a power of two overflows u32")

    def __init__(self, system: Any, attr: MapAttr, ctx: CreateCtx) -> None:
        super().__init__(system, attr, ctx)
        self.percpu = attr.map_type == U.BPF_MAP_TYPE_PERCPU_ARRAY
        if self.percpu and not ctx.bprof.batch_percpu_array:
            self.batch_ops = frozenset()      # percpu_array_map_ops had none before v5.13
        self.mmapable = bool(attr.map_flags & U.BPF_F_MMAPABLE)
        self.elem_size = rup(attr.value_size, 8)
        # unprivileged creators get a power-of-two sized array (Spectre v1 index masking)
        self.n_alloc = attr.max_entries if perfmon_capable(ctx.task) else pow2(attr.max_entries)
        self.values: dict[int, bytes] = {}
        self.pptrs = 0          # the per-cpu values (one array of max_entries)
        self.area = 0

    def update_allocates(self) -> bool:
        return False       # in-place copies (fd arrays override below)

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
            # bpf_array_alloc_percpu(): bpf_map_alloc_percpu() per entry (v5.10:
            # __alloc_percpu_gfp(), not accounted), as one array
            g = self.gfp
            self.pptrs = self.map_alloc_percpu_array(self.elem_size, 8, g.USER | g.NOWARN,
                                                     self.max_entries,
                                                     accounted=self.bprof.account)

    def free(self) -> None:
        """Mirrors array_map_free()."""
        if self.pptrs:
            self.free_percpu(self.pptrs)
            self.pptrs = 0
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


# --------------------------------------------------------------------------
# fd-holding arrays and map-in-map (kernel/bpf/arraymap.c, kernel/bpf/map_in_map.c)
# --------------------------------------------------------------------------

@dataclass
class InnerMapMeta:
    """The inner_map_meta copy of bpf_map_meta_alloc(): the fields bpf_map_meta_equal()
    and array_map_meta_equal() compare, plus the unaccounted kzalloc that holds it."""

    map_type: int
    key_size: int
    value_size: int
    map_flags: int
    max_entries: int
    addr: int = 0


def bpf_map_meta_alloc(m: BpfMap, ctx: CreateCtx) -> InnerMapMeta:
    """Mirrors bpf_map_meta_alloc(), kernel/bpf/map_in_map.c: the inner map from
    inner_map_fd (-EBADF / -EINVAL when not a map), no second level of nesting
    (-EINVAL), then kzalloc(GFP_USER) of sizeof(struct bpf_map) (sizeof(struct
    bpf_array) for an ARRAY inner map): not accounted in any profile."""
    obj = ctx.fd_object(m.attr.inner_map_fd)
    if not isinstance(obj, BpfMap):
        raise BpfError(errno.EINVAL, f"bpf_map_meta_alloc: inner_map_fd "
                                     f"{m.attr.inner_map_fd} is not a map")
    if getattr(obj, "inner_meta", None) is not None:
        raise BpfError(errno.EINVAL, "bpf_map_meta_alloc: inner map is itself a map-in-map "
                                     "(one level only)")
    size = m.sizes.bpf_array if obj.map_type == U.BPF_MAP_TYPE_ARRAY else m.sizes.bpf_map
    meta = InnerMapMeta(obj.map_type, obj.key_size, obj.value_size, obj.map_flags,
                        obj.max_entries)
    meta.addr = m.kzalloc_account(size, m.gfp.USER | m.gfp.ZERO)
    return meta


def meta_equal(meta: InnerMapMeta, inner: BpfMap) -> bool:
    """bpf_map_meta_equal() (type, key/value size, flags); array_map_meta_equal() also
    wants max_entries equal unless the inner map has BPF_F_INNER_MAP."""
    if (meta.map_type, meta.key_size, meta.value_size, meta.map_flags) != (
            inner.map_type, inner.key_size, inner.value_size, inner.map_flags):
        return False
    if meta.map_type == U.BPF_MAP_TYPE_ARRAY and not meta.map_flags & U.BPF_F_INNER_MAP:
        return meta.max_entries == inner.max_entries
    return True


def fd_get_ptr(m: BpfMap, ufd: int) -> Any:
    """ops->map_fd_get_ptr for the calling task's fd `ufd`: prog_fd_array_get_ptr(),
    perf_event_fd_array_get_ptr(), cgroup_fd_array_get_ptr(), bpf_map_fd_get_ptr().
    Returns the referenced object (reference taken) or raises."""
    from .core import BpfProg, prog_map_compatible
    task = m.system.current_task
    if task is None:
        raise BpfError(errno.EINVAL, "fd map update needs a task context")
    obj = task.fd_object(ufd)       # EBADF for a closed fd
    t = m.map_type
    if t == U.BPF_MAP_TYPE_PROG_ARRAY:
        if not isinstance(obj, BpfProg):
            raise BpfError(errno.EINVAL, f"prog_fd_array_get_ptr: fd {ufd} is not a program")
        if not prog_map_compatible(m, obj):
            raise BpfError(errno.EINVAL, f"bpf_prog_map_compatible: program (type "
                                         f"{obj.prog_type}, attach {obj.expected_attach_type}) "
                                         f"differs from the array's owner {m.owner}")
        obj.refcnt += 1
        return obj
    if t == U.BPF_MAP_TYPE_PERF_EVENT_ARRAY:
        if not isinstance(obj, PerfEventFile):
            raise BpfError(errno.EBADF, f"perf_event_get: fd {ufd} is not a perf event")
        # bpf_event_entry_gen(): kzalloc(sizeof(struct bpf_event_entry) = 40), GFP_ATOMIC
        # (GFP_KERNEL with switch perf_event_entry_kernel_gfp), never accounted; it holds
        # the perf file
        g = m.gfp
        ee = m.kzalloc_account(40, (g.KERNEL if m.bprof.perf_event_entry_kernel_gfp else g.ATOMIC)
                               | g.ZERO)
        return (obj, ee)
    if t == U.BPF_MAP_TYPE_CGROUP_ARRAY:
        if not isinstance(obj, CgroupFile):
            raise BpfError(errno.EBADF, f"cgroup_get_from_fd: fd {ufd} is not a cgroup")
        return obj
    # ARRAY_OF_MAPS / HASH_OF_MAPS
    if not isinstance(obj, BpfMap):
        raise BpfError(errno.EINVAL, f"bpf_map_fd_get_ptr: fd {ufd} is not a map")
    meta = getattr(m, "inner_meta", None)
    if meta is None or not meta_equal(meta, obj):
        raise BpfError(errno.EINVAL, f"bpf_map_fd_get_ptr: map {obj.id} does not match the "
                                     f"inner map template (bpf_map_meta_equal)")
    map_inc(obj, False)
    return obj


def fd_put_ptr(m: BpfMap, ptr: Any) -> None:
    """ops->map_fd_put_ptr: prog_fd_array_put_ptr() / bpf_map_fd_put_ptr() drop the
    reference; perf_event_fd_array_put_ptr() frees the bpf_event_entry."""
    st = m.system.bpf_state
    if m.map_type == U.BPF_MAP_TYPE_PROG_ARRAY:
        prog_put(st, ptr)
    elif m.map_type == U.BPF_MAP_TYPE_PERF_EVENT_ARRAY:
        m.kfree(ptr[1])
    elif m.map_type in (U.BPF_MAP_TYPE_ARRAY_OF_MAPS, U.BPF_MAP_TYPE_HASH_OF_MAPS):
        map_put(st, ptr)


def fd_sys_lookup(m: BpfMap, ptr: Any) -> bytes:
    """ops->map_fd_sys_lookup_elem: the id of the program / map; perf event and cgroup
    arrays have none -> -ENOTSUPP (bpf_fd_array_map_lookup_elem())."""
    if m.map_type in (U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, U.BPF_MAP_TYPE_CGROUP_ARRAY):
        raise BpfError(U.ENOTSUPP, f"map_lookup_elem: {U.MAP_TYPE_NAMES[m.map_type]} has no "
                                   f"map_fd_sys_lookup_elem (-ENOTSUPP)")
    return struct.pack("<I", ptr.id)


@register_map
class FdArrayMap(ArrayMap):
    """PROG_ARRAY, PERF_EVENT_ARRAY, CGROUP_ARRAY, ARRAY_OF_MAPS: arrays of 8-byte
    pointers to referenced kernel objects; the syscall value is a u32 fd (update) or
    id (lookup)."""

    map_types = (U.BPF_MAP_TYPE_PROG_ARRAY, U.BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                 U.BPF_MAP_TYPE_CGROUP_ARRAY, U.BPF_MAP_TYPE_ARRAY_OF_MAPS)
    batch_ops = frozenset()

    @classmethod
    def alloc_check(cls, attr: MapAttr, ctx: CreateCtx) -> None:
        """Mirrors fd_array_map_alloc_check(): value_size 4, no *_PROG access flags;
        then array_map_alloc_check()."""
        if attr.value_size != 4 or attr.map_flags & (U.BPF_F_RDONLY_PROG | U.BPF_F_WRONLY_PROG):
            raise BpfError(errno.EINVAL, f"fd_array_map_alloc_check: value_size "
                                         f"{attr.value_size} (must be 4) or map_flags "
                                         f"{attr.map_flags:#x} has BPF_F_RDONLY/WRONLY_PROG")
        super().alloc_check(attr, ctx)

    def __init__(self, system: Any, attr: MapAttr, ctx: CreateCtx) -> None:
        super().__init__(system, attr, ctx)
        # array_of_maps_map_ops: generic lookup/update batches (switch batch_map_in_map)
        self.batch_ops = (frozenset({"lookup", "update"}) if attr.map_type ==
                          U.BPF_MAP_TYPE_ARRAY_OF_MAPS and ctx.bprof.batch_map_in_map
                          else frozenset())
        self.ptrs: dict[int, Any] = {}
        self.inner_meta: InnerMapMeta | None = None
        self._aux = 0
        self.owner: tuple[int, int] | None = None     # map->owner: (type, attach type)

    def alloc(self) -> None:
        """array_of_map_alloc(): inner map metadata first; prog_array_map_alloc(): the
        array, then struct bpf_array_aux (kzalloc GFP_KERNEL_ACCOUNT from 5.11)."""
        if self.map_type == U.BPF_MAP_TYPE_ARRAY_OF_MAPS:
            self.inner_meta = bpf_map_meta_alloc(self, self.ctx)
        super().alloc()
        if self.map_type == U.BPF_MAP_TYPE_PROG_ARRAY:
            g = self.gfp
            self._aux = self.kzalloc_account(self.sizes.bpf_array_aux, g.KERNEL | g.ZERO | (
                g.ACCOUNT if self.bprof.account else 0))

    def update_allocates(self) -> bool:
        return True        # perf event entries; fd lookups need the calling task

    def clear(self) -> None:
        """bpf_fd_array_map_clear(): drop every entry."""
        for i in list(self.ptrs):
            fd_put_ptr(self, self.ptrs.pop(i))

    def release_uref(self) -> None:
        """prog_array_map_clear() on the last user reference; perf event arrays drop
        their entries on release unless BPF_F_PRESERVE_ELEMS (simplified: on the last
        user reference rather than per closing file)."""
        if self.map_type == U.BPF_MAP_TYPE_PROG_ARRAY or (
                self.map_type == U.BPF_MAP_TYPE_PERF_EVENT_ARRAY
                and not self.map_flags & U.BPF_F_PRESERVE_ELEMS):
            self.clear()

    def free(self) -> None:
        """fd_array_map_free() after bpf_fd_array_map_clear(); the inner meta and aux."""
        self.clear()
        self.inner_meta = None
        super().free()       # array area (+ the recorded aux/meta via free_all)

    def lookup_elem(self, key: bytes | None) -> bytes:
        i = self._index(key)
        if self.map_type in (U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, U.BPF_MAP_TYPE_CGROUP_ARRAY):
            return fd_sys_lookup(self, None)
        ptr = self.ptrs.get(i) if i < self.max_entries else None
        if ptr is None:
            raise BpfError(errno.ENOENT, f"fd array lookup: slot {i} empty or >= max_entries")
        return fd_sys_lookup(self, ptr)

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Mirrors bpf_fd_array_map_update_elem(): flags must be BPF_ANY, index <
        max_entries (-E2BIG), the fd resolved by map_fd_get_ptr, the old entry put."""
        i = self._index(key)
        if flags != U.BPF_ANY:
            raise BpfError(errno.EINVAL, f"fd array update: flags {flags:#x} != BPF_ANY")
        if i >= self.max_entries:
            raise BpfError(errno.E2BIG, f"fd array update: index {i} >= max_entries "
                                        f"{self.max_entries}")
        ptr = fd_get_ptr(self, struct.unpack("<I", value[:4])[0])
        old = self.ptrs.get(i)
        self.ptrs[i] = ptr
        if old is not None:
            fd_put_ptr(self, old)

    def delete_elem(self, key: bytes | None) -> None:
        """Mirrors fd_array_map_delete_elem(): -E2BIG out of range, -ENOENT if empty."""
        i = self._index(key)
        if i >= self.max_entries:
            raise BpfError(errno.E2BIG, f"fd array delete: index {i} >= max_entries")
        old = self.ptrs.pop(i, None)
        if old is None:
            raise BpfError(errno.ENOENT, f"fd array delete: slot {i} empty")
        fd_put_ptr(self, old)

    def helper_update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        raise BpfError(errno.EINVAL, "programs cannot update fd arrays (verifier rejects)")

    def helper_lookup_elem(self, key: bytes | None) -> bytes | None:
        raise BpfError(errno.EINVAL, "programs use tail calls / perf output / "
                                     "bpf_map_lookup_elem on inner maps, not modelled")
