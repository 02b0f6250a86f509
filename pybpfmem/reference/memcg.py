"""mem_cgroup, try_charge and the per-cpu page stock (reference model of mm/memcontrol.c).

Functions take the owning ``System`` (``S``) explicitly; all state lives in it.
Simplifications (shared with the whole reference model):
- one operation at a time: remote stock drains run synchronously, no races;
- reclaim (vmscan.py) frees file pages and the unused objects of reclaimable
  caches, with memory.min/low protection, in the core's simplified form of
  get_scan_count();
- __mem_cgroup_free() (deferred work in the kernel) frees a freed memcg's
  accounted structures at the next cgroup operation, memcg or objcg put, or
  drain, on cpu 0 (the core's rule);
- memory.high: the return-to-user handler runs the kernel's retry loop but never
  sleeps; an interrupt's high_work runs right away;
- no swap, no memsw, no socket memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .page_counter import PageCounter

if TYPE_CHECKING:
    from .objcg import ObjCgroup
    from .system import System, Task

MAX_RECLAIM_RETRIES = 16
PAGE_ALLOC_COSTLY_ORDER = 3
SWAP_CLUSTER_MAX = 32
EVENTS = ("low", "high", "max", "oom", "oom_kill")

__GFP_HIGH = 0x20
__GFP_ATOMIC = 0x200
__GFP_DIRECT_RECLAIM = 0x400
__GFP_KSWAPD_RECLAIM = 0x800
__GFP_RETRY_MAYFAIL = 0x4000
__GFP_NOFAIL = 0x8000
__GFP_NORETRY = 0x10000


class MemCgroupState:
    """Kernel-side state of one memcg (struct mem_cgroup), without the cgroupfs surface."""

    def __init__(self, S: System, name: str, parent: MemCgroupState | None, mid: int) -> None:
        p = S.profile
        self.S = S
        self.name = name
        self.parent = parent
        self.id = mid
        self.children: list[MemCgroupState] = []     # online and dying, creation order
        self.online = True
        self.freed = False
        self.memory = PageCounter(
            max=S.page_counter_max, parent=parent.memory if parent else None,
            track_failcnt=(not p.failcnt_v1_only) or S.cgroup_version == "v1",
            clamp_underflow=p.clamp_underflow)
        self.memory.high = S.page_counter_max          # mem_cgroup_css_alloc() sets high = max
        self.kmem = PageCounter(max=S.page_counter_max, parent=parent.kmem if parent else None,
                                protection_support=False, track_failcnt=True,
                                clamp_underflow=p.clamp_underflow)
        self.events_local = dict.fromkeys(EVENTS, 0)
        self.events = dict.fromkeys(EVENTS, 0)
        self.stat: dict[str, int] = {}                  # hierarchical, in bytes (pages * PAGE_SIZE)
        self.anon_pages = 0                              # user pages charged to this memcg
        self.file_pages = 0
        self.css_refs = 0                                # references besides the cgroup itself
        self.objcg: ObjCgroup | None = None              # memcg->objcg (NULL for root in 5.11/6.18)
        self.orig_objcg: ObjCgroup | None = None
        self.objcg_list: list[ObjCgroup] = []            # objcgs reparented into this memcg
        self.emin = 0                                    # effective protection (vmscan.py)
        self.elow = 0
        self.structs: list[tuple[str, int]] = []         # mem_cgroup_alloc()'s accounted objects

    @property
    def is_root(self) -> bool:
        return self.parent is None

    @property
    def dying(self) -> bool:
        return not self.online and not self.freed

    def ancestors(self) -> list[MemCgroupState]:
        out = []
        m: MemCgroupState | None = self
        while m is not None:
            out.append(m)
            m = m.parent
        return out

    def is_descendant(self, root: MemCgroupState) -> bool:
        """mem_cgroup_is_descendant()."""
        return root in self.ancestors()

    def subtree(self) -> list[MemCgroupState]:
        """Pre-order walk of this memcg and every non-freed descendant (mem_cgroup_iter)."""
        out = [self]
        for c in self.children:
            if not c.freed:
                out.extend(c.subtree())
        return out


# ---------------------------------------------------------------- statistics

def mod_memcg_state(m: MemCgroupState | None, key: str, delta: int) -> None:
    """mirrors mod_memcg_state(): the value is exact and hierarchical (flushed on every read).

    Simplified: the kernel batches per-cpu deltas (v5.11 thresholds, rstat today).
    """
    while m is not None:
        m.stat[key] = m.stat.get(key, 0) + delta
        m = m.parent


# ---------------------------------------------------------------- events

def memcg_memory_event(S: System, m: MemCgroupState, ev: str) -> None:
    """mirrors memcg_memory_event(): local counter, then every ancestor except root (v2)."""
    m.events_local[ev] += 1
    cur: MemCgroupState | None = m
    while cur is not None and not cur.is_root:
        cur.events[ev] += 1
        if S.cgroup_version == "v1":
            break
        cur = cur.parent


# ---------------------------------------------------------------- css references

def css_get(m: MemCgroupState, n: int = 1) -> None:
    m.css_refs += n


def css_put(S: System, m: MemCgroupState, n: int = 1) -> None:
    m.css_refs -= n
    assert m.css_refs >= 0, f"css refcount underflow on {m.name}"
    maybe_free(S, m)


def maybe_free(S: System, m: MemCgroupState) -> None:
    """mirrors css_release()/mem_cgroup_css_free(): an offline memcg goes away with its last ref.

    The memcg keeps a reference for each child that is not yet freed.
    """
    if m.online or m.freed or m.css_refs > 0:
        return
    if any(not c.freed for c in m.children):
        return
    m.freed = True
    if m.structs:                               # __mem_cgroup_free(): deferred (css_free_work)
        S.css_free_pending.append(m)
    if m.orig_objcg is not None:                # 6.x: mem_cgroup_free() drops orig_objcg
        from .objcg import obj_cgroup_put
        o, m.orig_objcg = m.orig_objcg, None
        obj_cgroup_put(S, o, cpu=None)
    if m.parent is not None:
        maybe_free(S, m.parent)


# ---------------------------------------------------------------- page stock

class PageStock:
    """struct memcg_stock_pcp page part: ``slots`` cached memcgs (1 in 5.x, 7 in 6.16+)."""

    def __init__(self, nr_slots: int) -> None:
        self.cached: list[MemCgroupState | None] = [None] * nr_slots
        self.nr_pages = [0] * nr_slots
        self.drain_idx = 0


def memcg_uncharge(S: System, m: MemCgroupState, nr: int) -> None:
    """mirrors memcg_uncharge() / cancel_charge(): direct page_counter_uncharge of memory."""
    if nr:
        m.memory.uncharge(nr)


def consume_stock(S: System, m: MemCgroupState, nr: int, cpu: int) -> bool:
    """mirrors consume_stock()."""
    if nr > S.profile.charge_batch:
        return False
    st = S.page_stock[cpu]
    for i, c in enumerate(st.cached):
        if c is m and st.nr_pages[i] >= nr:
            st.nr_pages[i] -= nr
            return True
    return False


def drain_stock(S: System, cpu: int, i: int) -> None:
    """mirrors drain_stock(): return the slot's pages, drop the css reference."""
    st = S.page_stock[cpu]
    old = st.cached[i]
    if old is None:
        return
    if st.nr_pages[i]:
        memcg_uncharge(S, old, st.nr_pages[i])
        st.nr_pages[i] = 0
    st.cached[i] = None
    css_put(S, old)


