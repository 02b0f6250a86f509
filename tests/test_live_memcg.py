"""The memcg model against the live kernel, where the v1 controller shows it: the cost of
1,000 child cgroups in the parent's memory.usage_in_bytes / memory.kmem.usage_in_bytes,
the kernel stacks of threads, negative dentries and their reclaim under a v1 limit.

Every case runs its work in a forked child inside a scratch cgroup below our own memory
cgroup (pybpfmem.live.session), removed at the end.  v1 only: the kmem counter is the
v1 file; memory.stat's kernel_stack, percpu and slab keys, memory.low/min and
memory.events are v2 files, which the v1 host cannot show (tests/test_protection.py and
tests/test_cgroup_cost.py check those against the kernel source).

The model is the 6.18 profile, whose struct sizes come from this machine's BTF; on a
kernel whose sizes differ the comparisons skip with the reason.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import time

import pytest

import pybpfmem
from pybpfmem.btf import read_struct_sizes
from pybpfmem.live import cgroupfs, runner
from pybpfmem.live import session as S

PS = 4096
REASON = runner.refusal_reason()
live = pytest.mark.skipif(REASON is not None, reason=str(REASON))
pytestmark = pytest.mark.live


def _possible_cpus() -> int:
    n = 0
    with open("/sys/devices/system/cpu/possible") as f:
        for part in f.read().strip().split(","):
            lo, _, hi = part.partition("-")
            n += int(hi or lo) - int(lo) + 1
    return n


def _need_v1_and_618_sizes() -> None:
    if cgroupfs.detect().version != 1:
        pytest.skip("the host's memory controller is cgroup v2: these checks read v1 kmem files")
    prof = pybpfmem.profiles.get_profile("6.18")
    m = prof.mm_structs
    want = {"memcg_vmstats": m.memcg_vmstats, "memcg_vmstats_percpu": m.memcg_vmstats_percpu,
            "lruvec_stats": m.lruvec_stats, "lruvec_stats_percpu": m.lruvec_stats_percpu,
            "memcg1_events_percpu": m.memcg1_events_percpu, "dentry": m.dentry}
    try:
        have = read_struct_sizes("/sys/kernel/btf/vmlinux", set(want))
    except OSError as e:
        pytest.skip(f"no kernel BTF to compare the 6.18 profile's sizes with: {e}")
    if have != want:
        pytest.skip(f"the running kernel's structs differ from profile 6.18's: {have} vs {want}")


def _model(cgroup: str = "v1") -> pybpfmem.System:
    return pybpfmem.System(nr_cpus=_possible_cpus(), page_size=PS, profile="6.18", cgroup=cgroup,
                           oom_kill=False)


def _child(sess: S.LiveSession, cg: cgroupfs.CaseCgroup, work, prepare=lambda: None):
    """Fork a child and move it into cg; once there it runs prepare() and reports ready
    (so the baseline is taken with the child settled in cg), then runs work() when told
    and reports done.  Returns (pid, go, done): go() releases the child, done() waits."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    pid = sess.fork()
    if pid == 0:
        try:
            os.read(r1, 1)
            prepare()
            os.write(w2, b"r")
            os.read(r1, 1)
            work()
            os.write(w2, b"d")
            os.read(r1, 1)
        finally:
            os._exit(0)
    cg.move(pid)
    os.write(w1, b"m")
    os.read(r2, 1)
    return pid, (lambda: os.write(w1, b"g")), (lambda: os.read(r2, 1))


def _adopt_parked_bytes(sess: S.LiveSession, cg: cgroupfs.CaseCgroup) -> None:
    """A short-lived child in cg allocates and frees one accounted object (a struct
    file): refill_obj_stock() switches its cpu's object stock to cg's objcg and adopts
    obj_cgroup->nr_charged_bytes, so the next drain uncharges their whole pages."""
    r, w = os.pipe()
    pid = sess.fork()
    if pid == 0:
        try:
            os.read(r, 1)
            os.close(os.open("/dev/null", os.O_RDONLY))
        finally:
            os._exit(0)
    cg.move(pid)
    os.write(w, b"g")
    sess.reap(pid)
    os.close(r)
    os.close(w)


