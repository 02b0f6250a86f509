"""``pybpfmem verify [--quick] [--json] [--case NAME]``: the model against the live kernel.

Every case of the built-in matrix (pybpfmem/live/matrix.py) runs on the live
kernel (pybpfmem/live/runner.py: a forked child in fresh case cgroups below our
own memory cgroup) and on a host-matched model System (pybpfmem/live/host.py)
with the same steps.  Each case yields rows: quantity, model, kernel,
difference, verdict, and a "why" for deviations the model knowingly keeps.

Exit codes: 0 agreement at or above the thresholds; 1 below; 2 bad arguments;
3 the kernel refuses (reason printed: not root, no bpf(), no memory controller,
unprivileged_bpf_disabled); 4 the model cannot be built on this host; 128 + the
signal number after SIGINT/SIGTERM, once the run's children and scratch cgroups
are gone (pybpfmem/live/session.py).

Thresholds (issue 5): memlock equal for every shape; kmem at creation within one
page for >= 95% of creates and within two pages for all; per-element charge of
inserts at N = 10000 within 2%; limit thresholds within 2%; the same errno for
every invalid input; shared-map and rmdir rows all ok.  Rows marked
``deviation`` carry a named kernel mechanism the model does not follow; they are
shown, counted in the raw rates, and left out of the gated rates.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Any, Callable

from . import matrix as M

EXIT_OK, EXIT_BELOW, EXIT_USAGE, EXIT_REFUSED, EXIT_NO_MODEL = 0, 1, 2, 3, 4

#: thresholds of issue 5
THRESHOLDS = {"memlock_exact": 1.0, "kmem_create_1page": 0.95, "kmem_create_2pages": 1.0,
              "insert_err": 0.02, "limit_err": 0.02, "errno": 1.0, "behaviour": 1.0,
              "semantics": 1.0}
#: steps of the map-command comparison (semantics.py) that --quick runs
QUICK_SEMANTICS_STEPS = 1200


@dataclass
class Row:
    case: str
    quantity: str
    model: Any
    kernel: Any
    diff: Any
    verdict: str                 # ok, FAIL, deviation, info, skip
    metric: str                  # summary bucket
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------ known deviations
# (case name substring, quantity substring) -> why: a kernel mechanism the model
# knowingly does not follow, named.  Such a row is shown as "deviation" and left out
# of the gated rates.  Empty: the last entries (HASH key 600, SK_STORAGE without
# BTF, HASH_OF_MAPS extra elements, four map types the model lacked) were fixed in
# the model; a stale entry here would relabel a regression of those as expected.
KNOWN: list[tuple[str, str, str]] = []


def known_why(case: str, quantity: str) -> str:
    for c, q, why in KNOWN:
        if c in case and q in quantity:
            return why
    return ""


# ------------------------------------------------------------------ comparisons
def _row(case: str, quantity: str, model: Any, kernel: Any, ok: bool, metric: str,
         diff: Any = None, why: str = "") -> Row:
    if diff is None and isinstance(model, int) and isinstance(kernel, int):
        diff = model - kernel
    verdict = "ok" if ok else "FAIL"
    if not ok:
        kw = known_why(case, quantity)
        if kw:
            verdict, why = "deviation", kw
    return Row(case, quantity, model, kernel, diff, verdict, metric, why)


def _errname(e: int | None) -> str:
    import errno as E
    if e is None:
        return "ok"
    return E.errorcode.get(e, "ENOTSUPP" if e == 524 else str(e))


def _kmem(obs: dict[str, Any], cg: str = "A") -> int:
    return int(obs.get("delta", {}).get(cg, {}).get("kmem", 0))


def compare_shape(case: M.Case, live: list[dict[str, Any]], model: list[dict[str, Any]],
                  page: int) -> list[Row]:
    """fdinfo memlock (exact), kmem at create (within one / two pages), kmem
    returned at close (within one page), errno of the create.

    Each create runs in its own fresh cgroup (matrix._shape), so its kmem is that
    cgroup's delta; the close is measured on the same cgroup."""
    pre = case.params.get("pre", 0)
    lreps, mreps = _create_close_pairs(live[pre:]), _create_close_pairs(model[pre:])
    rows: list[Row] = []
    if not lreps or not mreps:
        return [Row(case.name, "observations", len(mreps), len(lreps), None, "FAIL",
                    "behaviour", "a side produced no create observation")]
    (lc, _), (mc, mcl) = lreps[0], mreps[0]
    le, me = lc["errno"], mc["errno"]
    if le is not None or me is not None:
        rows.append(_row(case.name, "create errno", _errname(me), _errname(le), le == me,
                         "errno"))
        return rows
    rows.append(_row(case.name, "memlock", mc["memlock"], lc["memlock"],
                     mc["memlock"] == lc["memlock"], "memlock"))
    # An unrelated kernel allocation in a create's window only ever adds: the
    # smallest sample is the map's, and its close is that repetition's close.
    ks = [_kmem(c, c["cgroup"]) for c, _ in lreps]
    best = min(range(len(ks)), key=lambda r: ks[r])
    kern, mod = ks[best], _kmem(mc, mc["cgroup"])
    rows.append(_row(case.name, f"kmem at create (samples {ks})", mod, kern,
                     abs(mod - kern) <= page, "kmem_create"))
    kcl = lreps[best][1]
    if kcl is not None and mcl is not None and kcl["ok"] and mcl["ok"]:
        freed = [-_kmem(cl, c["cgroup"]) for c, cl in lreps if cl is not None and cl["ok"]]
        kf, mf = -_kmem(kcl, lreps[best][0]["cgroup"]), -_kmem(mcl, mc["cgroup"])
        rows.append(_row(case.name, f"kmem freed at close (samples {freed})", mf, kf,
                         abs(mf - kf) <= page, "kmem_close"))
    return rows


