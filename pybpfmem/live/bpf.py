"""The real bpf(2) syscall through ctypes.

Thin libbpf-style wrappers over the commands pybpfmem needs to observe the live
kernel: map create / update / lookup / delete / get_next_key, the batch commands,
freeze, BTF load, obj_get_info_by_fd, map_get_fd_by_id and close, plus parsing of
/proc/self/fdinfo.  Errors come back as ``OSError(errno, message)`` exactly as the
kernel returned them (bpf() returns -1 and sets errno).

Attr layouts and constants come from pybpfmem/bpf/uapi.py, the same description the
model's dispatcher uses (``union bpf_attr`` of include/uapi/linux/bpf.h); only the
BPF_BTF_LOAD attr and the ``struct bpf_map_info`` output layout are local here.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
import platform
import struct
from dataclasses import dataclass
from typing import Iterator

# __NR_bpf per architecture (arch/*/entry/syscalls tables).
_NR_BPF = {
    "x86_64": 321, "amd64": 321,
    "i386": 357, "i686": 357,
    "aarch64": 280, "arm64": 280, "riscv64": 280, "loongarch64": 280,
    "armv7l": 386, "armv6l": 386,
    "ppc64le": 361, "ppc64": 361,
    "s390x": 351,
}

# Constants and attr layouts come from the model's uapi description (one source of truth).
from ..bpf import uapi as _uapi
from ..bpf.uapi import (  # noqa: F401  (re-exported for callers of the live binding)
    BPF_ANY, BPF_EXIST, BPF_F_MMAPABLE, BPF_F_NO_COMMON_LRU, BPF_F_NO_PREALLOC,
    BPF_F_NUMA_NODE, BPF_F_RDONLY, BPF_F_WRONLY, BPF_MAP_CREATE, BPF_MAP_DELETE_BATCH,
    BPF_MAP_DELETE_ELEM, BPF_MAP_FREEZE, BPF_MAP_GET_FD_BY_ID, BPF_MAP_GET_NEXT_ID, BPF_MAP_GET_NEXT_KEY,
    BPF_MAP_LOOKUP_AND_DELETE_BATCH, BPF_MAP_LOOKUP_AND_DELETE_ELEM, BPF_MAP_LOOKUP_BATCH,
    BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_BATCH, BPF_MAP_UPDATE_ELEM, BPF_NOEXIST, BPF_BTF_LOAD,
    BPF_OBJ_GET_INFO_BY_FD, ENOTSUPP,
)

MAP_TYPES = {name: t for t, name in _uapi.MAP_TYPE_NAMES.items() if name != "UNSPEC"}

# Not (yet) in uapi.py: the BPF_BTF_LOAD attr and the bpf_map_info output struct.
_BTF_LOAD_FMT = "<QQIIIIIi"               # btf, log_buf, size, log_size, level, true_size, flags, token
_MAP_INFO_FMT = "<IIIIII16sIIQQIIIIQQI4x" # struct bpf_map_info (6.x)
_MAP_INFO_FIELDS = ("type", "id", "key_size", "value_size", "max_entries", "map_flags",
                    "name", "ifindex", "btf_vmlinux_value_type_id", "netns_dev",
                    "netns_ino", "btf_id", "btf_key_type_id", "btf_value_type_id",
                    "btf_vmlinux_id", "map_extra", "hash", "hash_size")

_CMD_NAMES = {v: k for k, v in vars(_uapi).items()
              if k.startswith("BPF_") and isinstance(v, int) and k[4:8] in ("MAP_", "OBJ_", "BTF_")
              and not k.startswith("BPF_MAP_TYPE_")}


def syscall_number(machine: str | None = None) -> int:
    """__NR_bpf for ``machine`` (default: this host), by name table."""
    m = (machine or platform.machine()).lower()
    try:
        return _NR_BPF[m]
    except KeyError:
        raise OSError(_errno.ENOSYS, f"bpf(): no syscall number known for architecture {m!r}") from None


class _Sys:
    """Holds the libc handle; created per call site, no module-level state."""

    def __init__(self) -> None:
        # dlopen(NULL): the process's own symbols, libc's syscall() among them.  Not
        # ctypes.util.find_library(), which forks /sbin/ldconfig on every call: the
        # fork's kernel memory was charged to the live cases' cgroups in the middle
        # of their measurements (docs/fidelity.md, "What the extra page was").
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        self.nr = syscall_number()


def _libc() -> _Sys:
    return _Sys()


def sys_bpf(cmd: int, attr: bytes | bytearray, sys: _Sys | None = None) -> int:
    """Raw bpf(cmd, attr, size).  Returns the result or raises OSError(errno)."""
    s = sys or _libc()
    buf = ctypes.create_string_buffer(bytes(attr), len(attr))
    ret = s.libc.syscall(ctypes.c_long(s.nr), ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr)))
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf({_CMD_NAMES.get(cmd, cmd)}): {os.strerror(e) if e != ENOTSUPP else 'ENOTSUPP'}")
    return int(ret)


def _sys_bpf_buf(cmd: int, buf: ctypes.Array, sys: _Sys) -> int:
    """bpf() on a caller-owned buffer, so the kernel's write-backs are visible."""
    ret = sys.libc.syscall(ctypes.c_long(sys.nr), ctypes.c_int(cmd), buf, ctypes.c_uint(len(buf)))
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf({_CMD_NAMES.get(cmd, cmd)}): {os.strerror(e) if e != ENOTSUPP else 'ENOTSUPP'}")
    return int(ret)


