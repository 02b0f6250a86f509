"""The maps ``pybpfmem plan`` plans, from what users have: ``--map`` rows, a ``--file``
of ``[[map]]`` tables, ``bpftool -j map show`` output, the maps of this host (``--host``)
and compiled BPF objects (``OBJECT.bpf.o``, read as libbpf reads them: bpf/object.py).

Every reader checks its input and raises ``ValueError`` with a one-line message that
names the input, the map and the key (the CLI prints it and exits 2).  The ``--file``
format is documented key by key in docs/guide.md (plan); ``FILE_KEYS`` is its list.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import tomllib
from dataclasses import dataclass
from typing import Any

from pybpfmem import btf as _btf
from pybpfmem.bpf import object as bpfobj
from pybpfmem.bpf import uapi
from pybpfmem.constants import U32_MAX, U64_MAX

#: the map_flags of BPF_MAP_CREATE by name (include/uapi/linux/bpf.h), as --map and
#: --file spell them: lower case, without BPF_F_
MAP_FLAGS: dict[str, int] = {
    name[len("BPF_F_"):].lower(): getattr(uapi, name) for name in (
        "BPF_F_NO_PREALLOC", "BPF_F_NO_COMMON_LRU", "BPF_F_NUMA_NODE", "BPF_F_RDONLY",
        "BPF_F_WRONLY", "BPF_F_STACK_BUILD_ID", "BPF_F_ZERO_SEED", "BPF_F_RDONLY_PROG",
        "BPF_F_WRONLY_PROG", "BPF_F_CLONE", "BPF_F_MMAPABLE", "BPF_F_PRESERVE_ELEMS",
        "BPF_F_INNER_MAP", "BPF_F_LINK", "BPF_F_PATH_FD", "BPF_F_VTYPE_BTF_OBJ_FD",
        "BPF_F_TOKEN_FD", "BPF_F_SEGV_ON_FAULT", "BPF_F_NO_USER_CONV")
    if hasattr(uapi, name)}
#: bpftool's map type names (``bpftool map show``), e.g. "lru_hash", "cgrp_storage"
TYPE_NAMES: dict[str, int] = {name.lower(): t for t, name in uapi.MAP_TYPE_NAMES.items()
                              if t != uapi.BPF_MAP_TYPE_UNSPEC}
TYPE_NAMES["cgrp_storage"] = uapi.BPF_MAP_TYPE_CGRP_STORAGE
TYPE_BY_VALUE: dict[int, str] = {t: n for n, t in TYPE_NAMES.items()}
TYPE_BY_VALUE[uapi.BPF_MAP_TYPE_CGRP_STORAGE] = "cgrp_storage"
# local storage maps are created with BTF key/value types (the kernel insists): the plan
# passes placeholder type ids where its input has none
_NEEDS_BTF_IDS = (uapi.BPF_MAP_TYPE_SK_STORAGE, uapi.BPF_MAP_TYPE_INODE_STORAGE,
                  uapi.BPF_MAP_TYPE_TASK_STORAGE, uapi.BPF_MAP_TYPE_CGRP_STORAGE)
_MAP_IN_MAP = (uapi.BPF_MAP_TYPE_ARRAY_OF_MAPS, uapi.BPF_MAP_TYPE_HASH_OF_MAPS)


@dataclass
class MapSpec:
    """One map to plan: the BPF_MAP_CREATE fields, who creates it (memory cgroup, uid)
    and where it came from (``source``, named in messages)."""

    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    map_extra: int = 0
    numa_node: int | None = None
    cgroup: str = "/agent"
    uid: int = 0
    source: str = ""
    id: int | None = None                  # bpftool / --host: the map's id there
    input_memlock: int | None = None       # bpftool / --host: fdinfo memlock there
    inner: MapSpec | None = None           # map-in-map: the inner map template
    init_slots: tuple[tuple[int, str], ...] = ()   # (slot, map name) written at load
    pinned: bool = False
    owners: int | None = None              # local storage: owners holding an element
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    unplannable: str | None = None         # why it cannot be planned (said, never dropped)

    @property
    def type_name(self) -> str:
        return TYPE_BY_VALUE.get(self.type, f"type_{self.type}")

    @property
    def shape(self) -> str:
        """``hash 4/64 x1000 no_prealloc``: type, key/value sizes, max_entries, flags."""
        s = f"{self.type_name} {self.key_size}/{self.value_size} x{self.max_entries:,}"
        return s + (f" {flag_names(self.flags)}" if self.flags else "")


def flag_names(flags: int) -> str:
    """``no_prealloc,rdonly_prog``; unknown bits as a hex remainder."""
    names = [n for n, v in MAP_FLAGS.items() if flags & v]
    rest = flags & ~sum(v for n, v in MAP_FLAGS.items() if flags & v)
    return ",".join(names + ([hex(rest)] if rest else []))


# --------------------------------------------------------------------------- checks

def _where(source: str, name: str) -> str:
    return f"{source} ({name!r})" if name else source


def uint(value: Any, what: str, where: str, limit: int = U32_MAX) -> int:
    """A non-negative integer up to limit, from an int or a decimal/0x string."""
    if isinstance(value, str):
        try:
            value = int(value.strip(), 0)
        except ValueError:
            raise ValueError(f"{where}: {what} {value!r} is not an integer") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: {what} must be an integer, not {value!r}")
    if value < 0:
        raise ValueError(f"{where}: {what} {value} is negative")
    if value > limit:
        kind = "u32" if limit == U32_MAX else "u64"
        raise ValueError(f"{where}: {what} {value} is above the {kind} maximum {limit}")
    return value


def map_type(value: Any, where: str) -> int:
    """A map type by bpftool's name ("lru_hash"), the uapi name or its number."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value in TYPE_BY_VALUE:
            return value
        raise ValueError(f"{where}: unknown map type {value}")
    if not isinstance(value, str):
        raise ValueError(f"{where}: type must be a string, not {value!r}")
    key = value.strip().lower()
    key = key[len("bpf_map_type_"):] if key.startswith("bpf_map_type_") else key
    if key not in TYPE_NAMES:
        raise ValueError(f"{where}: unknown map type {value!r} (one of {', '.join(sorted(TYPE_NAMES))})")
    return TYPE_NAMES[key]


