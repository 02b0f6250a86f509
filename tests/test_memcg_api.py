"""System / MemCgroup Python API: argument validation, the cgroup tree and
lifecycle, and the charge path seen through the Python layer (expected
values derived from try_charge_memcg(), mm/memcontrol.c)."""

from __future__ import annotations

import errno

import pytest

import pybpfmem
from pybpfmem import (GFP_KERNEL, __GFP_NOFAIL, __GFP_NORETRY, __GFP_RETRY_MAYFAIL, System)

PS = 4096


def make(profile: str = "6.18", **kw) -> System:
    return System(profile=profile, ram="64M", **kw)


# ---------------------------------------------------------------- System
@pytest.mark.parametrize("kw,exc", [
    ({"nr_cpus": 0}, ValueError), ({"nr_cpus": 1025}, ValueError), ({"nr_cpus": True}, TypeError),
    ({"nr_cpus": "2"}, TypeError), ({"nr_cpus": 2.0}, TypeError),
    ({"page_size": 8192}, ValueError), ({"page_size": 4096.0}, TypeError),
    ({"profile": "4.19"}, ValueError), ({"profile": 6.18}, TypeError),
    ({"cgroup": "v3"}, ValueError), ({"cgroup": 2}, TypeError),
    ({"ram": "1K"}, ValueError), ({"ram": "lots"}, ValueError), ({"ram": -1}, ValueError),
    ({"ram": 1.5}, TypeError), ({"oom_kill": 1}, TypeError),
])
def test_system_rejects_bad_arguments(kw: dict, exc: type) -> None:
    args = {"ram": "64M", **kw}
    with pytest.raises(exc):
        System(**args)


def test_system_attributes_and_profiles() -> None:
    with System(nr_cpus=4, page_size=16384, profile="5.11", cgroup="v1", ram="64M") as s:
        assert (s.nr_cpus, s.page_size, s.cgroup_version) == (4, 16384, "v1")
        assert s.profile.name == "5.11" and s.profile.charge_batch == 32
        assert s.gfp.GFP_ATOMIC == 0xA20 and s.gfp.__GFP_ATOMIC == 0x200
    with make() as s:
        assert s.profile.charge_batch == 64 and s.profile.nr_memcg_stock == 7
        assert s.gfp.GFP_ATOMIC == 0x820 and s.gfp.__GFP_ATOMIC == 0
    assert pybpfmem.GFP_ATOMIC == 0x820          # module level = current kernel
    assert pybpfmem.GFP_KERNEL == 0xCC0 and pybpfmem.GFP_KERNEL_ACCOUNT == 0x400CC0
    assert pybpfmem.GFP_USER == 0x100CC0
    assert pybpfmem.list_profiles() == ["5.10", "5.11", "5.15", "6.1", "6.6", "6.8", "6.12", "6.18"]


def test_many_systems_are_independent() -> None:
    s1, s2 = make(), make("5.11")
    a1, a2 = s1.root.mkdir("a"), s2.root.mkdir("a")
    a1.try_charge(1, GFP_KERNEL)
    assert (a1.usage_pages, a2.usage_pages) == (64, 0)
    s1.close()
    with pytest.raises(ValueError):
        a1.read("memory.current")                # closed System
    with pytest.raises(ValueError):
        s1.kfree(0)
    a2.try_charge(1, GFP_KERNEL)
    assert a2.usage_pages == 32
    s2.close()
    s2.close()                                   # idempotent


# ---------------------------------------------------------------- tree
def test_mkdir_rmdir_tree() -> None:
    with make() as s:
        a = s.root.mkdir("a")
        b = a.mkdir("b")
        assert (a.path, b.path, s.root.path) == ("/a", "/a/b", "/")
        assert b.parent is a and a.children == [b] and b.name == "b"
        assert a.online and not a.dying and s.cgroup("/a/b") is b
        assert s.memcg_by_id(b.id) is b
        with pytest.raises(OSError) as e:
            a.mkdir("b")
        assert e.value.errno == errno.EEXIST
        for bad in ("", "x/y"):
            with pytest.raises(ValueError):
                a.mkdir(bad)
        with pytest.raises(OSError) as e:
            a.mkdir("x" * 256)
        assert e.value.errno == errno.ENAMETOOLONG
        with pytest.raises(TypeError):
            a.mkdir(3)  # type: ignore[arg-type]
        with pytest.raises(OSError) as e:
            a.rmdir()                            # live child
        assert e.value.errno == errno.EBUSY
        b.rmdir()
        assert a.children == [] and not b.online
        with pytest.raises(OSError) as e:
            b.rmdir()
        assert e.value.errno == errno.ENOENT
        with pytest.raises(OSError) as e:
            b.mkdir("c")                         # inside a removed directory
        assert e.value.errno == errno.ENOENT
        with pytest.raises(OSError) as e:
            s.root.rmdir()
        assert e.value.errno == errno.EBUSY
        # the name is free again after rmdir
        b2 = a.mkdir("b")
        assert b2 is not b and b2.online


