"""``pybpfmem verify --semantics``: what the map commands do, step by step, on the live
kernel and on the model.

A *script* is plain data (JSON): a family name, the seed it came from and a list of
steps, each one bpf() command on a map named in the script::

    {"family": "lpm", "seed": "0:lpm:3",
     "steps": [{"op": "create", "map": "m", "type": "LPM_TRIE", "key": 8, "value": 4,
                "max": 16, "flags": 1},
               {"op": "update", "map": "m", "key": "10000000c0a80000", "value": "01000000",
                "flags": 0},
               {"op": "lookup", "map": "m", "key": "08000000c0a80001"}]}

Keys and values are hex; a value ``"fd:NAME"`` is the fd of map, program or socket
NAME on that side (map-in-map, prog array and sock map updates), ``"HEX|NAME"`` those
bytes followed by NAME's fd (a devmap/cpumap entry program); a map ``"@N"`` is the
literal fd N (0..2: the process's
standard fds, which are open and not maps; 999: not open).  The same ``Executor``
runs a script on either side: ``LiveSide`` makes the raw bpf() calls (ctypes, in a
forked child pinned to cpu 0 inside a scratch cgroup below our own memory cgroup,
pybpfmem/live/session.py), ``ModelSide`` makes them on a host-matched model System
(pybpfmem/live/host.py), with user buffers in the task's simulated memory.  Each
step yields an observation: the errno, and what the command returned (the value,
the next key, a batch's count, keys, values and out_batch, a whole get_next_key
walk, the map's info after a create).  ``compare()`` checks every step: exactly,
or -- where the kernel promises no order (hash-family iteration follows jhash
buckets with a random seed) -- as sets.  Map ids (map-in-map lookups) are
compared by the map they name.

Sequences come from pybpfmem/live/sequences.py, one generator per map family,
seeded by ``"<base seed>:<family>:<n>"`` so any script can be made again.  A
divergence is shrunk (steps removed while the same step still differs) and
printed as a script file that ``verify --semantics --replay FILE`` runs on both
sides again.
"""
from __future__ import annotations

import argparse
import ctypes
import errno as _errno
import json
import os
import select
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..bpf import uapi as U

Step = dict[str, Any]
Script = dict[str, Any]
Obs = dict[str, Any]

#: a literal fd no process of ours has open (an fd map update with a closed map)
MISSING_FD = 999
#: a key or value ``"bad"`` is a pointer to this address, which no process maps (the
#: kernel's copy_from_user() faults: EFAULT; the model's user memory starts above it)
BAD_PTR, BAD_ADDR = "bad", 8
#: types whose syscall value is a u32 fd on update and an id on lookup
ID_VALUE_TYPES = frozenset({U.BPF_MAP_TYPE_ARRAY_OF_MAPS, U.BPF_MAP_TYPE_HASH_OF_MAPS,
                            U.BPF_MAP_TYPE_PROG_ARRAY})
FD_VALUE_TYPES = ID_VALUE_TYPES | {U.BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                                   U.BPF_MAP_TYPE_CGROUP_ARRAY}
PERCPU_VALUE_TYPES = frozenset({U.BPF_MAP_TYPE_PERCPU_HASH, U.BPF_MAP_TYPE_LRU_PERCPU_HASH,
                                U.BPF_MAP_TYPE_PERCPU_ARRAY,
                                U.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE})
#: batch tokens: hash maps use a u32 bucket index (__htab_map_lookup_and_delete_batch()),
#: the generic batch code a key (generic_map_lookup_batch())
HASH_TOKEN_TYPES = frozenset({U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_PERCPU_HASH,
                              U.BPF_MAP_TYPE_LRU_HASH, U.BPF_MAP_TYPE_LRU_PERCPU_HASH,
                              U.BPF_MAP_TYPE_HASH_OF_MAPS})
#: types whose iteration order the kernel does not promise (bucket order of a jhash
#: with a random seed): walks compare as sets, get_next_key by membership
UNORDERED_TYPES = HASH_TOKEN_TYPES | {U.BPF_MAP_TYPE_DEVMAP_HASH, U.BPF_MAP_TYPE_SOCKHASH}
LRU_TYPES = frozenset({U.BPF_MAP_TYPE_LRU_HASH, U.BPF_MAP_TYPE_LRU_PERCPU_HASH})
#: types whose 8-byte value is (u32, program id): struct bpf_devmap_val, bpf_cpumap_val
PROG_VALUE_TYPES = frozenset({U.BPF_MAP_TYPE_DEVMAP, U.BPF_MAP_TYPE_DEVMAP_HASH,
                              U.BPF_MAP_TYPE_CPUMAP})
#: the programs of the scripts: BPF_MOV64_IMM(BPF_REG_0, 0); BPF_EXIT_INSN()
RET0_INSNS = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])
#: sockets a script can make: a connected TCP socket, a listening one, one never
#: connected (state CLOSE), a bound UDP socket (an unbound one: docs/model.md)
SOCKET_KINDS = ("tcp", "listen", "tcp_new", "udp")
WALK_LIMIT = 4096


def map_type_id(name: str | int) -> int:
    if isinstance(name, int):
        return name
    return getattr(U, "BPF_MAP_TYPE_" + name.upper().removeprefix("BPF_MAP_TYPE_"))