def map_flags(value: Any, where: str) -> int:
    """Flags as a list of names (``["no_prealloc"]``), a comma-separated string, or an int."""
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        total = 0
        for v in value:
            if not isinstance(v, str):
                raise ValueError(f"{where}: flag {v!r} is not a name")
            key = v.strip().lower()
            key = key[len("bpf_f_"):] if key.startswith("bpf_f_") else key
            if key not in MAP_FLAGS:
                if key.startswith(("0x", "0")) or key.isdigit():
                    total |= uint(key, "flags", where)
                    continue
                raise ValueError(f"{where}: unknown map flag {v!r} (one of {', '.join(MAP_FLAGS)})")
            total |= MAP_FLAGS[key]
        return total
    return uint(value, "flags", where)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: name must be a string, not {value!r}")
    return value


def cgroup_path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"{where}: cgroup must be an absolute path like \"/agent\", not {value!r}")
    parts = [p for p in value.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"{where}: cgroup {value!r} has a . or .. component")
    return "/" + "/".join(parts)


# --------------------------------------------------------------------------- --map

DEFAULT_CGROUP = "/agent"
# What `plan` plans when given no maps: the 30 maps of a default Cilium agent in
# bpftool's shape (IPv4, VXLAN, kube-proxy replacement, bpf.preallocateMaps false,
# default sizes, 3 endpoints; assembled from the cilium/cilium sources).
DEFAULT_SET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "data", "cilium-default-maps.json")
DEFAULT_SET_TEXT = "a default Cilium agent's 30 maps"


def cli_spec(text: str, index: int, cgroup: str = DEFAULT_CGROUP) -> MapSpec:
    """``--map [NAME=]TYPE:KEY:VALUE:MAX[:FLAGS]``, e.g. ``flows=hash:4:64:1000:no_prealloc``."""
    where = f"--map {text!r}"
    name, eq, rest = text.partition("=")
    if not eq:
        name, rest = "", text
    parts = rest.split(":")
    if len(parts) not in (4, 5):
        raise ValueError(f"{where}: expected [NAME=]TYPE:KEY:VALUE:MAX[:FLAGS], "
                         "e.g. flows=hash:4:64:1000:no_prealloc")
    mtype = map_type(parts[0], where)
    if mtype in _MAP_IN_MAP:
        raise ValueError(f"{where}: a map-in-map needs its inner map template: give it in a "
                         "--file [[map]] (inner = { ... }) or plan the BPF object")
    return MapSpec(
        name=name.strip() or f"map{index}", type=mtype,
        key_size=uint(parts[1], "key size", where), value_size=uint(parts[2], "value size", where),
        max_entries=uint(parts[3], "max_entries", where),
        flags=map_flags(parts[4], where) if len(parts) == 5 else 0,
        cgroup=cgroup, source=f"--map #{index}")


# --------------------------------------------------------------------------- --file

