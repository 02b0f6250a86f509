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

# BTF ids for the local-storage maps (BTF objects are not modelled; the ids pass through)
BTF = {"btf_fd": 3, "btf_key_type_id": 1, "btf_value_type_id": 2}


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


# every registered map type: (map_type, key, value, max_entries, flags, extra kwargs, first
# profile: the first of PROFILE_NAMES whose release has the type -- USER_RINGBUF v6.1,
# CGRP_STORAGE v6.2, BLOOM_FILTER v5.16, ARENA v6.9, TASK_STORAGE v5.11);
# prealloc and no-prealloc variants of the hash families, an inner map for map-in-map
_SHAPES = [
    (U.BPF_MAP_TYPE_ARRAY, 4, 64, 64, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 64, 64, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_HASH, 4, 64, 64, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_HASH, 4, 64, 64, U.BPF_F_NO_PREALLOC, {}, "5.10"),
    (U.BPF_MAP_TYPE_PERCPU_HASH, 4, 64, 64, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_PERCPU_HASH, 4, 64, 64, U.BPF_F_NO_PREALLOC, {}, "5.10"),
    (U.BPF_MAP_TYPE_LRU_HASH, 4, 64, 64, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 64, 64, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 16, U.BPF_F_NO_PREALLOC, {}, "5.10"),
    (U.BPF_MAP_TYPE_QUEUE, 0, 8, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_STACK, 0, 8, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_USER_RINGBUF, 0, 0, 4096, 0, {}, "6.1"),
    (U.BPF_MAP_TYPE_STACK_TRACE, 4, 64, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_DEVMAP, 4, 4, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_DEVMAP_HASH, 4, 8, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_CPUMAP, 4, 4, 2, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_XSKMAP, 4, 4, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_SOCKMAP, 4, 8, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_SOCKHASH, 16, 8, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 8, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_CGROUP_STORAGE, 8, 32, 0, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, 16, 32, 0, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_SK_STORAGE, 4, 32, 0, U.BPF_F_NO_PREALLOC, BTF, "5.10"),
    (U.BPF_MAP_TYPE_INODE_STORAGE, 4, 32, 0, U.BPF_F_NO_PREALLOC, BTF, "5.10"),
    (U.BPF_MAP_TYPE_TASK_STORAGE, 4, 32, 0, U.BPF_F_NO_PREALLOC, BTF, "5.11"),
    (U.BPF_MAP_TYPE_CGRP_STORAGE, 4, 32, 0, U.BPF_F_NO_PREALLOC, BTF, "6.6"),
    (U.BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 16, 0, {}, "6.1"),
    (U.BPF_MAP_TYPE_STRUCT_OPS, 4, 256, 1, 0, {"btf_vmlinux_value_type_id": 1}, "5.10"),
    (U.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_CGROUP_ARRAY, 4, 4, 16, 0, {}, "5.10"),
    (U.BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 16, 0, {"inner_map_fd": "inner"}, "5.10"),
    (U.BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 16, 0, {"inner_map_fd": "inner"}, "5.10"),
    (U.BPF_MAP_TYPE_ARENA, 0, 0, 1 << 20, U.BPF_F_MMAPABLE, {}, "6.12"),
]


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
