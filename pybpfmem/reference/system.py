"""The reference System: same public API as pybpfmem.System for the mm layer.

Pure Python, written from the kernel's rules (see memcg.py, objcg.py for what
is simplified).  Additional simplifications here:
- simulated RAM is not enforced; slab pages are not modelled: every slab object
  gets an address in its own page-sized slot, so ``page_memcg_data()`` of that
  pfn says OBJCGS when the object is accounted;
- slab and large-kmalloc *node* statistics are not modelled, only memcg ones;
- a task's cached objcg reference (current->objcg, 6.x) is not modelled.
"""

from __future__ import annotations

import errno
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Iterator

from ..constants import gfp_flags, GfpFlags
from . import memcg as M
from . import objcg as O
from . import vmscan as V
from .slab import (get_order, kmalloc_bucket, kmalloc_max_cache_size, obj_full_size,
                   pcpu_aligned_size, pcpu_obj_full_size, PCPU_MIN_UNIT_SIZE, vmalloc_nr_pages)

_G_RECLAIMABLE = 0x10
_G_DIRECT_RECLAIM = 0x400
_G_NOWARN = 0x2000
_G_RETRY_MAYFAIL = 0x4000
_G_NOFAIL = 0x8000
_G_NORETRY = 0x10000
_G_ACCOUNT = 0x400000
GFP_KERNEL = 0xCC0
SLAB_RECLAIM_ACCOUNT = 0x20000
SLAB_ACCOUNT = 0x4000000
MEMCG_DATA_OBJCGS = 0x1
MEMCG_DATA_KMEM = 0x2
ZERO_SIZE_PTR = 16
MAX_PAGE_ORDER = 10
THREAD_SIZE = 16384                 # x86_64 (CONFIG_VMAP_STACK): a task's kernel stack


@dataclass(frozen=True)
class RefProfile:
    """The switches the reference needs (its own table, independent of pybpfmem.profiles)."""

    name: str
    charge_batch: int
    nr_memcg_stock: int
    obj_stock_current: bool        # allow_uncharge rule + stat caching in the object stock
    kmem_page_objcg: bool          # KMEM pages store objcg|KMEM (v5.13+)
    drain_obj_stock_direct: bool   # drain_obj_stock() uncharges pages directly (v6.16+)
    failcnt_v1_only: bool
    clamp_underflow: bool
    gfp_atomic_forces: bool        # v5.x: _G_ATOMIC forces before reclaim
    dying_task_forces: bool        # v5.11: dying task / OOM_FAILED force (gone in 5.10.y, 5.15.y)
    nofail_forces_before_oom: bool  # v5.10/v5.11: __GFP_NOFAIL forces before the memcg OOM
    gfp_high_forces: bool          # v5.18+: _G_HIGH forces on nomem
    max_event_on_force: bool
    kmem_limit_enforced: bool
    percpu_ptr_overhead: bool
    large_kmalloc_memcg_stat: bool
    stat_kernel: bool
    stat_vmalloc: bool
    nospin_no_batch: bool
    kmem_uncharge_skips_root: bool  # v6.15+: kmem uncharges leave root's counter alone
    obj_stock_task_irq_split: bool  # v5.14-v5.17: task_obj / irq_obj per cpu
    objcg_release_via_stock: bool   # <= v6.15: obj_cgroup_release() -> refill_stock()
    objcg_put_after_stock_drain: bool  # v5.19+: drain_local_stock() puts after drain_stock()
    sync_high_enforcement: bool
    objcg_pins_memcg: bool         # v5.11: a reparented objcg holds a css ref on its memcg
    objcg_pinned_by_orig_memcg: bool   # 6.8+: memcg->orig_objcg
    kvmalloc_gfp_kernel_only: bool     # < v5.17 kvmalloc_node(): no vmalloc fallback w/o GFP_KERNEL
    kvmalloc_kmalloc_no_reclaim: bool  # v6.16: the kmalloc attempt above a page may not reclaim
    has_gfp_atomic: bool               # __GFP_ATOMIC exists (removed in v6.3)
    nowait_nowarn: bool                # GFP_NOWAIT includes __GFP_NOWARN (v6.8)
    has_memory_peak: bool              # cgroup v2 memory.peak (v5.19)
    reclaim_target_unprotected: bool   # the reclaim target's own emin/elow ignored (v6.3)
    reclaim_partial_walk: bool         # reclaim walks stop at the goal, full-walk retry (v6.11)
    memcg_reclaim_counts_slab: bool    # reclaim_state counts slab pages in memcg reclaim (< v6.4)
    shrinker_deferred_per_memcg: bool  # per-memcg nr_deferred >> priority (v5.13)
    sb_scan_exact_total: bool          # super_cache_scan() without the "+ 1" (v6.16)
    kpagecgroup_folio: bool            # a tail page reports its head's owner (v6.4)
    memcg_allocs: tuple[tuple[str, int], ...]   # mem_cgroup_alloc()'s GFP_KERNEL_ACCOUNT objects
    dentry_size: int                   # sizeof(struct dentry)
    stat_pgscan_direct: bool           # memory.stat prints pgscan_direct / pgsteal_direct


_5X = dict(charge_batch=32, nr_memcg_stock=1, obj_stock_current=False, kmem_page_objcg=False,
           drain_obj_stock_direct=False, failcnt_v1_only=False, clamp_underflow=False,
           gfp_atomic_forces=True, dying_task_forces=False, nofail_forces_before_oom=True,
           gfp_high_forces=False, max_event_on_force=False,
           kmem_limit_enforced=True, percpu_ptr_overhead=False, large_kmalloc_memcg_stat=True,
           stat_kernel=False, stat_vmalloc=False, nospin_no_batch=False,
           kmem_uncharge_skips_root=False, obj_stock_task_irq_split=False,
           objcg_release_via_stock=True, objcg_put_after_stock_drain=False,
           sync_high_enforcement=False, objcg_pins_memcg=True, objcg_pinned_by_orig_memcg=False,
           kvmalloc_gfp_kernel_only=True, kvmalloc_kmalloc_no_reclaim=False, has_gfp_atomic=True, nowait_nowarn=False,
           has_memory_peak=False, reclaim_target_unprotected=False, reclaim_partial_walk=False,
           memcg_reclaim_counts_slab=True, shrinker_deferred_per_memcg=False,
           sb_scan_exact_total=False, kpagecgroup_folio=False,
           # v5.10 (Debian 11 BTF): vmstats_local + vmstats_percpu (struct memcg_vmstats_percpu,
           # 1112 bytes), per node lruvec_stat_local + lruvec_stat_cpu (struct lruvec_stat, 296)
           memcg_allocs=(("percpu", 1112), ("percpu", 1112), ("percpu", 296), ("percpu", 296)),
           dentry_size=192, stat_pgscan_direct=False)
