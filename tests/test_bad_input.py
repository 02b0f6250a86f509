"""The bad-input battery: every public entry point driven with wrong types, out-of-range
and overflowing numbers, stale handles, double frees and calls in the wrong context.

Each input must get a clear error (OSError with an errno, ValueError, TypeError, or the
mm layer's RuntimeError for wrong-context calls; exit code 2 and a message for the
CLI), the process must survive, and every counter must be as before (the info() of
every cgroup is compared before and after).  The number of bad inputs tried is printed
in the session summary ("pybpfmem fuzzing counts").
"""

from __future__ import annotations

import random
from typing import Any, Callable

import pytest

import pybpfmem
from pybpfmem import constants as K
from pybpfmem._core import ffi, lib
from pybpfmem.bpf import uapi as U
from pybpfmem.reference.fuzzing import summary_for

ERRORS = (OSError, ValueError, TypeError, RuntimeError)
BAD_INTS: tuple[Any, ...] = (-1, -(1 << 63), 1 << 63, (1 << 64) - 1, 1 << 64, 1 << 200,
                             True, False, 1.0, 1.5, float("nan"), "1", b"1", None, [1], object())
GFP = K.GFP_KERNEL | K.__GFP_ACCOUNT


class Battery:
    """Counts bad inputs and checks that each one is refused cleanly, changing nothing."""

    def __init__(self, s: Any, cgs: list[Any]) -> None:
        self.s, self.cgs, self.tried = s, cgs, 0

    def snapshot(self) -> list[Any]:
        """Every counter of every cgroup (limits left out: an accepted write sets them)."""
        out = []
        for c in self.cgs:
            if c.online or c.dying:
                d = c.info()
                for pc in ("memory", "kmem"):
                    d[pc] = {k: v for k, v in d[pc].items()
                             if k not in ("max", "high", "low", "min", "emin", "elow")}
                out.append(d)
        return out

    def refused(self, fn: Callable[[], Any], allow_ok: bool = False) -> None:
        before = self.snapshot()
        self.tried += 1
        try:
            fn()
        except ERRORS as e:
            if isinstance(e, OSError):
                assert e.errno and e.errno > 0, f"OSError without an errno: {e!r}"
            assert str(e), f"{type(e).__name__} without a message"
        else:
            assert allow_ok, f"accepted: {fn}"
        self.s.check()
        assert self.snapshot() == before, "a refused input changed a counter"


@pytest.fixture
def battery(pytestconfig: pytest.Config) -> Any:
    s = pybpfmem.System(nr_cpus=2, profile="6.18", oom_kill=False)
    a = s.root.mkdir("a")
    b = Battery(s, [s.root, a])
    yield b
    summary_for(pytestconfig).add("bad inputs tried", b.tried)
    s.close()


def test_mm_api_numbers(battery: Battery) -> None:
    s, a = battery.s, battery.cgs[1]
    for v in BAD_INTS:
        battery.refused(lambda: a.try_charge(v, GFP))
        battery.refused(lambda: a.try_charge(1, v))
        battery.refused(lambda: a.try_charge(1, GFP, cpu=v))
        battery.refused(lambda: a.uncharge(v))
        battery.refused(lambda: s.kmalloc(v, GFP))
        battery.refused(lambda: s.kmalloc(8, v))
        battery.refused(lambda: s.vmalloc(v, GFP))
        battery.refused(lambda: s.alloc_pages(v, GFP))
        battery.refused(lambda: s.alloc_percpu(v, 8, GFP))
        battery.refused(lambda: s.alloc_percpu(8, v, GFP))
        for free in (s.kfree, s.vfree, s.kvfree, s.free_percpu):
            battery.refused(lambda: free(v))
        battery.refused(lambda: s.free_pages(v, 0))
        battery.refused(lambda: s.memcg_by_id(v))
        battery.refused(lambda: s.drain_local_stock(v))
        battery.refused(lambda: s.spawn(cgroup=a, uid=v))
    # sizes the allocators must refuse (too large for any cache / the simulated RAM)
    for size in (1 << 40, 1 << 62):
        battery.refused(lambda: s.kmalloc(size, GFP))
        battery.refused(lambda: s.vmalloc(size, GFP))
    for order in (11, 64):
        battery.refused(lambda: s.alloc_pages(order, GFP))
    battery.refused(lambda: a.uncharge(1))          # more than was charged