@live
def test_1000_children_cost_their_parent_live() -> None:
    # mkdir of 1,000 children below a scratch cgroup P, by a child process in its own
    # scratch cgroup W (mem_cgroup_css_alloc(): set_active_memcg(P), so only
    # mem_cgroup_alloc()'s accounted structures land on P: 6.18 allocates cgroup and
    # kernfs objects GFP_KERNEL).  Live and model: 10,160 bytes per child, 10,162,176
    # for 1,000 (2481 pages); all of it goes when they are removed.
    _need_v1_and_618_sizes()
    n = 1000
    with S.LiveSession() as sess:
        p, w = sess.case(), sess.case()
        p.drain()
        k0, u0 = p.kmem(), p.usage()
        pid, go, done = _child(sess, w, lambda: [os.mkdir(os.path.join(p.path, f"c{i}"))
                                                 for i in range(n)])
        go(); done()
        p.drain()
        live_kmem, live_usage = p.kmem() - k0, p.usage() - u0
        go(); sess.reap(pid)
        for i in range(n):
            os.rmdir(os.path.join(p.path, f"c{i}"))
        # the children are freed asynchronously (css_free_rwork_fn() after an RCU grace
        # period, later on a loaded machine): wait for it, up to 10 s.  Their slab
        # bytes come back through whichever cpu freed them, so P's objcg can park
        # sub-page remainders in nr_charged_bytes that add up to a page still charged:
        # a canonical reading adopts them first (as the runner's snapshot does).
        deadline = time.monotonic() + 10
        while True:
            time.sleep(0.2)
            p.drain()
            _adopt_parked_bytes(sess, p)
            p.drain()
            after = p.kmem() - k0
            if after == 0 or time.monotonic() > deadline:
                break
    s = _model()
    mp = s.root.mkdir("p")
    for i in range(n):
        mp.mkdir(f"c{i}")
    s.drain_all_stock()
    model = int(mp.read("memory.kmem.usage_in_bytes"))
    assert model == int(mp.read("memory.usage_in_bytes")) == 10162176
    assert live_kmem == live_usage == model
    assert after == 0