_R510 = RefProfile(name="5.10", **_5X)
# v5.11 has one more node stat item (NR_PAGETABLE, f0c0c115fb81): every struct 8 bytes
# larger (the v5.11 source with the 5.10 config: 1120 and 304)
_R511 = replace(_R510, name="5.11", dying_task_forces=True, large_kmalloc_memcg_stat=False,
                memcg_allocs=(("percpu", 1120), ("percpu", 1120), ("percpu", 304), ("percpu", 304)))
# 5.15: per-memcg shrinker deferral (v5.13); rstat: one percpu memcg_vmstats_percpu (2296),
# per node one percpu lruvec_stats_percpu (624) (5.15.215 compiled with Ubuntu's config)
_R515 = replace(_R510, name="5.15", obj_stock_current=True, kmem_page_objcg=True,
                clamp_underflow=True, nofail_forces_before_oom=False,
                obj_stock_task_irq_split=True, objcg_pins_memcg=False,
                shrinker_deferred_per_memcg=True,
                memcg_allocs=(("percpu", 2296), ("percpu", 624)))
# 6.1 (Debian 12 BTF): memcg->vmstats is kzalloc'ed GFP_KERNEL (not charged): 1096 + 688
_R61 = replace(_R515, name="6.1", charge_batch=64, gfp_atomic_forces=False, gfp_high_forces=True,
               max_event_on_force=True, kmem_limit_enforced=False, percpu_ptr_overhead=True,
               stat_kernel=True, stat_vmalloc=True, obj_stock_task_irq_split=False,
               objcg_put_after_stock_drain=True,
               sync_high_enforcement=True, kvmalloc_gfp_kernel_only=False, has_memory_peak=True,
               memcg_allocs=(("percpu", 1096), ("percpu", 688)), stat_pgscan_direct=True)
# 6.6: v6.3 (target's stale protection ignored) and v6.4 (shrinker pages not counted in memcg
# reclaim, /proc/kpagecgroup through the folio); 6.6.150 compiled: 1216 + 688
_R66 = replace(_R61, name="6.6", has_gfp_atomic=False, reclaim_target_unprotected=True,
               memcg_reclaim_counts_slab=False, kpagecgroup_folio=True,
               memcg_allocs=(("percpu", 1216), ("percpu", 688)))
# 6.8.1 (Ubuntu 24.04) compiled: 1280 + 736
_R68 = replace(_R66, name="6.8", objcg_pinned_by_orig_memcg=True, nowait_nowarn=True,
               memcg_allocs=(("percpu", 1280), ("percpu", 736)))
# 6.12 (Debian 13 BTF, CONFIG_MEMCG_V1 off: no memcg1_events_percpu): v6.10 kzallocs vmstats
# (1520) and per node lruvec_stats (744) with GFP_KERNEL_ACCOUNT, beside the percpu 1088 and
# 496; v6.11 stops a reclaim walk at its goal
_R612 = replace(_R68, name="6.12", reclaim_partial_walk=True,
                memcg_allocs=(("kmalloc", 1520), ("percpu", 1088), ("kmalloc", 744),
                              ("percpu", 496)))
# 6.18.44 BTF: kzalloc memcg_vmstats (1712), percpu memcg_vmstats_percpu (1216), percpu
# memcg1_events_percpu (24, CONFIG_MEMCG_V1), per node kzalloc lruvec_stats (792) and percpu
# lruvec_stats_percpu (528)
_R618 = replace(_R612, name="6.18", nr_memcg_stock=7, drain_obj_stock_direct=True,
                failcnt_v1_only=True, nospin_no_batch=True, kmem_uncharge_skips_root=True,
                objcg_release_via_stock=False, sb_scan_exact_total=True,
                kvmalloc_kmalloc_no_reclaim=True,
                memcg_allocs=(("kmalloc", 1712), ("percpu", 1216), ("percpu", 24),
                              ("kmalloc", 792), ("percpu", 528)))
PROFILES: dict[str, RefProfile] = {p.name: p for p in (_R510, _R511, _R515, _R61, _R66, _R68,
                                                       _R612, _R618)}


def _err(code: int, msg: str) -> OSError:
    return OSError(code, msg)