def _create_close_pairs(obs: list[dict[str, Any]]
                        ) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(create, the close after it or None) for every create observation."""
    out: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for o in obs:
        if o["op"] == "create":
            out.append((o, None))
        elif o["op"] == "close" and out and out[-1][1] is None:
            out[-1] = (out[-1][0], o)
    return out


def compare_insert(case: M.Case, live: list[dict[str, Any]], model: list[dict[str, Any]],
                   page: int) -> list[Row]:
    n = case.params["n"]
    rows: list[Row] = []
    if len(live) < 4 or len(model) < 4:
        return [Row(case.name, "observations", len(model), len(live), None, "FAIL",
                    "behaviour", "a side stopped early")]
    li, mi = live[1], model[1]
    rows.append(_row(case.name, "inserted", mi["count"], li["count"],
                     mi["count"] == li["count"], "behaviour"))
    rows.append(_row(case.name, "memlock after inserts", mi["memlock"], li["memlock"],
                     mi["memlock"] == li["memlock"], "memlock"))
    kk, mk = _kmem(li), _kmem(mi)
    if kk == 0 and mk == 0:   # prealloc: inserts charge nothing
        rows.append(_row(case.name, "kmem of inserts", 0, 0, True, "insert_err"))
    else:
        err = abs(mk - kk) / max(kk, 1)
        gated = n >= 10000
        r = _row(case.name, f"kmem/elem at N={n}", round(mk / n, 2), round(kk / n, 2),
                 err <= 0.02 if gated else True, "insert_err" if gated else "info",
                 f"{100 * (mk - kk) / max(kk, 1):+.2f}%")
        if not gated:
            r.verdict = "info"
            r.why = ("small N: the per-cpu free-list refill batches of bpf_mem_alloc "
                     "(alloc_bulk(), kernel/bpf/memalloc.c) dominate; gated at N = 10000")
        rows.append(r)
    # Delete-all then close: the kernel frees deleted elements through bpf_mem_alloc's
    # RCU-deferred lists (free_bulk() -> call_rcu_tasks_trace()), which the live
    # delete window does not wait for; so compare what delete + close return together.
    kr = -(_kmem(live[2]) + _kmem(live[3]))
    mr = -(_kmem(model[2]) + _kmem(model[3]))
    rows.append(_row(case.name, "kmem returned by delete-all + close", mr, kr,
                     abs(mr - kr) <= page, "kmem_close"))
    return rows


def compare_errnos(case: M.Case, live: list[dict[str, Any]],
                   model: list[dict[str, Any]]) -> list[Row]:
    rows = []
    for lbl, lo, mo in zip(case.params["labels"], live, model):
        rows.append(_row(f"errno: {lbl}", "create", _errname(mo["errno"]),
                         _errname(lo["errno"]), lo["errno"] == mo["errno"], "errno", ""))
    if len(live) != len(case.params["labels"]):
        rows.append(Row(case.name, "observations", len(model), len(live), None, "FAIL",
                        "behaviour", "the live child stopped early"))
    return rows


def compare_shared(case: M.Case, live: list[dict[str, Any]], model: list[dict[str, Any]],
                   page: int) -> list[Row]:
    """The map's memcg (A) pays for inserts made by a task in B (set_active_memcg()
    around bpf_mem_alloc refills in the map's memcg, kernel/bpf/memalloc.c)."""
    if len(live) < 4 or len(model) < 4:
        return [Row(case.name, "observations", len(model), len(live), None, "FAIL",
                    "behaviour", "a side stopped early")]
    rows = []
    ka, ma = _kmem(live[0]), _kmem(model[0])
    rows.append(_row(case.name, "create: kmem of A", ma, ka, abs(ma - ka) <= page,
                     "kmem_create"))
    ka, ma = _kmem(live[2], "A"), _kmem(model[2], "A")
    rows.append(_row(case.name, "inserts by a task in B: kmem of A", ma, ka,
                     abs(ma - ka) <= max(page, 0.02 * ka), "behaviour"))
    kb, mb = _kmem(live[2], "B"), _kmem(model[2], "B")
    rows.append(_row(case.name, "inserts by a task in B: kmem of B", mb, kb,
                     abs(mb - kb) <= page, "behaviour"))
    kc, mc = -_kmem(live[3]), -_kmem(model[3])
    rows.append(_row(case.name, "close: kmem returned by A", mc, kc, abs(mc - kc) <= page,
                     "kmem_close"))
    return rows