def test_rmdir_with_tasks_is_ebusy() -> None:
    with make() as s:
        a = s.root.mkdir("a")
        t = s.spawn(a)
        with pytest.raises(OSError) as e:
            a.rmdir()
        assert e.value.errno == errno.EBUSY
        t.exit()
        a.rmdir()
        assert s.dying_cgroups == 0


def test_dying_memcg_held_by_a_reference() -> None:
    with make() as s:
        a = s.root.mkdir("a")
        s.memcg_get(a)                            # e.g. a v5.11 map's saved memcg
        a.rmdir()
        assert a.dying and s.dying_cgroups == 1
        assert s.memcg_by_id(a.id) is a
        with pytest.raises(OSError):
            a.read("memory.current")              # gone from cgroupfs
        s.memcg_put(a)
        assert not a.dying and s.dying_cgroups == 0
        with pytest.raises(OSError) as e:
            s.memcg_by_id(a.id)
        assert e.value.errno == errno.ENOENT


# ---------------------------------------------------------------- charging
def test_batch_and_stock() -> None:
    with make() as s:
        a = s.root.mkdir("a")
        a.try_charge(1, GFP_KERNEL, cpu=0)        # +64 (batch), 63 stocked on cpu 0
        a.try_charge(1, GFP_KERNEL, cpu=0)        # from the stock
        assert a.usage_pages == 64
        a.try_charge(1, GFP_KERNEL, cpu=1)        # cpu 1 has its own stock: +64
        assert a.usage_pages == 128
        s.drain_all_stock()                       # 62 + 63 stocked pages return
        assert a.usage_pages == 3
        assert s.root.usage_pages == 3            # root counter sees descendants' charges
        a.uncharge(3, cpu=0)
        s.drain_all_stock()
        assert a.usage_pages == 0
        s.check()


def test_hierarchy_sum() -> None:
    with make() as s:
        p = s.root.mkdir("p")
        c1, c2 = p.mkdir("c1"), p.mkdir("c2")
        c1.try_charge(70, GFP_KERNEL, cpu=0)      # nr > batch: exactly 70, no stock
        c2.try_charge(5, GFP_KERNEL, cpu=1)       # batch 64
        p.try_charge(100, GFP_KERNEL, cpu=0)
        # + the two mkdirs (no context: cpu 0): mem_cgroup_alloc()'s accounted structures
        # of c1 and c2, 2 x 10160 bytes on 6.18, charged to p through its objcg: the first
        # page charge takes a batch of 64 into cpu 0's stock, the rest come from it
        assert (c1.usage_pages, c2.usage_pages, p.usage_pages) == (70, 64, 70 + 64 + 100 + 64)
        assert p.info()["memory"]["usage"] == 298


def test_limit_noretry_and_retry_mayfail() -> None:
    with make() as s:
        a = s.root.mkdir("a")
        a.write("memory.max", "40K")              # 10 pages
        a.try_charge(1, GFP_KERNEL, cpu=0)        # batch 64 fails, retried with 1 page
        assert a.usage_pages == 1 and a.events()["max"] == 0
        # 6.18 tracks failcnt only for v1: the failed batch attempt is not counted
        assert a.info()["memory"]["failcnt"] == 0
        # 11 pages over a 10-page max, nothing reclaimable.  Pass 1 raises MAX, drains,
        # retries; pass 2 raises MAX and __GFP_NORETRY gives up: 2 events, -ENOMEM.
        with pytest.raises(OSError) as e:
            a.try_charge(11, GFP_KERNEL | __GFP_NORETRY, cpu=0)
        assert e.value.errno == errno.ENOMEM
        assert a.usage_pages == 1 and a.events()["max"] == 2 and a.events()["oom"] == 0
        # __GFP_RETRY_MAYFAIL: pass 1 (drain) + pass 2 + 16 reclaim retries = 18 MAX events
        with pytest.raises(OSError) as e:
            a.try_charge(11, GFP_KERNEL | __GFP_RETRY_MAYFAIL, cpu=0)
        assert e.value.errno == errno.ENOMEM
        assert a.usage_pages == 1 and a.events()["max"] == 2 + 18 and a.events()["oom"] == 0


def test_failcnt_511_counts_v2_too() -> None:
    with make("5.11") as s:
        a = s.root.mkdir("a")
        a.write("memory.max", "40K")
        a.try_charge(1, GFP_KERNEL, cpu=0)        # batch 32 fails once -> failcnt 1
        assert a.usage_pages == 1 and a.info()["memory"]["failcnt"] == 1


