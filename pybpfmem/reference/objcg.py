"""obj_cgroup byte charging, the per-cpu object stock and reparenting (reference model).

Mirrors mm/memcontrol.c: obj_cgroup_charge(), refill_obj_stock(),
consume_obj_stock(), drain_obj_stock(), memcg_reparent_objcgs(),
obj_cgroup_release().  Two rule sets, chosen by the profile:
- v5.x: after a refill above PAGE_SIZE the whole stock is drained; the stock
  caches no statistics (slab stats go straight to the memcg);
- current (6.18): refills on the charge path never uncharge (allow_uncharge),
  the free path splits off whole pages only, and slab byte statistics are cached
  in the stock (__account_obj_stock()) until they exceed PAGE_SIZE or a drain.
One cached objcg per cpu in both (the 5-slot object stock is newer than 6.18);
v5.14-v5.17 (obj_stock_task_irq_split) keep a second one per cpu for interrupts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .memcg import (MemCgroupState, css_get, css_put, mod_memcg_state, memcg_uncharge,
                    refill_stock, try_charge)

if TYPE_CHECKING:
    from .system import System, Task

ENOMEM = 12


class ObjCgroup:
    """struct obj_cgroup."""

    def __init__(self, oid: int, memcg: MemCgroupState) -> None:
        self.id = oid
        self.memcg = memcg
        self.refcnt = 1            # the percpu_ref's initial reference, dropped by the kill
        self.killed = False
        self.released = False
        self.nr_charged_bytes = 0


class ObjStock:
    """The object part of the per-cpu stock."""

    def __init__(self) -> None:
        self.cached: ObjCgroup | None = None
        self.nr_bytes = 0
        self.slab_b = {"slab_reclaimable": 0, "slab_unreclaimable": 0}   # 6.x stat cache


def obj_cgroup_get(o: ObjCgroup, n: int = 1) -> None:
    assert not o.released, f"objcg {o.id} used after release"
    o.refcnt += n


def obj_cgroup_put(S: System, o: ObjCgroup, cpu: int | None, n: int = 1) -> None:
    """cpu: where a release would run (None: no cpu context)."""
    o.refcnt -= n
    assert o.refcnt >= 0, f"objcg {o.id} refcount underflow"
    if o.refcnt == 0 and o.killed:
        obj_cgroup_release(S, o, cpu)


def obj_cgroup_release(S: System, o: ObjCgroup, cpu: int | None) -> None:
    """mirrors obj_cgroup_release(): give back the whole pages parked in nr_charged_bytes,
    through cpu's page stock up to v6.15 (objcg_release_via_stock), directly after; a
    release with no cpu context uncharges directly in every release."""
    nr_pages = o.nr_charged_bytes // S.page_size
    S.release_warnings += o.nr_charged_bytes % S.page_size != 0
    if nr_pages:
        via = cpu is not None and S.profile.objcg_release_via_stock
        uncharge_pages(S, o.memcg, nr_pages, cpu if cpu is not None else 0, via_stock=via)
    o.nr_charged_bytes = 0
    o.released = True
    if o in o.memcg.objcg_list:
        o.memcg.objcg_list.remove(o)
    if S.profile.objcg_pins_memcg:      # v5.11: a reparented objcg holds a css ref on its memcg
        css_put(S, o.memcg)


# ---------------------------------------------------------------- page-level helpers

def charge_pages(S: System, memcg: MemCgroupState, gfp: int, nr: int, cpu: int,
                 task: Task | None, in_irq: bool) -> int:
    """mirrors __memcg_kmem_charge() (v5.11) / obj_cgroup_charge_pages() (current)."""
    ret = try_charge(S, memcg, gfp, nr, cpu, task, in_irq)
    if ret:
        return ret
    if S.cgroup_version == "v1":
        if S.profile.kmem_limit_enforced:
            if memcg.kmem.try_charge(nr) is not None:
                if gfp & 0x8000:                            # __GFP_NOFAIL
                    memcg.kmem.charge(nr)
                else:
                    if not memcg.is_root:
                        memcg_uncharge(S, memcg, nr)        # cancel_charge()
                    return -ENOMEM
        else:
            memcg.kmem.charge(nr)                           # memcg1_account_kmem()
    if S.profile.stat_kernel:
        mod_memcg_state(memcg, "kernel", nr * S.page_size)
    return 0


def uncharge_pages(S: System, memcg: MemCgroupState, nr: int, cpu: int, via_stock: bool) -> None:
    """mirrors __memcg_kmem_uncharge() (v5.x) / obj_cgroup_uncharge_pages() and the page
    part of drain_obj_stock() (current): kmem counter and stat, then the memory counter
    through this cpu's page stock or directly."""
    if S.profile.stat_kernel:
        mod_memcg_state(memcg, "kernel", -nr * S.page_size)
    if S.cgroup_version == "v1":
        memcg.kmem.uncharge(nr)
    if memcg.is_root and S.profile.kmem_uncharge_skips_root:
        return      # v6.15+: obj_cgroup_uncharge_pages()/drain_obj_stock() skip root's counter
    if via_stock:
        refill_stock(S, memcg, nr, cpu)
    else:
        memcg_uncharge(S, memcg, nr)


