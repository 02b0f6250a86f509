"""Undo paths of map creation (issue 15, item 5): a create that fails part-way is
OSError(ENOMEM), every counter is as before (besides the stock drains the kernel also
does), and no map is left.  The C core's fault injector (bm_fail_nth_alloc, test-only)
fails the Nth accounted allocation, so every family's create runs under a failure at every
one of its allocation points."""

from __future__ import annotations

import errno

import pytest

import pybpfmem
from pybpfmem.bpf import uapi as U

from map_shapes import SHAPES as _SHAPES


def _snapshot(system, cg):
    system.drain_all_stock()
    return (cg.read("memory.current"), cg.read("memory.stat"), cg.read("memory.events"),
            system.root.read("memory.stat"), system.locked_vm(0))


@pytest.mark.parametrize("map_type,key,value,entries", [
    (U.BPF_MAP_TYPE_DEVMAP, 4, 4, 1 << 20),
    (U.BPF_MAP_TYPE_DEVMAP_HASH, 4, 4, 1 << 20),
    (U.BPF_MAP_TYPE_SOCKMAP, 4, 4, 1 << 20),
    (U.BPF_MAP_TYPE_SOCKHASH, 4, 4, 1 << 20),
    (U.BPF_MAP_TYPE_XSKMAP, 4, 4, 1 << 20),
    (U.BPF_MAP_TYPE_CPUMAP, 4, 4, 8192),
], ids=["DEVMAP", "DEVMAP_HASH", "SOCKMAP", "SOCKHASH", "XSKMAP", "CPUMAP"])
def test_a_table_over_memory_max_is_enomem(map_type, key, value, entries):
    """Issue 15 repro 5: these families raised AttributeError from free() touching what
    alloc() never set; the table does not fit memory.max, so the create is ENOMEM."""
    system = pybpfmem.System(nr_cpus=2, profile="6.18")
    cg = system.root.mkdir("small")
    cg.write("memory.max", "16K")
    task = system.spawn(cgroup=cg)
    before = _snapshot(system, cg)
    with task.running(cpu=0), pytest.raises(OSError) as e:
        task.bpf_map_create(map_type, key, value, entries)
    assert e.value.errno == errno.ENOMEM
    assert system.bpf_maps() == []
    after = _snapshot(system, cg)
    assert after[0] == before[0] and after[1] == before[1] and after[3:] == before[3:]
    system.check()




def test_every_registered_family_has_a_shape():
    from pybpfmem.bpf.map import _REGISTRY, _load_families
    _load_families()
    assert set(_REGISTRY) == {s[0] for s in _SHAPES}


def _shape_id(shape):
    name = U.MAP_TYPE_NAMES[shape[0]]
    return name + ("-noprealloc" if shape[4] & U.BPF_F_NO_PREALLOC and "HASH" in name else "")


@pytest.mark.parametrize("profile", pybpfmem.PROFILE_NAMES)
@pytest.mark.parametrize("shape", _SHAPES, ids=_shape_id)
def test_create_fails_cleanly_at_every_allocation(profile, shape):
    """For n = 1, 2, ... the nth allocation of the create fails (bm_fail_nth_alloc) until an
    n no allocation of the create reaches.  Each failing create is ENOMEM (or, where the
    family falls back, e.g. kvmalloc's kmalloc try to vmalloc, a map that works) and leaves
    the counters as they were (after the stock drains the kernel also does), the 5.10
    locked_vm as it was, and no map."""
    mt, ks, vs, me, flags, kw, since = shape
    if pybpfmem.PROFILE_NAMES.index(profile) < pybpfmem.PROFILE_NAMES.index(since):
        pytest.skip(f"no {U.MAP_TYPE_NAMES[mt]} in {profile}")
    system = pybpfmem.System(nr_cpus=2, profile=profile)
    cg = system.root.mkdir("a")
    task = system.spawn(cgroup=cg)
    if profile == "5.10":
        task.setrlimit(U.RLIMIT_MEMLOCK, U.RLIM_INFINITY, U.RLIM_INFINITY)
    with task.running(cpu=0):
        kw = dict(kw)
        if kw.get("inner_map_fd") == "inner":
            kw["inner_map_fd"] = task.bpf_map_create(U.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
        before = _snapshot(system, cg)
        maps_before = len(system.bpf_maps())
        for n in range(1, 10_000):
            system.fail_nth_alloc(n)
            try:
                fd = task.bpf_map_create(mt, ks, vs, me, flags, **kw)
            except OSError as e:
                assert system.fail_nth_alloc(0) == 0        # the injected failure, no other
                assert e.errno == errno.ENOMEM, (n, e)
            else:
                left = system.fail_nth_alloc(0)
                task.close(fd)
                if left:                                    # no allocation n: all were tried
                    break
            system.run_deferred()
            assert len(system.bpf_maps()) == maps_before, n
            assert _snapshot(system, cg) == before, n
        else:  # pragma: no cover
            pytest.fail("the create never finished without an injected failure")
    assert n > 1               # every create allocates (the map struct at least)
    system.check()