def compare_rmdir(case: M.Case, live: dict[str, Any], model: dict[str, Any],
                  page: int) -> list[Row]:
    """After rmdir(A) the dead A's charges show in its parent (objcg reparenting,
    memcg_reparent_objcgs(), mm/memcontrol.c) and new inserts keep landing there."""
    rows = []
    for q, key, tol in (("case root after rmdir(A) minus A before", "kept", page),
                        (f"{case.params['more']} inserts after rmdir: kmem of case root",
                         "more", None),
                        ("case root after close", "after_close", page)):
        k, m = int(live[key]), int(model[key])
        t = tol if tol is not None else max(page, 0.02 * abs(k))
        rows.append(_row(case.name, q, m, k, abs(m - k) <= t, "behaviour"))
    return rows


# ------------------------------------------------------------------ running cases
class Verifier:
    """Runs cases on both sides; ``live``/``model_factory`` are injectable for tests."""

    def __init__(self, model_factory: Callable[[], Any] | None = None,
                 run_live: Callable[..., Any] | None = None, full_bisect: bool = True,
                 session: Any = None) -> None:
        from .host import host_facts, host_system
        self.facts = host_facts()
        self.model_factory = model_factory or (lambda: host_system(facts=self.facts))
        self._run_live = run_live
        self.full_bisect = full_bisect
        self.session = session
        self.fd_sizes = M.fd_object_sizes()
        self.page = self.facts.page_size

    def live(self, scn: dict[str, Any]) -> Any:
        if self._run_live is not None:
            return self._run_live(scn)
        from .runner import run_scenario
        return run_scenario(scn, session=self.session)

    def model(self, scn: dict[str, Any], entry_usage: int = 0) -> list[dict[str, Any]]:
        sysm = self.model_factory()
        try:
            return M.replay_model(scn, sysm, entry_usage, self.fd_sizes)
        finally:
            sysm.close()

    def run_case(self, case: M.Case) -> list[Row]:
        if case.skip:
            return [Row(case.name, "-", None, None, None, "skip", "skip", case.skip)]
        fn = getattr(self, "_case_" + case.kind)
        return fn(case)

    def _case_shape(self, case: M.Case) -> list[Row]:
        r = self.live(case.scenario)
        if r.error:
            return [Row(case.name, "live run", None, r.error, None, "FAIL", "behaviour")]
        return compare_shape(case, r.steps, self.model(case.scenario), self.page)

    def _case_insert(self, case: M.Case) -> list[Row]:
        r = self.live(case.scenario)
        return compare_insert(case, r.steps, self.model(case.scenario), self.page)

    def _case_errno(self, case: M.Case) -> list[Row]:
        r = self.live(case.scenario)
        return compare_errnos(case, r.steps, self.model(case.scenario))

    def _case_shared(self, case: M.Case) -> list[Row]:
        r = self.live(case.scenario)
        return compare_shared(case, r.steps, self.model(case.scenario), self.page)

    def _case_insert_limit(self, case: M.Case) -> list[Row]:
        r = self.live(case.scenario)
        entry = int(r.entry.get("A", {}).get("usage", 0))
        mo = self.model(case.scenario, entry)
        last = len(case.scenario["steps"]) - 1
        if len(r.steps) <= last or len(mo) <= last:
            return [Row(case.name, "observations", len(mo), len(r.steps), None, "FAIL",
                        "behaviour", f"live killed by {r.killed_by}" if r.killed_by else "")]
        kc, mc = int(r.steps[last].get("count") or 0), int(mo[last].get("count") or 0)
        err = abs(mc - kc) / max(kc, 1)
        rows = [_row(case.name, f"inserts before failure (live entry usage {entry} B "
                                "charged to the model first)", mc, kc, err <= 0.02,
                     "limit_err", f"{100 * (mc - kc) / max(kc, 1):+.2f}%")]
        ke, me = r.steps[last].get("errno"), mo[last].get("errno")
        rows.append(_row(case.name, "errno of the failing insert", _errname(me),
                         _errname(ke), ke == me, "errno", ""))
        return rows

    # -- largest array under a limit
    def _array_scn(self, case: M.Case, n: int, close: bool) -> dict[str, Any]:
        steps: list[dict[str, Any]] = [{"op": "create", "map": "m", "type": "ARRAY", "key": 4,
                                        "value": case.params["value"], "max": n}]
        if close:
            steps.append({"op": "close", "map": "m"})
        return {"cgroups": {"A": {"limit": case.params["limit"]}}, "cpu": 0, "steps": steps}

    def _live_fits(self, case: M.Case, n: int, entries: list[int]) -> bool:
        r = self.live(self._array_scn(case, n, False))
        if r.entry:
            entries.append(int(r.entry.get("A", {}).get("usage", 0)))
        if r.killed_by or r.error or not r.steps:
            return False   # OOM-killed inside the create = does not fit
        return bool(r.steps[0].get("ok"))

    def _case_array_limit(self, case: M.Case) -> list[Row]:
        limit, vs = case.params["limit"], case.params["value"]
        entries: list[int] = []
        hi_max = limit // vs + 16
        # the live child's entry usage first (one probe that surely fits)
        self._live_fits(case, 1, entries)
        entry = entries[0] if entries else 0
        sysm = self.model_factory()
        try:
            def model_fits(n: int) -> bool:
                o = M.replay_model(self._array_scn(case, n, True), sysm, entry, self.fd_sizes)
                return bool(o[0]["ok"])
            pred = _bisect(model_fits, 0, hi_max)
        finally:
            sysm.close()
        delta = max(1, int(0.02 * pred))
        lo, hi = max(pred - delta, 0), pred + delta
        lo_fits = self._live_fits(case, lo, entries)
        hi_fits = self._live_fits(case, hi, entries)
        note = ""
        if lo_fits and not hi_fits:
            if self.full_bisect:
                kern: Any = _bisect(lambda n: self._live_fits(case, n, entries), lo, hi)
            else:
                kern = f"[{lo}, {hi})"
                note = "quick: the kernel's largest is bracketed within +-2% of the model's"
        else:
            a, b = (0, lo) if not lo_fits else (hi, hi_max)
            kern = _bisect(lambda n: self._live_fits(case, n, entries), a, b)
        if isinstance(kern, int):
            err = abs(pred - kern) / max(kern, 1)
            ok, diff = err <= 0.02, f"{100 * (pred - kern) / max(kern, 1):+.2f}%"
        else:
            ok, diff = True, f"<= +-{100 * delta / max(pred, 1):.2f}%"
        r = _row(case.name, f"largest max_entries (entry usage {entry} B)", pred, kern, ok,
                 "limit_err", diff)
        r.why = r.why or note
        return [r]

    def _case_rmdir(self, case: M.Case) -> list[Row]:
        live = live_rmdir(case.params["n"], case.params["more"], self.session)
        sysm = self.model_factory()
        try:
            model = model_rmdir(sysm, case.params["n"], case.params["more"], self.fd_sizes)
        finally:
            sysm.close()
        return compare_rmdir(case, live, model, self.page)


