"""struct bpf_map: the base class every map family derives from, the type
registry, and the allocation services of kernel/bpf/syscall.c
(__bpf_map_area_alloc, bpf_map_kmalloc_node, bpf_map_alloc_percpu ...).

A family module subclasses BpfMap, sets ``map_types`` and decorates the class
with ``@register_map``.  map_create() (syscall.py) then runs
``cls.alloc_check(attr, ctx)`` -> ``cls(system, attr, ctx)`` ->
``legacy_cost()`` (5.10 rlimit charge) -> ``alloc()``.

A map books each allocation it makes (address, kind, requested size); what the
memcg was charged for it, and which memcg, is asked of the memory layer when a
report needs it (``charged_bytes()``): the core is the truth, nothing here
predicts it.  The kernel limits and arithmetic every family uses are here too.
"""

from __future__ import annotations

import errno
import importlib
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

import numpy as np

from .._ffi import NoCopy
from ..profiles import BpfSwitches, StructSizes
from . import uapi
from .errors import BpfError
from .regime import Gfp, MemlockCharge

if TYPE_CHECKING:  # pragma: no cover
    from .services import MemSystem, MemTask

# --- kernel limits the families check (x86_64) ---------------------------------
KMALLOC_MAX_SIZE = 1 << 22          # KMALLOC_MAX_SIZE of SLUB (include/linux/slab.h)
PCPU_MIN_UNIT_SIZE = 32 << 10       # include/linux/percpu.h
PAGE_ALLOC_COSTLY_ORDER = 3         # include/linux/mmzone.h
NR_CPUS = 8192                      # CONFIG_NR_CPUS of x86_64 distribution configs (cpumap limit)

# Map types whose values (per-cpu) are v8 per possible cpu in the syscall buffer
PERCPU_TYPES = frozenset({uapi.BPF_MAP_TYPE_PERCPU_HASH, uapi.BPF_MAP_TYPE_LRU_PERCPU_HASH,
                          uapi.BPF_MAP_TYPE_PERCPU_ARRAY,
                          uapi.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE})
# Maps holding kernel objects: the syscall value is a u32 fd / id
FD_TYPES = frozenset({uapi.BPF_MAP_TYPE_PROG_ARRAY, uapi.BPF_MAP_TYPE_PERF_EVENT_ARRAY,
                      uapi.BPF_MAP_TYPE_CGROUP_ARRAY, uapi.BPF_MAP_TYPE_ARRAY_OF_MAPS,
                      uapi.BPF_MAP_TYPE_HASH_OF_MAPS})
# bpftool's names for `type` in `map show -j`
BPFTOOL_TYPE_NAMES = {v: k.lower() for v, k in uapi.MAP_TYPE_NAMES.items()}
BPFTOOL_TYPE_NAMES[uapi.BPF_MAP_TYPE_CGRP_STORAGE] = "cgrp_storage"


def rup(x: int, a: int) -> int:
    """round_up(x, a)."""
    return (x + a - 1) // a * a


def pow2(x: int) -> int:
    """roundup_pow_of_two() (x >= 1)."""
    return 1 if x <= 1 else 1 << (x - 1).bit_length()


def flags_access_ok(flags: int) -> bool:
    """bpf_map_flags_access_ok(): not both BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG."""
    return not (flags & uapi.BPF_F_RDONLY_PROG and flags & uapi.BPF_F_WRONLY_PROG)


@dataclass
class MapAttr:
    """The MAP_CREATE fields of `union bpf_attr`."""

    map_type: int = 0
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0
    map_flags: int = 0
    inner_map_fd: int = 0
    numa_node: int = 0
    map_name: bytes = b""
    map_ifindex: int = 0
    btf_fd: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    btf_vmlinux_value_type_id: int = 0
    map_extra: int = 0
    value_type_btf_obj_fd: int = 0
    map_token_fd: int = 0

    @classmethod
    def from_fields(cls, d: dict[str, Any]) -> "MapAttr":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def name(self) -> str:
        return bytes(self.map_name).split(b"\0", 1)[0].decode("latin-1")


