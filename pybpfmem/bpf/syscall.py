"""The bpf() command dispatcher: raw `union bpf_attr` bytes -> per-command handler.

Mirrors __sys_bpf() and the command handlers of kernel/bpf/syscall.c.
Handlers run in the calling task's context (the caller sets it up); they
return the syscall's non-negative result or raise BpfError(errno, message).
"""

from __future__ import annotations

import errno
import struct
from typing import Any, Callable

from . import uapi as U
from .caps import bpf_capable, net_admin_capable
from .errors import BpfError
from .fd import BpfFile, KernelObject, map_inc, map_put, map_put_with_uref, obj_get, obj_put
from .map import BpfMap, CreateCtx, MapAttr, map_class
from .regime import map_charge_finish, map_charge_init
from .state import BpfState

_NAME_OK = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")

# map_create()'s central permission lists (switch caps_central, kernel/bpf/syscall.c):
# the types that need no capability and those that need CAP_NET_ADMIN; all others CAP_BPF
_CAP_NONE = {U.BPF_MAP_TYPE_ARRAY, U.BPF_MAP_TYPE_PERCPU_ARRAY, U.BPF_MAP_TYPE_PROG_ARRAY,
             U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, U.BPF_MAP_TYPE_CGROUP_ARRAY,
             U.BPF_MAP_TYPE_ARRAY_OF_MAPS, U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_PERCPU_HASH,
             U.BPF_MAP_TYPE_HASH_OF_MAPS, U.BPF_MAP_TYPE_RINGBUF, U.BPF_MAP_TYPE_USER_RINGBUF,
             U.BPF_MAP_TYPE_CGROUP_STORAGE, U.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE}
_CAP_NET_ADMIN = {U.BPF_MAP_TYPE_SOCKMAP, U.BPF_MAP_TYPE_SOCKHASH, U.BPF_MAP_TYPE_DEVMAP,
                  U.BPF_MAP_TYPE_DEVMAP_HASH, U.BPF_MAP_TYPE_XSKMAP}


class Call:
    """One bpf() invocation: the task, its BPF state and the decoded attr."""

    def __init__(self, task: Any, cmd: int, attr: dict[str, Any], raw: bytearray,
                 out: bytearray | None) -> None:
        self.task = task
        self.system = task.system
        self.st: BpfState = self.system.bpf_state
        self.cmd = cmd
        self.a = attr
        self.raw = raw
        self.out = out
        self.umem = task.bpf_task.umem

    def write_back(self, fieldname: str, value: int) -> None:
        """put_user() of an attr field (count, next_id, info_len ...)."""
        for name, off, size in U.LAYOUTS[self.cmd]:
            if name == fieldname:
                data = struct.pack({4: "<I", 8: "<Q"}[size], value)
                self.raw[off:off + size] = data
                if self.out is not None and off + size <= len(self.out):
                    self.out[off:off + size] = data
                return
        raise KeyError(fieldname)


def sys_bpf(task: Any, cmd: int, attr: bytes | bytearray) -> int:
    """Mirrors __sys_bpf(), kernel/bpf/syscall.c."""
    system = task.system
    st: BpfState = system.bpf_state
    if not isinstance(cmd, int):
        raise TypeError("cmd must be an int")
    if not isinstance(attr, (bytes, bytearray, memoryview)):
        raise TypeError("attr must be bytes")
    size = len(attr)
    entry_check(task, cmd)
    # bpf_check_uarg_tail_zero()
    page = system.page_size
    if size > page:
        raise BpfError(errno.E2BIG, f"bpf(): attr size {size} > PAGE_SIZE {page}")
    ksize = st.uapi.attr_size
    if size > ksize and any(bytes(attr[ksize:])):
        raise BpfError(errno.E2BIG, f"bpf(): attr has non-zero bytes past "
                                    f"sizeof(union bpf_attr) = {ksize}")
    raw = bytearray(bytes(attr[:ksize]).ljust(ksize, b"\0"))
    handler = _HANDLERS.get(cmd)
    if handler is None or cmd > st.uapi.max_cmd:
        raise BpfError(errno.EINVAL, f"bpf(): unknown or unsupported command {cmd}")
    # CHECK_ATTR(cmd): bytes after the command's last field must be zero
    last = st.last_field.get(cmd)
    if last is not None:
        end = U.field_end(U.LAYOUTS[cmd], last)
        if any(raw[end:]):
            raise BpfError(errno.EINVAL, f"CHECK_ATTR({cmd}): non-zero bytes after "
                                         f"{last} (offset {end})")
    fields = U.unpack_attr(cmd, bytes(raw))
    out = attr if isinstance(attr, bytearray) else None
    return handler(Call(task, cmd, fields, raw, out))