# ------------------------------------------------------------------ sides
class LiveSide:
    """Raw bpf() on the running kernel (the process we run in: the forked child)."""

    def __init__(self, ncpus: int) -> None:
        from . import bpf as B
        self.ncpus = ncpus
        sysh = B._libc()
        self._libc, self._nr = sysh.libc, sysh.nr
        self._bufs: dict[int, ctypes.Array] = {}
        self._keep: list[Any] = []

    def bpf(self, cmd: int, attr: bytearray) -> int:
        buf = ctypes.create_string_buffer(bytes(attr), len(attr))
        ret = self._libc.syscall(ctypes.c_long(self._nr), ctypes.c_int(cmd), buf,
                                 ctypes.c_uint(len(attr)))
        attr[:] = buf.raw[:len(attr)]
        if ret < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return int(ret)

    def buf(self, data: bytes | int) -> int:
        n = data if isinstance(data, int) else len(data)
        b = ctypes.create_string_buffer(b"" if isinstance(data, int) else bytes(data), max(n, 1))
        addr = ctypes.addressof(b)
        self._bufs[addr] = b
        return addr

    def read(self, addr: int, n: int) -> bytes:
        return ctypes.string_at(addr, n) if n else b""

    def release(self) -> None:
        self._bufs.clear()

    def close(self, fd: int) -> None:
        os.close(fd)

    def socket(self, kind: str) -> int:
        """A socket of ``kind`` (SOCKET_KINDS); its fd stays ours until close()."""
        import socket as so
        if kind == "udp":
            s = so.socket(so.AF_INET, so.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
        elif kind == "tcp_new":
            s = so.socket(so.AF_INET, so.SOCK_STREAM)
        else:
            lst = so.socket(so.AF_INET, so.SOCK_STREAM)
            lst.bind(("127.0.0.1", 0))
            lst.listen(4)
            if kind == "listen":
                return lst.detach()
            s = so.create_connection(lst.getsockname())
            peer, _ = lst.accept()
            self._keep += [lst, peer]       # the other end stays open for the script
        return s.detach()

    def cookie(self, fd: int) -> int:
        """The socket's cookie (SO_COOKIE), what a sockmap lookup returns."""
        import socket as so
        s = so.socket(fileno=os.dup(fd))
        try:
            return int.from_bytes(s.getsockopt(so.SOL_SOCKET, 57, 8), "little")
        finally:
            s.close()

    def cleanup(self) -> None:
        for s in self._keep:
            s.close()
        self._keep.clear()


class ModelSide:
    """The same calls on a model Task (raw bpf() through Task.bpf(), user buffers in
    its simulated user memory)."""

    def __init__(self, task: Any) -> None:
        self.task = task
        self.ncpus = task.system.nr_cpus
        self.umem = task.bpf_task.umem
        self._bufs: list[int] = []

    def bpf(self, cmd: int, attr: bytearray) -> int:
        return int(self.task.bpf(cmd, attr))

    def buf(self, data: bytes | int) -> int:
        addr = int(self.umem.alloc(data if not isinstance(data, int) else max(data, 0)))
        self._bufs.append(addr)
        return addr

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.umem.read(addr, n))

    def release(self) -> None:
        for a in self._bufs:
            self.umem.free(a)
        self._bufs.clear()

    def close(self, fd: int) -> None:
        self.task.close(fd)

    def socket(self, kind: str) -> int:
        """The model's socket of ``kind``: a TCP socket that is not connected (CLOSE)
        is the one that is neither established nor listening."""
        fd = int(self.task.create_socket("udp" if kind == "udp" else "tcp"))
        if kind == "tcp_new":
            self.task.fd_object(fd).established = False
        return fd

    def cookie(self, fd: int) -> int:
        return int(self.task.fd_object(fd).ino)

    def cleanup(self) -> None:
        pass


# ------------------------------------------------------------------ the executor
@dataclass
class _Map:
    name: str
    fd: int
    type: int
    key_size: int
    value_size: int
    io_size: int           # bytes of a value in the syscall buffer (bpf_map_value_size())
    token: int             # bytes of a batch token
    id: int = 0
    out_batch: bytes | None = None


