"""The BPF Type Format: the one BTF reader (and small writer) of pybpfmem.

Layout per the kernel's Documentation/bpf/btf.rst and include/uapi/linux/btf.h: a 24-byte
header (magic 0xeB9F, version 1, flags, hdr_len, then offset/length of the type and the
string section, both relative to the end of the header), the type section (records of a
12-byte ``struct btf_type`` followed by kind-specific data) and the string section
(NUL-terminated names; offset 0 is the empty string).  Type id 0 is ``void``; the first
record is id 1.  Both byte orders are read.  Split BTF (kernel modules) is not handled:
only base blobs.

Sources: a raw blob (``/sys/kernel/btf/vmlinux``) or the ``.BTF`` section of an ELF file
(a vmlinux image, a compiled BPF object), read with pyelftools.  Size and alignment
resolution follow libbpf (``btf__resolve_size()``, ``btf__align_of()``,
``skip_mods_and_typedefs()`` in tools/lib/bpf), with pointers of ``ptr_size`` bytes (8 on
x86_64 and on the bpf target).  Malformed input raises ``BtfError`` (a ``ValueError``):
never an IndexError or struct.error.

This module is a base layer: it imports nothing else from pybpfmem.
"""
from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from typing import Iterable, NamedTuple

BTF_MAGIC = 0xEB9F
VMLINUX = "/sys/kernel/btf/vmlinux"
MAX_RESOLVE_DEPTH = 32          # libbpf's bound on modifier/typedef/array chains

# enum btf_kind (include/uapi/linux/btf.h)
KINDS = {
    0: "UNKN", 1: "INT", 2: "PTR", 3: "ARRAY", 4: "STRUCT", 5: "UNION", 6: "ENUM",
    7: "FWD", 8: "TYPEDEF", 9: "VOLATILE", 10: "CONST", 11: "RESTRICT", 12: "FUNC",
    13: "FUNC_PROTO", 14: "VAR", 15: "DATASEC", 16: "FLOAT", 17: "DECL_TAG",
    18: "TYPE_TAG", 19: "ENUM64",
}
KIND_IDS = {v: k for k, v in KINDS.items()}
(INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC,
 FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64) = range(1, 20)

# enum btf_func_linkage / BTF_VAR_* linkage values
VAR_STATIC, VAR_GLOBAL_ALLOCATED, VAR_GLOBAL_EXTERN = 0, 1, 2
# struct btf_type.info bit 24 of INT encoding: BTF_INT_SIGNED / CHAR / BOOL
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4

# Bytes of kind-specific data after struct btf_type: (fixed, per vlen item).
_EXTRA = {INT: (4, 0), ARRAY: (12, 0), STRUCT: (0, 12), UNION: (0, 12), ENUM: (0, 8),
          FUNC_PROTO: (0, 8), VAR: (4, 0), DATASEC: (0, 12), DECL_TAG: (4, 0),
          ENUM64: (0, 12)}
_SIZED = {INT, STRUCT, UNION, ENUM, ENUM64, DATASEC, FLOAT}   # 3rd word is a size
_MODIFIERS = {VOLATILE, CONST, RESTRICT, TYPE_TAG}           # btf_is_mod()
_U32_MAX = 0xFFFFFFFF


class BtfError(ValueError):
    """Malformed or unsupported BTF, or a question the types cannot answer."""


class Member(NamedTuple):
    """A struct/union member: ``bit_offset`` from the start, ``bitfield_size`` 0 if none."""
    name: str
    type: int
    bit_offset: int
    bitfield_size: int

    @property
    def offset(self) -> int:
        """Byte offset (a bitfield's is rounded down)."""
        return self.bit_offset // 8


class EnumValue(NamedTuple):
    name: str
    value: int


class Param(NamedTuple):
    """A FUNC_PROTO parameter (type 0 with no name: the ``...`` of a variadic)."""
    name: str
    type: int


class VarSecinfo(NamedTuple):
    """A DATASEC entry: the VAR (or FUNC) type id, its offset and size in the section."""
    type: int
    offset: int
    size: int


