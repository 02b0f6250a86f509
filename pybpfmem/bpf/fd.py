"""File descriptors, reference counts, deferred free, bpffs pins and object ids.

Mirrors the object lifetime rules of kernel/bpf/syscall.c and
kernel/bpf/inode.c: an fd or a pin holds a map's refcnt *and* usercnt
(bpf_map_inc_with_uref), a program using a map holds refcnt only; the last
usercnt put calls ops->map_release_uref; the last refcnt put frees the id and
queues bpf_map_free_deferred() (run by System.run_deferred()).  Other objects an
fd can refer to (sockets, cgroup directories, ...) are ``KernelObject``s: they
count their open files and are released when the last one closes.
"""

from __future__ import annotations

import bisect
import errno
from dataclasses import dataclass, field
from typing import Any

from .._ffi import NoCopy
from .errors import BpfError
from .uapi import INT_MAX

STDIO_FDS = (0, 1, 2)


@dataclass(eq=False)
class KernelObject(NoCopy):
    """A non-BPF object an fd can refer to.  ``files`` counts the open files (fds of
    every task) referring to it; when the last one is closed (fput() -> the object's
    release) ``last_close`` runs.  No BPF refcount: maps hold such objects through
    their own links (sockmap, xskmap, local storage)."""

    files: int = field(default=0, kw_only=True)

    def last_close(self, state: Any) -> None:
        """What the kernel does when the object's last file is released (default: nothing)."""


@dataclass(eq=False)
class StdioFile(KernelObject):
    """What a process's fds 0, 1 and 2 refer to (a terminal, a pipe, /dev/null): open
    files that are no BPF object, so bpf() given one of them finds no map or program
    (__bpf_map_get(): -EINVAL for a file that is not a map), where a closed fd would
    be -EBADF."""

    fd: int = 0


@dataclass
class BpfFile:
    """An open file of an anon inode ("bpf-map" / "bpf-prog") or a bpffs object."""

    obj: Any
    readable: bool = True
    writable: bool = True


def _stdio() -> dict[int, BpfFile]:
    return {fd: BpfFile(StdioFile(fd=fd, files=1)) for fd in STDIO_FDS}


@dataclass
class FdTable:
    """A task's files_struct: the standard fds 0-2 every process starts with (no
    BPF objects) and the files the task opened since."""

    files: dict[int, BpfFile] = field(default_factory=_stdio)

    def install(self, f: BpfFile) -> int:
        """get_unused_fd_flags() + fd_install(): the lowest free fd (3 while 0-2
        stay open)."""
        fd = 0
        while fd in self.files:
            fd += 1
        self.files[fd] = f
        return fd

    def get(self, fd: int) -> BpfFile:
        f = self.files.get(fd) if type(fd) is int else None    # (a bool is no fd)
        if f is None:
            raise BpfError(errno.EBADF, f"fd {fd} is not open")
        return f

    def remove(self, fd: int) -> BpfFile:
        f = self.get(fd)
        del self.files[fd]
        return f


class IdAllocator:
    """idr_alloc_cyclic(&map_idr, map, 1, INT_MAX): ids 1..INT_MAX, cyclic."""

    def __init__(self) -> None:
        self.objs: dict[int, Any] = {}
        self.next = 1

    def alloc(self, obj: Any) -> int:
        nid = self.next
        for _ in range(len(self.objs) + 1):
            if nid not in self.objs:
                break
            nid = nid + 1 if nid < INT_MAX else 1
        else:  # pragma: no cover - 2^31 live objects
            raise BpfError(errno.ENOSPC, "idr full")
        self.objs[nid] = obj
        self.next = nid + 1 if nid < INT_MAX else 1
        return nid

    def free(self, nid: int) -> None:
        self.objs.pop(nid, None)

    def next_id(self, start: int) -> int | None:
        """The smallest live id > start (bpf_obj_get_next_id)."""
        ids = sorted(self.objs)
        i = bisect.bisect_right(ids, start)
        return ids[i] if i < len(ids) else None


@dataclass
class Bpffs:
    """A simulated bpffs: path -> pinned object (holds a reference with uref)."""

    entries: dict[str, Any] = field(default_factory=dict)