# ---------------------------------------------------------------- object stock

def _flush_stat_cache(S: System, st: ObjStock) -> None:
    o = st.cached
    for key, val in st.slab_b.items():
        if val:
            assert o is not None
            mod_memcg_state(o.memcg, key, val)
            st.slab_b[key] = 0


def account_obj_stock(S: System, st: ObjStock, key: str, nr: int) -> None:
    """mirrors __account_obj_stock() (current): cache the first delta, flush above PAGE_SIZE."""
    assert st.cached is not None
    if st.slab_b[key] == 0:
        st.slab_b[key] = nr
        return
    st.slab_b[key] += nr
    if abs(st.slab_b[key]) > S.page_size:
        mod_memcg_state(st.cached.memcg, key, st.slab_b[key])
        st.slab_b[key] = 0


def obj_stock(S: System, cpu: int) -> ObjStock:
    """get_obj_stock(): the irq_obj of the cpu in an interrupt with obj_stock_task_irq_split
    (v5.14-v5.17), its one object stock otherwise."""
    if S.profile.obj_stock_task_irq_split and S.in_irq_now():
        return S.irq_obj_stock[cpu]
    return S.obj_stock[cpu]


def drain_obj_stock(S: System, cpu: int, st: ObjStock | None = None,
                    put: bool = True) -> ObjCgroup | None:
    """mirrors drain_obj_stock(): whole pages back to the memcg, the rest to nr_charged_bytes.
    st: one of cpu's object stocks (default: the current context's).  put=False: the
    drained objcg is returned for the caller to put (v5.19+ drain_local_stock())."""
    if st is None:
        st = obj_stock(S, cpu)
    old = st.cached
    if old is None:
        return None
    if st.nr_bytes:
        pages, rem = divmod(st.nr_bytes, S.page_size)
        if pages:
            p = S.profile
            uncharge_pages(S, old.memcg, pages, cpu, via_stock=not p.drain_obj_stock_direct)
        old.nr_charged_bytes += rem
        st.nr_bytes = 0
    _flush_stat_cache(S, st)
    st.cached = None
    if not put:
        return old
    obj_cgroup_put(S, old, cpu)
    return None


def consume_obj_stock(S: System, o: ObjCgroup, n: int, cpu: int, stat: str | None) -> bool:
    """mirrors consume_obj_stock()."""
    st = obj_stock(S, cpu)
    if st.cached is o and st.nr_bytes >= n:
        st.nr_bytes -= n
        if stat is not None:
            account_obj_stock(S, st, stat, n)
        return True
    return False


def refill_obj_stock(S: System, o: ObjCgroup, n: int, cpu: int, allow_uncharge: bool,
                     stat: str | None = None, nr_acct: int = 0) -> None:
    """mirrors refill_obj_stock() with the profile's rule set."""
    st = obj_stock(S, cpu)
    if st.cached is not o:
        drain_obj_stock(S, cpu, st)
        obj_cgroup_get(o)
        st.cached = o
        st.nr_bytes = o.nr_charged_bytes
        o.nr_charged_bytes = 0
        allow_uncharge = True
    if not S.profile.obj_stock_current:
        st.nr_bytes += n
        if st.nr_bytes > S.page_size:
            drain_obj_stock(S, cpu, st)
        return
    if stat is not None:
        account_obj_stock(S, st, stat, nr_acct)
    st.nr_bytes += n
    pages = 0
    if allow_uncharge and st.nr_bytes > S.page_size:
        pages = st.nr_bytes // S.page_size
        st.nr_bytes %= S.page_size
    if pages:
        uncharge_pages(S, o.memcg, pages, cpu, via_stock=True)


