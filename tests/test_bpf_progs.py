"""Programs: bpf_prog_load() checks, allocation charges and memlock per profile.

bpf_prog_alloc_no_stats(): the struct bpf_prog area is
rup(offsetof(bpf_prog, insns) + 8 x insn_cnt, PAGE) bytes of vmalloc (offsetof = 72,
an estimate) -> prog->pages; plus a kzalloc of struct bpf_prog_aux (640 bytes in the
v5.x profiles, 1016 on 6.18: both kmalloc-1024, + 8 = 1032 charged) and
bpf_prog_alloc() adds the per-cpu stats (24 bytes v5.x -> 24 x 2 = 48; 32 bytes on
6.18 -> 32 x 2 + 8 x 8 = 128).  5.11+: GFP_KERNEL_ACCOUNT, to the loader's memcg;
5.10: unaccounted, prog->pages charged to the loader's locked_vm.  fdinfo memlock is
prog->pages x PAGE in every profile.
"""

import errno

import pytest

import pybpfmem
from pybpfmem.bpf import (BPF_MAP_TYPE_ARRAY, BPF_PROG_TYPE_SOCKET_FILTER,
                          BPF_PROG_TYPE_XDP, RLIM_INFINITY, RLIMIT_MEMLOCK)

from bpfutil import PAGE, current, errno_of


def setup(profile, uid=0, **kw):
    s = pybpfmem.System(nr_cpus=2, page_size=PAGE, profile=profile, **kw)
    a = s.root.mkdir("a")
    if uid:
        s.unprivileged_bpf_disabled = 0
    return s, a, s.spawn(cgroup=a, uid=uid)


# insn_cnt -> pages: 10 -> 72 + 80 = 152 -> 1; 1000 -> 8072 -> 2; 4000 -> 32072 -> 8
@pytest.mark.parametrize("profile", ["5.10", "5.11", "6.18"])
@pytest.mark.parametrize("n,pages", [(10, 1), (1000, 2), (4000, 8)])
def test_prog_memlock_is_pages(profile, n, pages):
    s, a, t = setup(profile)
    t.setrlimit(RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY)
    fd = t.bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, n)
    assert t.fdinfo(fd)["memlock"] == str(pages * PAGE)
    assert s.bpf_progs()[0]["bytes_memlock"] == pages * PAGE


# memory.current after loading 10 insns: 1 vmalloc page + objcg bytes: struct bpf_prog_aux
# 632 -> kmalloc-1024 + 8 = 1032 and per-cpu bpf_prog_stats 16 x 2 cpus = 32 on 5.11;
# bpf_prog_aux 1344 -> kmalloc-2048 + 8 = 2056 and bpf_prog_stats 32 x 2 + 8 per 4-byte unit
# (8 x 8 = 64) = 128 on 6.18 -> 1 page = 8192; 5.10: 0 and locked_vm 1 page
@pytest.mark.parametrize("profile,want,pcpu,slab", [("5.10", 0, 0, 0), ("5.11", 8192, 32, 1032),
                                                    ("6.18", 8192, 128, 2056)])
def test_prog_load_charges(profile, want, pcpu, slab):
    s, a, t = setup(profile)
    fd = t.bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, 10)
    assert current(s, a) == want
    st = a.stat()
    assert st["percpu"] == pcpu
    assert st["slab_unreclaimable"] == slab
    users = s.bpf_state.rlimit.users
    assert (users[0].locked_vm if 0 in users else 0) == (1 if profile == "5.10" else 0)
    info = s.bpf_progs()[0]
    assert info["memcg"] == (None if profile == "5.10" else "/a")
    if profile != "5.10":
        assert info["charged"] == {"vmalloc": PAGE, "slab": slab, "percpu": pcpu, "pages": 0}
    t.close(fd)
    assert current(s, a) == 0 and s.bpf_progs() == []
    assert 0 not in s.bpf_state.rlimit.users


def test_510_prog_rlimit_eperm_511_ignores_rlimit():
    # RLIMIT_MEMLOCK 0: limit 0 pages, a 1-page program -> 1 > 0 -> EPERM in 5.10;
    # nothing reads the rlimit from 5.11 on
    s, a, t = setup("5.10")
    t.setrlimit(RLIMIT_MEMLOCK, 0, 0)
    with pytest.raises(OSError) as ei:
        t.bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, 10)
    assert ei.value.errno == errno.EPERM and "RLIMIT_MEMLOCK" in str(ei.value)
    s.drain_all_stock()
    assert s.bpf_progs() == [] and s.bpf_state.rlimit.users.get(0) is None
    s2, a2, t2 = setup("5.11")
    t2.setrlimit(RLIMIT_MEMLOCK, 0, 0)
    t2.bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, 10)


@pytest.mark.parametrize("profile", ["5.10", "6.18"])
def test_prog_load_checks(profile):
    s, a, t = setup(profile, uid=1000)      # no capabilities
    assert errno_of(t.bpf_prog_load, BPF_PROG_TYPE_SOCKET_FILTER, 0) == errno.E2BIG
    # unprivileged: insn_cnt <= BPF_MAXINSNS 4096
    assert errno_of(t.bpf_prog_load, BPF_PROG_TYPE_SOCKET_FILTER, 4097) == errno.E2BIG
    assert errno_of(t.bpf_prog_load, BPF_PROG_TYPE_XDP, 10) == errno.EPERM
    assert errno_of(t.bpf_prog_load, BPF_PROG_TYPE_SOCKET_FILTER, 10,
                    prog_flags=1 << 20) == errno.EINVAL
    t.bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, 4096)


def test_prog_alloc_failure_errno_618():
    # memory.max 0, no OOM kill: the vmalloc of the prog area cannot be charged;
    # current kernels turn the bpf_prog_alloc() failure into -EINVAL (5.x: -ENOMEM);
    # nothing stays charged.  (The 5.11 profile of the mm layer forces the GFP_KERNEL
    # charge after a failed memcg OOM, so the 5.x errno is not reachable this way.)
    s, a, t = setup("6.18", oom_kill=False)
    err = errno.EINVAL
    a.write("memory.max", "0")
    assert errno_of(t.bpf_prog_load, BPF_PROG_TYPE_SOCKET_FILTER, 10) == err
    assert current(s, a) == 0 and s.bpf_progs() == []


@pytest.mark.parametrize("profile", ["5.10", "5.11", "6.18"])
def test_prog_holds_its_maps(profile):
    # a map referenced by LD_IMM64 is held by the program (refcnt, not usercnt): closing
    # the map fd keeps it alive; closing the program frees both
    s, a, t = setup(profile)
    t.setrlimit(RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY)
    mfd = t.bpf_map_create(BPF_MAP_TYPE_ARRAY, 4, 64, 1000)
    pfd = t.bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, 10, maps=[mfd, mfd])
    mid = s.bpf_maps()[0]["id"]
    assert s.bpf_progs()[0]["map_ids"] == [mid]
    t.close(mfd)
    assert [m["id"] for m in s.bpf_maps()] == [mid]
    t.close(pfd)
    assert s.bpf_maps() == [] and s.bpf_progs() == []
    assert current(s, a) == 0
    assert errno_of(t.bpf_prog_load, BPF_PROG_TYPE_SOCKET_FILTER, 10,
                    maps=[mfd]) == errno.EBADF
    s.check()