# ------------------------------------------------------------------ MAP_CREATE

def _check_name(raw: bytes, what: str) -> str:
    """bpf_obj_name_cpy(): alnum, '_' and '.', NUL-terminated within 16 bytes."""
    end = raw.find(b"\0")
    if end < 0:
        raise BpfError(errno.EINVAL, f"{what}: name not NUL-terminated within "
                                     f"{U.BPF_OBJ_NAME_LEN} bytes")
    for ch in raw[:end]:
        if ch not in _NAME_OK:
            raise BpfError(errno.EINVAL, f"{what}: name has invalid character {chr(ch)!r}")
    return raw[:end].decode()


def map_create(c: Call) -> int:
    """Mirrors map_create(), kernel/bpf/syscall.c."""
    a = MapAttr.from_fields(c.a)
    st, bp, task = c.st, c.st.bprof, c.task
    t = a.map_type
    if a.btf_vmlinux_value_type_id and t != U.BPF_MAP_TYPE_STRUCT_OPS:
        raise BpfError(errno.EINVAL, "map_create: btf_vmlinux_value_type_id only for STRUCT_OPS")
    if a.btf_key_type_id and not a.btf_value_type_id:
        raise BpfError(errno.EINVAL, "map_create: btf_key_type_id without btf_value_type_id")
    if bp.map_extra and a.map_extra and t not in (U.BPF_MAP_TYPE_BLOOM_FILTER,
                                                  U.BPF_MAP_TYPE_ARENA):
        raise BpfError(errno.EINVAL, f"map_create: map_extra {a.map_extra} set for a map "
                                     f"type other than BLOOM_FILTER/ARENA")
    if a.map_flags & U.BPF_F_RDONLY and a.map_flags & U.BPF_F_WRONLY:
        raise BpfError(errno.EINVAL, "map_create: BPF_F_RDONLY and BPF_F_WRONLY both set")
    if a.map_flags & U.BPF_F_NUMA_NODE and a.numa_node >= 1:
        raise BpfError(errno.EINVAL, f"map_create: numa_node {a.numa_node} >= nr_node_ids 1")
    # the release's enum bpf_map_type (profile data): a type it does not have is -EINVAL
    cls = map_class(t) if st.uapi.has_map_type(t) else None
    if cls is None:
        raise BpfError(errno.EINVAL, f"map_create: unknown or unsupported map_type {t}")
    if a.map_ifindex:
        raise BpfError(errno.EINVAL, "map_create: device offload (map_ifindex) not modelled")
    if bp.caps_central:
        # v6.5+: unprivileged_bpf_disabled and the per-type capability list
        if t in _CAP_NONE:
            if st.unprivileged_bpf_disabled and not bpf_capable(task):
                raise BpfError(errno.EPERM, f"map_create: unprivileged_bpf_disabled="
                                            f"{st.unprivileged_bpf_disabled} and uid "
                                            f"{task.uid} lacks CAP_BPF")
        elif t in _CAP_NET_ADMIN:
            if not net_admin_capable(task):
                raise BpfError(errno.EPERM, f"map_create: type {U.MAP_TYPE_NAMES[t]} "
                                            f"needs CAP_NET_ADMIN")
        elif not bpf_capable(task):
            raise BpfError(errno.EPERM, f"map_create: type {U.MAP_TYPE_NAMES[t]} needs CAP_BPF")
    ctx = CreateCtx(c.system, task, bp, st.sizes, st.gfp)
    cls.alloc_check(a, ctx)
    m = cls(c.system, a, ctx)
    # v5.10: bpf_map_charge_init() inside map_alloc, before the big allocations
    if bp.rlimit:
        cost = m.legacy_cost()
        if cost:
            m.memory = _legacy_charge(c, m, cost)
    st.live_maps[id(m)] = m
    try:
        m.alloc()
    except BaseException:
        _undo_create(st, m)
        raise
    try:
        m.name = _check_name(bytes(a.map_name), "map_create")
    except BpfError:
        _undo_create(st, m)
        raise
    m.refcnt = 1
    m.usercnt = 1
    m.id = st.map_ids.alloc(m)
    st.save_map_memcg(m)
    f = BpfFile(m, readable=not a.map_flags & U.BPF_F_WRONLY,
                writable=not a.map_flags & U.BPF_F_RDONLY)
    return task.bpf_task.fds.install(f)


