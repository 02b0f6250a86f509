"""uapi constants of the bpf() syscall and the `union bpf_attr` layouts as data.

Values follow include/uapi/linux/bpf.h (commands, map/prog types, flags) and
include/uapi/linux/capability.h (capability numbers).  The attr layouts are
tables of (field, offset, size) per command so the model's dispatcher and the
live-kernel ctypes binding pack and unpack the same bytes.
"""

from __future__ import annotations

import struct
from typing import Mapping

# the limits bpf() checks against, re-exported for the modules that use them as U.U32_MAX
from ..constants import INT_MAX as INT_MAX, U16_MAX as U16_MAX, U32_MAX as U32_MAX

# --- enum bpf_cmd --------------------------------------------------------
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_PROG_LOAD = 5
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_TEST_RUN = 10
BPF_PROG_RUN = 10
BPF_PROG_GET_NEXT_ID = 11
BPF_MAP_GET_NEXT_ID = 12
BPF_PROG_GET_FD_BY_ID = 13
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_BTF_LOAD = 18
BPF_BTF_GET_FD_BY_ID = 19
BPF_TASK_FD_QUERY = 20
BPF_MAP_LOOKUP_AND_DELETE_ELEM = 21
BPF_MAP_FREEZE = 22
BPF_BTF_GET_NEXT_ID = 23
BPF_MAP_LOOKUP_BATCH = 24
BPF_MAP_LOOKUP_AND_DELETE_BATCH = 25
BPF_MAP_UPDATE_BATCH = 26
BPF_MAP_DELETE_BATCH = 27
BPF_LINK_CREATE = 28
BPF_LINK_UPDATE = 29
BPF_LINK_GET_FD_BY_ID = 30
BPF_LINK_GET_NEXT_ID = 31
BPF_ENABLE_STATS = 32
BPF_ITER_CREATE = 33
BPF_LINK_DETACH = 34
BPF_PROG_BIND_MAP = 35
BPF_TOKEN_CREATE = 36

# --- enum bpf_attach_type (the cgroup ones the model attaches) -------------
BPF_CGROUP_INET_INGRESS = 0
BPF_CGROUP_INET_EGRESS = 1
BPF_CGROUP_INET_SOCK_CREATE = 2
BPF_CGROUP_SOCK_OPS = 3
BPF_CGROUP_DEVICE = 6
BPF_CGROUP_SYSCTL = 18
BPF_XDP_DEVMAP = 33           # programs a devmap / cpumap entry runs
BPF_XDP_CPUMAP = 35
# attach flags
BPF_F_ALLOW_OVERRIDE = 1 << 0
BPF_F_ALLOW_MULTI = 1 << 1

# --- enum bpf_map_type ---------------------------------------------------
BPF_MAP_TYPE_UNSPEC = 0
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PROG_ARRAY = 3
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_STACK_TRACE = 7
BPF_MAP_TYPE_CGROUP_ARRAY = 8
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_LPM_TRIE = 11
BPF_MAP_TYPE_ARRAY_OF_MAPS = 12
BPF_MAP_TYPE_HASH_OF_MAPS = 13
BPF_MAP_TYPE_DEVMAP = 14
BPF_MAP_TYPE_SOCKMAP = 15
BPF_MAP_TYPE_CPUMAP = 16
BPF_MAP_TYPE_XSKMAP = 17
BPF_MAP_TYPE_SOCKHASH = 18
BPF_MAP_TYPE_CGROUP_STORAGE = 19
BPF_MAP_TYPE_REUSEPORT_SOCKARRAY = 20
BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21
BPF_MAP_TYPE_QUEUE = 22
BPF_MAP_TYPE_STACK = 23
BPF_MAP_TYPE_SK_STORAGE = 24
BPF_MAP_TYPE_DEVMAP_HASH = 25
BPF_MAP_TYPE_STRUCT_OPS = 26
BPF_MAP_TYPE_RINGBUF = 27
BPF_MAP_TYPE_INODE_STORAGE = 28
BPF_MAP_TYPE_TASK_STORAGE = 29
BPF_MAP_TYPE_BLOOM_FILTER = 30
BPF_MAP_TYPE_USER_RINGBUF = 31
BPF_MAP_TYPE_CGRP_STORAGE = 32
BPF_MAP_TYPE_ARENA = 33