def obj_stock_flush_required(S: System, cpu: int, root: MemCgroupState) -> bool:
    """mirrors obj_stock_flush_required(): either object stock of the cpu."""
    return any(st.cached is not None and st.cached.memcg.is_descendant(root)
               for st in (S.obj_stock[cpu], S.irq_obj_stock[cpu]))


def drain_obj_stocks(S: System, cpu: int, put: bool = True) -> list[ObjCgroup]:
    """The object part of drain_local_stock() run by the drain work (a task): both.
    put=False: the drained objcgs are returned, to be put after the page stock drain."""
    olds = [drain_obj_stock(S, cpu, S.obj_stock[cpu], put),
            drain_obj_stock(S, cpu, S.irq_obj_stock[cpu], put)]
    return [o for o in olds if o is not None]


def obj_cgroup_charge(S: System, o: ObjCgroup, gfp: int, size: int, cpu: int,
                      task: Task | None, in_irq: bool, stat: str | None = None) -> int:
    """mirrors obj_cgroup_charge() (v5.11) / obj_cgroup_charge_account() (current).

    ``stat`` names the slab statistic of the current kernel's stock cache; on
    v5.x the caller updates slab statistics itself (mod_objcg_state()).
    """
    current = S.profile.obj_stock_current
    if consume_obj_stock(S, o, size, cpu, stat if current else None):
        return 0
    nr_pages, rem = divmod(size, S.page_size)
    if rem:
        nr_pages += 1
    ret = charge_pages(S, o.memcg, gfp, nr_pages, cpu, task, in_irq)
    if ret:
        return ret
    if current:
        if rem or stat is not None:
            refill_obj_stock(S, o, S.page_size - rem if rem else 0, cpu, False, stat, size)
    elif rem:
        refill_obj_stock(S, o, S.page_size - rem, cpu, False)
    return 0


def obj_cgroup_uncharge(S: System, o: ObjCgroup, size: int, cpu: int,
                        stat: str | None = None) -> None:
    """mirrors obj_cgroup_uncharge() / the slab free hook's refill_obj_stock()."""
    if S.profile.obj_stock_current:
        refill_obj_stock(S, o, size, cpu, True, stat, -size)
    else:
        refill_obj_stock(S, o, size, cpu, True)


# ---------------------------------------------------------------- lifetime

def memcg_online_kmem(S: System, m: MemCgroupState) -> None:
    """mirrors memcg_online_kmem(): a fresh objcg for every non-root memcg."""
    o = ObjCgroup(S.next_objcg_id(), m)
    S.objcgs[o.id] = o
    m.objcg = o
    if S.profile.objcg_pinned_by_orig_memcg:     # 6.x: memcg->orig_objcg holds a reference
        obj_cgroup_get(o)
        m.orig_objcg = o


def memcg_reparent_objcgs(S: System, m: MemCgroupState, cpu: int) -> None:
    """mirrors memcg_reparent_objcgs(): the memcg's objcg and every objcg already
    reparented into it now point at the parent; charges stay where they are."""
    parent = m.parent
    assert parent is not None and m.objcg is not None
    o, m.objcg = m.objcg, None
    moved = [o] + m.objcg_list
    for it in moved:
        if S.profile.objcg_pins_memcg:
            css_get(parent)
        old = it.memcg
        it.memcg = parent
        if S.profile.objcg_pins_memcg and it is not o:
            css_put(S, old)
    parent.objcg_list.extend(moved)
    m.objcg_list = []
    o.killed = True                       # percpu_ref_kill() drops the initial reference
    obj_cgroup_put(S, o, cpu)


def get_obj_cgroup_from_memcg(m: MemCgroupState | None) -> ObjCgroup | None:
    """The walk of get_obj_cgroup_from_current(): first non-root level with an objcg."""
    while m is not None and not m.is_root:
        if m.objcg is not None:
            return m.objcg
        m = m.parent
    return None