def _legacy_charge(c: Call, m: BpfMap, cost: int) -> Any:
    task = c.task
    try:
        return map_charge_init(c.st.rlimit, task.uid, cost, task.getrlimit(U.RLIMIT_MEMLOCK)[0],
                               c.system.page_size,
                               f"map_create({U.MAP_TYPE_NAMES.get(m.map_type)}, cost {cost} bytes)")
    except BpfError as e:
        conv = getattr(m, "legacy_charge_errno", None)
        if conv is not None and conv != e.errno:
            raise BpfError(conv, str(e.strerror)) from None
        raise


def _undo_create(st: BpfState, m: BpfMap) -> None:
    """map_alloc failure / late failure: free what was allocated, finish the charge."""
    try:
        m.free()
    finally:
        m.free_all()
        if st.bprof.rlimit:
            map_charge_finish(st.rlimit, m.memory)
        st.live_maps.pop(id(m), None)
        m.freed = True


# ------------------------------------------------------------- element ops

def _map_file(c: Call, fd: int) -> tuple[BpfFile, BpfMap]:
    f = c.task.bpf_task.fds.get(fd)
    if not isinstance(f.obj, BpfMap):
        raise BpfError(errno.EINVAL, f"fd {fd} is not a map")
    return f, f.obj


def _need_read(f: BpfFile, m: BpfMap, what: str) -> None:
    if not f.readable:
        raise BpfError(errno.EPERM, f"{what}: map fd opened write-only (BPF_F_WRONLY)")


def _need_write(f: BpfFile, m: BpfMap, what: str) -> None:
    if not f.writable:
        raise BpfError(errno.EPERM, f"{what}: map fd opened read-only (BPF_F_RDONLY)")
    if m.frozen:
        raise BpfError(errno.EPERM, f"{what}: map {m.id} is frozen")


def _copy_key(c: Call, m: BpfMap, ptr: int) -> bytes | None:
    """__bpf_copy_key(): key_size 0 requires a NULL pointer."""
    if m.key_size == 0:
        if ptr:
            raise BpfError(errno.EINVAL, "key pointer must be NULL for a map with key_size 0")
        return None
    return c.umem.read(ptr, m.key_size)


def _check_elem_flags(flags: int, what: str) -> None:
    if flags & ~U.BPF_F_LOCK:
        raise BpfError(errno.EINVAL, f"{what}: flags {flags:#x} other than BPF_F_LOCK")
    if flags & U.BPF_F_LOCK:
        raise BpfError(errno.EINVAL, f"{what}: BPF_F_LOCK on a map value without bpf_spin_lock")