class Executor:
    """Runs script steps on one side; every step returns an observation dict."""

    def __init__(self, side: Any) -> None:
        self.side = side
        self.maps: dict[str, _Map] = {}
        self.objs: dict[str, int] = {}             # programs and sockets: name -> fd
        self.names_by_id: dict[int, str] = {}      # map ids
        self.progs_by_id: dict[int, str] = {}
        self.sockets_by_cookie: dict[int, str] = {}

    # -- references
    def _fd(self, ref: Any) -> int:
        if isinstance(ref, str) and ref.startswith("@"):
            return int(ref[1:])
        m = self.maps.get(ref)
        if m is not None:
            return m.fd
        return self.objs.get(ref, MISSING_FD)

    def _meta(self, ref: Any) -> _Map:
        m = self.maps.get(ref) if isinstance(ref, str) else None
        if m is not None:
            return m
        return _Map(str(ref), self._fd(ref), 0, 4, 4, 4, 4)

    def _value_bytes(self, m: _Map, v: Any) -> bytes:
        """``"fd:NAME"``: the u32 fd of NAME on this side; ``"HEX|NAME"``: the bytes, then
        NAME's fd (a devmap/cpumap value with an entry program)."""
        if v.startswith("fd:"):
            return struct.pack("<I", self._fd(v[3:]) & 0xFFFFFFFF)
        if "|" in v:
            head, name = v.split("|", 1)
            return bytes.fromhex(head) + struct.pack("<I", self._fd(name) & 0xFFFFFFFF)
        return bytes.fromhex(v)

    def _ptr(self, data: bytes | None, size: int | None = None) -> int:
        """A user buffer holding ``data`` (at least ``size`` bytes), 0 for None."""
        if data is None:
            return 0
        n = max(len(data), size or 0)
        return self.side.buf(bytes(data).ljust(n, b"\0"))

    def _key_ptr(self, m: _Map, key: Any) -> int:
        """NULL for None; ``"bad"``: an unmapped address (copy_from_user() faults)."""
        if key is None:
            return 0
        if key == BAD_PTR:
            return BAD_ADDR
        return self._ptr(bytes.fromhex(key), m.key_size)

    def _call(self, cmd: int, **fields: int | bytes) -> tuple[int | None, int, bytearray]:
        """bpf(cmd) with the attr built from ``fields``: (errno or None, result, the attr
        after the call, with whatever the kernel wrote back into it)."""
        attr = bytearray(U.pack_attr(cmd, **fields))
        try:
            return None, self.side.bpf(cmd, attr), attr
        except OSError as e:
            return e.errno, -1, attr

    def _id_name(self, raw: bytes) -> str:
        mid = struct.unpack("<I", raw[:4])[0]
        return "id:" + self.names_by_id.get(mid, "?")

    def _value_out(self, m: _Map, raw: bytes) -> str:
        """A value as both sides can agree on it: ids and cookies by the name of what
        they identify (the numbers differ between the kernel and the model)."""
        if m.type == U.BPF_MAP_TYPE_PROG_ARRAY:
            return "prog:" + self.progs_by_id.get(struct.unpack("<I", raw[:4])[0], "?")
        if m.type in ID_VALUE_TYPES:
            return self._id_name(raw)
        if m.type in (U.BPF_MAP_TYPE_SOCKMAP, U.BPF_MAP_TYPE_SOCKHASH) and len(raw) == 8:
            return "sk:" + self.sockets_by_cookie.get(int.from_bytes(raw, "little"), "?")
        if m.type in PROG_VALUE_TYPES and len(raw) == 8:
            pid = struct.unpack("<I", raw[4:8])[0]
            return raw[:4].hex() + ("|prog:" + self.progs_by_id.get(pid, "?") if pid else "")
        return raw.hex()

    # -- running
    def run(self, steps: Iterable[Step]) -> list[Obs]:
        out = []
        try:
            for st in steps:
                out.append(self.step(st))
        finally:
            self.close_all()
        return out

    def close_all(self) -> None:
        for fd in [m.fd for m in self.maps.values()] + list(self.objs.values()):
            try:
                self.side.close(fd)
            except OSError:
                pass
        self.maps.clear()
        self.objs.clear()
        self.side.cleanup()

    def step(self, st: Step) -> Obs:
        try:
            return getattr(self, "_op_" + st["op"])(st)
        except OSError as e:            # an fd of ours (close) -- same on both sides
            return {"errno": e.errno}
        except Exception as e:  # noqa: BLE001 - the model must answer with an errno
            return {"raised": f"{type(e).__name__}: {e}"}
        finally:
            self.side.release()

    # -- creation
    def _op_create(self, st: Step) -> Obs:
        """BPF_MAP_CREATE; on success the map's bpf_map_info (type, sizes, max_entries,
        flags, name) as OBJ_GET_INFO_BY_FD reports it."""
        t = map_type_id(st["type"])
        fields: dict[str, int | bytes] = dict(
            map_type=t, key_size=st.get("key", 4), value_size=st.get("value", 4),
            max_entries=st.get("max", 1), map_flags=st.get("flags", 0),
            map_name=st.get("name", "").encode(), numa_node=st.get("numa", 0),
            map_extra=st.get("extra", 0))
        inner = st.get("inner")
        if inner is not None:
            fields["inner_map_fd"] = inner if isinstance(inner, int) else self._fd(inner)
        err, fd, _ = self._call(U.BPF_MAP_CREATE, **fields)
        if err is not None:
            return {"errno": err}
        old = self.maps.pop(st["map"], None)
        if old is not None:
            self.side.close(old.fd)
        ks, vs = int(fields["key_size"]), int(fields["value_size"])  # type: ignore[arg-type]
        io = vs
        if t in PERCPU_VALUE_TYPES:
            io = (vs + 7) // 8 * 8 * self.side.ncpus
        elif t in FD_VALUE_TYPES:
            io = 4
        m = _Map(st["map"], fd, t, ks, vs, io, 4 if t in HASH_TOKEN_TYPES else ks)
        self.maps[m.name] = m
        info = self._info(fd)
        m.id = int(info["id"])
        self.names_by_id[m.id] = m.name
        return {"errno": None, "info": [info[k] for k in ("type", "key_size", "value_size",
                                                         "max_entries", "map_flags", "name")]}

    def _info(self, fd: int) -> dict[str, Any]:
        n = 80      # struct bpf_map_info up to btf_vmlinux_id: every kernel since 5.10 has it
        out = self.side.buf(n)
        err, _, _ = self._call(U.BPF_OBJ_GET_INFO_BY_FD, bpf_fd=fd, info_len=n, info=out)
        if err is not None:
            raise OSError(err, "OBJ_GET_INFO_BY_FD")
        info = U.unpack_layout(U.MAP_INFO_LAYOUT, self.side.read(out, n), present_only=True)
        info["name"] = bytes(info["name"]).split(b"\0")[0].decode()  # type: ignore[arg-type]
        return info

    def _op_close(self, st: Step) -> Obs:
        m = self.maps.pop(st["map"], None)
        fd = m.fd if m is not None else self.objs.pop(st["map"], None)
        if fd is None:
            return {"errno": _errno.EBADF}
        self.side.close(fd)
        return {"errno": None}

    def _op_prog(self, st: Step) -> Obs:
        """BPF_PROG_LOAD of "r0 = 0; exit" (GPL) of a program type and expected attach type."""
        insns = self._ptr(RET0_INSNS)
        lic = self._ptr(b"GPL\0")
        err, fd, _ = self._call(U.BPF_PROG_LOAD, prog_type=getattr(U, "BPF_PROG_TYPE_" + st["type"]),
                                insn_cnt=len(RET0_INSNS) // 8, insns=insns, license=lic,
                                expected_attach_type=st.get("attach", 0))
        if err is not None:
            return {"errno": err}
        self.objs[st["name"]] = fd
        out = self.side.buf(16)
        e2, _, _ = self._call(U.BPF_OBJ_GET_INFO_BY_FD, bpf_fd=fd, info_len=16, info=out)
        if e2 is not None:
            raise OSError(e2, "OBJ_GET_INFO_BY_FD of a program")
        self.progs_by_id[struct.unpack("<I", self.side.read(out, 8)[4:8])[0]] = st["name"]
        return {"errno": None}

    def _op_socket(self, st: Step) -> Obs:
        """A socket (SOCKET_KINDS) for the sock maps; lookups return its cookie."""
        fd = self.side.socket(st["kind"])
        self.objs[st["name"]] = fd
        self.sockets_by_cookie[self.side.cookie(fd)] = st["name"]
        return {"errno": None}

    # -- element commands
    def _elem(self, cmd: int, m: _Map, key: Any, value: int, flags: int
              ) -> tuple[int | None, bytearray]:
        err, _, attr = self._call(cmd, map_fd=m.fd, key=self._key_ptr(m, key), value=value,
                                  flags=flags & 0xFFFFFFFFFFFFFFFF)
        return err, attr

    def _present(self, m: _Map) -> list[str]:
        keys, _ = self._walk(m)
        return sorted(keys)

    def _op_update(self, st: Step) -> Obs:
        m = self._meta(st["map"])
        v = st.get("value")
        vp = BAD_ADDR if v == BAD_PTR else self._ptr(
            None if v is None else self._value_bytes(m, v), m.io_size)
        err, _ = self._elem(U.BPF_MAP_UPDATE_ELEM, m, st.get("key"), vp, st.get("flags", 0))
        out: Obs = {"errno": err}
        if m.type in LRU_TYPES:
            out["present"] = self._present(m)     # LRU victims, exactly
        return out

    def _op_lookup(self, st: Step) -> Obs:
        """BPF_MAP_LOOKUP_ELEM (a bloom filter's lookup tests the value passed in)."""
        m = self._meta(st["map"])
        v = st.get("value")
        vp = self._ptr(bytes.fromhex(v) if v is not None else b"", m.io_size)
        err, _ = self._elem(U.BPF_MAP_LOOKUP_ELEM, m, st.get("key"), vp, st.get("flags", 0))
        if err is not None:
            return {"errno": err}
        return {"errno": None, "value": self._value_out(m, self.side.read(vp, m.io_size))}

    def _op_lookup_and_delete(self, st: Step) -> Obs:
        m = self._meta(st["map"])
        vp = self._ptr(b"", m.io_size)
        err, _ = self._elem(U.BPF_MAP_LOOKUP_AND_DELETE_ELEM, m, st.get("key"), vp,
                            st.get("flags", 0))
        if err is not None:
            return {"errno": err}
        return {"errno": None, "value": self._value_out(m, self.side.read(vp, m.io_size))}

    def _op_delete(self, st: Step) -> Obs:
        m = self._meta(st["map"])
        err, _ = self._elem(U.BPF_MAP_DELETE_ELEM, m, st.get("key"), 0, st.get("flags", 0))
        return {"errno": err}

    def _next(self, m: _Map, key: Any) -> tuple[int | None, bytes]:
        out = self._ptr(b"", max(m.key_size, 1))
        err, _ = self._elem(U.BPF_MAP_GET_NEXT_KEY, m, key, out, 0)
        return err, self.side.read(out, m.key_size) if err is None else b""

    def _op_next(self, st: Step) -> Obs:
        """BPF_MAP_GET_NEXT_KEY; where the order is not promised, whether the key it
        returned is in the map (a lookup of it) stands in for the key itself."""
        m = self._meta(st["map"])
        err, nk = self._next(m, st.get("key"))
        if err is not None:
            return {"errno": err}
        if m.type in UNORDERED_TYPES:
            vp = self._ptr(b"", m.io_size)
            e2, _ = self._elem(U.BPF_MAP_LOOKUP_ELEM, m, nk.hex(), vp, 0)
            return {"errno": None, "member": e2 is None}
        return {"errno": None, "key": nk.hex()}

    def _walk(self, m: _Map) -> tuple[list[str], int | None]:
        keys: list[str] = []
        key: str | None = None
        while len(keys) < WALK_LIMIT:
            err, nk = self._next(m, key)
            if err is not None:
                return keys, err
            key = nk.hex()
            keys.append(key)
            self.side.release()
        return keys, None

    def _op_walk(self, st: Step) -> Obs:
        """get_next_key from NULL until it fails: every key, and the errno it ended with."""
        keys, err = self._walk(self._meta(st["map"]))
        return {"errno": err, "keys": keys}

    def _op_freeze(self, st: Step) -> Obs:
        err, _, _ = self._call(U.BPF_MAP_FREEZE, map_fd=self._fd(st["map"]))
        return {"errno": err}

    # -- batch commands
    def _batch(self, cmd: int, m: _Map, **fields: int) -> tuple[int | None, int]:
        err, _, attr = self._call(cmd, map_fd=m.fd, **fields)
        return err, int(U.unpack_attr(cmd, bytes(attr))["count"])  # type: ignore[arg-type]

    def _op_update_batch(self, st: Step) -> Obs:
        m = self._meta(st["map"])
        keys = b"".join(bytes.fromhex(k).ljust(m.key_size, b"\0")[:max(m.key_size, 0)]
                        for k in st["keys"])
        vals = b"".join(self._value_bytes(m, v).ljust(m.io_size, b"\0")[:m.io_size]
                        for v in st["values"])
        err, n = self._batch(U.BPF_MAP_UPDATE_BATCH, m, keys=self._ptr(keys, 1),
                             values=self._ptr(vals, 1), count=st.get("count", len(st["keys"])),
                             elem_flags=st.get("elem_flags", 0), flags=st.get("flags", 0))
        out: Obs = {"errno": err, "count": n}
        if m.type in LRU_TYPES:
            out["present"] = self._present(m)
        return out

    def _op_delete_batch(self, st: Step) -> Obs:
        m = self._meta(st["map"])
        keys = b"".join(bytes.fromhex(k).ljust(m.key_size, b"\0")[:m.key_size]
                        for k in st["keys"])
        err, n = self._batch(U.BPF_MAP_DELETE_BATCH, m, keys=self._ptr(keys, 1),
                             count=st.get("count", len(st["keys"])),
                             elem_flags=st.get("elem_flags", 0), flags=st.get("flags", 0))
        return {"errno": err, "count": n}

    def _op_lookup_batch(self, st: Step) -> Obs:
        """BPF_MAP_LOOKUP[_AND_DELETE]_BATCH: count, keys, values and out_batch, also on
        failure (the kernel copies the partial batch back with ENOENT at the end)."""
        m = self._meta(st["map"])
        count = st.get("count", 1)
        ib = st.get("in_batch")
        tok = None if ib is None else ((m.out_batch or b"") if ib == "prev" else bytes.fromhex(ib))
        tsize = max(m.token, 8)
        kp = self._ptr(b"", max(m.key_size * count, 1))
        vp = self._ptr(b"", max(m.io_size * count, 1))
        ob = self._ptr(b"", tsize)
        cmd = U.BPF_MAP_LOOKUP_AND_DELETE_BATCH if st.get("delete") else U.BPF_MAP_LOOKUP_BATCH
        err, n = self._batch(cmd, m, in_batch=self._ptr(tok, tsize), out_batch=ob, keys=kp,
                             values=vp, count=count, elem_flags=st.get("elem_flags", 0),
                             flags=st.get("flags", 0))
        out: Obs = {"errno": err, "count": n}
        if err in (None, _errno.ENOENT) and 0 <= n <= count:
            ks, vs = m.key_size, m.io_size
            kb, vb = self.side.read(kp, ks * n), self.side.read(vp, vs * n)
            out["keys"] = [kb[i * ks:(i + 1) * ks].hex() for i in range(n)]
            out["values"] = [self._value_out(m, vb[i * vs:(i + 1) * vs]) for i in range(n)]
            m.out_batch = self.side.read(ob, m.token)
            out["out_batch"] = m.out_batch.hex()
        return out


