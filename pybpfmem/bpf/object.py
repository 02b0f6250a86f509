"""The maps of a compiled BPF object, as libbpf creates them (user-space side of the BPF layer).

A model of what libbpf (tools/lib/bpf/libbpf.c) decides about maps between
``bpf_object__open()`` and the ``BPF_MAP_CREATE`` calls of ``bpf_object__load()``:

``read_object(path)``
    ``bpf_object__open()``: every map the object declares, in libbpf's order:
    legacy ``maps`` section definitions (``struct bpf_map_def``, read as libbpf < 1.0 did:
    ``bpf_object__init_user_maps()``; libbpf 1.0 refuses the section), BTF-defined maps of
    ``.maps`` (``bpf_object__init_user_btf_maps()``, ``parse_btf_map_def()``), one ARRAY per
    global-data section (``bpf_object__init_global_data_maps()``), the ``.kconfig`` map
    (``bpf_object__init_kconfig_map()``) and the ``.struct_ops`` maps
    (``init_struct_ops_maps()``).  Ring buffer sizes are rounded as ``fill_map_from_def()``
    does; ``values`` initialisers of map-in-map and program arrays are read from ``.rel.maps``
    (``bpf_object__collect_map_relos()``).
``set_max_entries(maps, name, n)``, ``set_autocreate(...)``, ``apply_overrides(maps, ["NAME.max_entries=N"])``
    the ``bpf_map__set_*()`` calls a loader makes between open and load.
``maps_to_create(maps, possible_cpus=N, vmlinux=btf)``
    ``bpf_object__create_maps()``: the maps created, as created: ``autocreate`` false ones left
    out, PERF_EVENT_ARRAY ``max_entries`` 0 set to the number of possible CPUs
    (``map_set_def_max_entries()``), struct_ops value sizes from the kernel's
    ``struct bpf_struct_ops_<name>`` (``bpf_map__init_kern_struct_ops()``) and the BTF type ids
    libbpf does not pass for some map types.

Modelled after libbpf at commit f7081a6baf3f ("Update LGPL 2.1 license text", 2026); the
global-data BPF_F_MMAPABLE rule is libbpf's since 1.1 (3cd45b66, 2022: only sections with
a non-hidden global variable are mmapable).  Simplifications: the kernel-feature probes are
taken as answered yes (global data and mmapable arrays exist on every modelled kernel, so
``bpf_object__sanitize_maps()`` changes nothing), pinned-map reuse is not modelled (a pinned
map that already exists is not created again: see ``ObjectMap.pin_path``), arena maps take
their spec from ``.maps`` (the ``.addr_space.1`` data only fills them), the legacy
``____btf_map_<name>`` key/value annotation is not read, and ``.kconfig`` values are not
needed (only their layout, which sets the map's size).

Every malformed or unsupported object raises ``ValueError`` naming the file and the section.
"""
from __future__ import annotations

import dataclasses
import io
import os
import struct
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .. import btf as _btf
from . import uapi

LIBBPF_PIN_NONE, LIBBPF_PIN_BY_NAME = 0, 1
BPF_FS_DEFAULT_PATH = "/sys/fs/bpf"
BPF_OBJ_NAME_LEN = 16
_U32_MAX = 0xFFFFFFFF
_U64_MAX = (1 << 64) - 1
_EM_BPF = 247

ORIGIN_BTF = "btf"                  # a BTF-defined map of SEC(".maps")
ORIGIN_LEGACY = "legacy"            # a struct bpf_map_def of SEC("maps")
ORIGIN_GLOBAL_DATA = "global_data"  # .bss/.data*/.rodata*/.kconfig, created by libbpf
ORIGIN_STRUCT_OPS = "struct_ops"    # a variable of SEC(".struct_ops[.link]")

_MAP_IN_MAP = (uapi.BPF_MAP_TYPE_ARRAY_OF_MAPS, uapi.BPF_MAP_TYPE_HASH_OF_MAPS)
_RINGBUFS = (uapi.BPF_MAP_TYPE_RINGBUF, uapi.BPF_MAP_TYPE_USER_RINGBUF)
# bpf_object__create_map(): map types created without BTF key/value type ids
_NO_BTF_IDS = (
    uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY, uapi.BPF_MAP_TYPE_CGROUP_ARRAY,
    uapi.BPF_MAP_TYPE_STACK_TRACE, uapi.BPF_MAP_TYPE_ARRAY_OF_MAPS,
    uapi.BPF_MAP_TYPE_HASH_OF_MAPS, uapi.BPF_MAP_TYPE_DEVMAP, uapi.BPF_MAP_TYPE_DEVMAP_HASH,
    uapi.BPF_MAP_TYPE_CPUMAP, uapi.BPF_MAP_TYPE_XSKMAP, uapi.BPF_MAP_TYPE_SOCKMAP,
    uapi.BPF_MAP_TYPE_SOCKHASH, uapi.BPF_MAP_TYPE_QUEUE, uapi.BPF_MAP_TYPE_STACK,
    uapi.BPF_MAP_TYPE_ARENA,
)
_STRUCT_OPS_SECS = (".struct_ops", ".struct_ops.link", "?.struct_ops", "?.struct_ops.link")
_ARENA_SEC = ".addr_space.1"