@dataclass(frozen=True)
class BtfType:
    """One decoded type record.

    ``size_or_type`` is the raw third word: a byte size for INT/STRUCT/UNION/ENUM/ENUM64/
    DATASEC/FLOAT, a referenced type id for PTR/TYPEDEF/modifiers/FUNC/FUNC_PROTO (return
    type)/VAR/DECL_TAG.  ``items`` are the vlen records (Member, EnumValue, Param or
    VarSecinfo); ``extra`` the fixed kind data: INT (encoding, bit offset, bits), ARRAY
    (element type, index type, nelems), VAR (linkage,), DECL_TAG (component_idx,).
    """
    id: int
    kind: int
    name: str
    vlen: int
    kind_flag: bool
    size_or_type: int
    items: tuple = ()
    extra: tuple = ()

    @property
    def kind_name(self) -> str:
        return KINDS.get(self.kind, f"KIND{self.kind}")

    @property
    def members(self) -> tuple[Member, ...]:
        if self.kind not in (STRUCT, UNION):
            raise BtfError(f"type id {self.id} ({self.kind_name}) has no members")
        return self.items

    @property
    def linkage(self) -> int:
        """VAR: BTF_VAR_* linkage; FUNC: btf_func_linkage (kept in vlen)."""
        if self.kind == VAR:
            return self.extra[0]
        if self.kind == FUNC:
            return self.vlen
        raise BtfError(f"type id {self.id} ({self.kind_name}) has no linkage")


