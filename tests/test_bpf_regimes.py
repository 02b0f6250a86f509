"""The seed series' claims as scenarios under each profile (hand-derived values)."""

import errno

import pytest

import pybpfmem
from pybpfmem.bpf import (BPF_F_NO_PREALLOC, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH,
                          BPF_MAP_TYPE_PERCPU_ARRAY)


def mk(profile):
    s = pybpfmem.System(nr_cpus=2, page_size=4096, profile=profile)
    return s


# fdinfo memlock, key 4 value 64 max 1000, P = 2 (the map_mem_usage() / footprint formulas):
#  6.18 map_mem_usage: ARRAY 312 + 1000*64 = 64312; PERCPU_ARRAY 312 + 8000 + 128000 = 136312;
#       HASH 832 + 1024*16 + 4*2*8 + 120*1002 + 8*2 = 137536; NO_PREALLOC empty 832+16384+64 = 17280
#  5.11 footprint rup(1000 * rup(4 + value_eff, 8), 4096): 68000 -> 73728; percpu
#       value_eff = 64*2 -> 132000 -> 139264
#  5.10 pages: ARRAY 272 + 64000 -> 16 pages = 65536; PERCPU 272+8000+128000 -> 34 pages;
#       HASH 1024*16 + 120*1000 + 120*2 = 136624 -> 34 pages = 139264
@pytest.mark.parametrize("profile,expected", [
    ("6.18", [64312, 136312, 137536, 17280]),
    ("5.11", [73728, 139264, 73728, 73728]),
    ("5.10", [65536, 139264, 139264, 139264]),
])
def test_memlock_figures(profile, expected):
    s = mk(profile)
    t = s.spawn(cgroup=s.root.mkdir("a"), uid=0)
    t.setrlimit(pybpfmem.bpf.RLIMIT_MEMLOCK, pybpfmem.bpf.RLIM_INFINITY,
                pybpfmem.bpf.RLIM_INFINITY)
    got = []
    for ty, fl in ((BPF_MAP_TYPE_ARRAY, 0), (BPF_MAP_TYPE_PERCPU_ARRAY, 0),
                   (BPF_MAP_TYPE_HASH, 0), (BPF_MAP_TYPE_HASH, BPF_F_NO_PREALLOC)):
        fd = t.bpf_map_create(ty, 4, 64, 1000, fl)
        got.append(int(t.fdinfo(fd)["memlock"]))
    assert got == expected


def test_nopre_hash_memlock_grows_128_per_element_618():
    # elem_size 48 + 8 + 64 = 120, + LLIST_NODE_SZ 8 = 128 per live element
    s = mk("6.18")
    t = s.spawn(cgroup=s.root.mkdir("a"), uid=0)
    fd = t.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 64, 1000, BPF_F_NO_PREALLOC)
    for i in range(3):
        t.bpf_map_update_elem(fd, i.to_bytes(4, "little"), bytes(64))
    assert int(t.fdinfo(fd)["memlock"]) == 17280 + 3 * 128


def test_510_root_tasks_share_one_memlock_budget():
    # default RLIMIT_MEMLOCK 64 KiB = 16 pages for every task of uid 0.
    # ARRAY 4/64/1000: cost 272 + 64000 -> 16 pages: fits exactly (16 <= 16).
    # ARRAY 4/8/1 from a root task in ANOTHER cgroup: 272 + 8 -> 1 page: 17 > 16 -> EPERM.
    s = mk("5.10")
    t1 = s.spawn(cgroup=s.root.mkdir("a"), uid=0)
    t2 = s.spawn(cgroup=s.root.mkdir("b"), uid=0)
    t1.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 64, 1000)
    with pytest.raises(OSError) as ei:
        t2.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1)
    assert ei.value.errno == errno.EPERM
    assert "locked_vm" in str(ei.value) and "uid 0" in str(ei.value)
    # a different uid has its own user_struct (unprivileged bpf allowed for it)
    s.unprivileged_bpf_disabled = 0
    t3 = s.spawn(cgroup=s.root.mkdir("c"), uid=1000)
    t3.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1)


@pytest.mark.parametrize("profile", ["5.11", "6.18"])
def test_memcg_limits_are_per_cgroup(profile):
    # The same two maps as above succeed (no rlimit).  A cgroup limited to 32K cannot
    # hold a 64272-byte array (vmalloc of 16 pages, __GFP_RETRY_MAYFAIL -> ENOMEM),
    # and the failure leaves its memory.current as it was.
    s = mk(profile)
    a, b = s.root.mkdir("a"), s.root.mkdir("b")
    t1, t2 = s.spawn(cgroup=a, uid=0), s.spawn(cgroup=b, uid=0)
    t1.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 64, 1000)
    t2.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1)
    c = s.root.mkdir("c")
    c.write("memory.max", "32K")
    t3 = s.spawn(cgroup=c, uid=0)
    before = c.read("memory.current")
    with pytest.raises(OSError) as ei:
        t3.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 64, 1000)
    assert ei.value.errno == errno.ENOMEM
    s.drain_all_stock()
    assert c.read("memory.current") == before
    assert s.bpf_maps()[-1]["bytes_value"] == 8   # nothing half-created is listed