def memparse(text: str, page_size: int, counter_max: int, max_keyword: str) -> int:
    """mirrors page_counter_memparse(): 'max' keyword, memparse() suffixes, rounds down."""
    buf = text.strip()
    if buf == max_keyword:
        return counter_max
    i, base = 0, 10
    if buf[:2].lower() == "0x" and len(buf) > 2 and buf[2] in "0123456789abcdefABCDEF":
        i, base = 2, 16
    elif buf[:1] == "0":
        base = 8
    digits = "0123456789abcdef"[:base]
    val = 0
    while i < len(buf) and buf[i].lower() in digits:
        val = (val * base + digits.index(buf[i].lower())) & (2**64 - 1)
        i += 1
    if i < len(buf) and buf[i] in "kKmMgGtTpPeE":
        val = (val << (10 * ("kmgtpe".index(buf[i].lower()) + 1))) & (2**64 - 1)
        i += 1
    if i != len(buf):
        raise _err(errno.EINVAL, f"page_counter_memparse: trailing characters in {text!r}")
    return min(val // page_size, counter_max)


class MemCgroup:
    """cgroupfs-style view of one memcg (the reference's counterpart of pybpfmem.MemCgroup)."""

    def __init__(self, S: System, st: M.MemCgroupState) -> None:
        self._S = S
        self._st = st

    # -- tree
    name = property(lambda self: self._st.name)
    id = property(lambda self: self._st.id)
    online = property(lambda self: self._st.online)
    dying = property(lambda self: self._st.dying)

    @property
    def parent(self) -> MemCgroup | None:
        p = self._st.parent
        return None if p is None else self._S._wrap(p)

    @property
    def children(self) -> list[MemCgroup]:
        return [self._S._wrap(c) for c in self._st.children if c.online]

    @property
    def path(self) -> str:
        names = [m.name for m in reversed(self._st.ancestors()) if not m.is_root]
        return "/" + "/".join(names)

    def mkdir(self, name: str) -> MemCgroup:
        S, st = self._S, self._st
        if not st.online:
            raise _err(errno.ENOENT, "mkdir under a removed cgroup")
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"bad cgroup name {name!r}")
        if any(c.name == name and c.online for c in st.children):
            raise _err(errno.EEXIST, f"cgroup {name} exists")
        S._css_free_work()
        # mem_cgroup_css_alloc(): set_active_memcg(parent) around mem_cgroup_alloc(), whose
        # GFP_KERNEL_ACCOUNT objects go to the parent, on the current cpu (0 without one)
        cpu = S.current_cpu or 0
        structs: list[tuple[str, int]] = []
        try:
            with S._kthread(cpu, st):
                for kind, size in S.profile.memcg_allocs:
                    if kind == "kmalloc":
                        structs.append((kind, S._slab_alloc(size, GFP_KERNEL | _G_ACCOUNT)))
                    else:
                        structs.append((kind, S.alloc_percpu(size, 8, GFP_KERNEL | _G_ACCOUNT)))
        except OSError:
            for kind, addr in structs:
                S._free_struct(kind, addr, cpu)
            raise
        child = M.MemCgroupState(S, name, st, S._next_memcg_id())
        child.structs = structs
        st.children.append(child)
        S.memcgs[child.id] = child
        O.memcg_online_kmem(S, child)
        return S._wrap(child)

    def rmdir(self) -> None:
        """cgroup_rmdir() then mem_cgroup_css_offline()."""
        S, st = self._S, self._st
        if st.is_root:
            raise _err(errno.EBUSY, "cannot remove the root cgroup")
        if not st.online:
            raise _err(errno.ENOENT, "cgroup already removed")
        if any(c.online for c in st.children):
            raise _err(errno.EBUSY, "cgroup_rmdir: cgroup has children")
        if any(t.alive and t.cg_state is st for t in S.tasks.values()):
            raise _err(errno.EBUSY, "cgroup_rmdir: cgroup has tasks")
        st.online = False
        # kill_css() pins the css until css_killed_work_fn() has run the offline: a put
        # during the offline's drain cannot free the memcg
        M.css_get(st)
        st.memory.set_min(0)
        st.memory.set_low(0)
        V.reparent_list_lrus(S, st)
        O.memcg_reparent_objcgs(S, st, cpu=None)   # memcg_offline_kmem()
        M.drain_all_stock(S, st)
        M.css_put(S, st)
        S._css_free_work()

    # -- charging primitives
    def _ctx(self, cpu: int) -> tuple[Any, bool]:
        S = self._S
        S._check_cpu(cpu)
        ctx = S._ctx[-1] if S._ctx else None
        if ctx is not None and ctx[1] == cpu:
            return (ctx[2], ctx[0] == "irq")
        return (None, False)

    def try_charge(self, nr_pages: int, gfp: int, cpu: int = 0) -> None:
        S = self._S
        S._check_nr(nr_pages)
        task, irq = self._ctx(cpu)
        if M.try_charge(S, self._st, gfp, nr_pages, cpu, task, irq):
            raise _err(errno.ENOMEM, f"try_charge: {nr_pages} pages over memory.max of {self.path}")
        M.css_get(self._st, nr_pages)     # like a folio charge, the charge's owner pins the css
        S.raw_charges[self._st.id] = S.raw_charges.get(self._st.id, 0) + nr_pages

    def uncharge(self, nr_pages: int, cpu: int = 0) -> None:
        """Gives back pages taken with try_charge() through this cpu's stock (refill_stock(),
        as the kmem uncharge paths do; the contract's choice for the raw primitive)."""
        S = self._S
        S._check_nr(nr_pages)
        S._check_cpu(cpu)
        have = S.raw_charges.get(self._st.id, 0)
        if nr_pages > have:
            raise _err(errno.EINVAL, f"uncharge of {nr_pages} pages, only {have} charged")
        S.raw_charges[self._st.id] = have - nr_pages
        if not self._st.is_root:
            M.refill_stock(S, self._st, nr_pages, cpu)
        M.css_put(S, self._st, nr_pages)

    def charge_user(self, nr_pages: int, gfp: int = GFP_KERNEL, cpu: int = 0,
                    file: bool = False) -> None:
        """mem_cgroup_charge() of a user folio of nr_pages pages."""
        S, st = self._S, self._st
        S._check_nr(nr_pages)
        if not st.online:
            raise _err(errno.ENOENT, "charge to a removed cgroup")
        task, irq = self._ctx(cpu)
        if M.try_charge(S, st, gfp, nr_pages, cpu, task, irq):
            raise _err(errno.ENOMEM, f"mem_cgroup_charge: {nr_pages} pages over memory.max")
        M.css_get(st, nr_pages)
        key = "file" if file else "anon"
        if file:
            st.file_pages += nr_pages
        else:
            st.anon_pages += nr_pages
        M.mod_memcg_state(st, key, nr_pages * S.page_size)

    def uncharge_user(self, nr_pages: int, file: bool = False) -> None:
        """uncharge_batch(): direct uncharge of user pages."""
        S, st = self._S, self._st
        S._check_nr(nr_pages)
        if st.freed:
            raise _err(errno.ENOENT, "uncharge_user on a freed memcg")
        have = st.file_pages if file else st.anon_pages
        if nr_pages > have:
            raise _err(errno.EINVAL, f"uncharge_user of {nr_pages} pages, only {have} charged")
        if file:
            st.file_pages -= nr_pages
        else:
            st.anon_pages -= nr_pages
        M.mod_memcg_state(st, "file" if file else "anon", -nr_pages * S.page_size)
        if not st.is_root:
            M.memcg_uncharge(S, st, nr_pages)
        M.css_put(S, st, nr_pages)

    @property
    def usage_pages(self) -> int:
        return self._st.memory.usage

    def info(self) -> dict[str, Any]:
        return M.info(self._st)

    # -- files
    def _fmt(self, pages: int) -> str:
        return "max" if pages == self._S.page_counter_max else str(pages * self._S.page_size)

    def read(self, name: str) -> str:
        S, c = self._S, self._st.memory
        if name == "memory.stat":
            return "".join(f"{k} {v}\n" for k, v in self.stat().items())
        if self._st.is_root:
            raise _err(errno.ENOENT, f"{name} does not exist on the root cgroup")
        if name in ("memory.events", "memory.events.local"):
            ev = self.events() if name == "memory.events" else self.events_local()
            return "".join(f"{k} {v}\n" for k, v in ev.items())
        if name == "memory.peak" and not S.profile.has_memory_peak:
            raise _err(errno.ENOENT, "memory.peak exists since v5.19")
        simple = {"memory.current": c.usage * S.page_size, "memory.peak": c.watermark * S.page_size}
        if name in simple:
            return f"{simple[name]}\n"
        lim = {"memory.max": c.max, "memory.high": c.high, "memory.low": c.low, "memory.min": c.min}
        if name in lim:
            return self._fmt(lim[name]) + "\n"
        raise _err(errno.ENOENT, f"no file {name}")

    def write(self, name: str, text: str) -> None:
        S, st = self._S, self._st
        if st.is_root or name not in ("memory.max", "memory.high", "memory.low", "memory.min"):
            raise _err(errno.ENOENT, f"no writable file {name}")
        val = memparse(text, S.page_size, S.page_counter_max, "max")
        if name == "memory.min":
            st.memory.set_min(val)
        elif name == "memory.low":
            st.memory.set_low(val)
        elif name == "memory.high":
            self._write_high(val)
        else:
            self._write_max(val)
        S._css_free_work()

    def _write_high(self, high: int) -> None:
        """mirrors memory_high_write(): drain once, bounded reclaim, never fails."""
        S, st = self._S, self._st
        if S.profile.sync_high_enforcement:    # current: set high first
            st.memory.high = high
        drained, retries = False, M.MAX_RECLAIM_RETRIES
        while True:
            usage = st.memory.usage
            if usage <= high:
                break
            if not drained:
                M.drain_all_stock(S, st)
                drained = True
                continue
            got = M.try_to_free_mem_cgroup_pages(S, st, usage - high, 0, GFP_KERNEL)
            if not got:
                if not retries:
                    break
                retries -= 1
        st.memory.high = high

    def _write_max(self, mx: int) -> None:
        """mirrors memory_max_write(): set, drain once, reclaim, then OOM; always succeeds."""
        S, st = self._S, self._st
        st.memory.max = mx
        drained, reclaims = False, M.MAX_RECLAIM_RETRIES
        while True:
            usage = st.memory.usage
            if usage <= mx:
                break
            if not drained:
                M.drain_all_stock(S, st)
                drained = True
                continue
            if reclaims:
                if not M.try_to_free_mem_cgroup_pages(S, st, usage - mx, 0, GFP_KERNEL):
                    reclaims -= 1
                continue
            M.memcg_memory_event(S, st, "oom")
            if not M.mem_cgroup_out_of_memory(S, st):
                break

    def stat(self) -> dict[str, int]:
        s = self._st.stat
        p = self._S.profile
        keys = ["anon", "file"] + (["kernel"] if p.stat_kernel else []) + ["kernel_stack", "percpu", "sock"]
        keys += (["vmalloc"] if p.stat_vmalloc else []) + ["slab_reclaimable", "slab_unreclaimable"]
        out = {k: s.get(k, 0) for k in keys}
        out["slab"] = out["slab_reclaimable"] + out["slab_unreclaimable"]
        # reclaim events (direct reclaim only): pgscan/pgsteal are the sums of the kinds
        out["pgscan"], out["pgsteal"] = s.get("pgscan", 0), s.get("pgsteal", 0)
        if p.stat_pgscan_direct:
            out["pgscan_direct"], out["pgsteal_direct"] = out["pgscan"], out["pgsteal"]
        return out

    def events(self) -> dict[str, int]:
        return dict(self._st.events)

    def events_local(self) -> dict[str, int]:
        return dict(self._st.events_local)

    def __repr__(self) -> str:
        return f"<ref MemCgroup {self.path}{' dying' if self.dying else ''}>"


