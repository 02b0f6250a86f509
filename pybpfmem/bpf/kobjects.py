"""Minimal kernel objects that BPF maps hold, and the fds that refer to them.

The kernel objects are deliberately tiny: just the state the map families read or
charge.  They live per System (``KObjectRegistry``, part of the System's BPF
state: no module-level state) and reach tasks as file descriptors.

- NetDevice: a net_device with an ifindex (devmap / devmap_hash values, xsk binding).
- Socket: a TCP/UDP socket with sk_omem_alloc, the option-memory counter that
  bpf_sk_storage_charge() checks against sysctl net.core.optmem_max
  (net/core/bpf_sk_storage.c), a psock slot (sockmap/sockhash, net/core/skmsg.c)
  and its list of sock_map links.
- XdpSocket: an AF_XDP socket (net/xdp/xsk.c) bound to a netdev queue.
- CgroupFile: an open cgroup directory (the fd CGRP_STORAGE and cgroup attach use),
  referring to a MemCgroup.
- InodeFile: an open file of an inode (INODE_STORAGE keys).
- PidFd: a pidfd referring to a Task (TASK_STORAGE keys).
- PerfEventFile: an open perf event (PERF_EVENT_ARRAY values).

Objects that can own BPF local storage (sockets, inodes, tasks, cgroups) get one
"owner storage" slot each, the model of sk->sk_bpf_storage, inode's i_bpf_storage,
task->bpf_storage and cgroup->bpf_cgrp_storage; it is kept in the registry keyed by
the owner, so Task and MemCgroup need no extra fields.

Every object here is a ``fd.KernelObject``: the last close of a socket removes it
from every sockmap/sockhash (sock_map_close() -> sock_map_remove_links()) and
frees its SK_STORAGE (bpf_sk_storage_free() from __sk_destruct()); that of an
AF_XDP socket removes it from every XSKMAP slot (xsk_release() ->
xsk_delete_from_maps()).
"""

from __future__ import annotations

import errno
import itertools
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from .._ffi import NoCopy
from .errors import BpfError
from .fd import BpfFile, KernelObject
from .locking import serialised


# ---------------------------------------------------------------------------
# the kernel objects
# ---------------------------------------------------------------------------

@dataclass(eq=False)
class NetDevice(NoCopy):
    """A net_device: name, ifindex, reference count (dev_hold/dev_put)."""
    name: str
    ifindex: int
    refcnt: int = 1
    registered: bool = True


@dataclass(eq=False)
class Socket(KernelObject):
    """A socket with the fields BPF maps touch.

    sk_omem_alloc: option memory charged by SK_STORAGE (bpf_sk_storage_charge());
    psock: the sk_psock created on first insertion into a sockmap/sockhash;
    links: (map, key, link addr) of the sock_map links (struct sk_psock_link).
    """
    kind: str                    # "tcp" or "udp"
    family: int
    ino: int
    sk_omem_alloc: int = 0
    psock: int | None = None     # address of the (unaccounted) psock allocation
    links: list[tuple[Any, Any, int]] = field(default_factory=list)
    reuseport: bool = False
    established: bool = False
    closed: bool = False

    def last_close(self, state: Any) -> None:
        """sock_close() of the last file: sock_map_close() unlinks the socket from every
        sockmap/sockhash (sock_map_remove_links()), which drops the psock and its
        reference; the sock is then destroyed and __sk_destruct() runs
        bpf_sk_storage_free()."""
        for m, key, _link in list(self.links):
            m.socket_closed(self, key)
        state.kobjects.free_owner_storage(self)
        state.kobjects.sockets.pop(id(self), None)
        self.closed = True