def map_lookup_elem(c: Call) -> int:
    """Mirrors map_lookup_elem(): flags other than BPF_F_LOCK (-EINVAL) before the fd,
    then read access, then BPF_F_LOCK without a bpf_spin_lock (-EINVAL)."""
    flags = c.a["flags"]
    if flags & ~U.BPF_F_LOCK:
        raise BpfError(errno.EINVAL, f"map_lookup_elem: flags {flags:#x} other than BPF_F_LOCK")
    f, m = _map_file(c, c.a["map_fd"])
    _need_read(f, m, "map_lookup_elem")
    _check_elem_flags(flags, "map_lookup_elem")
    key = _copy_key(c, m, c.a["key"])
    if m.map_type == U.BPF_MAP_TYPE_BLOOM_FILTER:
        # the value buffer is the input: bloom_map_peek_elem() of the user's value,
        # nothing is copied back
        m.lookup_elem(key, c.umem.read(c.a["value"], m.syscall_value_size()))
        return 0
    val = m.lookup_elem(key)
    c.umem.write(c.a["value"], val)
    return 0


def map_update_elem(c: Call) -> int:
    f, m = _map_file(c, c.a["map_fd"])
    check_update(f, m, c.a["flags"])
    key = _copy_key(c, m, c.a["key"])
    value = c.umem.read(c.a["value"], m.syscall_value_size())
    m.update_elem(key, value, c.a["flags"])
    return 0


def check_update(f: BpfFile, m: BpfMap, flags: int) -> None:
    """The generic part of map_update_elem(), kernel/bpf/syscall.c: write permission
    (frozen included), then BPF_F_LOCK only for a value with a bpf_spin_lock (the model
    has no BTF, so no map value has one: always -EINVAL)."""
    _need_write(f, m, "map_update_elem")
    if flags & U.BPF_F_LOCK:
        raise BpfError(errno.EINVAL, "map_update_elem: BPF_F_LOCK but the map value has no "
                                     "bpf_spin_lock (the model has no BTF)")


def entry_check(task: Any, cmd: int) -> None:
    """The kernel.unprivileged_bpf_disabled test at __sys_bpf() entry, for a task without
    CAP_BPF: every command is refused (v5.x), only BPF_MAP_CREATE and BPF_PROG_LOAD
    (switch unpriv_entry_create_only), or none (switch unpriv_per_command: map_create()
    and bpf_prog_load() test it themselves)."""
    st: BpfState = task.system.bpf_state
    bp = st.bprof
    if bp.unpriv_per_command or not st.unprivileged_bpf_disabled or bpf_capable(task):
        return
    if bp.unpriv_entry_create_only and cmd not in (U.BPF_MAP_CREATE, U.BPF_PROG_LOAD):
        return
    raise BpfError(errno.EPERM, f"bpf(): kernel.unprivileged_bpf_disabled="
                                f"{st.unprivileged_bpf_disabled} and uid {task.uid} "
                                f"lacks CAP_BPF/CAP_SYS_ADMIN")


def map_delete_elem(c: Call) -> int:
    f, m = _map_file(c, c.a["map_fd"])
    _need_write(f, m, "map_delete_elem")
    key = _copy_key(c, m, c.a["key"])
    m.delete_elem(key)
    return 0


def map_get_next_key(c: Call) -> int:
    f, m = _map_file(c, c.a["map_fd"])
    _need_read(f, m, "map_get_next_key")
    kp = c.a["key"]
    key = None if kp == 0 else _copy_key(c, m, kp)
    nk = m.get_next_key(key)
    c.umem.write(c.a["value"], nk)
    return 0


_QUEUE_STACK = (U.BPF_MAP_TYPE_QUEUE, U.BPF_MAP_TYPE_STACK)
_HASHES = (U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_PERCPU_HASH, U.BPF_MAP_TYPE_LRU_HASH,
           U.BPF_MAP_TYPE_LRU_PERCPU_HASH)