def _addr(b: ctypes.Array | None) -> int:
    return 0 if b is None else ctypes.addressof(b)


def map_type_id(map_type: int | str) -> int:
    if isinstance(map_type, str):
        name = map_type.upper().removeprefix("BPF_MAP_TYPE_")
        if name not in MAP_TYPES:
            raise ValueError(f"unknown map type {map_type!r}")
        return MAP_TYPES[name]
    if isinstance(map_type, bool) or not isinstance(map_type, int):
        raise TypeError("map_type must be an int or a BPF_MAP_TYPE_* name")
    return map_type


def pack_map_create(map_type: int, key_size: int, value_size: int, max_entries: int,
                    map_flags: int = 0, inner_map_fd: int = 0, numa_node: int = 0,
                    name: str = "", btf_fd: int = 0, btf_key_type_id: int = 0,
                    btf_value_type_id: int = 0, btf_vmlinux_value_type_id: int = 0,
                    map_extra: int = 0, map_ifindex: int = 0) -> bytes:
    """union bpf_attr for BPF_MAP_CREATE (anonymous struct, include/uapi/linux/bpf.h)."""
    for nm, v in (("key_size", key_size), ("value_size", value_size),
                  ("max_entries", max_entries), ("map_flags", map_flags)):
        if not 0 <= v < 2**32:
            raise ValueError(f"{nm} {v} does not fit in __u32")
    nb = name.encode()
    if len(nb) > 16:
        raise ValueError("map name longer than BPF_OBJ_NAME_LEN (16)")
    return _uapi.pack_attr(BPF_MAP_CREATE, map_type=map_type, key_size=key_size,
                           value_size=value_size, max_entries=max_entries, map_flags=map_flags,
                           inner_map_fd=inner_map_fd, numa_node=numa_node, map_name=nb,
                           map_ifindex=map_ifindex, btf_fd=btf_fd,
                           btf_key_type_id=btf_key_type_id,
                           btf_value_type_id=btf_value_type_id,
                           btf_vmlinux_value_type_id=btf_vmlinux_value_type_id,
                           map_extra=map_extra)


@dataclass
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    btf_id: int
    map_extra: int