class UserMemory:
    """A task's user address space for the pointers inside `union bpf_attr`.

    Regions are allocated at increasing addresses; reads or writes outside a
    region fail with EFAULT as copy_{from,to}_user would.
    """

    BASE = 0x10000

    def __init__(self) -> None:
        self._bases: list[int] = []
        self._regions: dict[int, bytearray] = {}
        self._next = self.BASE

    def alloc(self, data: bytes | int) -> int:
        buf = bytearray(data) if not isinstance(data, int) else bytearray(data)
        addr = self._next
        self._next += (len(buf) + 0xFFF) // 0x1000 * 0x1000 + 0x1000
        self._regions[addr] = buf
        self._bases.append(addr)
        return addr

    def free(self, addr: int) -> None:
        if self._regions.pop(addr, None) is not None:
            self._bases.remove(addr)

    def _find(self, addr: int, n: int) -> tuple[bytearray, int]:
        i = bisect.bisect_right(self._bases, addr) - 1
        if i >= 0:
            base = self._bases[i]
            buf = self._regions[base]
            off = addr - base
            if off + n <= len(buf):
                return buf, off
        raise BpfError(errno.EFAULT, f"bad user address {addr:#x} (+{n})")

    def read(self, addr: int, n: int) -> bytes:
        if n == 0:
            return b""
        buf, off = self._find(addr, n)
        return bytes(buf[off:off + n])

    def write(self, addr: int, data: bytes) -> None:
        if not data:
            return
        buf, off = self._find(addr, len(data))
        buf[off:off + len(data)] = data

    def read_str(self, addr: int, maxlen: int = 4096) -> str:
        i = bisect.bisect_right(self._bases, addr) - 1
        if addr == 0 or i < 0:
            raise BpfError(errno.EFAULT, f"bad user string address {addr:#x}")
        base = self._bases[i]
        buf = self._regions[base]
        off = addr - base
        end = buf.find(b"\0", off, off + maxlen)
        if end < 0:
            raise BpfError(errno.EFAULT if off >= len(buf) else errno.ENAMETOOLONG,
                           f"unterminated user string at {addr:#x}")
        return buf[off:end].decode("utf-8", "replace")


# ------------------------------------------------------------- map refcounts

def map_inc(m: Any, uref: bool) -> None:
    """bpf_map_inc() / bpf_map_inc_with_uref()."""
    m.refcnt += 1
    if uref:
        m.usercnt += 1


def map_put_uref(m: Any) -> None:
    """bpf_map_put_uref(): usercnt -> 0 calls ops->map_release_uref."""
    m.usercnt -= 1
    if m.usercnt == 0:
        m.release_uref()


def map_put(state: Any, m: Any) -> None:
    """Mirrors __bpf_map_put(), kernel/bpf/syscall.c: the last reference frees the
    id and queues bpf_map_free_deferred() on the system workqueue."""
    m.refcnt -= 1
    if m.refcnt == 0:
        state.map_ids.free(m.id)
        state.queue_work(lambda: state.map_free_deferred(m))


def map_put_with_uref(state: Any, m: Any) -> None:
    """bpf_map_put_with_uref()."""
    map_put_uref(m)
    map_put(state, m)


def prog_put(state: Any, p: Any) -> None:
    """Mirrors __bpf_prog_put(), kernel/bpf/syscall.c: the last reference frees the id
    and frees the program after an RCU grace period (queued work here)."""
    p.refcnt -= 1
    if p.refcnt == 0:
        state.prog_ids.free(p.id)
        state.queue_work(lambda: state.prog_free_deferred(p))


def obj_get(obj: Any) -> None:
    """bpf_any_get(): a pin or a new fd takes a (uref) reference; a new fd of another
    kernel object takes a file reference (get_file())."""
    if isinstance(obj, KernelObject):
        obj.files += 1
    elif getattr(obj, "is_prog", False):
        obj.refcnt += 1
    else:
        map_inc(obj, True)


def obj_put(state: Any, obj: Any) -> None:
    """bpf_any_put(); for another kernel object fput(): its last file releases it."""
    if isinstance(obj, KernelObject):
        obj.files -= 1
        if obj.files == 0:
            obj.last_close(state)
    elif getattr(obj, "is_prog", False):
        prog_put(state, obj)
    else:
        map_put_with_uref(state, obj)