def refill_stock(S: System, m: MemCgroupState, nr: int, cpu: int) -> None:
    """mirrors refill_stock(): one slot in 5.x; slots with round-robin eviction in 6.16+."""
    p = S.profile
    st = S.page_stock[cpu]
    if p.nr_memcg_stock == 1:
        if st.cached[0] is not m:
            drain_stock(S, cpu, 0)
            css_get(m)
            st.cached[0] = m
        st.nr_pages[0] += nr
        if st.nr_pages[0] > p.charge_batch:
            drain_stock(S, cpu, 0)
        return
    if nr > p.charge_batch:
        memcg_uncharge(S, m, nr)
        return
    empty = -1
    for i, c in enumerate(st.cached):
        if c is None and empty == -1:
            empty = i
        if c is m:
            st.nr_pages[i] += nr
            if st.nr_pages[i] > p.charge_batch:
                drain_stock(S, cpu, i)
            return
    i = empty
    if i == -1:
        # memcg: use round-robin victim selection in refill_stock (6.18 stable fix)
        i = st.drain_idx
        st.drain_idx = (st.drain_idx + 1) % p.nr_memcg_stock
        drain_stock(S, cpu, i)
    css_get(m)
    st.cached[i] = m
    st.nr_pages[i] = nr


def drain_local_page_stock(S: System, cpu: int) -> None:
    for i in range(len(S.page_stock[cpu].cached)):
        drain_stock(S, cpu, i)


