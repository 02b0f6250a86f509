"""What the extra page of ``verify`` was: the experiments behind docs/fidelity.md.

    sudo .venv/bin/python tools/experiments/extra_page.py [NAME ...]

NAME is one or more of: fork, reads, remainder, order, fresh, parked, force_empty,
fdtable, idr (default: all).  Each prints its numbers.  Every experiment runs a
forked child that we (the parent) move between a home cgroup and fresh scratch
cgroups below our own memory cgroup, and that runs one command at a time; the
counters are read by us unless an experiment says the child reads them.  The
scratch cgroups and the child are removed again (pybpfmem.live.session), also on
^C.  Needs root, bpf() and the cgroup v1 memory controller.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pybpfmem.live import bpf as B            # noqa: E402
from pybpfmem.live import cgroupfs            # noqa: E402
from pybpfmem.live.session import LiveSession  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


class OldSys(B._Sys):
    """The libc loader the runner used before: ctypes.util.find_library() per call,
    which forks /sbin/ldconfig."""

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        self.nr = B.syscall_number()


class Child:
    """A forked child running one command per line; we move it between cgroups."""

    def __init__(self, s: LiveSession, root: cgroupfs.CaseCgroup, cpus: set[int] | None,
                 old_libc: bool = False, start_in: cgroupfs.CaseCgroup | None = None) -> None:
        self.home = start_in or root.mkchild("home")
        c_r, c_w = os.pipe()
        r_r, r_w = os.pipe()
        pid = s.fork()
        if pid == 0:
            os.close(c_w)
            os.close(r_r)
            self._loop(c_r, r_w, cpus, old_libc)
        os.close(c_r)
        os.close(r_w)
        self.pid, self.w, self.r = pid, c_w, os.fdopen(r_r, "rb")
        self.home.move(pid)
        self.do("warmup")

    @staticmethod
    def _loop(rfd: int, wfd: int, cpus: set[int] | None, old_libc: bool) -> None:
        import gc
        gc.disable()
        if old_libc:
            B._Sys = OldSys                   # type: ignore[misc]
        if cpus is not None:
            os.sched_setaffinity(0, cpus)
        maps: dict[str, B.BpfMap] = {}
        held: list[int] = []
        try:
            while True:
                line = os.read(rfd, 65536)
                if not line:
                    break
                cmd = line.decode().split()
                op, out = cmd[0], ""
                if op == "warmup":
                    m = B.map_create("ARRAY", 4, 8, 1)
                    m.lookup(0)
                    m.close()
                    os.close(os.open("/dev/null", os.O_RDONLY))
                elif op == "create":          # create NAME TYPE KEY VALUE MAX [FLAGS]
                    maps[cmd[1]] = B.map_create(cmd[2], int(cmd[3]), int(cmd[4]), int(cmd[5]),
                                                int(cmd[6]) if len(cmd) > 6 else 0)
                    out = str(maps[cmd[1]].fd)
                elif op == "close":
                    maps.pop(cmd[1]).close()
                elif op == "fdinfo":          # the child reads its own fdinfo
                    out = str(maps[cmd[1]].memlock)
                elif op == "touch":           # one accounted object allocated and freed
                    os.close(os.open("/dev/null", os.O_RDONLY))
                elif op == "open":            # hold N more files (200 bytes each)
                    held += [os.open("/dev/null", os.O_RDONLY) for _ in range(int(cmd[1]))]
                    out = str(held[-1] if held else -1)
                elif op == "selfread":        # the child drains and reads a cgroup itself
                    c = cgroupfs.CaseCgroup(None, cmd[1])   # type: ignore[arg-type]
                    for _ in range(2):
                        cgroupfs._write(c.file("memory.force_empty"), "0")
                        time.sleep(float(cmd[2]))
                    out = c.read("memory.kmem.usage_in_bytes").strip()
                os.write(wfd, (json.dumps(out) + "\n").encode())
        finally:
            os._exit(0)

    def do(self, cmd: str) -> str:
        os.write(self.w, (cmd + "\n").encode())
        return json.loads(self.r.readline())

    def in_(self, cg: cgroupfs.CaseCgroup, cmd: str) -> str:
        cg.move(self.pid)
        try:
            return self.do(cmd)
        finally:
            self.home.move(self.pid)

    def fdsize(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("FDSize"))


def raw(cg: cgroupfs.CaseCgroup, pause: float = 0.02) -> int:
    """force_empty twice from our side, then kmem (no parked-byte adoption)."""
    cg.drain(pause)
    return cg.kmem()


def canonical(ch: Child, cg: cgroupfs.CaseCgroup) -> int:
    """runner.Probe.snapshot() for one cgroup: drain_obj_stock() on the child's cpu,
    drain_all_stock(), refill_obj_stock() adopting nr_charged_bytes, drain."""
    ch.do("touch")
    cg.drain()
    ch.in_(cg, "touch")
    ch.do("touch")
    return raw(cg)


def pages(b: int) -> str:
    return f"{b} ({b // PAGE} pages)" if b % PAGE == 0 else str(b)


# ------------------------------------------------------------------ experiments
def exp_fork(s: LiveSession) -> None:
    """The old runner's window: the child drains and reads its own counters, 10 ms
    after a create made with find_library() (a fork) vs dlopen(NULL)."""
    print("## fork: a create's kmem as the child saw it 10 ms later, vs read by us after "
          "settling\n")
    for old in (True, False):
        root = s.case()
        a = root.mkchild("A")
        ch = Child(s, root, {0}, old_libc=old, start_in=a)
        got = []
        for i in range(4):
            p0 = raw(a)
            c0 = int(ch.do(f"selfread {a.path} 0.01"))
            ch.do(f"create m{i} ARRAY 4 4 1")
            c1 = int(ch.do(f"selfread {a.path} 0.01"))
            time.sleep(0.3)
            got.append(f"{c1 - c0:+d}/{raw(a) - p0:+d}")
        print(f"- libc via {'find_library() (forks ldconfig)' if old else 'dlopen(NULL)'}: "
              f"ARRAY k4 v4 m1 creates, child-read delta / our delta after 0.3 s: {got}")
        root.remove()
    print()


def exp_reads(s: LiveSession) -> None:
    """/proc/<pid>/fdinfo read by the child in the measured cgroup, or by us: the
    reader's proc dentries and inodes (SLAB_ACCOUNT) are charged to the reader."""
    print("## reads: fdinfo of 4 fresh maps read between create and measure\n")
    root = s.case()
    ch = Child(s, root, {0})
    for who in ("the child", "us", "the child", "us"):
        x = root.mkchild(f"r{len(os.listdir(root.path))}")
        ch.do("open 4")                  # new fd numbers each round: no cached dentries
        fds = [int(ch.in_(x, f"create m{i} ARRAY 4 4 1")) for i in range(4)]
        for i, fd in enumerate(fds):
            if who == "us":
                B.fdinfo(fd, ch.pid)
            else:
                ch.in_(x, f"fdinfo m{i}")
        ch.do("touch")                   # park the stock remainder: no drain yet
        before = x.kmem()
        print(f"- read by {who}: 4 x ARRAY k4 v4 m1 = {before} before force_empty, "
              f"{canonical(ch, x)} after (its reclaim frees unused dentries/inodes)")
        for i in range(4):
            ch.do(f"close m{i}")
    print()