def _thread_starter(n: int, stack: int = 64 * 1024):
    """(prepare, start): prepare() maps and touches one region for n thread stacks (their
    page tables and user pages exist before the baseline); start() creates n pthreads
    blocked in pause() on them."""
    libc = ctypes.CDLL(None, use_errno=True)
    regions: list[mmap.mmap] = []

    def prepare() -> None:
        region = mmap.mmap(-1, stack * n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        region.write(b"\1" * (stack * n))
        regions.append(region)

    def start() -> None:
        base = ctypes.addressof(ctypes.c_char.from_buffer(regions[0]))
        attr = ctypes.create_string_buffer(64)
        libc.pthread_attr_init(attr)
        pause = ctypes.cast(libc.pause, ctypes.c_void_p)
        for i in range(n):
            libc.pthread_attr_setstack(attr, ctypes.c_void_p(base + i * stack), ctypes.c_size_t(stack))
            tid = ctypes.c_ulong()
            if libc.pthread_create(ctypes.byref(tid), attr, pause, None):
                os._exit(3)
    return prepare, start


def _objsize(cache: str) -> int:
    with open(f"/sys/kernel/slab/{cache}/slab_size") as f:
        return int(f.read())


@live
def test_thread_kernel_stacks_live() -> None:
    # 300 threads of a child in a scratch cgroup: the kmem counter rises by 22,480 bytes a
    # thread on 6.18.44: the stack (THREAD_SIZE 16,384, four one-page KMEM charges) the model
    # charges, plus what it does not model: task_struct (slab_size + the 8-byte objcg slot)
    # and struct pid (the same), both SLAB_ACCOUNT caches.  Page-rounded: the objcg keeps a
    # sub-page rest.
    _need_v1_and_618_sizes()
    n = 300
    extra = _objsize("task_struct") + 8 + _objsize("pid") + 8
    with S.LiveSession() as sess:
        cg = sess.case()
        prepare, start = _thread_starter(n)
        pid, go, done = _child(sess, cg, start, prepare)
        cg.drain()
        k0 = cg.kmem()
        go(); done()
        cg.drain()
        k1 = cg.kmem()
        go(); sess.reap(pid)
    s = _model()
    a = s.root.mkdir("a")
    t = s.spawn()
    t.migrate(a)                          # forked elsewhere, as the live child was
    s.drain_all_stock()
    base = int(a.read("memory.kmem.usage_in_bytes"))
    for _ in range(n):
        t.clone_thread()
    s.drain_all_stock()
    model = int(a.read("memory.kmem.usage_in_bytes")) - base
    assert model == n * 16384
    live_per_thread = n * (16384 + extra)
    assert k1 - k0 == -(-live_per_thread // PS) * PS, (k1 - k0, extra)


@live
def test_negative_dentries_and_limit_reclaim_live() -> None:
    # 20,000 lookups of missing names (ext4 keeps negative dentries) by a child in a
    # scratch cgroup: 200 bytes of kmem each (dentry 192 + the objcg slot), live and
    # model.  After the child is gone, a v1 memory.limit_in_bytes below the usage: the
    # reclaim frees every dentry but reports no progress (slab is not counted in memcg
    # reclaim since v6.4), so the first write fails with EBUSY; the second, once the
    # dentries' RCU-delayed frees have uncharged them, succeeds.
    _need_v1_and_618_sizes()
    n = 20000
    d = f"/tmp/pybpfmem-dentries-{os.getpid()}"
    os.makedirs(d, exist_ok=True)

    def lookups(prefix: str = "n", count: int = n) -> None:
        for i in range(count):
            try:
                os.stat(f"{d}/{prefix}{i}")
            except FileNotFoundError:
                pass

    def warm_up() -> None:
        # the same loop on other names first, so the interpreter's heap (and the page
        # tables behind it, accounted kmem) has grown before the baseline; those dentries
        # are part of the baseline
        lookups("w", 2000)
    try:
        with S.LiveSession() as sess:
            cg = sess.case()
            pid, go, done = _child(sess, cg, lookups, warm_up)
            k0 = cg.kmem()                   # no drain: force_empty would shrink dentries
            go(); done()
            k1 = cg.kmem()
            go(); sess.reap(pid)
            time.sleep(0.1)
            usage = cg.usage()
            limit = usage // 2
            results = []
            for _ in range(2):
                try:
                    cg.write("memory.limit_in_bytes", str(limit))
                    results.append(0)
                except OSError as e:
                    results.append(e.errno)
                # the kernel frees a dentry after an RCU grace period (the model at once):
                # wait until the uncharges land
                for _ in range(100):
                    if cg.kmem() < 2 * PS:
                        break
                    time.sleep(0.02)
            k2 = cg.kmem()
    finally:
        os.rmdir(d)
    assert k1 - k0 in (n * 200 // PS * PS, -(-n * 200 // PS) * PS)
    assert results == [errno.EBUSY, 0]
    assert k2 < PS * 2
    s = _model()
    a = s.root.mkdir("a")
    t = s.spawn()
    t.migrate(a)
    with t.running(cpu=0):
        s.create_dentries(n)
    s.drain_all_stock()
    assert int(a.read("memory.kmem.usage_in_bytes")) == -(-n * 200 // PS) * PS
    got = []
    mlimit = a.usage_pages * PS // 2
    for _ in range(2):
        try:
            a.write("memory.limit_in_bytes", str(mlimit))
            got.append(0)
        except OSError as e:
            got.append(e.errno)
    assert got == results