def page_stock_needs_drain(S: System, cpu: int, root: MemCgroupState) -> bool:
    st = S.page_stock[cpu]
    return any(c is not None and st.nr_pages[i] and c.is_descendant(root)
               for i, c in enumerate(st.cached))


def drain_all_stock(S: System, root: MemCgroupState) -> None:
    """mirrors drain_all_stock(): every cpu whose stock holds charges of root's subtree.

    Simplified: the remote per-cpu drain work runs synchronously.  In 5.x one
    drain_local_stock() empties both the object and the page stock; since 6.16 the
    two stocks are flushed independently.
    """
    from .objcg import drain_obj_stocks, obj_cgroup_put, obj_stock_flush_required
    for cpu in range(S.nr_cpus):
        page_needed = page_stock_needs_drain(S, cpu, root)
        obj_needed = obj_stock_flush_required(S, cpu, root)
        if S.profile.nr_memcg_stock == 1:
            if page_needed or obj_needed:
                # v5.19+: the drained objcgs are put after the page stock is drained
                late = S.profile.objcg_put_after_stock_drain
                olds = drain_obj_stocks(S, cpu, put=not late)
                drain_local_page_stock(S, cpu)
                for o in olds:
                    obj_cgroup_put(S, o, cpu)
        else:
            if page_needed:
                drain_local_page_stock(S, cpu)
            if obj_needed:
                drain_obj_stocks(S, cpu)


# ---------------------------------------------------------------- reclaim and OOM

def try_to_free_mem_cgroup_pages(S: System, m: MemCgroupState, nr: int, cpu: int = 0,
                                 gfp: int = 0xCC0) -> int:
    """mirrors try_to_free_mem_cgroup_pages(): see vmscan.py."""
    from .vmscan import try_to_free_mem_cgroup_pages as reclaim
    return reclaim(S, m, nr, cpu, gfp)


def mem_cgroup_margin(m: MemCgroupState) -> int:
    """mirrors mem_cgroup_margin() (memory counter only: no memsw)."""
    return max(0, m.memory.max - m.memory.usage)


def mem_cgroup_out_of_memory(S: System, m: MemCgroupState) -> bool:
    """mirrors mem_cgroup_out_of_memory(): kill one task of the subtree if allowed.

    Simplified: the victim is the live, not yet killed task with the lowest pid
    (the kernel ranks by oom_badness()); killing frees nothing in the model.
    """
    if not S.oom_kill:
        return False
    for t in sorted(S.tasks.values(), key=lambda t: t.pid):
        if t.alive and not t.killed and t.cg_state.is_descendant(m):
            t.killed = True
            memcg_memory_event(S, t.cg_state, "oom_kill")
            return True
    return False


def mem_cgroup_oom(S: System, m: MemCgroupState, nr_pages: int) -> bool:
    """mirrors mem_cgroup_oom(): costly orders skip the OOM killer."""
    order = 0
    while (1 << order) < nr_pages:
        order += 1
    if order > PAGE_ALLOC_COSTLY_ORDER:
        return False
    memcg_memory_event(S, m, "oom")
    return mem_cgroup_out_of_memory(S, m)


# ---------------------------------------------------------------- memory.high