@pytest.mark.parametrize("profile", ["5.11", "6.18"])
def test_interrupt_update_charged_to_map_cgroup(profile):
    # No-prealloc hash created by a task in /a; an update from interrupt context on cpu 1
    # (while a task of /b runs there) charges the element to /a, not /b.
    s = mk(profile)
    a, b = s.root.mkdir("a"), s.root.mkdir("b")
    t1, t2 = s.spawn(cgroup=a, uid=0), s.spawn(cgroup=b, uid=0)
    fd = t1.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 64, 100, BPF_F_NO_PREALLOC)
    mid = s.bpf_maps()[0]["id"]
    s.drain_all_stock()
    b_before = int(b.read("memory.current"))
    charged_before = s.bpf_maps()[0]["charged"]["slab"]
    with t2.running(cpu=1):
        with s.in_interrupt(cpu=1):
            assert s.helper_map_update_elem(mid, b"\x01\0\0\0", bytes(64)) == 0
    s.drain_all_stock()
    assert int(b.read("memory.current")) == b_before
    m = s.bpf_maps()[0]
    assert m["memcg"] == "/a"
    if profile == "5.11":
        # one element kmalloc of elem_size 120 on the map's memcg: kmalloc-128 + 8-byte
        # objcg slot = 136
        assert m["charged"]["slab"] == charged_before + 136
    else:
        # bpf_mem_alloc: cpu 1's cache had 4 prefilled objects (< low 32) -> refill batch
        # of 48 objects of 128 bytes (kmalloc-128 + 8 = 136 each) charged to the objcg
        # captured at init (/a)
        assert m["charged"]["slab"] == charged_before + 48 * 136
    assert t1.bpf_map_lookup_elem(fd, b"\x01\0\0\0") == bytes(64)


def test_511_atomic_update_forced_over_max_618_enomem():
    # 5.11: element kmalloc with GFP_ATOMIC is forced over memory.max;
    # 6.18: bpf_mem_alloc refill uses GFP_NOWAIT -> fails at the limit -> ENOMEM once the
    # prefilled objects are gone.
    for profile in ("5.11", "6.18"):
        s = mk(profile)
        a = s.root.mkdir("a")
        t = s.spawn(cgroup=a, uid=0)
        fd = t.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 64, 100000, BPF_F_NO_PREALLOC)
        s.drain_all_stock()
        cur = int(a.read("memory.current"))
        a.write("memory.max", str(cur))
        errs = 0
        for i in range(600):   # 600 * 128 bytes is far more than stocks can hide
            try:
                t.bpf_map_update_elem(fd, i.to_bytes(4, "little"), bytes(64))
            except OSError as e:
                assert e.errno == errno.ENOMEM
                errs += 1
        if profile == "5.11":
            assert errs == 0
            assert int(a.read("memory.current")) > cur       # forced over memory.max
        else:
            assert errs > 0


@pytest.mark.parametrize("profile", ["5.11", "6.18"])
def test_pinned_map_outlives_creator_and_rmdir(profile):
    s = mk(profile)
    p = s.root.mkdir("p")
    c = p.mkdir("c")
    t = s.spawn(cgroup=c, uid=0)
    fd = t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 64, 1000)
    t.bpf_obj_pin(fd, "/sys/fs/bpf/m")
    t.close(fd)
    t.exit()
    assert len(s.bpf_maps()) == 1
    c.rmdir()
    m = s.bpf_maps()[0]
    # 6.18: the objcg is reparented, charges now count to /p; 5.11 keeps the dying memcg
    assert m["memcg"] == ("/p" if profile == "6.18" else "/p/c")
    assert s.dying_cgroups == 1 if profile == "5.11" else s.dying_cgroups >= 0
    assert int(p.read("memory.current")) > 0
    s.bpffs_unlink("/sys/fs/bpf/m")
    assert s.bpf_maps() == []
    s.drain_all_stock()
    assert int(p.read("memory.current")) == 0


@pytest.mark.parametrize("profile", ["5.10", "5.11", "6.18"])
def test_close_everything_returns_to_baseline(profile):
    s = mk(profile)
    a = s.root.mkdir("a")
    t = s.spawn(cgroup=a, uid=0)
    t.setrlimit(pybpfmem.bpf.RLIMIT_MEMLOCK, pybpfmem.bpf.RLIM_INFINITY,
                pybpfmem.bpf.RLIM_INFINITY)
    fds = [t.bpf_map_create(ty, 4, 64, 1000, fl) for ty, fl in (
        (BPF_MAP_TYPE_ARRAY, 0), (BPF_MAP_TYPE_PERCPU_ARRAY, 0), (BPF_MAP_TYPE_HASH, 0),
        (BPF_MAP_TYPE_HASH, BPF_F_NO_PREALLOC))]
    for i in range(10):
        t.bpf_map_update_elem(fds[3], i.to_bytes(4, "little"), bytes(64))
    pfd = t.bpf_prog_load(pybpfmem.bpf.BPF_PROG_TYPE_SOCKET_FILTER, 10, maps=[fds[0]])
    for fd in fds + [pfd]:
        t.close(fd)
    s.run_deferred()
    t.exit()                    # its kernel stack goes too
    s.drain_all_stock()
    assert s.bpf_maps() == [] and s.bpf_progs() == []
    assert int(a.read("memory.current")) == 0
    assert s.bpf_state.rlimit.users.get(0) is None or s.bpf_state.rlimit.users[0].locked_vm == 0
    s.check()


def test_deferred_free_without_settle():
    s = mk("5.10")
    t = s.spawn(cgroup=s.root.mkdir("a"), uid=0)
    s.bpf_settle = False
    fd = t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1)   # 1 page charged to uid 0
    t.close(fd)
    assert s.bpf_state.rlimit.users[0].locked_vm == 1    # uncharge waits for the work item
    assert s.run_deferred() == 1
    assert 0 not in s.bpf_state.rlimit.users