@dataclass(eq=False)
class XdpSocket(KernelObject):
    """An AF_XDP socket (struct xdp_sock), optionally bound to a netdev queue."""
    ino: int
    dev: NetDevice | None = None
    queue_id: int = 0
    map_nodes: list[tuple[Any, int, int]] = field(default_factory=list)  # (map, key, node addr)
    closed: bool = False

    def last_close(self, state: Any) -> None:
        """xsk_release(): xsk_delete_from_maps() empties every XSKMAP slot holding it."""
        for m, _idx, _node in list(self.map_nodes):
            m.socket_closed(self)
        self.closed = True


@dataclass(eq=False)
class CgroupFile(KernelObject):
    """An open cgroup directory (what a cgroup fd refers to)."""
    cgroup: Any                  # MemCgroup


@dataclass(eq=False)
class Inode:
    ino: int
    path: str


@dataclass(eq=False)
class InodeFile(KernelObject):
    inode: Inode


@dataclass(eq=False)
class PidFd(KernelObject):
    task: Any                    # Task


@dataclass(eq=False)
class PerfEventFile(KernelObject):
    """An open perf event (what perf_event_open() returns): the minimal object a
    PERF_EVENT_ARRAY slot refers to (simplified: no counters, any cpu)."""
    cpu: int = -1


class KObjectRegistry:
    """Per-System state of the kernel objects (part of the System's BPF state)."""

    def __init__(self) -> None:
        self.netdevs: dict[int, NetDevice] = {}
        self._ifindex = itertools.count(2)   # ifindex 1 is lo
        self._ino = itertools.count(10000)
        self.inodes: dict[str, Inode] = {}
        self.sockets: dict[int, Socket] = {}     # id(socket) -> open socket
        self.optmem_max = 20480              # sysctl net.core.optmem_max default (v5.10..6.x: 20480)
        # id(owner) -> the owner's bpf_local_storage (bpf_local_storage.LocalStorage)
        self.owner_storage: dict[int, Any] = {}

    def next_ino(self) -> int:
        return next(self._ino)

    def storage_of(self, owner: Any) -> Any:
        """The owner's bpf_local_storage, or None."""
        return self.owner_storage.get(id(owner))

    def free_owner_storage(self, owner: Any) -> None:
        """bpf_local_storage_destroy() when a socket, inode, task or cgroup goes away
        (bpf_sk_storage_free(), bpf_task_storage_free(), bpf_cgrp_storage_free()): every
        element and the storage itself are freed (and uncharged)."""
        st = self.owner_storage.get(id(owner))
        if st is None:
            return
        for m in list(st.elems):
            m.unlink_owner(owner, st)

    def netdev(self, ifindex: int) -> NetDevice | None:
        """dev_get_by_index() without taking the reference."""
        dev = self.netdevs.get(int(ifindex))
        return dev if dev is not None and dev.registered else None


def registry(system: Any) -> KObjectRegistry:
    """The System's kernel-object registry."""
    return system.bpf_state.kobjects


def install_fd(task: Any, obj: KernelObject) -> int:
    """A new file of a kernel object in the task's fd table (fd_install()), returning the fd."""
    obj.files += 1
    return int(task.bpf_task.fds.install(BpfFile(obj)))


def fd_object(task: Any, fd: int) -> Any:
    """The object behind a task's fd (fdget()); EBADF if the fd is not open."""
    return task.bpf_task.fds.get(fd).obj


def current_task(system: Any) -> Any:
    task = system.current_task
    if task is None:
        raise BpfError(errno.EINVAL, "no current task: an fd-keyed operation needs a task context")
    return task


# ---------------------------------------------------------------------------
# mixins (the BPF layer mixes these into BpfSystemMixin / BpfTaskMixin)
# ---------------------------------------------------------------------------