def _bisect(fits: Callable[[int], bool], lo: int, hi: int) -> int:
    """Largest n in [lo, hi) with fits(n), assuming fits(lo) (lo = 0 always fits)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


# ------------------------------------------------------------------ rmdir case
def live_rmdir(n: int, more: int, session: Any = None) -> dict[str, int]:
    """A child in A creates a no-prealloc hash and inserts n; we (outside the
    case) take an fd by id, the child exits, A is removed, we insert ``more``."""
    import os
    import time
    from . import bpf as B
    from .runner import _FastUpdater, settle
    from .session import LiveSession
    if session is None:
        with LiveSession() as s:
            return live_rmdir(n, more, s)
    root = session.case()
    fd = -1
    try:
        a = root.mkchild("A")
        rfd, wfd = os.pipe()
        ack_r, ack_w = os.pipe()
        pid = session.fork()
        if pid == 0:
            try:
                os.close(rfd)
                os.sched_setaffinity(0, {0})   # the model runs every step on cpu 0
                a.move(os.getpid())
                m = B.map_create("HASH", 4, 64, 100000, M.NO_PREALLOC)
                u = _FastUpdater(m)
                for k in range(n):
                    u.update(k, 0)
                os.write(wfd, str(m.info().id).encode())
                os.read(ack_r, 1)
            finally:
                os._exit(0)
        os.close(wfd)
        try:
            mid = int(os.read(rfd, 100) or b"0")
            fd = B.map_get_fd_by_id(mid)
        finally:
            os.write(ack_w, b"x")
            session.reap(pid)
            for x in (rfd, ack_r, ack_w):
                os.close(x)
        settle({"A": a, "root": root}, 2.0)
        a_before = a.kmem()
        a.remove()
        time.sleep(0.2)
        settle({"root": root}, 2.0)
        after_rm = root.kmem()
        m = B.BpfMap(fd, 4, 64, 1)
        u = _FastUpdater(m)
        # our inserts, on cpu 0 like the child's (bpf_mem_alloc caches are per cpu)
        old_aff = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {0})
        try:
            for k in range(n, n + more):
                u.update(k, 0)
        finally:
            os.sched_setaffinity(0, old_aff)
        root.drain()
        after_ins = root.kmem()
        m.close()
        fd = -1
        settle({"root": root}, 3.0)
        return {"kept": after_rm - a_before, "more": after_ins - after_rm,
                "after_close": root.kmem()}
    finally:
        if fd >= 0:
            os.close(fd)
        root.remove()
        session.driver.created.remove(root)


def model_rmdir(sysm: Any, n: int, more: int, fd_sizes: dict[str, int]) -> dict[str, int]:
    """The same on the model: task in A, a task outside the case holds a dup'ed fd."""
    mc = M.ModelCase(sysm, {"steps": []}, 0, fd_sizes)
    a = mc.cgs["A"]
    mc.step({"op": "create", "map": "m", "type": "HASH", "key": 4, "value": 64,
             "max": 100000, "flags": M.NO_PREALLOC}, 0)
    mc.step({"op": "insert", "map": "m", "n": n}, 1)
    fd, objs = mc.fds["m"]
    outside = sysm.spawn(cgroup=sysm.root, uid=0)
    ofd = mc.task.dup_fd_to(outside, fd)
    # the child exits: its fd goes; the file (and its objects) live on through ours
    with mc.task.running(mc.cpu):
        mc.task.close(fd)
    mc.task.exit()
    a_before = mc.snapshot()["A"]["kmem"]
    a.rmdir()
    after_rm = mc.counters_root()
    with outside.running(0):
        for k in range(n, n + more):
            outside.bpf_map_update_elem(ofd, k.to_bytes(4, "little"), bytes(64))
    after_ins = mc.counters_root()
    with outside.running(0):
        outside.close(ofd)
        for x in objs:
            sysm.kfree(x)
    return {"kept": after_rm - a_before, "more": after_ins - after_rm,
            "after_close": mc.counters_root()}