@dataclass
class CreateCtx:
    """Who creates the map (the calling task) and the profile facts map_create() uses."""

    system: Any
    task: Any
    bprof: BpfSwitches
    sizes: StructSizes
    gfp: Gfp

    def capable(self, cap: int) -> bool:
        return bool(self.task.capable(cap))

    def fd_object(self, fd: int) -> Any:
        """The object behind one of the creator's fds (EBADF if none)."""
        return self.task.fd_object(fd)


def register_map(cls: type["BpfMap"]) -> type["BpfMap"]:
    """Class decorator: record the map types a family implements.

    The registry is filled at import time only (like the kernel's static
    bpf_map_types[] table) and is read-only afterwards.
    """
    for t in cls.map_types:
        _REGISTRY[t] = cls
    return cls


_REGISTRY: dict[int, type["BpfMap"]] = {}

# modules that hold @register_map classes; missing ones are skipped
FAMILY_MODULES = ("arraymap", "hashtab", "lpm_trie", "queue_stack_maps", "ringbuf",
                  "stackmap", "devmap", "cpumap", "xskmap", "sock_map",
                  "reuseport_array", "local_storage", "bpf_local_storage",
                  "bpf_struct_ops", "bloom_filter", "arena")


def _load_families() -> None:
    for mod in FAMILY_MODULES:
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{mod}":
                raise


def map_class(map_type: int) -> type["BpfMap"] | None:
    """find_and_alloc_map()'s type lookup: the class implementing `map_type`."""
    if not _REGISTRY or map_type not in _REGISTRY:
        _load_families()
    return _REGISTRY.get(map_type)


_KINDS = {"k": "slab", "v": "vmalloc", "p": "percpu", "g": "pages"}
#: the kinds a BPF object's memory is attributed by, named for where memory.stat shows
#: them: slab (slab_unreclaimable), percpu, vmalloc (v5.14+) -- and pages (the page
#: allocator's: no entry of their own; "kernel" counts every kind of them from v5.18)
CHARGE_KINDS = ("slab", "vmalloc", "percpu", "pages")


def sum_over_memcgs(asked: dict[str, int], by_memcg: dict[int, dict[str, int]]
                    ) -> tuple[dict[str, int], dict[str, int]]:
    """charges() of a map or program summed over the memcgs: (requested, seen) by kind."""
    seen = dict.fromkeys(CHARGE_KINDS, 0)
    for kinds in by_memcg.values():
        for kind, n in kinds.items():
            seen[kind] += n
    return asked, seen


def kmalloc_stat_kind(sysm: Any, full: int) -> str:
    """Where memory.stat counts an accounted kmalloc that charged `full` bytes
    (kmalloc_charged_size()).  A slab object's obj_full_size() -- its bucket plus the
    8-byte objcg slot, never a whole number of pages -- is in slab_unreclaimable; a
    kmalloc_large() block (whole pages) is there too where the kernel counts it
    (mod_lruvec_page_state() in kmalloc_large(): switch large_kmalloc_memcg_stat, v5.12+),
    and in no entry before ("pages")."""
    if full % sysm.page_size or sysm.profile.large_kmalloc_memcg_stat:
        return "slab"
    return "pages"


@dataclass
class _Alloc:
    """One allocation on a map's books, keyed by (kind letter, address or pfn)."""

    kind: str          # "slab", "vmalloc", "percpu", "pages"
    size: int          # requested bytes (per cpu for percpu; whole pages for vmalloc/pages)
    order: int = 0     # alloc_pages() order
    count: int = 1     # equal objects in the allocation (alloc_percpu_array())


class _BulkBooks:
    """Allocations of one kind and requested size booked at once by a bulk path (a map
    filled with a million elements): their sorted addresses and which are still held."""

    def __init__(self, kind: str, size: int, addrs: np.ndarray) -> None:
        self.kind, self.size = kind, size
        self.addrs = np.sort(np.asarray(addrs, dtype=np.uint64))
        self.held = np.ones(len(self.addrs), dtype=bool)
        self.n_held = len(self.addrs)

    def take(self, addr: int) -> bool:
        """Drop ``addr`` from the books (False if it is not held here)."""
        i = int(np.searchsorted(self.addrs, np.uint64(addr)))
        if i < len(self.addrs) and int(self.addrs[i]) == addr and self.held[i]:
            self.held[i] = False
            self.n_held -= 1
            return True
        return False

    def held_addrs(self) -> np.ndarray:
        return self.addrs[self.held]