def exp_remainder(s: LiveSession) -> None:
    """Old method (the child lives in the measured cgroup): the same create's delta
    as the child holds more 200-byte files in that cgroup."""
    print("## remainder: create/close pages vs files the child holds in the same cgroup\n")
    for spec in ("ARRAY 4 4 1", "ARRAY 4 64 1000"):
        root = s.case()
        a = root.mkchild("A")
        ch = Child(s, root, {0}, start_in=a)
        row = []
        for k in range(41):
            if k:
                ch.do("open 1")
            k0 = raw(a)
            ch.do(f"create m {spec}")
            k1 = raw(a)
            ch.do("close m")
            time.sleep(0.2)
            k2 = raw(a)
            row.append(f"{k}:{(k1 - k0) // PAGE:+d}/{(k2 - k1) // PAGE:+d}")
        print(f"- {spec} (held files:create pages/close pages): {' '.join(row)}")
        root.remove()
    print()


def exp_order(s: LiveSession) -> None:
    """Creation order: per-create deltas in one cgroup vs the total in a fresh one."""
    print("## order: two creates, in either order\n")
    for order in (("ARRAY 4 4 1", "ARRAY 4 64 1000"), ("ARRAY 4 64 1000", "ARRAY 4 4 1")):
        root = s.case()
        ch = Child(s, root, {0})
        x = root.mkchild("x")
        ch.in_(x, "open 7")              # some earlier activity in x: 7 files, 1400 bytes
        k0 = canonical(ch, x)
        ch.in_(x, f"create a {order[0]}")
        k1 = canonical(ch, x)
        ch.in_(x, f"create b {order[1]}")
        k2 = canonical(ch, x)
        print(f"- {order[0]} then {order[1]}: deltas {k1 - k0:+d}, {k2 - k1:+d}; "
              f"total {k2 - k0}")
        root.remove()
    print()


def exp_fresh(s: LiveSession) -> None:
    print("## fresh: each create in a fresh cgroup, read by us (raw, then canonical)\n")
    root = s.case()
    ch = Child(s, root, {0})
    for spec in ("ARRAY 4 4 1", "ARRAY 4 64 1000", "HASH 4 64 1000", "HASH 4 64 1000 1"):
        got = []
        for i in range(4):
            x = root.mkchild(f"f{len(os.listdir(root.path))}")
            ch.in_(x, f"create m {spec}")
            got.append(f"{raw(x)}/{canonical(ch, x)}")
            ch.do("close m")
        print(f"- {spec}: {got}")
    print()


