"""struct bpf_map: the base class every map family derives from, the type
registry, and the allocation services of kernel/bpf/syscall.c
(__bpf_map_area_alloc, bpf_map_kmalloc_node, bpf_map_alloc_percpu ...).

A family module subclasses BpfMap, sets ``map_types`` and decorates the class
with ``@register_map``.  map_create() (syscall.py) then runs
``cls.alloc_check(attr, ctx)`` -> ``cls(system, attr, ctx)`` ->
``legacy_cost()`` (5.10 rlimit charge) -> ``alloc()``.
"""

from __future__ import annotations

import errno
import importlib
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

from . import uapi
from .errors import BpfError
from .regime import BpfProfile, Gfp, MemlockCharge
from .sizes import StructSizes

if TYPE_CHECKING:  # pragma: no cover
    from .system_api import BpfState

ENOTSUPP = uapi.ENOTSUPP
KMALLOC_MAX_SIZE = 4 << 20          # KMALLOC_MAX_SIZE on x86_64 (2^22)
PCPU_MIN_UNIT_SIZE = 32 << 10
PAGE_ALLOC_COSTLY_ORDER = 3

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
    return (x + a - 1) // a * a


def pow2(x: int) -> int:
    """roundup_pow_of_two() (x >= 1)."""
    return 1 if x <= 1 else 1 << (x - 1).bit_length()


