"""MemCgroup: one memory cgroup of a System, with cgroupfs-style files.

``read(name)`` returns exactly what the kernel's file prints (trailing
newline included); ``write(name, text)`` parses as the kernel does and
returns the kernel's errno as ``OSError``.

Mirrors (mm/memcontrol.c, mm/memcontrol-v1.c, kernel/cgroup/cgroup.c):
 - v2 files: memory_current_read, memory_min/low/high/max_show|write,
   memory_peak_show|write, memory_events_show, memory_events_local_show,
   memory_stat_show (memcg_stat_format), cgroup_procs_show.
 - v1 files: mem_cgroup_read_u64 / mem_cgroup_write / mem_cgroup_reset,
   memcg1_stat_format, mem_cgroup_force_empty_write,
   mem_cgroup_hierarchy_read|write.
 - kernfs_fop_open: a file without a read (write) handler cannot be opened
   for reading (writing): EACCES, for root too; we return that on read/write.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from .._ffi import NoCopy, as_int, cdata_to_py, ffi, lib
from ..constants import GFP_KERNEL, U32_MAX, U64_MAX, page_counter_max

if TYPE_CHECKING:  # pragma: no cover
    from .system import System
    from .task import Task

_WS = " \t\n\v\f\r"  # isspace() of the kernel's strstrip()
_U64_MASK = U64_MAX

# memory.events keys -> BM_MEMCG_* event index
_EVENT_INDEX = {"low": lib.BM_MEMCG_LOW, "high": lib.BM_MEMCG_HIGH, "max": lib.BM_MEMCG_MAX,
                "oom": lib.BM_MEMCG_OOM, "oom_kill": lib.BM_MEMCG_OOM_KILL}
# memory.stat keys -> BM_STAT_* index
_STAT = {
    "anon": lib.BM_STAT_ANON, "file": lib.BM_STAT_FILE, "kernel": lib.BM_STAT_KERNEL,
    "slab_reclaimable": lib.BM_STAT_SLAB_RECLAIMABLE_B,
    "slab_unreclaimable": lib.BM_STAT_SLAB_UNRECLAIMABLE_B, "percpu": lib.BM_STAT_PERCPU_B,
    "vmalloc": lib.BM_STAT_VMALLOC, "sock": lib.BM_STAT_SOCK,
    "kernel_stack": lib.BM_STAT_KERNEL_STACK_B,
}
_BYTE_STATS = frozenset({"slab_reclaimable", "slab_unreclaimable", "percpu", "kernel_stack"})
# event counters memory.stat prints as counts: reclaim is direct in the model (no kswapd,
# no proactive memory.reclaim), so pgscan (the sum of pgscan_*) equals pgscan_direct
_EVENT_STATS = {"pgscan": lib.BM_STAT_PGSCAN, "pgsteal": lib.BM_STAT_PGSTEAL,
                "pgscan_direct": lib.BM_STAT_PGSCAN, "pgsteal_direct": lib.BM_STAT_PGSTEAL}

# v2 files of a non-root memcg that hold a page_counter limit, and their BM_WRITE_*
_V2_LIMITS = {"memory.max": lib.BM_WRITE_MAX, "memory.high": lib.BM_WRITE_HIGH,
              "memory.low": lib.BM_WRITE_LOW, "memory.min": lib.BM_WRITE_MIN}


def _memparse(buf: str) -> tuple[int, str]:
    """memparse() (lib/cmdline.c): simple_strtoull base 0 + one K/M/G/T/P/E suffix.

    Returns (value mod 2**64, rest-of-string).  Like simple_strtoull, overflow
    is not detected (the value wraps) and no sign is accepted.
    """
    s = buf
    base = 10
    i = 0
    # _parse_integer_fixup_radix(): "0x" + hex digit -> 16, leading "0" -> 8
    if s.startswith("0"):
        if len(s) >= 3 and s[1] in "xX" and s[2] in "0123456789abcdefABCDEF":
            base, i = 16, 2
        else:
            base = 8
    digits = "0123456789abcdef"[:base]
    val = 0
    while i < len(s):
        c = s[i].lower()
        d = digits.find(c) if c.isascii() else -1
        if d < 0:
            break
        val = (val * base + d) & _U64_MASK
        i += 1
    shift = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}.get(s[i:i + 1].lower())
    if shift is not None:
        val = (val << shift) & _U64_MASK
        i += 1
    return val, s[i:]


def page_counter_memparse(text: str, max_keyword: str, page_size: int) -> int:
    """Parse a limit like page_counter_memparse() (mm/page_counter.c); pages.

    Whitespace is stripped first (the callers' strstrip()).  The keyword
    ("max" on v2, "-1" on v1) gives PAGE_COUNTER_MAX; anything left after
    the number and its suffix, including a leading '-', is EINVAL.  Bytes
    are rounded down to pages and capped at PAGE_COUNTER_MAX.
    """
    buf = text.strip(_WS)
    pcmax = page_counter_max(page_size)
    if buf == max_keyword:
        return pcmax
    val, rest = _memparse(buf)
    if rest:
        raise OSError(errno.EINVAL,
                      f"page_counter_memparse: invalid value {text!r} (trailing {rest!r})")
    return min(val // page_size, pcmax)


def _kstrtoull(text: str) -> int:
    """kstrtoull(buf, 0) as used by cftype write_u64 handlers (one trailing newline ok)."""
    buf = text[:-1] if text.endswith("\n") else text
    val, rest = _memparse(buf) if buf and buf[0] in "0123456789" else (0, buf or "x")
    if rest and rest[0].lower() in "kmgtpe" and rest == rest[:1]:
        rest = "suffix"  # kstrtoull takes no suffix
    if rest or val >> 64:
        raise OSError(errno.EINVAL, f"kstrtoull: invalid number {text!r}")
    return val


_try_charge = lib.bm_try_charge
_uncharge = lib.bm_uncharge


class MemCgroup(NoCopy):
    """A memory cgroup.  ``id`` is the C core's memcg handle (root is 0)."""

    __slots__ = ("system", "id", "name", "parent", "_children", "_removed", "_freed",
                 "_peak_written", "__weakref__")

    def __init__(self, system: System, memcg_id: int, parent: MemCgroup | None, name: str) -> None:
        self.system = system
        self.id = memcg_id
        self.name = name
        self.parent = parent
        self._children: dict[str, MemCgroup] = {}
        self._removed = False
        self._freed = False
        self._peak_written = False

    # ------------------------------------------------------------ tree
    def __repr__(self) -> str:
        state = "online" if self.online else ("dying" if self.dying else "freed")
        return f"<MemCgroup {self.path} id={self.id} {state}>"

    @property
    def path(self) -> str:
        if self.parent is None:
            return "/"
        parts = []
        cg: MemCgroup | None = self
        while cg is not None and cg.parent is not None:
            parts.append(cg.name)
            cg = cg.parent
        return "/" + "/".join(reversed(parts))

    @property
    def children(self) -> list[MemCgroup]:
        return list(self._children.values())

    @property
    def is_root(self) -> bool:
        return self.parent is None

    @property
    def online(self) -> bool:
        return not self._removed

    @property
    def dying(self) -> bool:
        """Removed (offline) but still held by charges or references in the core."""
        if not self._removed or self._freed:
            return False
        self.system._require_open()
        rc = lib.bm_memcg_state(self.system._sys, self.id)
        if rc == -errno.EINVAL:
            self.system._failed(rc, f"bm_memcg_state({self.id})")   # closed meanwhile
        if rc != lib.BM_MEMCG_DYING:
            self._freed = True
            return False
        return True

    def _require_online(self, what: str) -> None:
        if self._removed:
            raise OSError(errno.ENOENT, f"{what}: cgroup {self.path!r} (id {self.id}) was removed")

    def mkdir(self, name: str) -> MemCgroup:
        """cgroup_mkdir (kernel/cgroup/cgroup.c) + mem_cgroup_css_alloc/online."""
        if not isinstance(name, str):
            raise TypeError(f"cgroup name must be a str, not {type(name).__name__}")
        if name == "" or "/" in name or "\0" in name:
            raise ValueError(f"invalid cgroup name {name!r} (empty, '/' or NUL)")
        if name in (".", ".."):
            raise OSError(errno.EEXIST, f"mkdir {name!r}: File exists")
        if "\n" in name:  # cgroup_mkdir refuses names with a newline
            raise OSError(errno.EINVAL, f"cgroup_mkdir: name {name!r} contains a newline")
        if len(name.encode()) > 255:
            raise OSError(errno.ENAMETOOLONG, f"mkdir: name longer than NAME_MAX (255): {len(name.encode())} bytes")
        sysobj = self.system
        with sysobj.lock:
            self._require_online("mkdir")
            if name in self._children:
                raise OSError(errno.EEXIST, f"mkdir {self._join(name)!r}: File exists")
            sysobj._require_open()
            # the mkdir runs in this thread's current context (cpu 0 without one):
            # mem_cgroup_alloc()'s accounted structures are charged to this cgroup
            # through that cpu's stocks
            cpu = sysobj.current_cpu or 0
            rc = lib.bm_memcg_create(sysobj._sys, self.id, cpu)
            if rc < 0:
                sysobj._charge_failed(rc, cpu, f"bm_memcg_create(parent={self.id}, cpu={cpu})")
            child = MemCgroup(sysobj, rc, self, name)
            self._children[name] = child
            sysobj._register(child)
        return child

    def _join(self, name: str) -> str:
        return ("" if self.parent is None else self.path) + "/" + name

    def rmdir(self) -> None:
        """cgroup_rmdir -> cgroup_destroy_locked: EBUSY if populated or with live children."""
        if self.parent is None:
            raise OSError(errno.EBUSY, "rmdir /: the root cgroup cannot be removed")
        sysobj = self.system
        with sysobj.lock:
            self._require_online("rmdir")
            if self.tasks():
                raise OSError(errno.EBUSY, f"cgroup_destroy_locked: {self.path!r} has tasks")
            if self._children:
                raise OSError(errno.EBUSY, f"cgroup_destroy_locked: {self.path!r} has live children")
            sysobj._require_open()
            sysobj._check(lib.bm_memcg_offline(sysobj._sys, self.id), f"bm_memcg_offline({self.id})")
            self._removed = True
            del self.parent._children[self.name]
            sysobj.hooks.run_cgroup_offline(self)
            sysobj._removed.append(self)
            sysobj._forget_freed()

    # ------------------------------------------------------------ tasks
    def tasks(self) -> list[Task]:
        with self.system.lock:
            return [t for t in self.system._tasks.values() if t.alive and t.cgroup is self]

    # ------------------------------------------------------------ counters
    def _fetch(self) -> Any:
        sysobj = self.system
        sysobj._require_open()
        if self._freed:
            raise OSError(errno.ENOENT, f"cgroup {self.path!r} (id {self.id}) was freed")
        info = ffi.new("struct bm_memcg_info *")
        rc = lib.bm_memcg_info(sysobj._sys, self.id, info)
        if rc < 0:
            if self._removed and rc == -errno.ENOENT:
                self._freed = True
            sysobj._failed(rc, f"bm_memcg_info({self.id})")
        return info

    @property
    def usage_pages(self) -> int:
        """page_counter_read(&memcg->memory)."""
        return int(self._fetch().memory.usage)

    def info(self) -> dict[str, Any]:
        """The raw counters of struct bm_memcg_info as plain data."""
        return cdata_to_py(self._fetch())

    def try_charge(self, nr_pages: int, gfp: int, cpu: int = 0) -> None:
        """try_charge_memcg() on ``cpu`` (uses that cpu's page stock)."""
        # Perf: plain ints go straight to C, which checks every argument before
        # touching anything; other types, overflow and -EINVAL take the slow
        # path, which raises TypeError/ValueError for bad Python input.
        # rc 1 (never returned by C) = not called yet.
        rc = 1
        if type(nr_pages) is int and type(gfp) is int and type(cpu) is int:
            try:
                rc = _try_charge(self.system._sys, self.id, nr_pages, gfp, cpu)
            except OverflowError:
                pass
        if rc:
            self._charge_slow(rc, nr_pages, gfp, cpu)

    def _charge_slow(self, rc: int, nr_pages: Any, gfp: Any, cpu: Any) -> None:
        if rc == 1 or rc == -errno.EINVAL:
            nr_pages, gfp, cpu = _slow_charge_args(nr_pages, gfp, cpu)
        if rc == 1:
            rc = _try_charge(self.system._sys, self.id, nr_pages, gfp, cpu)
        if rc < 0:
            self.system._charge_failed(rc, cpu, f"bm_try_charge(memcg={self.id}, nr_pages={nr_pages}, gfp={gfp:#x}, cpu={cpu})")

    def uncharge(self, nr_pages: int, cpu: int = 0) -> None:
        """Uncharge pages charged with try_charge (refill_stock / page_counter_uncharge)."""
        rc = 1
        if type(nr_pages) is int and type(cpu) is int:   # fast path as in try_charge
            try:
                rc = _uncharge(self.system._sys, self.id, nr_pages, cpu)
            except OverflowError:
                pass
        if rc:
            self._uncharge_slow(rc, nr_pages, cpu)

    def _uncharge_slow(self, rc: int, nr_pages: Any, cpu: Any) -> None:
        if rc == 1 or rc == -errno.EINVAL:
            nr_pages, _, cpu = _slow_charge_args(nr_pages, 0, cpu)
        if rc == 1:
            rc = _uncharge(self.system._sys, self.id, nr_pages, cpu)
        if rc < 0:
            self.system._failed(rc, f"bm_uncharge(memcg={self.id}, nr_pages={nr_pages}, cpu={cpu})")

    def charge_user(self, nr_pages: int, gfp: int | None = None, cpu: int = 0, file: bool = False) -> None:
        """Charge anon (or reclaimable file) pages: mem_cgroup_charge() of user folios."""
        if gfp is None:
            gfp = GFP_KERNEL
        nr_pages, gfp, cpu = _slow_charge_args(nr_pages, gfp, cpu)
        if not isinstance(file, bool):
            raise TypeError("file must be a bool")
        self.system._require_open()
        rc = lib.bm_charge_user(self.system._sys, self.id, nr_pages, gfp, cpu, int(file))
        if rc < 0:
            self.system._charge_failed(
                rc, cpu, f"bm_charge_user(memcg={self.id}, nr_pages={nr_pages}, gfp={gfp:#x}, cpu={cpu}, file={int(file)})")

    def uncharge_user(self, nr_pages: int, file: bool = False) -> None:
        """mem_cgroup_uncharge() of user pages."""
        nr_pages, _, _ = _slow_charge_args(nr_pages, 0, 0)
        if not isinstance(file, bool):
            raise TypeError("file must be a bool")
        self.system._require_open()
        self.system._check(lib.bm_uncharge_user(self.system._sys, self.id, nr_pages, int(file)),
              f"bm_uncharge_user(memcg={self.id}, nr_pages={nr_pages}, file={int(file)})")

    # ------------------------------------------------------------ files
    def files(self) -> list[str]:
        """The memory-controller files this cgroup has (root: fewer)."""
        names = self.system.profile.files(self.system.cgroup_version)
        if self.parent is None and self.system.cgroup_version == "v2":
            return [n for n in names if n in ("memory.stat", "cgroup.procs")]
        return list(names)

    def _check_file(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"file name must be a str, not {type(name).__name__}")
        self._require_online(f"open {name}")
        if name not in self.files():
            raise OSError(errno.ENOENT, f"{self._join(name) if self.parent else '/' + name}: no such file "
                                        f"(cgroup {self.system.cgroup_version}, profile {self.system.profile.name})")

    def read(self, name: str) -> str:
        """What `cat <cgroup>/<name>` prints."""
        self._check_file(name)
        if self.system.cgroup_version == "v2":
            return self._read_v2(name)
        return self._read_v1(name)

    def write(self, name: str, text: str | bytes) -> None:
        """`echo text > <cgroup>/<name>` (errors as OSError with the kernel's errno)."""
        if isinstance(text, bytes):
            text = text.decode("latin-1")
        if not isinstance(text, str):
            raise TypeError(f"written value must be str or bytes, not {type(text).__name__}")
        self._check_file(name)
        if self.system.cgroup_version == "v2":
            self._write_v2(name, text)
        else:
            self._write_v1(name, text)

    def _bytes(self, pages: int) -> int:
        return int(pages) * self.system.page_size

    def _limit(self, pages: int) -> str:
        if pages >= self.system._pcmax:
            return "max\n"
        return f"{self._bytes(pages)}\n"

    def _procs(self) -> str:
        """cgroup.procs lists thread-group leaders (tgids), not threads"""
        return "".join(f"{t.pid}\n" for t in sorted(self.tasks(), key=lambda t: t.pid) if t.leader is None)

    # v2 ------------------------------------------------------------
    def _read_v2(self, name: str) -> str:
        if name == "cgroup.procs":
            return self._procs()
        if name == "memory.stat":
            return "".join(f"{k} {v}\n" for k, v in self._stat_v2(printed=True).items())
        info = self._fetch()
        mem = info.memory
        if name == "memory.current":
            return f"{self._bytes(mem.usage)}\n"
        if name == "memory.max":
            return self._limit(mem.max)
        if name == "memory.high":
            return self._limit(mem.high)
        if name == "memory.low":
            return self._limit(mem.low)
        if name == "memory.min":
            return self._limit(mem.min)
        if name == "memory.peak":
            # memory_peak_show: the fd's peak after a write (local_watermark), else watermark.
            # The MemCgroup object stands for one open file.
            return f"{self._bytes(mem.local_watermark if self._peak_written else mem.watermark)}\n"
        if name == "memory.events":
            return "".join(f"{k} {v}\n" for k, v in self._events(info.events).items())
        if name == "memory.events.local":
            return "".join(f"{k} {v}\n" for k, v in self._events(info.events_local).items())
        raise OSError(errno.EACCES, f"{name}: no read handler")

    def _write_v2(self, name: str, text: str) -> None:
        sysobj = self.system
        if name in _V2_LIMITS:
            pages = page_counter_memparse(text, "max", sysobj.page_size)
            self.system._check(lib.bm_memcg_write(sysobj._sys, self.id, _V2_LIMITS[name], pages),
                  f"bm_memcg_write({name}, memcg={self.id}, pages={pages})")
            return
        if name == "memory.peak":
            # memory_peak_write (v6.12, switch memory_peak_write): any write resets this
            # fd's peak to the current usage; before it the file is read-only
            if not sysobj.profile.memory_peak_write:
                raise OSError(errno.EACCES, "kernfs_fop_open: memory.peak has no write "
                                            "handler before v6.12")
            self.system._check(lib.bm_memcg_write(sysobj._sys, self.id, lib.BM_WRITE_RESET_PEAK, 0),
                  f"bm_memcg_write(memory.peak, memcg={self.id})")
            self._peak_written = True
            return
        if name == "cgroup.procs":
            pid = _kstrtoull(text)
            task = sysobj._tasks.get(pid)
            if task is None or not task.alive:
                raise OSError(errno.ESRCH, f"cgroup_procs_write: no task with pid {pid}")
            task.migrate(self)
            return
        raise OSError(errno.EACCES, f"kernfs_fop_open: {name} has no write handler")

    def events(self) -> dict[str, int]:
        """memory.events as a dict (v2; on v1 the local counts)."""
        info = self._fetch()
        return self._events(info.events if self.system.cgroup_version == "v2" else info.events_local)

    def events_local(self) -> dict[str, int]:
        return self._events(self._fetch().events_local)

    def _events(self, arr: Any) -> dict[str, int]:
        return {k: int(arr[_EVENT_INDEX[k]]) if k in _EVENT_INDEX else 0
                for k in self.system.profile.event_keys}

    def stat(self) -> dict[str, int]:
        """memory.stat values (v2 keys on v2, v1 keys on v1), as counted: a statistic the
        per-cpu object stocks still cache a delta of (__account_obj_stock()) can read below
        zero here; the memory.stat file prints it as 0, as memcg_page_state() clamps."""
        if self.system.cgroup_version == "v2":
            return self._stat_v2()
        return self._stat_v1()

    def _stat_v2(self, printed: bool = False) -> dict[str, int]:
        st = self._fetch().stat
        vals = self._stat_values(st, printed)
        out: dict[str, int] = {}
        for k in self.system.profile.stat_keys_v2:
            if k == "slab":
                out[k] = vals["slab_reclaimable"] + vals["slab_unreclaimable"]
            elif k in ("inactive_anon",):
                out[k] = vals["anon"]  # simplification: every charged anon page is on the inactive list
            elif k in ("inactive_file",):
                out[k] = vals["file"]
            else:
                out[k] = vals.get(k, 0)
        return out

    def _stat_values(self, st: Any, printed: bool = False) -> dict[str, int]:
        """printed: as the file shows them, each counter at least 0 (memcg_page_state()
        clamps the per-cpu drift of an SMP kernel)"""
        ps = self.system.page_size
        out = {k: int(st[i]) if k in _BYTE_STATS else int(st[i]) * ps for k, i in _STAT.items()}
        if printed:
            out = {k: max(v, 0) for k, v in out.items()}
        out.update((k, int(st[i])) for k, i in _EVENT_STATS.items())
        return out

    # v1 ------------------------------------------------------------
    def _read_v1(self, name: str) -> str:
        if name == "cgroup.procs":
            return self._procs()
        if name == "memory.stat":
            return "".join(f"{k} {v}\n" for k, v in self._stat_v1(printed=True).items())
        if name == "memory.use_hierarchy":
            return "1\n"
        if name == "memory.force_empty":
            raise OSError(errno.EACCES, "kernfs_fop_open: memory.force_empty has no read handler")
        info = self._fetch()
        if name == "memory.usage_in_bytes":
            if self.parent is None:
                # mem_cgroup_usage(root): recursive NR_FILE_PAGES + NR_ANON_MAPPED (no kmem)
                return f"{self._bytes(info.stat[0] + info.stat[1])}\n"
            return f"{self._bytes(info.memory.usage)}\n"
        pc = info.kmem if ".kmem." in name else info.memory
        field = name
        if field.endswith("limit_in_bytes"):
            return f"{self._bytes(pc.max)}\n"
        if field.endswith("max_usage_in_bytes"):
            return f"{self._bytes(pc.watermark)}\n"
        if field.endswith("usage_in_bytes"):
            return f"{self._bytes(pc.usage)}\n"
        if field.endswith("failcnt"):
            return f"{int(pc.failcnt)}\n"
        raise OSError(errno.EACCES, f"{name}: no read handler")  # pragma: no cover

    def _write_v1(self, name: str, text: str) -> None:
        sysobj = self.system
        sp = sysobj._sys
        root = self.parent is None
        if name in ("memory.limit_in_bytes", "memory.kmem.limit_in_bytes"):
            pages = page_counter_memparse(text, "-1", sysobj.page_size)
            if root:  # mem_cgroup_write: RES_LIMIT on root is -EINVAL
                raise OSError(errno.EINVAL, f"mem_cgroup_write: {name} of the root cgroup cannot be set")
            if name == "memory.limit_in_bytes":
                self.system._check(lib.bm_memcg_write(sp, self.id, lib.BM_WRITE_MAX, pages),
                      f"mem_cgroup_resize_max: bm_memcg_write(memcg={self.id}, pages={pages})")
            elif sysobj.profile.kmem_limit_enforced:
                self.system._check(lib.bm_memcg_write(sp, self.id, lib.BM_WRITE_KMEM_MAX, pages),
                      f"memcg_update_kmem_max: bm_memcg_write(memcg={self.id}, pages={pages})")
            # else: v5.16+ kmem.limit_in_bytes writes are accepted and ignored
            return
        resets = {
            "memory.max_usage_in_bytes": lib.BM_WRITE_RESET_PEAK,
            "memory.failcnt": lib.BM_WRITE_RESET_FAILCNT,
            "memory.kmem.max_usage_in_bytes": lib.BM_WRITE_KMEM_RESET_PEAK,
            "memory.kmem.failcnt": lib.BM_WRITE_KMEM_RESET_FAILCNT,
        }
        if name in resets:  # mem_cgroup_reset: any write
            self.system._check(lib.bm_memcg_write(sp, self.id, resets[name], 0), f"mem_cgroup_reset({name}, memcg={self.id})")
            return
        if name == "memory.force_empty":
            if root:  # mem_cgroup_force_empty_write
                raise OSError(errno.EINVAL, "mem_cgroup_force_empty_write: not allowed on the root cgroup")
            self.system._check(lib.bm_memcg_write(sp, self.id, lib.BM_WRITE_FORCE_EMPTY, 0),
                  f"mem_cgroup_force_empty(memcg={self.id})")
            return
        if name == "memory.use_hierarchy":
            # mem_cgroup_hierarchy_write (v5.11+): 1 accepted, anything else -EINVAL
            if _kstrtoull(text) != 1:
                raise OSError(errno.EINVAL, "mem_cgroup_hierarchy_write: use_hierarchy=0 is no longer supported")
            return
        if name == "cgroup.procs":
            self._write_v2(name, text)
            return
        raise OSError(errno.EACCES, f"kernfs_fop_open: {name} has no write handler")

    def _stat_v1(self, printed: bool = False) -> dict[str, int]:
        info = self._fetch()
        local = self._stat_values(info.stat_local, printed)
        total = self._stat_values(info.stat, printed)
        keys = self.system.profile.stat_keys_v1

        def v1vals(vals: dict[str, int]) -> dict[str, int]:
            # memcg1_stat_format: cache = NR_FILE_PAGES, rss = NR_ANON_MAPPED; LRU
            # simplification: anon on inactive_anon, file on inactive_file.
            m = {"cache": vals["file"], "rss": vals["anon"], "inactive_anon": vals["anon"],
                 "inactive_file": vals["file"]}
            return {k: m.get(k, 0) for k in keys}

        out = v1vals(local)
        # hierarchical_memory_limit: the smallest memory.max on the path to root
        limit = self.system._pcmax
        cg: MemCgroup | None = self
        while cg is not None:
            if cg.parent is not None:
                limit = min(limit, int(cg._fetch().memory.max))
            cg = cg.parent
        ps = self.system.page_size
        out["hierarchical_memory_limit"] = limit * ps
        out["hierarchical_memsw_limit"] = self.system._pcmax * ps  # memsw is not modelled: unlimited
        for k, v in v1vals(total).items():
            out["total_" + k] = v
        return out


def _slow_charge_args(nr_pages: Any, gfp: Any, cpu: Any) -> tuple[int, int, int]:
    return (as_int(nr_pages, "nr_pages", 0, (1 << 63) - 1), as_int(gfp, "gfp", 0, U32_MAX),
            as_int(cpu, "cpu", 0, lib.BM_MAX_CPUS - 1))