def test_double_free_and_stale_handles(battery: Battery) -> None:
    s = battery.s
    a = battery.cgs[1]
    with s.in_interrupt(cpu=0), s.active_memcg(a):
        x = s.kmalloc(100, GFP)
        v = s.vmalloc(10000, GFP)
        p = s.alloc_percpu(64, 8, GFP)
        pg = s.alloc_pages(1, GFP)
    s.kfree(x)
    s.vfree(v)
    s.free_percpu(p)
    s.free_pages(pg, 1)
    s.drain_all_stock()
    battery.refused(lambda: s.kfree(x))
    battery.refused(lambda: s.vfree(v))
    battery.refused(lambda: s.free_percpu(p))
    battery.refused(lambda: s.free_pages(pg, 1))
    battery.refused(lambda: s.vfree(x))
    battery.refused(lambda: s.kfree(v + 8))
    # a cgroup after rmdir
    c = s.root.mkdir("gone")
    c.rmdir()
    for fn in (lambda: c.mkdir("x"), lambda: c.rmdir(), lambda: c.write("memory.max", "1M"),
               lambda: c.try_charge(1, GFP), lambda: s.spawn(cgroup=c),
               lambda: s.active_memcg(c).__enter__()):
        battery.refused(fn)
    # a cgroup that is not empty, the root
    a.mkdir("kid")
    battery.refused(a.rmdir)
    battery.refused(s.root.rmdir)


def test_wrong_context(battery: Battery) -> None:
    s, a = battery.s, battery.cgs[1]
    t = s.spawn(cgroup=a)
    u = s.spawn(cgroup=a)
    with t.running(cpu=0):
        battery.refused(t.exit)                               # exit while running
        battery.refused(lambda: u.running(cpu=0).__enter__())  # cpu 0 is busy
        battery.refused(lambda: t.running(cpu=1).__enter__())  # t already runs
    with s.in_interrupt(cpu=1):
        battery.refused(lambda: u.running(cpu=1).__enter__())  # no task in an interrupt
    t.exit()
    battery.refused(t.exit)
    battery.refused(lambda: t.running(cpu=0).__enter__())
    battery.refused(lambda: t.migrate(a))


def test_cgroup_file_garbage(battery: Battery) -> None:
    a = battery.cgs[1]
    rnd = random.Random(6)
    names = ["memory.max", "memory.high", "memory.low", "memory.min", "memory.current",
             "memory.stat", "memory.events", "nosuch", "", "memory.max\0", "../memory.max"]
    values = ["", "-1", "max1", "1Q", "18446744073709551616", "0x", "\0", "nan", "1.5M",
              "--1", "9" * 100, "max max", "1 2", "\n\n"]
    for name in names:
        for val in values + ["".join(chr(rnd.randrange(1, 0x3000)) for _ in range(rnd.randrange(1, 20)))
                             for _ in range(10)]:
            battery.refused(lambda: a.write(name, val), allow_ok=True)
        for bad in (None, 5, 1.0, ["1M"]):     # (bytes are accepted, as the kernel file takes them)
            battery.refused(lambda: a.write(name, bad))
    # writes that were accepted may change limits but never a counter: snapshots compare
    # usage, stats and events along with the limits, so restore the limits first
    for name in ("memory.max", "memory.high"):
        a.write(name, "max")
    for name in ("memory.low", "memory.min"):
        a.write(name, "0")