def map_lookup_and_delete_elem(c: Call) -> int:
    """Mirrors map_lookup_and_delete_elem().  With switch lookup_and_delete_hash (v5.14,
    which gave the command its flags): flags other than BPF_F_LOCK are -EINVAL before the
    fd, read and write access are needed, a queue/stack with any flag and BPF_F_LOCK
    without a bpf_spin_lock are -EINVAL; then the key is copied and only queue/stack
    (pop), the hash family and, with switch lookup_and_delete_stack_trace, STACK_TRACE
    have the operation: every other type is -ENOTSUPP."""
    bp = c.st.bprof
    flags = c.a["flags"]
    if bp.lookup_and_delete_hash and flags & ~U.BPF_F_LOCK:
        raise BpfError(errno.EINVAL, f"map_lookup_and_delete_elem: flags {flags:#x} other "
                                     f"than BPF_F_LOCK")
    f, m = _map_file(c, c.a["map_fd"])
    _need_read(f, m, "map_lookup_and_delete_elem")
    _need_write(f, m, "map_lookup_and_delete_elem")
    if flags and m.map_type in _QUEUE_STACK:
        raise BpfError(errno.EINVAL, "map_lookup_and_delete_elem: flags on a queue/stack")
    _check_elem_flags(flags, "map_lookup_and_delete_elem")
    key = _copy_key(c, m, c.a["key"])
    types = _QUEUE_STACK
    if bp.lookup_and_delete_hash:
        types += _HASHES
    if bp.lookup_and_delete_stack_trace:
        types += (U.BPF_MAP_TYPE_STACK_TRACE,)
    if m.map_type not in types:
        raise BpfError(U.ENOTSUPP, f"map_lookup_and_delete_elem: not supported by map type "
                                   f"{U.MAP_TYPE_NAMES.get(m.map_type)}")
    val = m.lookup_and_delete_elem(key)
    c.umem.write(c.a["value"], val)
    return 0


def map_freeze(c: Call) -> int:
    """Mirrors map_freeze(), kernel/bpf/syscall.c: STRUCT_OPS is -ENOTSUPP; with switch
    freeze_needs_write the fd must be writable as map_get_sys_perms() sees it -- which a
    frozen map never is, so a second freeze is -EPERM -- before the -EBUSY checks (active
    writable mmaps, already frozen); before it, CAP_BPF is checked after them."""
    f, m = _map_file(c, c.a["map_fd"])
    if m.map_type == U.BPF_MAP_TYPE_STRUCT_OPS:
        raise BpfError(U.ENOTSUPP, "map_freeze: STRUCT_OPS maps cannot be frozen")
    if c.st.bprof.freeze_needs_write and (not f.writable or m.frozen):
        raise BpfError(errno.EPERM, "map_freeze: no write access (read-only fd or the map "
                                    "is frozen already)")
    if m.writecnt:
        raise BpfError(errno.EBUSY, f"map_freeze: {m.writecnt} writable mmaps active")
    if m.frozen:
        raise BpfError(errno.EBUSY, f"map_freeze: map {m.id} already frozen")
    if not c.st.bprof.freeze_needs_write and not bpf_capable(c.task):
        raise BpfError(errno.EPERM, "map_freeze: needs CAP_BPF")
    m.frozen = True
    return 0


# ------------------------------------------------------------- batch ops

_BATCH_OPS = {U.BPF_MAP_LOOKUP_BATCH: "lookup", U.BPF_MAP_LOOKUP_AND_DELETE_BATCH:
              "lookup_and_delete", U.BPF_MAP_UPDATE_BATCH: "update",
              U.BPF_MAP_DELETE_BATCH: "delete"}