class BpfMap(NoCopy):
    """struct bpf_map and its ops.  Subclasses override the hooks below."""

    map_types: ClassVar[tuple[int, ...]] = ()
    # batch ops the type supports: subset of {"lookup", "lookup_and_delete", "update", "delete"}
    batch_ops: ClassVar[frozenset[str]] = frozenset()
    # key_size 0 types (queue/stack, ringbuf, bloom) take a NULL key
    null_key: ClassVar[bool] = False

    def __init__(self, system: Any, attr: MapAttr, ctx: CreateCtx) -> None:
        self.system: MemSystem = system
        self.attr = attr
        self.ctx = ctx
        self.bprof: BpfSwitches = ctx.bprof
        self.sizes: StructSizes = ctx.sizes
        self.gfp: Gfp = ctx.gfp
        self.creator: MemTask = ctx.task
        self.map_type = attr.map_type
        self.key_size = attr.key_size
        self.value_size = attr.value_size
        self.max_entries = attr.max_entries
        # bpf_map_flags_retain_permanent(): BPF_F_RDONLY/WRONLY belong to the fd, not
        # the map (bpf_map_init_from_attr())
        self.map_flags = attr.map_flags & ~(uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY)
        self.name = attr.name
        self.id = 0
        self.memcg: Any = None          # v5.11 map->memcg (MemCgroup, css ref held)
        self.objcg: int | None = None   # v6.0+ map->objcg (objcg id, ref held)
        self.memcg_saved = False
        self.memory = MemlockCharge()   # v5.10 map->memory
        self.frozen = False
        self.refcnt = 0
        self.usercnt = 0
        self.writecnt = 0
        self.pinned: list[str] = []
        self.freed = False
        self._allocs: dict[tuple[str, int], _Alloc] = {}
        self._bulk_books: list[_BulkBooks] = []     # record_many()
        self.pools: list[Any] = []      # bpf_mem_alloc caches booked in aggregate

    # ----------------------------------------------------------- ops hooks
    @classmethod
    def alloc_check(cls, attr: MapAttr, ctx: CreateCtx) -> None:
        """ops->map_alloc_check plus the type's checks in map_alloc."""

    def legacy_cost(self) -> int:
        """v5.10: bytes passed to bpf_map_charge_init (0 = none)."""
        return 0

    def alloc(self) -> None:
        """ops->map_alloc: creation-time allocations in the creator's context."""

    def free(self) -> None:
        """ops->map_free: default frees every allocation still recorded."""
        self.free_all()

    def release_uref(self) -> None:
        """ops->map_release_uref: usercnt dropped to 0."""

    def mem_usage(self) -> int:
        """ops->map_mem_usage (6.4+ fdinfo memlock)."""
        return 0

    def syscall_value_size(self) -> int:
        """bpf_map_value_size(): per-cpu v8 x possible cpus, fd maps 4."""
        if self.map_type in PERCPU_TYPES:
            return rup(self.value_size, 8) * self.system.nr_cpus
        if self.map_type in FD_TYPES:
            return 4
        return self.value_size

    def memory_footprint(self) -> int:
        """bpf_map_memory_footprint() (v5.11-v6.3 fdinfo memlock)."""
        page = self.system.page_size
        valsize = rup(self.syscall_value_size(), 1)
        return rup(self.max_entries * rup(self.key_size + valsize, 8), page)

    def update_allocates(self) -> bool:
        """Whether a syscall update may allocate (so needs the caller's cpu context);
        families that never allocate on update say False to skip the context switch."""
        return True

    def fdinfo_extra(self) -> dict[str, str]:
        """Type-specific fdinfo lines (prog array owner ...)."""
        return {}

    # ------------------------------------------------- element ops (syscall)
    def _nosup(self, op: str) -> BpfError:
        return BpfError(uapi.ENOTSUPP, f"{op}: map type {uapi.MAP_TYPE_NAMES.get(self.map_type)} "
                                       f"has no such operation (-ENOTSUPP)")

    def lookup_elem(self, key: bytes | None) -> bytes:
        raise self._nosup("map_lookup_elem")

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        raise self._nosup("map_update_elem")

    def delete_elem(self, key: bytes | None) -> None:
        raise self._nosup("map_delete_elem")

    def get_next_key(self, key: bytes | None) -> bytes:
        raise self._nosup("map_get_next_key")

    def lookup_and_delete_elem(self, key: bytes | None) -> bytes:
        raise self._nosup("map_lookup_and_delete_elem")

    # program side defaults: same as the syscall side
    def helper_lookup_elem(self, key: bytes | None) -> bytes | None:
        try:
            return self.lookup_elem(key)
        except BpfError as e:
            if e.errno == errno.ENOENT:
                return None
            raise

    def helper_update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        self.update_elem(key, value, flags)

    def helper_delete_elem(self, key: bytes | None) -> None:
        self.delete_elem(key)

    # ------------------------------------------------- memcg of the map
    def map_memcg(self) -> Any:
        """bpf_map_get_memcg(): map->memcg (switch map_memcg); with map_objcg the
        objcg's current memcg, or root when no objcg.  None before it is saved
        (current's memcg is then in use)."""
        if not self.bprof.map_memcg:
            return None
        if not self.bprof.map_objcg:
            return self.memcg
        if self.objcg is None:
            return self.system.root
        return self.system.objcg_memcg(self.objcg)

    def memcg_path(self) -> str | None:
        """Path of the cgroup the map's runtime charges go to (None: not accounted)."""
        cg = self.map_memcg()
        return None if cg is None else cg.path

    @contextmanager
    def _map_memcg_active(self) -> Iterator[None]:
        """set_active_memcg(bpf_map_get_memcg(map)) around a helper allocation
        (bpf_map_kmalloc_node() etc., kernel/bpf/syscall.c).  With map->memcg still
        NULL (inside map_alloc) current's memcg stays in use (simplified: an outer
        active memcg is not cleared)."""
        cg = self.map_memcg()
        with self.system.active_memcg(cg) if cg is not None else nullcontext():
            yield

    # ------------------------------------------------- gfp and struct helpers
    def acct(self, flags: int) -> int:
        """flags | __GFP_ACCOUNT where BPF memory is accounted (switch account)."""
        return flags | self.gfp.ACCOUNT if self.bprof.account else flags

    def atomic_gfp(self) -> int:
        """GFP_ATOMIC | __GFP_NOWARN: sockhash elements, xsk nodes, sock_map links,
        local storage."""
        return self.gfp.ATOMIC | self.gfp.NOWARN

    def runtime_gfp(self) -> int:
        """gfp of non-preallocated runtime elements (LPM, devmap, cgroup storage
        buffers, no-prealloc hash): GFP_ATOMIC | __GFP_NOWARN, forced over memory.max;
        GFP_NOWAIT | __GFP_NOWARN with switch runtime_gfp_nowait."""
        g = self.gfp
        return (g.NOWAIT if self.bprof.runtime_gfp_nowait else g.ATOMIC) | g.NOWARN

    def struct_alloc(self, size: int) -> int:
        """The map struct of the families that kzalloc'ed it (GFP_USER | __GFP_ZERO
        [| __GFP_ACCOUNT]) in the creator's context; bpf_map_area_alloc() with switch
        struct_area_alloc."""
        if self.bprof.struct_area_alloc:
            return int(self.area_alloc(size))
        return int(self.kzalloc_account(size, self.acct(self.gfp.USER | self.gfp.ZERO)))

    def struct_free(self, addr: int | None) -> None:
        if addr is None:
            return
        if self.bprof.struct_area_alloc:
            self.area_free(addr)
        else:
            self.kfree(addr)

    def _record(self, key: tuple[str, int], size: int, order: int = 0, count: int = 1) -> None:
        """Book an allocation: `size` is the requested size for slab and per-cpu
        objects (per cpu; `count` of them), the whole pages otherwise."""
        self._allocs[key] = _Alloc(_KINDS[key[0]], size, order, count)

    def record_many(self, kind: str, addrs: np.ndarray, size: int) -> None:
        """Book many allocations of one kind (``"k"`` slab, ``"p"`` percpu) and requested
        size at once (bulk paths), in aggregate: kfree()/free_percpu() find them there."""
        if kind not in ("k", "p"):
            raise ValueError(f"record_many: kind {kind!r} is not 'k' or 'p'")
        if len(addrs):
            self._bulk_books.append(_BulkBooks(kind, size, addrs))

    def _take_bulk(self, kind: str, addr: int) -> bool:
        for b in self._bulk_books:
            if b.kind == kind and b.n_held and b.take(addr):
                return True
        return False

    def _enomem(self, what: str, size: int, exc: OSError) -> BpfError:
        return BpfError(errno.ENOMEM, f"{what}({size}) for map {self.name or self.id!r} "
                                      f"failed: {exc.strerror or exc}")

    # ------------------------------------------------- allocation services
    def area_alloc(self, size: int, *, mmapable: bool = False) -> int:
        """Mirrors __bpf_map_area_alloc(), kernel/bpf/syscall.c: kmalloc for <= 32 KiB
        with GFP_USER|__GFP_NORETRY, then vmalloc with GFP_KERNEL|__GFP_RETRY_MAYFAIL;
        mmapable areas always vmalloc.  No active memcg: charged to current."""
        g = self.gfp
        base = g.NOWARN | g.ZERO | (g.ACCOUNT if self.bprof.account else 0)
        page = self.system.page_size
        if size <= 0 or size >= (1 << 63):
            raise BpfError(errno.ENOMEM, f"bpf_map_area_alloc: bad size {size}")
        if not mmapable and size <= page << PAGE_ALLOC_COSTLY_ORDER:
            try:
                addr = self.system.kmalloc(size, g.USER | g.NORETRY | base)
            except OSError:
                pass
            else:
                self._record(("k", addr), size)
                return addr
        try:
            addr = self.system.vmalloc(size, g.KERNEL | g.RETRY_MAYFAIL | base)
        except OSError as exc:
            raise self._enomem("bpf_map_area_alloc", size, exc) from None
        self._record(("v", addr), rup(size, page))
        return addr

    def area_free(self, addr: int) -> None:
        """bpf_map_area_free(): kvfree."""
        if self._allocs.pop(("k", addr), None) is not None:
            self.system.kfree(addr)
        elif self._allocs.pop(("v", addr), None) is not None:
            self.system.vfree(addr)
        else:
            raise ValueError(f"area_free: {addr:#x} not allocated by map {self.id}")

    def kzalloc_account(self, size: int, gfp: int) -> int:
        """A direct kmalloc/kzalloc in the current context (no active memcg switch),
        e.g. kzalloc(sizeof(*htab), GFP_USER | __GFP_ACCOUNT) in map_alloc."""
        try:
            addr = self.system.kmalloc(size, gfp)
        except OSError as exc:
            raise self._enomem("kmalloc", size, exc) from None
        self._record(("k", addr), size)
        return addr

    def map_kmalloc(self, size: int, gfp: int) -> int:
        """Mirrors bpf_map_kmalloc_node()/bpf_map_kzalloc(), kernel/bpf/syscall.c:
        v5.11+ under the map's memcg with __GFP_ACCOUNT; v5.10 plain kmalloc."""
        if self.bprof.account:
            gfp |= self.gfp.ACCOUNT
        with self._map_memcg_active():
            try:
                addr = self.system.kmalloc(size, gfp)
            except OSError as exc:
                raise self._enomem("bpf_map_kmalloc_node", size, exc) from None
        self._record(("k", addr), size)
        return addr

    def map_alloc_percpu(self, size: int, align: int, gfp: int) -> int:
        """Mirrors bpf_map_alloc_percpu(), kernel/bpf/syscall.c."""
        if self.bprof.account:
            gfp |= self.gfp.ACCOUNT
        with self._map_memcg_active():
            try:
                addr = self.system.alloc_percpu(size, align, gfp)
            except OSError as exc:
                raise self._enomem("bpf_map_alloc_percpu", size, exc) from None
        self._record(("p", addr), size)
        return addr

    def map_alloc_percpu_array(self, size: int, align: int, gfp: int, n: int,
                               accounted: bool = True) -> int:
        """``n`` bpf_map_alloc_percpu() (``accounted``) or __alloc_percpu_gfp() calls in a
        row, the per-element loop of a preallocated per-cpu map (prealloc_init(),
        bpf_array_alloc_percpu()): booked as one allocation of n areas
        (alloc_percpu_array(), whose host memory does not grow with n); area i is at
        the returned address + i * ALIGN(size, align)."""
        if accounted and self.bprof.account:
            gfp |= self.gfp.ACCOUNT
        with self._map_memcg_active() if accounted else nullcontext():
            try:
                addr = self.system.alloc_percpu_array(size, align, gfp, n)
            except OSError as exc:
                raise self._enomem("bpf_map_alloc_percpu", size, exc) from None
        self._record(("p", addr), size, count=n)
        return addr

    def plain_alloc_percpu(self, size: int, align: int, gfp: int) -> int:
        """__alloc_percpu_gfp() without the map helpers (unaccounted unless gfp says)."""
        try:
            addr = self.system.alloc_percpu(size, align, gfp)
        except OSError as exc:
            raise self._enomem("alloc_percpu", size, exc) from None
        self._record(("p", addr), size)
        return addr

    def kfree(self, addr: int) -> None:
        if self._allocs.pop(("k", addr), None) is None and not self._take_bulk("k", addr):
            raise ValueError(f"kfree: {addr:#x} not allocated by map {self.id}")
        self.system.kfree(addr)

    def free_percpu(self, addr: int) -> None:
        if self._allocs.pop(("p", addr), None) is None and not self._take_bulk("p", addr):
            raise ValueError(f"free_percpu: {addr:#x} not allocated by map {self.id}")
        self.system.free_percpu(addr)

    def alloc_pages(self, order: int, gfp: int) -> int:
        """alloc_pages_node() as ringbuf does (gfp decides accounting)."""
        if self.bprof.account:
            gfp |= self.gfp.ACCOUNT
        else:
            gfp &= ~self.gfp.ACCOUNT
        try:
            pfn = self.system.alloc_pages(order, gfp)
        except OSError as exc:
            raise self._enomem("alloc_pages", self.system.page_size << order, exc) from None
        self._record(("g", pfn), self.system.page_size << order, order)
        return pfn

    def free_pages(self, pfn: int) -> None:
        a = self._allocs.pop(("g", pfn), None)
        if a is None:
            raise ValueError(f"free_pages: pfn {pfn} not allocated by map {self.id}")
        self.system.free_pages(pfn, a.order)

    def forget_alloc(self, kind: str, addr: int) -> None:
        """Drop an allocation from the map's books without freeing it (ownership moved,
        e.g. to a bpf_mem_alloc cache)."""
        if self._allocs.pop((kind, addr), None) is None:
            self._take_bulk(kind, addr)

    def adopt_alloc(self, kind: str, addr: int, size: int) -> None:
        """Book an allocation made elsewhere (the map's code, another map's books);
        `size` is the requested size for "k" and "p" (per cpu), whole pages otherwise."""
        self._record((kind, addr), size)

    def free_all(self) -> None:
        """Free every allocation still recorded (ops->map_free fallback)."""
        for (kind, addr), a in list(self._allocs.items()):
            del self._allocs[(kind, addr)]
            if kind == "k":
                self.system.kfree(addr)
            elif kind == "v":
                self.system.vfree(addr)
            elif kind == "p":
                self.system.free_percpu(addr)
            else:
                self.system.free_pages(addr, a.order)
        books, self._bulk_books = self._bulk_books, []
        for b in books:
            addrs = b.held_addrs()
            if b.kind == "k":
                self.system.kfree_bulk(addrs)
            else:
                for addr in addrs.tolist():
                    self.system.free_percpu(addr)

    def charges(self) -> tuple[dict[str, int], dict[int, dict[str, int]]]:
        """What this map holds on non-root memcgs now: the requested bytes by allocation
        kind (slab: object sizes asked for; percpu: size x P; vmalloc/pages: whole pages),
        and per memcg id the bytes that memcg sees, by CHARGE_KINDS (obj_full_size() of
        slab objects, a kmalloc_large()'s pages, pcpu_obj_full_size(), whole pages).  Both
        are asked of the memory layer (memcg_ids_of(), kmalloc_charged_size(),
        pcpu_obj_full_size()); the bpf_mem_alloc caches' objects are booked in aggregate."""
        sysm = self.system
        asked = dict.fromkeys(CHARGE_KINDS, 0)
        by_memcg: dict[int, dict[str, int]] = {}
        root, ncpu = sysm.root.id, sysm.nr_cpus
        slab_charge: dict[int, int] = {}       # requested kmalloc size -> charged bytes
        where = np.array([sysm.pfn_to_virt(addr) if k == "g" else addr for k, addr in self._allocs],
                         dtype=np.uint64)
        for ((k, addr), a), memcg in zip(self._allocs.items(), sysm.memcg_ids_of(where).tolist()):
            if memcg < 0 or memcg == root:
                continue
            seen = by_memcg.setdefault(memcg, dict.fromkeys(CHARGE_KINDS, 0))
            size = a.size
            if k == "k":
                full = slab_charge.get(size)
                if full is None:
                    full = slab_charge[size] = sysm.kmalloc_charged_size(addr)
                asked["slab"] += size
                seen[kmalloc_stat_kind(sysm, full)] += full
            elif k == "p":
                asked["percpu"] += size * ncpu * a.count
                seen["percpu"] += sysm.pcpu_obj_full_size(size) * a.count
            else:
                asked[a.kind] += size
                seen[a.kind] += size
        for b in self._bulk_books:
            addrs = b.held_addrs()
            if not len(addrs):
                continue
            ids = sysm.memcg_ids_of(addrs)
            n = int(np.count_nonzero((ids >= 0) & (ids != root)))
            if not n:
                continue
            kind = _KINDS[b.kind]
            if b.kind == "k":
                full = slab_charge.get(b.size) or sysm.kmalloc_charged_size(int(addrs[0]))
                asked[kind] += n * b.size
            else:
                full = sysm.pcpu_obj_full_size(b.size)
                asked[kind] += n * b.size * ncpu
            seen[kind] += n * full
        for pool in self.pools:
            if pool.charged():
                memcg = sysm.objcg_memcg(pool.objcg).id
                seen = by_memcg.setdefault(memcg, dict.fromkeys(CHARGE_KINDS, 0))
                for kind, nbytes, full in pool.books():
                    asked[kind] += nbytes
                    seen[kind] += full
        return asked, by_memcg

    def objcgs(self) -> set[int]:
        """The obj_cgroups this map's objects are charged through (the objcg each slab or
        percpu object records, the saved map->objcg, its caches'): obj_cgroup_of()."""
        sysm = self.system
        out = {o for o in (self.objcg, *(p.objcg for p in self.pools)) if o is not None}
        for k, addr in self._allocs:
            if k in "kp":
                objcg = sysm.obj_cgroup_of(addr)[0]
                if objcg is not None:
                    out.add(objcg)
        return out

    def charged_bytes(self) -> tuple[dict[str, int], dict[str, int]]:
        """charges() summed over the memcgs: (requested, seen by the memcgs) by kind."""
        return sum_over_memcgs(*self.charges())

    def allocated_bytes(self) -> dict[str, int]:
        """Bytes by allocation kind the map holds, accounted or not."""
        out = {"slab": 0, "vmalloc": 0, "percpu": 0, "pages": 0}
        for a in self._allocs.values():
            out[a.kind] += a.size * self.system.nr_cpus * a.count if a.kind == "percpu" else a.size
        for b in self._bulk_books:
            out[_KINDS[b.kind]] += b.n_held * b.size * (self.system.nr_cpus if b.kind == "p" else 1)
        for pool in self.pools:
            for kind, nbytes, _ in pool.books():
                out[kind] += nbytes
        return out

    # ------------------------------------------------- key/value checks
    def check_key(self, key: bytes | None) -> None:
        if self.key_size == 0:
            if key is not None:
                raise BpfError(errno.EINVAL, "map with key_size 0 takes a NULL key")
            return
        if key is None or len(key) != self.key_size:
            raise BpfError(errno.EINVAL, f"key must be {self.key_size} bytes")

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} id={self.id} type="
                f"{uapi.MAP_TYPE_NAMES.get(self.map_type)} name={self.name!r}>")