#: the keys of a ``[[map]]`` table: (required, what it is)
FILE_KEYS: dict[str, tuple[bool, str]] = {
    "name": (False, "the map's name (default: mapN)"),
    "type": (True, "bpftool's type name: hash, lru_hash, percpu_array, lpm_trie, ..."),
    "key_size": (True, "bytes (0 for queue, stack, bloom_filter, ringbuf)"),
    "value_size": (True, "bytes (0 for ringbuf)"),
    "max_entries": (True, "u32 (a ringbuf's size in bytes)"),
    "flags": (False, "a list of names (\"no_prealloc\", \"rdonly_prog\", ...) or an integer; default 0"),
    "map_extra": (False, "u64 (bloom_filter: the number of hashes; arena: the address); default 0"),
    "numa_node": (False, "u32; sets BPF_F_NUMA_NODE"),
    "cgroup": (False, "the memory cgroup of the process that creates the map; default \"/agent\""),
    "uid": (False, "the user that creates the map (5.10: whose RLIMIT_MEMLOCK pays); default 0"),
    "owners": (False, "local storage: the sockets/tasks/inodes/cgroups holding an element"),
    "inner": (False, "map-in-map: the inner map template, a table of type, key_size, "
                     "value_size, max_entries and flags"),
}
_INNER_KEYS = ("type", "key_size", "value_size", "max_entries", "flags", "map_extra")


def _table_spec(m: Any, where: str, index: int, keys: tuple[str, ...] | None = None) -> MapSpec:
    if not isinstance(m, dict):
        raise ValueError(f"{where}: expected a table, got {m!r}")
    allowed = keys or tuple(FILE_KEYS)
    name = _name(m.get("name", ""), where) if "name" in allowed else ""
    where = _where(where, name)
    for k in m:
        if k not in allowed:
            raise ValueError(f"{where}: unknown key {k!r} (keys: {', '.join(allowed)})")
    for k in ("type", "key_size", "value_size", "max_entries"):
        if k not in m:
            raise ValueError(f"{where}: {k} is missing")
    spec = MapSpec(
        name=name or f"map{index}", type=map_type(m["type"], where),
        key_size=uint(m["key_size"], "key_size", where),
        value_size=uint(m["value_size"], "value_size", where),
        max_entries=uint(m["max_entries"], "max_entries", where),
        flags=map_flags(m.get("flags", 0), where),
        map_extra=uint(m.get("map_extra", 0), "map_extra", where, U64_MAX),
        source=where)
    if "numa_node" in m:
        spec.numa_node = uint(m["numa_node"], "numa_node", where)
    if "cgroup" in m:
        spec.cgroup = cgroup_path(m["cgroup"], where)
    if "uid" in m:
        spec.uid = uint(m["uid"], "uid", where)
    if "owners" in m:
        spec.owners = uint(m["owners"], "owners", where)
    if "inner" in m:
        if spec.type not in _MAP_IN_MAP:
            raise ValueError(f"{where}: inner is only for array_of_maps and hash_of_maps")
        spec.inner = _table_spec(m["inner"], f"{where} inner", index, _INNER_KEYS)
        spec.inner.name = f"{spec.name}.inner"
    elif spec.type in _MAP_IN_MAP:
        raise ValueError(f"{where}: a map-in-map needs its inner map template (inner = {{ ... }})")
    return spec


def file_specs(path: str) -> list[MapSpec]:
    """The ``[[map]]`` tables of a TOML file (format: FILE_KEYS)."""
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:      # tomllib decodes the bytes itself
        raise ValueError(f"{path}: not a text file (expected TOML with [[map]] tables)") from None
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    for k in doc:
        if k != "map":
            raise ValueError(f"{path}: unknown table or key {k!r} (a plan file holds [[map]] tables)")
    maps = doc.get("map", [])
    if not isinstance(maps, list):
        raise ValueError(f"{path}: map must be an array of tables ([[map]])")
    return [_table_spec(m, f"{path}: [[map]] #{i + 1}", i + 1) for i, m in enumerate(maps)]


# --------------------------------------------------------------------------- --bpftool