class Task:
    """A simulated process or thread (the reference's counterpart of pybpfmem.Task), with
    its kernel stack: THREAD_SIZE (16 KiB, at least a page) of pages each charged as a
    one-page KMEM page to the memcg it is forked in (memcg_charge_kernel_stack()) and
    counted in kernel_stack (account_kernel_stack()), until it exits."""

    def __init__(self, S: System, pid: int, uid: int, cg: M.MemCgroupState,
                 leader: Task | None = None) -> None:
        self._S = S
        self.pid = pid
        self.uid = uid
        self.cg_state = cg
        self.leader = leader
        self.threads: list[Task] = []
        self.alive = True
        self.killed = False
        self.active_memcg: M.MemCgroupState | None = None
        self.nr_pages_over_high = 0
        self.stack: list[dict[str, Any]] = []
        cpu = S.current_cpu or 0
        try:
            with S._kthread(cpu, cg):
                for _ in range(max(1, THREAD_SIZE // S.page_size)):
                    flags, owner = S._kmem_charge_page(GFP_KERNEL | _G_ACCOUNT, 1)
                    self.stack.append(dict(kind="stack", nr=1, flags=flags, owner=owner))
        except OSError:
            for rec in self.stack:
                S._kmem_uncharge_page(rec, cpu)
            # the failed fork drops its reference to the memcg: a flush point, where
            # the memcgs freed by try_charge's stock drain free their structures
            S._css_free_work()
            raise
        for rec in self.stack:
            M.mod_memcg_state(S._page_memcg(rec), "kernel_stack", S.page_size)

    def _free_stack(self) -> None:
        S = self._S
        cpu = S.current_cpu or 0
        for rec in self.stack:
            M.mod_memcg_state(S._page_memcg(rec), "kernel_stack", -S.page_size)
        for rec in self.stack:
            S._kmem_uncharge_page(rec, cpu)
        self.stack = []

    def clone_thread(self) -> Task:
        if not self.alive:
            raise _err(errno.ESRCH, "task has exited")
        S = self._S
        lead = self.leader or self
        S._ids["pid"] += 1
        t = Task(S, S._ids["pid"], self.uid, self.cg_state, leader=lead)
        S.tasks[t.pid] = t
        lead.threads.append(t)
        return t

    @property
    def cgroup(self) -> MemCgroup:
        return self._S._wrap(self.cg_state)

    def migrate(self, cg: MemCgroup) -> None:
        if not self.alive:
            raise _err(errno.ESRCH, "task has exited")
        if not cg._st.online:
            raise _err(errno.ENOENT, "migrate to a removed cgroup")
        lead = self.leader or self     # cgroup.procs moves the whole thread group
        moved = [t for t in [lead] + lead.threads if t.alive and t.cg_state is not cg._st]
        for t in moved:
            t.cg_state = cg._st        # v2: existing charges stay where they are
        if moved:                      # the old css put: a flush point (a task already
            self._S._css_free_work()   # there keeps its css_set: no put)

    def exit(self) -> None:
        """A thread exits alone, a process with its threads (exit_group)."""
        if not self.alive:
            raise _err(errno.ESRCH, "task has already exited")
        for t in (self.threads if self.leader is None else []):
            if t.alive:
                t.alive = False
                t._free_stack()
        self.alive = False
        self._free_stack()
        self._S._css_free_work()       # cgroup_exit()'s css put: a flush point

    @contextmanager
    def running(self, cpu: int = 0) -> Iterator[Task]:
        S = self._S
        S._check_cpu(cpu)
        if not self.alive:
            raise _err(errno.ESRCH, "task has exited")
        S._ctx.append(("task", cpu, self))
        try:
            yield self
        finally:
            S._ctx.pop()
            M.handle_over_high(S, self, cpu)   # return to user: mem_cgroup_handle_over_high()


class KmemCache:
    """kmem_cache_create() result."""

    def __init__(self, S: System, name: str, size: int, flags: int) -> None:
        self._S, self.name, self.size, self.flags = S, name, size, flags
        # SLAB_RECLAIM_ACCOUNT: the memcg-aware list_lru of unused objects (an ordered set
        # per memcg, oldest first), where each object is, and the shrinker's deferred work
        # (per memcg, or one count under the key None)
        self.lru: dict[M.MemCgroupState, dict[int, None]] = {}
        self.where: dict[int, M.MemCgroupState] = {}
        self.deferred: dict[M.MemCgroupState | None, int] = {}

    def alloc(self, gfp: int) -> int:
        return self._S._slab_alloc(self.size, gfp, self.flags, cache=self)

    def free(self, addr: int) -> None:
        self.lru_del(addr)
        self._S.kfree(addr)

    def _lru_memcg(self, addr: int) -> M.MemCgroupState:
        rec = self._S._objects.get(addr)
        if not self.flags & SLAB_RECLAIM_ACCOUNT or rec is None or rec.get("cache") is not self:
            raise _err(errno.EINVAL, f"{addr:#x} is not an object of reclaimable cache {self.name}")
        o = rec["objcg"]
        return self._S._root if o is None else o.memcg

    def lru_add(self, addr: int) -> bool:
        """list_lru_add_obj(): to the tail of the list of the memcg it is charged to."""
        m = self._lru_memcg(addr)
        if addr in self.where:
            return False
        self.lru.setdefault(m, {})[addr] = None
        self.where[addr] = m
        return True

    def lru_del(self, addr: int) -> bool:
        m = self.where.pop(addr, None)
        if m is None:
            return False
        del self.lru[m][addr]
        return True

    def lru_count(self, cg: MemCgroup) -> int:
        return len(self.lru.get(cg._st, []))


class System:
    """The reference model of one simulated machine."""

    def __init__(self, nr_cpus: int = 2, page_size: int = 4096, profile: str = "6.18",
                 cgroup: str = "v2", ram: str | int = "8G", oom_kill: bool = True,
                 memory_recursiveprot: bool = False) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}")
        if cgroup not in ("v1", "v2"):
            raise ValueError(f"cgroup must be 'v1' or 'v2', not {cgroup!r}")
        if not 1 <= nr_cpus <= 1024 or page_size not in (4096, 16384, 65536):
            raise ValueError("bad nr_cpus or page_size")
        self.profile = PROFILES[profile]
        self.nr_cpus = nr_cpus
        self.page_size = page_size
        self.cgroup_version = cgroup
        self.oom_kill = oom_kill
        self.memory_recursiveprot = memory_recursiveprot
        self.caches: list[KmemCache] = []
        self.css_free_pending: list[M.MemCgroupState] = []
        self._kthread_active: list[M.MemCgroupState] = []
        self.gfp: GfpFlags = gfp_flags(has_gfp_atomic=self.profile.has_gfp_atomic,
                                       nowait_nowarn=self.profile.nowait_nowarn)
        self.page_counter_max = ((1 << 63) - 1) // page_size
        self.page_stock = [M.PageStock(self.profile.nr_memcg_stock) for _ in range(nr_cpus)]
        self.obj_stock = [O.ObjStock() for _ in range(nr_cpus)]
        self.irq_obj_stock = [O.ObjStock() for _ in range(nr_cpus)]   # v5.14-v5.17 irq_obj
        self._ids = {"memcg": 0, "objcg": 0, "pid": 0, "addr": 0}
        self.memcgs: dict[int, M.MemCgroupState] = {}
        self.objcgs: dict[int, O.ObjCgroup] = {}
        self.tasks: dict[int, Task] = {}
        self.raw_charges: dict[int, int] = {}
        self.release_warnings = 0
        self._wrappers: dict[int, MemCgroup] = {}
        self._ctx: list[tuple[str, int, Task | None]] = []
        self._int_active: list[M.MemCgroupState | None] = [None] * nr_cpus
        self._objects: dict[int, dict[str, Any]] = {}      # addr -> allocation record
        self._pages: dict[int, dict[str, Any]] = {}        # pfn -> page record
        root = M.MemCgroupState(self, "", None, self._next_memcg_id())
        self.memcgs[root.id] = root
        self._root = root
        self.memcg_of_counter: dict[int, M.MemCgroupState] = {}

    # -- ids and wrappers
    def _next_memcg_id(self) -> int:
        self._ids["memcg"] += 1
        return self._ids["memcg"]

    def next_objcg_id(self) -> int:
        self._ids["objcg"] += 1
        return self._ids["objcg"]

    def _wrap(self, st: M.MemCgroupState) -> MemCgroup:
        self.memcg_of_counter[id(st.memory)] = st
        w = self._wrappers.get(st.id)
        if w is None:
            w = self._wrappers[st.id] = MemCgroup(self, st)
        return w

    @property
    def root(self) -> MemCgroup:
        return self._wrap(self._root)

    def memcg_by_id(self, mid: int) -> MemCgroup:
        st = self.memcgs.get(mid)
        if st is None or st.freed:
            raise _err(errno.ENOENT, f"no memcg with id {mid}")
        return self._wrap(st)

    @property
    def dying_cgroups(self) -> int:
        return sum(1 for m in self.memcgs.values() if m.dying)

    # -- validation
    def _check_cpu(self, cpu: int) -> None:
        if not isinstance(cpu, int) or isinstance(cpu, bool):
            raise TypeError("cpu must be an int")
        if not 0 <= cpu < self.nr_cpus:
            raise ValueError(f"cpu {cpu} out of range 0..{self.nr_cpus - 1}")

    @staticmethod
    def _check_nr(nr: int) -> None:
        if not isinstance(nr, int) or isinstance(nr, bool):
            raise TypeError("nr_pages must be an int")
        if not 1 <= nr <= 1 << 31:
            raise ValueError(f"nr_pages {nr} out of range")

    # -- tasks and contexts
    def spawn(self, cgroup: MemCgroup | None = None, uid: int = 0) -> Task:
        cg = (cgroup or self.root)._st
        if not cg.online:
            raise _err(errno.ENOENT, "spawn into a removed cgroup")
        self._ids["pid"] += 1
        t = Task(self, self._ids["pid"], uid, cg)
        self.tasks[t.pid] = t
        return t

    @contextmanager
    def in_interrupt(self, cpu: int = 0) -> Iterator[None]:
        self._check_cpu(cpu)
        self._ctx.append(("irq", cpu, None))
        try:
            yield
        finally:
            self._ctx.pop()

    @contextmanager
    def active_memcg(self, cg: MemCgroup | None) -> Iterator[None]:
        """mirrors set_active_memcg(): the interrupt slot of the cpu, or the task's field."""
        if not self._ctx:
            raise _err(errno.EINVAL, "no current context for set_active_memcg")
        kind, cpu, task = self._ctx[-1]
        new = None if cg is None else cg._st
        if kind == "irq":
            old, self._int_active[cpu] = self._int_active[cpu], new
        else:
            assert task is not None
            old, task.active_memcg = task.active_memcg, new
        try:
            yield
        finally:
            if kind == "irq":
                self._int_active[cpu] = old
            else:
                assert task is not None
                task.active_memcg = old

    def in_irq_now(self) -> bool:
        """Whether the innermost context is an interrupt (in_task() false)."""
        return bool(self._ctx) and self._ctx[-1][0] == "irq"

    @property
    def current_cpu(self) -> int | None:
        return self._ctx[-1][1] if self._ctx else None

    @property
    def current_task(self) -> Task | None:
        return self._ctx[-1][2] if self._ctx else None

    def _current(self, alloc: bool) -> tuple[int, Task | None, bool, M.MemCgroupState | None]:
        """(cpu, task, in_irq, active memcg) of the innermost context; kworker on cpu 0."""
        if not self._ctx:
            if alloc:
                raise _err(errno.EINVAL, "no current context: use task.running() or in_interrupt()")
            return (0, None, False, None)
        kind, cpu, task = self._ctx[-1]
        if kind == "irq":
            return (cpu, None, True, self._int_active[cpu])
        if kind == "kthread":
            return (cpu, None, False, self._kthread_active[-1])
        assert task is not None
        return (cpu, task, False, task.active_memcg)

    @contextmanager
    def _kthread(self, cpu: int, memcg: M.MemCgroupState) -> Iterator[None]:
        """Kernel work on ``cpu`` charging ``memcg`` (set_active_memcg()): mkdir's
        structures, a fork's stack."""
        self._ctx.append(("kthread", cpu, None))
        self._kthread_active.append(memcg)
        try:
            yield
        finally:
            self._kthread_active.pop()
            self._ctx.pop()

    def _free_struct(self, kind: str, addr: int, cpu: int) -> None:
        if kind == "kmalloc":
            self._slab_free(addr, self._objects[addr], cpu)
        else:
            self._free_percpu(addr, cpu)

    def _css_free_work(self) -> None:
        """__mem_cgroup_free() of memcgs freed since the last call: their structures
        are freed on cpu 0 (the frees may free more memcgs: those too)."""
        while self.css_free_pending:
            m = self.css_free_pending.pop(0)
            for kind, addr in m.structs:
                self._free_struct(kind, addr, 0)
            m.structs = []

    def _charge_target(self) -> tuple[int, Task | None, bool, M.MemCgroupState | None]:
        """memcg_kmem_bypass() + active memcg / task memcg (no walk yet)."""
        cpu, task, irq, active = self._current(alloc=True)
        if active is not None:
            return cpu, task, irq, active
        if irq or task is None:
            return cpu, task, irq, None
        return cpu, task, irq, task.cg_state

    def get_obj_cgroup_from_current(self) -> int | None:
        cpu, task, irq, m = self._charge_target()
        o = O.get_obj_cgroup_from_memcg(m)
        if o is None:
            return None
        O.obj_cgroup_get(o)
        return o.id

    def obj_cgroup_put(self, objcg: int) -> None:
        """A reference held outside any cpu context (the core's bm_obj_cgroup_put()): a
        release it triggers uncharges directly (no page stock)."""
        O.obj_cgroup_put(self, self._objcg(objcg), None)
        self._css_free_work()

    def objcg_memcg(self, objcg: int) -> MemCgroup:
        return self._wrap(self._objcg(objcg).memcg)

    def _objcg(self, oid: int) -> O.ObjCgroup:
        o = self.objcgs.get(oid)
        if o is None or o.released:
            raise _err(errno.EINVAL, f"no live objcg {oid}")
        return o

    def memcg_get(self, cg: MemCgroup) -> None:
        if cg._st.freed:
            raise _err(errno.EINVAL, "memcg already freed")
        M.css_get(cg._st)

    def memcg_put(self, cg: MemCgroup) -> None:
        if cg._st.css_refs <= 0:
            raise _err(errno.EINVAL, "memcg_put without a reference")
        M.css_put(self, cg._st)
        self._css_free_work()

    def drain_all_stock(self, cg: MemCgroup | None = None) -> None:
        while True:
            self._css_free_work()
            M.drain_all_stock(self, (cg or self.root)._st)
            if not self.css_free_pending:
                return

    def drain_local_stock(self, cpu: int) -> None:
        """drain_local_stock() on ``cpu``: its object stock, then every page slot (a slot
        with no pages too, whose css reference may be the last of a dying memcg)."""
        from .objcg import drain_obj_stock
        drain_obj_stock(self, cpu)
        M.drain_local_page_stock(self, cpu)
        self._css_free_work()

    # -- page allocator with kmem charging
    def _new_addr(self, npages: int) -> int:
        pfn = 0x1000 + self._ids["addr"]
        self._ids["addr"] += npages
        return pfn

    def _kmem_charge_page(self, gfp: int, nr: int) -> tuple[int, Any]:
        """mirrors __memcg_kmem_charge_page(): returns (memcg_data flags, owner) or raises."""
        if not gfp & _G_ACCOUNT:
            return 0, None
        cpu, task, irq, m = self._charge_target()
        if self.profile.kmem_page_objcg:
            o = O.get_obj_cgroup_from_memcg(m)
            if o is None:
                return 0, None
            if O.charge_pages(self, o.memcg, gfp, nr, cpu, task, irq):
                raise _err(errno.ENOMEM, f"obj_cgroup_charge_pages: {nr} pages refused")
            O.obj_cgroup_get(o)
            return MEMCG_DATA_KMEM, o
        if m is None or m.is_root:
            return 0, None
        if O.charge_pages(self, m, gfp, nr, cpu, task, irq):
            raise _err(errno.ENOMEM, f"__memcg_kmem_charge: {nr} pages refused")
        M.css_get(m)
        return MEMCG_DATA_KMEM, m

    def _kmem_uncharge_page(self, rec: dict[str, Any], cpu: int) -> None:
        """mirrors __memcg_kmem_uncharge_page(): via the memcg/objcg stored in the page."""
        owner, nr = rec["owner"], rec["nr"]
        if owner is None:
            return
        p = self.profile
        if p.kmem_page_objcg:
            O.uncharge_pages(self, owner.memcg, nr, cpu, via_stock=True)
            O.obj_cgroup_put(self, owner, cpu)
        else:
            O.uncharge_pages(self, owner, nr, cpu, via_stock=True)
            M.css_put(self, owner)

    def _page_memcg(self, rec: dict[str, Any]) -> M.MemCgroupState | None:
        owner = rec["owner"]
        if owner is None:
            return None
        return owner.memcg if isinstance(owner, O.ObjCgroup) else owner

    def alloc_pages(self, order: int, gfp: int) -> int:
        if not 0 <= order <= MAX_PAGE_ORDER:
            raise _err(errno.EINVAL, f"alloc_pages: order {order} > MAX_PAGE_ORDER")
        flags, owner = self._kmem_charge_page(gfp, 1 << order)
        pfn = self._new_addr(1 << order)
        self._pages[pfn] = dict(kind="pages", order=order, nr=1 << order, flags=flags, owner=owner)
        return pfn

    def free_pages(self, pfn: int, order: int) -> None:
        rec = self._pages.get(pfn)
        if rec is None or rec["kind"] != "pages" or rec["order"] != order:
            raise _err(errno.EINVAL, f"free_pages: pfn {pfn:#x} order {order} not allocated")
        del self._pages[pfn]
        self._kmem_uncharge_page(rec, self._current(alloc=False)[0])

    def page_memcg_data(self, pfn: int) -> int:
        rec = self._pages.get(pfn)
        if rec is None:
            raise _err(errno.EINVAL, f"pfn {pfn:#x} is not allocated")
        owner = rec["owner"]
        return 0 if owner is None else (owner.id << 2) | rec["flags"]

    def page_info(self, pfn: int) -> dict[str, Any]:
        rec = self._pages.get(pfn)
        if rec is None:
            raise _err(errno.EINVAL, f"pfn {pfn:#x} is not allocated")
        m = self._page_memcg(rec)
        return dict(kind=rec["kind"], order=rec.get("order", 0), flags=rec["flags"],
                    memcg=None if m is None else self._wrap(m))

    # -- slab
    def _slab_alloc(self, size: int, gfp: int, cache_flags: int = 0,
                    cache: KmemCache | None = None) -> int:
        """slab_alloc + memcg_slab_{pre,post}_alloc_hook(); a kmem_cache_create()d cache's
        objects are ALIGN(size, 8), a kmalloc's its bucket."""
        cpu, task, irq, m = self._charge_target()
        bucket = -(-size // 8) * 8 if cache is not None else kmalloc_bucket(size, self.page_size)
        full = obj_full_size(bucket)
        reclaim = bool(gfp & _G_RECLAIMABLE or cache_flags & SLAB_RECLAIM_ACCOUNT)
        key = "slab_reclaimable" if reclaim else "slab_unreclaimable"
        o = None
        if gfp & _G_ACCOUNT or cache_flags & SLAB_ACCOUNT:
            o = O.get_obj_cgroup_from_memcg(m)
        if o is not None:
            cur = self.profile.obj_stock_current
            if O.obj_cgroup_charge(self, o, gfp, full, cpu, task, irq, key if cur else None):
                raise _err(errno.ENOMEM, f"obj_cgroup_charge: {full} bytes refused")
            O.obj_cgroup_get(o)
            if not cur:
                M.mod_memcg_state(o.memcg, key, full)      # mod_objcg_state()
        pfn = self._new_addr(1)
        addr = pfn * self.page_size
        self._objects[addr] = dict(kind="slab", objcg=o, full=full, key=key, size=size, cache=cache)
        self._pages[pfn] = dict(kind="slab", nr=1, flags=MEMCG_DATA_OBJCGS if o else 0, owner=o)
        return addr

    def _slab_free(self, addr: int, rec: dict[str, Any], cpu: int) -> None:
        """memcg_slab_free_hook() (an object on its cache's LRU leaves it first)."""
        o = rec["objcg"]
        if rec.get("cache") is not None:
            rec["cache"].lru_del(addr)
        del self._objects[addr]
        del self._pages[addr // self.page_size]
        if o is None:
            return
        if self.profile.obj_stock_current:
            O.obj_cgroup_uncharge(self, o, rec["full"], cpu, rec["key"])
        else:
            O.obj_cgroup_uncharge(self, o, rec["full"], cpu)
            M.mod_memcg_state(o.memcg, rec["key"], -rec["full"])
        O.obj_cgroup_put(self, o, cpu)

    def kmalloc(self, size: int, gfp: int) -> int:
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"bad kmalloc size {size!r}")
        self._current(alloc=True)
        if size == 0:
            return ZERO_SIZE_PTR
        if size <= kmalloc_max_cache_size(self.page_size):
            return self._slab_alloc(size, gfp)
        order = get_order(size, self.page_size)             # kmalloc_large()
        if order > MAX_PAGE_ORDER:
            raise _err(errno.ENOMEM, f"kmalloc_large: order {order} > MAX_PAGE_ORDER")
        flags, owner = self._kmem_charge_page(gfp, 1 << order)
        pfn = self._new_addr(1 << order)
        rec = dict(kind="large", order=order, nr=1 << order, flags=flags, owner=owner)
        self._pages[pfn] = rec
        addr = pfn * self.page_size
        self._objects[addr] = dict(kind="large", pfn=pfn)
        if self.profile.large_kmalloc_memcg_stat:
            M.mod_memcg_state(self._page_memcg(rec), "slab_unreclaimable", self.page_size << order)
        return addr

    def kfree(self, addr: int) -> None:
        if addr == ZERO_SIZE_PTR:
            return
        rec = self._objects.get(addr)
        if rec is None or rec["kind"] not in ("slab", "large"):
            raise _err(errno.EINVAL, f"kfree: {addr:#x} is not a kmalloc address")
        cpu = self._current(alloc=False)[0]
        if rec["kind"] == "slab":
            self._slab_free(addr, rec, cpu)
            return
        prec = self._pages.pop(rec["pfn"])
        del self._objects[addr]
        if self.profile.large_kmalloc_memcg_stat:
            M.mod_memcg_state(self._page_memcg(prec), "slab_unreclaimable",
                              -(self.page_size << prec["order"]))
        self._kmem_uncharge_page(prec, cpu)

    def kmem_cache_create(self, name: str, size: int, flags: int = 0) -> KmemCache:
        if not 1 <= size <= kmalloc_max_cache_size(self.page_size):
            raise ValueError(f"bad cache object size {size}")
        cache = KmemCache(self, name, size, flags)
        self.caches.append(cache)
        return cache

    def drop_slab(self) -> int:
        return V.drop_slab(self, self.current_cpu or 0)

    @property
    def dentry_cache(self) -> KmemCache:
        if not hasattr(self, "_dentry_cache"):
            self._dentry_cache = self.kmem_cache_create(
                "dentry", self.profile.dentry_size, SLAB_RECLAIM_ACCOUNT | SLAB_ACCOUNT)
        return self._dentry_cache

    def create_dentries(self, n: int, gfp: int = GFP_KERNEL) -> list[int]:
        """n negative dentries, each unused on the LRU; stops at the first failure.  Each
        lookup is a syscall of its own: a task pays its memory.high debt on each return
        to user."""
        cache = self.dentry_cache
        cpu, task, _, _ = self._current(alloc=True)
        out: list[int] = []
        for _ in range(n):
            try:
                addr = cache.alloc(gfp)
            except OSError:
                addr = 0
            if addr:
                cache.lru_add(addr)
                out.append(addr)
            if task is not None:
                M.handle_over_high(self, task, cpu)
            if not addr:
                break
        return out

    # -- vmalloc
    def vmalloc(self, size: int, gfp: int) -> int:
        """__vmalloc_node_range(): one order-0 page at a time, each charged as a KMEM page."""
        if not isinstance(size, int) or size <= 0:
            raise _err(errno.EINVAL, f"vmalloc of {size!r} bytes")
        cpu = self._current(alloc=True)[0]
        nr = vmalloc_nr_pages(size, self.page_size)
        pages: list[dict[str, Any]] = []
        try:
            for _ in range(nr):
                flags, owner = self._kmem_charge_page(gfp, 1)
                pages.append(dict(kind="vmalloc", nr=1, flags=flags, owner=owner))
        except OSError:
            for rec in pages:                                # vfree() of the partial area
                self._kmem_uncharge_page(rec, cpu)
            raise
        if self.profile.stat_vmalloc and gfp & _G_ACCOUNT:
            for rec in pages:
                M.mod_memcg_state(self._page_memcg(rec), "vmalloc", self.page_size)
        addr = (1 << 45) + self._new_addr(nr) * self.page_size
        self._objects[addr] = dict(kind="vmalloc", pages=pages)
        return addr

    def vfree(self, addr: int) -> None:
        rec = self._objects.get(addr)
        if rec is None or rec["kind"] != "vmalloc":
            raise _err(errno.EINVAL, f"vfree: {addr:#x} is not a vmalloc address")
        del self._objects[addr]
        cpu = self._current(alloc=False)[0]
        for prec in rec["pages"]:
            if self.profile.stat_vmalloc and prec["owner"] is not None:
                M.mod_memcg_state(self._page_memcg(prec), "vmalloc", -self.page_size)
            self._kmem_uncharge_page(prec, cpu)

    def kvmalloc(self, size: int, gfp: int) -> int:
        """kvmalloc_node(): kmalloc first, vmalloc fallback only above PAGE_SIZE."""
        p = self.profile
        if p.kvmalloc_gfp_kernel_only and (gfp & GFP_KERNEL) != GFP_KERNEL:
            return self.kmalloc(size, gfp)
        kgfp = gfp
        if size > self.page_size:
            kgfp |= _G_NOWARN
            if not gfp & _G_RETRY_MAYFAIL:      # kmalloc_gfp_adjust()
                kgfp = kgfp & ~_G_DIRECT_RECLAIM if p.kvmalloc_kmalloc_no_reclaim else kgfp | _G_NORETRY
            if not p.kvmalloc_gfp_kernel_only:
                kgfp &= ~_G_NOFAIL
        try:
            return self.kmalloc(size, kgfp)
        except OSError as e:
            if size <= self.page_size or e.errno != errno.ENOMEM:
                raise
            if not p.kvmalloc_gfp_kernel_only and not gfp & _G_DIRECT_RECLAIM:
                raise                          # vmalloc cannot serve a non-blocking request
        return self.vmalloc(size, gfp)

    def kvfree(self, addr: int) -> None:
        rec = self._objects.get(addr)
        if rec is not None and rec["kind"] == "vmalloc":
            self.vfree(addr)
        else:
            self.kfree(addr)

    # -- percpu
    def alloc_percpu(self, size: int, align: int, gfp: int) -> int:
        """pcpu_alloc() with pcpu_memcg_pre/post_alloc_hook()."""
        if (not isinstance(size, int) or not isinstance(align, int) or size <= 0
                or size > PCPU_MIN_UNIT_SIZE or align <= 0 or align > self.page_size
                or align & (align - 1)):
            raise _err(errno.EINVAL, f"pcpu_alloc: illegal size ({size}) or align ({align})")
        cpu, task, irq, m = self._charge_target()
        o = O.get_obj_cgroup_from_memcg(m) if gfp & _G_ACCOUNT else None
        full = pcpu_obj_full_size(size, self.nr_cpus, self.profile.percpu_ptr_overhead)
        if o is not None:
            if O.obj_cgroup_charge(self, o, gfp, full, cpu, task, irq):
                raise _err(errno.ENOMEM, f"pcpu_memcg_pre_alloc_hook: {full} bytes refused")
            O.obj_cgroup_get(o)
            M.mod_memcg_state(o.memcg, "percpu", full)
        addr = (1 << 46) + self._new_addr(1) * self.page_size
        self._objects[addr] = dict(kind="percpu", objcg=o, full=full,
                                   size=pcpu_aligned_size(size))
        return addr

    def free_percpu(self, addr: int) -> None:
        rec = self._objects.get(addr)
        if rec is None or rec["kind"] != "percpu":
            raise _err(errno.EINVAL, f"free_percpu: {addr:#x} is not a percpu address")
        self._free_percpu(addr, self._current(alloc=False)[0])

    def _free_percpu(self, addr: int, cpu: int) -> None:
        rec = self._objects.pop(addr)
        o = rec["objcg"]
        if o is None:
            return
        O.obj_cgroup_uncharge(self, o, rec["full"], cpu)     # pcpu_memcg_free_hook()
        M.mod_memcg_state(o.memcg, "percpu", -rec["full"])
        O.obj_cgroup_put(self, o, cpu)

    def obj_cgroup_of(self, addr: int) -> tuple[int | None, MemCgroup | None]:
        rec = self._objects.get(addr)
        if rec is None:
            raise _err(errno.EINVAL, f"{addr:#x} is not an allocated address")
        if rec["kind"] == "large":
            prec = self._pages[rec["pfn"]]
            m = self._page_memcg(prec)
            o = prec["owner"] if isinstance(prec["owner"], O.ObjCgroup) else None
            return (None if o is None else o.id, None if m is None else self._wrap(m))
        if rec["kind"] == "vmalloc":
            first = rec["pages"][0] if rec["pages"] else None
            m = self._page_memcg(first) if first else None
            return (None, None if m is None else self._wrap(m))
        o = rec["objcg"]
        return (None, None) if o is None else (o.id, self._wrap(o.memcg))

    # -- invariants
    def check(self) -> None:
        """Raise AssertionError when an invariant of DESIGN.md is broken."""
        for m in self.memcgs.values():
            if m.freed:
                continue
            c = m.memory
            assert not c.underflows, f"{m.name}: page_counter underflow {c.underflows}"
            assert c.usage >= 0, f"{m.name}: negative usage"
            assert c.watermark >= c.usage, f"{m.name}: watermark below usage"
            kids = [k for k in m.children if not k.freed and k.online]
            if kids and all(k.online for k in m.children if not k.freed):
                pass
            assert c.children_min_usage == sum(k.memory.min_usage for k in m.children), \
                f"{m.name}: children_min_usage"
            assert c.children_low_usage == sum(k.memory.low_usage for k in m.children), \
                f"{m.name}: children_low_usage"
        for o in self.objcgs.values():
            assert o.nr_charged_bytes >= 0 and o.refcnt >= 0
        for st in self.obj_stock + self.irq_obj_stock:
            assert st.nr_bytes >= 0