def exp_parked(s: LiveSession) -> None:
    """Frees on another cpu (bpf_map_free_deferred() runs on an unbound kworker)
    leave remainders in two cpus' stocks; drain_obj_stock() parks both in
    obj_cgroup->nr_charged_bytes, where they add up to a page that stays charged
    until refill_obj_stock() adopts it."""
    print("## parked: HASH k4 v64 m1000 created and closed in a fresh cgroup\n")
    for cpus in ({0}, None):
        root = s.case()
        ch = Child(s, root, cpus)
        rows = []
        for i in range(12):
            x = root.mkchild(f"p{i}")
            ch.in_(x, "create m HASH 4 64 1000")
            created = canonical(ch, x)
            ch.do("close m")
            time.sleep(0.3)
            left = raw(x)
            rows.append((created, left, canonical(ch, x) if left else 0))
        where = "pinned to cpu 0" if cpus else "free to run on either cpu"
        print(f"- child {where}: after create {sorted({r[0] for r in rows})}; left after "
              f"the close and force_empty: a page in {sum(1 for r in rows if r[1])} of "
              f"{len(rows)}; after one alloc+free in the cgroup: "
              f"{sorted({r[2] for r in rows})}")
        root.remove()
    print()


def exp_force_empty(s: LiveSession) -> None:
    """force_empty drains the writer's cpu at once and queues the others; both
    are done before the write returns here (its reclaim rounds take longer)."""
    import subprocess
    print("## force_empty: a 64-page page stock on cpu 0 (a cpu hog there), drained "
          "from either cpu\n")
    old = os.sched_getaffinity(0)
    root = s.case()
    ch = Child(s, root, {0})
    try:
        for our_cpu in (0, 1, 0, 1):
            x = root.mkchild(f"e{len(os.listdir(root.path))}")
            ch.in_(x, "create a ARRAY 4 4 1")   # try_charge_memcg() charges a batch of 64
            before = x.usage()
            hog = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c",
                                    "while True: pass"])
            time.sleep(0.2)
            os.sched_setaffinity(0, {our_cpu})
            x.drain_once()
            at_once = x.usage()
            time.sleep(0.05)
            later = x.usage()
            hog.kill()
            hog.wait()
            print(f"- from cpu {our_cpu}: usage before {before}, when the write returned "
                  f"{at_once}, 50 ms later {later}")
            ch.do("close a")
    finally:
        os.sched_setaffinity(0, old)
    print()


def exp_fdtable(s: LiveSession) -> None:
    print("## fdtable: the create that needs fd 512 grows the table (expand_files())\n")
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    root = s.case()
    ch = Child(s, root, {0})
    n = len(os.listdir(f"/proc/{ch.pid}/fd"))
    ch.do(f"open {512 - 3 - n}")
    made = []
    for i in range(5):                  # raw readings: a touch would take the next fd
        x = root.mkchild(f"t{i}")
        fd = int(ch.in_(x, f"create m{i} ARRAY 4 4 1"))
        made.append(x)
        print(f"- create at fd {fd}: {pages(raw(x))}, FDSize {ch.fdsize()}")
    for i in range(5):
        ch.do(f"close m{i}")
    time.sleep(0.3)
    print(f"- after closing them: {[raw(x) for x in made]}\n")


def exp_idr(s: LiveSession) -> None:
    """N creates kept open in one fresh cgroup: PAGE_ALIGN(N x 920) if nothing but
    the map, file and dentry is charged (map ids: idr_alloc_cyclic() on map_idr,
    nodes preloaded without __GFP_ACCOUNT)."""
    print("## idr: many maps alive in one cgroup\n")
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    root = s.case()
    ch = Child(s, root, {0})
    ch.do("open 1100")                  # grow the fd table at home first (to 2048)
    for n in (64, 640):
        x = root.mkchild(f"i{n}")
        x.move(ch.pid)
        for i in range(n):
            ch.do(f"create m{n}_{i} ARRAY 4 4 1")
        ch.home.move(ch.pid)
        got = canonical(ch, x)
        want = -(-n * 920 // PAGE) * PAGE
        print(f"- {n} creates: {pages(got)}; PAGE_ALIGN({n} x 920) = {pages(want)}; "
              f"with an accounted idr node per 64 ids it would be "
              f"{pages(-(-(n * 920 + (n + 63) // 64 * 592) // PAGE) * PAGE)}")
        for i in range(n):
            ch.do(f"close m{n}_{i}")
    print()


EXPERIMENTS = {"fork": exp_fork, "reads": exp_reads, "remainder": exp_remainder,
               "order": exp_order, "fresh": exp_fresh, "parked": exp_parked,
               "force_empty": exp_force_empty, "fdtable": exp_fdtable, "idr": exp_idr}


def main(argv: list[str]) -> int:
    names = argv or list(EXPERIMENTS)
    bad = [n for n in names if n not in EXPERIMENTS]
    if bad:
        print(f"unknown experiment(s) {bad}; choose from {list(EXPERIMENTS)}", file=sys.stderr)
        return 2
    u = os.uname()
    print(f"kernel {u.release} {u.version}, {os.cpu_count()} cpus, page {PAGE}\n")
    with LiveSession(exit_on_signal=True, name="extra_page") as s:
        for n in names:
            EXPERIMENTS[n](s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