def bpftool_specs(path: str) -> list[MapSpec]:
    """The JSON of ``bpftool -j map show``: its own bytes_memlock is kept as the input's
    figure (another kernel's), never used as a prediction."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (expected the JSON of bpftool -j map show)") from None
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected the JSON list of `bpftool -j map show`")
    specs = []
    for i, m in enumerate(data):
        where = f"{path}: map #{i}"
        if not isinstance(m, dict):
            raise ValueError(f"{where}: expected an object, got {m!r}")
        name = _name(m.get("name", ""), where)
        where = _where(where, name)
        for k in ("type", "bytes_key", "bytes_value", "max_entries"):
            if k not in m:
                raise ValueError(f"{where}: key {k!r} is missing")
        specs.append(MapSpec(
            name=name or f"map{i}", type=map_type(m["type"], where),
            key_size=uint(m["bytes_key"], "bytes_key", where),
            value_size=uint(m["bytes_value"], "bytes_value", where),
            max_entries=uint(m["max_entries"], "max_entries", where),
            flags=uint(m.get("flags", 0), "flags", where),
            map_extra=uint(m.get("map_extra", 0), "map_extra", where, U64_MAX),
            id=uint(m["id"], "id", where) if "id" in m else None,
            input_memlock=uint(m["bytes_memlock"], "bytes_memlock", where, U64_MAX)
            if "bytes_memlock" in m else None,
            pinned=bool(m.get("pinned")), source=where))
    return specs


# --------------------------------------------------------------------------- --host

def host_specs() -> list[MapSpec]:
    """The maps of the running machine, read-only: every map id, its shape and fdinfo
    memlock, and the memory cgroup and uid of a process holding an fd on it (needs
    CAP_SYS_ADMIN for BPF_MAP_GET_FD_BY_ID)."""
    from pybpfmem.live import bpf as live

    holders = live.map_holders()
    specs = []
    for mid in live.map_ids():
        try:
            fd = live.map_get_fd_by_id(mid)
        except OSError as exc:
            if exc.errno == errno.ENOENT:      # freed since it was listed
                continue
            raise
        try:
            info = live.obj_get_info_by_fd(fd)
            memlock = int(live.fdinfo(fd).get("memlock", "0"))
        finally:
            live.close(fd)
        pids = [p for p in holders.get(mid, []) if p != os.getpid()] or holders.get(mid, [])
        cgroup, uid = "/", 0
        if pids:
            cgroup = live.memory_cgroup_of(pids[0]) or "/"
            try:
                uid = os.stat(f"/proc/{pids[0]}").st_uid
            except OSError:
                pass
        specs.append(MapSpec(
            name=info.name, type=info.type, key_size=info.key_size, value_size=info.value_size,
            max_entries=info.max_entries, flags=info.map_flags, id=mid, cgroup=cgroup, uid=uid,
            input_memlock=memlock, source=f"host map id {mid}"))
    return specs


# --------------------------------------------------------------------------- objects

def object_specs(path: str, overrides: list[str], *, possible_cpus: int, page_size: int,
                 vmlinux: _btf.Btf | None = None, cgroup: str = DEFAULT_CGROUP,
                 ) -> tuple[list[MapSpec], list[str]]:
    """The maps libbpf creates from a compiled BPF object, after ``--set`` overrides.
    Returns the specs and the overrides that named none of this object's maps."""
    maps = bpfobj.read_object(path, page_size=page_size)
    unused = []
    for text in overrides:
        name, _field, _value = bpfobj.parse_override(text)
        try:
            bpfobj.find_map(maps, name)
        except ValueError:
            unused.append(text)
            continue
        bpfobj.apply_overrides(maps, [text], page_size=page_size)
    specs = []
    base = os.path.basename(path)
    for m in maps:
        if not m.autocreate:
            continue
        unplannable = None
        if m.type == uapi.BPF_MAP_TYPE_STRUCT_OPS and vmlinux is None:
            created = dataclasses.replace(m)
            unplannable = (f"struct_ops map: its value is the kernel's struct bpf_struct_ops_"
                           f"{m.st_ops_type}, whose size only the kernel's BTF gives")
        else:
            created = bpfobj.maps_to_create([m], possible_cpus=possible_cpus, vmlinux=vmlinux)[0]
        specs.append(_object_spec(created, f"{base}: map {m.name!r}", cgroup, unplannable))
    return specs, unused


def _object_spec(m: bpfobj.ObjectMap, source: str, cgroup: str, unplannable: str | None) -> MapSpec:
    spec = MapSpec(
        name=m.name, type=m.type, key_size=m.key_size, value_size=m.value_size,
        max_entries=m.max_entries, flags=m.map_flags, map_extra=m.map_extra,
        numa_node=m.numa_node if m.map_flags & uapi.BPF_F_NUMA_NODE else None, cgroup=cgroup,
        source=source,
        init_slots=m.init_slots if m.type in _MAP_IN_MAP else (),
        pinned=m.pin_path is not None, btf_key_type_id=m.btf_key_type_id,
        btf_value_type_id=m.btf_value_type_id, unplannable=unplannable)
    if m.inner is not None:
        spec.inner = _object_spec(m.inner, f"{source} inner", cgroup, None)
    return spec


def needs_btf_ids(spec: MapSpec) -> bool:
    return spec.type in _NEEDS_BTF_IDS


__all__ = ["MapSpec", "MAP_FLAGS", "TYPE_NAMES", "FILE_KEYS", "cli_spec", "file_specs",
           "bpftool_specs", "host_specs", "object_specs", "map_type", "map_flags", "flag_names"]