@serialised(attrgetter("lock"))
class KObjectSystemMixin:
    """System-side creation of kernel objects that are not per task."""

    def create_netdev(self, name: str, ifindex: int | None = None) -> NetDevice:
        """register_netdevice(): a net device with ``ifindex`` (a host's own numbering,
        e.g. lo = 1) or the next free one."""
        reg = registry(self)
        if any(d.name == name for d in reg.netdevs.values()):
            raise BpfError(errno.EEXIST, f"netdev {name!r} already exists")
        if ifindex is None:
            ifindex = next(reg._ifindex)
            while ifindex in reg.netdevs:
                ifindex = next(reg._ifindex)
        elif not isinstance(ifindex, int) or isinstance(ifindex, bool) or not 0 < ifindex <= 0x7FFFFFFF:
            raise ValueError(f"ifindex must be a positive int, got {ifindex!r}")
        elif ifindex in reg.netdevs:
            raise BpfError(errno.EEXIST, f"ifindex {ifindex} is taken")
        dev = NetDevice(name=name, ifindex=ifindex)
        reg.netdevs[dev.ifindex] = dev
        return dev

    def netdev_by_ifindex(self, ifindex: int) -> NetDevice | None:
        """dev_get_by_index() without taking the reference."""
        return registry(self).netdev(ifindex)

    def set_optmem_max(self, nbytes: int) -> None:
        """sysctl net.core.optmem_max (limit of sk_omem_alloc)."""
        if nbytes < 0:
            raise ValueError("optmem_max must be >= 0")
        registry(self).optmem_max = int(nbytes)

    @property
    def optmem_max(self) -> int:
        return registry(self).optmem_max


@serialised(attrgetter("system.lock"))
class KObjectTaskMixin:
    """Task-side creation of fds for kernel objects."""

    system: Any

    def create_socket(self, kind: str = "tcp", family: int = 2) -> int:
        """socket(): a TCP or UDP socket fd (family AF_INET=2 / AF_INET6=10)."""
        if kind not in ("tcp", "udp"):
            raise ValueError("kind must be 'tcp' or 'udp'")
        reg = registry(self.system)
        sk = Socket(kind=kind, family=int(family), ino=reg.next_ino(),
                    established=(kind == "tcp"))
        reg.sockets[id(sk)] = sk
        return install_fd(self, sk)

    def create_xsk(self, dev: NetDevice | None = None, queue_id: int = 0) -> int:
        """socket(AF_XDP) (+ bind to dev/queue if given): an AF_XDP socket fd."""
        reg = registry(self.system)
        if dev is not None:
            if not isinstance(dev, NetDevice):
                raise TypeError(f"create_xsk: dev must be a NetDevice, not {type(dev).__name__}")
            if reg.netdevs.get(dev.ifindex) is not dev:
                raise ValueError("create_xsk: the net device belongs to another System")
        return install_fd(self, XdpSocket(ino=reg.next_ino(), dev=dev, queue_id=int(queue_id)))

    def open_cgroup(self, cgroup: Any) -> int:
        """open() of a cgroup directory: the fd CGRP_STORAGE / cgroup attach take (a
        MemCgroup of this System)."""
        return install_fd(self, CgroupFile(cgroup=self.system.own_cgroup(cgroup, "open_cgroup")))

    def open_file(self, path: str) -> int:
        """open() of a regular file; one Inode per path."""
        reg = registry(self.system)
        inode = reg.inodes.get(path)
        if inode is None:
            inode = Inode(ino=reg.next_ino(), path=path)
            reg.inodes[path] = inode
        return install_fd(self, InodeFile(inode=inode))

    def pidfd_open(self, target: Any = None) -> int:
        """pidfd_open(): an fd for a task of this System (default: this task)."""
        task = self if target is None else self.system.own_task(target, "pidfd_open")
        return install_fd(self, PidFd(task=task))

    def perf_event_open(self, cpu: int = -1) -> int:
        """perf_event_open(): an fd for a (minimal) perf event, the object
        PERF_EVENT_ARRAY slots hold."""
        if not isinstance(cpu, int) or cpu < -1 or cpu >= self.system.nr_cpus:
            raise ValueError(f"cpu must be -1 or in 0..{self.system.nr_cpus - 1}")
        return install_fd(self, PerfEventFile(cpu))