# --- enum bpf_prog_type --------------------------------------------------
BPF_PROG_TYPE_UNSPEC = 0
BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_PROG_TYPE_KPROBE = 2
BPF_PROG_TYPE_SCHED_CLS = 3
BPF_PROG_TYPE_SCHED_ACT = 4
BPF_PROG_TYPE_TRACEPOINT = 5
BPF_PROG_TYPE_XDP = 6
BPF_PROG_TYPE_PERF_EVENT = 7
BPF_PROG_TYPE_CGROUP_SKB = 8
BPF_PROG_TYPE_CGROUP_SOCK = 9
BPF_PROG_TYPE_LWT_IN = 10
BPF_PROG_TYPE_LWT_OUT = 11
BPF_PROG_TYPE_LWT_XMIT = 12
BPF_PROG_TYPE_SOCK_OPS = 13
BPF_PROG_TYPE_SK_SKB = 14
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_PROG_TYPE_SK_MSG = 16
BPF_PROG_TYPE_RAW_TRACEPOINT = 17
BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18
BPF_PROG_TYPE_LWT_SEG6LOCAL = 19
BPF_PROG_TYPE_LIRC_MODE2 = 20
BPF_PROG_TYPE_SK_REUSEPORT = 21
BPF_PROG_TYPE_FLOW_DISSECTOR = 22
BPF_PROG_TYPE_CGROUP_SYSCTL = 23
BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE = 24
BPF_PROG_TYPE_CGROUP_SOCKOPT = 25
BPF_PROG_TYPE_TRACING = 26
BPF_PROG_TYPE_STRUCT_OPS = 27
BPF_PROG_TYPE_EXT = 28
BPF_PROG_TYPE_LSM = 29
BPF_PROG_TYPE_SK_LOOKUP = 30
BPF_PROG_TYPE_SYSCALL = 31
BPF_PROG_TYPE_NETFILTER = 32

# --- element update flags ------------------------------------------------
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4

# --- map_flags -----------------------------------------------------------
BPF_F_NO_PREALLOC = 1 << 0
BPF_F_NO_COMMON_LRU = 1 << 1
BPF_F_NUMA_NODE = 1 << 2
BPF_F_RDONLY = 1 << 3
BPF_F_WRONLY = 1 << 4
BPF_F_STACK_BUILD_ID = 1 << 5
BPF_F_ZERO_SEED = 1 << 6
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_WRONLY_PROG = 1 << 8
BPF_F_CLONE = 1 << 9
BPF_F_MMAPABLE = 1 << 10
BPF_F_PRESERVE_ELEMS = 1 << 11
BPF_F_INNER_MAP = 1 << 12
BPF_F_LINK = 1 << 13
BPF_F_PATH_FD = 1 << 14
BPF_F_VTYPE_BTF_OBJ_FD = 1 << 15
BPF_F_TOKEN_FD = 1 << 16
BPF_F_SEGV_ON_FAULT = 1 << 17
BPF_F_NO_USER_CONV = 1 << 18

# --- prog_flags ----------------------------------------------------------
BPF_F_STRICT_ALIGNMENT = 1 << 0
BPF_F_ANY_ALIGNMENT = 1 << 1
BPF_F_TEST_RND_HI32 = 1 << 2
BPF_F_TEST_STATE_FREQ = 1 << 3
BPF_F_SLEEPABLE = 1 << 4
BPF_F_XDP_HAS_FRAGS = 1 << 5

# --- misc sizes and errnos ----------------------------------------------
BPF_OBJ_NAME_LEN = 16
ENOTSUPP = 524            # kernel-internal errno leaked by BPF (include/linux/errno.h)
MAX_BPF_STACK = 512
BPF_MAXINSNS = 4096
BPF_COMPLEXITY_LIMIT_INSNS = 1_000_000

# --- capabilities (include/uapi/linux/capability.h) ----------------------
CAP_IPC_LOCK = 14
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_SYS_RESOURCE = 24
CAP_PERFMON = 38
CAP_BPF = 39
CAP_LAST_CAP = 40

# --- rlimits (include/uapi/asm-generic/resource.h) ------------------------
RLIMIT_MEMLOCK = 8
RLIM_INFINITY = (1 << 64) - 1