def kmalloc_charge(size: int, page: int) -> int:
    """Bytes a kmalloc(size) with __GFP_ACCOUNT puts on the memcg: the kmalloc bucket
    plus the 8-byte objcg slot (obj_full_size(), mm/slab.h; buckets as kmalloc_index(),
    include/linux/slab.h); above KMALLOC_MAX_CACHE_SIZE (2 pages) the compound page of
    kmalloc_large() (mm/slub.c)."""
    if size > 2 * page:
        return page * pow2((size + page - 1) // page)
    if size <= 8:
        return 16
    if 64 < size <= 96:
        return 104
    if 128 < size <= 192:
        return 200
    return pow2(size) + 8


def percpu_charge(size: int, nr_cpus: int, ptr_overhead: bool) -> int:
    """pcpu_obj_full_size(), mm/percpu-internal.h: ALIGN(size, 4) on every possible cpu,
    plus (2022+) one objcg pointer per 4-byte unit."""
    a4 = (size + 3) // 4 * 4
    return a4 * nr_cpus + (a4 // 4 * 8 if ptr_overhead else 0)


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
    """Who creates the map: the calling task and its credentials."""

    system: Any
    task: Any
    bprof: BpfProfile
    sizes: StructSizes
    gfp: Gfp

    def capable(self, cap: int) -> bool:
        return self.task.capable(cap)

    def bpf_capable(self) -> bool:
        """bpf_capable(): CAP_BPF or CAP_SYS_ADMIN (include/linux/capability.h)."""
        return self.capable(uapi.CAP_BPF) or self.capable(uapi.CAP_SYS_ADMIN)

    def perfmon_capable(self) -> bool:
        """perfmon_capable() = bpf_bypass_spec_v1(): CAP_PERFMON or CAP_SYS_ADMIN."""
        return self.capable(uapi.CAP_PERFMON) or self.capable(uapi.CAP_SYS_ADMIN)

    def net_admin(self) -> bool:
        return self.capable(uapi.CAP_NET_ADMIN) or self.capable(uapi.CAP_SYS_ADMIN)

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
                  "bpf_struct_ops", "bloom_filter")


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


@dataclass
class _Alloc:
    kind: str          # "slab", "vmalloc", "percpu", "pages"
    nbytes: int        # requested bytes (page-rounded for vmalloc/pages, x P for percpu)
    charged: bool      # accounted to a non-root memcg
    order: int = 0
    memcg_bytes: int = 0   # what the memcg sees (kmalloc bucket + objcg slot, pcpu full size)


class BpfMap:
    """struct bpf_map and its ops.  Subclasses override the hooks below."""

    map_types: ClassVar[tuple[int, ...]] = ()
    # batch ops the type supports: subset of {"lookup", "lookup_and_delete", "update", "delete"}
    batch_ops: ClassVar[frozenset[str]] = frozenset()
    # key_size 0 types (queue/stack, ringbuf, bloom) take a NULL key
    null_key: ClassVar[bool] = False

    def __init__(self, system: Any, attr: MapAttr, ctx: CreateCtx) -> None:
        self.system = system
        self.attr = attr
        self.ctx = ctx
        self.bprof: BpfProfile = ctx.bprof
        self.sizes: StructSizes = ctx.sizes
        self.gfp: Gfp = ctx.gfp
        self.creator = ctx.task
        self.map_type = attr.map_type
        self.key_size = attr.key_size
        self.value_size = attr.value_size
        self.max_entries = attr.max_entries
        self.map_flags = attr.map_flags
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
        self.pools: list[Any] = []      # bpf_mem_alloc caches booked in aggregate
        self._active_cg: Any = None

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
        return BpfError(ENOTSUPP, f"{op}: map type {uapi.MAP_TYPE_NAMES.get(self.map_type)} "
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
    @property
    def system_bpf(self) -> "BpfState":
        return self.system.bpf_state

    def map_memcg(self) -> Any:
        """bpf_map_get_memcg(): v5.11 map->memcg; v6.0+ the objcg's current memcg
        or root when no objcg.  None before it is saved (v5.11: current's)."""
        if self.bprof.map_memcg == "memcg":
            return self.memcg
        if self.bprof.map_memcg == "objcg":
            if self.objcg is None:
                return self.system.root
            return self.system.objcg_memcg(self.objcg)
        return None

    def memcg_path(self) -> str | None:
        """Path of the cgroup the map's runtime charges go to (None: not accounted)."""
        if self.bprof.map_memcg == "none":
            return None
        cg = self.map_memcg()
        return None if cg is None else cg.path

    @contextmanager
    def _map_memcg_active(self) -> Iterator[None]:
        """set_active_memcg(bpf_map_get_memcg(map)) around a helper allocation
        (bpf_map_kmalloc_node() etc., kernel/bpf/syscall.c).  v5.11 with
        map->memcg still NULL (inside map_alloc) leaves current's memcg in use
        (simplified: an outer active memcg is not cleared)."""
        if self.bprof.map_memcg == "none":
            yield
            return
        cg = self.map_memcg()
        ctx = self.system.active_memcg(cg) if cg is not None else nullcontext()
        old = self._active_cg
        self._active_cg = cg
        try:
            with ctx:
                yield
        finally:
            self._active_cg = old

    def _charged_now(self, gfp: int) -> bool:
        """Whether an allocation with `gfp` in the current context lands on a non-root memcg."""
        if not gfp & self.gfp.ACCOUNT:
            return False
        sysm = self.system
        cg = self._active_cg
        if cg is None:
            t = sysm.current_task
            cg = t.cgroup if t is not None else None
        return cg is not None and cg is not sysm.root and cg.parent is not None

    def _record(self, key: tuple[str, int], kind: str, size: int, charged: bool,
                order: int = 0) -> None:
        """Book an allocation; `size` is the requested size for slab and per-cpu
        objects (converted to what the memcg sees), the byte count otherwise."""
        if kind == "slab":
            full = kmalloc_charge(size, self.system.page_size)
        elif kind == "percpu":
            full = self.percpu_charge(size)
            size *= self.system.nr_cpus
        else:
            full = size
        self._allocs[key] = _Alloc(kind, size, charged, order, full)

    def percpu_charge(self, size: int) -> int:
        return percpu_charge(size, self.system.nr_cpus,
                             bool(getattr(self.system.profile, "percpu_ptr_overhead", 0)))

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
            gfp = g.USER | g.NORETRY | base
            charged = self._charged_now(gfp)
            try:
                addr = self.system.kmalloc(size, gfp)
            except OSError:
                pass
            else:
                self._record(("k", addr), "slab", size, charged)
                return addr
        gfp = g.KERNEL | g.RETRY_MAYFAIL | base
        charged = self._charged_now(gfp)
        try:
            addr = self.system.vmalloc(size, gfp)
        except OSError as exc:
            raise self._enomem("bpf_map_area_alloc", size, exc) from None
        self._record(("v", addr), "vmalloc", rup(size, page), charged)
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
        charged = self._charged_now(gfp)
        try:
            addr = self.system.kmalloc(size, gfp)
        except OSError as exc:
            raise self._enomem("kmalloc", size, exc) from None
        self._record(("k", addr), "slab", size, charged)
        return addr

    def map_kmalloc(self, size: int, gfp: int) -> int:
        """Mirrors bpf_map_kmalloc_node()/bpf_map_kzalloc(), kernel/bpf/syscall.c:
        v5.11+ under the map's memcg with __GFP_ACCOUNT; v5.10 plain kmalloc."""
        if self.bprof.account:
            gfp |= self.gfp.ACCOUNT
        with self._map_memcg_active():
            charged = self._charged_now(gfp)
            try:
                addr = self.system.kmalloc(size, gfp)
            except OSError as exc:
                raise self._enomem("bpf_map_kmalloc_node", size, exc) from None
        self._record(("k", addr), "slab", size, charged)
        return addr

    def map_alloc_percpu(self, size: int, align: int, gfp: int) -> int:
        """Mirrors bpf_map_alloc_percpu(), kernel/bpf/syscall.c."""
        if self.bprof.account:
            gfp |= self.gfp.ACCOUNT
        with self._map_memcg_active():
            charged = self._charged_now(gfp)
            try:
                addr = self.system.alloc_percpu(size, align, gfp)
            except OSError as exc:
                raise self._enomem("bpf_map_alloc_percpu", size, exc) from None
        self._record(("p", addr), "percpu", size, charged)
        return addr

    def plain_alloc_percpu(self, size: int, align: int, gfp: int) -> int:
        """__alloc_percpu_gfp() without the map helpers (unaccounted unless gfp says)."""
        charged = self._charged_now(gfp)
        try:
            addr = self.system.alloc_percpu(size, align, gfp)
        except OSError as exc:
            raise self._enomem("alloc_percpu", size, exc) from None
        self._record(("p", addr), "percpu", size, charged)
        return addr

    def kfree(self, addr: int) -> None:
        if self._allocs.pop(("k", addr), None) is None:
            raise ValueError(f"kfree: {addr:#x} not allocated by map {self.id}")
        self.system.kfree(addr)

    def free_percpu(self, addr: int) -> None:
        if self._allocs.pop(("p", addr), None) is None:
            raise ValueError(f"free_percpu: {addr:#x} not allocated by map {self.id}")
        self.system.free_percpu(addr)

    def alloc_pages(self, order: int, gfp: int) -> int:
        """alloc_pages_node() as ringbuf does (gfp decides accounting)."""
        if self.bprof.account:
            gfp |= self.gfp.ACCOUNT
        else:
            gfp &= ~self.gfp.ACCOUNT
        charged = self._charged_now(gfp)
        try:
            pfn = self.system.alloc_pages(order, gfp)
        except OSError as exc:
            raise self._enomem("alloc_pages", self.system.page_size << order, exc) from None
        self._record(("g", pfn), "pages", self.system.page_size << order, charged, order)
        return pfn

    def free_pages(self, pfn: int) -> None:
        a = self._allocs.pop(("g", pfn), None)
        if a is None:
            raise ValueError(f"free_pages: pfn {pfn} not allocated by map {self.id}")
        self.system.free_pages(pfn, a.order)

    def forget_alloc(self, kind: str, addr: int) -> None:
        """Drop an allocation from the map's books without freeing it (ownership moved,
        e.g. to a bpf_mem_alloc cache)."""
        self._allocs.pop((kind, addr), None)

    def adopt_alloc(self, kind: str, addr: int, nbytes: int, charged: bool) -> None:
        """Record an allocation made elsewhere (e.g. by a bpf_mem_alloc cache) on the map;
        `nbytes` is the requested size for "k" and "p" (the per-cpu unit)."""
        self._record((kind, addr), {"k": "slab", "v": "vmalloc", "p": "percpu",
                                    "g": "pages"}[kind], nbytes, charged)

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

    def charged_bytes(self) -> dict[str, int]:
        """Requested bytes by allocation kind this map holds on a (non-root) memcg
        (slab: object sizes asked for; percpu: size x P; vmalloc/pages: whole pages)."""
        out = {"slab": 0, "vmalloc": 0, "percpu": 0, "pages": 0}
        for a in self._allocs.values():
            if a.charged:
                out[a.kind] += a.nbytes
        for pool in self.pools:
            if pool.charged:
                for kind, nbytes, _ in pool.books():
                    out[kind] += nbytes
        return out

    def memcg_charged_bytes(self) -> dict[str, int]:
        """The bytes the memcg actually sees, by kind: kmalloc bucket + 8-byte objcg slot
        (kmalloc_large: its pages), pcpu_obj_full_size(), whole pages."""
        out = {"slab": 0, "vmalloc": 0, "percpu": 0, "pages": 0}
        for a in self._allocs.values():
            if a.charged:
                out[a.kind] += a.memcg_bytes
        for pool in self.pools:
            if pool.charged:
                for kind, _, full in pool.books():
                    out[kind] += full
        return out

    def allocated_bytes(self) -> dict[str, int]:
        """Bytes by allocation kind the map holds, accounted or not."""
        out = {"slab": 0, "vmalloc": 0, "percpu": 0, "pages": 0}
        for a in self._allocs.values():
            out[a.kind] += a.nbytes
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
