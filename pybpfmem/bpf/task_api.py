"""bpf() syscall surface of a Task: raw bpf(), libbpf-style calls, fds, rlimits, caps.

The composed ``pybpfmem.Task`` inherits BpfTaskMixin next to the memory Task.
Per-task BPF state (fd table, user memory for attr pointers, RLIMIT_MEMLOCK,
capabilities) lives in one BpfTaskState made with the task.
"""

from __future__ import annotations

import errno
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Iterator, Sequence

from . import uapi as U
from .cgroup_bpf import cgroup_attach, cgroup_detach
from .core import BpfProg, build_insns
from .errors import BpfError
from .fd import BpfFile, FdTable, KernelObject, UserMemory, obj_get, obj_put
from .kobjects import CgroupFile, KObjectTaskMixin
from .locking import serialised
from .map import BpfMap
from .services import MemTask
from .state import memlock_of
from .syscall import check_update, entry_check, sys_bpf

ALL_CAPS = frozenset(range(U.CAP_LAST_CAP + 1))


@dataclass
class BpfTaskState:
    fds: FdTable = field(default_factory=FdTable)
    umem: UserMemory = field(default_factory=UserMemory)
    memlock: tuple[int, int] = (0, 0)       # RLIMIT_MEMLOCK (soft, hard), bytes
    caps: frozenset[int] = ALL_CAPS