MAP_TYPE_NAMES: Mapping[int, str] = {
    v: k[len("BPF_MAP_TYPE_"):] for k, v in list(globals().items())
    if k.startswith("BPF_MAP_TYPE_") and isinstance(v, int)
}
PROG_TYPE_NAMES: Mapping[int, str] = {
    v: k[len("BPF_PROG_TYPE_"):] for k, v in list(globals().items())
    if k.startswith("BPF_PROG_TYPE_") and isinstance(v, int)
}

# --- union bpf_attr layouts ----------------------------------------------
# Each layout: tuple of (field, offset, size).  Sizes 1/2/4/8 are unsigned
# little-endian integers; other sizes (names) are raw byte strings.
Field = tuple[str, int, int]

MAP_CREATE_LAYOUT: tuple[Field, ...] = (
    ("map_type", 0, 4), ("key_size", 4, 4), ("value_size", 8, 4),
    ("max_entries", 12, 4), ("map_flags", 16, 4), ("inner_map_fd", 20, 4),
    ("numa_node", 24, 4), ("map_name", 28, 16), ("map_ifindex", 44, 4),
    ("btf_fd", 48, 4), ("btf_key_type_id", 52, 4), ("btf_value_type_id", 56, 4),
    ("btf_vmlinux_value_type_id", 60, 4), ("map_extra", 64, 8),
    ("value_type_btf_obj_fd", 72, 4), ("map_token_fd", 76, 4),
    ("excl_prog_hash", 80, 8), ("excl_prog_hash_size", 88, 4),
)
ELEM_LAYOUT: tuple[Field, ...] = (
    ("map_fd", 0, 4), ("key", 8, 8), ("value", 16, 8), ("flags", 24, 8),
)
BATCH_LAYOUT: tuple[Field, ...] = (
    ("in_batch", 0, 8), ("out_batch", 8, 8), ("keys", 16, 8), ("values", 24, 8),
    ("count", 32, 4), ("map_fd", 36, 4), ("elem_flags", 40, 8), ("flags", 48, 8),
)
PROG_LOAD_LAYOUT: tuple[Field, ...] = (
    ("prog_type", 0, 4), ("insn_cnt", 4, 4), ("insns", 8, 8), ("license", 16, 8),
    ("log_level", 24, 4), ("log_size", 28, 4), ("log_buf", 32, 8),
    ("kern_version", 40, 4), ("prog_flags", 44, 4), ("prog_name", 48, 16),
    ("prog_ifindex", 64, 4), ("expected_attach_type", 68, 4), ("prog_btf_fd", 72, 4),
    ("func_info_rec_size", 76, 4), ("func_info", 80, 8), ("func_info_cnt", 88, 4),
    ("line_info_rec_size", 92, 4), ("line_info", 96, 8), ("line_info_cnt", 104, 4),
    ("attach_btf_id", 108, 4), ("attach_prog_fd", 112, 4), ("core_relo_cnt", 116, 4),
    ("fd_array", 120, 8), ("core_relos", 128, 8), ("core_relo_rec_size", 136, 4),
    ("log_true_size", 140, 4), ("prog_token_fd", 144, 4), ("fd_array_cnt", 148, 4),
    ("signature", 152, 8), ("signature_size", 160, 4), ("keyring_id", 164, 4),
)
OBJ_LAYOUT: tuple[Field, ...] = (
    ("pathname", 0, 8), ("bpf_fd", 8, 4), ("file_flags", 12, 4), ("path_fd", 16, 4),
)
GET_ID_LAYOUT: tuple[Field, ...] = (
    ("start_id", 0, 4), ("next_id", 4, 4), ("open_flags", 8, 4),
)
INFO_LAYOUT: tuple[Field, ...] = (("bpf_fd", 0, 4), ("info_len", 4, 4), ("info", 8, 8))
FREEZE_LAYOUT: tuple[Field, ...] = (("map_fd", 0, 4),)