def reclaim_high(S: System, m: MemCgroupState, nr: int, cpu: int) -> int:
    """mirrors reclaim_high(): every non-root level above its high raises `high` and reclaims."""
    total = 0
    cur: MemCgroupState | None = m
    while cur is not None and not cur.is_root:
        if cur.memory.usage > cur.memory.high:
            memcg_memory_event(S, cur, "high")
            total += try_to_free_mem_cgroup_pages(S, cur, nr, cpu)
        cur = cur.parent
    return total


HZ = 1000                          # the model's HZ (the core's choice too): the penalty's unit
MEMCG_DELAY_PRECISION_SHIFT = 20
MEMCG_DELAY_SCALING_SHIFT = 14
MEMCG_MAX_HIGH_DELAY_JIFFIES = 2 * HZ


def calculate_overage(usage: int, high: int) -> int:
    """mirrors calculate_overage(): (usage - high) / high in 20-bit fixed point, high >= 1."""
    if usage <= high:
        return 0
    high = max(high, 1)
    return ((usage - high) << MEMCG_DELAY_PRECISION_SHIFT) // high


def mem_find_max_overage(m: MemCgroupState) -> int:
    """mirrors mem_find_max_overage(): the largest overage of the non-root ancestors."""
    worst = 0
    cur: MemCgroupState | None = m
    while cur is not None and not cur.is_root:
        worst = max(worst, calculate_overage(cur.memory.usage, cur.memory.high))
        cur = cur.parent
    return worst


def calculate_high_delay(S: System, nr: int, max_overage: int) -> int:
    """mirrors calculate_high_delay(): quadratic in the overage, scaled by the share of a
    charge batch this task contributed."""
    if not max_overage:
        return 0
    penalty = (max_overage * max_overage * HZ) >> MEMCG_DELAY_PRECISION_SHIFT
    penalty >>= MEMCG_DELAY_SCALING_SHIFT
    return penalty * nr // S.profile.charge_batch


def handle_over_high(S: System, task: Task, cpu: int) -> None:
    """mirrors mem_cgroup_handle_over_high(): pay the task's over-high debt: reclaim_high()
    with the debt, then, while the penalty is worth sleeping for, retry with
    SWAP_CLUSTER_MAX as long as reclaim progresses or MAX_RECLAIM_RETRIES allow.

    Simplified: the task never sleeps (the penalty is computed only to decide the
    retries); no swap, so no swap overage.
    """
    nr = task.nr_pages_over_high
    if not nr:
        return
    task.nr_pages_over_high = 0
    m = task.cg_state
    retries = MAX_RECLAIM_RETRIES
    in_retry = False
    while True:
        reclaimed = reclaim_high(S, m, SWAP_CLUSTER_MAX if in_retry else nr, cpu)
        penalty = min(calculate_high_delay(S, nr, mem_find_max_overage(m)),
                      MEMCG_MAX_HIGH_DELAY_JIFFIES)
        if penalty <= HZ // 100:
            return
        if reclaimed:
            in_retry = True
            continue
        if retries:
            retries -= 1
            in_retry = True
            continue
        return


# ---------------------------------------------------------------- try_charge

