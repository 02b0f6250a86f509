"""atheris driver for the bpf() surface: raw task.bpf(cmd, attr bytes) with every command
number and random attrs, and libbpf-style calls with random arguments (map create with
random types/sizes/flags, element and batch ops on random fds, pins, obj_get, close),
in task and interrupt context.  After every call: system.check() and no negative counter;
only OSError/ValueError/TypeError (and RuntimeError for wrong-context calls) may escape.
At the end every task exits and every pin is unlinked: every statistic and every user's
locked_vm must be back at 0.

    FUZZ_SECONDS=60 .venv/bin/python fuzz/fuzz_bpf.py    (FUZZ_PLAIN=1: no atheris)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ALLOWED, Bytes, instrumented, run  # noqa: E402
from fuzz_core import check  # noqa: E402

with instrumented():
    import pybpfmem  # noqa: E402
    from pybpfmem.bpf import uapi as U  # noqa: E402

PROFILES = pybpfmem.PROFILE_NAMES
TRACE = bool(__import__("os").environ.get("FUZZ_TRACE"))


def one_input(data: bytes) -> None:
    b = Bytes(data)
    s = pybpfmem.System(nr_cpus=2, profile=b.pick(PROFILES), oom_kill=False)
    cgs = [s.root, s.root.mkdir("a")]
    cgs.append(cgs[1].mkdir("b"))
    tasks = [s.spawn(cgroup=cgs[b.u8() % 3], uid=b.pick((0, 1000))) for _ in range(2)]
    uids = {t.uid for t in tasks}
    pins: list[str] = []
    try:
        for _ in range(48):
            if not b.left():
                break
            op = b.u8() % 12
            t = tasks[b.u8() % len(tasks)]
            fds = t.fds() if t.alive else []
            fd = fds[b.u8() % len(fds)] if fds and b.u8() & 3 else b.int_()
            if TRACE:
                print("op", op, "task", t.pid, "fd", fd, file=sys.stderr)
            try:
                if op == 0:
                    t.bpf(b.u8() % 42 - 1, b.raw(b.u8() % 201))
                elif op == 1:
                    t.bpf_map_create(b.u8() % 40, b.int_(), b.int_(), b.int_(), b.int_())
                elif op == 2:
                    t.bpf_map_create(b.pick((1, 2, 5, 6, 9, 10, 22, 27)), b.pick((4, 8, 16)),
                                     b.pick((4, 8, 100, 4096)), b.pick((1, 4, 64, 4096)),
                                     b.pick((0, 1, 2, 0x10, 0x400)))
                elif op == 3:
                    t.bpf_map_update_elem(fd, b.raw(b.u8() % 20), b.raw(b.u8() % 120), b.int_())
                elif op == 4:
                    t.bpf_map_delete_elem(fd, b.raw(b.u8() % 20))
                elif op == 5:
                    t.bpf_map_lookup_elem(fd, b.raw(b.u8() % 20))
                elif op == 6:
                    n = b.u8() % 8
                    t.bpf_map_update_batch(fd, [b.raw(8) for _ in range(n)],
                                           [b.raw(8) for _ in range(n)], b.int_())
                elif op == 7:
                    path = "/sys/fs/bpf/" + b.text()
                    t.bpf_obj_pin(fd, path)
                    pins.append(path)
                elif op == 8:
                    t.bpf_obj_get("/sys/fs/bpf/" + b.text() if b.u8() & 1 or not pins
                                  else b.pick(pins))
                elif op == 9:
                    t.close(fd)
                elif op == 10:
                    with s.in_interrupt(cpu=b.u8() % 2):
                        s.helper_map_update_elem(b.int_(), b.raw(8), b.raw(8), b.int_())
                elif op == 11:
                    t.setrlimit(U.RLIMIT_MEMLOCK, b.int_(), b.int_())
            except ALLOWED as e:
                if TRACE:
                    print("  ->", type(e).__name__, e, file=sys.stderr)
            check(s, cgs)
        for t in tasks:
            if t.alive:
                t.exit()
        # BPF_OBJ_PIN reads the path up to its first NUL (strncpy_from_user), so unlink
        # what bpffs lists rather than the strings passed in
        for p in s.bpffs_ls():
            s.bpffs_unlink(p)
        s.run_deferred()
        s.drain_all_stock()
        check(s, cgs)
        for u in uids:
            assert s.locked_vm(u) == 0, f"uid {u}: locked_vm {s.locked_vm(u)} left"
        for c in cgs:
            left = {k: v for k, v in c.stat().items()
                    if v and k in ("percpu", "slab_reclaimable", "slab_unreclaimable", "vmalloc")}
            assert not left, f"{c.path}: statistics left after teardown: {left}"
    finally:
        s.close()


if __name__ == "__main__":
    run(one_input, "bpf")
