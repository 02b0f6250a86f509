"""Minimal kernel objects that BPF maps hold, and helpers shared by the map-family modules.

The kernel objects are deliberately tiny: just the state the map families read or
charge.  They live per System (a registry object created on first use, stored on
the System instance: no module-level state) and reach tasks as file descriptors.

- NetDevice: a net_device with an ifindex (devmap / devmap_hash values, xsk binding).
- Socket: a TCP/UDP socket with sk_omem_alloc, the option-memory counter that
  bpf_sk_storage_charge() checks against sysctl net.core.optmem_max
  (mirrors sk_omem_alloc / optmem_max use in net/core/bpf_sk_storage.c), a psock
  slot (sockmap/sockhash, net/core/skmsg.c) and its list of sock_map links.
- XdpSocket: an AF_XDP socket (net/xdp/xsk.c) bound to a netdev queue.
- CgroupFile: an open cgroup directory (the fd CGRP_STORAGE and cgroup storage use),
  referring to a MemCgroup.
- InodeFile: an open file of an inode (INODE_STORAGE keys).
- PidFd: a pidfd referring to a Task (TASK_STORAGE keys).

Objects that can own BPF local storage (sockets, inodes, tasks, cgroups) get one
"owner storage" slot each, the model of sk->sk_bpf_storage, inode's i_bpf_storage,
task->bpf_storage and cgroup->bpf_cgrp_storage; it is kept in the registry keyed by
the owner, so Task and MemCgroup need no extra fields.
"""

from __future__ import annotations

import errno
import itertools
from dataclasses import dataclass, field
from typing import Any


# ---------------------------------------------------------------------------
# helpers shared by the family modules (version checks, gfp, arithmetic)
# ---------------------------------------------------------------------------

PAGE_ALLOC_COSTLY_ORDER = 3
KMALLOC_MAX_SIZE = 1 << 22          # x86_64 SLUB, v5.10 .. current
MAX_BPF_STACK = 512
PCPU_MIN_UNIT_SIZE = 32 << 10
U32_MAX = (1 << 32) - 1
U16_MAX = (1 << 16) - 1
ENOTSUPP = 524                      # kernel-internal errno leaked by several BPF paths
NR_CPUS = 8192                      # CONFIG_NR_CPUS of x86_64 distribution configs (cpumap limit)


def kver(system: Any) -> tuple[int, int]:
    """The kernel version a System's profile follows, as (major, minor)."""
    prof = system.profile
    ver = getattr(prof, "version", None)
    if isinstance(ver, tuple) and len(ver) >= 2:
        return int(ver[0]), int(ver[1])
    name = str(getattr(prof, "name", prof))
    major, _, minor = name.partition(".")
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def at_least(system: Any, major: int, minor: int) -> bool:
    return kver(system) >= (major, minor)


def runtime_elem_gfp(m: Any) -> int:
    """gfp of non-preallocated runtime elements (LPM, devmap, cgroup storage buffers) for
    a map: v5.10/5.11 GFP_ATOMIC | __GFP_NOWARN (forced over memory.max); v6.0+
    GFP_NOWAIT | __GFP_NOWARN ("bpf: Make non-preallocated allocation low priority")."""
    base = m.gfp.NOWAIT if m.bprof.nopre_gfp == "nowait" else m.gfp.ATOMIC
    return base | m.gfp.NOWARN


def atomic_gfp(m: Any) -> int:
    """GFP_ATOMIC | __GFP_NOWARN: sockhash elements, xsk nodes, sock_map links, local storage."""
    return m.gfp.ATOMIC | m.gfp.NOWARN


def acct(m: Any, flags: int) -> int:
    """flags | __GFP_ACCOUNT where the profile accounts BPF memory (v5.11+)."""
    return flags | m.gfp.ACCOUNT if m.bprof.account else flags