# ------------------------------------------------------------------ summary
def summarize(rows: list[Row]) -> dict[str, Any]:
    def rate(metric: str, pred: Callable[[Row], bool], gated: bool) -> tuple[float | None, int]:
        rs = [r for r in rows if r.metric == metric and r.verdict != "skip"
              and not (gated and r.verdict == "deviation")]
        if not rs:
            return None, 0
        return sum(1 for r in rs if pred(r)) / len(rs), len(rs)

    def within(pages: int) -> Callable[[Row], bool]:
        page = 4096
        return lambda r: isinstance(r.diff, int) and abs(r.diff) <= pages * page

    def pct(r: Row) -> float:
        try:
            return abs(float(str(r.diff).rstrip("%").lstrip("<=+- ")))
        except ValueError:
            return float("inf")

    def worst(metric: str, gated: bool) -> float | None:
        rs = [r for r in rows if r.metric == metric and isinstance(r.diff, str)
              and r.diff.endswith("%") and not (gated and r.verdict == "deviation")]
        return max((pct(r) / 100 for r in rs), default=None)

    out: dict[str, Any] = {}
    for gated in (False, True):
        key = "gated" if gated else "raw"
        s = {
            "memlock_exact": rate("memlock", lambda r: r.verdict == "ok", gated),
            "kmem_create_1page": rate("kmem_create", within(1), gated),
            "kmem_create_2pages": rate("kmem_create", within(2), gated),
            "kmem_close_1page": rate("kmem_close", within(1), gated),
            "errno": rate("errno", lambda r: r.verdict == "ok", gated),
            "behaviour": rate("behaviour", lambda r: r.verdict == "ok", gated),
            "semantics": rate("semantics", lambda r: r.verdict == "ok", gated),
        }
        d: dict[str, Any] = {k: {"rate": v[0], "n": v[1]} for k, v in s.items()}
        d["insert_err"] = {"max": worst("insert_err", gated)}
        d["limit_err"] = {"max": worst("limit_err", gated)}
        out[key] = d
    g = out["gated"]
    failed = []
    for k in ("memlock_exact", "kmem_create_1page", "kmem_create_2pages", "errno", "behaviour",
              "semantics"):
        if g[k]["rate"] is not None and g[k]["rate"] < THRESHOLDS[k]:
            failed.append(k)
    for k in ("insert_err", "limit_err"):
        if g[k]["max"] is not None and g[k]["max"] > THRESHOLDS[k]:
            failed.append(k)
    out["failed"] = failed
    out["deviations"] = sum(1 for r in rows if r.verdict == "deviation")
    out["skipped"] = sum(1 for r in rows if r.verdict == "skip")
    out["fails"] = sum(1 for r in rows if r.verdict == "FAIL")
    out["pass"] = not failed
    return out