def try_charge(S: System, m: MemCgroupState, gfp: int, nr: int, cpu: int,
               task: Task | None, in_irq: bool) -> int:
    """mirrors try_charge() (v5.11) / try_charge_memcg() (current).  Returns 0 or -ENOMEM."""
    p = S.profile
    if m.is_root:
        return 0
    batch = max(p.charge_batch, nr)
    if p.nospin_no_batch and not gfp & (__GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM):
        batch = nr                                    # !gfpflags_allow_spinning()
    retries = MAX_RECLAIM_RETRIES
    drained = False
    raised_max = False
    passed_oom = False
    blocking = bool(gfp & __GFP_DIRECT_RECLAIM)
    dying_task = task is not None and task.killed
    over: MemCgroupState
    while True:   # retry:
        if consume_stock(S, m, nr, cpu):
            return 0
        fail = m.memory.try_charge(batch)
        if fail is None:
            return _done_restock(S, m, gfp, nr, batch, cpu, task, in_irq)
        over = S.memcg_of_counter[id(fail)]
        if batch > nr:
            batch = nr
            continue
        if p.gfp_atomic_forces and gfp & __GFP_ATOMIC:
            break                                     # v5.x: goto force
        if p.dying_task_forces and dying_task:
            break                                     # v5.11: should_force_charge()
        if not blocking:
            return _nomem(S, m, gfp, nr, over, raised_max)
        memcg_memory_event(S, over, "max")
        raised_max = True
        reclaimed = try_to_free_mem_cgroup_pages(S, over, nr, cpu, gfp)
        if mem_cgroup_margin(over) >= nr:
            continue
        if not drained:
            drain_all_stock(S, over)
            drained = True
            continue
        if gfp & __GFP_NORETRY:
            return _nomem(S, m, gfp, nr, over, raised_max)
        if reclaimed and nr <= (1 << PAGE_ALLOC_COSTLY_ORDER):
            continue
        if retries:
            retries -= 1
            continue
        if gfp & __GFP_RETRY_MAYFAIL:
            return _nomem(S, m, gfp, nr, over, raised_max)
        if p.nofail_forces_before_oom and gfp & __GFP_NOFAIL:
            break                                     # v5.10/v5.11: force before the OOM
        if p.dying_task_forces:                       # v5.11 order of the checks
            if dying_task:
                break
            if mem_cgroup_oom(S, over, nr):
                retries = MAX_RECLAIM_RETRIES
                continue
            if nr <= (1 << PAGE_ALLOC_COSTLY_ORDER):
                break                                 # OOM_FAILED: force
            return _nomem(S, m, gfp, nr, over, raised_max)   # OOM_SKIPPED
        if passed_oom and dying_task:
            return _nomem(S, m, gfp, nr, over, raised_max)
        if mem_cgroup_oom(S, over, nr):
            passed_oom = True
            retries = MAX_RECLAIM_RETRIES
            continue
        return _nomem(S, m, gfp, nr, over, raised_max)
    return _force(S, m, nr, over, raised_max)


def _nomem(S: System, m: MemCgroupState, gfp: int, nr: int, over: MemCgroupState,
           raised_max: bool) -> int:
    forced = __GFP_NOFAIL | (__GFP_HIGH if S.profile.gfp_high_forces else 0)
    if not gfp & forced:
        return -12  # -ENOMEM
    return _force(S, m, nr, over, raised_max)


def _force(S: System, m: MemCgroupState, nr: int, over: MemCgroupState, raised_max: bool) -> int:
    """the force: label: charge exactly nr pages over the limit."""
    if S.profile.max_event_on_force and not raised_max:
        memcg_memory_event(S, over, "max")
    m.memory.charge(nr)
    return 0


def _done_restock(S: System, m: MemCgroupState, gfp: int, nr: int, batch: int, cpu: int,
                  task: Task | None, in_irq: bool) -> int:
    """the done_restock: label: stock the surplus, then note memory.high breaches."""
    if batch > nr:
        refill_stock(S, m, batch - nr, cpu)
    cur: MemCgroupState | None = m
    while cur is not None:
        high = cur.memory.usage > cur.memory.high
        if in_irq or task is None:
            # interrupt (or kworker) context: schedule memcg->high_work.  Simplified: it
            # runs at once.  A kworker's own debt would never be paid on return to user.
            if high:
                if in_irq:
                    reclaim_high(S, cur, S.profile.charge_batch, cpu)
                break
            cur = cur.parent
            continue
        if high:
            task.nr_pages_over_high += batch
            break
        cur = cur.parent
    if (task is not None and not in_irq and S.profile.sync_high_enforcement
            and task.nr_pages_over_high > S.profile.charge_batch and gfp & __GFP_DIRECT_RECLAIM):
        handle_over_high(S, task, cpu)
    return 0


def info(m: MemCgroupState) -> dict[str, Any]:
    c = m.memory
    return dict(usage=c.usage, max=c.max, high=c.high, low=c.low, min=c.min,
                watermark=c.watermark, failcnt=c.failcnt, min_usage=c.min_usage,
                low_usage=c.low_usage, children_min_usage=c.children_min_usage,
                children_low_usage=c.children_low_usage, kmem_usage=m.kmem.usage,
                anon_pages=m.anon_pages, file_pages=m.file_pages, css_refs=m.css_refs)
