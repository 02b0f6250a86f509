"""CGROUP_STORAGE and PERCPU_CGROUP_STORAGE (kernel/bpf/local_storage.c).

Creation: struct bpf_cgroup_storage_map only (kmalloc GFP_USER | __GFP_ZERO [|
__GFP_ACCOUNT v5.11]).  Storage instances are made when a program using the map
is attached to a cgroup (bpf_cgroup_storage_alloc()): struct bpf_cgroup_storage
plus a shared buffer (struct bpf_storage_buffer + value_size) or a per-cpu area
of value_size.  v5.10: plain allocations, pages charged to the map's user
against RLIMIT_MEMLOCK (bpf_map_charge_memlock(), -EPERM); v5.11: GFP_USER |
__GFP_ACCOUNT in the attaching task's context (its memcg); later kernels
allocate them through bpf_map_kmalloc_node()/bpf_map_alloc_percpu() (the map's
memcg) — the model switches at v6.0 (approximate: the exact release was not
re-verified).  A syscall update of the shared flavour replaces the buffer
(through the map's memcg, GFP_ATOMIC v5.x / GFP_NOWAIT v6.0+).
The model's attach entry points are attach_storage()/detach_storage().
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from . import uapi
from .errors import BpfError
from .map import KMALLOC_MAX_SIZE, PCPU_MIN_UNIT_SIZE, BpfMap, flags_access_ok, register_map, rup
from .regime import charge_memlock, uncharge_memlock
from .uapi import MAX_BPF_STACK, U16_MAX

_CREATE_FLAGS = (uapi.BPF_F_NUMA_NODE | uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY
                 | uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_WRONLY_PROG)
KEY_SIZE_FULL = 16       # struct bpf_cgroup_storage_key: cgroup_inode_id u64 + attach_type u32 (+pad)
KEY_SIZE_ID = 8          # cgroup id only


@dataclass(eq=False)
class CgroupStorage:
    """struct bpf_cgroup_storage: one instance per (cgroup, attach type)."""
    cgroup_id: int
    attach_type: int
    storage: int                 # address of struct bpf_cgroup_storage
    buf: int                     # buffer address (slab) or per-cpu address
    value: bytes
    pages: int = 0               # v5.10 memlock pages charged for it
    on_map: bool = True          # allocation recorded on the map's books


@register_map
class CgroupStorageMap(BpfMap):
    """BPF_MAP_TYPE_CGROUP_STORAGE / PERCPU_CGROUP_STORAGE (struct bpf_cgroup_storage_map)."""

    map_types: ClassVar[tuple[int, ...]] = (uapi.BPF_MAP_TYPE_CGROUP_STORAGE,
                                            uapi.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE)

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """Mirrors the checks of cgroup_storage_map_alloc() (no capability needed)."""
        percpu = attr.map_type == uapi.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE
        name = "PERCPU_CGROUP_STORAGE" if percpu else "CGROUP_STORAGE"
        if attr.key_size not in (KEY_SIZE_FULL, KEY_SIZE_ID):
            raise BpfError(errno.EINVAL, f"{name}: key_size {attr.key_size} must be 16 (struct "
                           f"bpf_cgroup_storage_key) or 8 (cgroup id)")
        if attr.value_size == 0:
            raise BpfError(errno.EINVAL, f"{name}: value_size 0")
        if not ctx.bprof.cgroup_storage_large_value:
            vmax = ctx.system.page_size            # value_size > PAGE_SIZE -> E2BIG
        else:
            sel = ctx.sizes.bpf_local_storage_elem
            vmax = min(KMALLOC_MAX_SIZE - MAX_BPF_STACK - sel, U16_MAX - sel)
            if percpu:
                vmax = min(vmax, PCPU_MIN_UNIT_SIZE)
        if attr.value_size > vmax:
            raise BpfError(errno.E2BIG, f"{name}: value_size {attr.value_size} > {vmax}")
        if attr.map_flags & ~_CREATE_FLAGS or not flags_access_ok(attr.map_flags):
            raise BpfError(errno.EINVAL, f"{name}: map_flags {attr.map_flags:#x} outside {_CREATE_FLAGS:#x}")
        if attr.max_entries:
            raise BpfError(errno.EINVAL, f"{name}: max_entries must be 0 (got {attr.max_entries})")

    @property
    def percpu(self) -> bool:
        return self.attr.map_type == uapi.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE

    def legacy_cost(self) -> int:
        return self.sizes.bpf_cgroup_storage_map

    def alloc(self) -> None:
        """Mirrors cgroup_storage_map_alloc(): kmalloc_node(GFP_USER | __GFP_ZERO [| ACCOUNT])."""
        g = self.gfp
        self._storages: dict[tuple[int, int], CgroupStorage] = {}
        self.kzalloc_account(self.sizes.bpf_cgroup_storage_map, self.acct(g.USER | g.ZERO))

    def free(self) -> None:
        """Mirrors cgroup_storage_map_free(): storages still attached are freed with it."""
        for k in list(self._storages):
            self._free_storage(self._storages.pop(k))
        self.free_all()

    def mem_usage(self) -> int:
        """Mirrors cgroup_storage_map_usage(): instances are not counted."""
        return self.sizes.bpf_cgroup_storage_map

    def memory_footprint(self) -> int:
        return 0

    # -- sizes: bpf_cgroup_storage_calculate_size() --
    def _calc(self) -> tuple[int, int]:
        page = self.system.page_size
        if self.percpu:
            size = self.attr.value_size
            pages = rup(rup(size, 8) * self.system.nr_cpus, page) // page
        else:
            size = self.sizes.bpf_storage_buffer + self.attr.value_size
            pages = rup(self.sizes.bpf_cgroup_storage + size, page) // page
        return size, pages

    def _value_len(self) -> int:
        return rup(self.attr.value_size, 8) * self.system.nr_cpus if self.percpu else self.attr.value_size

    # -- attach / detach (called by the prog attach path) --
    def attach_storage(self, cgroup: Any, attach_type: int = 0, task: Any = None) -> CgroupStorage:
        """bpf_cgroup_storage_alloc() + link when a program using this map is attached to
        `cgroup` by the current task (or `task`); one instance per (cgroup, attach type)."""
        key = (int(cgroup.id), int(attach_type))
        if key in self._storages:
            return self._storages[key]
        sys_ = self.system
        task = task if task is not None else sys_.current_task
        g = self.gfp
        size, pages = self._calc()
        if self.bprof.rlimit:
            # v5.10 bpf_map_charge_memlock(): the map's user, the attaching task's rlimit
            if self.memory.user is not None:
                soft = task.getrlimit(uapi.RLIMIT_MEMLOCK)[0] if task is not None else uapi.RLIM_INFINITY
                charge_memlock(self.memory.user, pages, soft, sys_.page_size,
                               "cgroup storage attach")
                self.memory.pages += pages
        gfp = g.USER | g.ZERO
        storage = buf = None
        try:
            # bpf_map_kmalloc_node() / bpf_map_alloc_percpu(): the map's memcg (v5.11,
            # 3a61c7c58b30, with the rest of switch account); v5.10: plain, unaccounted
            storage = self.map_kmalloc(self.sizes.bpf_cgroup_storage, gfp)
            buf = (self.map_alloc_percpu(size, 8, gfp) if self.percpu
                   else self.map_kmalloc(size, gfp))
        except OSError as exc:
            if storage is not None:
                self.kfree(storage)
            if self.bprof.rlimit and self.memory.user is not None:
                uncharge_memlock(self.memory.user, pages)
                self.memory.pages -= pages
            raise BpfError(errno.ENOMEM, f"cgroup storage attach: {exc.strerror or exc}") from None
        st = CgroupStorage(key[0], key[1], storage, buf, bytes(self._value_len()),
                           pages if self.bprof.rlimit else 0)
        self._storages[key] = st
        return st

    def _free_storage(self, st: CgroupStorage) -> None:
        """bpf_cgroup_storage_free(): buffer, struct, v5.10 memlock pages."""
        if self.percpu:
            self.free_percpu(st.buf)
        else:
            self.kfree(st.buf)
        self.kfree(st.storage)
        if st.pages and self.memory.user is not None:
            uncharge_memlock(self.memory.user, st.pages)
            self.memory.pages -= st.pages

    def detach_storage(self, cgroup: Any, attach_type: int = 0) -> None:
        """Detach of the last program using the instance: bpf_cgroup_storage_unlink + free."""
        st = self._storages.pop((int(cgroup.id), int(attach_type)), None)
        if st is None:
            raise BpfError(errno.ENOENT, "cgroup storage: no instance for that cgroup/attach type")
        self._free_storage(st)

    # -- syscall side --
    def _lookup(self, key: bytes | None) -> CgroupStorage:
        if key is None or len(key) != self.attr.key_size:
            raise BpfError(errno.EINVAL, f"cgroup storage: key must be {self.attr.key_size} bytes")
        cg_id = struct.unpack_from("<Q", key)[0]
        if self.attr.key_size == KEY_SIZE_ID:
            for (cid, _at), st in self._storages.items():
                if cid == cg_id:
                    return st
        else:
            at = struct.unpack_from("<I", key, 8)[0]
            st = self._storages.get((cg_id, at))
            if st is not None:
                return st
        raise BpfError(errno.ENOENT, f"cgroup storage: no instance for cgroup id {cg_id}")

    def lookup_elem(self, key: bytes | None) -> bytes:
        return self._lookup(key).value

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Mirrors cgroup_storage_update_elem() / bpf_percpu_cgroup_storage_update()."""
        if self.percpu:
            if flags not in (uapi.BPF_ANY, uapi.BPF_EXIST):
                raise BpfError(errno.EINVAL, f"PERCPU_CGROUP_STORAGE: flags {flags:#x}")
            st = self._lookup(key)
            st.value = bytes(value)          # copied in place per cpu, no allocation
            return
        if flags & ~(uapi.BPF_EXIST | uapi.BPF_F_LOCK) or flags & uapi.BPF_F_LOCK:
            raise BpfError(errno.EINVAL, f"CGROUP_STORAGE: flags {flags:#x} (only BPF_ANY/BPF_EXIST; "
                           f"BPF_F_LOCK needs a bpf_spin_lock)")
        st = self._lookup(key)
        size = self.sizes.bpf_storage_buffer + self.attr.value_size
        try:
            new = self.map_kmalloc(size, self.runtime_gfp() | self.gfp.ZERO)
        except OSError as exc:
            raise BpfError(errno.ENOMEM, f"CGROUP_STORAGE: new buffer of {size} bytes: "
                           f"{exc.strerror or exc}") from None
        self.kfree(st.buf)                   # old buffer: kfree_rcu
        st.buf = new
        st.value = bytes(value)

    def delete_elem(self, key: bytes | None) -> None:
        raise BpfError(errno.EINVAL, "cgroup storage: delete is not supported")

    def get_next_key(self, key: bytes | None) -> bytes:
        """Mirrors cgroup_storage_get_next_key()."""
        keys = list(self._storages)
        if not keys:
            raise BpfError(errno.ENOENT, "cgroup storage: empty")
        i = 0
        if key is not None:
            cur = self._lookup(key)
            i = keys.index((cur.cgroup_id, cur.attach_type)) + 1
            if i >= len(keys):
                raise BpfError(errno.ENOENT, "cgroup storage: last key")
        cid, at = keys[i]
        if self.attr.key_size == KEY_SIZE_ID:
            return struct.pack("<Q", cid)
        return struct.pack("<QII", cid, at, 0)
