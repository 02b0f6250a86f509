"""bpf_mem_alloc (kernel/bpf/memalloc.c, v6.1+): per-cpu object caches.

One cache per possible cpu for one object size.  Objects are prefilled at
init, popped without kmalloc on the fast path, refilled in batches with
GFP_NOWAIT | __GFP_ACCOUNT under the objcg captured at init, and freed back
to the cache; above the high watermark they are released after an RCU
grace period (queued work here).  So the memcg sees batches, not elements.

Profile switches: memalloc_prefill_split (v6.8: per-cpu caches use watermarks
1/3 and prefill one object; before, c->unit_size -- the value size of a per-cpu
cache -- sets them like any other), memalloc_prefill_kernel_gfp (v6.6: the
prefill may reclaim) and memalloc_reuse (v6.6: a refill first takes back
objects still waiting for their grace period).

Simplification: the refill irq_work runs synchronously right after the
allocation that crossed the low watermark (as it would on irq enable after a
syscall); the free_by_rcu lists are freed when deferred work runs, and the
objects waiting for a grace period are one list per batch (the kernel keeps
free_by_rcu_ttrace and waiting_for_gp_ttrace per cpu; a refill reuses the
newest first either way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

LLIST_NODE_SZ = 8
PCPU_CACHE_OBJ = 16     # per-cpu mode: 16-byte kmalloc object (header + percpu ptr)


@dataclass
class MemCache:
    """struct bpf_mem_cache of one cpu."""

    cpu: int
    unit_size: int
    low: int
    high: int
    batch: int
    free: list[tuple[int, int]] = field(default_factory=list)  # (kmalloc addr, percpu addr)


def watermarks(unit_size: int, percpu_small: bool) -> tuple[int, int, int]:
    """Mirrors init_refill_work() / prefill_mem_cache()'s watermark rules: (low, high,
    batch).  percpu_small: a per-cpu cache of v6.8+ (switch memalloc_prefill_split)."""
    if percpu_small:
        low, high = 1, 3
    elif unit_size <= 256:
        low, high = 32, 96
    else:
        low = max(32 * 256 // unit_size, 1)
        high = max(96 * 256 // unit_size, 3)
    batch = max((high - low) // 4 * 3, 1)
    return low, high, batch


class BpfMemAlloc:
    """struct bpf_mem_alloc of a map: `size` bytes per object (percpu: a per-cpu area)."""

    def __init__(self, owner: Any, size: int, percpu: bool) -> None:
        """Mirrors bpf_mem_alloc_init(): captures the objcg of current, prefills."""
        self.owner = owner                # the BpfMap whose books record the objects
        self.system = owner.system
        self.percpu = percpu
        self.size = size
        self.unit_size = PCPU_CACHE_OBJ if percpu else size + LLIST_NODE_SZ
        self.objcg: int | None = None
        if owner.bprof.account:
            self.objcg = self.system.get_obj_cgroup_from_current()
        # c->unit_size: the value size of a per-cpu cache (its objects are a 16-byte
        # kmalloc holder plus the per-cpu area), size + LLIST_NODE_SZ otherwise
        c_unit = size if percpu else self.unit_size
        small = percpu and owner.bprof.memalloc_prefill_split
        low, high, batch = watermarks(c_unit, small)
        self.caches = [MemCache(c, self.unit_size, low, high, batch)
                       for c in range(self.system.nr_cpus)]
        self.live = 0
        self.nobj = 0          # objects allocated and not yet freed (cached or live)
        # bytes the memcg was charged per object (asked of the core at the first allocation)
        self.slab_charge = 0
        owner.pools.append(self)
        # objects freed above the high watermark, waiting for their grace period:
        # (cpu, objects) per batch
        self._waiting: list[tuple[int, list[tuple[int, int]]]] = []
        g = owner.gfp
        # prefill_mem_cache() -> alloc_bulk(atomic=false): GFP_KERNEL from v6.6, else the
        # refill's GFP_NOWAIT; 4 objects for c->unit_size <= 256, else 1 (per-cpu: 1, v6.8+)
        base = g.KERNEL if owner.bprof.memalloc_prefill_kernel_gfp else g.NOWAIT
        prefill_gfp = base | g.NOWARN | g.ACCOUNT
        n = 1 if small or c_unit > 256 else 4
        for c in self.caches:
            self._alloc_bulk(c, n, prefill_gfp)

    def _memcg(self) -> Any:
        if self.objcg is None:
            return self.system.root
        return self.system.objcg_memcg(self.objcg)

    def _alloc_bulk(self, c: MemCache, n: int, gfp: int) -> int:
        """Mirrors alloc_bulk(): kmalloc (or percpu) objects under set_active_memcg of the
        cache's objcg; stops at the first failure.  Returns how many were added.
        Non-per-cpu objects come from one C call that stops at the first failure
        (System.kmalloc_until_fail)."""
        sysm = self.system
        done = self._reuse(c, n)
        n -= done
        if not n:
            return done
        cg = self._memcg()
        with sysm.active_memcg(cg):
            if not self.percpu:
                addrs = sysm.kmalloc_until_fail(self.unit_size, n, gfp)
                done += len(addrs)
                c.free.extend(zip(addrs.tolist(), repeat(0)))   # (addr, 0) objects
                self._added(len(addrs), c.free)
                return done
            else:
                for _ in range(n):
                    try:
                        p = sysm.alloc_percpu(self.size, 8, gfp)
                        try:
                            a = sysm.kmalloc(PCPU_CACHE_OBJ, gfp)
                        except OSError:
                            sysm.free_percpu(p)
                            raise
                    except OSError:
                        break      # alloc_bulk() stops quietly; prefill failure is silent too
                    c.free.append((a, p))
                    done += 1
                    self._added(1, c.free)
        return done

    def _reuse(self, c: MemCache, n: int) -> int:
        """alloc_bulk()'s first loops (switch memalloc_reuse): up to n objects of cpu c's
        own batches still waiting for a grace period go back on its free list, newest
        first; they stay charged, so no new charge is made for them."""
        if not self.owner.bprof.memalloc_reuse or not self._waiting:
            return 0
        got = 0
        for cpu, objs in reversed(self._waiting):
            while cpu == c.cpu and objs and got < n:
                c.free.append(objs.pop())
                got += 1
        return got

    def _waiting_on(self, cpu: int) -> bool:
        return any(c == cpu and objs for c, objs in self._waiting)

    def _added(self, n: int, objs: list[tuple[int, int]]) -> None:
        """Count ``n`` new objects; the first one tells what the core charges per object."""
        self.nobj += n
        if n and not self.slab_charge:
            self.slab_charge = self.system.kmalloc_charged_size(objs[-1][0])

    def charged(self) -> bool:
        """Whether the objects are charged to a non-root memcg: the cache's objcg's memcg
        now (bpf_mem_alloc charges every object to the objcg captured at init)."""
        return self.objcg is not None and self._memcg() is not self.system.root

    def books(self) -> list[tuple[str, int, int]]:
        """(kind, requested bytes, memcg bytes) of every object this allocator holds
        (cached or handed out): its objects are booked in aggregate, not one by one."""
        if not self.percpu:
            return [("slab", self.nobj * self.unit_size, self.nobj * self.slab_charge)]
        return [("slab", self.nobj * PCPU_CACHE_OBJ, self.nobj * self.slab_charge),
                ("percpu", self.nobj * self.size * self.system.nr_cpus,
                 self.nobj * self.system.pcpu_obj_full_size(self.size))]

    def _cache(self) -> MemCache:
        cpu = self.system.current_cpu
        return self.caches[cpu if cpu is not None else 0]

    def alloc(self) -> tuple[int, int] | None:
        """Mirrors bpf_mem_cache_alloc() -> unit_alloc(): pop, refill below low."""
        c = self._cache()
        obj = c.free.pop() if c.free else None
        if len(c.free) < c.low:
            g = self.owner.gfp
            self._alloc_bulk(c, c.batch, g.NOWAIT | g.NOWARN | g.ACCOUNT | g.ZERO)
        if obj is not None:
            self.live += 1
        return obj

    def alloc_addr(self) -> int:
        """alloc() for a non-per-cpu cache in one frame, returning the object's address
        (its object is (addr, 0)); 0 when the cache was empty (after the refill try)."""
        cpu = self.system.current_cpu
        c = self.caches[cpu or 0]
        free = c.free
        addr = free.pop()[0] if free else 0
        if len(free) < c.low:
            g = self.owner.gfp
            self._alloc_bulk(c, c.batch, g.NOWAIT | g.NOWARN | g.ACCOUNT | g.ZERO)
        if addr:
            self.live += 1
        return addr

    def alloc_many(self, k: int) -> list[tuple[int, int]]:
        """k alloc()s in a row, with the same pops and the same refills at the same
        points (a refill follows the pop that leaves the cache below low), done a run
        of pops at a time.  Stops at the first alloc() that finds the cache empty (a
        refill is still tried there, as alloc() does); returns the objects got."""
        c = self._cache()
        g = self.owner.gfp
        refill_gfp = g.NOWAIT | g.NOWARN | g.ACCOUNT | g.ZERO
        out: list[tuple[int, int]] = []
        while len(out) < k:
            free = c.free
            if not free:
                if c.low > 0:
                    self._alloc_bulk(c, c.batch, refill_gfp)
                break
            # pops until the one that leaves fewer than low objects (1 if already below)
            run = min(len(free) - c.low + 1 if len(free) >= c.low else 1, k - len(out))
            chunk = free[-run:]
            del free[-run:]
            chunk.reverse()               # pop() order
            out.extend(chunk)
            self.live += run
            if len(free) < c.low:
                self._alloc_bulk(c, c.batch, refill_gfp)
        return out

    def alloc_many_addrs(self, k: int) -> np.ndarray:
        """alloc_many() for a non-per-cpu cache, returning the objects' addresses (the
        objects are (addr, 0)) and fetching the refills ahead: the refills k pops need
        if every one succeeds are counted first, then allocated in one C call that stops
        at the first failure (the same kmallocs in the same order, as nothing else
        touches the mm in between), and the pops consume them as the refills would.
        After a refill that came up short, later refills are made live as alloc() does."""
        assert not self.percpu
        c = self._cache()
        if self.owner.bprof.memalloc_reuse and self._waiting_on(c.cpu):
            # refills would first take back waiting objects: the one-by-one path
            return np.array([a for a, _ in self.alloc_many(k)], dtype=np.uint64)
        low, batch = c.low, c.batch
        f, got, refills = len(c.free), 0, 0
        while got < k and f:
            run = min(f - low + 1 if f >= low else 1, k - got)
            got += run
            f -= run
            if f < low:
                refills += 1
                f += batch
        g = self.owner.gfp
        gfp = g.NOWAIT | g.NOWARN | g.ACCOUNT | g.ZERO
        sysm = self.system
        cg = self._memcg()
        pool_arr = np.zeros(0, dtype=np.uint64)
        if refills:
            with sysm.active_memcg(cg):
                pool_arr = sysm.kmalloc_until_fail(self.unit_size, refills * batch, gfp)
            if len(pool_arr):
                self._added(len(pool_arr), [(int(pool_arr[0]), 0)])
        live = len(pool_arr) < refills * batch     # a prefetched refill came up short
        if not live and (c.free or not k):
            return self._pop_all(c, k, pool_arr)
        pool: list[int] = pool_arr.tolist()
        free = [a for a, _ in c.free]
        out = np.empty(k, dtype=np.uint64)
        pos = pi = 0
        try:
            while pos < k:
                if not free:
                    # this alloc() finds the cache empty: it still tries a refill, then fails
                    c.free = list(zip(free, repeat(0)))
                    self._alloc_bulk(c, batch, gfp)
                    free = [a for a, _ in c.free]
                    break
                run = min(len(free) - low + 1 if len(free) >= low else 1, k - pos)
                chunk = free[-run:]
                del free[-run:]
                chunk.reverse()               # pop() order
                out[pos:pos + run] = chunk
                pos += run
                self.live += run
                if len(free) < low:
                    if pi < len(pool):
                        take = pool[pi:pi + batch]
                        pi += len(take)
                        free.extend(take)
                    elif live:
                        c.free = list(zip(free, repeat(0)))
                        self._alloc_bulk(c, batch, gfp)
                        free = [a for a, _ in c.free]
                    else:  # pragma: no cover - the schedule above counted every refill
                        raise AssertionError("alloc_many_addrs: refill schedule mismatch")
        finally:
            c.free = list(zip(free, repeat(0)))
        assert pi == len(pool)
        return out[:pos]

    def _pop_all(self, c: MemCache, k: int, pool: np.ndarray) -> np.ndarray:
        """alloc_many_addrs() when every refill it counted was made: the cache as a stack
        of addresses, k pops a run at a time, each refill pushed where the cache drops
        below low (perf: array slices, not lists, for a million pops)."""
        low, batch = c.low, c.batch
        stack = np.empty(len(c.free) + batch + low, dtype=np.uint64)
        top = len(c.free)
        stack[:top] = [a for a, _ in c.free]
        out = np.empty(k, dtype=np.uint64)
        pos = pi = 0
        steady = False      # the last refill left the cache at low - 1 + batch
        while pos < k:
            if steady and k - pos >= batch:
                # each run pops the batch the refill before it pushed (in reverse), then a
                # refill pushes the next one: m such runs at once
                m = (k - pos) // batch
                seg = pool[pi - batch:pi + (m - 1) * batch]
                out[pos:pos + m * batch] = seg.reshape(m, batch)[:, ::-1].ravel()
                pos += m * batch
                pi += m * batch
                stack[low - 1:low - 1 + batch] = pool[pi - batch:pi]
                continue
            run = min(top - low + 1 if top >= low else 1, k - pos)
            out[pos:pos + run] = stack[top - run:top][::-1]     # pop() order
            top -= run
            pos += run
            steady = False
            if top < low:
                steady = top == low - 1
                stack[top:top + batch] = pool[pi:pi + batch]
                top += batch
                pi += batch
        assert pi == len(pool)
        self.live += k
        c.free = list(zip(stack[:top].tolist(), repeat(0)))
        return out

    def free(self, obj: tuple[int, int]) -> None:
        """Mirrors bpf_mem_cache_free() -> unit_free(): back to the current cpu's cache;
        above high, the excess down to (high+low)/2 waits for an RCU grace period."""
        c = self._cache()
        self.live -= 1
        c.free.append(obj)
        if len(c.free) > c.high:
            keep = (c.high + c.low) // 2
            excess = c.free[keep:]
            del c.free[keep:]
            # free_by_rcu: released by deferred work, or by destroy() if the map goes first
            self._waiting.append((c.cpu, excess))
            self.system.bpf_state.queue_work(lambda: self._release_waiting(excess))

    def free_rcu(self, obj: tuple[int, int]) -> None:
        """Mirrors bpf_mem_cache_free_rcu() -> unit_free_rcu(): the object is not reused
        before an RCU grace period; then check_free_by_rcu()/__free_by_rcu() pass it on to
        be freed (simplified: freed when the deferred work runs; the kernel frees it after
        a further RCU tasks trace grace period, and a refill may take it back before)."""
        self.live -= 1
        batch = [obj]
        # cpu -1: no refill takes it back (memalloc_reuse reuses the tasks-trace lists,
        # which it reaches only after this grace period, when the model has freed it)
        self._waiting.append((-1, batch))
        self.system.bpf_state.queue_work(lambda: self._release_waiting(batch))

    def _release_waiting(self, excess: list[tuple[int, int]]) -> None:
        for i, (_, w) in enumerate(self._waiting):
            if w is excess:
                del self._waiting[i]
                self._release(excess)
                return

    def _release(self, objs: list[tuple[int, int]]) -> None:
        sysm = self.system
        for a, p in objs:
            sysm.kfree(a)
            if p:
                sysm.free_percpu(p)
        self.nobj -= len(objs)

    def cached(self) -> int:
        return sum(len(c.free) for c in self.caches)

    def destroy(self) -> None:
        """Mirrors bpf_mem_alloc_destroy(): free every cached object, drop the objcg.
        (Live objects are freed by the owner before this.)"""
        for c in self.caches:
            objs, c.free = c.free, []
            self._release(objs)
        waiting, self._waiting = self._waiting, []
        for _, objs in waiting:
            self._release(objs)
        if self.objcg is not None:
            self.system.obj_cgroup_put(self.objcg)
            self.objcg = None