class BpfMap:
    """An fd for a live BPF map.  Close it (or use ``with``) to drop the reference."""

    def __init__(self, fd: int, key_size: int, value_size: int, map_type: int,
                 percpu_value_size: int | None = None, sys: _Sys | None = None) -> None:
        self.fd = fd
        self.key_size = key_size
        self.value_size = value_size
        self.map_type = map_type
        # Per-cpu maps exchange round_up(value_size, 8) * possible CPUs bytes (bpf_map_value_size()).
        self.io_value_size = percpu_value_size if percpu_value_size is not None else value_size
        self._sys = sys or _libc()

    # -- lifetime ------------------------------------------------------------------
    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "BpfMap":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers -------------------------------------------------------------------
    def _key(self, key: bytes | int | None) -> ctypes.Array | None:
        if key is None:
            return None
        if isinstance(key, int):
            key = key.to_bytes(self.key_size, "little")
        if len(key) != self.key_size:
            raise ValueError(f"key is {len(key)} bytes, map key_size is {self.key_size}")
        return ctypes.create_string_buffer(bytes(key), max(len(key), 1))

    def _val(self, value: bytes | int | None) -> ctypes.Array:
        n = self.io_value_size
        if value is None:
            return ctypes.create_string_buffer(max(n, 1))
        if isinstance(value, int):
            value = value.to_bytes(n, "little")
        if len(value) != n:
            raise ValueError(f"value is {len(value)} bytes, map expects {n}")
        return ctypes.create_string_buffer(bytes(value), max(n, 1))

    def _elem(self, cmd: int, key: ctypes.Array | None, val: ctypes.Array | None, flags: int) -> int:
        attr = _uapi.pack_attr(cmd, map_fd=self.fd, key=_addr(key), value=_addr(val), flags=flags)
        buf = ctypes.create_string_buffer(attr, len(attr))
        return _sys_bpf_buf(cmd, buf, self._sys)

    # -- element commands (map_update_elem() etc., kernel/bpf/syscall.c) -------------
    def update(self, key: bytes | int | None, value: bytes | int, flags: int = BPF_ANY) -> None:
        self._elem(BPF_MAP_UPDATE_ELEM, self._key(key), self._val(value), flags)

    def lookup(self, key: bytes | int | None, flags: int = 0) -> bytes:
        v = self._val(None)
        self._elem(BPF_MAP_LOOKUP_ELEM, self._key(key), v, flags)
        return v.raw[: self.io_value_size]

    def lookup_and_delete(self, key: bytes | int | None = None) -> bytes:
        v = self._val(None)
        self._elem(BPF_MAP_LOOKUP_AND_DELETE_ELEM, self._key(key), v, 0)
        return v.raw[: self.io_value_size]

    def delete(self, key: bytes | int) -> None:
        self._elem(BPF_MAP_DELETE_ELEM, self._key(key), None, 0)

    def get_next_key(self, key: bytes | int | None) -> bytes:
        nk = ctypes.create_string_buffer(max(self.key_size, 1))
        self._elem(BPF_MAP_GET_NEXT_KEY, self._key(key), nk, 0)
        return nk.raw[: self.key_size]

    def keys(self) -> Iterator[bytes]:
        k: bytes | None = None
        while True:
            try:
                k = self.get_next_key(k)
            except OSError as e:
                if e.errno == _errno.ENOENT:
                    return
                raise
            yield k

    def freeze(self) -> None:
        attr = _uapi.pack_attr(BPF_MAP_FREEZE, map_fd=self.fd)
        _sys_bpf_buf(BPF_MAP_FREEZE, ctypes.create_string_buffer(attr, len(attr)), self._sys)

    # -- batch commands (generic_map_*_batch(), htab_map_*_batch()) ------------------
    def _batch(self, cmd: int, keys: ctypes.Array, values: ctypes.Array | None, count: int,
               in_batch: ctypes.Array | None = None, out_batch: ctypes.Array | None = None,
               elem_flags: int = 0) -> tuple[int, int | None]:
        """Returns (count processed, errno or None); a partial batch is not an exception."""
        attr = _uapi.pack_attr(cmd, in_batch=_addr(in_batch), out_batch=_addr(out_batch),
                               keys=_addr(keys), values=_addr(values), count=count,
                               map_fd=self.fd, elem_flags=elem_flags, flags=0)
        buf = ctypes.create_string_buffer(attr, len(attr))
        err: int | None = None
        try:
            _sys_bpf_buf(cmd, buf, self._sys)
        except OSError as e:
            err = e.errno
        done = int(_uapi.unpack_attr(cmd, buf.raw)["count"])
        return done, err

    def update_batch(self, keys: list[bytes], values: list[bytes], elem_flags: int = 0) -> int:
        """BPF_MAP_UPDATE_BATCH; raises OSError carrying the processed count in ``.count``."""
        if len(keys) != len(values):
            raise ValueError("keys and values differ in length")
        kb = ctypes.create_string_buffer(b"".join(keys), max(1, self.key_size * len(keys)))
        vb = ctypes.create_string_buffer(b"".join(values), max(1, self.io_value_size * len(values)))
        done, err = self._batch(BPF_MAP_UPDATE_BATCH, kb, vb, len(keys), elem_flags=elem_flags)
        if err is not None:
            ex = OSError(err, f"bpf(BPF_MAP_UPDATE_BATCH): failed after {done} of {len(keys)}")
            ex.count = done  # type: ignore[attr-defined]
            raise ex
        return done

    def delete_batch(self, keys: list[bytes]) -> int:
        kb = ctypes.create_string_buffer(b"".join(keys), max(1, self.key_size * len(keys)))
        done, err = self._batch(BPF_MAP_DELETE_BATCH, kb, None, len(keys))
        if err is not None:
            ex = OSError(err, f"bpf(BPF_MAP_DELETE_BATCH): failed after {done} of {len(keys)}")
            ex.count = done  # type: ignore[attr-defined]
            raise ex
        return done

    def lookup_batch(self, chunk: int = 64, delete: bool = False) -> list[tuple[bytes, bytes]]:
        """All entries via BPF_MAP_LOOKUP[_AND_DELETE]_BATCH, ``chunk`` at a time."""
        cmd = BPF_MAP_LOOKUP_AND_DELETE_BATCH if delete else BPF_MAP_LOOKUP_BATCH
        out: list[tuple[bytes, bytes]] = []
        # The batch token is a bucket index (u32) for hashes and a key for arrays; 8 bytes hold both.
        tok_size = max(self.key_size, 8)
        in_b: ctypes.Array | None = None
        while True:
            kb = ctypes.create_string_buffer(self.key_size * chunk)
            vb = ctypes.create_string_buffer(self.io_value_size * chunk)
            out_b = ctypes.create_string_buffer(tok_size)
            done, err = self._batch(cmd, kb, vb, chunk, in_b, out_b)
            for i in range(done):
                out.append((kb.raw[i * self.key_size:(i + 1) * self.key_size],
                            vb.raw[i * self.io_value_size:(i + 1) * self.io_value_size]))
            if err == _errno.ENOENT:
                return out
            if err is not None:
                raise OSError(err, f"bpf({_CMD_NAMES[cmd]}): {os.strerror(err)}")
            in_b = out_b

    # -- introspection ---------------------------------------------------------------
    def info(self) -> MapInfo:
        return obj_get_info_by_fd(self.fd, self._sys)

    def fdinfo(self) -> dict[str, str]:
        return fdinfo(self.fd)

    @property
    def memlock(self) -> int:
        """fdinfo 'memlock' (bpf_map_show_fdinfo(): map->ops->map_mem_usage() on 6.4+)."""
        return int(self.fdinfo()["memlock"])


