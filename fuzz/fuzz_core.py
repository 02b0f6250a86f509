"""atheris driver for the mm layer: a byte stream becomes mkdir/rmdir, cgroup file writes
of random contents, raw charges, kmalloc/vmalloc/pages/percpu allocations and frees with
random (huge, negative) ints, tasks and contexts.  After every operation: system.check()
and no negative counter; only OSError/ValueError/TypeError may escape an operation.  At
the end everything still held is freed and every statistic must be back at 0.

    FUZZ_SECONDS=60 .venv/bin/python fuzz/fuzz_core.py   (FUZZ_PLAIN=1: no atheris)
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ALLOWED, Bytes, instrumented, run  # noqa: E402

with instrumented():
    import pybpfmem  # noqa: E402
    from pybpfmem import constants as K  # noqa: E402

FILES = ("memory.max", "memory.high", "memory.low", "memory.min", "memory.swap.max",
         "memory.current", "memory.stat", "memory.events", "memory.oom.group", "memory.peak",
         "memory.reclaim", "cgroup.procs", "bogus", "")
VALUES = ("max", "0", "4096", "1M", "-1", "18446744073709551616", "1G", "  12k\n", "nan", "",
          "\x00", "9" * 40, "0x10", "1e3", "-max")
GFPS = (K.GFP_KERNEL, K.GFP_KERNEL | K.__GFP_ACCOUNT, K.GFP_USER | K.__GFP_ACCOUNT,
        K.GFP_KERNEL | K.__GFP_ACCOUNT | K.__GFP_NOFAIL, K.GFP_KERNEL | K.__GFP_ACCOUNT | K.__GFP_NORETRY)
PROFILES = pybpfmem.PROFILE_NAMES


def check(s: Any, cgs: list[Any]) -> None:
    s.check()
    for c in cgs:
        if c.online or c.dying:
            assert c.usage_pages >= 0, f"{c.path}: negative usage"
            neg = {k: v for k, v in c.stat().items() if v < 0}
            assert not neg, f"{c.path}: negative stats {neg}"


def one_input(data: bytes) -> None:
    b = Bytes(data)
    s = pybpfmem.System(nr_cpus=2, profile=b.pick(PROFILES), cgroup=b.pick(("v2", "v1")),
                        oom_kill=False)
    cgs: list[Any] = [s.root]
    tasks: list[Any] = []
    objs: list[tuple[str, int, int]] = []      # kind, addr, order
    raw: list[tuple[Any, int]] = []
    try:
        for _ in range(64):
            if not b.left():
                break
            op = b.u8() % 16
            ctx = b.u8() % 4
            cpu = b.int_() if ctx == 3 else b.u8() % 2
            cm: Any = contextlib.nullcontext()
            if ctx == 1:
                cm = s.in_interrupt(cpu=cpu)
            elif ctx == 2 and any(t.alive for t in tasks):
                cm = [t for t in tasks if t.alive][0].running(cpu=cpu)
            cg = cgs[b.u8() % len(cgs)]
            try:
                with cm:
                    if b.u8() % 4 == 0 and cg.online:
                        cm2: Any = s.active_memcg(cg)
                    else:
                        cm2 = contextlib.nullcontext()
                    with cm2:
                        if op == 0:
                            cgs.append(cg.mkdir(b.text() or f"c{len(cgs)}"))
                        elif op == 1:
                            cg.rmdir()
                        elif op == 2:
                            cg.write(b.pick(FILES), b.pick(VALUES) if b.u8() & 1 else b.text())
                        elif op == 3:
                            cg.read(b.pick(FILES))
                        elif op == 4:
                            nr = b.int_()
                            cg.try_charge(nr, b.pick(GFPS) if b.u8() & 1 else b.int_(), cpu=cpu)
                            raw.append((cg, nr))
                        elif op == 5 and raw:
                            c, nr = raw.pop(b.u8() % len(raw))
                            c.uncharge(nr, cpu=cpu)
                        elif op == 6:
                            objs.append(("k", s.kmalloc(b.int_(), b.pick(GFPS)), 0))
                        elif op == 7:
                            objs.append(("v", s.vmalloc(b.int_(), b.pick(GFPS)), 0))
                        elif op == 8:
                            order = b.int_()
                            objs.append(("p", s.alloc_pages(order, b.pick(GFPS)), order))
                        elif op == 9:
                            objs.append(("c", s.alloc_percpu(b.int_(), b.int_(), b.pick(GFPS)), 0))
                        elif op == 10 and objs:
                            free(s, objs.pop(b.u8() % len(objs)))
                        elif op == 11:
                            # frees of addresses never handed out (or already freed)
                            getattr(s, b.pick(("kfree", "vfree", "free_percpu", "kvfree")))(b.int_())
                        elif op == 12:
                            tasks.append(s.spawn(cgroup=cg, uid=b.u8()))
                        elif op == 13 and tasks:
                            t = tasks[b.u8() % len(tasks)]
                            t.migrate(cg) if b.u8() & 1 else t.exit()
                        elif op == 14:
                            s.drain_all_stock(cg if b.u8() & 1 else None)
                        elif op == 15:
                            s.kvfree(s.kvmalloc(b.int_(), b.pick(GFPS)))
            except ALLOWED:
                pass
            check(s, cgs)
        teardown(s, cgs, tasks, objs, raw)
    finally:
        s.close()


def free(s: Any, obj: tuple[str, int, int]) -> None:
    kind, addr, order = obj
    if kind == "k":
        s.kfree(addr)
    elif kind == "v":
        s.vfree(addr)
    elif kind == "p":
        s.free_pages(addr, order)
    else:
        s.free_percpu(addr)


def teardown(s: Any, cgs: list[Any], tasks: list[Any], objs: list[Any], raw: list[Any]) -> None:
    for o in objs:
        with contextlib.suppress(OSError):   # op 11 may have freed it already: EINVAL now
            free(s, o)
    for c, nr in raw:
        c.uncharge(nr)
    for t in tasks:
        if t.alive:
            t.exit()
    s.drain_all_stock()
    check(s, cgs)
    for c in cgs:
        if c.online:
            left = {k: v for k, v in c.stat().items()
                    if v and k in ("anon", "percpu", "slab_reclaimable", "slab_unreclaimable",
                                   "vmalloc", "sock")}
            assert not left, f"{c.path}: statistics left after freeing everything: {left}"


if __name__ == "__main__":
    run(one_input, "core")
