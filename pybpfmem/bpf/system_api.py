"""The BPF side of a System: its BPF state, objects, sysctls and the program-side
(helper) calls.

The composed ``pybpfmem.System`` inherits BpfSystemMixin next to the memory
System.  ``BpfSystemMixin.__init__`` creates the System's ``BpfState`` and
registers the BPF layer's lifecycle hooks with the memory layer: a task's exit
closes its fds and frees its local storage (exit_files(), free_task() ->
bpf_task_storage_free()); a cgroup's removal frees its local storage and
detaches its programs (bpf_cgrp_storage_free(), cgroup_bpf_release()).
"""

from __future__ import annotations

import errno
from operator import attrgetter
from typing import Any, Iterator

from ..profiles import StructSizes
from .cgroup_bpf import cgroup_release
from .errors import BpfError
from .fd import obj_put
from .kobjects import KObjectSystemMixin
from .locking import serialised
from .map import BPFTOOL_TYPE_NAMES, CHARGE_KINDS, BpfMap
from .regime import gfp_for
from .services import MemSystem
from .state import BpfState, memlock_of


@serialised(attrgetter("lock"))
class BpfSystemMixin(KObjectSystemMixin):
    """Methods a System gets for BPF objects and helpers (and netdevs / optmem_max
    from KObjectSystemMixin).  The class it is mixed into provides the memory
    services (services.MemSystem)."""

    bpf_state: BpfState

    def __init__(self, settle: bool = True) -> None:
        if not isinstance(settle, bool):
            raise TypeError(f"settle must be a bool, not {type(settle).__name__}")
        sysm: MemSystem = self  # type: ignore[assignment]
        prof = sysm.profile
        self.bpf_state = BpfState(self, prof.bpf, prof.uapi, prof.sizes, gfp_for(sysm), settle=settle)
        sysm.hooks.on_task_exit(lambda task: task.bpf_task_exit())
        sysm.hooks.on_cgroup_offline(self._bpf_cgroup_offline)

    def _bpf_cgroup_offline(self, cgroup: Any) -> None:
        """The kernel frees a cgroup's local storage (bpf_cgrp_storage_free()) and
        detaches its programs (cgroup_bpf_release()) when the cgroup is released; the
        model does both at rmdir (a simplification)."""
        self.bpf_state.kobjects.free_owner_storage(cgroup)
        self.bpf_cgroup_release(cgroup)

    def bpf_cgroup_release(self, cgroup: Any) -> None:
        """cgroup_bpf_release(): programs attached to a removed cgroup are detached
        (with their cgroup-storage instances).  The model does it at rmdir."""
        st = self.bpf_state
        cgroup_release(st, cgroup)
        st.settle_now()

    # --- options / sysctls ----------------------------------------------
    @property
    def bpf_settle(self) -> bool:
        """Whether each syscall runs pending deferred work before returning."""
        return self.bpf_state.settle

    @bpf_settle.setter
    def bpf_settle(self, value: bool) -> None:
        self.bpf_state.settle = bool(value)

    @property
    def unprivileged_bpf_disabled(self) -> int:
        """sysctl kernel.unprivileged_bpf_disabled (0, 1 or 2; default 2)."""
        return self.bpf_state.unprivileged_bpf_disabled

    @unprivileged_bpf_disabled.setter
    def unprivileged_bpf_disabled(self, value: int) -> None:
        if value not in (0, 1, 2):
            raise ValueError("unprivileged_bpf_disabled must be 0, 1 or 2")
        st = self.bpf_state
        if st.unprivileged_bpf_disabled == 1 and value != 1:
            raise BpfError(errno.EPERM, "unprivileged_bpf_disabled=1 is sticky until reboot")
        st.unprivileged_bpf_disabled = value

    @property
    def bpf_struct_sizes(self) -> StructSizes:
        return self.bpf_state.sizes

    @bpf_struct_sizes.setter
    def bpf_struct_sizes(self, sizes: StructSizes) -> None:
        """Override struct sizes (e.g. ``sys.bpf_struct_sizes = sys.bpf_struct_sizes.from_btf()``)."""
        if not isinstance(sizes, StructSizes):
            raise TypeError("expected a StructSizes")
        self.bpf_state.sizes = sizes

    def run_deferred(self) -> int:
        """Run pending work (bpf_map_free_deferred, program frees); returns the count."""
        return self.bpf_state.run_deferred()

    # --- bpffs ----------------------------------------------------------
    def bpffs_ls(self) -> list[str]:
        return sorted(self.bpf_state.bpffs.entries)

    def locked_vm(self, uid: int) -> int:
        """user_struct(uid)->locked_vm in pages: what the 5.10 regime charged (no kernel file shows it)."""
        user = self.bpf_state.rlimit.users.get(uid)
        return user.locked_vm if user else 0

    def bpffs_unlink(self, path: str) -> None:
        """unlink() of a pinned object: drops the pin's reference (bpf_any_put)."""
        st = self.bpf_state
        obj = st.bpffs.entries.pop(path, None)
        if obj is None:
            raise BpfError(errno.ENOENT, f"bpffs: {path} does not exist")
        if path in getattr(obj, "pinned", []):
            obj.pinned.remove(path)
        obj_put(st, obj)
        st.settle_now()

    # --- objects --------------------------------------------------------
    def bpf_map_by_id(self, map_id: int) -> BpfMap:
        m = self.bpf_state.map_ids.objs.get(map_id)
        if m is None:
            raise BpfError(errno.ENOENT, f"no map with id {map_id}")
        return m

    def _iter_maps(self) -> Iterator[BpfMap]:
        st = self.bpf_state
        for i in sorted(st.map_ids.objs):
            yield st.map_ids.objs[i]

    def bpf_maps(self) -> list[dict[str, Any]]:
        """bpftool `map show -j` per live map, plus "memcg" (where its runtime charges go),
        "charged" (the bytes this map holds on non-root memcgs as they count them, by
        CHARGE_KINDS: what memory.current and memory.stat show of it), "requested" (the
        sizes asked of the allocators for them) and "allocated" (all bytes, charged or
        not).  memcg_attribution() says what else a cgroup's counters hold."""
        out = []
        for m in self._iter_maps():
            requested, charged = m.charged_bytes()
            out.append({
                "id": m.id, "type": BPFTOOL_TYPE_NAMES.get(m.map_type, str(m.map_type)),
                "name": m.name, "flags": m.map_flags, "bytes_key": m.key_size,
                "bytes_value": m.value_size, "max_entries": m.max_entries,
                "bytes_memlock": memlock_of(self.bpf_state, m),
                "frozen": int(m.frozen), "pinned": list(m.pinned),
                "memcg": m.memcg_path(), "charged": charged, "requested": requested,
                "allocated": m.allocated_bytes(),
                "legacy_pages": m.memory.pages,
            })
        return out

    def memcg_attribution(self, cgroup: Any) -> dict[str, Any]:
        """Where a memory cgroup's memory.current comes from, in bytes.  Like the page
        counter it covers the cgroup's subtree (its children, dying ones included).
        "maps", "progs": id -> CHARGE_KINDS bytes each BPF object holds on the subtree's
        memcgs (as charges() counts them); "objcg_unused": what the subtree's obj_cgroups
        were charged in whole pages that no object holds (the per-cpu object stocks and
        nr_charged_bytes: the sub-page remainders of obj_cgroup_charge() and
        drain_obj_stock()); "page_stock": pages pre-charged into the per-cpu page stocks
        (consume_stock()'s batch); "cgroups": memcg id -> CHARGE_KINDS bytes of the
        structures of a memcg (mem_cgroup_alloc(): charged to its parent) held on the
        subtree; "stacks": pid -> bytes of the kernel stacks charged there; "total": their
        sum, which is memory.current when nothing else is charged there (a task's other
        memory is not modelled).
        "slab_pending": the part of the objects' slab that memory.stat does not show yet
        (v6.x object stocks batch the updates: __account_obj_stock()).  With it,
        memory.stat's slab_unreclaimable, percpu and vmalloc of a cgroup without children
        are the sums of its objects' slab, percpu and vmalloc."""
        sysm: MemSystem = self  # type: ignore[assignment]
        inside: dict[int, bool] = {}

        def in_subtree(memcg_id: int) -> bool:
            if memcg_id not in inside:
                cg = sysm.memcg_by_id(memcg_id)
                while cg is not None and cg is not cgroup:
                    cg = cg.parent
                inside[memcg_id] = cg is cgroup
            return inside[memcg_id]

        def subtree_charges(by_memcg: dict[int, dict[str, int]]) -> dict[str, int] | None:
            mine = [kinds for memcg, kinds in by_memcg.items() if in_subtree(memcg)]
            return {k: sum(kinds[k] for kinds in mine) for k in CHARGE_KINDS} if mine else None

        online = []            # the cgroup and its online descendants
        stack = [cgroup]
        while stack:
            cg = stack.pop()
            online.append(cg)
            stack.extend(cg.children)
        infos = [cg.info() for cg in online]
        # the obj_cgroups that can charge the subtree: its cgroups' own, and those the BPF
        # objects are charged through (reparented into it when their cgroup went)
        objcgs = {i["objcg"] for i in infos if i["objcg"] >= 0}
        maps = {}
        for m in self._iter_maps():
            if (got := subtree_charges(m.charges()[1])) is not None:
                maps[m.id] = got
            objcgs |= m.objcgs()
        st = self.bpf_state
        progs = {}
        for i in sorted(st.prog_ids.objs):
            p = st.prog_ids.objs[i]
            if (got := subtree_charges(p.charges()[1])) is not None:
                progs[i] = got
            objcgs |= p.objcgs()
        cgroups: dict[int, dict[str, int]] = {}
        for memcg_id, kind, addr, size in sysm.cgroup_structures():
            objcg = sysm.obj_cgroup_of(addr)[0]
            if objcg is None or not in_subtree(sysm.objcg_info(objcg)["memcg"]):
                continue                      # a child of root's: charged to nothing
            objcgs.add(objcg)
            seen = cgroups.setdefault(memcg_id, dict.fromkeys(CHARGE_KINDS, 0))
            seen[kind] += sysm.kmalloc_charged_size(addr) if kind == "slab" else sysm.pcpu_obj_full_size(size)
        stacks: dict[int, int] = {}
        for pid, addr, size in sysm.kernel_stacks():
            memcg_id = int(sysm.memcg_ids_of([addr])[0])
            if memcg_id >= 0 and memcg_id != sysm.root.id and in_subtree(memcg_id):
                stacks[pid] = size
        mine = {o for o in objcgs if in_subtree(sysm.objcg_info(o)["memcg"])}
        unused = sum(sysm.objcg_info(o)["nr_charged_bytes"] + sysm.objcg_info(o)["stock_bytes"] for o in mine)
        stocks = [sysm.stock_info(cpu) for cpu in range(sysm.nr_cpus)]
        pending = sum(s["nr_slab_unreclaimable_b"] for s in stocks if s["cached_objcg"] in mine)
        page_stock = sum(int(i["stock_pages"]) for i in infos) * sysm.page_size
        total = (sum(sum(k.values()) for k in (*maps.values(), *progs.values(), *cgroups.values()))
                 + sum(stacks.values()) + unused + page_stock)
        return {"maps": maps, "progs": progs, "cgroups": cgroups, "stacks": stacks, "objcg_unused": unused,
                "page_stock": page_stock, "slab_pending": pending, "total": total}

    def bpf_progs(self) -> list[dict[str, Any]]:
        """bpftool `prog show -j` keys per live program plus memcg / charged."""
        st = self.bpf_state
        out = []
        for i in sorted(st.prog_ids.objs):
            p = st.prog_ids.objs[i]
            out.append(p.show())
        return out

    # --- program side: helpers ------------------------------------------
    def _helper_map(self, map_id: int) -> BpfMap:
        sysm: MemSystem = self  # type: ignore[assignment]
        if sysm.current_cpu is None:
            raise BpfError(errno.EINVAL, "no current context: run helpers inside "
                                         "task.running() or system.in_interrupt()")
        return self.bpf_map_by_id(map_id)

    def helper_map_lookup_elem(self, map_id: int, key: bytes | None) -> bytes | None:
        """bpf_map_lookup_elem() helper: the value or None (NULL)."""
        m = self._helper_map(map_id)
        return m.helper_lookup_elem(key)

    def helper_map_update_elem(self, map_id: int, key: bytes | None, value: bytes,
                               flags: int = 0) -> int:
        """bpf_map_update_elem() helper in the current context; returns 0 or -errno."""
        m = self._helper_map(map_id)
        try:
            m.helper_update_elem(key, value, flags)
        except BpfError as e:
            return -e.errno
        return 0

    def helper_map_delete_elem(self, map_id: int, key: bytes | None) -> int:
        m = self._helper_map(map_id)
        try:
            m.helper_delete_elem(key)
        except BpfError as e:
            return -e.errno
        return 0

    def helper_map_push_elem(self, map_id: int, value: bytes, flags: int = 0) -> int:
        m = self._helper_map(map_id)
        try:
            getattr(m, "helper_push_elem", lambda v, f: m.helper_update_elem(None, v, f))(
                value, flags)
        except BpfError as e:
            return -e.errno
        return 0

    def helper_map_pop_elem(self, map_id: int) -> bytes | int:
        m = self._helper_map(map_id)
        try:
            return m.lookup_and_delete_elem(None)
        except BpfError as e:
            return -e.errno

    def helper_map_peek_elem(self, map_id: int, value: bytes | None = None) -> bytes | int:
        """bpf_map_peek_elem(): queue/stack head; for a bloom filter, ``value`` is
        tested for membership (0 or -ENOENT)."""
        m = self._helper_map(map_id)
        peek = getattr(m, "peek_elem", None)
        if value is not None and peek is None:
            raise BpfError(errno.EINVAL, f"map {map_id} is not a bloom filter (the verifier refuses "
                                         "a value for bpf_map_peek_elem on other maps)")
        try:
            if peek is not None and value is not None:
                peek(value)
                return 0
            return m.lookup_elem(None)
        except BpfError as e:
            return -e.errno

    def _ringbuf(self, map_id: int) -> Any:
        m = self._helper_map(map_id)
        if not hasattr(m, "reserve"):
            raise BpfError(errno.EINVAL, f"map {map_id} is not a ring buffer (the verifier "
                                         "refuses ringbuf helpers on other maps)")
        return m

    def helper_ringbuf_reserve(self, map_id: int, size: int, flags: int = 0) -> int | None:
        """bpf_ringbuf_reserve(): a record handle, or None (NULL) when it does not fit."""
        return self._ringbuf(map_id).reserve(size, flags)

    def helper_ringbuf_submit(self, map_id: int, rec: int, flags: int = 0) -> None:
        """bpf_ringbuf_submit() of a reserved record."""
        self._ringbuf(map_id).submit(rec, flags)

    def helper_ringbuf_discard(self, map_id: int, rec: int, flags: int = 0) -> None:
        """bpf_ringbuf_discard() of a reserved record."""
        self._ringbuf(map_id).discard(rec, flags)

    def helper_ringbuf_output(self, map_id: int, data: bytes, flags: int = 0) -> int:
        """bpf_ringbuf_output(): 0 or -errno (-EAGAIN when full)."""
        try:
            self._ringbuf(map_id).output(data, flags)
        except BpfError as e:
            return -e.errno
        return 0

    def _storage_get(self, map_id: int, kind: str, owner: Any, value: bytes | None,
                     flags: int) -> bytes | None:
        m = self._helper_map(map_id)
        getter = getattr(m, f"helper_{kind}_storage_get", None)
        if getter is None:
            raise BpfError(errno.EINVAL, f"map {map_id} is not a {kind} storage map (the "
                                         "verifier refuses the helper)")
        return getter(owner, value, flags)

    def helper_sk_storage_get(self, map_id: int, sk: Any, value: bytes | None = None,
                              flags: int = 0) -> bytes | None:
        """bpf_sk_storage_get(map, sk, value, flags): ``sk`` is a socket object
        (``kobjects.fd_object(task, fd)``); BPF_LOCAL_STORAGE_GET_F_CREATE (1) creates."""
        return self._storage_get(map_id, "sk", sk, value, flags)

    def helper_task_storage_get(self, map_id: int, task: Any, value: bytes | None = None,
                                flags: int = 0) -> bytes | None:
        """bpf_task_storage_get(map, task, value, flags)."""
        return self._storage_get(map_id, "task", task, value, flags)

    def helper_inode_storage_get(self, map_id: int, inode: Any, value: bytes | None = None,
                                 flags: int = 0) -> bytes | None:
        """bpf_inode_storage_get(map, inode, value, flags)."""
        return self._storage_get(map_id, "inode", inode, value, flags)

    def helper_cgrp_storage_get(self, map_id: int, cgroup: Any, value: bytes | None = None,
                                flags: int = 0) -> bytes | None:
        """bpf_cgrp_storage_get(map, cgroup, value, flags): ``cgroup`` is a MemCgroup."""
        return self._storage_get(map_id, "cgrp", cgroup, value, flags)

    def helper_get_stackid(self, map_id: int, frames: bytes, flags: int = 0) -> int:
        """bpf_get_stackid() into a STACK_TRACE map: the stack id or -errno."""
        m = self._helper_map(map_id)
        if not hasattr(m, "get_stackid"):
            raise BpfError(errno.EINVAL, f"map {map_id} is not a stack trace map")
        try:
            return m.get_stackid(frames, flags)
        except BpfError as e:
            return -e.errno