def map_batch(c: Call) -> int:
    """Mirrors bpf_map_do_batch(), kernel/bpf/syscall.c: read access for the lookups,
    write access for the others, -ENOTSUPP where the type has no such batch op; then
    the op's own checks: elem_flags other than BPF_F_LOCK, or BPF_F_LOCK without a
    bpf_spin_lock, are -EINVAL (generic_map_*_batch(); the hash family's lookups also
    refuse any ``flags``, the generic ones ignore it), a count of 0 returns 0 at once,
    and the count the kernel writes back starts at 0."""
    op = _BATCH_OPS[c.cmd]
    f, m = _map_file(c, c.a["map_fd"])
    if op in ("lookup", "lookup_and_delete"):
        _need_read(f, m, f"map_{op}_batch")
    if op != "lookup":
        _need_write(f, m, f"map_{op}_batch")
    if op not in m.batch_ops:
        raise BpfError(U.ENOTSUPP, f"map_{op}_batch: not supported by map type "
                                   f"{U.MAP_TYPE_NAMES.get(m.map_type)}")
    special = getattr(m, "lookup_batch", None) if op in ("lookup", "lookup_and_delete") else None
    if c.a["elem_flags"] & ~U.BPF_F_LOCK:
        raise BpfError(errno.EINVAL, f"map_{op}_batch: elem_flags {c.a['elem_flags']:#x} "
                                     f"other than BPF_F_LOCK")
    if c.a["elem_flags"] & U.BPF_F_LOCK:
        raise BpfError(errno.EINVAL, f"map_{op}_batch: BPF_F_LOCK without bpf_spin_lock")
    if special is not None and c.a["flags"]:
        raise BpfError(errno.EINVAL, f"map_{op}_batch: flags {c.a['flags']:#x} must be 0")
    if c.a["count"] == 0:
        return 0
    c.write_back("count", 0)     # put_user(0, &uattr->batch.count)
    if op == "update":
        return generic_map_update_batch(c, m)
    if op == "delete":
        return generic_map_delete_batch(c, m)
    if special is not None:
        return int(special(c, op == "lookup_and_delete"))
    return generic_map_lookup_batch(c, m)


def generic_map_update_batch(c: Call, m: BpfMap) -> int:
    """Mirrors generic_map_update_batch(): element by element, stop at the first
    error, count = elements done."""
    ks, vs = m.key_size, m.syscall_value_size()
    keys, values, flags = c.a["keys"], c.a["values"], c.a["elem_flags"]
    n = c.a["count"]
    try:
        # one copy of each user array; if either is not fully readable, fall back to
        # per-element copies so an -EFAULT comes at the element the kernel faults on
        kb = c.umem.read(keys, ks * n) if ks else b""
        vb = c.umem.read(values, vs * n)
    except BpfError:
        kb = vb = None
    cp = 0
    update = m.update_elem
    fast = getattr(m, "update_batch_fast", None)
    try:
        # perf: a hash map can run the element loop in bulk (same outcome); None = loop here
        res = fast(kb, vb, n, flags) if fast is not None and kb is not None and vb is not None else None
        if res is not None:
            cp, err = res
            if err is not None:
                raise err
        elif kb is not None and vb is not None:
            for cp in range(n):
                update(kb[cp * ks:(cp + 1) * ks] if ks else None,
                       vb[cp * vs:(cp + 1) * vs], flags)
        else:
            for cp in range(n):
                key = c.umem.read(keys + cp * ks, ks) if ks else None
                val = c.umem.read(values + cp * vs, vs)
                update(key, val, flags)
        cp = n
    finally:
        c.write_back("count", cp)
    return 0


def generic_map_delete_batch(c: Call, m: BpfMap) -> int:
    """Mirrors generic_map_delete_batch()."""
    ks = m.key_size
    keys = c.a["keys"]
    cp = 0
    try:
        for cp in range(c.a["count"]):
            key = c.umem.read(keys + cp * ks, ks) if ks else None
            m.delete_elem(key)
        cp = c.a["count"]
    finally:
        c.write_back("count", cp)
    return 0


def generic_map_lookup_batch(c: Call, m: BpfMap) -> int:
    """Mirrors generic_map_lookup_batch(): walk with get_next_key from in_batch,
    copy up to count entries; end of map -> -ENOENT with the partial count;
    out_batch = the last key visited.  (v5.10 retries a vanished key 3 times
    then -EINTR; here keys cannot vanish mid-call, so both eras skip.)"""
    ks, vs = m.key_size, m.syscall_value_size()
    max_count = c.a["count"]
    prev: bytes | None = c.umem.read(c.a["in_batch"], ks) if c.a["in_batch"] else None
    cp = 0
    err: BpfError | None = None
    while cp < max_count:
        try:
            key = m.get_next_key(prev)
        except BpfError as e:
            err = e
            break
        try:
            val = m.lookup_elem(key)
        except BpfError as e:
            if e.errno != errno.ENOENT:
                raise
            prev = key
            continue
        c.umem.write(c.a["keys"] + cp * ks, key)
        c.umem.write(c.a["values"] + cp * vs, val)
        cp += 1
        prev = key
    c.write_back("count", cp)
    if cp and prev is not None:
        c.umem.write(c.a["out_batch"], prev)
    if err is not None:
        raise err
    return 0


