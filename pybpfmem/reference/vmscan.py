"""memcg reclaim with memory.min / memory.low protection and shrinkers (reference model of
mm/vmscan.c, mm/page_counter.c effective_protection(), mm/shrinker.c do_shrink_slab() and
fs/super.c super_cache_scan()).

What can be reclaimed: the page cache (file pages charged with charge_user(file=True)) and
the unused objects on the LRUs of reclaimable kmem caches (KmemCache.lru_add()).
Simplifications, the same the core documents:
- get_scan_count(): one inactive file list per memcg, scanned ``size >> priority`` (after
  the proportional protection); every page scanned is reclaimed;
- no reclaim cookie: every walk starts at the target;
- the reference has no slab pages, so it cannot count the slab pages shrinkers free; the
  profiles where memcg reclaim counts them (memcg_reclaim_counts_slab, v6.3 and older) are
  not supported with shrinkable objects (NotImplementedError).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .memcg import MemCgroupState, css_put, memcg_memory_event, memcg_uncharge, mod_memcg_state

if TYPE_CHECKING:
    from .system import KmemCache, System

DEF_PRIORITY = 12
SWAP_CLUSTER_MAX = 32
DEFAULT_SEEKS = 2
SB_BATCH = 1024                 # super_block's s_shrink->batch
_GFP_FS = 0x80


def effective_protection(usage: int, parent_usage: int, setting: int, parent_effective: int,
                         siblings_protected: int, recursive: bool) -> int:
    """effective_protection(): a child's share of what its parent's protection affords."""
    protected = min(usage, setting)
    if siblings_protected > parent_effective:
        return protected * parent_effective // siblings_protected
    ep = protected
    if not recursive:
        return ep
    if parent_effective > siblings_protected and parent_usage > siblings_protected and usage > protected:
        ep += (parent_effective - siblings_protected) * (usage - protected) // (parent_usage - siblings_protected)
    return ep


def calculate_protection(S: System, target: MemCgroupState, m: MemCgroupState) -> None:
    """mem_cgroup_calculate_protection(): stateful, top-down (emin/elow kept on the memcg)."""
    if m is target:
        return
    usage = m.memory.usage
    if not usage or m.parent is None:
        return
    if m.parent is target:
        m.emin, m.elow = m.memory.min, m.memory.low
        return
    p = m.parent
    rec = S.cgroup_version == "v2" and S.memory_recursiveprot
    m.emin = effective_protection(usage, p.memory.usage, m.memory.min, p.emin,
                                  p.memory.children_min_usage, rec)
    m.elow = effective_protection(usage, p.memory.usage, m.memory.low, p.elow,
                                  p.memory.children_low_usage, rec)


def _unprotected(S: System, target: MemCgroupState, m: MemCgroupState) -> bool:
    return m.is_root or (S.profile.reclaim_target_unprotected and m is target)


class ScanControl:
    def __init__(self, target: MemCgroupState, nr_to_reclaim: int, cpu: int, gfp: int) -> None:
        self.target = target
        self.nr_to_reclaim = nr_to_reclaim
        self.nr_reclaimed = 0
        self.cpu = cpu
        self.gfp = gfp
        self.priority = DEF_PRIORITY
        self.low_reclaim = False
        self.low_skipped = False
        self.full_walk = False


def _scan_target(sc: ScanControl, m: MemCgroupState, size: int) -> int:
    """get_scan_count() for the file list: apply_proportional_protection(), >> priority."""
    scan = size
    if m is not sc.target and (m.emin or m.elow):
        if not sc.low_reclaim and m.elow > m.emin:
            protection = m.elow
            sc.low_skipped = True
        else:
            protection = m.emin
        cgroup_size = max(m.memory.usage, protection)
        scan = max(scan - scan * protection // (cgroup_size + 1), SWAP_CLUSTER_MAX)
    scan >>= sc.priority
    if not scan and not m.online:
        scan = min(size, SWAP_CLUSTER_MAX)
    return scan


def shrink_lruvec(S: System, m: MemCgroupState, sc: ScanControl) -> None:
    scan = _scan_target(sc, m, m.file_pages)
    got_here = 0
    while scan:
        n = min(scan, SWAP_CLUSTER_MAX)
        scan -= n
        got = min(n, m.file_pages)
        if got:
            m.file_pages -= got
            mod_memcg_state(m, "file", -got * S.page_size)
            mod_memcg_state(m, "pgscan", got)
            mod_memcg_state(m, "pgsteal", got)
            if not m.is_root:
                memcg_uncharge(S, m, got)           # uncharge_batch(): direct
            css_put(S, m, got)
            got_here += got
        if got_here >= sc.nr_to_reclaim:
            break
    sc.nr_reclaimed += got_here


def _sb_scan(S: System, cache: KmemCache, m: MemCgroupState, gfp: int, nr_to_scan: int,
             cpu: int) -> int | None:
    """super_cache_scan() -> prune_dcache_sb() of m's list; None is SHRINK_STOP."""
    if not gfp & _GFP_FS:
        return None
    lst = cache.lru.get(m, {})
    dentries = len(lst)
    total = dentries + (0 if S.profile.sb_scan_exact_total else 1) or 1
    walk = (nr_to_scan // total) * dentries + (nr_to_scan % total) * dentries // total + 1
    freed = 0
    while walk > 0 and lst:
        walk -= 1
        addr = next(iter(lst))                     # the oldest
        S._slab_free(addr, S._objects[addr], cpu)  # leaves the list first
        freed += 1
    return freed


def do_shrink_slab(S: System, cache: KmemCache, m: MemCgroupState, gfp: int, priority: int,
                   cpu: int) -> int:
    freeable = len(cache.lru.get(m, {}))
    if not freeable:
        return 0
    per_memcg = S.profile.shrinker_deferred_per_memcg
    key = m if per_memcg else None
    nr = cache.deferred.pop(key, 0)
    delta = (freeable >> priority) * 4 // DEFAULT_SEEKS
    if per_memcg:
        total_scan = min((nr >> priority) + delta, 2 * freeable)
    else:
        total_scan = nr + delta
        next_deferred = total_scan
        if delta < freeable // 4:
            total_scan = min(total_scan, freeable // 2)
        total_scan = min(total_scan, freeable * 2)
    freed = scanned = 0
    while total_scan >= SB_BATCH or total_scan >= freeable:
        n = min(SB_BATCH, total_scan)
        ret = _sb_scan(S, cache, m, gfp, n, cpu)
        if ret is None:
            break
        freed += ret
        total_scan -= n
        scanned += n
    if per_memcg:
        next_deferred = min(max(nr + delta - scanned, 0), 2 * freeable)
    else:
        next_deferred = max(next_deferred - scanned, 0)
    cache.deferred[key] = cache.deferred.get(key, 0) + next_deferred
    return freed


def shrink_slab(S: System, m: MemCgroupState, sc: ScanControl) -> None:
    if not m.online:
        return                                    # its lists went to the parent at offline
    for cache in S.caches:
        if cache.lru.get(m):
            if S.profile.memcg_reclaim_counts_slab:
                raise NotImplementedError("the reference has no slab pages to count as reclaimed")
            do_shrink_slab(S, cache, m, sc.gfp, sc.priority, sc.cpu)


def shrink_node_memcgs(S: System, sc: ScanControl) -> None:
    partial = S.profile.reclaim_partial_walk and not sc.full_walk
    for m in sc.target.subtree():
        calculate_protection(S, sc.target, m)
        if not _unprotected(S, sc.target, m) and m.emin >= m.memory.usage:
            continue                              # below memory.min
        if not _unprotected(S, sc.target, m) and m.elow >= m.memory.usage:
            if not sc.low_reclaim:
                sc.low_skipped = True
                continue
            memcg_memory_event(S, m, "low")
        shrink_lruvec(S, m, sc)
        shrink_slab(S, m, sc)
        if partial and sc.nr_reclaimed >= sc.nr_to_reclaim:
            break


def try_to_free_mem_cgroup_pages(S: System, m: MemCgroupState, nr: int, cpu: int = 0,
                                 gfp: int = 0xCC0) -> int:
    """try_to_free_mem_cgroup_pages() -> do_try_to_free_pages(): priorities 12..0, then a
    full-walk retry (partial-walk profiles) and a memory.low-breaching retry."""
    sc = ScanControl(m, max(nr, SWAP_CLUSTER_MAX), cpu, gfp)
    while True:
        sc.priority = DEF_PRIORITY
        while sc.priority >= 0:
            shrink_node_memcgs(S, sc)
            if sc.nr_reclaimed >= sc.nr_to_reclaim:
                break
            sc.priority -= 1
        if sc.nr_reclaimed:
            return sc.nr_reclaimed
        if S.profile.reclaim_partial_walk and not sc.full_walk:
            sc.full_walk = True
            continue
        if sc.low_skipped:
            sc.low_reclaim, sc.low_skipped = True, False
            continue
        return 0


def reparent_list_lrus(S: System, m: MemCgroupState) -> None:
    """memcg_reparent_list_lrus() + reparent_shrinker_deferred() at offline."""
    parent = m.parent
    assert parent is not None
    for cache in S.caches:
        lst = cache.lru.pop(m, None)
        if lst:
            for addr in lst:
                cache.where[addr] = parent
            lst.update(cache.lru.get(parent, {}))          # list_splice_init(): at the head
            cache.lru[parent] = lst
        if S.profile.shrinker_deferred_per_memcg and m in cache.deferred:
            cache.deferred[parent] = cache.deferred.get(parent, 0) + cache.deferred.pop(m)


def drop_slab(S: System, cpu: int) -> int:
    """drop_slab(): every memcg's shrinkers at priority 0, passes until (freed >> pass) <= 1."""
    total, shift = 0, 0
    while True:
        freed = 0
        for m in S._root.subtree():
            if m.online:
                for cache in S.caches:
                    if cache.lru.get(m):
                        freed += do_shrink_slab(S, cache, m, 0xCC0, 0, cpu)
        total += freed
        if (freed >> shift) <= 1:
            return total
        shift += 1