@serialised(attrgetter("system.lock"))
class BpfTaskMixin(KObjectTaskMixin):
    """Methods a Task gets for the bpf() syscall surface (and, from KObjectTaskMixin,
    fds of the kernel objects maps hold: sockets, AF_XDP sockets, cgroups, files).
    The class it is mixed into provides the memory task (services.MemTask)."""

    bpf_task: BpfTaskState
    _unlocked = ("bpf_map_update_elem",)

    def __init__(self) -> None:
        me: MemTask = self  # type: ignore[assignment]
        lim = self.system.bpf_state.bprof.default_memlock
        self.bpf_task = BpfTaskState(memlock=(lim, lim),
                                     caps=ALL_CAPS if me.uid == 0 else frozenset())

    @property
    def caps(self) -> frozenset[int]:
        """Effective capabilities (uid 0: all; other uids: none unless granted)."""
        return self.bpf_task.caps

    @caps.setter
    def caps(self, value: Sequence[int] | frozenset[int]) -> None:
        vals = frozenset(int(c) for c in value)
        if any(c < 0 or c > U.CAP_LAST_CAP for c in vals):
            raise ValueError(f"capabilities must be in 0..{U.CAP_LAST_CAP}")
        self.bpf_task.caps = vals

    def capable(self, cap: int) -> bool:
        return cap in self.bpf_task.caps

    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        """setrlimit(RLIMIT_MEMLOCK, soft, hard) in bytes (RLIM_INFINITY allowed);
        mirrors do_prlimit(): soft > hard -> EINVAL, raising hard without
        CAP_SYS_RESOURCE -> EPERM."""
        if resource != U.RLIMIT_MEMLOCK:
            raise ValueError("only RLIMIT_MEMLOCK is modelled")
        if not (0 <= soft <= U.RLIM_INFINITY and 0 <= hard <= U.RLIM_INFINITY):
            raise ValueError("rlimit values must be in 0..RLIM_INFINITY")
        if soft > hard:
            raise BpfError(errno.EINVAL, f"setrlimit: soft {soft} > hard {hard}")
        old_soft, old_hard = self.bpf_task.memlock
        if hard > old_hard and not self.capable(U.CAP_SYS_RESOURCE):
            raise BpfError(errno.EPERM, f"setrlimit: raising hard limit {old_hard} -> {hard} "
                                        f"needs CAP_SYS_RESOURCE")
        self.bpf_task.memlock = (soft, hard)

    def getrlimit(self, resource: int) -> tuple[int, int]:
        if resource != U.RLIMIT_MEMLOCK:
            raise ValueError("only RLIMIT_MEMLOCK is modelled")
        return self.bpf_task.memlock

    def fd_object(self, fd: int) -> Any:
        return self.bpf_task.fds.get(fd).obj

    def fds(self) -> list[int]:
        return sorted(self.bpf_task.fds.files)

    # ------------------------------------------------------------ raw bpf()
    @contextmanager
    def _in_syscall(self) -> Iterator[None]:
        """The syscall runs as this task: in its running() context, on cpu 0 if the
        task is not running already, as one syscall() (one return to user)."""
        me: MemTask = self  # type: ignore[assignment]
        if not me.alive:
            raise BpfError(errno.ESRCH, f"task {me.pid} has exited")
        if self.system.current_task is self:
            with me.syscall():
                yield
        else:
            with me.running(cpu=0), me.syscall():
                yield

    def _settle(self) -> None:
        self.system.bpf_state.settle_now()

    def bpf(self, cmd: int, attr: bytes | bytearray) -> int:
        """The bpf(2) syscall with raw `union bpf_attr` bytes.  Returns the kernel's
        result (fd or 0); raises BpfError(errno, message).  Pass a bytearray to
        receive the fields the kernel writes back (count, next_id, info_len)."""
        try:
            with self._in_syscall():
                return sys_bpf(self, cmd, attr)
        finally:
            self._settle()

    def close(self, fd: int) -> None:
        """close(2): drops the fd's reference (a map's or program's freeing is
        deferred; the last file of a socket releases it, see kobjects.py)."""
        f = self.bpf_task.fds.remove(fd)
        try:
            obj_put(self.system.bpf_state, f.obj)
        finally:
            self._settle()

    def bpf_task_exit(self) -> None:
        """exit_files(): close every fd; free_task() -> bpf_task_storage_free().  Run by the
        memory layer's task-exit hook (registered by BpfSystemMixin)."""
        st = self.system.bpf_state
        fds = self.bpf_task.fds.files
        for fd in list(fds):
            obj_put(st, fds.pop(fd).obj)
        st.kobjects.free_owner_storage(self)
        self._settle()

    def dup_fd_to(self, other: "BpfTaskMixin", fd: int) -> int:
        """Pass an fd to another task of this System (SCM_RIGHTS): a new fd there, same
        file."""
        self.system.own_task(other, "dup_fd_to")
        f = self.bpf_task.fds.get(fd)
        obj_get(f.obj)
        return other.bpf_task.fds.install(BpfFile(f.obj, f.readable, f.writable))

    # ------------------------------------------------------------ helpers
    def _map_of(self, fd: int) -> BpfMap:
        obj = self.bpf_task.fds.get(fd).obj
        if not isinstance(obj, BpfMap):
            raise BpfError(errno.EINVAL, f"fd {fd} is not a map")
        return obj

    def _key(self, m: BpfMap, key: bytes | None) -> bytes | None:
        if type(key) is bytes and len(key) == m.key_size and m.key_size:
            return key
        if m.key_size == 0:
            if key is not None:
                raise ValueError(f"map {m.id} has key_size 0: pass key=None")
            return None
        if not isinstance(key, (bytes, bytearray)) or len(key) != m.key_size:
            raise ValueError(f"key must be bytes of length {m.key_size}")
        return bytes(key)

    def _value(self, m: BpfMap, value: bytes) -> bytes:
        vs = m.syscall_value_size()
        if type(value) is bytes and len(value) == vs:
            return value
        if not isinstance(value, (bytes, bytearray)) or len(value) != vs:
            raise ValueError(f"value must be bytes of length {vs}")
        return bytes(value)

    def _elem(self, cmd: int, fd: int, key: bytes | None, value: bytes | int | None,
              flags: int = 0) -> bytes | None:
        """One element command with user buffers; returns the value buffer after."""
        um = self.bpf_task.umem
        kp = um.alloc(key) if key is not None else 0
        vp = um.alloc(value) if value is not None else 0
        try:
            self.bpf(cmd, U.pack_attr(cmd, map_fd=fd, key=kp, value=vp, flags=flags))
            if vp and isinstance(value, int):
                return um.read(vp, value)
            return None
        finally:
            if kp:
                um.free(kp)
            if vp:
                um.free(vp)

    # ------------------------------------------------------------ libbpf-style
    def bpf_map_create(self, map_type: int, key_size: int, value_size: int, max_entries: int,
                       map_flags: int = 0, *, map_name: str = "", map_extra: int = 0,
                       numa_node: int | None = None, inner_map_fd: int | None = None,
                       btf_vmlinux_value_type_id: int = 0, btf_fd: int = 0,
                       btf_key_type_id: int = 0, btf_value_type_id: int = 0) -> int:
        """libbpf bpf_map_create(): returns the new map fd.  BTF objects are not
        modelled: btf_fd and the type ids are passed through to the attr unchecked."""
        for n, v in (("map_type", map_type), ("key_size", key_size),
                     ("value_size", value_size), ("max_entries", max_entries),
                     ("map_flags", map_flags)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"{n} must be an int, got {type(v).__name__}")
            if not 0 <= v <= U.U32_MAX:
                raise ValueError(f"{n} must be a u32, got {v!r}")
        name = map_name.encode() if isinstance(map_name, str) else bytes(map_name)
        if len(name) >= U.BPF_OBJ_NAME_LEN:
            name = name[:U.BPF_OBJ_NAME_LEN - 1]   # libbpf truncates to 15 chars
        fields: dict[str, int | bytes] = dict(
            map_type=map_type, key_size=key_size, value_size=value_size,
            max_entries=max_entries, map_flags=map_flags, map_name=name)
        if numa_node is not None:
            fields["map_flags"] = map_flags | U.BPF_F_NUMA_NODE
            fields["numa_node"] = numa_node
        if inner_map_fd is not None:
            fields["inner_map_fd"] = inner_map_fd
        if map_extra:
            fields["map_extra"] = map_extra
        for n, v in (("btf_vmlinux_value_type_id", btf_vmlinux_value_type_id), ("btf_fd", btf_fd),
                     ("btf_key_type_id", btf_key_type_id), ("btf_value_type_id", btf_value_type_id)):
            if v:
                fields[n] = v
        return self.bpf(U.BPF_MAP_CREATE, U.pack_attr(U.BPF_MAP_CREATE, None, **fields))

    def bpf_map_update_elem(self, fd: int, key: bytes | None, value: bytes,
                            flags: int = U.BPF_ANY) -> None:
        """BPF_MAP_UPDATE_ELEM.  Fast path: the same checks as the raw command
        (entry check, fd, write permission, BPF_F_LOCK, the map's update) without
        packing a `union bpf_attr` and user buffers, which only the raw path needs."""
        with self.system.lock:     # serialised (locking.py), inline on this hot path
            # perf: the common case -- an open writable map fd of a map with a fast_update
            # (hash maps), a live task, no unprivileged_bpf_disabled entry check to make,
            # flags BPF_ANY/NOEXIST/EXIST, and a context the update may allocate in -- goes
            # straight to the map; fast_update() returns False for input it does not take
            me: MemTask = self  # type: ignore[assignment]
            if type(flags) is int and 0 <= flags <= U.BPF_EXIST:
                f = self.bpf_task.fds.files.get(fd) if type(fd) is int else None
                fast = getattr(f.obj, "fast_update", None) if f is not None else None
                if f is not None and fast is not None and f.writable and me.alive and not f.obj.frozen:
                    sysm = self.system
                    bst = sysm.bpf_state
                    if (sysm.current_task is self or not f.obj.update_allocates()) and not (
                            bst.unprivileged_bpf_disabled and not bst.bprof.unpriv_per_command
                            and not bst.bprof.unpriv_entry_create_only):
                        try:
                            if fast(key, value, flags):
                                return
                        finally:
                            if bst.pending and bst.settle:
                                bst.run_deferred()
            f = self.bpf_task.fds.get(fd)
            m = f.obj
            if not isinstance(m, BpfMap):
                raise BpfError(errno.EINVAL, f"fd {fd} is not a map")
            if type(flags) is not int or not 0 <= flags < 1 << 64:
                raise ValueError("flags must be a u64")
            key = self._key(m, key)
            value = self._value(m, value)
            sysm = self.system
            if not me.alive:
                raise BpfError(errno.ESRCH, f"task {me.pid} has exited")
            try:
                entry_check(self, U.BPF_MAP_UPDATE_ELEM)
                check_update(f, m, flags)
                if sysm.current_task is self or not m.update_allocates():
                    # no allocation on this path (arrays, preallocated hashes): the cpu
                    # context the syscall runs in cannot matter
                    m.update_elem(key, value, flags)
                else:
                    with me.running(cpu=0):
                        m.update_elem(key, value, flags)
            finally:
                sysm.bpf_state.settle_now()

    def bpf_map_lookup_elem(self, fd: int, key: bytes | None, flags: int = 0) -> bytes:
        m = self._map_of(fd)
        out = self._elem(U.BPF_MAP_LOOKUP_ELEM, fd, self._key(m, key),
                         m.syscall_value_size(), flags)
        assert out is not None
        return out

    def bpf_map_delete_elem(self, fd: int, key: bytes | None) -> None:
        m = self._map_of(fd)
        self._elem(U.BPF_MAP_DELETE_ELEM, fd, self._key(m, key), None)

    def bpf_map_get_next_key(self, fd: int, key: bytes | None = None) -> bytes:
        m = self._map_of(fd)
        k = self._key(m, key) if key is not None else None
        out = self._elem(U.BPF_MAP_GET_NEXT_KEY, fd, k, max(m.key_size, 1))
        assert out is not None
        return out[:m.key_size]

    def bpf_map_lookup_and_delete_elem(self, fd: int, key: bytes | None,
                                       flags: int = 0) -> bytes:
        m = self._map_of(fd)
        out = self._elem(U.BPF_MAP_LOOKUP_AND_DELETE_ELEM, fd, self._key(m, key),
                         m.syscall_value_size(), flags)
        assert out is not None
        return out

    def bpf_map_freeze(self, fd: int) -> None:
        self.bpf(U.BPF_MAP_FREEZE, U.pack_attr(U.BPF_MAP_FREEZE, map_fd=fd))

    # ---- batches
    def _batch(self, cmd: int, fd: int, keys: bytes | None, values: bytes | None, count: int,
               in_batch: bytes | None, token: int, flags: int,
               want_out: bool) -> tuple[int, bytes, bytes, bytes | None, BpfError | None]:
        m = self._map_of(fd)
        um = self.bpf_task.umem
        ks, vs = m.key_size, m.syscall_value_size()
        kp = um.alloc(keys if keys is not None else ks * count) if ks else 0
        vp = um.alloc(values if values is not None else vs * count) if want_out or values else 0
        ib = um.alloc(in_batch) if in_batch is not None else 0
        ob = um.alloc(token) if want_out else 0
        attr = bytearray(U.pack_attr(cmd, in_batch=ib, out_batch=ob, keys=kp, values=vp,
                                     count=count, map_fd=fd, elem_flags=flags))
        err: BpfError | None = None
        try:
            self.bpf(cmd, attr)
        except BpfError as e:
            err = e
        done = U.unpack_attr(cmd, bytes(attr))["count"]
        assert isinstance(done, int)
        kout = um.read(kp, ks * done) if (want_out and kp) else b""
        vout = um.read(vp, vs * done) if want_out else b""
        oout = um.read(ob, token) if want_out else None
        for p in (kp, vp, ib, ob):
            if p:
                um.free(p)
        return done, kout, vout, oout, err

    @staticmethod
    def _split(blob: bytes, size: int, n: int) -> list[bytes]:
        return [blob[i * size:(i + 1) * size] for i in range(n)]

    def _join(self, items: Sequence[bytes] | bytes, size: int, what: str) -> tuple[bytes, int]:
        if isinstance(items, (bytes, bytearray)):
            if size == 0 or len(items) % size:
                raise ValueError(f"{what} blob length must be a multiple of {size}")
            return bytes(items), len(items) // size
        # perf: the common case checked by map() in C; anything else item by item
        if not (set(map(type, items)) <= {bytes, bytearray} and set(map(len, items)) <= {size}):
            for it in items:
                if not isinstance(it, (bytes, bytearray)) or len(it) != size:
                    raise ValueError(f"each of {what} must be bytes of length {size}")
        return b"".join(items), len(items)

    def bpf_map_update_batch(self, fd: int, keys: Sequence[bytes] | bytes,
                             values: Sequence[bytes] | bytes, flags: int = 0) -> int:
        """BPF_MAP_UPDATE_BATCH; returns the count.  On error the BpfError has .count."""
        m = self._map_of(fd)
        kb, n = self._join(keys, m.key_size, "keys")
        vb, nv = self._join(values, m.syscall_value_size(), "values")
        if n != nv:
            raise ValueError(f"{n} keys but {nv} values")
        done, _, _, _, err = self._batch(U.BPF_MAP_UPDATE_BATCH, fd, kb, vb, n, None, 0,
                                         flags, False)
        if err is not None:
            err.count = done
            raise err
        return done

    def bpf_map_delete_batch(self, fd: int, keys: Sequence[bytes] | bytes,
                             flags: int = 0) -> int:
        m = self._map_of(fd)
        kb, n = self._join(keys, m.key_size, "keys")
        done, _, _, _, err = self._batch(U.BPF_MAP_DELETE_BATCH, fd, kb, None, n, None, 0,
                                         flags, False)
        if err is not None:
            err.count = done
            raise err
        return done

    def _lookup_batch(self, cmd: int, fd: int, in_batch: bytes | None, count: int,
                      flags: int) -> tuple[list[bytes], list[bytes], bytes | None]:
        m = self._map_of(fd)
        if not isinstance(count, int) or count < 0 or count > U.U32_MAX:
            raise ValueError("count must be a u32")
        token = int(getattr(m, "batch_token_size", m.key_size)) or 4
        done, kb, vb, ob, err = self._batch(cmd, fd, None, None, count, in_batch, token,
                                            flags, True)
        keys = self._split(kb, m.key_size, done) if m.key_size else []
        vals = self._split(vb, m.syscall_value_size(), done)
        out = ob if done or err is None else None
        if err is not None:
            err.count, err.keys, err.values, err.out_batch = done, keys, vals, out
            raise err
        return keys, vals, out

    def bpf_map_lookup_batch(self, fd: int, in_batch: bytes | None, count: int,
                             flags: int = 0) -> tuple[list[bytes], list[bytes], bytes | None]:
        """BPF_MAP_LOOKUP_BATCH -> (keys, values, out_batch).  At the end of the map
        the kernel returns ENOENT: the BpfError carries .count/.keys/.values/.out_batch."""
        return self._lookup_batch(U.BPF_MAP_LOOKUP_BATCH, fd, in_batch, count, flags)

    def bpf_map_lookup_and_delete_batch(self, fd: int, in_batch: bytes | None, count: int,
                                        flags: int = 0
                                        ) -> tuple[list[bytes], list[bytes], bytes | None]:
        return self._lookup_batch(U.BPF_MAP_LOOKUP_AND_DELETE_BATCH, fd, in_batch, count,
                                  flags)

    # ---- objects
    def bpf_obj_pin(self, fd: int, path: str) -> None:
        um = self.bpf_task.umem
        p = um.alloc(path.encode() + b"\0")
        try:
            self.bpf(U.BPF_OBJ_PIN, U.pack_attr(U.BPF_OBJ_PIN, pathname=p, bpf_fd=fd))
        finally:
            um.free(p)

    def bpf_obj_get(self, path: str, file_flags: int = 0) -> int:
        um = self.bpf_task.umem
        p = um.alloc(path.encode() + b"\0")
        try:
            return self.bpf(U.BPF_OBJ_GET, U.pack_attr(U.BPF_OBJ_GET, pathname=p,
                                                       file_flags=file_flags))
        finally:
            um.free(p)

    def bpf_map_get_fd_by_id(self, map_id: int, open_flags: int = 0) -> int:
        return self.bpf(U.BPF_MAP_GET_FD_BY_ID, U.pack_attr(
            U.BPF_MAP_GET_FD_BY_ID, start_id=map_id, open_flags=open_flags))

    def bpf_prog_get_fd_by_id(self, prog_id: int) -> int:
        return self.bpf(U.BPF_PROG_GET_FD_BY_ID, U.pack_attr(U.BPF_PROG_GET_FD_BY_ID,
                                                             start_id=prog_id))

    def bpf_map_get_next_id(self, start_id: int) -> int:
        attr = bytearray(U.pack_attr(U.BPF_MAP_GET_NEXT_ID, start_id=start_id))
        self.bpf(U.BPF_MAP_GET_NEXT_ID, attr)
        return struct.unpack_from("<I", attr, 4)[0]

    def bpf_obj_get_info_by_fd(self, fd: int) -> dict[str, Any]:
        """OBJ_GET_INFO_BY_FD decoded: struct bpf_map_info / bpf_prog_info fields."""
        um = self.bpf_task.umem
        ip = um.alloc(256)
        attr = bytearray(U.pack_attr(U.BPF_OBJ_GET_INFO_BY_FD, bpf_fd=fd, info_len=256, info=ip))
        try:
            self.bpf(U.BPF_OBJ_GET_INFO_BY_FD, attr)
            n = struct.unpack_from("<I", attr, 4)[0]
            raw = um.read(ip, n)
        finally:
            um.free(ip)
        obj = self.fd_object(fd)
        if isinstance(obj, BpfMap):
            info = U.unpack_layout(U.MAP_INFO_LAYOUT, raw, present_only=True)
            d: dict[str, Any] = {k: info[k] for k in ("type", "id", "key_size", "value_size",
                                                      "max_entries", "map_flags")}
            d["name"] = bytes(info["name"]).split(b"\0")[0].decode()
            if "map_extra" in info:
                d["map_extra"] = info["map_extra"]
            return d
        return obj.decode_info(raw)

    def bpf_prog_load(self, prog_type: int, insn_cnt: int, *, license: str = "GPL",
                      prog_flags: int = 0, prog_name: str = "", expected_attach_type: int = 0,
                      maps: Sequence[int] = (), kern_version: int = 0) -> int:
        """libbpf bpf_prog_load() with `insn_cnt` instructions; `maps` are map fds the
        program references (encoded as BPF_LD_IMM64 BPF_PSEUDO_MAP_FD instructions)."""
        if not isinstance(insn_cnt, int) or insn_cnt < 0 or insn_cnt > U.U32_MAX:
            raise ValueError("insn_cnt must be a u32")
        um = self.bpf_task.umem
        insns = build_insns(insn_cnt, maps)
        ip = um.alloc(insns) if insns else 0
        lp = um.alloc(license.encode() + b"\0")
        name = prog_name.encode()[:U.BPF_OBJ_NAME_LEN - 1]
        try:
            return self.bpf(U.BPF_PROG_LOAD, U.pack_attr(
                U.BPF_PROG_LOAD, prog_type=prog_type, insn_cnt=insn_cnt, insns=ip,
                license=lp, prog_flags=prog_flags, prog_name=name,
                expected_attach_type=expected_attach_type, kern_version=kern_version))
        finally:
            if ip:
                um.free(ip)
            um.free(lp)

    # ---- cgroup programs (cgroup_bpf_attach / cgroup_bpf_detach)
    def _cgroup_of_fd(self, fd: int) -> Any:
        obj = self.bpf_task.fds.get(fd).obj
        if not isinstance(obj, CgroupFile):
            raise BpfError(errno.EBADF, f"cgroup_get_from_fd: fd {fd} is not a cgroup directory")
        return obj.cgroup

    def bpf_prog_attach(self, prog_fd: int, target_fd: int, attach_type: int,
                        flags: int = 0) -> None:
        """BPF_PROG_ATTACH of a program to the cgroup open at ``target_fd``
        (``task.open_cgroup(cg)``).  Mirrors cgroup_bpf_attach(): the program is
        linked (it takes a reference), and every cgroup-storage map it uses gets
        its (cgroup, attach type) instance, allocated by this task
        (bpf_cgroup_storages_alloc(); 5.10: charged to the map's user's
        locked_vm).  A failure leaves nothing allocated."""
        st = self.system.bpf_state
        if flags & ~(U.BPF_F_ALLOW_OVERRIDE | U.BPF_F_ALLOW_MULTI):
            raise BpfError(errno.EINVAL, f"BPF_PROG_ATTACH: unknown attach flags {flags:#x}")
        prog = self.bpf_task.fds.get(prog_fd).obj
        if not isinstance(prog, BpfProg):
            raise BpfError(errno.EINVAL, f"BPF_PROG_ATTACH: fd {prog_fd} is not a program")
        cg = self._cgroup_of_fd(target_fd)
        with self._in_syscall():
            cgroup_attach(st, self, cg, attach_type, prog, flags)

    def bpf_prog_detach(self, target_fd: int, attach_type: int, prog_fd: int | None = None) -> None:
        """BPF_PROG_DETACH (cgroup_bpf_detach): drops the program's link and frees
        the storage instances no other attached program at that point uses."""
        st = self.system.bpf_state
        cg = self._cgroup_of_fd(target_fd)
        attached = st.cgroup_progs.get((cg.id, attach_type), [])
        if prog_fd is None:
            if len(attached) != 1:
                raise BpfError(errno.ENOENT if not attached else errno.EINVAL,
                               "BPF_PROG_DETACH: name the program (several or none attached)")
            prog = attached[0]
        else:
            prog = self.bpf_task.fds.get(prog_fd).obj
            if prog not in attached:
                raise BpfError(errno.ENOENT, "BPF_PROG_DETACH: the program is not attached there")
        cgroup_detach(st, cg, attach_type, prog)
        self._settle()

    # ---- fdinfo
    def fdinfo(self, fd: int) -> dict[str, str]:
        """/proc/<pid>/fdinfo/<fd> for a bpf fd (bpf_map_show_fdinfo /
        bpf_prog_show_fdinfo), keys as the profile's kernel prints them; for any
        other file (a socket, the standard fds) the lines every file has (seq_show())."""
        f = self.bpf_task.fds.get(fd)
        st = self.system.bpf_state
        flags = 0o2000000 | (2 if f.readable and f.writable else (0 if f.readable else 1))
        out = {"pos": "0", "flags": f"0{flags:o}", "mnt_id": "15"}
        obj = f.obj
        if isinstance(obj, KernelObject):
            if st.bprof.fdinfo_ino and hasattr(obj, "ino"):
                out["ino"] = str(obj.ino)
            return out
        if st.bprof.fdinfo_ino:
            out["ino"] = str(1000 + (obj.id or 0))
        if isinstance(obj, BpfMap):
            out.update({"map_type": str(obj.map_type), "key_size": str(obj.key_size),
                        "value_size": str(obj.value_size),
                        "max_entries": str(obj.max_entries),
                        "map_flags": f"{obj.map_flags:#x}"})
            if st.bprof.map_extra:
                out["map_extra"] = f"{obj.attr.map_extra:#x}"
            out.update({"memlock": str(memlock_of(st, obj)), "map_id": str(obj.id),
                        "frozen": str(int(obj.frozen))})
            out.update(obj.fdinfo_extra())
            return out
        out.update(obj.fdinfo(st))
        return out