class Btf:
    """A parsed BTF blob.  ``Btf(data)`` for raw bytes; ``load(path)`` for files."""

    def __init__(self, data: bytes, ptr_size: int = 8) -> None:
        data = bytes(data)
        if len(data) < 24:
            raise BtfError(f"BTF blob of {len(data)} bytes is shorter than the 24-byte header")
        if struct.unpack_from("<H", data, 0)[0] == BTF_MAGIC:
            e = "<"
        elif struct.unpack_from(">H", data, 0)[0] == BTF_MAGIC:
            e = ">"
        else:
            raise BtfError(f"bad BTF magic {struct.unpack_from('<H', data, 0)[0]:#06x}")
        self.endian = e
        _, self.version, self.flags, hdr_len, t_off, t_len, s_off, s_len = \
            struct.unpack_from(e + "HBBIIIII", data, 0)
        # the header checks of btf_parse_hdr() / btf_check_sec_info() (kernel/bpf/btf.c)
        if self.version != 1:
            raise BtfError(f"unsupported BTF version {self.version}")
        if hdr_len < 24 or hdr_len > len(data):
            raise BtfError(f"bad hdr_len {hdr_len} (blob of {len(data)} bytes)")
        if t_off % 4:
            raise BtfError(f"unaligned type section offset {t_off}")
        body = len(data) - hdr_len
        if t_off + t_len > body or s_off + s_len > body:
            raise BtfError("type or string section runs past the end of the blob")
        if t_off < s_off + s_len and s_off < t_off + t_len:
            raise BtfError("type and string sections overlap")
        if ptr_size not in (4, 8):
            raise BtfError(f"pointer size {ptr_size} is neither 4 nor 8")
        self.ptr_size = ptr_size
        self._strs = data[hdr_len + s_off: hdr_len + s_off + s_len]
        if s_len and (self._strs[:1] != b"\0" or self._strs[-1:] != b"\0"):
            raise BtfError("string section must start and end with a NUL byte")
        self._sec = data[hdr_len + t_off: hdr_len + t_off + t_len]
        self._u32 = struct.Struct(e + "I")
        self._i32 = struct.Struct(e + "i")
        self._hdr = struct.Struct(e + "III")
        self._offs: list[int] = [0]          # id -> offset of its record; id 0 = void
        self._cache: dict[int, BtfType] = {}
        self._by_name: dict[str, list[int]] | None = None
        self._scan()

    # -- parsing ---------------------------------------------------------------------
    def _scan(self) -> None:
        """One pass over the record headers: where each type starts, and its length."""
        sec, hdr, offs = self._sec, self._hdr, self._offs
        pos, n = 0, len(sec)
        while pos < n:
            tid = len(offs)
            if pos + 12 > n:
                raise BtfError(f"type id {tid}: truncated btf_type at type offset {pos}")
            _name, info, _st = hdr.unpack_from(sec, pos)
            kind = (info >> 24) & 0x1F
            if kind == 0 or kind not in KINDS:
                raise BtfError(f"type id {tid}: unknown kind {kind}")
            fixed, per = _EXTRA.get(kind, (0, 0))
            vlen = info & 0xFFFF
            need = 12 + fixed + (per * vlen if per else 0)
            if pos + need > n:
                raise BtfError(f"type id {tid} ({KINDS[kind]}): kind data runs past "
                               "the type section")
            offs.append(pos)
            pos += need

    def string(self, off: int) -> str:
        """The NUL-terminated name at ``off`` in the string section."""
        if off == 0:
            return ""
        if off >= len(self._strs):
            raise BtfError(f"string offset {off} outside the string section "
                           f"({len(self._strs)} bytes)")
        end = self._strs.find(b"\0", off)
        return self._strs[off:end].decode("utf-8", "replace")

    def _decode(self, tid: int) -> BtfType:
        sec, pos = self._sec, self._offs[tid]
        name_off, info, st = self._hdr.unpack_from(sec, pos)
        kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
        p = pos + 12
        items: tuple = ()
        extra: tuple = ()
        s, u32 = self.string, self._u32
        if kind == INT:
            enc = u32.unpack_from(sec, p)[0]
            extra = ((enc >> 24) & 0x0F, (enc >> 16) & 0xFF, enc & 0xFF)
        elif kind == ARRAY:
            extra = self._hdr.unpack_from(sec, p)
        elif kind in (VAR, DECL_TAG):
            extra = (self._i32.unpack_from(sec, p)[0] if kind == DECL_TAG
                     else u32.unpack_from(sec, p)[0],)
        elif kind in (STRUCT, UNION):
            mem = []
            for name, mtype, off in self._hdr.iter_unpack(sec[p: p + 12 * vlen]):
                # kind_flag: the top 8 bits of offset are the bitfield size
                mem.append(Member(s(name), mtype, off & 0xFFFFFF if kflag else off,
                                  off >> 24 if kflag else 0))
            items = tuple(mem)
        elif kind == ENUM:
            fmt = self._i32 if kflag else u32   # kind_flag: signed values
            items = tuple(EnumValue(s(u32.unpack_from(sec, p + 8 * i)[0]),
                                    fmt.unpack_from(sec, p + 8 * i + 4)[0])
                          for i in range(vlen))
        elif kind == ENUM64:
            vals = []
            for name, lo, hi in self._hdr.iter_unpack(sec[p: p + 12 * vlen]):
                v = hi << 32 | lo
                if kflag and v >= 1 << 63:
                    v -= 1 << 64
                vals.append(EnumValue(s(name), v))
            items = tuple(vals)
        elif kind == FUNC_PROTO:
            items = tuple(Param(s(u32.unpack_from(sec, p + 8 * i)[0]),
                                u32.unpack_from(sec, p + 8 * i + 4)[0]) for i in range(vlen))
        elif kind == DATASEC:
            items = tuple(VarSecinfo(*v) for v in self._hdr.iter_unpack(sec[p: p + 12 * vlen]))
        return BtfType(tid, kind, s(name_off), vlen, kflag, st, items, extra)

    # -- queries ---------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of types (ids 1..len)."""
        return len(self._offs) - 1

    def type(self, tid: int) -> BtfType:
        """The type record of id ``tid`` (1..len); BtfError for void or out of range."""
        if not isinstance(tid, int) or not 0 < tid < len(self._offs):
            raise BtfError(f"type id {tid} out of range 1..{len(self._offs) - 1}")
        t = self._cache.get(tid)
        if t is None:
            t = self._cache[tid] = self._decode(tid)
        return t

    def types(self) -> Iterable[BtfType]:
        for tid in range(1, len(self._offs)):
            yield self.type(tid)

    def _names(self) -> dict[str, list[int]]:
        if self._by_name is None:
            idx: dict[str, list[int]] = {}
            sec, hdr, s = self._sec, self._hdr, self.string
            for tid in range(1, len(self._offs)):
                name_off = hdr.unpack_from(sec, self._offs[tid])[0]
                if name_off:
                    idx.setdefault(s(name_off), []).append(tid)
            self._by_name = idx
        return self._by_name

    def find(self, name: str, kind: str | None = "STRUCT") -> list[int]:
        """Ids of the types called ``name``, of ``kind`` (a KINDS name) or of any kind."""
        ids = self._names().get(name, [])
        if kind is None:
            return list(ids)
        if kind not in KIND_IDS:
            raise BtfError(f"unknown BTF kind {kind!r}")
        k = KIND_IDS[kind]
        return [i for i in ids if self.type(i).kind == k]

    def first_of_kind(self, kind: str = "STRUCT") -> dict[str, int]:
        """name -> id of the first type of ``kind`` with that name, for every name."""
        out: dict[str, int] = {}
        for name, ids in self._names().items():
            for tid in ids:
                if self.type(tid).kind_name == kind:
                    out[name] = tid
                    break
        return out

    def skip_mods_and_typedefs(self, tid: int) -> int:
        """The id under any const/volatile/restrict/type_tag/typedef (libbpf's helper)."""
        for _ in range(MAX_RESOLVE_DEPTH):
            if tid == 0:
                return 0
            t = self.type(tid)
            if t.kind not in _MODIFIERS and t.kind != TYPEDEF:
                return tid
            tid = t.size_or_type
        raise BtfError(f"modifier/typedef chain deeper than {MAX_RESOLVE_DEPTH}")

    def sizeof(self, tid: int) -> int:
        """Byte size of a type, as libbpf's btf__resolve_size().

        Follows typedefs, modifiers, VARs and DECL_TAGs, multiplies array dimensions;
        void, FWD, FUNC and FUNC_PROTO have no size (BtfError), nor has a total above
        U32_MAX (libbpf's E2BIG).
        """
        nelems = 1
        for _ in range(MAX_RESOLVE_DEPTH):
            t = self.type(tid) if tid else None
            if t is None or t.kind not in _SIZED | _MODIFIERS | {PTR, TYPEDEF, VAR, DECL_TAG,
                                                                 ARRAY}:
                raise BtfError(f"type id {tid} ({self._kind_of(tid)}) has no size")
            if t.kind == ARRAY:
                nelems *= t.extra[2]
                if nelems > _U32_MAX:
                    raise BtfError(f"type id {tid}: array of more than {_U32_MAX} elements")
                tid = t.extra[0]
            elif t.kind in _SIZED or t.kind == PTR:
                total = nelems * (self.ptr_size if t.kind == PTR else t.size_or_type)
                if total > _U32_MAX:
                    raise BtfError(f"type id {tid}: size {total} above {_U32_MAX}")
                return total
            else:                     # modifiers, typedefs, VARs, DECL_TAGs
                tid = t.size_or_type
        raise BtfError(f"type chain deeper than {MAX_RESOLVE_DEPTH} at type id {tid}")

    def align_of(self, tid: int, _depth: int = 0) -> int:
        """Alignment of a type, as libbpf's btf__align_of() (1 for packed structs)."""
        if _depth > MAX_RESOLVE_DEPTH:
            raise BtfError(f"type id {tid}: type nesting deeper than {MAX_RESOLVE_DEPTH}")
        t = self.type(tid)
        if t.kind in (INT, ENUM, ENUM64, FLOAT):
            if t.size_or_type == 0:
                raise BtfError(f"type id {tid} ({t.kind_name}) of size 0 has no alignment")
            return min(self.ptr_size, t.size_or_type)
        if t.kind == PTR:
            return self.ptr_size
        if t.kind in _MODIFIERS or t.kind == TYPEDEF:
            return self.align_of(t.size_or_type, _depth + 1)
        if t.kind == ARRAY:
            return self.align_of(t.extra[0], _depth + 1)
        if t.kind in (STRUCT, UNION):
            max_align = 1
            for m in t.items:
                a = self.align_of(m.type, _depth + 1)
                max_align = max(max_align, a)
                if m.bitfield_size == 0 and m.bit_offset % (8 * a):
                    return 1          # a misaligned member: the struct is packed
            return 1 if t.size_or_type % max_align else max_align
        raise BtfError(f"type id {tid} ({t.kind_name}) has no alignment")

    def _kind_of(self, tid: int) -> str:
        return "void" if tid == 0 else self.type(tid).kind_name

    def type_name(self, tid: int, _depth: int = 0) -> str:
        """A C-like spelling of a type, for messages: ``struct foo``, ``__u32[4]``..."""
        if tid == 0:
            return "void"
        if _depth > MAX_RESOLVE_DEPTH:
            return "..."
        t = self.type(tid)
        if t.kind in (STRUCT, UNION, ENUM, ENUM64, FWD):
            tag = {STRUCT: "struct", UNION: "union", FWD: "union" if t.kind_flag
                   else "struct"}.get(t.kind, "enum")
            return f"{tag} {t.name or '(anon)'}"
        if t.kind == PTR:
            return self.type_name(t.size_or_type, _depth + 1) + " *"
        if t.kind == ARRAY:           # C order: outermost dimension first
            dims = ""
            while t.kind == ARRAY and _depth <= MAX_RESOLVE_DEPTH:
                dims += f"[{t.extra[2]}]"
                _depth += 1
                if not t.extra[0]:
                    return "void" + dims
                t = self.type(t.extra[0])
            return self.type_name(t.id, _depth + 1) + dims
        if t.kind in (CONST, VOLATILE, RESTRICT):
            return f"{t.kind_name.lower()} {self.type_name(t.size_or_type, _depth + 1)}"
        if t.kind in (TYPE_TAG, DECL_TAG, VAR):
            return self.type_name(t.size_or_type, _depth + 1)
        if t.kind == FUNC_PROTO:
            return self.type_name(t.size_or_type, _depth + 1) + " (*)(...)"
        return t.name or f"({t.kind_name.lower()})"

    def struct_size(self, name: str) -> int | None:
        """sizeof(struct name) of the first such struct, None if there is none."""
        ids = self.find(name, "STRUCT")
        return self.sizeof(ids[0]) if ids else None

    def member_offset(self, struct_name: str, member: str) -> int | None:
        """Byte offset of a named member of the first struct ``struct_name`` that has it."""
        for tid in self.find(struct_name, "STRUCT"):
            for m in self.type(tid).members:
                if m.name == member:
                    return m.offset
        return None