LAYOUTS: Mapping[int, tuple[Field, ...]] = {
    BPF_MAP_CREATE: MAP_CREATE_LAYOUT,
    BPF_MAP_LOOKUP_ELEM: ELEM_LAYOUT, BPF_MAP_UPDATE_ELEM: ELEM_LAYOUT,
    BPF_MAP_DELETE_ELEM: ELEM_LAYOUT, BPF_MAP_GET_NEXT_KEY: ELEM_LAYOUT,
    BPF_MAP_LOOKUP_AND_DELETE_ELEM: ELEM_LAYOUT,
    BPF_MAP_LOOKUP_BATCH: BATCH_LAYOUT, BPF_MAP_LOOKUP_AND_DELETE_BATCH: BATCH_LAYOUT,
    BPF_MAP_UPDATE_BATCH: BATCH_LAYOUT, BPF_MAP_DELETE_BATCH: BATCH_LAYOUT,
    BPF_PROG_LOAD: PROG_LOAD_LAYOUT,
    BPF_OBJ_PIN: OBJ_LAYOUT, BPF_OBJ_GET: OBJ_LAYOUT,
    BPF_MAP_GET_FD_BY_ID: GET_ID_LAYOUT, BPF_PROG_GET_FD_BY_ID: GET_ID_LAYOUT,
    BPF_MAP_GET_NEXT_ID: GET_ID_LAYOUT, BPF_PROG_GET_NEXT_ID: GET_ID_LAYOUT,
    BPF_OBJ_GET_INFO_BY_FD: INFO_LAYOUT,
    BPF_MAP_FREEZE: FREEZE_LAYOUT,
}

# struct bpf_map_info (include/uapi/linux/bpf.h), the OBJ_GET_INFO_BY_FD output of a
# map; the model fills the first 80 bytes, 88 with map_extra (switch map_extra)
MAP_INFO_LAYOUT: tuple[Field, ...] = (
    ("type", 0, 4), ("id", 4, 4), ("key_size", 8, 4), ("value_size", 12, 4),
    ("max_entries", 16, 4), ("map_flags", 20, 4), ("name", 24, 16), ("ifindex", 40, 4),
    ("btf_vmlinux_value_type_id", 44, 4), ("netns_dev", 48, 8), ("netns_ino", 56, 8),
    ("btf_id", 64, 4), ("btf_key_type_id", 68, 4), ("btf_value_type_id", 72, 4),
    ("btf_vmlinux_id", 76, 4), ("map_extra", 80, 8), ("hash", 88, 8), ("hash_size", 96, 4),
)

_INT_FMT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


def field_end(layout: tuple[Field, ...], name: str) -> int:
    """Byte offset just past field `name` (offsetofend)."""
    for fname, off, size in layout:
        if fname == name:
            return off + size
    raise KeyError(name)


def pack_layout(layout: tuple[Field, ...], size: int | None = None, what: str = "struct",
                **fields: int | bytes) -> bytes:
    """Bytes of a uapi struct from named fields (others zero); ``size`` defaults to the
    layout's end rounded to 8."""
    end = max(off + sz for _, off, sz in layout)
    n = size if size is not None else (end + 7) // 8 * 8
    buf = bytearray(n)
    by_name = {f: (off, sz) for f, off, sz in layout}
    for name, value in fields.items():
        if name not in by_name:
            raise TypeError(f"{what} has no field {name!r}")
        off, sz = by_name[name]
        if off + sz > n:
            raise ValueError(f"field {name} does not fit in {n} bytes")
        if sz in _INT_FMT and isinstance(value, int):
            buf[off:off + sz] = struct.pack(_INT_FMT[sz], value & ((1 << (8 * sz)) - 1))
        elif isinstance(value, (bytes, bytearray)):
            if len(value) > sz:
                raise ValueError(f"field {name} is {sz} bytes, got {len(value)}")
            buf[off:off + len(value)] = value
        else:
            raise TypeError(f"field {name}: expected int or bytes")
    return bytes(buf)


def unpack_layout(layout: tuple[Field, ...], data: bytes, *,
                  present_only: bool = False) -> dict[str, int | bytes]:
    """Decode a uapi struct's fields; missing bytes read as zero, or with
    ``present_only`` the fields ``data`` does not fully hold are left out."""
    end = max(off + sz for _, off, sz in layout)
    buf = bytes(data[:end]).ljust(end, b"\0")
    out: dict[str, int | bytes] = {}
    for name, off, sz in layout:
        if present_only and off + sz > len(data):
            continue
        if sz in _INT_FMT:
            out[name] = struct.unpack_from(_INT_FMT[sz], buf, off)[0]
        else:
            out[name] = buf[off:off + sz]
    return out


def pack_attr(cmd: int, size: int | None = None, **fields: int | bytes) -> bytes:
    """Build `union bpf_attr` bytes for `cmd` from named fields (others zero)."""
    return pack_layout(LAYOUTS[cmd], size, f"bpf_attr for command {cmd}", **fields)


