"""Differential state machines: the C core (pybpfmem.System) against the pure-Python
reference model (pybpfmem.reference.System), step by step.

Each rule applies the same operation to both Systems and then compares every
counter, event and statistic of every cgroup, and checks the invariants of
DESIGN.md.  Rule arguments are plain ints/strings (indexes are taken modulo the
current list lengths), so hypothesis prints a failing run as a replayable script:

    from pybpfmem.reference.differential import Diff_6_18
    state = Diff_6_18(); state.mkdir(parent=0); state.alloc(...); state.teardown()

Teardown ("baseline") is defined as: every object, page, percpu area, user page and
raw charge freed, every task exited (their kernel stacks freed), every cgroup removed
(the structures mem_cgroup_alloc() charged to its parent go with it), drain_all_stock(root).
Then every statistic is 0 and root's memory usage equals the pages still parked in
objcg->nr_charged_bytes of the objcgs that point into its subtree (each a whole number
of pages) - the kernel returns those only when a stock adopts the objcg again
(drain_obj_stock() of another objcg) or the objcg is released (obj_cgroup_release()).

Used by tests/test_differential.py and by ``pybpfmem fuzz`` (hypothesis is a
development dependency: import this module only where it is installed).
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import pybpfmem
from pybpfmem import reference
from pybpfmem import constants as K

from .fuzzing import StepStats, counted

# module-level aliases: names starting with "__" would be mangled inside the class body
GFP_KERNEL, GFP_USER = K.GFP_KERNEL, K.GFP_USER
G_ACCOUNT, G_NOFAIL, G_NORETRY = K.__GFP_ACCOUNT, K.__GFP_NOFAIL, K.__GFP_NORETRY
G_RETRY_MAYFAIL, G_RECLAIMABLE = K.__GFP_RETRY_MAYFAIL, K.__GFP_RECLAIMABLE

PS = 4096
GFP_CLASSES = ("KERNEL", "NORETRY", "RETRY_MAYFAIL", "NOFAIL", "ATOMIC", "NOWAIT", "USER")
KMALLOC_SIZES = (1, 8, 100, 136, 1000, 4000, 4096, 4097, 8192, 8193, 20000, 70000)
LIMITS = ("0", "4096", "32768", "135168", "262144", "409600", "1M", "max")
MAX_CGROUPS = 9
# memory.stat event counters: they count, they never go back to 0
RECLAIM_EVENTS = frozenset({"pgscan", "pgsteal", "pgscan_direct", "pgsteal_direct"})


def gfp_of(sys: Any, cls: str, account: bool) -> int:
    g = {"KERNEL": GFP_KERNEL, "NORETRY": GFP_KERNEL | G_NORETRY,
         "RETRY_MAYFAIL": GFP_KERNEL | G_RETRY_MAYFAIL, "NOFAIL": GFP_KERNEL | G_NOFAIL,
         "ATOMIC": sys.gfp.GFP_ATOMIC, "NOWAIT": sys.gfp.GFP_NOWAIT, "USER": GFP_USER}[cls]
    return g | (G_ACCOUNT if account else 0)


class DiffBase(RuleBasedStateMachine):
    """Applies every step to ``self.real`` and ``self.ref`` and compares them."""

    PROFILE = "6.18"
    RECURSIVEPROT = False
    stats: StepStats | None = None     # set on a subclass by with_stats() to count steps

    def __init__(self) -> None:
        super().__init__()
        if self.stats is not None:
            self.stats.examples += 1
        kw = dict(nr_cpus=2, page_size=PS, profile=self.PROFILE, cgroup="v2", oom_kill=False,
                  memory_recursiveprot=self.RECURSIVEPROT)
        self.real = pybpfmem.System(**kw)
        self.ref = reference.System(**kw)
        self.cgs: list[tuple[Any, Any]] = [(self.real.root, self.ref.root)]
        self.tasks: list[tuple[Any, Any]] = []
        self.objs: list[tuple[str, int, int]] = []        # (kind, real addr, ref addr)
        self.user: dict[tuple[int, bool], int] = {}      # (cg index, file) -> pages
        self.raw: dict[int, int] = {}                    # cg index -> raw pages charged
        self.names = 0
        self.forced = False

    # ---------------------------------------------------------------- helpers
    def both(self, fn_real: Any, fn_ref: Any) -> tuple[Any, Any]:
        """Run one operation on both sides; both must fail alike or both succeed."""
        out = []
        for fn in (fn_real, fn_ref):
            try:
                out.append(("ok", fn()))
            except OSError as e:
                out.append(("err", e.errno))
        (kr, vr), (kf, vf) = out
        assert kr == kf, f"real {kr} {vr!r} vs reference {kf} {vf!r}"
        if kr == "err":
            assert vr == vf, f"errno real {vr} vs reference {vf}"
            return None, None
        return vr, vf

    def live_cgs(self) -> list[int]:
        return [i for i, (r, f) in enumerate(self.cgs) if f.online]

    def ctx(self, kind: str, task: int, cpu: int, active: int) -> tuple[Any, Any]:
        """Context managers for (real, ref): a running task, or an interrupt, optionally
        with an active memcg."""
        stacks = []
        alive = [i for i, (r, f) in enumerate(self.tasks) if f.alive]
        for side in (0, 1):
            sysx = (self.real, self.ref)[side]
            es = contextlib.ExitStack()
            if kind == "task" and alive:
                es.enter_context(self.tasks[alive[task % len(alive)]][side].running(cpu=cpu))
            else:
                es.enter_context(sysx.in_interrupt(cpu=cpu))
            live = self.live_cgs()
            if active >= 0:
                es.enter_context(sysx.active_memcg(self.cgs[live[active % len(live)]][side]))
            stacks.append(es)
        return stacks[0], stacks[1]

    def stock_slab_deltas(self, side: int) -> list[tuple[str, dict[str, int]]]:
        """(path of the memcg, slab deltas) each cpu's object stock caches and has not yet
        applied to memory.stat (__account_obj_stock(), 6.x): a drain on a failure path
        applies them, which moves no memory."""
        out = []
        for cpu in range(2):
            if side == 0:
                si = self.real.stock_info(cpu)
                if si["cached_objcg"] < 0:
                    continue
                path = self.real.objcg_memcg(si["cached_objcg"]).path
                deltas = {"slab_reclaimable": si["nr_slab_reclaimable_b"],
                          "slab_unreclaimable": si["nr_slab_unreclaimable_b"]}
            else:
                st = self.ref.obj_stock[cpu]
                if st.cached is None:
                    continue
                path = self.ref._wrap(st.cached.memcg).path
                deltas = dict(st.slab_b)
            out.append((path, deltas))
        return out

    def stocked_pages(self, side: int) -> list[tuple[str, int]]:
        """(path of the memcg, pages) of every page-stock slot with pages: charged, so in
        usage, but held by no one (refill_stock())."""
        out = []
        paths = {r.id: r.path for r, f in self.cgs if f.online or f.dying}
        for cpu in range(2):
            if side == 0:
                si = self.real.stock_info(cpu)
                out += [(paths[m], n) for m, n in zip(si["cached"], si["nr_pages"]) if m >= 0 and n]
            else:
                ps = self.ref.page_stock[cpu]
                out += [(self.ref._wrap(m).path, n) for m, n in zip(ps.cached, ps.nr_pages)
                        if m is not None and n]
        return out

    def snapshot(self, side: int) -> list[Any]:
        """Every live or dying cgroup: path, usage less the pages the page stocks hold for
        its subtree, local events, memory.stat as it reads after every object stock's
        cached slab deltas are applied."""
        out = []
        cached = self.stock_slab_deltas(side)
        stocked = self.stocked_pages(side)
        for pair in self.cgs:
            cg = pair[side]
            if not (cg.online or cg.dying):
                continue
            if side == 0:     # the keys the reference models (reclaim moves LRU stats)
                keys = pair[1].stat()
                stat = {k: v for k, v in cg.stat().items() if k in keys}
            else:
                stat = cg.stat()
            for path, deltas in cached:
                if path == cg.path or path.startswith(cg.path.rstrip("/") + "/"):
                    for k, v in deltas.items():
                        stat[k] = stat.get(k, 0) + v
                        stat["slab"] = stat.get("slab", 0) + v
            held = sum(n for path, n in stocked if path == cg.path or path.startswith(cg.path.rstrip("/") + "/"))
            out.append((cg.path, cg.usage_pages - held, cg.events_local(), stat))
        return out

    # ---------------------------------------------------------------- rules
    @precondition(lambda self: len(self.cgs) < MAX_CGROUPS)
    @rule(parent=st.integers(0, 8))
    @counted
    def mkdir(self, parent: int) -> None:
        live = self.live_cgs()
        p = self.cgs[live[parent % len(live)]]
        self.names += 1
        name = f"c{self.names}"
        r, f = self.both(lambda: p[0].mkdir(name), lambda: p[1].mkdir(name))
        if r is not None:
            self.cgs.append((r, f))

    @rule(idx=st.integers(1, 8))
    @counted
    def rmdir(self, idx: int) -> None:
        if len(self.cgs) < 2:
            return
        i = 1 + idx % (len(self.cgs) - 1)
        r, f = self.cgs[i]
        self.both(r.rmdir, f.rmdir)

    @rule(idx=st.integers(0, 8), file=st.sampled_from(("memory.max", "memory.high",
                                                      "memory.low", "memory.min")),
          value=st.sampled_from(LIMITS))
    @counted
    def write_limit(self, idx: int, file: str, value: str) -> None:
        live = [i for i in self.live_cgs() if i]
        if not live:
            return
        r, f = self.cgs[live[idx % len(live)]]
        self.both(lambda: r.write(file, value), lambda: f.write(file, value))
        self.forced = True   # a max below usage is legal after this write

    @rule(idx=st.integers(0, 8))
    @counted
    def spawn(self, idx: int) -> None:
        live = self.live_cgs()
        r, f = self.cgs[live[idx % len(live)]]
        tr, tf = self.both(lambda: self.real.spawn(cgroup=r), lambda: self.ref.spawn(cgroup=f))
        if tr is not None:
            self.tasks.append((tr, tf))

    @rule(task=st.integers(0, 8))
    @counted
    def clone_thread(self, task: int) -> None:
        """clone(CLONE_THREAD): a kernel stack charged to the process's cgroup now."""
        if not self.tasks:
            return
        tr, tf = self.tasks[task % len(self.tasks)]
        r, f = self.both(tr.clone_thread, tf.clone_thread)
        if r is not None:
            self.tasks.append((r, f))

    @precondition(lambda self: not reference.PROFILES[self.PROFILE].memcg_reclaim_counts_slab)
    @rule(n=st.sampled_from((1, 31, 1100)), task=st.integers(0, 8), cpu=st.integers(0, 1),
          active=st.integers(-1, 8))
    @counted
    def dentries(self, n: int, task: int, cpu: int, active: int) -> None:
        """Negative dentries (unused on the LRU of the memcg charged), which reclaim's
        superblock shrinker frees.  Only where memcg reclaim does not count the slab pages
        they free (memcg_reclaim_counts_slab, before v6.4): the reference has no slab pages."""
        cr, cf = self.ctx("task", task, cpu, active)

        def call(sysx: Any, cm: Any) -> Any:
            with cm:
                return len(sysx.create_dentries(n))
        self.both(lambda: call(self.real, cr), lambda: call(self.ref, cf))

    @rule(task=st.integers(0, 8), idx=st.integers(0, 8))
    @counted
    def migrate(self, task: int, idx: int) -> None:
        if not self.tasks:
            return
        tr, tf = self.tasks[task % len(self.tasks)]
        live = self.live_cgs()
        r, f = self.cgs[live[idx % len(live)]]
        self.both(lambda: tr.migrate(r), lambda: tf.migrate(f))

    @rule(task=st.integers(0, 8))
    @counted
    def exit_task(self, task: int) -> None:
        if not self.tasks:
            return
        tr, tf = self.tasks[task % len(self.tasks)]
        self.both(tr.exit, tf.exit)

    @rule(idx=st.integers(0, 8), nr=st.sampled_from((1, 2, 7, 31, 32, 33, 64, 65, 200)),
          gfp=st.sampled_from(GFP_CLASSES), cpu=st.integers(0, 1))
    @counted
    def try_charge(self, idx: int, nr: int, gfp: str, cpu: int) -> None:
        live = [i for i in self.live_cgs() if i]
        if not live:
            return
        i = live[idx % len(live)]
        r, f = self.cgs[i]
        g = gfp_of(self.ref, gfp, False)
        before = (self.snapshot(0), self.snapshot(1))
        ok, _ = self.both(lambda: (r.try_charge(nr, g, cpu=cpu), 1)[1],
                          lambda: (f.try_charge(nr, g, cpu=cpu), 1)[1])
        if ok:
            self.raw[i] = self.raw.get(i, 0) + nr
        else:
            self.check_failed_changed_nothing(before)
        self.forced |= gfp in ("NOFAIL", "ATOMIC", "KERNEL", "USER")

    @rule(idx=st.integers(0, 8), frac=st.integers(1, 4), cpu=st.integers(0, 1))
    @counted
    def uncharge(self, idx: int, frac: int, cpu: int) -> None:
        have = [i for i, n in self.raw.items() if n]
        if not have:
            return
        i = have[idx % len(have)]
        nr = max(1, self.raw[i] // frac)
        r, f = self.cgs[i]
        self.both(lambda: r.uncharge(nr, cpu=cpu), lambda: f.uncharge(nr, cpu=cpu))
        self.raw[i] -= nr

    @rule(idx=st.integers(0, 8), nr=st.sampled_from((1, 3, 8, 40)), file=st.booleans(),
          gfp=st.sampled_from(GFP_CLASSES), cpu=st.integers(0, 1))
    @counted
    def charge_user(self, idx: int, nr: int, file: bool, gfp: str, cpu: int) -> None:
        live = self.live_cgs()
        i = live[idx % len(live)]
        r, f = self.cgs[i]
        g = gfp_of(self.ref, gfp, False)
        ok, _ = self.both(lambda: (r.charge_user(nr, g, cpu=cpu, file=file), 1)[1],
                          lambda: (f.charge_user(nr, g, cpu=cpu, file=file), 1)[1])
        if ok:
            self.user[(i, file)] = self.user.get((i, file), 0) + nr
        self.forced |= gfp in ("NOFAIL", "ATOMIC", "KERNEL", "USER")

    @rule(idx=st.integers(0, 8), frac=st.integers(1, 3))
    @counted
    def uncharge_user(self, idx: int, frac: int) -> None:
        # file pages may have been reclaimed: give back at most what both sides still hold
        have = [k for k, n in self.user.items() if n]
        if not have:
            return
        i, file = have[idx % len(have)]
        r, f = self.cgs[i]
        held = (f._st.file_pages if file else f._st.anon_pages)
        self.user[(i, file)] = held
        if held <= 0:
            return
        nr = max(1, held // frac)
        self.both(lambda: r.uncharge_user(nr, file=file), lambda: f.uncharge_user(nr, file=file))
        self.user[(i, file)] -= nr

    @rule(kind=st.sampled_from(("kmalloc", "kvmalloc", "vmalloc", "pages", "percpu")),
          size=st.sampled_from(KMALLOC_SIZES), gfp=st.sampled_from(GFP_CLASSES),
          account=st.booleans(), reclaimable=st.booleans(),
          ctx=st.sampled_from(("task", "irq")), task=st.integers(0, 8), cpu=st.integers(0, 1),
          active=st.integers(-1, 8))
    @counted
    def alloc(self, kind: str, size: int, gfp: str, account: bool, reclaimable: bool, ctx: str,
              task: int, cpu: int, active: int) -> None:
        g = gfp_of(self.ref, gfp, account) | (G_RECLAIMABLE if reclaimable else 0)
        before = (self.snapshot(0), self.snapshot(1))
        cr, cf = self.ctx(ctx, task, cpu, active)

        def call(sysx: Any, cm: Any) -> Any:
            with cm:
                if kind == "kmalloc":
                    return sysx.kmalloc(size, g)
                if kind == "kvmalloc":
                    return sysx.kvmalloc(size, g)
                if kind == "vmalloc":
                    return sysx.vmalloc(size, g)
                if kind == "pages":
                    return sysx.alloc_pages(size % 4, g)
                return sysx.alloc_percpu(min(size, 4096), 8, g)
        ar, af = self.both(lambda: call(self.real, cr), lambda: call(self.ref, cf))
        if ar is not None:
            self.objs.append((kind if kind != "pages" else f"pages{size % 4}", ar, af))
            self.compare_owner(kind, ar, af)
        elif kind != "vmalloc":
            self.check_failed_changed_nothing(before)
        self.forced |= gfp in ("NOFAIL", "ATOMIC", "KERNEL", "USER")

    @rule(idx=st.integers(0, 64), ctx=st.sampled_from(("none", "task", "irq")),
          task=st.integers(0, 8), cpu=st.integers(0, 1))
    @counted
    def free(self, idx: int, ctx: str, task: int, cpu: int) -> None:
        if not self.objs:
            return
        kind, ar, af = self.objs.pop(idx % len(self.objs))
        if ctx == "none":
            cr, cf = contextlib.nullcontext(), contextlib.nullcontext()
        else:
            cr, cf = self.ctx(ctx, task, cpu, -1)
        self.both(lambda: self._free(self.real, cr, kind, ar), lambda: self._free(self.ref, cf, kind, af))

    @staticmethod
    def _free(sysx: Any, cm: Any, kind: str, addr: int) -> None:
        with cm:
            if kind in ("kmalloc",):
                sysx.kfree(addr)
            elif kind == "kvmalloc":
                sysx.kvfree(addr)
            elif kind == "vmalloc":
                sysx.vfree(addr)
            elif kind.startswith("pages"):
                sysx.free_pages(addr, int(kind[5:]))
            else:
                sysx.free_percpu(addr)

    @rule(idx=st.integers(-1, 8))
    @counted
    def drain(self, idx: int) -> None:
        if idx < 0:
            self.real.drain_all_stock()
            self.ref.drain_all_stock()
            return
        live = self.live_cgs()
        r, f = self.cgs[live[idx % len(live)]]
        self.real.drain_all_stock(r)
        self.ref.drain_all_stock(f)

    # ---------------------------------------------------------------- checks
    def compare_owner(self, kind: str, ar: int, af: int) -> None:
        if kind not in ("kmalloc", "percpu") or ar == 16:
            return
        _, mr = self.real.obj_cgroup_of(ar)
        _, mf = self.ref.obj_cgroup_of(af)
        assert (mr and mr.path) == (mf and mf.path), f"owner of {kind}: {mr} vs {mf}"

    def check_failed_changed_nothing(self, before: tuple[list[Any], list[Any]]) -> None:
        """Invariant 4 on both sides: a failed operation raises no usage and changes no
        statistic, except what the failure path itself may do: pages it charged and gave
        back wait in a page stock (refill_stock(): still in usage, so the usage compared
        leaves the stocked pages out), stock drains lower usage and give back kernel pages
        (`kernel`), reclaim frees file pages (`file`) and the
        unused objects of reclaimable caches (`slab_reclaimable`, `slab`: they only fall)
        and counts them (the reclaim events, which only grow); where the object stock
        caches slab statistics (v5.14+, switch obj_stock_slab_stats) the drain of
        try_charge_memcg()'s retry (drain_all_stock() -> drain_obj_stock()) flushes them,
        so `slab*` may move either way."""
        exempt = {"file", "kernel", "slab_reclaimable", "slab"} | set(RECLAIM_EVENTS)
        only_fall: tuple[str, ...] = ("slab_reclaimable", "slab")
        if self.ref.profile.obj_stock_current:
            exempt |= {"slab_unreclaimable"}
            only_fall = ()
        for side in (0, 1):
            after = {row[0]: row for row in self.snapshot(side)}
            for p0, u0, _e0, s0 in before[side]:
                if p0 not in after:
                    continue      # a dying cgroup whose last reference a stock drain dropped
                _p1, u1, _e1, s1 = after[p0]
                assert u1 <= u0, \
                    f"failed op raised usage of {p0} ({('core', 'reference')[side]}): {u0}->{u1}"
                assert s1.get("kernel", 0) <= s0.get("kernel", 0), f"failed op raised kernel in {p0}"
                for k in only_fall:
                    assert s1.get(k, 0) <= s0.get(k, 0), f"failed op raised {k} in {p0}"
                keep = set(s0) & set(s1) - exempt
                d0 = {k: s0[k] for k in keep}
                d1 = {k: s1[k] for k in keep}
                assert d0 == d1, f"failed op changed {p0} ({('core', 'reference')[side]}): {d0} -> {d1}"

    @invariant()
    def same_state(self) -> None:
        assert self.real.dying_cgroups == self.ref.dying_cgroups, \
            f"dying cgroups: real {self.real.dying_cgroups} vs reference {self.ref.dying_cgroups}"
        for r, f in self.cgs:
            assert r.online == f.online and r.dying == f.dying, f"{f.path}: lifecycle differs"
            if not (f.online or f.dying):
                continue
            where = f.path
            assert r.usage_pages == f.usage_pages, \
                f"{where}: usage real {r.usage_pages} vs reference {f.usage_pages}"
            fs = f.stat()
            rs = {k: v for k, v in r.stat().items() if k in fs}
            assert rs == fs, f"{where}: stat real {rs} vs reference {fs}"
            fe, fl = f.events(), f.events_local()
            assert {k: r.events()[k] for k in fe} == fe, f"{where}: events {r.events()} vs {fe}"
            assert {k: r.events_local()[k] for k in fl} == fl, f"{where}: events.local"
            if f.online and f.parent is not None:
                peak = ("memory.peak",) if reference.PROFILES[self.PROFILE].has_memory_peak else ()
                for name in ("memory.current", "memory.max", "memory.high", "memory.low",
                             "memory.min") + peak:
                    assert r.read(name) == f.read(name), f"{where} {name}: {r.read(name)!r} vs {f.read(name)!r}"

    @invariant()
    def counters_hold(self) -> None:
        self.real.check()
        self.ref.check()
        for r, f in self.cgs:
            if f.online:
                assert f.usage_pages >= 0
                kids = sum(k.usage_pages for k in f.children)
                if all(c.online for c in f._st.children):
                    own = self.raw.get(self.cgs.index((r, f)), 0)
                    assert f.usage_pages >= kids, f"{f.path}: parent below the sum of children"
                    del own
                if not self.forced:
                    assert f.usage_pages <= f._st.memory.max, f"{f.path}: over max unforced"

    def teardown(self) -> None:
        try:
            self._teardown()
        finally:
            self.real.close() if hasattr(self.real, "close") else None

    def _teardown(self) -> None:
        for kind, ar, af in self.objs:
            self.both(lambda: self._free(self.real, contextlib.nullcontext(), kind, ar),
                      lambda: self._free(self.ref, contextlib.nullcontext(), kind, af))
        self.objs = []
        for (i, file), n in self.user.items():
            r, f = self.cgs[i]
            held = f._st.file_pages if file else f._st.anon_pages
            if held:
                self.both(lambda: r.uncharge_user(held, file=file),
                          lambda: f.uncharge_user(held, file=file))
        for i, n in self.raw.items():
            if n:
                r, f = self.cgs[i]
                self.both(lambda: r.uncharge(n), lambda: f.uncharge(n))
        for tr, tf in self.tasks:
            if tf.alive:
                self.both(tr.exit, tf.exit)
        self.both(self.real.drop_slab, self.ref.drop_slab)   # the dentries left on LRUs
        for r, f in reversed(self.cgs[1:]):     # children before their parents
            if f.online:
                self.both(r.rmdir, f.rmdir)
        self.real.drain_all_stock()
        self.ref.drain_all_stock()
        # drain_all_stock() skips a page slot with no pages, whose css reference can pin a
        # dying memcg (and so its structures, charged to its parent): drain every cpu
        for cpu in range(self.ref.nr_cpus):
            self.real.drain_local_stock(cpu)
            self.ref.drain_local_stock(cpu)
        self.real.drain_all_stock()
        self.ref.drain_all_stock()
        self.same_state()
        # baseline: statistics zero; usage = parked objcg pages of the subtree
        for r, f in self.cgs:
            if not f.online:
                continue
            parked = 0
            for o in self.ref.objcgs.values():
                if not o.released and o.memcg.is_descendant(f._st):
                    assert o.nr_charged_bytes % PS == 0, "parked bytes not page aligned"
                    parked += o.nr_charged_bytes // PS
            left = {k: v for k, v in f.stat().items() if v and k != "kernel" and k not in RECLAIM_EVENTS}
            assert not left, f"{f.path}: stats left {left}"
            # parked pages still count as kernel memory (MEMCG_KMEM) where the profile has it
            assert f.stat().get("kernel", parked * PS) == parked * PS
            if f.parent is not None or not self.ref.profile.kmem_page_objcg:
                # v5.x root: try_charge() never charges root itself, so root holds just what
                # its subtree holds; current kernels may leave a residue in root (kmem pages
                # uncharged through an objcg reparented to root skip root's counter, see
                # obj_cgroup_uncharge_pages()), which same_state() compared with the reference
                assert f.usage_pages == parked, \
                    f"{f.path}: {f.usage_pages} pages left, {parked} parked"


class Diff_5_10(DiffBase):
    PROFILE = "5.10"


class Diff_5_11(DiffBase):
    PROFILE = "5.11"


class Diff_5_15(DiffBase):
    """The only profile with separate task and interrupt object stocks."""
    PROFILE = "5.15"


class Diff_6_1(DiffBase):
    """Batch 64 and __GFP_HIGH forcing with one page-stock slot."""
    PROFILE = "6.1"


class Diff_6_6(DiffBase):
    """6.1's rules with the v6.3 gfp values and v6.4 reclaim (slab pages not counted)."""
    PROFILE = "6.6"


class Diff_6_8(DiffBase):
    """6.6's rules with memcg->orig_objcg (v6.7)."""
    PROFILE = "6.8"


class Diff_6_12(DiffBase):
    """6.8's rules with the v6.11 partial reclaim walk."""
    PROFILE = "6.12"


class Diff_6_18(DiffBase):
    PROFILE = "6.18"


class Diff_6_18_recursiveprot(DiffBase):
    """6.18 with cgroup2 mounted memory_recursiveprot (effective protection shared out)."""
    PROFILE = "6.18"
    RECURSIVEPROT = True


MACHINES: dict[str, type[DiffBase]] = {m.PROFILE: m for m in (
    Diff_5_10, Diff_5_11, Diff_5_15, Diff_6_1, Diff_6_6, Diff_6_8, Diff_6_12, Diff_6_18)}
MACHINES["6.18-recursiveprot"] = Diff_6_18_recursiveprot
