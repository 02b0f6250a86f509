"""STRUCT_OPS maps (kernel/bpf/bpf_struct_ops.c).

A struct_ops map holds one value: a kernel ops table (e.g. tcp_congestion_ops)
whose members point to BPF programs.  Creation allocates the st_map (struct
bpf_struct_ops_map + the kernel value beyond struct bpf_struct_ops_value), the
user value copy (vt_size) and the links array (vlen * 8), each with
bpf_map_area_alloc; the trampoline image page comes from bpf_jit_alloc_exec()
(bpf_jit_limit, not memcg) and is not modelled.  The registered struct_ops types
are a table of estimates (value-type size and member count from the x86_64
layouts), keyed by the btf_vmlinux_value_type_id the model accepts.
Updates that wire programs into the members are not modelled (simplification):
an update stores the value once (-EBUSY afterwards), delete resets it.
"""

from __future__ import annotations

import errno
import struct
from typing import ClassVar

from . import uapi
from .caps import require_cap
from .errors import BpfError
from .map import BpfMap, register_map
from .uapi import ENOTSUPP


# btf_vmlinux_value_type_id -> (name, vt_size, vlen of the ops type); estimates
STRUCT_OPS_TYPES: dict[int, tuple[str, int, int]] = {
    1: ("tcp_congestion_ops", 256, 18),
    2: ("sched_ext_ops", 1152, 30),
}
BPF_STRUCT_OPS_VALUE_SIZE = 64     # sizeof(struct bpf_struct_ops_value): data is cache-line aligned


@register_map
class StructOpsMap(BpfMap):
    """BPF_MAP_TYPE_STRUCT_OPS (struct bpf_struct_ops_map)."""

    map_types: ClassVar[tuple[int, ...]] = (uapi.BPF_MAP_TYPE_STRUCT_OPS,)

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """bpf_struct_ops_map_alloc_check() + the checks of bpf_struct_ops_map_alloc()."""
        allowed = 0
        if ctx.bprof.struct_ops_link:
            allowed |= uapi.BPF_F_LINK
        if ctx.bprof.struct_ops_vtype_btf_obj_fd:
            allowed |= uapi.BPF_F_VTYPE_BTF_OBJ_FD
        if (attr.key_size != 4 or attr.max_entries != 1 or attr.map_flags & ~allowed
                or not attr.btf_vmlinux_value_type_id):
            raise BpfError(errno.EINVAL, f"STRUCT_OPS: need key_size 4 (got {attr.key_size}), "
                           f"max_entries 1 (got {attr.max_entries}), flags within {allowed:#x} "
                           f"(got {attr.map_flags:#x}) and btf_vmlinux_value_type_id")
        require_cap(ctx.task, "bpf", "STRUCT_OPS")
        t = STRUCT_OPS_TYPES.get(attr.btf_vmlinux_value_type_id)
        if t is None:
            raise BpfError(ENOTSUPP, f"STRUCT_OPS: value type id {attr.btf_vmlinux_value_type_id} "
                           f"is not a registered struct_ops (bpf_struct_ops_find_value)")
        if attr.value_size != t[1]:
            raise BpfError(errno.EINVAL, f"STRUCT_OPS: value_size {attr.value_size} != "
                           f"sizeof value of {t[0]} ({t[1]})")

    @property
    def _type(self) -> tuple[str, int, int]:
        return STRUCT_OPS_TYPES[self.attr.btf_vmlinux_value_type_id]

    def _st_map_size(self) -> int:
        return self.sizes.bpf_struct_ops_map + self._type[1] - BPF_STRUCT_OPS_VALUE_SIZE

    def legacy_cost(self) -> int:
        _, vt, vlen = self._type
        return self._st_map_size() + vt + vlen * 8

    def alloc(self) -> None:
        """Mirrors bpf_struct_ops_map_alloc(): st_map, uvalue, links (image not modelled)."""
        _, vt, vlen = self._type
        self.area_alloc(self._st_map_size())
        self.area_alloc(vt)
        self.area_alloc(vlen * 8)
        self._value: bytes | None = None

    def mem_usage(self) -> int:
        """bpf_struct_ops_map_mem_usage() as of v6.4: + one image page."""
        _, vt, vlen = self._type
        return self._st_map_size() + vt + vlen * 8 + self.system.page_size

    def _key0(self, key: bytes | None) -> None:
        if key is None or len(key) != 4 or struct.unpack("<I", key)[0] != 0:
            raise BpfError(errno.ENOENT if key is not None and len(key) == 4 else errno.EINVAL,
                           "STRUCT_OPS: the only key is 0")

    def lookup_elem(self, key: bytes | None) -> bytes:
        """bpf_struct_ops_map_sys_lookup_elem(): the value (zeros before the update)."""
        self._key0(key)
        return self._value if self._value is not None else bytes(self._type[1])

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """bpf_struct_ops_map_update_elem(): once only (-EBUSY when already in use)."""
        if flags:
            raise BpfError(errno.EINVAL, f"STRUCT_OPS: flags {flags:#x} must be 0")
        self._key0(key)
        if self._value is not None:
            raise BpfError(errno.EBUSY, "STRUCT_OPS: value already set (state not INIT)")
        self._value = bytes(value)

    def delete_elem(self, key: bytes | None) -> None:
        """bpf_struct_ops_map_delete_elem(): unregister; -ENOTSUPP for link-based maps."""
        if self.attr.map_flags & uapi.BPF_F_LINK:
            raise BpfError(ENOTSUPP, "STRUCT_OPS: BPF_F_LINK maps are detached through the link")
        self._key0(key)
        if self._value is None:
            raise BpfError(errno.EINVAL, "STRUCT_OPS: nothing registered")
        self._value = None

    def get_next_key(self, key: bytes | None) -> bytes:
        """bpf_struct_ops_map_get_next_key(): 0 then -ENOENT."""
        if key is not None and len(key) == 4 and struct.unpack("<I", key)[0] == 0:
            raise BpfError(errno.ENOENT, "STRUCT_OPS: last key")
        return struct.pack("<I", 0)