def unpack_attr(cmd: int, data: bytes) -> dict[str, int | bytes]:
    """Decode the fields of `cmd` from attr bytes (missing bytes read as zero)."""
    return unpack_layout(LAYOUTS[cmd], data)


def uapi_names() -> list[str]:
    """Every exported uapi constant name."""
    prefixes = ("BPF_", "CAP_", "RLIM")
    return [k for k, v in globals().items()
            if k.startswith(prefixes) and isinstance(v, int)] + ["ENOTSUPP"]


# The public names: every uapi constant, in definition order, written out so that type
# checkers see them (a computed __all__ hides them); tests/test_typing.py checks that
# it is exactly uapi_names().  The tables and pack/unpack functions are imported by
# name (pybpfmem.bpf re-exports them), not star-imported.
__all__ = [
    "BPF_MAP_CREATE", "BPF_MAP_LOOKUP_ELEM", "BPF_MAP_UPDATE_ELEM", "BPF_MAP_DELETE_ELEM",
    "BPF_MAP_GET_NEXT_KEY", "BPF_PROG_LOAD", "BPF_OBJ_PIN", "BPF_OBJ_GET", "BPF_PROG_ATTACH",
    "BPF_PROG_DETACH", "BPF_PROG_TEST_RUN", "BPF_PROG_RUN", "BPF_PROG_GET_NEXT_ID",
    "BPF_MAP_GET_NEXT_ID", "BPF_PROG_GET_FD_BY_ID", "BPF_MAP_GET_FD_BY_ID",
    "BPF_OBJ_GET_INFO_BY_FD", "BPF_PROG_QUERY", "BPF_RAW_TRACEPOINT_OPEN", "BPF_BTF_LOAD",
    "BPF_BTF_GET_FD_BY_ID", "BPF_TASK_FD_QUERY", "BPF_MAP_LOOKUP_AND_DELETE_ELEM",
    "BPF_MAP_FREEZE", "BPF_BTF_GET_NEXT_ID", "BPF_MAP_LOOKUP_BATCH",
    "BPF_MAP_LOOKUP_AND_DELETE_BATCH", "BPF_MAP_UPDATE_BATCH", "BPF_MAP_DELETE_BATCH",
    "BPF_LINK_CREATE", "BPF_LINK_UPDATE", "BPF_LINK_GET_FD_BY_ID", "BPF_LINK_GET_NEXT_ID",
    "BPF_ENABLE_STATS", "BPF_ITER_CREATE", "BPF_LINK_DETACH", "BPF_PROG_BIND_MAP",
    "BPF_TOKEN_CREATE", "BPF_CGROUP_INET_INGRESS", "BPF_CGROUP_INET_EGRESS",
    "BPF_CGROUP_INET_SOCK_CREATE", "BPF_CGROUP_SOCK_OPS", "BPF_CGROUP_DEVICE",
    "BPF_CGROUP_SYSCTL", "BPF_XDP_DEVMAP", "BPF_XDP_CPUMAP", "BPF_F_ALLOW_OVERRIDE",
    "BPF_F_ALLOW_MULTI", "BPF_MAP_TYPE_UNSPEC", "BPF_MAP_TYPE_HASH", "BPF_MAP_TYPE_ARRAY",
    "BPF_MAP_TYPE_PROG_ARRAY", "BPF_MAP_TYPE_PERF_EVENT_ARRAY", "BPF_MAP_TYPE_PERCPU_HASH",
    "BPF_MAP_TYPE_PERCPU_ARRAY", "BPF_MAP_TYPE_STACK_TRACE", "BPF_MAP_TYPE_CGROUP_ARRAY",
    "BPF_MAP_TYPE_LRU_HASH", "BPF_MAP_TYPE_LRU_PERCPU_HASH", "BPF_MAP_TYPE_LPM_TRIE",
    "BPF_MAP_TYPE_ARRAY_OF_MAPS", "BPF_MAP_TYPE_HASH_OF_MAPS", "BPF_MAP_TYPE_DEVMAP",
    "BPF_MAP_TYPE_SOCKMAP", "BPF_MAP_TYPE_CPUMAP", "BPF_MAP_TYPE_XSKMAP",
    "BPF_MAP_TYPE_SOCKHASH", "BPF_MAP_TYPE_CGROUP_STORAGE", "BPF_MAP_TYPE_REUSEPORT_SOCKARRAY",
    "BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE", "BPF_MAP_TYPE_QUEUE", "BPF_MAP_TYPE_STACK",
    "BPF_MAP_TYPE_SK_STORAGE", "BPF_MAP_TYPE_DEVMAP_HASH", "BPF_MAP_TYPE_STRUCT_OPS",
    "BPF_MAP_TYPE_RINGBUF", "BPF_MAP_TYPE_INODE_STORAGE", "BPF_MAP_TYPE_TASK_STORAGE",
    "BPF_MAP_TYPE_BLOOM_FILTER", "BPF_MAP_TYPE_USER_RINGBUF", "BPF_MAP_TYPE_CGRP_STORAGE",
    "BPF_MAP_TYPE_ARENA", "BPF_PROG_TYPE_UNSPEC", "BPF_PROG_TYPE_SOCKET_FILTER",
    "BPF_PROG_TYPE_KPROBE", "BPF_PROG_TYPE_SCHED_CLS", "BPF_PROG_TYPE_SCHED_ACT",
    "BPF_PROG_TYPE_TRACEPOINT", "BPF_PROG_TYPE_XDP", "BPF_PROG_TYPE_PERF_EVENT",
    "BPF_PROG_TYPE_CGROUP_SKB", "BPF_PROG_TYPE_CGROUP_SOCK", "BPF_PROG_TYPE_LWT_IN",
    "BPF_PROG_TYPE_LWT_OUT", "BPF_PROG_TYPE_LWT_XMIT", "BPF_PROG_TYPE_SOCK_OPS",
    "BPF_PROG_TYPE_SK_SKB", "BPF_PROG_TYPE_CGROUP_DEVICE", "BPF_PROG_TYPE_SK_MSG",
    "BPF_PROG_TYPE_RAW_TRACEPOINT", "BPF_PROG_TYPE_CGROUP_SOCK_ADDR",
    "BPF_PROG_TYPE_LWT_SEG6LOCAL", "BPF_PROG_TYPE_LIRC_MODE2", "BPF_PROG_TYPE_SK_REUSEPORT",
    "BPF_PROG_TYPE_FLOW_DISSECTOR", "BPF_PROG_TYPE_CGROUP_SYSCTL",
    "BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE", "BPF_PROG_TYPE_CGROUP_SOCKOPT",
    "BPF_PROG_TYPE_TRACING", "BPF_PROG_TYPE_STRUCT_OPS", "BPF_PROG_TYPE_EXT",
    "BPF_PROG_TYPE_LSM", "BPF_PROG_TYPE_SK_LOOKUP", "BPF_PROG_TYPE_SYSCALL",
    "BPF_PROG_TYPE_NETFILTER", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "BPF_F_LOCK",
    "BPF_F_NO_PREALLOC", "BPF_F_NO_COMMON_LRU", "BPF_F_NUMA_NODE", "BPF_F_RDONLY",
    "BPF_F_WRONLY", "BPF_F_STACK_BUILD_ID", "BPF_F_ZERO_SEED", "BPF_F_RDONLY_PROG",
    "BPF_F_WRONLY_PROG", "BPF_F_CLONE", "BPF_F_MMAPABLE", "BPF_F_PRESERVE_ELEMS",
    "BPF_F_INNER_MAP", "BPF_F_LINK", "BPF_F_PATH_FD", "BPF_F_VTYPE_BTF_OBJ_FD",
    "BPF_F_TOKEN_FD", "BPF_F_SEGV_ON_FAULT", "BPF_F_NO_USER_CONV", "BPF_F_STRICT_ALIGNMENT",
    "BPF_F_ANY_ALIGNMENT", "BPF_F_TEST_RND_HI32", "BPF_F_TEST_STATE_FREQ", "BPF_F_SLEEPABLE",
    "BPF_F_XDP_HAS_FRAGS", "BPF_OBJ_NAME_LEN", "BPF_MAXINSNS", "BPF_COMPLEXITY_LIMIT_INSNS",
    "CAP_IPC_LOCK", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_PERFMON",
    "CAP_BPF", "CAP_LAST_CAP", "RLIMIT_MEMLOCK", "RLIM_INFINITY", "ENOTSUPP",
]