# ------------------------------------------------------------------ output
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


#: rows of these case prefixes share one table
_GROUPS = {"errno: ": "errnos", "semantics: ": "semantics (the map commands, step by step)"}


def _group(case: str) -> str:
    for prefix, title in _GROUPS.items():
        if case.startswith(prefix):
            return title
    return case


def render(rows: list[Row], summary: dict[str, Any], facts: Any, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table
    con = console or Console()
    by_case: dict[str, list[Row]] = {}
    for r in rows:
        by_case.setdefault(_group(r.case), []).append(r)
    style = {"ok": "green", "FAIL": "bold red", "deviation": "yellow", "info": "dim",
             "skip": "dim"}
    for case, rs in by_case.items():
        t = Table(title=case, title_justify="left", show_lines=False)
        for col in ("quantity", "model", "kernel", "difference", "verdict", "why"):
            t.add_column(col, overflow="fold")
        for r in rs:
            q = r.quantity if case == r.case else r.case.split(": ", 1)[1] + (
                "" if case == "errnos" else f": {r.quantity}")
            t.add_row(q, _fmt(r.model), _fmt(r.kernel), _fmt(r.diff),
                      f"[{style.get(r.verdict, '')}]{r.verdict}[/]", r.why)
        con.print(t)
    s = Table(title=f"summary (kernel {facts.release}, {facts.nr_cpus} possible CPUs, "
                    f"cgroup {facts.cgroup}, page {facts.page_size})", title_justify="left")
    for col in ("measure", "raw", "gated (without explained deviations)", "threshold"):
        s.add_column(col)
    thr = {"memlock_exact": "100%", "kmem_create_1page": ">= 95%", "kmem_create_2pages": "100%",
           "kmem_close_1page": "(info)", "errno": "100%", "behaviour": "100%",
           "semantics": "100%", "insert_err": "<= 2%", "limit_err": "<= 2%"}
    for k, t_ in thr.items():
        def cell(d: dict[str, Any]) -> str:
            if "rate" in d:
                return "-" if d["rate"] is None else f"{100 * d['rate']:.1f}% of {d['n']}"
            return "-" if d["max"] is None else f"{100 * d['max']:.2f}% (worst)"
        s.add_row(k, cell(summary["raw"][k]), cell(summary["gated"][k]), t_)
    con.print(s)
    verdict = "[green]PASS[/]" if summary["pass"] else f"[bold red]BELOW THRESHOLDS[/] {summary['failed']}"
    con.print(f"verify: {verdict}; {summary['deviations']} explained deviation(s), "
              f"{summary['fails']} failing row(s), {summary['skipped']} skipped case(s)")


def to_markdown(rows: list[Row], summary: dict[str, Any], facts: Any) -> str:
    """The per-case tables and the summary as markdown (for docs/fidelity.md)."""
    def cell(v: Any) -> str:
        return _fmt(v).replace("|", "\\|")
    out = []
    g, r = summary["gated"], summary["raw"]

    def fmt(d: dict[str, Any]) -> str:
        if "rate" in d:
            return "-" if d["rate"] is None else f"{100 * d['rate']:.1f}% of {d['n']}"
        return "-" if d["max"] is None else f"{100 * d['max']:.2f}% (worst)"
    import platform
    out.append(f"Host: kernel {facts.release} ({platform.version()}), {facts.nr_cpus} possible "
               f"CPUs, cgroup {facts.cgroup}, page {facts.page_size}.\n")
    out.append("| measure | raw | gated (without explained deviations) | threshold |")
    out.append("|---|---|---|---|")
    thr = {"memlock_exact": "100%", "kmem_create_1page": ">= 95%", "kmem_create_2pages": "100%",
           "kmem_close_1page": "(info)", "errno": "100%", "behaviour": "100%",
           "semantics": "100%", "insert_err": "<= 2%", "limit_err": "<= 2%"}
    for k, t in thr.items():
        out.append(f"| {k} | {fmt(r[k])} | {fmt(g[k])} | {t} |")
    out.append(f"\nResult: {'PASS' if summary['pass'] else 'BELOW ' + str(summary['failed'])}; "
               f"{summary['deviations']} explained deviation(s), {summary['fails']} failing "
               f"row(s), {summary['skipped']} skipped case(s).\n")
    out.append("| case | quantity | model | kernel | difference | verdict | why |")
    out.append("|---|---|---|---|---|---|---|")
    for x in rows:
        out.append(f"| {cell(x.case)} | {cell(x.quantity)} | {cell(x.model)} | {cell(x.kernel)} "
                   f"| {cell(x.diff)} | {x.verdict} | {cell(x.why)} |")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pybpfmem verify",
                                 description="measure the model against the running kernel")
    ap.add_argument("--quick", action="store_true", help="a subset that runs in under a minute (with a small budget of --semantics)")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--case", metavar="NAME", help="only the cases whose name contains NAME")
    ap.add_argument("--markdown", action="store_true", help="markdown tables (docs/fidelity.md)")
    from . import semantics
    semantics.add_arguments(ap)
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    try:
        cases = M.select(M.all_cases(), args.quick, args.case)
    except KeyError:
        msg = f"no case matches {args.case!r}"
        print(json.dumps({"error": msg}) if args.json else f"verify: {msg}", file=sys.stderr)
        return EXIT_USAGE
    # SIGINT/SIGTERM from here on: clean up (children, scratch cgroups), then exit
    # 128 + signal number (session.py)
    from .session import LiveSession
    with LiveSession(exit_on_signal=True, name="verify") as session:
        return _run(args, cases, session)