def offsetof(btf: Btf, tid: int, member: str) -> int | None:
    """Byte offset of ``member`` in the struct/union ``tid``, looking through anonymous
    struct/union members as C's offsetof does (None if it has no such member)."""
    for m in btf.type(tid).members:
        if m.name == member:
            return m.offset
        if not m.name:
            inner = btf.skip_mods_and_typedefs(m.type)
            if inner and btf.type(inner).kind_name in ("STRUCT", "UNION"):
                sub = offsetof(btf, inner, member)
                if sub is not None:
                    return m.offset + sub
    return None


def parse_elf_btf(data: bytes, what: str = "ELF file") -> Btf:
    """The BTF of the ``.BTF`` section of an ELF image (pointer size from its ELF class)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    try:
        elf = ELFFile(io.BytesIO(data))
        sec = elf.get_section_by_name(".BTF")
        if sec is None:
            raise BtfError(f"{what}: no .BTF section (built without BTF?)")
        blob = sec.data()
        ptr_size = elf.elfclass // 8
    except BtfError:
        raise
    except (ELFError, struct.error, ValueError, IndexError, KeyError, EOFError,
            OverflowError) as e:
        raise BtfError(f"{what}: unreadable ELF: {e}") from e
    try:
        return Btf(blob, ptr_size)
    except BtfError as e:
        raise BtfError(f"{what}: .BTF: {e}") from e


def load(path: str | os.PathLike[str] = VMLINUX) -> Btf:
    """BTF from a file: a raw blob (``/sys/kernel/btf/vmlinux``) or an ELF file's ``.BTF``."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"\x7fELF":
        return parse_elf_btf(data, str(path))
    try:
        return Btf(data)
    except BtfError as e:
        raise BtfError(f"{path}: {e}") from e