def test_bpf_random_attrs(battery: Battery) -> None:
    """task.bpf() with every command number -1..40 and random attrs of every size 0..200."""
    s = battery.s
    t = s.spawn(cgroup=battery.cgs[1])
    rnd = random.Random(60)
    for cmd in range(-1, 41):
        for size in range(0, 201, 5):
            attr = bytes(rnd.getrandbits(8) for _ in range(size))
            fds = t.fds()

            def call() -> None:
                fd = t.bpf(cmd, attr)
                # a random attr may really create something: close it again
                if isinstance(fd, int) and fd > 0 and fd not in fds:
                    t.close(fd)
                s.run_deferred()
                s.drain_all_stock()
            battery.refused(call, allow_ok=True)
    for bad in (None, "x", 1.0, True, 1 << 64):
        battery.refused(lambda: t.bpf(bad, b""))
        battery.refused(lambda: t.bpf(U.BPF_MAP_CREATE, bad))


def test_libbpf_style_calls(battery: Battery) -> None:
    s = battery.s
    t = s.spawn(cgroup=battery.cgs[1])
    for v in BAD_INTS:
        battery.refused(lambda: t.bpf_map_create(v, 4, 4, 1))
        battery.refused(lambda: t.bpf_map_create(U.BPF_MAP_TYPE_HASH, v, 4, 1))
        battery.refused(lambda: t.bpf_map_create(U.BPF_MAP_TYPE_HASH, 4, v, 1))
        battery.refused(lambda: t.bpf_map_create(U.BPF_MAP_TYPE_HASH, 4, 4, v))
        battery.refused(lambda: t.bpf_map_update_elem(v, b"1234", b"1234"))
        battery.refused(lambda: t.bpf_map_delete_elem(v, b"1234"))
        battery.refused(lambda: t.close(v))
    fd = t.bpf_map_create(U.BPF_MAP_TYPE_HASH, 4, 4, 4)
    s.drain_all_stock()
    for key, val, flags in ((b"123", b"1234", 0), (b"1234", b"12345", 0), (None, b"1234", 0),
                            (b"1234", b"1234", 1 << 64), (b"1234", b"1234", -1),
                            (b"1234", b"1234", 7), ("1234", b"1234", 0)):
        battery.refused(lambda: t.bpf_map_update_elem(fd, key, val, flags))
    battery.refused(lambda: t.bpf_map_update_batch(fd, [b"1234"], [b"1234", b"5678"]))
    battery.refused(lambda: t.bpf_obj_get("/sys/fs/bpf/none"))
    t.close(fd)
    battery.refused(lambda: t.close(fd))
    s.run_deferred()
    s.drain_all_stock()


def test_closed_system(pytestconfig: pytest.Config) -> None:
    s = pybpfmem.System(profile="5.11")
    a = s.root.mkdir("a")
    s.close()
    calls: list[Callable[[], Any]] = [
        lambda: s.kmalloc(8, GFP), lambda: s.kfree(4096), lambda: s.drain_all_stock(),
        lambda: s.root.mkdir("b"), lambda: a.read("memory.current"), lambda: a.try_charge(1, GFP),
        lambda: s.spawn(), lambda: s.check()]
    for fn in calls:
        with pytest.raises(ERRORS):
            fn()
    s.close()                                   # closing twice is harmless
    summary_for(pytestconfig).add("bad inputs tried", len(calls))


def _cfunc_args(ftype: Any, sysp: Any, fill: Any) -> list[Any]:
    out = []
    for i, a in enumerate(ftype.args):
        if a.kind == "pointer":
            out.append(sysp if i == 0 and a.cname.startswith("bm_system") else ffi.NULL)
        elif a.kind == "primitive":
            out.append(fill(a.cname))
        else:
            return []
    return out