# ------------------------------------------------------------------ comparing
@dataclass
class Divergence:
    step: int
    op: str
    what: str          # errno, value, key, keys, count, out_batch, info, present, raised
    kernel: Any
    model: Any

    def signature(self) -> tuple[str, str]:
        return (self.op, self.what)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "op": self.op, "what": self.what,
                "kernel": self.kernel, "model": self.model}


def _types(script: Script, kobs: list[Obs]) -> list[int | None]:
    """The map type each step works on (None: a literal fd or a map that was never
    created), from the script's creates that the kernel accepted."""
    known: dict[str, int] = {}
    out: list[int | None] = []
    for st, ko in zip(script["steps"], kobs):
        if st["op"] == "create" and ko.get("errno") is None:
            known[st["map"]] = map_type_id(st["type"])
        out.append(known.get(st.get("map")) if isinstance(st.get("map"), str) else None)
    return out


def _unordered_view(obs: Obs) -> list[Any]:
    """Keys (with their values, for a batch) in an order that does not matter."""
    if "values" in obs:
        return sorted(zip(obs["keys"], obs["values"]))
    return sorted(obs["keys"])


def compare(script: Script, kobs: list[Obs], mobs: list[Obs]) -> list[Divergence]:
    """Every difference between the kernel's and the model's observations, step by step."""
    out: list[Divergence] = []
    for i, (st, t, ko, mo) in enumerate(zip(script["steps"], _types(script, kobs), kobs, mobs)):
        op = st["op"]
        if "raised" in mo or "raised" in ko:
            out.append(Divergence(i, op, "raised", ko.get("raised"), mo.get("raised")))
            continue
        if ko.get("errno") != mo.get("errno"):
            out.append(Divergence(i, op, "errno", ko.get("errno"), mo.get("errno")))
            if ko.get("present") != mo.get("present"):     # a failed LRU update evicts too
                out.append(Divergence(i, op, "present", ko.get("present"), mo.get("present")))
            continue
        unordered = t in UNORDERED_TYPES
        for f in sorted(set(ko) | set(mo)):
            if f == "errno" or (unordered and f == "values"):   # values: with their keys
                continue
            kv, mv = ko.get(f), mo.get(f)
            if unordered and f == "keys" and kv is not None and mv is not None:
                kv, mv = _unordered_view(ko), _unordered_view(mo)
            if kv != mv:
                out.append(Divergence(i, op, f, kv, mv))
    if len(kobs) != len(mobs):
        out.append(Divergence(min(len(kobs), len(mobs)), "-", "steps", len(kobs), len(mobs)))
    return out


