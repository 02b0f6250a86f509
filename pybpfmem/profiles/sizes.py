"""Kernel struct sizes of a profile, loaded from ``structs/<profile>.json``.

Each profile's data file records ``sizeof(struct X)`` keyed by the struct name
and its provenance: ``"btf"`` (read from a real vmlinux BTF by
``tools/btf_sizes.py``) or ``"derived"`` (worked out from the struct layouts of
that release, each figure explained under ``"derived"``).  ``StructSizes`` holds
the figures the model uses; other structs a file may carry (the memcg and
fd-object structs) stay in the file until the model needs them.

A few fields are not ``sizeof`` of the struct they are named after, and so
never come from BTF as such: ``bpf_ringbuf_meta_pages`` (RINGBUF_NR_META_PAGES,
kernel/bpf/ringbuf.c), ``bpf_prog`` (``offsetof(struct bpf_prog, insns)``,
bpf_prog_size()) and ``bpf_storage_buffer`` (the header of a cgroup storage
buffer, ``struct bpf_storage_buffer`` without its data).
"""

from __future__ import annotations

import dataclasses
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

STRUCTS_DIR = Path(__file__).with_name("structs")
PROVENANCE_KINDS = ("btf", "derived")


@dataclass(frozen=True)
class StructSizes:
    """sizeof() of the kernel structs the model allocates (x86_64)."""

    bpf_map: int
    bpf_array: int
    bpf_array_aux: int
    bpf_htab: int
    htab_elem: int
    bucket: int
    bpf_ringbuf_map: int
    bpf_ringbuf_meta_pages: int     # RINGBUF_NR_META_PAGES (a page count)
    bpf_prog: int                   # offsetof(struct bpf_prog, insns)
    bpf_prog_aux: int
    bpf_prog_stats: int
    lpm_trie: int
    lpm_trie_node: int
    bpf_queue_stack: int
    bpf_stack_map: int
    stack_map_bucket: int
    bpf_dtab: int
    bpf_dtab_netdev: int
    bpf_cpu_map: int
    bpf_cpu_map_entry: int
    xdp_bulk_queue: int
    ptr_ring: int
    xsk_map: int
    xsk_map_node: int
    bpf_stab: int
    bpf_shtab: int
    bpf_shtab_bucket: int
    bpf_shtab_elem: int
    sk_psock_link: int
    sk_psock: int
    reuseport_array: int
    bpf_cgroup_storage_map: int
    bpf_cgroup_storage: int
    bpf_storage_buffer: int         # header of struct bpf_storage_buffer
    bpf_local_storage_map: int
    bpf_local_storage_map_bucket: int
    bpf_local_storage_elem: int
    bpf_local_storage: int
    bpf_struct_ops_map: int
    bpf_bloom_filter: int
    bpf_offloaded_map: int

    def with_overrides(self, **sizes: int) -> StructSizes:
        """A copy with some sizes replaced (unknown names raise TypeError)."""
        return dataclasses.replace(self, **sizes)

    def from_btf(self, path: str = "/sys/kernel/btf/vmlinux") -> StructSizes:
        """A copy with every struct found in the raw BTF file at `path` sized from it."""
        return self.with_overrides(**read_btf_struct_sizes(path, set(_FIELDS)))

    @classmethod
    def from_mapping(cls, sizes: Mapping[str, int], what: str) -> StructSizes:
        """The sizes of a data file's ``"sizes"`` object (every field required)."""
        missing = [n for n in _FIELDS if n not in sizes]
        if missing:
            raise ValueError(f"{what}: no size for {', '.join(missing)}")
        bad = [n for n, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0]
        if bad:
            raise ValueError(f"{what}: sizes must be non-negative ints: {', '.join(bad)}")
        return cls(**{n: sizes[n] for n in _FIELDS})


_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(StructSizes))


def load_struct_sizes(profile: str) -> StructSizes:
    """The StructSizes of ``structs/<profile>.json`` (ValueError if malformed)."""
    path = STRUCTS_DIR / f"{profile}.json"
    data = read_struct_file(path)
    if data["profile"] != profile:
        raise ValueError(f"{path}: written for profile {data['profile']!r}, not {profile!r}")
    return StructSizes.from_mapping(data["sizes"], str(path))


def read_struct_file(path: Path) -> dict[str, Any]:
    """A struct-size data file, checked for the keys the format requires."""
    data = json.loads(path.read_text())
    for key in ("profile", "provenance", "sizes"):
        if key not in data:
            raise ValueError(f"{path}: no {key!r}")
    kind = data["provenance"].get("kind")
    if kind not in PROVENANCE_KINDS:
        raise ValueError(f"{path}: provenance kind {kind!r} not in {PROVENANCE_KINDS}")
    if kind == "derived" and not data.get("derived"):
        raise ValueError(f"{path}: a derived file explains its figures under 'derived'")
    return data


# --- raw BTF (include/uapi/linux/btf.h) ---------------------------------------

_BTF_MAGIC = 0xEB9F
_KIND_STRUCT = 4


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
