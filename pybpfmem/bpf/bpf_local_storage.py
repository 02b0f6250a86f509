"""SK_STORAGE, INODE_STORAGE, TASK_STORAGE (v5.11+) and CGRP_STORAGE (v6.2+)
(kernel/bpf/bpf_local_storage.c, net/core/bpf_sk_storage.c, kernel/bpf/bpf_inode_storage.c,
kernel/bpf/bpf_task_storage.c, kernel/bpf/bpf_cgrp_storage.c).

Creation: struct bpf_local_storage_map (kzalloc GFP_USER | __GFP_NOWARN [|
__GFP_ACCOUNT v5.11]; area alloc v6.1+) and max(2, pow2(P)) buckets of 16 bytes
(kvcalloc [| __GFP_ACCOUNT v5.11]; bpf_map_kvcalloc from v6.3, which runs before
the map's objcg is saved and so lands on the root memcg: uncharged).
Per owner (socket, inode, task, cgroup) and map: one element (selem) of
smap->elem_size bytes, plus a struct bpf_local_storage on the owner's first
element, both bpf_map_kzalloc(GFP_ATOMIC | __GFP_NOWARN) through the map's
memcg (plain kzalloc in v5.10).  SK_STORAGE also charges both to the socket's
sk_omem_alloc against net.core.optmem_max (-ENOMEM when over) in every profile.
Simplifications: the BTF key/value type requirement is not enforced (the model
has no BTF objects); 6.x task/cgroup storage allocate from bpf_mem_alloc or
kmalloc_nolock in the kernel, modelled as bpf_map_kzalloc; frees are immediate
(the kernel waits for RCU grace periods).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import uapi
from .caps import require_cap
from .errors import BpfError
from .kobjects import CgroupFile, Inode, InodeFile, PidFd, Socket, current_task, fd_object, registry
from .map import KMALLOC_MAX_SIZE, BpfMap, pow2, register_map
from .uapi import ENOTSUPP, MAX_BPF_STACK, U16_MAX

BPF_LOCAL_STORAGE_GET_F_CREATE = 1
# offsetof(struct bpf_local_storage_elem, sdata.data): the sdata member is
# ____cacheline_aligned at offset 64, its data follows the 8-byte smap pointer
SELEM_SDATA_DATA_OFFSET = 72
_CREATE_FLAG_MASK = uapi.BPF_F_NO_PREALLOC | uapi.BPF_F_CLONE


@dataclass(eq=False)
class LocalStorage:
    """struct bpf_local_storage of one owner: its selems per map."""
    owner: Any
    addr: int
    holder: Any                                   # map whose books hold the allocation
    elems: dict[Any, tuple[int, bytes]] = field(default_factory=dict)   # map -> (selem, value)


class LocalStorageMap(BpfMap):
    """Shared part of the four owner-keyed storages (struct bpf_local_storage_map)."""

    map_types: ClassVar[tuple[int, ...]] = ()
    kind: ClassVar[str] = ""
    owner_type: ClassVar[tuple[type, ...]] = ()

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """Mirrors bpf_local_storage_map_alloc_check().  BTF objects are not modelled:
        any non-zero btf_key_type_id / btf_value_type_id is accepted, zero is EINVAL."""
        allowed = _CREATE_FLAG_MASK if cls.kind == "SK_STORAGE" else uapi.BPF_F_NO_PREALLOC
        if (attr.map_flags & ~allowed or not attr.map_flags & uapi.BPF_F_NO_PREALLOC
                or attr.max_entries or attr.key_size != 4 or not attr.value_size
                or not attr.btf_key_type_id or not attr.btf_value_type_id):
            raise BpfError(errno.EINVAL, f"{cls.kind}: bpf_local_storage_map_alloc_check: need "
                           f"BPF_F_NO_PREALLOC and flags within {allowed:#x} (got "
                           f"{attr.map_flags:#x}), max_entries 0 (got {attr.max_entries}), "
                           f"key_size 4 (got {attr.key_size}), value_size > 0, and BTF key/value "
                           f"types (got {attr.btf_key_type_id}/{attr.btf_value_type_id}: sk dumping "
                           f"from user space needs them)")
        require_cap(ctx.task, "bpf", cls.kind)
        sel = ctx.sizes.bpf_local_storage_elem
        vmax = min(KMALLOC_MAX_SIZE - MAX_BPF_STACK - sel, U16_MAX - sel)
        if attr.value_size > vmax:
            raise BpfError(errno.E2BIG, f"{cls.kind}: value_size {attr.value_size} > "
                           f"BPF_LOCAL_STORAGE_MAX_VALUE_SIZE {vmax}")

    @property
    def nbuckets(self) -> int:
        return max(2, pow2(self.system.nr_cpus))

    @property
    def elem_size(self) -> int:
        """smap->elem_size: sizeof(selem) + value_size; offsetof(selem, sdata.data) +
        value_size with switch selem_compact."""
        if self.bprof.selem_compact:
            return SELEM_SDATA_DATA_OFFSET + self.attr.value_size
        return self.sizes.bpf_local_storage_elem + self.attr.value_size

    def _buckets_bytes(self) -> int:
        return self.nbuckets * self.sizes.bpf_local_storage_map_bucket

    def legacy_cost(self) -> int:
        return self.sizes.bpf_local_storage_map + self._buckets_bytes()

    def alloc(self) -> None:
        """Mirrors bpf_local_storage_map_alloc()."""
        g = self.gfp
        self._owners: dict[int, Any] = {}     # id(owner) -> owner
        if self.bprof.struct_area_alloc:
            self.area_alloc(self.sizes.bpf_local_storage_map)
        else:
            self.kzalloc_account(self.sizes.bpf_local_storage_map,
                                 self.acct(g.USER | g.NOWARN | g.ZERO))
        if self.bprof.local_storage_kvcalloc:
            # bpf_map_kvcalloc(): map memcg, not saved yet -> root (uncharged)
            self.map_kmalloc(self._buckets_bytes(), g.USER | g.NOWARN | g.ZERO)
        else:
            self.kzalloc_account(self._buckets_bytes(), self.acct(g.USER | g.NOWARN | g.ZERO))

    def free(self) -> None:
        """Mirrors bpf_local_storage_map_free(): unlink every element first."""
        for owner in list(self._owners.values()):
            st = registry(self.system).storage_of(owner)
            if st is not None and self in st.elems:
                self.unlink_owner(owner, st)
        self.free_all()

    def mem_usage(self) -> int:
        """Mirrors bpf_local_storage_map_mem_usage(): elements not counted."""
        return self.sizes.bpf_local_storage_map + self._buckets_bytes()

    # -- owner charge (sk: bpf_sk_storage_charge / _uncharge; others none) --
    def _mem_charge(self, owner: Any, size: int) -> bool:
        return True

    def _mem_uncharge(self, owner: Any, size: int) -> None:
        pass

    # -- owner from fd --
    def _owner_from_key(self, key: bytes | None) -> Any:
        if key is None or len(key) != 4:
            raise BpfError(errno.EINVAL, f"{self.kind}: key must be a 4-byte fd")
        fd = int.from_bytes(key, "little", signed=True)
        obj = fd_object(current_task(self.system), fd)
        return self._owner_of(obj, fd)

    def _owner_of(self, obj: Any, fd: int) -> Any:
        raise NotImplementedError

    def _helper_owner(self, owner: Any) -> Any:
        """The owner a program passes to the *_storage_get helper, checked at the Python
        boundary (the verifier checks the pointer's kind): this System's, of the map's
        kind; TypeError or ValueError otherwise."""
        raise NotImplementedError

    # -- core ops --
    def unlink_owner(self, owner: Any, st: LocalStorage) -> None:
        """bpf_selem_unlink(): free the element; free the storage with the last one."""
        selem, _ = st.elems.pop(self)
        self._mem_uncharge(owner, self.elem_size)
        self.kfree(selem)
        self._owners.pop(id(owner), None)
        if not st.elems:
            self._mem_uncharge(owner, self.sizes.bpf_local_storage)
            holder = st.holder
            holder.kfree(st.addr)
            registry(self.system).owner_storage.pop(id(owner), None)
        elif st.holder is self:
            # the allocation moves to the books of a map still using the storage
            nxt = next(iter(st.elems))
            self.forget_alloc("k", st.addr)
            nxt.adopt_alloc("k", st.addr, self.sizes.bpf_local_storage)
            st.holder = nxt

    def _selem_alloc(self, owner: Any, gfp: int) -> int:
        """bpf_selem_alloc(): owner charge, then bpf_map_kzalloc(elem_size)."""
        if not self._mem_charge(owner, self.elem_size):
            raise BpfError(errno.ENOMEM, f"{self.kind}: socket option memory: sk_omem_alloc "
                           f"{getattr(owner, 'sk_omem_alloc', 0)} + {self.elem_size} would reach "
                           f"net.core.optmem_max {registry(self.system).optmem_max}")
        try:
            return self.map_kmalloc(self.elem_size, gfp | self.gfp.ZERO)
        except OSError as exc:
            self._mem_uncharge(owner, self.elem_size)
            raise BpfError(errno.ENOMEM, f"{self.kind}: element of {self.elem_size} bytes: "
                           f"{exc.strerror or exc}") from None

    def storage_update(self, owner: Any, value: bytes, flags: int, gfp: int | None = None) -> None:
        """Mirrors bpf_local_storage_update()."""
        if gfp is None:
            gfp = self.atomic_gfp()
        if (flags & ~uapi.BPF_F_LOCK) > uapi.BPF_EXIST or flags & uapi.BPF_F_LOCK:
            raise BpfError(errno.EINVAL, f"{self.kind}: update flags {flags:#x} invalid "
                           f"(BPF_F_LOCK needs a bpf_spin_lock in the value)")
        st = registry(self.system).storage_of(owner)
        old = st.elems.get(self) if st is not None else None
        if old is None and flags == uapi.BPF_EXIST:
            raise BpfError(errno.ENOENT, f"{self.kind}: no element for this owner with BPF_EXIST")
        if old is not None and flags == uapi.BPF_NOEXIST:
            raise BpfError(errno.EEXIST, f"{self.kind}: element exists with BPF_NOEXIST")
        selem = self._selem_alloc(owner, gfp)
        if st is None:
            # bpf_local_storage_alloc(): the owner's first element
            ssize = self.sizes.bpf_local_storage
            if not self._mem_charge(owner, ssize):
                self._mem_uncharge(owner, self.elem_size)
                self.kfree(selem)
                raise BpfError(errno.ENOMEM, f"{self.kind}: socket option memory for "
                               f"bpf_local_storage ({ssize} bytes) over net.core.optmem_max "
                               f"{registry(self.system).optmem_max}")
            try:
                addr = self.map_kmalloc(ssize, gfp | self.gfp.ZERO)
            except OSError as exc:
                self._mem_uncharge(owner, ssize + self.elem_size)
                self.kfree(selem)
                raise BpfError(errno.ENOMEM, f"{self.kind}: bpf_local_storage: "
                               f"{exc.strerror or exc}") from None
            st = LocalStorage(owner=owner, addr=addr, holder=self)
            registry(self.system).owner_storage[id(owner)] = st
        elif old is not None:
            # the old element is unlinked and freed (kfree_rcu) after the new one is linked
            self._mem_uncharge(owner, self.elem_size)
            self.kfree(old[0])
        st.elems[self] = (selem, bytes(value))
        self._owners[id(owner)] = owner

    def storage_lookup(self, owner: Any) -> bytes | None:
        st = registry(self.system).storage_of(owner)
        e = st.elems.get(self) if st is not None else None
        return None if e is None else e[1]

    def storage_delete(self, owner: Any) -> None:
        """bpf_*_storage_delete(): -ENOENT when the owner has no element."""
        st = registry(self.system).storage_of(owner)
        if st is None or self not in st.elems:
            raise BpfError(errno.ENOENT, f"{self.kind}: no element for this owner")
        self.unlink_owner(owner, st)

    # -- syscall side: key is an fd --
    def lookup_elem(self, key: bytes | None) -> bytes:
        owner = self._owner_from_key(key)
        v = self.storage_lookup(owner)
        if v is None:
            raise BpfError(errno.ENOENT, f"{self.kind}: no element for this owner")
        return v

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        self.storage_update(self._owner_from_key(key), value, flags)

    def delete_elem(self, key: bytes | None) -> None:
        self.storage_delete(self._owner_from_key(key))

    def get_next_key(self, key: bytes | None) -> bytes:
        """notsupp_get_next_key(): -ENOTSUPP."""
        raise BpfError(ENOTSUPP, f"{self.kind}: get_next_key is not supported")

    # -- program side: bpf_{sk,inode,task,cgrp}_storage_get() --
    def storage_get(self, owner: Any, value: bytes | None = None, flags: int = 0,
                    gfp: int | None = None) -> bytes | None:
        """The *_storage_get helper: the value, creating it with
        BPF_LOCAL_STORAGE_GET_F_CREATE (update with BPF_NOEXIST, GFP_ATOMIC unless a
        sleepable program passes GFP_KERNEL); None for the helper's NULL."""
        owner = self._helper_owner(owner)
        if flags & ~BPF_LOCAL_STORAGE_GET_F_CREATE:
            return None
        v = self.storage_lookup(owner)
        if v is not None or not flags & BPF_LOCAL_STORAGE_GET_F_CREATE:
            return v
        init = bytes(value) if value is not None else bytes(self.attr.value_size)
        try:
            self.storage_update(owner, init, uapi.BPF_NOEXIST, gfp)
        except OSError:
            return None
        return init

    def storage_helper_delete(self, owner: Any) -> int:
        try:
            self.storage_delete(owner)
        except OSError as e:
            return -int(e.errno or 0)
        return 0


@register_map
class SkStorageMap(LocalStorageMap):
    """BPF_MAP_TYPE_SK_STORAGE (net/core/bpf_sk_storage.c)."""
    map_types = (uapi.BPF_MAP_TYPE_SK_STORAGE,)
    kind = "SK_STORAGE"

    def _mem_charge(self, owner: Any, size: int) -> bool:
        """Mirrors bpf_sk_storage_charge(): sk_omem_alloc + size < optmem_max."""
        optmem = registry(self.system).optmem_max
        if size <= optmem and owner.sk_omem_alloc + size < optmem:
            owner.sk_omem_alloc += size
            return True
        return False

    def _mem_uncharge(self, owner: Any, size: int) -> None:
        owner.sk_omem_alloc -= size

    def _owner_of(self, obj: Any, fd: int) -> Any:
        if not isinstance(obj, Socket):
            raise BpfError(errno.ENOTSOCK, f"SK_STORAGE: fd {fd} is not a socket (sockfd_lookup)")
        return obj

    def _helper_owner(self, owner: Any) -> Any:
        if not isinstance(owner, Socket):
            raise TypeError(f"bpf_sk_storage_get: expected a Socket, not {type(owner).__name__}")
        if id(owner) not in registry(self.system).sockets:
            raise ValueError("bpf_sk_storage_get: the socket belongs to another System")
        return owner

    helper_sk_storage_get = LocalStorageMap.storage_get


@register_map
class InodeStorageMap(LocalStorageMap):
    """BPF_MAP_TYPE_INODE_STORAGE (kernel/bpf/bpf_inode_storage.c)."""
    map_types = (uapi.BPF_MAP_TYPE_INODE_STORAGE,)
    kind = "INODE_STORAGE"

    def _owner_of(self, obj: Any, fd: int) -> Any:
        if not isinstance(obj, InodeFile):
            raise BpfError(errno.EBADF, f"INODE_STORAGE: fd {fd} is not a file with an inode")
        return obj.inode

    def _helper_owner(self, owner: Any) -> Any:
        if not isinstance(owner, Inode):
            raise TypeError(f"bpf_inode_storage_get: expected an Inode, not {type(owner).__name__}")
        if registry(self.system).inodes.get(owner.path) is not owner:
            raise ValueError("bpf_inode_storage_get: the inode belongs to another System")
        return owner

    helper_inode_storage_get = LocalStorageMap.storage_get


@register_map
class TaskStorageMap(LocalStorageMap):
    """BPF_MAP_TYPE_TASK_STORAGE (kernel/bpf/bpf_task_storage.c, v5.11+)."""
    map_types = (uapi.BPF_MAP_TYPE_TASK_STORAGE,)
    kind = "TASK_STORAGE"

    def _owner_of(self, obj: Any, fd: int) -> Any:
        if not isinstance(obj, PidFd):
            raise BpfError(errno.EBADF, f"TASK_STORAGE: fd {fd} is not a pidfd (pidfd_get_pid)")
        if not getattr(obj.task, "alive", True):
            raise BpfError(errno.ENOENT, f"TASK_STORAGE: the task of pidfd {fd} has exited")
        return obj.task

    def _helper_owner(self, owner: Any) -> Any:
        return self.system.own_task(owner, "bpf_task_storage_get")

    helper_task_storage_get = LocalStorageMap.storage_get


@register_map
class CgrpStorageMap(LocalStorageMap):
    """BPF_MAP_TYPE_CGRP_STORAGE (kernel/bpf/bpf_cgrp_storage.c, v6.2+)."""
    map_types = (uapi.BPF_MAP_TYPE_CGRP_STORAGE,)
    kind = "CGRP_STORAGE"

    def _owner_of(self, obj: Any, fd: int) -> Any:
        if not isinstance(obj, CgroupFile):
            raise BpfError(errno.EBADF, f"CGRP_STORAGE: fd {fd} is not a cgroup directory")
        return obj.cgroup

    def _helper_owner(self, owner: Any) -> Any:
        return self.system.own_cgroup(owner, "bpf_cgrp_storage_get")

    helper_cgrp_storage_get = LocalStorageMap.storage_get