def test_nofail_and_atomic_exceed_max() -> None:
    for prof, atomic_max_events in (("6.18", 1), ("5.11", 0)):
        with make(prof) as s:
            a = s.root.mkdir("a")
            a.write("memory.max", "40K")          # 10 pages
            # GFP_ATOMIC cannot block.  v5.11: __GFP_ATOMIC -> force (no MAX event);
            # 6.18: !allow_blocking -> nomem -> __GFP_HIGH -> force, raising MAX once.
            a.try_charge(11, s.gfp.GFP_ATOMIC, cpu=0)
            assert a.usage_pages == 11, prof
            assert a.events()["max"] == atomic_max_events, prof
            a.uncharge(11, cpu=0)
            s.drain_all_stock()
            a.try_charge(12, GFP_KERNEL | __GFP_NOFAIL | __GFP_NORETRY, cpu=0)
            assert a.usage_pages == 12, prof       # forced charge of exactly nr_pages
            assert a.read("memory.current") == f"{12 * PS}\n"


def test_reclaimable_pages_are_reclaimed_first() -> None:
    with make() as s:
        a = s.root.mkdir("a")
        a.write("memory.max", "40K")              # 10 pages
        a.charge_user(8, cpu=0, file=True)        # 8 page-cache pages (batch 64 does not fit)
        assert a.usage_pages == 8 and a.stat()["file"] == 8 * PS
        a.try_charge(5, GFP_KERNEL, cpu=0)        # 13 > 10: reclaim frees page cache, then fits
        assert a.stat()["file"] < 8 * PS
        assert a.usage_pages <= 10 and a.usage_pages == 5 + a.stat()["file"] // PS


def test_memory_max_below_usage() -> None:
    with make() as s:
        a = s.root.mkdir("a")
        a.try_charge(20, GFP_KERNEL, cpu=0)       # 64 charged, 44 stocked
        # memory_max_write: store max, drain stocks (-> 20), nothing reclaimable, OOM finds
        # no victim; the write succeeds and usage stays above max
        a.write("memory.max", "40K")
        assert a.read("memory.max") == "40960\n" and a.usage_pages == 20
        assert a.events()["oom"] == 1


def test_bad_charge_arguments_change_nothing() -> None:
    with make() as s:
        a = s.root.mkdir("a")
        a.try_charge(1, GFP_KERNEL)
        before = a.info()
        for args, exc in (((-1, GFP_KERNEL), ValueError), ((1.0, GFP_KERNEL), TypeError),
                          ((True, GFP_KERNEL), TypeError), ((1, -1), ValueError),
                          ((1, 1 << 32), ValueError)):
            with pytest.raises(exc):
                a.try_charge(*args)
        with pytest.raises(OSError) as e:
            a.try_charge(1, GFP_KERNEL, cpu=2)     # cpu out of range for 2 cpus
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError) as e:
            a.try_charge(1, 1 << 30, cpu=0)        # unknown gfp bit
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError):
            a.uncharge(1000, cpu=0)               # more than was charged
        assert a.info() == before
        # a removed cgroup with nothing left is freed: its handle is stale (ids are not reused)
        b = s.root.mkdir("b")
        b.rmdir()
        c = s.root.mkdir("c")
        assert c.id != b.id
        with pytest.raises(OSError) as e:
            b.try_charge(1, GFP_KERNEL)
        assert e.value.errno == errno.ENOENT
        assert c.usage_pages == 0


def test_enomem_names_the_limit_usage_and_charge():
    # the cover letter's problem 5: an ENOMEM that explains itself.  memory.max 1M is
    # 256 pages; a 300-page NORETRY charge can never fit (reclaim finds nothing)
    s = System(profile="6.18")
    cg = s.root.mkdir("b")
    cg.write("memory.max", "1M")
    with pytest.raises(OSError) as exc:
        cg.try_charge(300, GFP_KERNEL | __GFP_NORETRY)
    assert exc.value.errno == errno.ENOMEM
    msg = str(exc.value)
    assert "cgroup /b is at its memory.max of 1048576 bytes (usage 0)" in msg
    assert f"a charge of {300 * 4096} bytes" in msg and "__GFP_NORETRY" in msg
    # the record is taken: a later unrelated failure does not repeat it
    assert s.explain_enomem(0) == ""


def test_enomem_of_a_nowait_charge_v1():
    s = System(profile="5.11", cgroup="v1")
    cg = s.root.mkdir("b")
    cg.write("memory.limit_in_bytes", "64K")   # 16 pages
    cg.try_charge(16, GFP_KERNEL)              # batch 32 does not fit: exactly 16 charged
    with pytest.raises(OSError) as exc:
        cg.try_charge(1, s.gfp.GFP_NOWAIT)
    assert "memory.limit_in_bytes of 65536 bytes (usage 65536)" in str(exc.value)
    assert "cannot reclaim" in str(exc.value)