# ------------------------------------------------------------------ the two runners
def _send(fd: int, obj: Any) -> None:
    data = json.dumps(obj).encode()
    msg = struct.pack("<Q", len(data)) + data
    while msg:
        n = os.write(fd, msg)
        msg = msg[n:]


def _recv(fd: int, deadline: float | None = None) -> Any:
    def read_exact(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    raise TimeoutError("live child did not answer")
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                raise EOFError("live child is gone")
            buf += chunk
        return buf
    (n,) = struct.unpack("<Q", read_exact(8))
    return json.loads(read_exact(n))


def _child_main(cmd_fd: int, res_fd: int, cpu: int, ncpus: int) -> None:
    """The forked child: pinned to ``cpu``, standard fds open, one script per request."""
    try:
        os.sched_setaffinity(0, {cpu})
        for fd in (0, 1, 2):            # a real process has its standard fds open
            try:
                os.fstat(fd)
            except OSError:
                os.dup2(os.open(os.devnull, os.O_RDWR), fd)
        try:
            os.close(MISSING_FD)
        except OSError:
            pass
        while True:
            try:
                req = _recv(cmd_fd)
            except EOFError:
                break
            _send(res_fd, Executor(LiveSide(ncpus)).run(req["steps"]))
        os._exit(0)
    except BaseException as e:  # never leave the fork by unwinding
        try:
            _send(res_fd, {"error": f"{type(e).__name__}: {e}"})
        finally:
            os._exit(3)


class LiveRunner:
    """A forked child pinned to cpu 0 in a scratch cgroup (below our own memory
    cgroup), running scripts on the live kernel."""

    def __init__(self, session: Any, ncpus: int, cpu: int = 0, timeout: float = 60.0) -> None:
        self.session, self.timeout = session, timeout
        self.cg = session.case()
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        pid = session.fork()
        if pid == 0:
            os.close(cmd_w)
            os.close(res_r)
            _child_main(cmd_r, res_w, cpu, ncpus)
        os.close(cmd_r)
        os.close(res_w)
        self.pid, self.cmd_w, self.res_r = pid, cmd_w, res_r
        self.cg.move(pid)

    def run(self, script: Script) -> list[Obs]:
        _send(self.cmd_w, {"steps": script["steps"]})
        out = _recv(self.res_r, time.monotonic() + self.timeout)
        if isinstance(out, dict):
            raise RuntimeError(f"live child: {out.get('error')}")
        return out

    def close(self) -> None:
        for fd in (self.cmd_w, self.res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.pid in self.session.children:
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    self.session.children.remove(self.pid)
                    break
                time.sleep(0.01)
            else:
                self.session.reap(self.pid, kill=True)
        self.cg.remove()
        if self.cg in self.session.driver.created:
            self.session.driver.created.remove(self.cg)

    def __enter__(self) -> "LiveRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def host_netdevs(root: str = "/sys/class/net") -> list[tuple[int, str]]:
    """(ifindex, name) of this host's net devices (devmap values name them)."""
    out = []
    try:
        names = os.listdir(root)
    except OSError:
        return out
    for n in names:
        try:
            with open(os.path.join(root, n, "ifindex")) as f:
                out.append((int(f.read()), n))
        except (OSError, ValueError):
            continue
    return sorted(out)


class ModelRunner:
    """Scripts on a fresh host-matched model System each (the host's CPUs, page size,
    cgroup version, BTF struct sizes and net devices); the task is root, in a cgroup
    of its own, and runs its syscalls on cpu 0 like the live child."""

    def __init__(self, facts: Any = None, netdevs: list[tuple[int, str]] | None = None) -> None:
        from .host import host_facts
        self.facts = facts if facts is not None else host_facts()
        self.netdevs = host_netdevs() if netdevs is None else netdevs

    def system(self) -> tuple[Any, Any]:
        from .host import host_system
        sysm = host_system(facts=self.facts)
        for ifindex, name in self.netdevs:
            sysm.create_netdev(name, ifindex=ifindex)
        task = sysm.spawn(cgroup=sysm.root.mkdir("semantics"), uid=0)
        # the live children inherit verify's RLIMIT_MEMLOCK (runner.bump_memlock_rlimit())
        task.setrlimit(U.RLIMIT_MEMLOCK, self.facts.memlock, self.facts.memlock)
        return sysm, task

    def run(self, script: Script) -> list[Obs]:
        sysm, task = self.system()
        try:
            return Executor(ModelSide(task)).run(script["steps"])
        finally:
            sysm.close()


# ------------------------------------------------------------------ expected divergences
#: families whose divergences are expected, and why (each a named kernel mechanism the
#: model deliberately does not follow).  The comparison stays exact: these divergences
#: are shown and counted, only not held against the result.  None today: the LRU lists
#: mirror kernel/bpf/bpf_lru_list.c, so LRU victims must agree exactly.
EXPECTED: dict[str, str] = {}


def expected_steps(family: str, divs: list[Divergence]) -> set[int]:
    """The divergent steps held as expected: every one of a family in EXPECTED."""
    return {d.step for d in divs} if family in EXPECTED else set()


# ------------------------------------------------------------------ driving it
@dataclass
class Tally:
    family: str
    scripts: int = 0
    steps: int = 0
    agree: int = 0
    expected: int = 0      # divergent steps of a family in EXPECTED
    diverged: int = 0      # divergent steps, unexpected

    @property
    def rate(self) -> float:
        return self.agree / self.steps if self.steps else 1.0


@dataclass
class Finding:
    family: str
    seed: str
    first: Divergence
    count: int
    script: Script               # shrunk
    expected: str = ""
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "seed": self.seed, "first": self.first.to_dict(),
                "divergent_steps": self.count, "expected": self.expected,
                "script": self.script, "path": self.path}


@dataclass
class Report:
    tallies: dict[str, Tally] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)   # family -> why
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        return sum(t.steps for t in self.tallies.values())

    @property
    def unexpected(self) -> int:
        return sum(t.diverged for t in self.tallies.values())

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "unexpected": self.unexpected,
                "seconds": round(self.seconds, 1),
                "families": {n: {"scripts": t.scripts, "steps": t.steps, "agree": t.agree,
                                 "expected": t.expected, "diverged": t.diverged,
                                 "agreement": round(t.rate, 6)}
                             for n, t in self.tallies.items()},
                "skipped": self.skipped,
                "findings": [f.to_dict() for f in self.findings]}