# ------------------------------------------------------------- pin / get / ids

def obj_pin(c: Call) -> int:
    """Mirrors bpf_obj_pin() -> bpf_obj_pin_user(), kernel/bpf/inode.c (simplified:
    one flat bpffs namespace, any path)."""
    if c.a["file_flags"]:
        raise BpfError(errno.EINVAL, "obj_pin: file_flags must be 0")
    path = c.umem.read_str(c.a["pathname"])
    f = c.task.bpf_task.fds.get(c.a["bpf_fd"])
    if isinstance(f.obj, KernelObject):      # bpf_fd_probe_obj(): neither a map nor a program
        raise BpfError(errno.EINVAL, f"obj_pin: fd {c.a['bpf_fd']} is not a BPF map or program")
    entries = c.st.bpffs.entries
    if path in entries:
        raise BpfError(errno.EEXIST, f"obj_pin: {path} exists")
    obj_get(f.obj)
    entries[path] = f.obj
    if hasattr(f.obj, "pinned"):
        f.obj.pinned.append(path)
    return 0


def obj_get_cmd(c: Call) -> int:
    """Mirrors bpf_obj_get_user(), kernel/bpf/inode.c."""
    flags = c.a["file_flags"]
    if flags & ~(U.BPF_F_RDONLY | U.BPF_F_WRONLY) or (
            flags & U.BPF_F_RDONLY and flags & U.BPF_F_WRONLY):
        raise BpfError(errno.EINVAL, f"obj_get: invalid file_flags {flags:#x}")
    path = c.umem.read_str(c.a["pathname"])
    obj = c.st.bpffs.entries.get(path)
    if obj is None:
        raise BpfError(errno.ENOENT, f"obj_get: {path} not pinned")
    obj_get(obj)
    return c.task.bpf_task.fds.install(
        BpfFile(obj, readable=not flags & U.BPF_F_WRONLY, writable=not flags & U.BPF_F_RDONLY))


def map_get_fd_by_id(c: Call) -> int:
    """Mirrors bpf_map_get_fd_by_id(): CAP_SYS_ADMIN, -ENOENT for a dead id."""
    if not c.task.capable(U.CAP_SYS_ADMIN):
        raise BpfError(errno.EPERM, "map_get_fd_by_id: needs CAP_SYS_ADMIN")
    flags = c.a["open_flags"]
    if flags & ~(U.BPF_F_RDONLY | U.BPF_F_WRONLY) or (
            flags & U.BPF_F_RDONLY and flags & U.BPF_F_WRONLY):
        raise BpfError(errno.EINVAL, f"map_get_fd_by_id: invalid open_flags {flags:#x}")
    m = c.st.map_ids.objs.get(c.a["start_id"])
    if m is None or m.usercnt == 0:
        raise BpfError(errno.ENOENT, f"map_get_fd_by_id: no map with id {c.a['start_id']}")
    map_inc(m, True)
    return c.task.bpf_task.fds.install(
        BpfFile(m, readable=not flags & U.BPF_F_WRONLY, writable=not flags & U.BPF_F_RDONLY))


def prog_get_fd_by_id(c: Call) -> int:
    if not c.task.capable(U.CAP_SYS_ADMIN):
        raise BpfError(errno.EPERM, "prog_get_fd_by_id: needs CAP_SYS_ADMIN")
    p = c.st.prog_ids.objs.get(c.a["start_id"])
    if p is None:
        raise BpfError(errno.ENOENT, f"prog_get_fd_by_id: no program with id {c.a['start_id']}")
    p.refcnt += 1
    return c.task.bpf_task.fds.install(BpfFile(p))


