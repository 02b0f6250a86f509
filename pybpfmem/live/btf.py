"""A pure-Python reader (and tiny writer) of the BTF format.

Layout per the kernel's Documentation/bpf/btf.rst and include/uapi/linux/btf.h:
a header (magic 0xeB9F, version, flags, hdr_len, then offsets/lengths of the type and
string sections relative to the end of the header), the type section (records of a
12-byte ``struct btf_type`` followed by kind-specific data) and the string section
(NUL-terminated names, offset 0 is the empty string).  Type id 0 is ``void``; the
first record is id 1.  Split BTF (modules) is not handled: only base blobs.

``host_struct_sizes()`` reads /sys/kernel/btf/vmlinux and returns sizeof() of the
structs the model calibrates from.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

BTF_MAGIC = 0xEB9F

# enum btf_kind (include/uapi/linux/btf.h)
KINDS = {
    0: "UNKN", 1: "INT", 2: "PTR", 3: "ARRAY", 4: "STRUCT", 5: "UNION", 6: "ENUM",
    7: "FWD", 8: "TYPEDEF", 9: "VOLATILE", 10: "CONST", 11: "RESTRICT", 12: "FUNC",
    13: "FUNC_PROTO", 14: "VAR", 15: "DATASEC", 16: "FLOAT", 17: "DECL_TAG",
    18: "TYPE_TAG", 19: "ENUM64",
}
KIND_IDS = {v: k for k, v in KINDS.items()}
# Bytes of kind-specific data after struct btf_type: (fixed, per vlen item).
_EXTRA = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8),
          14: (4, 0), 15: (0, 12), 17: (4, 0), 19: (0, 12)}
_SIZED = {1, 4, 5, 6, 15, 16, 19}          # kinds whose 3rd word is a size
_MODIFIERS = {8, 9, 10, 11, 18}            # kinds that just refer to another type

HOST_STRUCTS = (
    "bpf_map", "bpf_array", "bpf_htab", "htab_elem", "bucket", "bpf_ringbuf_map",
    "bpf_ringbuf", "bpf_queue_stack", "bpf_bloom_filter", "lpm_trie_node", "lpm_trie",
    "bpf_stack_map", "stack_map_bucket", "bpf_dtab", "bpf_dtab_netdev", "bpf_cpu_map",
    "bpf_cpu_map_entry", "xsk_map", "bpf_stab", "bpf_shtab", "bpf_shtab_elem",
    "bpf_shtab_bucket", "reuseport_array", "bpf_cgroup_storage_map", "bpf_cgroup_storage",
    "bpf_local_storage_map", "bpf_local_storage_map_bucket", "bpf_local_storage_elem",
    "bpf_local_storage", "bpf_local_storage_data", "bpf_struct_ops_map", "bpf_prog",
    "bpf_prog_aux", "bpf_mem_alloc", "bpf_lru_node", "bpf_lru", "bpf_arena",
    "obj_cgroup", "mem_cgroup", "page_counter", "file", "bpf_insn_array",
)


@dataclass
class BtfType:
    id: int
    kind: int
    name: str
    vlen: int
    kind_flag: bool
    size_or_type: int
    members: list[tuple] = field(default_factory=list)   # kind-specific records
    extra: tuple = ()                                       # fixed kind data

    @property
    def kind_name(self) -> str:
        return KINDS.get(self.kind, f"KIND{self.kind}")


class BtfError(ValueError):
    pass


class Btf:
    """Parsed BTF blob."""

    def __init__(self, data: bytes, ptr_size: int = 8) -> None:
        if len(data) < 24:
            raise BtfError(f"BTF blob of {len(data)} bytes is shorter than the 24-byte header")
        magic_le = struct.unpack_from("<H", data, 0)[0]
        if magic_le == BTF_MAGIC:
            e = "<"
        elif struct.unpack_from(">H", data, 0)[0] == BTF_MAGIC:
            e = ">"
        else:
            raise BtfError(f"bad BTF magic {magic_le:#06x}")
        self.endian = e
        _, self.version, self.flags, hdr_len, t_off, t_len, s_off, s_len = \
            struct.unpack_from(e + "HBBIIIII", data, 0)
        if self.version != 1:
            raise BtfError(f"unsupported BTF version {self.version}")
        if hdr_len < 24 or hdr_len > len(data):
            raise BtfError(f"bad hdr_len {hdr_len}")
        base = hdr_len
        if base + t_off + t_len > len(data) or base + s_off + s_len > len(data):
            raise BtfError("type or string section runs past the end of the blob")
        self.ptr_size = ptr_size
        self._strs = data[base + s_off: base + s_off + s_len]
        if s_len and self._strs[-1:] != b"\0":
            raise BtfError("string section not NUL-terminated")
        self.types: list[BtfType | None] = [None]  # id 0 = void
        self._parse_types(data[base + t_off: base + t_off + t_len])
        self._by_name: dict[tuple[int, str], list[int]] | None = None

    # -- parsing ---------------------------------------------------------------------
    def string(self, off: int) -> str:
        if off >= len(self._strs) and off:
            raise BtfError(f"string offset {off} outside string section")
        end = self._strs.find(b"\0", off)
        return self._strs[off:end].decode("utf-8", "replace")

    def _parse_types(self, sec: bytes) -> None:
        e = self.endian
        hdr = struct.Struct(e + "III")
        u32 = struct.Struct(e + "I")
        three = struct.Struct(e + "III")
        two = struct.Struct(e + "Ii")
        pos, n = 0, len(sec)
        tid = 1
        while pos < n:
            if pos + 12 > n:
                raise BtfError(f"truncated btf_type at type offset {pos}")
            name_off, info, st = hdr.unpack_from(sec, pos)
            pos += 12
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            if kind not in KINDS or kind == 0:
                raise BtfError(f"type id {tid}: unknown kind {kind}")
            fixed, per = _EXTRA.get(kind, (0, 0))
            need = fixed + per * vlen
            if pos + need > n:
                raise BtfError(f"type id {tid}: kind data runs past the type section")
            extra: tuple = ()
            members: list[tuple] = []
            if fixed == 4:
                extra = u32.unpack_from(sec, pos)
            elif fixed == 12:
                extra = three.unpack_from(sec, pos)
            p = pos + fixed
            if per == 12:
                members = [three.unpack_from(sec, p + 12 * i) for i in range(vlen)]
            elif per == 8:
                members = [two.unpack_from(sec, p + 8 * i) for i in range(vlen)]
            pos += need
            self.types.append(BtfType(tid, kind, self.string(name_off) if name_off else "",
                                      vlen, bool(info >> 31), st, members, extra))
            tid += 1

    # -- queries ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.types) - 1

    def type(self, tid: int) -> BtfType:
        if not 0 < tid < len(self.types):
            raise BtfError(f"type id {tid} out of range 1..{len(self.types) - 1}")
        t = self.types[tid]
        assert t is not None
        return t

    def find(self, name: str, kind: str = "STRUCT") -> list[int]:
        if self._by_name is None:
            idx: dict[tuple[int, str], list[int]] = {}
            for t in self.types[1:]:
                if t is not None and t.name:
                    idx.setdefault((t.kind, t.name), []).append(t.id)
            self._by_name = idx
        return list(self._by_name.get((KIND_IDS[kind], name), []))

    def sizeof(self, tid: int, _depth: int = 0) -> int:
        """Byte size of a type (btf_resolve_size() semantics, without flexible arrays)."""
        if tid == 0:
            raise BtfError("sizeof(void)")
        if _depth > 64:
            raise BtfError(f"type chain too deep at id {tid}")
        t = self.type(tid)
        if t.kind in _SIZED:
            return t.size_or_type
        if t.kind == 2:
            return self.ptr_size
        if t.kind == 3:
            elem, _index, nelems = t.extra
            return nelems * self.sizeof(elem, _depth + 1)
        if t.kind in _MODIFIERS:
            return self.sizeof(t.size_or_type, _depth + 1)
        raise BtfError(f"type id {tid} ({t.kind_name}) has no size")

    def struct_size(self, name: str) -> int | None:
        ids = self.find(name, "STRUCT")
        return self.sizeof(ids[0]) if ids else None

    def member_offset(self, struct_name: str, member: str) -> int | None:
        """Byte offset of a named member (bitfield offsets rounded down)."""
        for tid in self.find(struct_name, "STRUCT"):
            t = self.type(tid)
            for name_off, _mt, off in t.members:
                if self.string(name_off) == member:
                    return (off & 0xFFFFFF if t.kind_flag else off) // 8
        return None


def load(path: str = "/sys/kernel/btf/vmlinux") -> Btf:
    with open(path, "rb") as f:
        return Btf(f.read())


def host_struct_sizes(path: str = "/sys/kernel/btf/vmlinux",
                      names: tuple[str, ...] = HOST_STRUCTS) -> dict[str, int]:
    """sizeof(struct X) on the running kernel for every X of ``names`` present in BTF."""
    b = load(path)
    out: dict[str, int] = {}
    for n in names:
        s = b.struct_size(n)
        if s is not None:
            out[n] = s
    return out


class BtfBuilder:
    """Builds small BTF blobs (for tests and for maps that need BTF key/value types)."""

    def __init__(self) -> None:
        self._types: list[bytes] = []
        self._strs = bytearray(b"\0")
        self._stroff: dict[str, int] = {"": 0}

    def _s(self, name: str) -> int:
        if name not in self._stroff:
            self._stroff[name] = len(self._strs)
            self._strs += name.encode() + b"\0"
        return self._stroff[name]

    def _add(self, name: str, kind: int, vlen: int, st: int, tail: bytes = b"",
             kflag: bool = False) -> int:
        info = (int(kflag) << 31) | (kind << 24) | vlen
        self._types.append(struct.pack("<III", self._s(name), info, st) + tail)
        return len(self._types)

    def int_(self, name: str, size: int, signed: bool = False, bits: int | None = None) -> int:
        enc = (1 if signed else 0) << 24 | (bits if bits is not None else size * 8)
        return self._add(name, 1, 0, size, struct.pack("<I", enc))

    def ptr(self, target: int) -> int:
        return self._add("", 2, 0, target)

    def array(self, elem: int, index: int, nelems: int) -> int:
        return self._add("", 3, 0, 0, struct.pack("<III", elem, index, nelems))

    def struct(self, name: str, size: int, members: list[tuple[str, int, int]],
               union: bool = False) -> int:
        """members: (name, type id, byte offset)."""
        tail = b"".join(struct.pack("<III", self._s(n), t, off * 8) for n, t, off in members)
        return self._add(name, 5 if union else 4, len(members), size, tail)

    def typedef(self, name: str, target: int) -> int:
        return self._add(name, 8, 0, target)

    def const(self, target: int) -> int:
        return self._add("", 10, 0, target)

    def enum(self, name: str, size: int, values: list[tuple[str, int]]) -> int:
        tail = b"".join(struct.pack("<Ii", self._s(n), v) for n, v in values)
        return self._add(name, 6, len(values), size, tail)

    def build(self) -> bytes:
        types = b"".join(self._types)
        strs = bytes(self._strs)
        hdr = struct.pack("<HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(types), len(types), len(strs))
        return hdr + types + strs