def _run(args: argparse.Namespace, cases: list[M.Case], session: Any) -> int:
    from .runner import refusal_reason
    reason = refusal_reason()
    if reason is not None:
        print(json.dumps({"refused": reason}) if args.json else f"verify: kernel refuses: {reason}")
        return EXIT_REFUSED
    if args.semantics or args.replay:
        from .semantics import main_semantics
        return main_semantics(args, session)
    try:
        v = Verifier(full_bisect=not args.quick, session=session)
        v.model_factory().close()
    except (OSError, ValueError, TypeError) as e:
        msg = f"model System cannot match this host: {e}"
        print(json.dumps({"error": msg}) if args.json else f"verify: {msg}")
        return EXIT_NO_MODEL
    rows = run_cases(v, cases, progress=not (args.json or args.markdown or args.quick))
    if args.quick and not args.case:
        rows += semantics_rows(session, QUICK_SEMANTICS_STEPS, str(args.seed))
    summary = summarize(rows)
    if args.markdown:
        print(to_markdown(rows, summary, v.facts), end="")
    elif args.json:
        print(json.dumps({"host": asdict(v.facts), "quick": args.quick,
                          "rows": [r.to_dict() for r in rows], "summary": summary}))
    else:
        render(rows, summary, v.facts)
    return EXIT_OK if summary["pass"] else EXIT_BELOW