def struct_alloc(m: Any, size: int) -> int:
    """The map struct allocation of the families that used kzalloc before v6.1:
    kzalloc(GFP_USER | __GFP_ZERO [| __GFP_ACCOUNT v5.11]) in the creator's context;
    bpf_map_area_alloc() from v6.1 ("bpf: use bpf_map_area_alloc consistently")."""
    if m.bprof.htab_struct_area:
        return int(m.area_alloc(size))
    return int(m.kzalloc_account(size, acct(m, m.gfp.USER | m.gfp.ZERO)))


def struct_free(m: Any, addr: int | None) -> None:
    if addr is None:
        return
    if m.bprof.htab_struct_area:
        m.area_free(addr)
    else:
        m.kfree(addr)


def pow2(x: int) -> int:
    """roundup_pow_of_two() (x >= 1)."""
    return 1 if x <= 1 else 1 << (x - 1).bit_length()


def rup(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def bpf_error(err: int, message: str) -> Exception:
    """The BPF model's error (pybpfmem.bpf.errors.BpfError, an OSError)."""
    from pybpfmem.bpf.errors import BpfError
    return BpfError(err, message)


def check_flags_access_ok(flags: int) -> bool:
    """bpf_map_flags_access_ok(): RDONLY_PROG and WRONLY_PROG are exclusive."""
    both = (1 << 7) | (1 << 8)
    return (flags & both) != both


# ---------------------------------------------------------------------------
# struct sizes
# ---------------------------------------------------------------------------
# pybpfmem/bpf/sizes.py (StructSizes per profile) is the source of truth; the
# few structs it does not list are estimated here from the kernel's layouts
# (x86_64, no debug options), identical in every profile:
_EXTRA_SIZES: dict[str, int] = {
    "stack_map_bucket": 16,     # pcpu_freelist_node, hash, nr (kernel/bpf/stackmap.c)
    "bpf_cpu_map_entry": 136,   # cpu, map_id, bulkq, queue, kthread, value, prog, completion, rcu_work (est.)
    "xdp_bulk_queue": 96,       # 8 frame pointers, flush_node, obj, count (est.)
    "ptr_ring": 192,            # three cache-line aligned groups (include/linux/ptr_ring.h)
    "sk_psock_link": 32,        # list, map, link_raw (include/linux/skmsg.h)
    "sk_psock": 488,            # est.; allocated unaccounted
}

# offsetof(struct bpf_local_storage_elem, sdata.data): the sdata member is
# ____cacheline_aligned at offset 64, its data follows the 8-byte smap pointer.
SELEM_SDATA_DATA_OFFSET = 72


def struct_size(obj: Any, name: str) -> int:
    """sizeof(struct <name>) for a map (its StructSizes) or a System (its profile)."""
    table = getattr(obj, "sizes", None)
    if table is None or not hasattr(table, "bpf_map"):
        from pybpfmem.bpf.sizes import sizes_for
        table = sizes_for(str(obj.profile.name))
    if hasattr(table, name):
        return int(getattr(table, name))
    return _EXTRA_SIZES[name]


# ---------------------------------------------------------------------------
# the kernel objects
# ---------------------------------------------------------------------------

@dataclass(eq=False)
class NetDevice:
    """A net_device: name, ifindex, reference count (dev_hold/dev_put)."""
    name: str
    ifindex: int
    refcnt: int = 1
    registered: bool = True


@dataclass(eq=False)
class Socket:
    """A socket with the fields BPF maps touch.

    sk_omem_alloc: option memory charged by SK_STORAGE (bpf_sk_storage_charge());
    psock: the sk_psock created on first insertion into a sockmap/sockhash;
    links: (map, key) of the sock_map links (struct sk_psock_link) of this socket.
    """
    kind: str                    # "tcp" or "udp"
    family: int
    ino: int
    sk_omem_alloc: int = 0
    psock: int | None = None     # address of the (unaccounted) psock allocation
    links: list[tuple[Any, Any, int]] = field(default_factory=list)  # (map, key, link addr)
    reuseport: bool = False
    established: bool = False
    closed: bool = False


@dataclass(eq=False)
class XdpSocket:
    """An AF_XDP socket (struct xdp_sock), optionally bound to a netdev queue."""
    ino: int
    dev: NetDevice | None = None
    queue_id: int = 0
    map_nodes: list[tuple[Any, int, int]] = field(default_factory=list)  # (map, key, node addr)
    closed: bool = False


@dataclass(eq=False)
class CgroupFile:
    """An open cgroup directory (what a cgroup fd refers to)."""
    cgroup: Any                  # MemCgroup


@dataclass(eq=False)
class Inode:
    ino: int
    path: str


@dataclass(eq=False)
class InodeFile:
    inode: Inode


@dataclass(eq=False)
class PidFd:
    task: Any                    # Task


class KObjectRegistry:
    """Per-System state of the kernel objects (lives on the System instance)."""

    def __init__(self) -> None:
        self.netdevs: dict[int, NetDevice] = {}
        self._ifindex = itertools.count(2)   # ifindex 1 is lo
        self._ino = itertools.count(10000)
        self.inodes: dict[str, Inode] = {}
        self.sockets: list[Socket] = []
        self.optmem_max = 20480              # sysctl net.core.optmem_max default (v5.10..6.x: 20480)
        # owner -> {storage map -> selem state}; the owner's bpf_local_storage
        self.owner_storage: dict[int, Any] = {}

    def next_ino(self) -> int:
        return next(self._ino)


def registry(system: Any) -> KObjectRegistry:
    """The System's kernel-object registry, created on first use."""
    reg = getattr(system, "_kobjects", None)
    if reg is None:
        reg = KObjectRegistry()
        system._kobjects = reg
    return reg


def _fdtable(task: Any) -> Any:
    """The task's FdTable (pybpfmem.bpf.fd), created on first use if the task has none."""
    from pybpfmem.bpf.fd import FdTable
    st = getattr(task, "bpf_task", None)          # BpfTaskMixin's per-task state
    if st is not None and isinstance(getattr(st, "fds", None), FdTable):
        return st.fds
    for name in ("fdtable", "fd_table", "files", "fds"):
        t = getattr(task, name, None)
        if isinstance(t, FdTable):
            return t
    t = FdTable()
    task.fdtable = t
    return t


def install_fd(task: Any, obj: Any) -> int:
    """Put a kernel object into the task's fd table (fd_install()), returning the fd."""
    from pybpfmem.bpf.fd import BpfFile
    return int(_fdtable(task).install(BpfFile(obj)))


def fd_object(task: Any, fd: int) -> Any:
    """The object behind a task's fd (fdget()); EBADF if the fd is not open."""
    fn = getattr(task, "fd_object", None)
    if callable(fn):
        return fn(fd)
    return _fdtable(task).get(fd).obj


def current_task(system: Any) -> Any:
    task = getattr(system, "current_task", None)
    if task is None:
        raise bpf_error(errno.EINVAL, "no current task: an fd-keyed operation needs a task context")
    return task


# ---------------------------------------------------------------------------
# mixins (the BPF core mixes these into BpfSystemMixin / BpfTaskMixin)
# ---------------------------------------------------------------------------

def netdev_by_ifindex(system: Any, ifindex: int) -> NetDevice | None:
    """dev_get_by_index() without taking the reference."""
    dev = registry(system).netdevs.get(int(ifindex))
    return dev if dev is not None and dev.registered else None


class KObjectSystemMixin:
    """System-side creation of kernel objects that are not per task."""

    def create_netdev(self, name: str) -> NetDevice:
        """register_netdevice(): a net device with the next free ifindex."""
        reg = registry(self)
        if any(d.name == name for d in reg.netdevs.values()):
            raise OSError(errno.EEXIST, f"netdev {name!r} already exists")
        dev = NetDevice(name=name, ifindex=next(reg._ifindex))
        reg.netdevs[dev.ifindex] = dev
        return dev

    def netdev_by_ifindex(self, ifindex: int) -> NetDevice | None:
        """dev_get_by_index() without taking the reference."""
        return netdev_by_ifindex(self, ifindex)

    def set_optmem_max(self, nbytes: int) -> None:
        """sysctl net.core.optmem_max (limit of sk_omem_alloc)."""
        if nbytes < 0:
            raise ValueError("optmem_max must be >= 0")
        registry(self).optmem_max = int(nbytes)

    @property
    def optmem_max(self) -> int:
        return registry(self).optmem_max


class KObjectTaskMixin:
    """Task-side creation of fds for kernel objects."""

    def create_socket(self, kind: str = "tcp", family: int = 2) -> int:
        """socket(): a TCP or UDP socket fd (family AF_INET=2 / AF_INET6=10)."""
        if kind not in ("tcp", "udp"):
            raise ValueError("kind must be 'tcp' or 'udp'")
        sys_ = self.system  # type: ignore[attr-defined]
        reg = registry(sys_)
        sk = Socket(kind=kind, family=int(family), ino=reg.next_ino(),
                    established=(kind == "tcp"))
        reg.sockets.append(sk)
        return install_fd(self, sk)

    def create_xsk(self, dev: NetDevice | None = None, queue_id: int = 0) -> int:
        """socket(AF_XDP) (+ bind to dev/queue if given): an AF_XDP socket fd."""
        reg = registry(self.system)  # type: ignore[attr-defined]
        return install_fd(self, XdpSocket(ino=reg.next_ino(), dev=dev, queue_id=int(queue_id)))

    def open_cgroup(self, cgroup: Any) -> int:
        """open() of a cgroup directory: the fd CGRP_STORAGE / cgroup attach take."""
        return install_fd(self, CgroupFile(cgroup=cgroup))

    def open_file(self, path: str) -> int:
        """open() of a regular file; one Inode per path."""
        reg = registry(self.system)  # type: ignore[attr-defined]
        inode = reg.inodes.get(path)
        if inode is None:
            inode = Inode(ino=reg.next_ino(), path=path)
            reg.inodes[path] = inode
        return install_fd(self, InodeFile(inode=inode))

    def pidfd_open(self, target: Any = None) -> int:
        """pidfd_open(): an fd for a task (default: this task)."""
        return install_fd(self, PidFd(task=self if target is None else target))


def capable(ctx: Any, which: str) -> bool:
    """Whether the creator (a map.CreateCtx) has a capability: "bpf" (bpf_capable():
    CAP_BPF or CAP_SYS_ADMIN), "net_admin" (CAP_NET_ADMIN or CAP_SYS_ADMIN), "perfmon"."""
    if which == "bpf":
        return bool(ctx.bpf_capable())
    if which == "net_admin":
        return bool(ctx.net_admin())
    if which == "perfmon":
        return bool(ctx.perfmon_capable())
    raise ValueError(which)


def require_cap(ctx: Any, which: str, map_kind: str) -> None:
    """-EPERM unless the creator has the capability (per-type check of v5.10 .. v6.4,
    centralised in map_create() from v6.5; same errno either way)."""
    if not capable(ctx, which):
        names = {"bpf": "CAP_BPF or CAP_SYS_ADMIN (bpf_capable())",
                 "net_admin": "CAP_NET_ADMIN", "perfmon": "CAP_PERFMON"}
        raise bpf_error(errno.EPERM, f"{map_kind}: creating this map type needs {names[which]}")


def close_kobject(system: Any, obj: Any) -> None:
    """Last fd of a kernel object closed (the object is destroyed; the model has no other
    references): a socket leaves every sockmap/sockhash (sock_map_close() ->
    sock_map_remove_links()) and drops its SK_STORAGE (bpf_sk_storage_free()); an AF_XDP
    socket leaves every XSKMAP slot (xsk_delete_from_maps()).  The BPF core's close()
    calls this for non-BPF objects."""
    from pybpfmem.bpf.bpf_local_storage import owner_destroyed
    if isinstance(obj, Socket) and not obj.closed:
        for m, key, _link in list(obj.links):
            remove = getattr(m, "socket_closed", None)
            if remove is not None:
                remove(obj, key)
        owner_destroyed(system, obj)
        obj.closed = True
    elif isinstance(obj, XdpSocket) and not obj.closed:
        for m, _idx, _node in list(obj.map_nodes):
            m.socket_closed(obj)
        obj.closed = True