def test_every_c_entry_point_with_bad_arguments(pytestconfig: pytest.Config) -> None:
    """Every bm_* function of the cdef, with a NULL system, then with a live system and
    NULL pointers plus edge integers (0, -1, the type's maximum): each returns (a negative
    errno where it returns int) and the process survives."""
    s = pybpfmem.System(profile="6.18")
    sysp = s._sys
    names = [n for n in dir(lib) if n.startswith("bm_") and callable(getattr(lib, n))]
    skip = {"bm_system_free", "bm_system_new"}          # ownership of the handle itself
    tried = 0

    def edge(kind: str) -> Any:
        def f(cname: str) -> Any:
            if cname in ("float", "double"):
                return 0.0
            unsigned = cname.startswith("uint") or cname.startswith("unsigned") or cname == "size_t"
            bits = 8 * ffi.sizeof(cname)
            return {"zero": 0, "neg": 0 if unsigned else -1,
                    "max": (1 << bits) - 1 if unsigned else (1 << (bits - 1)) - 1}[kind]
        return f

    for n in names:
        if n in skip:
            continue
        fn = getattr(lib, n)
        ftype = ffi.typeof(fn)
        for sp, kind in ((ffi.NULL, "zero"), (sysp, "neg"), (sysp, "max"), (sysp, "zero")):
            args = _cfunc_args(ftype, sp, edge(kind))
            if len(args) != len(ftype.args):
                continue
            if sp == sysp and not any(a is ffi.NULL for a in args):
                continue     # with no NULL pointer the call may legitimately succeed
            rc = fn(*args)
            tried += 1
            if ftype.result.kind == "primitive" and ftype.result.cname.startswith("int") and \
                    ftype.args and ftype.args[0].cname.startswith("bm_system") and sp == ffi.NULL:
                assert rc < 0, f"{n}(NULL, ...) returned {rc}"
    s.check()
    s.close()
    summary_for(pytestconfig).add("bad inputs tried", tried)
    assert tried > 50


CLI_BAD = [["nosuch"], ["fuzz", "--ops", "-1"], ["fuzz", "--seconds", "x"],
           ["fuzz", "--profile", "4.19"], ["fuzz", "--seconds", "1", "--ops", "1"],
           ["fuzz", "--machine", "both"], ["fuzz", "--shrink-seconds", "-1"],
           ["simulate", "/nonexistent/scenario.toml"], ["plan", "--nosuch-option"]]


@pytest.mark.parametrize("argv", CLI_BAD, ids=lambda a: " ".join(a))
def test_cli_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str],
                           pytestconfig: pytest.Config) -> None:
    from pybpfmem.commands.cli import main
    try:
        rc = main(argv)
    except SystemExit as e:          # argparse in a subcommand
        rc = int(e.code or 0)
    err = capsys.readouterr().err
    assert rc == 2, f"exit {rc}"
    assert err.strip(), "no message on stderr"
    summary_for(pytestconfig).add("bad inputs tried", 1)


@pytest.mark.parametrize("text", ["\0\0\0", "[[[", "[system]\nprofile = '9.9'\n",
                                  "[[step]]\nop = 'explode'\n", "x" * 1000])
def test_scenario_garbage(text: str, tmp_path: Any, capsys: pytest.CaptureFixture[str],
                          pytestconfig: pytest.Config) -> None:
    from pybpfmem.commands.cli import main
    f = tmp_path / "bad.toml"
    f.write_text(text)
    try:
        rc = main(["simulate", str(f)])
    except SystemExit as e:
        rc = int(e.code or 0)
    assert rc == 2, f"exit {rc} for {text[:30]!r}"
    assert capsys.readouterr().err.strip()
    summary_for(pytestconfig).add("bad inputs tried", 1)


def test_fuzz_command_runs_clean(capsys: pytest.CaptureFixture[str]) -> None:
    """`pybpfmem fuzz --ops` runs every machine and exits 0 when nothing diverges (the
    machines take turns, one batch of 2 x 50 steps each: the budget is 100 steps for
    every memcg and bpf machine of every profile)."""
    from pybpfmem.commands.fuzzcmd import main
    from pybpfmem.reference import differential, differential_bpf
    from pybpfmem.profiles import PROFILE_NAMES
    n = sum(p in table for table in (differential.MACHINES, differential_bpf.MACHINES) for p in PROFILE_NAMES)
    assert main(["--ops", str(100 * n), "--batch", "2", "--quiet", "--derandomize"]) == 0
    out = capsys.readouterr().out
    assert "memcg 5.10" in out and "memcg 6.8" in out and "bpf 6.18" in out and "ops/s" in out