def semantics_rows(session: Any, steps: int, seed: str) -> list[Row]:
    """One row per map family of the step-by-step comparison of the map commands
    (semantics.py): ok when every step agreed, ``deviation`` when the only differences
    are the expected ones (LRU victims), FAIL otherwise, skip when the kernel refuses."""
    from . import semantics as S
    from .bpf import possible_cpus
    from .sequences import families
    ncpus = possible_cpus()
    model = S.ModelRunner()
    fams = families(ncpus, tuple(i for i, _ in model.netdevs) or (1,))
    with S.LiveRunner(session, ncpus) as live:
        rep = S.run_semantics(live, model, fams, steps, seed, ncpus, shrink_runs=0)
    rows = []
    for name, t in rep.tallies.items():
        verdict = "FAIL" if t.diverged else ("deviation" if t.expected else "ok")
        rows.append(Row(f"semantics: {name}", f"steps agreeing of {t.steps}", t.agree, t.steps,
                        t.agree - t.steps, verdict, "semantics",
                        S.EXPECTED.get(name, "") if verdict == "deviation" else ""))
    for name, why in rep.skipped.items():
        rows.append(Row(f"semantics: {name}", "-", None, None, None, "skip", "skip", why))
    return rows


def run_cases(v: Verifier, cases: list[M.Case], progress: bool = False) -> list[Row]:
    rows: list[Row] = []
    if not progress:
        for c in cases:
            rows += _safe(v, c)
        return rows
    from rich.progress import Progress
    with Progress(transient=True) as p:
        task = p.add_task("verify", total=len(cases))
        for c in cases:
            p.update(task, description=c.name[:40])
            rows += _safe(v, c)
            p.advance(task)
    return rows


def _safe(v: Verifier, c: M.Case) -> list[Row]:
    """A case that raises becomes one FAIL row (never a traceback)."""
    try:
        return v.run_case(c)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001 - reported as a failing row
        return [Row(c.name, "error", None, None, None, "FAIL", "behaviour",
                    f"{type(e).__name__}: {e}")]


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