def read_struct_sizes(path: str | os.PathLike[str] = VMLINUX,
                      names: Iterable[str] | None = None) -> dict[str, int]:
    """sizeof(struct X) for every X of ``names`` found in the BTF file at ``path``.

    ``path`` is a raw blob or an ELF file with a ``.BTF`` section; the first definition
    of each name counts (vmlinux BTF has one).  ``names=None`` sizes every named struct.
    """
    b = load(path)
    if names is None:
        return {n: b.sizeof(tid) for n, tid in b.first_of_kind("STRUCT").items()}
    out: dict[str, int] = {}
    for n in names:
        ids = b.find(n, "STRUCT")
        if ids:
            out[n] = b.sizeof(ids[0])
    return out


class BtfBuilder:
    """Builds small little-endian BTF blobs (tests, and maps that need BTF types)."""

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

    def int_(self, name: str, size: int, signed: bool = False, bits: int | None = None,
             encoding: int | None = None) -> int:
        enc = INT_SIGNED if signed else 0 if encoding is None else encoding
        return self._add(name, INT, 0, size,
                         struct.pack("<I", enc << 24 | (bits if bits is not None else size * 8)))

    def float_(self, name: str, size: int) -> int:
        return self._add(name, FLOAT, 0, size)

    def ptr(self, target: int) -> int:
        return self._add("", PTR, 0, target)

    def array(self, elem: int, index: int, nelems: int) -> int:
        return self._add("", ARRAY, 0, 0, struct.pack("<III", elem, index, nelems))

    def struct(self, name: str, size: int, members: list[tuple],
               union: bool = False) -> int:
        """members: (name, type id, byte offset) or (name, type id, bit offset, bits)."""
        kflag = any(len(m) == 4 for m in members)
        tail = b""
        for m in members:
            off = m[2] * 8 if len(m) == 3 else m[2] | m[3] << 24
            tail += struct.pack("<III", self._s(m[0]), m[1], off)
        return self._add(name, UNION if union else STRUCT, len(members), size, tail, kflag)

    def fwd(self, name: str, union: bool = False) -> int:
        return self._add(name, FWD, 0, 0, kflag=union)

    def typedef(self, name: str, target: int) -> int:
        return self._add(name, TYPEDEF, 0, target)

    def const(self, target: int) -> int:
        return self._add("", CONST, 0, target)

    def volatile(self, target: int) -> int:
        return self._add("", VOLATILE, 0, target)

    def restrict(self, target: int) -> int:
        return self._add("", RESTRICT, 0, target)

    def type_tag(self, name: str, target: int) -> int:
        return self._add(name, TYPE_TAG, 0, target)

    def decl_tag(self, name: str, target: int, component_idx: int = -1) -> int:
        return self._add(name, DECL_TAG, 0, target, struct.pack("<i", component_idx))

    def enum(self, name: str, size: int, values: list[tuple[str, int]],
             signed: bool = False) -> int:
        fmt = "<Ii" if signed else "<II"
        tail = b"".join(struct.pack(fmt, self._s(n), v) for n, v in values)
        return self._add(name, ENUM, len(values), size, tail, kflag=signed)

    def enum64(self, name: str, size: int, values: list[tuple[str, int]],
               signed: bool = False) -> int:
        tail = b"".join(struct.pack("<III", self._s(n), v & _U32_MAX, (v >> 32) & _U32_MAX)
                        for n, v in values)
        return self._add(name, ENUM64, len(values), size, tail, kflag=signed)

    def func_proto(self, ret: int, params: list[tuple[str, int]]) -> int:
        tail = b"".join(struct.pack("<II", self._s(n), t) for n, t in params)
        return self._add("", FUNC_PROTO, len(params), ret, tail)

    def func(self, name: str, proto: int, linkage: int = 1) -> int:
        return self._add(name, FUNC, linkage, proto)

    def var(self, name: str, target: int, linkage: int = VAR_GLOBAL_ALLOCATED) -> int:
        return self._add(name, VAR, 0, target, struct.pack("<I", linkage))

    def datasec(self, name: str, size: int, vars: list[tuple[int, int, int]]) -> int:
        """vars: (VAR type id, offset, size)."""
        tail = b"".join(struct.pack("<III", *v) for v in vars)
        return self._add(name, DATASEC, len(vars), size, tail)

    def build(self) -> bytes:
        types = b"".join(self._types)
        strs = bytes(self._strs)
        hdr = struct.pack("<HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(types), len(types), len(strs))
        return hdr + types + strs