@dataclass
class ObjectMap:
    """One map of a BPF object: the ``struct bpf_map`` fields that decide its creation.

    ``origin`` is one of ``ORIGIN_*``; ``section`` the ELF section that declared it (for a
    global-data map, the data section: libbpf's ``real_name``).  ``inner`` is the inner-map
    template of a map-in-map (named ``NAME.inner``, created before the outer map and freed
    right after it).  ``init_slots`` are the ``values`` initialisers, (slot, name) pairs
    naming a map of the object (map-in-map) or a program (PROG_ARRAY), written at load.
    ``btf_key_type_id``/``btf_value_type_id`` are what libbpf passes to BPF_MAP_CREATE
    (ids in the object's BTF); ``key_type``/``value_type`` spell them in C.
    """
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0
    map_extra: int = 0
    numa_node: int = 0
    pinning: int = LIBBPF_PIN_NONE
    origin: str = ORIGIN_BTF
    section: str = ".maps"
    autocreate: bool = True
    inner: ObjectMap | None = None
    init_slots: tuple[tuple[int, str], ...] = ()
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    key_type: str = ""
    value_type: str = ""
    st_ops_type: str = ""          # struct_ops: the BPF-side struct (e.g. tcp_congestion_ops)

    @property
    def type_name(self) -> str:
        """The map type without its prefix, e.g. ``LRU_HASH``."""
        return uapi.MAP_TYPE_NAMES.get(self.type, f"TYPE_{self.type}")

    @property
    def pin_path(self) -> str | None:
        """Where libbpf pins the map (``build_map_pin_path()``), None if not pinned."""
        return f"{BPF_FS_DEFAULT_PATH}/{self.name}" if self.pinning == LIBBPF_PIN_BY_NAME else None

    def as_dict(self) -> dict[str, Any]:
        """Plain data (the inner map nested as a dict), e.g. for JSON."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["type"] = self.type_name
        d["init_slots"] = [list(s) for s in self.init_slots]
        d["inner"] = self.inner.as_dict() if self.inner is not None else None
        d["pin_path"] = self.pin_path
        return d


# --------------------------------------------------------------------------- open

def read_object(path: str | os.PathLike[str], *, page_size: int = 4096) -> list[ObjectMap]:
    """The maps of the BPF object file at ``path`` after ``bpf_object__open()``.

    ``page_size`` is the target's page size, which ring buffer sizes are rounded to.
    Raises ``OSError`` if the file cannot be read and ``ValueError`` (naming the file and
    section) if it is not a BPF object or libbpf would refuse its maps.
    """
    _check_page_size(page_size)
    with open(path, "rb") as f:
        data = f.read()
    return _Reader(data, os.fspath(path), page_size).read()


def _check_page_size(page_size: int) -> None:
    if not isinstance(page_size, int) or page_size < 1 or page_size & (page_size - 1):
        raise ValueError(f"page_size {page_size!r} is not a power of two")


def adjust_ringbuf_sz(size: int, page_size: int = 4096) -> int:
    """libbpf's adjust_ringbuf_sz(): a size the kernel accepts for a ring buffer.

    0 stays 0 (the kernel then refuses it); a power-of-two number of pages is kept; any
    other size becomes the smallest power-of-two number of pages above it, if that fits a
    u32 (else it is kept and the kernel refuses it).
    """
    if size == 0:
        return 0
    if size % page_size == 0 and _is_pow2(size // page_size):
        return size
    mul = 1
    while mul <= _U32_MAX // page_size:
        if mul * page_size > size:
            return mul * page_size
        mul <<= 1
    return size


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _essential_name(name: str) -> str:
    """bpf_core_essential_name_len(): a CO-RE name without its ``___flavor`` suffix."""
    for i in range(len(name) - 5, -1, -1):
        s = name[i:i + 5]
        if s[0] != "_" and s[1:4] == "___" and s[4] != "_":
            return name[:i + 1]
    return name


class _Reader:
    """One bpf_object__open(): ELF collection, externs, BTF fix-ups, then the maps."""

    def __init__(self, data: bytes, path: str, page_size: int) -> None:
        self.data, self.path, self.page_size = data, path, page_size
        self.maps: list[ObjectMap] = []
        self.btf: _btf.Btf | None = None
        self.kcfg_size, self.has_kcfg = 0, False
        self.kcfg_vars: set[int] = set()        # .kconfig VAR ids that libbpf makes global
        self.datasecs: dict[str, tuple[int, list[tuple[int, int, int, int]]]] = {}
        self.btf_maps: dict[str, tuple[ObjectMap, int, int]] = {}   # name -> (map, off, size)

    def err(self, section: str, msg: str) -> ValueError:
        return ValueError(f"{self.path}: section {section}: {msg}")

    # -- ELF ---------------------------------------------------------------------
    def read(self) -> list[ObjectMap]:
        from elftools.common.exceptions import ELFError
        try:
            self._open_elf()
            self._collect_externs()
            self._fixup_datasecs()
            self._init_legacy_maps()
            self._init_btf_maps()
            self._init_global_data_maps()
            self._init_kconfig_map()
            self._init_struct_ops_maps()
            self._collect_map_relos()
        except _btf.BtfError as e:
            raise ValueError(f"{self.path}: section .BTF: {e}") from e
        except (ELFError, struct.error, IndexError, KeyError, EOFError, OverflowError) as e:
            raise ValueError(f"{self.path}: malformed ELF: {e}") from e
        return self.maps

    def _open_elf(self) -> None:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
        if self.data[:4] != b"\x7fELF":
            raise ValueError(f"{self.path}: not an ELF file")
        try:
            elf = ELFFile(io.BytesIO(self.data))
            hdr = elf.header
        except (ELFError, struct.error, ValueError, EOFError, OverflowError) as e:
            raise ValueError(f"{self.path}: malformed ELF header: {e}") from e
        # bpf_object__elf_init(): a relocatable object for EM_BPF (old LLVM wrote EM_NONE)
        if hdr["e_type"] != "ET_REL" or hdr["e_machine"] not in ("EM_BPF", _EM_BPF, "EM_NONE"):
            raise ValueError(f"{self.path}: not a BPF object file (e_type {hdr['e_type']}, "
                             f"e_machine {hdr['e_machine']}; want ET_REL, EM_BPF)")
        self.endian = "<" if elf.little_endian else ">"
        self.secs: dict[str, Any] = {}       # name -> section (first of that name)
        self.sec_by_idx: list[Any] = []
        symtab = None
        for idx, sec in enumerate(elf.iter_sections()):
            # elf_sec_data() (libelf) refuses a section that runs past the file
            if sec["sh_type"] != "SHT_NOBITS" and sec["sh_offset"] + sec["sh_size"] > len(self.data):
                raise self.err(sec.name or f"#{idx}", "runs past the end of the file")
            self.sec_by_idx.append(sec)
            self.secs.setdefault(sec.name, sec)
            if sec["sh_type"] == "SHT_SYMTAB":
                if symtab is not None:
                    raise ValueError(f"{self.path}: multiple symbol tables")
                symtab = sec
        if symtab is None:
            raise ValueError(f"{self.path}: no symbol table (stripped object file?)")
        if symtab["sh_entsize"] != 24:
            raise self.err(symtab.name, f"symbol entry size {symtab['sh_entsize']}, not 24")
        self.symbols = list(symtab.iter_symbols())
        if ".BTF" in self.secs:
            btf_sec = self.secs[".BTF"]
            if btf_sec["sh_type"] != "SHT_PROGBITS":
                raise self.err(".BTF", "not PROGBITS")
            try:
                self.btf = _btf.Btf(btf_sec.data(), 8)
            except _btf.BtfError as e:
                raise self.err(".BTF", str(e)) from e

    def _sec_idx(self, name: str) -> int:
        for i, s in enumerate(self.sec_by_idx):
            if s.name == name:
                return i
        return -1

    def _sec_size(self, name: str) -> int | None:
        sec = self.secs.get(name)
        return None if sec is None else sec["sh_size"]

    @staticmethod
    def _is_progbits_data(sec: Any) -> bool:
        return (sec["sh_type"] == "SHT_PROGBITS" and sec["sh_size"] > 0
                and not sec["sh_flags"] & 0x4)          # SHF_EXECINSTR

    def _find_var_sym(self, name: str) -> Any:
        """find_elf_var_sym(): the global or weak STT_OBJECT symbol called ``name``."""
        for sym in self.symbols:
            if (sym["st_info"]["type"] == "STT_OBJECT"
                    and sym["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")
                    and sym.name == name):
                return sym
        return None

    # -- externs (bpf_object__collect_externs) -----------------------------------
    def _collect_externs(self) -> None:
        """The .kconfig layout: sorted by (alignment desc, size asc, name), packed."""
        kcfg = []
        for sym in self.symbols:
            if not (sym["st_shndx"] == "SHN_UNDEF" and sym["st_info"]["type"] == "STT_NOTYPE"
                    and sym["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK") and sym.name):
                continue
            b = self.btf
            if b is None:
                raise self.err(".BTF", f"no BTF for extern '{sym.name}'")
            tid = self._find_extern_btf_id(sym.name)
            sec_name = self._extern_datasec(tid)
            t = b.type(tid)
            if sec_name == ".kconfig":
                if t.kind == _btf.FUNC:
                    raise self.err(".kconfig", f"extern function {sym.name} is unsupported")
                size = b.sizeof(t.size_or_type)
                align = b.align_of(t.size_or_type)
                if not self._kcfg_type_ok(t.size_or_type):
                    raise self.err(".kconfig", f"extern (kcfg) '{sym.name}': type is unsupported")
                kcfg.append((-align, size, t.name, tid))
                self.kcfg_vars.add(tid)
            elif sec_name != ".ksyms":
                raise self.err(sec_name, f"unrecognized extern section for '{sym.name}'")
        off = 0
        for neg_align, size, _name, _tid in sorted(kcfg):
            align = -neg_align
            off = (off + align - 1) // align * align + size     # roundup(off, align) + size
        self.kcfg_size = off
        self.has_kcfg = bool(kcfg)

    def _find_extern_btf_id(self, name: str) -> int:
        """find_extern_btf_id(): the first VAR or FUNC of that name; it must be extern."""
        assert self.btf is not None
        for tid in self.btf.find(name, None):
            t = self.btf.type(tid)
            if t.kind == _btf.VAR:
                if t.linkage != _btf.VAR_GLOBAL_EXTERN:
                    break
                return tid
            if t.kind == _btf.FUNC:
                if t.linkage != 2:                          # BTF_FUNC_EXTERN
                    break
                return tid
        raise self.err(".BTF", f"no extern BTF VAR or FUNC for extern '{name}'")

    def _extern_datasec(self, tid: int) -> str:
        assert self.btf is not None
        for t in self.btf.types():
            if t.kind == _btf.DATASEC and any(v.type == tid for v in t.items):
                return t.name
        raise self.err(".BTF", f"no DATASEC holds extern type [{tid}]")

    def _kcfg_type_ok(self, tid: int, depth: int = 0) -> bool:
        """find_kcfg_type() != KCFG_UNKNOWN: bool, char, 1/2/4/8-byte ints, tristate, char[]."""
        assert self.btf is not None
        t = self.btf.type(self.btf.skip_mods_and_typedefs(tid))
        if t.kind == _btf.INT:
            if t.extra[0] & _btf.INT_BOOL:
                return t.size_or_type == 1
            return t.size_or_type in (1, 2, 4, 8)
        if t.kind in (_btf.ENUM, _btf.ENUM64):
            return t.name == "libbpf_tristate" and (t.kind == _btf.ENUM64 or t.size_or_type == 4)
        if t.kind == _btf.ARRAY and depth == 0:
            elem = self.btf.type(self.btf.skip_mods_and_typedefs(t.extra[0]))
            return t.extra[2] > 0 and elem.kind == _btf.INT and elem.size_or_type == 1 \
                and not elem.extra[0] & _btf.INT_BOOL
        return False

    # -- BTF DATASEC fix-ups (btf_fixup_datasec) ---------------------------------
    def _fixup_datasecs(self) -> None:
        """Section sizes and variable offsets from the ELF, and hidden globals as static.

        Clang leaves DATASEC sizes and VAR offsets 0; libbpf fills them from the ELF
        section and symbols, and marks STV_HIDDEN/STV_INTERNAL globals static (which
        decides BPF_F_MMAPABLE).  Result: name -> (size, [(var id, offset, size, linkage)]).
        """
        b = self.btf
        if b is None:
            return
        for t in b.types():
            if t.kind != _btf.DATASEC:
                continue
            if t.name in (".kconfig", ".ksyms"):
                vars_ = [(v.type, v.offset, v.size,
                          _btf.VAR_GLOBAL_ALLOCATED if v.type in self.kcfg_vars
                          else self._var_linkage(v.type)) for v in t.items]
                self.datasecs[t.name] = (self.kcfg_size if t.name == ".kconfig" else t.size_or_type,
                                         vars_)
                continue
            size, fix_offsets = t.size_or_type, False
            if size == 0:
                sec_size = self._sec_size(t.name)
                if not sec_size:
                    raise self.err(t.name, f"DATASEC '{t.name}' has no ELF section to size it")
                size, fix_offsets = sec_size, True
            vars_ = []
            for v in t.items:
                vt = b.type(v.type)
                if vt.kind != _btf.VAR:
                    raise self.err(".BTF", f"DATASEC '{t.name}': member [{v.type}] is not a VAR")
                linkage, offset = vt.linkage, v.offset
                if linkage not in (_btf.VAR_STATIC, _btf.VAR_GLOBAL_EXTERN):
                    sym = self._find_var_sym(vt.name)
                    if sym is None:
                        raise self.err(t.name, f"no ELF symbol for VAR '{vt.name}'")
                    if fix_offsets:
                        offset = sym["st_value"]
                    if sym["st_other"]["visibility"] in ("STV_HIDDEN", "STV_INTERNAL"):
                        linkage = _btf.VAR_STATIC
                vars_.append((v.type, offset, v.size, linkage))
            vars_.sort(key=lambda v: v[1])          # compare_vsi_off(): section order
            self.datasecs[t.name] = (size, vars_)

    def _resolved(self, tid: int) -> _btf.BtfType | None:
        """The type of id ``tid``; None for void."""
        assert self.btf is not None
        return self.btf.type(tid) if tid else None

    def _var_linkage(self, tid: int) -> int:
        assert self.btf is not None
        t = self.btf.type(tid)
        return t.linkage if t.kind == _btf.VAR else _btf.VAR_STATIC

    # -- legacy maps (libbpf 0.8 bpf_object__init_user_maps) ---------------------
    def _init_legacy_maps(self) -> None:
        sec = self.secs.get("maps")
        if sec is None:
            return
        shndx = self._sec_idx("maps")
        syms = [s for s in self.symbols
                if s["st_shndx"] == shndx and s["st_info"]["type"] != "STT_SECTION"]
        data = sec.data()
        size = len(data)
        if not size or not syms or size % len(syms):
            raise self.err("maps", f"cannot tell the size of a map definition ({size} bytes, "
                           f"{len(syms)} symbols)")
        def_sz = size // len(syms)
        for sym in syms:
            name = sym.name
            if sym["st_info"]["bind"] == "STB_LOCAL":
                raise self.err("maps", f"map '{name}' (legacy): static maps are not supported")
            off = sym["st_value"]
            if off + def_sz > size:
                raise self.err("maps", f"map '{name}' (legacy): definition runs past the section")
            raw = data[off: off + def_sz]
            if def_sz > 20 and any(raw[20:]):
                # libbpf's strict default: unknown non-zero fields (e.g. iproute2's
                # struct bpf_elf_map pinning/inner_id) are refused
                raise self.err("maps", f"map '{name}' (legacy): unrecognized, non-zero "
                               f"options past struct bpf_map_def ({def_sz}-byte definitions)")
            raw = (raw[:20] + bytes(20))[:20]
            mtype, ksz, vsz, maxe, flags = struct.unpack(self.endian + "5I", raw)
            m = ObjectMap(name=name, type=mtype, key_size=ksz, value_size=vsz, max_entries=maxe,
                          map_flags=flags, origin=ORIGIN_LEGACY, section="maps")
            self._round_ringbuf(m)
            self.maps.append(m)

    def _round_ringbuf(self, m: ObjectMap) -> None:
        if m.type in _RINGBUFS:
            m.max_entries = adjust_ringbuf_sz(m.max_entries, self.page_size)

    # -- BTF-defined maps (bpf_object__init_user_btf_maps) -----------------------
    def _init_btf_maps(self) -> None:
        sec = self.secs.get(".maps")
        if sec is None:
            return
        if self.btf is None:
            raise self.err(".maps", "BTF-defined maps need a .BTF section")
        if ".maps" not in self.datasecs:
            raise self.err(".maps", "DATASEC '.maps' not found in BTF")
        b = self.btf
        sec_size = sec["sh_size"]
        for var_id, off, size, linkage in self.datasecs[".maps"][1]:
            var = b.type(var_id)
            name = var.name
            if not name:
                raise self.err(".maps", f"map [{var_id}]: empty name")
            if off + size > sec_size:
                raise self.err(".maps", f"map '{name}': BTF data is corrupted "
                               f"(offset {off} + size {size} > {sec_size})")
            if linkage != _btf.VAR_GLOBAL_ALLOCATED:
                kind = {0: "static", 2: "extern"}.get(linkage, "unknown")
                raise self.err(".maps", f"map '{name}': unsupported map linkage {kind}")
            def_t = self._resolved(b.skip_mods_and_typedefs(var.size_or_type))
            if def_t is None or def_t.kind != _btf.STRUCT:
                raise self.err(".maps", f"map '{name}': definition is not a struct")
            if def_t.size_or_type > size:
                raise self.err(".maps", f"map '{name}': invalid def size")
            m = self._parse_map_def(name, def_t, is_inner=False)
            self.maps.append(m)
            self.btf_maps[name] = (m, off, size)
        arenas = [m for m in self.maps if m.type == uapi.BPF_MAP_TYPE_ARENA]
        if len(arenas) > 1:
            raise self.err(".maps", f"map '{arenas[1].name}': only single ARENA map is "
                           f"supported (map '{arenas[0].name}' is also ARENA)")
        if _ARENA_SEC in self.secs and not arenas:
            raise self.err(_ARENA_SEC, "global __arena variables need an ARENA map in .maps")

    def _field_int(self, map_name: str, m: _btf.Member) -> int:
        """get_map_field_int(): ``int (*name)[N]`` encodes N."""
        b = self.btf
        assert b is not None
        t = self._resolved(b.skip_mods_and_typedefs(m.type))
        if t is None or t.kind != _btf.PTR:
            raise self.err(".maps", f"map '{map_name}': attr '{m.name}': expected PTR, got "
                           f"{b.type_name(m.type) if m.type else 'void'}")
        arr = b.type(t.size_or_type) if t.size_or_type else None
        if arr is None or arr.kind != _btf.ARRAY:
            raise self.err(".maps", f"map '{map_name}': attr '{m.name}': expected ARRAY")
        return arr.extra[2]

    def _field_long(self, map_name: str, m: _btf.Member) -> int:
        """get_map_field_long(): a pointer-to-array, or a one-value enum (``__ulong``)."""
        b = self.btf
        assert b is not None
        t = self._resolved(b.skip_mods_and_typedefs(m.type))
        if t is not None and t.kind == _btf.PTR:
            return self._field_int(map_name, m)
        if t is None or t.kind not in (_btf.ENUM, _btf.ENUM64):
            raise self.err(".maps", f"map '{map_name}': attr '{m.name}': expected ENUM or ENUM64")
        if t.vlen != 1:
            raise self.err(".maps", f"map '{map_name}': attr '{m.name}': invalid __ulong")
        return t.items[0].value & _U64_MAX

    def _sized_type(self, map_name: str, m: _btf.Member, what: str) -> tuple[int, int]:
        """``__type(key, T)``: a pointer to T; returns (size of T, T's id)."""
        b = self.btf
        assert b is not None
        t = b.type(m.type) if m.type else None
        if t is None or t.kind != _btf.PTR:
            raise self.err(".maps", f"map '{map_name}': {what} spec is not PTR")
        try:
            return b.sizeof(t.size_or_type), t.size_or_type
        except _btf.BtfError as e:
            raise self.err(".maps", f"map '{map_name}': can't determine {what} size for "
                           f"type [{t.size_or_type}]: {e}") from e

    def _parse_map_def(self, name: str, def_t: _btf.BtfType, is_inner: bool) -> ObjectMap:
        """parse_btf_map_def() + fill_map_from_def() for one map (or its inner template)."""
        b = self.btf
        assert b is not None
        m = ObjectMap(name=name, type=uapi.BPF_MAP_TYPE_UNSPEC, key_size=0, value_size=0,
                      max_entries=0)
        members = def_t.members
        for i, mem in enumerate(members):
            f = mem.name
            if f in ("type", "max_entries", "map_flags", "numa_node"):
                setattr(m, f, self._field_int(name, mem))
            elif f in ("key_size", "value_size"):
                sz = self._field_int(name, mem)
                self._set_size(m, f, sz)
            elif f in ("key", "value"):
                sz, tid = self._sized_type(name, mem, f)
                self._set_size(m, f + "_size", sz)
                setattr(m, f"btf_{f}_type_id", tid)
                setattr(m, f"{f}_type", b.type_name(tid))
            elif f == "values":
                self._parse_values(m, mem, is_inner, last=i == len(members) - 1)
            elif f == "pinning":
                if is_inner:
                    raise self.err(".maps", f"map '{name}': inner def can't be pinned")
                val = self._field_int(name, mem)
                if val not in (LIBBPF_PIN_NONE, LIBBPF_PIN_BY_NAME):
                    raise self.err(".maps", f"map '{name}': invalid pinning value {val}")
                m.pinning = val
            elif f == "map_extra":
                m.map_extra = self._field_long(name, mem)
            else:       # libbpf's strict default (no relaxed_maps)
                raise self.err(".maps", f"map '{name}': unknown field '{f}'")
        if m.type == uapi.BPF_MAP_TYPE_UNSPEC:
            raise self.err(".maps", f"map '{name}': map type isn't specified")
        self._round_ringbuf(m)
        return m

    def _set_size(self, m: ObjectMap, attr: str, sz: int) -> None:
        old = getattr(m, attr)
        if old and old != sz:
            raise self.err(".maps", f"map '{m.name}': conflicting {attr.replace('_', ' ')} "
                           f"{old} != {sz}")
        setattr(m, attr, sz)

    def _parse_values(self, m: ObjectMap, mem: _btf.Member, is_inner: bool, last: bool) -> None:
        """``__array(values, ...)``: the inner map template, or a program array's prototype."""
        b = self.btf
        assert b is not None
        is_mim, is_prog = m.type in _MAP_IN_MAP, m.type == uapi.BPF_MAP_TYPE_PROG_ARRAY
        desc = "map-in-map inner" if is_mim else "prog-array value"
        if is_inner:
            raise self.err(".maps", f"map '{m.name}': multi-level inner maps not supported")
        if not last:
            raise self.err(".maps", f"map '{m.name}': 'values' member should be last")
        if not is_mim and not is_prog:
            raise self.err(".maps", f"map '{m.name}': should be map-in-map or prog-array")
        self._set_size(m, "value_size", 4)
        t = b.type(mem.type) if mem.type else None
        if t is None or t.kind != _btf.ARRAY or t.extra[2]:
            raise self.err(".maps", f"map '{m.name}': {desc} spec is not a zero-sized array")
        pid = b.skip_mods_and_typedefs(t.extra[0])
        p = b.type(pid) if pid else None
        if p is None or p.kind != _btf.PTR:
            raise self.err(".maps", f"map '{m.name}': {desc} def is of unexpected kind")
        did = b.skip_mods_and_typedefs(p.size_or_type)
        d = b.type(did) if did else None
        if is_prog:
            if d is None or d.kind != _btf.FUNC_PROTO:
                raise self.err(".maps", f"map '{m.name}': prog-array value def is of "
                               "unexpected kind")
            return
        if d is None or d.kind != _btf.STRUCT:
            raise self.err(".maps", f"map '{m.name}': map-in-map inner def is of unexpected kind")
        m.inner = self._parse_map_def(f"{m.name}.inner", d, is_inner=True)
        m.inner.autocreate = False      # created by the outer map's creation, not on its own

    # -- global data (bpf_object__init_global_data_maps) -------------------------
    def _internal_map_name(self, real_name: str) -> str:
        """internal_map_name(): object-name prefix + section name, 15 bytes at most."""
        obj_name = os.fsencode(os.path.basename(self.path))[:BPF_OBJ_NAME_LEN - 1]
        obj_name = obj_name.split(b".", 1)[0]
        real = real_name.encode()
        sfx_len = min(max(7, len(real)), BPF_OBJ_NAME_LEN - 1)
        # a custom ".data.X"/".rodata.X" map (two dots) takes no object-name prefix
        pfx_len = 0 if b"." in real[1:] else min(BPF_OBJ_NAME_LEN - sfx_len - 1, len(obj_name))
        name = obj_name[:pfx_len] + real[:sfx_len]
        # the characters the kernel accepts in map names: alnum, '_' and '.'
        return "".join(chr(c) if chr(c).isascii() and (chr(c).isalnum() or chr(c) in "_.")
                       else "_" for c in name)

    def _add_internal_map(self, real_name: str, size: int, rdonly: bool) -> None:
        """bpf_object__init_internal_map(): an ARRAY of one value of the section's size."""
        flags = uapi.BPF_F_RDONLY_PROG if rdonly else 0
        value_type_id, value_type = 0, ""
        if self.btf is not None:
            # map_fill_btf_type_info(): the first type named like the section (its DATASEC)
            ids = self.btf.find(real_name, None)
            if ids:
                value_type_id, value_type = ids[0], f"DATASEC {real_name}"
        # map_is_mmapable(): the DATASEC has a variable that is not static (after fix-ups)
        if value_type_id and self._resolved(value_type_id).kind == _btf.DATASEC:
            vars_ = self.datasecs.get(real_name, (0, []))[1]
            if any(linkage != _btf.VAR_STATIC and self._resolved(tid).kind == _btf.VAR
                   for tid, _off, _size, linkage in vars_):
                flags |= uapi.BPF_F_MMAPABLE
        self.maps.append(ObjectMap(
            name=self._internal_map_name(real_name), type=uapi.BPF_MAP_TYPE_ARRAY, key_size=4,
            value_size=size, max_entries=1, map_flags=flags, origin=ORIGIN_GLOBAL_DATA,
            section=real_name, btf_value_type_id=value_type_id, value_type=value_type))

    def _init_global_data_maps(self) -> None:
        """bpf_object__elf_collect()'s SEC_DATA/SEC_RODATA/SEC_BSS sections, in ELF order."""
        for sec in self.sec_by_idx:
            name = sec.name
            if sec["sh_size"] == 0:
                continue
            if self._is_progbits_data(sec):
                if name == ".data" or name.startswith(".data."):
                    self._add_internal_map(name, sec["sh_size"], rdonly=False)
                elif name == ".rodata" or name.startswith(".rodata."):
                    self._add_internal_map(name, sec["sh_size"], rdonly=True)
            elif sec["sh_type"] == "SHT_NOBITS" and (name == ".bss" or name.startswith(".bss.")):
                self._add_internal_map(name, sec["sh_size"], rdonly=False)

    def _init_kconfig_map(self) -> None:
        """bpf_object__init_kconfig_map(): one read-only map holding every kconfig extern."""
        if self.has_kcfg:
            self._add_internal_map(".kconfig", self.kcfg_size, rdonly=True)

    # -- struct_ops (init_struct_ops_maps) ---------------------------------------
    def _init_struct_ops_maps(self) -> None:
        for sec in self.sec_by_idx:
            if sec.name not in _STRUCT_OPS_SECS or not self._is_progbits_data(sec):
                continue
            sec_name = sec.name
            if self.btf is None or sec_name not in self.datasecs:
                raise self.err(sec_name, f"DATASEC {sec_name} not found")
            b = self.btf
            for var_id, off, _size, _link in self.datasecs[sec_name][1]:
                var_name = b.type(var_id).name
                tid = self._resolve_type(var_id)
                t = b.type(tid)
                if not t.name:
                    raise self.err(sec_name, f"'{var_name}': anonymous type is not supported")
                if t.kind != _btf.STRUCT:
                    raise self.err(sec_name, f"'{var_name}': {t.name} is not a struct")
                if off + t.size_or_type > sec["sh_size"]:
                    raise self.err(sec_name, f"var {var_name} is beyond the end of the section")
                link = sec_name.lstrip("?") == ".struct_ops.link"
                self.maps.append(ObjectMap(
                    name=var_name, type=uapi.BPF_MAP_TYPE_STRUCT_OPS, key_size=4,
                    value_size=t.size_or_type, max_entries=1,
                    map_flags=uapi.BPF_F_LINK if link else 0, origin=ORIGIN_STRUCT_OPS,
                    section=sec_name, autocreate=not sec_name.startswith("?"),
                    btf_value_type_id=tid, value_type=b.type_name(tid), st_ops_type=t.name))

    def _resolve_type(self, tid: int) -> int:
        """btf__resolve_type(): under modifiers, typedefs and VARs; never void."""
        b = self.btf
        assert b is not None
        for _ in range(_btf.MAX_RESOLVE_DEPTH):
            if tid == 0:
                break
            t = b.type(tid)
            if t.kind in (_btf.CONST, _btf.VOLATILE, _btf.RESTRICT, _btf.TYPE_TAG,
                          _btf.TYPEDEF, _btf.VAR):
                tid = t.size_or_type
                continue
            if t.kind == _btf.FWD:
                break
            return tid
        raise _btf.BtfError(f"type [{tid}] resolves to void")

    # -- .rel.maps (bpf_object__collect_map_relos) -------------------------------
    def _collect_map_relos(self) -> None:
        """``values = { [i] = &map_or_prog }``: relocations against the .maps section."""
        rel = self.secs.get(".rel.maps")
        if rel is None or not self.btf_maps:
            return
        if rel["sh_type"] != "SHT_REL" or rel["sh_entsize"] != 16:
            raise self.err(".rel.maps", "not a section of Elf64_Rel records")
        maps_shndx = self._sec_idx(".maps")
        slots: dict[str, dict[int, str]] = {}
        for i, r in enumerate(rel.iter_relocations()):
            si = r["r_info_sym"]
            if si >= len(self.symbols):
                raise self.err(".rel.maps", f"relo #{i}: symbol {si} not found")
            sym = self.symbols[si]
            name = sym.name
            roff = r["r_offset"]
            found = [(m, off, size) for m, off, size in self.btf_maps.values()
                     if off <= roff and roff + 8 <= off + size]
            if not found:
                raise self.err(".rel.maps", f"relo #{i}: cannot find map '{name}' at offset {roff}")
            m, off, _size = found[0]
            if m.type in _MAP_IN_MAP:
                if sym["st_shndx"] != maps_shndx:
                    raise self.err(".rel.maps", f"relo #{i}: '{name}' isn't a BTF-defined map")
                if m.type == uapi.BPF_MAP_TYPE_HASH_OF_MAPS and m.key_size != 4:
                    raise self.err(".rel.maps", f"hash-of-maps '{m.name}' should have key size 4")
                if name not in self.btf_maps and not any(x.name == name for x in self.maps):
                    raise self.err(".rel.maps", f"relo #{i}: '{name}' isn't a valid map reference")
            elif m.type == uapi.BPF_MAP_TYPE_PROG_ARRAY:
                self._check_entry_prog(i, sym)
            else:
                raise self.err(".rel.maps", f"relo #{i}: map '{m.name}' is neither map-in-map "
                               "nor prog-array")
            moff = self._values_slot(m, roff - off)
            slots.setdefault(m.name, {})[moff] = name
        for m, _off, _size in self.btf_maps.values():
            if m.name in slots:
                m.init_slots = tuple(sorted(slots[m.name].items()))

    def _check_entry_prog(self, i: int, sym: Any) -> None:
        """The target must be an entry-point program: a function in a non-.text code section."""
        shndx = sym["st_shndx"]
        sec = self.sec_by_idx[shndx] if isinstance(shndx, int) and shndx < len(self.sec_by_idx) \
            else None
        if (sec is None or sym["st_info"]["type"] != "STT_FUNC" or not sec["sh_flags"] & 0x4
                or sec.name == ".text"):
            raise self.err(".rel.maps", f"relo #{i}: '{sym.name}' isn't an entry-point program")

    def _values_slot(self, m: ObjectMap, rel_off: int) -> int:
        """The slot of ``values[]`` at byte ``rel_off`` of the map's definition."""
        b = self.btf
        assert b is not None
        var_id = next(v[0] for v in self.datasecs[".maps"][1] if b.type(v[0]).name == m.name)
        def_t = b.type(b.skip_mods_and_typedefs(b.type(var_id).size_or_type))
        last = def_t.members[-1] if def_t.vlen else None
        if last is None or last.name != "values":
            raise self.err(".rel.maps", f"map '{m.name}': relocation outside 'values'")
        moff = rel_off - last.offset
        if moff < 0 or moff % 8:
            raise self.err(".rel.maps", f"map '{m.name}': misaligned 'values' relocation")
        return moff // 8


# --------------------------------------------------------------------------- between open and load

def find_map(maps: Sequence[ObjectMap], name: str) -> ObjectMap:
    """bpf_object__find_map_by_name(); ``NAME.inner`` names a map-in-map's inner template."""
    for m in maps:
        if m.name == name:
            return m
    if name.endswith(".inner"):
        for m in maps:
            if m.inner is not None and m.inner.name == name:
                return m.inner
    known = ", ".join(m.name for m in maps) or "none"
    raise ValueError(f"unknown map '{name}' (maps: {known})")


def set_max_entries(maps: Sequence[ObjectMap], name: str, max_entries: int, *,
                    page_size: int = 4096) -> ObjectMap:
    """bpf_map__set_max_entries(): in place; ring buffer sizes rounded as at open."""
    _check_page_size(page_size)
    m = find_map(maps, name)
    m.max_entries = _check_uint(max_entries, _U32_MAX, f"{name}.max_entries")
    if m.type in _RINGBUFS:
        m.max_entries = adjust_ringbuf_sz(m.max_entries, page_size)
    return m


def set_autocreate(maps: Sequence[ObjectMap], name: str, autocreate: bool) -> ObjectMap:
    """bpf_map__set_autocreate(): in place; a map with autocreate false is not created."""
    m = find_map(maps, name)
    m.autocreate = bool(autocreate)
    return m


def _check_uint(value: Any, limit: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what}: {value!r} is not an integer")
    if not 0 <= value <= limit:
        raise ValueError(f"{what}: {value} is outside 0..{limit}")
    return value


# The bpf_map__set_*() setters an override string can name, with their value's limit.
OVERRIDE_FIELDS = {"max_entries": _U32_MAX, "map_flags": _U32_MAX, "numa_node": _U32_MAX,
                   "map_extra": _U64_MAX, "autocreate": 1}


def parse_override(text: str) -> tuple[str, str, int]:
    """``NAME.FIELD=VALUE`` -> (name, field, value); e.g. ``cilium_ct4_global.max_entries=65536``.

    FIELD is one of ``OVERRIDE_FIELDS``; VALUE an integer (``0x`` hex allowed; ``autocreate``
    also takes true/false).  NAME may itself contain dots (``.data.custom``, ``outer.inner``).
    """
    lhs, eq, rhs = text.partition("=")
    name, dot, fld = lhs.strip().rpartition(".")
    if not eq or not dot or not name:
        raise ValueError(f"override {text!r}: expected NAME.FIELD=VALUE, e.g. "
                         "NAME.max_entries=1024")
    if fld not in OVERRIDE_FIELDS:
        raise ValueError(f"override {text!r}: unknown field '{fld}' (one of "
                         f"{', '.join(OVERRIDE_FIELDS)})")
    raw = rhs.strip()
    if fld == "autocreate" and raw.lower() in ("true", "false"):
        return name, fld, int(raw.lower() == "true")
    try:
        value = int(raw, 0)
    except ValueError:
        raise ValueError(f"override {text!r}: bad number {raw!r}") from None
    _check_uint(value, OVERRIDE_FIELDS[fld], f"override {text!r}")
    return name, fld, value


def apply_overrides(maps: Sequence[ObjectMap], overrides: Iterable[str], *,
                    page_size: int = 4096) -> None:
    """Parse and apply ``NAME.FIELD=VALUE`` strings in order, as the matching setters."""
    for text in overrides:
        name, fld, value = parse_override(text)
        if fld == "max_entries":
            set_max_entries(maps, name, value, page_size=page_size)
        elif fld == "autocreate":
            set_autocreate(maps, name, bool(value))
        else:
            setattr(find_map(maps, name), fld, value)


# --------------------------------------------------------------------------- load

def maps_to_create(maps: Sequence[ObjectMap], *, possible_cpus: int,
                   vmlinux: _btf.Btf | None = None) -> list[ObjectMap]:
    """The BPF_MAP_CREATE calls of bpf_object__create_maps(), as copies, in order.

    Maps with ``autocreate`` false are left out; a PERF_EVENT_ARRAY (or inner template) of
    ``max_entries`` 0 gets one slot per possible CPU (``map_set_def_max_entries()``); a
    struct_ops map's value is the kernel's ``struct bpf_struct_ops_<name>``, whose size is
    read from ``vmlinux`` (required when there are such maps); the BTF type ids are cleared
    for the map types libbpf creates without them.
    """
    _check_uint(possible_cpus, _U32_MAX, "possible_cpus")
    if possible_cpus < 1:
        raise ValueError("possible_cpus must be at least 1")
    out = []
    for m in maps:
        if not m.autocreate:
            continue
        c = _as_created(m, possible_cpus)
        if c.inner is not None:
            c.inner = _as_created(c.inner, possible_cpus)
        if c.type == uapi.BPF_MAP_TYPE_STRUCT_OPS:
            c.value_size = struct_ops_value_size(c, vmlinux)
            c.btf_value_type_id = 0
        out.append(c)
    return out


def _as_created(m: ObjectMap, possible_cpus: int) -> ObjectMap:
    c = dataclasses.replace(m)
    if c.type == uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY and c.max_entries == 0:
        c.max_entries = possible_cpus
    if c.type in _NO_BTF_IDS:
        c.btf_key_type_id = c.btf_value_type_id = 0
    return c


def struct_ops_value_size(m: ObjectMap, vmlinux: _btf.Btf | None) -> int:
    """sizeof(struct bpf_struct_ops_<type>) in the kernel's BTF (find_struct_ops_kern_types())."""
    want = "bpf_struct_ops_" + _essential_name(m.st_ops_type)
    if vmlinux is None:
        raise ValueError(f"map '{m.name}' (struct_ops): its value is the kernel's struct "
                         f"{want}; pass the kernel's BTF (vmlinux) to size it")
    ids = vmlinux.find(want, "STRUCT")
    if not ids:
        raise ValueError(f"map '{m.name}' (struct_ops): struct {want} is not in the kernel's BTF")
    return vmlinux.sizeof(ids[0])


__all__ = [
    "ObjectMap", "read_object", "find_map", "set_max_entries", "set_autocreate",
    "parse_override", "apply_overrides", "maps_to_create", "adjust_ringbuf_sz",
    "struct_ops_value_size", "OVERRIDE_FIELDS", "LIBBPF_PIN_NONE", "LIBBPF_PIN_BY_NAME",
    "ORIGIN_BTF", "ORIGIN_LEGACY", "ORIGIN_GLOBAL_DATA", "ORIGIN_STRUCT_OPS",
]
