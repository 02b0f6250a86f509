"""Kernel struct sizes per profile, with an override from host BTF.

The 6.18 figures for bpf_map, bpf_array, bpf_htab, htab_elem, bucket and
bpf_ringbuf_map are the calibration figures of the reference fact sheet
(x86_64, measured through fdinfo memlock on a 6.18 kernel with 2 possible
CPUs).  Every other figure is an estimate from reading the struct layouts of
that release (x86_64, no lockdep) and is marked "est." below; the v5.10/v5.11
bpf_map was cache-line aligned, so its derived structs are multiples of 64.
`StructSizes.from_btf()` replaces any figure with the size the running
kernel's BTF reports.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class StructSizes:
    bpf_map: int
    bpf_array: int
    bpf_array_aux: int          # est.
    bpf_htab: int
    htab_elem: int
    bucket: int
    bpf_ringbuf_map: int
    bpf_ringbuf_meta_pages: int  # RINGBUF_NR_META_PAGES
    bpf_prog: int               # offsetof(struct bpf_prog, insns) (est.)
    bpf_prog_aux: int           # est.
    bpf_prog_stats: int         # est.
    lpm_trie: int               # est.
    lpm_trie_node: int
    bpf_queue_stack: int        # est.
    bpf_stack_map: int          # est.
    bpf_dtab: int               # est.
    bpf_dtab_netdev: int        # est.
    bpf_cpu_map: int            # est.
    xsk_map: int                # est.
    xsk_map_node: int           # est.
    bpf_stab: int               # est.
    bpf_shtab: int              # est.
    bpf_shtab_bucket: int       # est.
    bpf_shtab_elem: int         # est.
    reuseport_array: int        # est.
    bpf_cgroup_storage_map: int  # est.
    bpf_cgroup_storage: int     # est.
    bpf_storage_buffer: int     # est.
    bpf_local_storage_map: int  # est.
    bpf_local_storage_map_bucket: int  # est.
    bpf_local_storage_elem: int  # est.
    bpf_local_storage: int      # est.
    bpf_struct_ops_map: int     # est.
    bpf_bloom_filter: int       # est.
    bpf_offloaded_map: int      # est.

    def with_overrides(self, **sizes: int) -> "StructSizes":
        """A copy with some sizes replaced (unknown names raise TypeError)."""
        return dataclasses.replace(self, **sizes)

    def from_btf(self, path: str = "/sys/kernel/btf/vmlinux") -> "StructSizes":
        """A copy with every struct found in the BTF file at `path` sized from it."""
        found = read_btf_struct_sizes(path, {f.name for f in dataclasses.fields(self)})
        return self.with_overrides(**found)


_V5 = StructSizes(
    bpf_map=256, bpf_array=272, bpf_array_aux=64, bpf_htab=576, htab_elem=48,
    bucket=16, bpf_ringbuf_map=320, bpf_ringbuf_meta_pages=3, bpf_prog=72,
    bpf_prog_aux=640, bpf_prog_stats=24, lpm_trie=320, lpm_trie_node=40,
    bpf_queue_stack=320, bpf_stack_map=320, bpf_dtab=320, bpf_dtab_netdev=64,
    bpf_cpu_map=320, xsk_map=320, xsk_map_node=24, bpf_stab=320, bpf_shtab=320,
    bpf_shtab_bucket=16, bpf_shtab_elem=40, reuseport_array=256,
    bpf_cgroup_storage_map=384, bpf_cgroup_storage=96, bpf_storage_buffer=16,
    bpf_local_storage_map=320, bpf_local_storage_map_bucket=16,
    bpf_local_storage_elem=96, bpf_local_storage=56, bpf_struct_ops_map=320,
    bpf_bloom_filter=320, bpf_offloaded_map=320,
)

_V6_18 = StructSizes(
    bpf_map=296, bpf_array=312, bpf_array_aux=56, bpf_htab=832, htab_elem=48,
    bucket=16, bpf_ringbuf_map=304, bpf_ringbuf_meta_pages=3, bpf_prog=72,
    bpf_prog_aux=1016, bpf_prog_stats=32, lpm_trie=400, lpm_trie_node=32,
    bpf_queue_stack=328, bpf_stack_map=344, bpf_dtab=344, bpf_dtab_netdev=64,
    bpf_cpu_map=304, xsk_map=312, xsk_map_node=24, bpf_stab=312, bpf_shtab=336,
    bpf_shtab_bucket=16, bpf_shtab_elem=40, reuseport_array=304,
    bpf_cgroup_storage_map=400, bpf_cgroup_storage=88, bpf_storage_buffer=16,
    bpf_local_storage_map=352, bpf_local_storage_map_bucket=16,
    bpf_local_storage_elem=96, bpf_local_storage=56, bpf_struct_ops_map=360,
    bpf_bloom_filter=312, bpf_offloaded_map=344,
)

PROFILE_SIZES: dict[str, StructSizes] = {"5.10": _V5, "5.11": _V5, "6.18": _V6_18}


def sizes_for(profile_name: str) -> StructSizes:
    """The struct sizes of a profile (the closest known release)."""
    if profile_name in PROFILE_SIZES:
        return PROFILE_SIZES[profile_name]
    major = profile_name.split(".")[0]
    return _V6_18 if major >= "6" else _V5


_BTF_MAGIC = 0xEB9F
_KIND_STRUCT = 4
# bytes of the extra data that follows `struct btf_type` per kind
_VLEN_SIZE = {1: 4, 3: 12, 4: 12, 5: 12, 6: 8, 13: 8, 14: 12, 15: 12, 17: 4, 19: 16}


def read_btf_struct_sizes(path: str, wanted: set[str]) -> dict[str, int]:
    """Sizes of named structs from a raw BTF blob (the first definition of each)."""
    with open(path, "rb") as f:
        data = f.read()
    magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
    if magic != _BTF_MAGIC:
        raise ValueError(f"{path}: not a BTF blob (magic {magic:#x})")
    type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
    types = data[hdr_len + type_off: hdr_len + type_off + type_len]
    strs = data[hdr_len + str_off: hdr_len + str_off + str_len]
    out: dict[str, int] = {}
    pos = 0
    while pos + 12 <= len(types):
        name_off, info, size = struct.unpack_from("<III", types, pos)
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        pos += 12
        if kind in (1, 17):          # INT / DECL_TAG style: one trailing u32
            pos += 4
        elif kind in (3,):           # ARRAY
            pos += 12
        elif kind in (4, 5):         # STRUCT / UNION
            if kind == _KIND_STRUCT:
                end = strs.index(b"\0", name_off)
                name = strs[name_off:end].decode()
                if name in wanted and name not in out:
                    out[name] = size
            pos += 12 * vlen
        elif kind == 6:              # ENUM
            pos += 8 * vlen
        elif kind == 13:             # FUNC_PROTO
            pos += 8 * vlen
        elif kind == 14:             # VAR
            pos += 4
        elif kind == 15:             # DATASEC
            pos += 12 * vlen
        elif kind == 19:             # ENUM64
            pos += 12 * vlen
    return out