def run_both(live: Any, model: Any, script: Script) -> tuple[list[Obs], list[Obs], list[Divergence]]:
    kobs = live.run(script)
    mobs = model.run(script)
    return kobs, mobs, compare(script, kobs, mobs)


def shrink(script: Script, live: Any, model: Any, max_runs: int = 120) -> Script:
    """The shortest script found (steps removed, ddmin-style) whose first divergence
    still has the original's op and kind (errno, value, ...)."""
    _, _, divs = run_both(live, model, script)
    if not divs:
        return script
    sig = divs[0].signature()
    runs = 0

    def fails(steps: list[Step]) -> bool:
        nonlocal runs
        runs += 1
        _, _, d = run_both(live, model, {**script, "steps": steps})
        return bool(d) and d[0].signature() == sig

    steps = script["steps"][:divs[0].step + 1]
    n = 2
    while len(steps) > 1 and runs < max_runs:
        chunk = max(1, len(steps) // n)
        removed = False
        for i in range(0, len(steps), chunk):
            if runs >= max_runs:
                break
            trial = steps[:i] + steps[i + chunk:]
            if trial and fails(trial):
                steps, n, removed = trial, max(n - 1, 2), True
                break
        if not removed:
            if chunk == 1:
                break
            n = min(len(steps), n * 2)
    return {**script, "steps": steps}


def refused(live: Any, fam: Any) -> str:
    """Why the live kernel cannot run ``fam`` here ("" when it can): the family's probe,
    a create its scripts need, fails.  (This kernel refuses every ARENA create with
    EPERM, invalid attributes included, although map_create() lets root with CAP_BPF
    through to arena_map_alloc(): a security policy, not the map's rules.)"""
    if fam.probe is None:
        return ""
    ko = live.run({"steps": [fam.probe]})[0]
    if ko.get("errno") is None:
        return ""
    return (f"the running kernel refuses a valid {fam.probe['type']} create with "
            f"{_errname(ko['errno'])}")


def run_semantics(live: Any, model: Any, fams: dict[str, Any], budget: int, base_seed: str,
                  ncpus: int, shrink_runs: int = 120, save_dir: str | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> Report:
    """Scripts of every family in turn until each has run ``budget // len(fams)`` steps;
    every divergence class (family, op, kind) is shrunk once and saved."""
    from .sequences import script as make_script
    rep = Report()
    for name, fam in fams.items():
        why = refused(live, fam)
        if why:
            rep.skipped[name] = why
    fams = {n: f for n, f in fams.items() if n not in rep.skipped}
    rep.tallies = {n: Tally(n) for n in fams}
    per_family = max(1, budget // max(1, len(fams)))
    seen: set[tuple[str, str, str]] = set()
    t0 = time.monotonic()
    while any(t.steps < per_family for t in rep.tallies.values()):
        for name, fam in fams.items():
            tally = rep.tallies[name]
            if tally.steps >= per_family:
                continue
            seed = f"{base_seed}:{name}:{tally.scripts}"
            scr = make_script(fam, seed, ncpus)
            _, _, divs = run_both(live, model, scr)
            bad = {d.step for d in divs}
            exp = expected_steps(name, divs)
            tally.scripts += 1
            tally.steps += len(scr["steps"])
            tally.agree += len(scr["steps"]) - len(bad)
            tally.expected += len(exp)
            tally.diverged += len(bad - exp)
            if divs:
                key = (name,) + divs[0].signature()
                if key not in seen:
                    seen.add(key)
                    small = shrink(scr, live, model, shrink_runs) if shrink_runs else scr
                    _, _, sd = run_both(live, model, small)
                    first = (sd or divs)[0]
                    f = Finding(name, seed, first, len(bad), small,
                                EXPECTED[name] if expected_steps(name, sd or divs) else "")
                    if save_dir is not None:
                        os.makedirs(save_dir, exist_ok=True)
                        f.path = os.path.join(save_dir, f"{name}-{divs[0].op}-{divs[0].what}.json")
                        with open(f.path, "w") as fh:
                            json.dump(small, fh, indent=1)
                    rep.findings.append(f)
            if progress is not None:
                progress(name, rep.steps, budget)
    rep.seconds = time.monotonic() - t0
    return rep


# ------------------------------------------------------------------ output
def _errname(e: Any) -> str:
    from ..bpf.errors import errname
    return "ok" if e is None else (errname(e) if isinstance(e, int) else str(e))


def _show(v: Any) -> str:
    if isinstance(v, int) or v is None:
        return _errname(v)
    s = json.dumps(v)
    return s if len(s) <= 120 else s[:117] + "..."


def render_report(rep: Report, out: Any = None) -> None:
    out = out or sys.stdout
    w = out.write
    w(f"verify --semantics: {rep.steps} steps over {len(rep.tallies)} families "
      f"in {rep.seconds:.0f} s\n\n")
    w(f"{'family':22} {'scripts':>7} {'steps':>7} {'agree':>7} {'agreement':>9} "
      f"{'expected':>8} {'diverged':>8}\n")
    for t in rep.tallies.values():
        w(f"{t.family:22} {t.scripts:7} {t.steps:7} {t.agree:7} {100 * t.rate:8.2f}% "
          f"{t.expected:8} {t.diverged:8}\n")
    for name, why in rep.skipped.items():
        w(f"{name:22} skipped: {why}\n")
    total_agree = sum(t.agree for t in rep.tallies.values())
    w(f"{'all':22} {sum(t.scripts for t in rep.tallies.values()):7} {rep.steps:7} "
      f"{total_agree:7} {100 * total_agree / max(rep.steps, 1):8.2f}% "
      f"{sum(t.expected for t in rep.tallies.values()):8} {rep.unexpected:8}\n")
    for f in rep.findings:
        d = f.first
        tag = f"expected ({f.expected})" if f.expected else "DIVERGES"
        w(f"\n{tag}: {f.family} seed {f.seed}: step {d.step} {d.op}: {d.what}: "
          f"kernel {_show(d.kernel)}, model {_show(d.model)}\n")
        w(f"  shrunk to {len(f.script['steps'])} steps"
          + (f", saved as {f.path} (verify --semantics --replay {f.path})" if f.path else
             "; the script (save it to a file for verify --semantics --replay FILE):")
          + "\n")
        if f.path is None:
            w("  " + json.dumps(f.script) + "\n")
        for st in f.script["steps"]:
            w("    " + json.dumps(st) + "\n")


def render_replay(script: Script, kobs: list[Obs], mobs: list[Obs], divs: list[Divergence],
                  out: Any = None) -> None:
    out = out or sys.stdout
    bad = {d.step: d for d in divs}
    for i, (st, ko, mo) in enumerate(zip(script["steps"], kobs, mobs)):
        mark = "!!" if i in bad else "  "
        out.write(f"{mark} {i:3} {json.dumps(st)}\n")
        out.write(f"        kernel: {json.dumps(ko)}\n")
        if ko != mo:
            out.write(f"        model:  {json.dumps(mo)}\n")
    out.write(f"\n{len(divs)} divergence(s) in {len(script['steps'])} steps\n")


# ------------------------------------------------------------------ command line
def add_arguments(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("--semantics (the map commands step by step)")
    g.add_argument("--semantics", action="store_true",
                   help="compare what the map commands do, step by step, on random sequences")
    g.add_argument("--steps", type=int, metavar="N",
                   help="steps to run over all families (default 12000; --quick 1200)")
    g.add_argument("--seed", default="0", help="base seed of the sequences (default 0)")
    g.add_argument("--family", action="append", metavar="NAME",
                   help="only this family (repeatable)")
    g.add_argument("--replay", metavar="FILE", help="run one saved script on both sides")
    g.add_argument("--save", metavar="DIR", help="save each shrunk divergence as a script")


def main_semantics(args: argparse.Namespace, session: Any, facts: Any = None) -> int:
    """The --semantics part of ``pybpfmem verify`` (exit codes as verify's); ``facts``:
    the host facts and profile of the model side (default: host_facts())."""
    from .bpf import possible_cpus
    from .sequences import families
    ncpus = possible_cpus()
    model = ModelRunner(facts=facts)
    netdevs = tuple(i for i, _ in model.netdevs) or (1,)
    fams = families(ncpus, netdevs)
    if args.family:
        unknown = [f for f in args.family if f not in fams]
        if unknown:
            print(f"verify: unknown family {unknown}; known: {', '.join(fams)}", file=sys.stderr)
            return 2
        fams = {n: fams[n] for n in args.family}
    with LiveRunner(session, ncpus) as live:
        if args.replay:
            with open(args.replay) as fh:
                scr = json.load(fh)
            kobs, mobs, divs = run_both(live, model, scr)
            if args.json:
                print(json.dumps({"script": scr, "kernel": kobs, "model": mobs,
                                  "divergences": [d.to_dict() for d in divs]}))
            else:
                render_replay(scr, kobs, mobs, divs)
            return 0 if not divs else 1
        budget = args.steps if args.steps is not None else (1200 if args.quick else 12000)
        rep = run_semantics(live, model, fams, budget, str(args.seed), ncpus,
                            save_dir=args.save)
    if args.json:
        print(json.dumps(rep.to_dict()))
    else:
        render_report(rep)
    return 0 if rep.unexpected == 0 else 1