def map_create(map_type: int | str, key_size: int, value_size: int, max_entries: int,
               map_flags: int = 0, *, name: str = "", inner_map_fd: int = 0,
               numa_node: int = 0, btf_fd: int = 0, btf_key_type_id: int = 0,
               btf_value_type_id: int = 0, map_extra: int = 0,
               ncpus: int | None = None, sys: _Sys | None = None) -> BpfMap:
    """BPF_MAP_CREATE (map_create(), kernel/bpf/syscall.c).  Returns the new map's fd
    wrapper.  ``sys``: the libc handle to make the call with (default: a new one)."""
    t = map_type_id(map_type)
    attr = pack_map_create(t, key_size, value_size, max_entries, map_flags, inner_map_fd,
                           numa_node, name, btf_fd, btf_key_type_id, btf_value_type_id, 0,
                           map_extra)
    s = sys or _libc()
    fd = sys_bpf(BPF_MAP_CREATE, attr, s)
    io = None
    if t in (MAP_TYPES["PERCPU_HASH"], MAP_TYPES["PERCPU_ARRAY"], MAP_TYPES["LRU_PERCPU_HASH"],
             MAP_TYPES["PERCPU_CGROUP_STORAGE"]):
        io = ((value_size + 7) // 8 * 8) * (ncpus if ncpus is not None else possible_cpus())
    elif t in (MAP_TYPES["ARRAY_OF_MAPS"], MAP_TYPES["HASH_OF_MAPS"], MAP_TYPES["PROG_ARRAY"],
               MAP_TYPES["PERF_EVENT_ARRAY"], MAP_TYPES["CGROUP_ARRAY"]):
        io = 4  # fd maps: lookup returns an id, update takes an fd
    return BpfMap(fd, key_size, value_size, t, io, s)


def btf_load(blob: bytes, log_size: int = 0) -> int:
    """BPF_BTF_LOAD (bpf_btf_load(), kernel/bpf/syscall.c).  Returns the BTF fd."""
    s = _libc()
    data = ctypes.create_string_buffer(blob, len(blob))
    log = ctypes.create_string_buffer(log_size) if log_size else None
    attr = struct.pack(_BTF_LOAD_FMT, _addr(data), _addr(log), len(blob), log_size,
                       1 if log_size else 0, 0, 0, 0)
    buf = ctypes.create_string_buffer(attr, len(attr))
    try:
        return _sys_bpf_buf(BPF_BTF_LOAD, buf, s)
    except OSError as e:
        if log is not None:
            raise OSError(e.errno, f"bpf(BPF_BTF_LOAD): {e.strerror}; log: "
                          f"{log.value.decode(errors='replace').strip()}") from None
        raise


# -- programs: just enough to run map helpers from a program (BPF_PROG_TEST_RUN) ------
BPF_PSEUDO_MAP_FD = 1
BPF_FUNC_map_lookup_elem = 1
# struct bpf_prog_test_run attr (include/uapi/linux/bpf.h): prog_fd, retval, data_size_in,
# data_size_out, data_in, data_out, repeat, duration
_TEST_RUN_FMT = "<IIIIQQII"


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn (code, dst_reg:4 | src_reg:4, off, imm)."""
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


def lookup_program(map_fd: int, keys: list[int]) -> bytes:
    """Instructions that call bpf_map_lookup_elem(map, &key) for each u32 key in turn and
    return 0: a program's lookup, which marks an LRU element referenced
    (htab_lru_map_lookup_elem()), where a syscall lookup does not."""
    insns = b""
    for k in keys:
        insns += _insn(0x62, dst=10, off=-4, imm=struct.unpack("<i", struct.pack("<I", k))[0])
        insns += _insn(0xbf, dst=2, src=10)                      # r2 = r10
        insns += _insn(0x07, dst=2, imm=-4)                      # r2 += -4
        insns += _insn(0x18, dst=1, src=BPF_PSEUDO_MAP_FD, imm=map_fd) + _insn(0)  # r1 = map
        insns += _insn(0x85, imm=BPF_FUNC_map_lookup_elem)       # call
    return insns + _insn(0xb7, dst=0, imm=0) + _insn(0x95)      # r0 = 0; exit


def prog_load(prog_type: int, insns: bytes, license: str = "GPL", log_size: int = 65536) -> int:
    """BPF_PROG_LOAD (bpf_prog_load(), kernel/bpf/syscall.c).  Returns the program fd; a
    verifier refusal raises OSError with the verifier log."""
    s = _libc()
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(log_size)
    attr = _uapi.pack_attr(_uapi.BPF_PROG_LOAD, prog_type=prog_type, insn_cnt=len(insns) // 8,
                           insns=_addr(code), license=_addr(lic), log_level=1,
                           log_size=log_size, log_buf=_addr(log))
    buf = ctypes.create_string_buffer(attr, len(attr))
    try:
        return _sys_bpf_buf(_uapi.BPF_PROG_LOAD, buf, s)
    except OSError as e:
        raise OSError(e.errno, f"bpf(BPF_PROG_LOAD): {e.strerror}; log: "
                      f"{log.value.decode(errors='replace').strip()[-2000:]}") from None


def prog_test_run(prog_fd: int, data: bytes = bytes(64)) -> int:
    """BPF_PROG_TEST_RUN once on the calling cpu with ``data`` as the packet; the
    program's return value."""
    s = _libc()
    din = ctypes.create_string_buffer(data, len(data))
    dout = ctypes.create_string_buffer(len(data) + 512)
    attr = struct.pack(_TEST_RUN_FMT, prog_fd, 0, len(data), len(dout), _addr(din), _addr(dout),
                       1, 0)
    buf = ctypes.create_string_buffer(attr, len(attr))
    _sys_bpf_buf(_uapi.BPF_PROG_TEST_RUN, buf, s)
    return int(struct.unpack_from("<I", buf.raw, 4)[0])


def obj_get_info_by_fd(fd: int, sys: _Sys | None = None) -> MapInfo:
    """BPF_OBJ_GET_INFO_BY_FD for a map fd (bpf_map_get_info_by_fd())."""
    s = sys or _libc()
    n = struct.calcsize(_MAP_INFO_FMT)
    info = ctypes.create_string_buffer(n)
    attr = _uapi.pack_attr(BPF_OBJ_GET_INFO_BY_FD, bpf_fd=fd, info_len=n, info=_addr(info))
    buf = ctypes.create_string_buffer(attr, len(attr))
    _sys_bpf_buf(BPF_OBJ_GET_INFO_BY_FD, buf, s)
    got = int(_uapi.unpack_attr(BPF_OBJ_GET_INFO_BY_FD, buf.raw)["info_len"])
    raw = info.raw[:got] + bytes(n - min(got, n))
    d = dict(zip(_MAP_INFO_FIELDS, struct.unpack(_MAP_INFO_FMT, raw)))
    return MapInfo(type=d["type"], id=d["id"], key_size=d["key_size"],
                   value_size=d["value_size"], max_entries=d["max_entries"],
                   map_flags=d["map_flags"], name=d["name"].split(b"\0")[0].decode(),
                   btf_id=d["btf_id"], map_extra=d["map_extra"])


def map_get_fd_by_id(map_id: int, open_flags: int = 0) -> int:
    """BPF_MAP_GET_FD_BY_ID: a new fd for an existing map id (needs CAP_SYS_ADMIN)."""
    attr = _uapi.pack_attr(BPF_MAP_GET_FD_BY_ID, start_id=map_id, open_flags=open_flags)
    return sys_bpf(BPF_MAP_GET_FD_BY_ID, attr)


def close(fd: int) -> None:
    os.close(fd)


def map_ids(sys: _Sys | None = None) -> list[int]:
    """Every map id of the running kernel (BPF_MAP_GET_NEXT_ID until ENOENT)."""
    s = sys or _libc()
    ids, start = [], 0
    while True:
        attr = _uapi.pack_attr(BPF_MAP_GET_NEXT_ID, start_id=start)
        buf = ctypes.create_string_buffer(attr, len(attr))
        try:
            _sys_bpf_buf(BPF_MAP_GET_NEXT_ID, buf, s)
        except OSError as exc:
            if exc.errno == _errno.ENOENT:
                return ids
            raise
        start = int(_uapi.unpack_attr(BPF_MAP_GET_NEXT_ID, buf.raw)["next_id"])
        ids.append(start)


def map_holders() -> dict[int, list[int]]:
    """map id -> pids holding an fd on it, from /proc/*/fdinfo (read-only)."""
    out: dict[int, list[int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                info = fdinfo(int(fd), pid)
            except (OSError, ValueError):
                continue
            if "map_id" in info:
                out.setdefault(int(info["map_id"]), []).append(int(pid))
    return out


def memory_cgroup_of(pid: int) -> str | None:
    """The memory cgroup path of a process (/proc/<pid>/cgroup: v1 "memory" or v2 "")."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as fh:
            lines = [line.rstrip("\n").split(":", 2) for line in fh]
    except OSError:
        return None
    for hid, ctrls, path in lines:
        if "memory" in ctrls.split(","):
            return path
    for hid, ctrls, path in lines:
        if hid == "0" and ctrls == "":
            return path
    return None


def fdinfo(fd: int, pid: int | str = "self") -> dict[str, str]:
    """Parse /proc/<pid>/fdinfo/<fd> ("key:\\tvalue" lines; bpf_map_show_fdinfo())."""
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        for line in f:
            k, sep, v = line.partition(":")
            if sep:
                out[k.strip()] = v.strip()
    return out


def possible_cpus() -> int:
    """Number of possible CPUs (num_possible_cpus()), from /sys/devices/system/cpu/possible."""
    with open("/sys/devices/system/cpu/possible") as f:
        return parse_cpu_list(f.read())


def parse_cpu_list(text: str) -> int:
    """Count CPUs in a list like '0-1,4,6-7' (bitmap_parselist format)."""
    n = 0
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        n += (int(hi) - int(lo) + 1) if hi else 1
    if n <= 0:
        raise ValueError(f"empty cpu list {text!r}")
    return n