def _get_next_id(c: Call, ids: Any) -> int:
    if not c.task.capable(U.CAP_SYS_ADMIN):
        raise BpfError(errno.EPERM, "get_next_id: needs CAP_SYS_ADMIN")
    nid = ids.next_id(c.a["start_id"])
    if nid is None:
        raise BpfError(errno.ENOENT, f"get_next_id: no id after {c.a['start_id']}")
    c.write_back("next_id", nid)
    return 0


def obj_get_info_by_fd(c: Call) -> int:
    """Mirrors bpf_obj_get_info_by_fd(): fills struct bpf_map_info / bpf_prog_info; a
    closed fd is -EBADFD (not -EBADF), a file of another kind -EINVAL."""
    f = c.task.bpf_task.fds.files.get(c.a["bpf_fd"])
    if f is None:
        raise BpfError(errno.EBADFD, f"obj_get_info_by_fd: fd {c.a['bpf_fd']} is not open")
    if isinstance(f.obj, KernelObject):
        raise BpfError(errno.EINVAL, f"obj_get_info_by_fd: fd {c.a['bpf_fd']} is no BPF object")
    info = f.obj.info_bytes(c.st.bprof) if hasattr(f.obj, "info_bytes") else _map_info(c, f.obj)
    ulen = c.a["info_len"]
    if ulen > len(info):
        tail = c.umem.read(c.a["info"] + len(info), ulen - len(info))
        if any(tail):
            raise BpfError(errno.E2BIG, f"obj_get_info_by_fd: info_len {ulen} > "
                                        f"{len(info)} with non-zero tail")
    n = min(ulen, len(info))
    c.umem.write(c.a["info"], info[:n])
    c.write_back("info_len", n)
    return 0


def _map_info(c: Call, m: BpfMap) -> bytes:
    """struct bpf_map_info: 80 bytes, 88 with map_extra (the model fills the fields it has)."""
    fields: dict[str, int | bytes] = dict(
        type=m.map_type, id=m.id, key_size=m.key_size, value_size=m.value_size,
        max_entries=m.max_entries, map_flags=m.map_flags, name=m.name.encode())
    if c.st.bprof.map_extra:
        fields["map_extra"] = m.attr.map_extra
    return U.pack_layout(U.MAP_INFO_LAYOUT, 88 if c.st.bprof.map_extra else 80,
                         "struct bpf_map_info", **fields)


def prog_load(c: Call) -> int:
    from .core import bpf_prog_load
    return bpf_prog_load(c)


_HANDLERS: dict[int, Callable[[Call], int]] = {
    U.BPF_MAP_CREATE: map_create,
    U.BPF_MAP_LOOKUP_ELEM: map_lookup_elem,
    U.BPF_MAP_UPDATE_ELEM: map_update_elem,
    U.BPF_MAP_DELETE_ELEM: map_delete_elem,
    U.BPF_MAP_GET_NEXT_KEY: map_get_next_key,
    U.BPF_MAP_LOOKUP_AND_DELETE_ELEM: map_lookup_and_delete_elem,
    U.BPF_MAP_FREEZE: map_freeze,
    U.BPF_MAP_LOOKUP_BATCH: map_batch,
    U.BPF_MAP_LOOKUP_AND_DELETE_BATCH: map_batch,
    U.BPF_MAP_UPDATE_BATCH: map_batch,
    U.BPF_MAP_DELETE_BATCH: map_batch,
    U.BPF_OBJ_PIN: obj_pin,
    U.BPF_OBJ_GET: obj_get_cmd,
    U.BPF_MAP_GET_FD_BY_ID: map_get_fd_by_id,
    U.BPF_PROG_GET_FD_BY_ID: prog_get_fd_by_id,
    U.BPF_MAP_GET_NEXT_ID: lambda c: _get_next_id(c, c.st.map_ids),
    U.BPF_PROG_GET_NEXT_ID: lambda c: _get_next_id(c, c.st.prog_ids),
    U.BPF_OBJ_GET_INFO_BY_FD: obj_get_info_by_fd,
    U.BPF_PROG_LOAD: prog_load,
}

__all__ = ["sys_bpf", "Call", "map_put", "map_put_with_uref", "obj_put"]
