"""Attribution that adds up: what bpf_maps() says each map holds ("charged") is what
the cgroup's counters show of it, and memcg_attribution() accounts for every byte of
memory.current (the objects, the obj_cgroup remainders, the per-cpu page stocks),
for every map family on every profile, before and after the stocks are drained.

The task is spawned in /home and moved into the measured cgroup before it creates
anything: a migration leaves a task's own charges where they were, so the cgroup
holds BPF memory only."""

from __future__ import annotations

import pytest

import pybpfmem
from pybpfmem.bpf import uapi as U
from pybpfmem.profiles import get_profile

PAGE = 4096
NP = U.BPF_F_NO_PREALLOC
# local-storage maps need BTF key/value type ids; BTF objects are not modelled
BTF = {"btf_fd": 3, "btf_key_type_id": 1, "btf_value_type_id": 2}

# family -> (key_size, value_size, max_entries, flags, create kwargs, elements to write)
FAMILIES: dict[str, tuple[int, int, int, int, dict[str, int], int]] = {
    "ARRAY": (4, 64, 100, 0, {}, 10),
    "PERCPU_ARRAY": (4, 64, 100, 0, {}, 10),
    "PROG_ARRAY": (4, 4, 8, 0, {}, 0),
    "PERF_EVENT_ARRAY": (4, 4, 8, 0, {}, 0),
    "CGROUP_ARRAY": (4, 4, 8, 0, {}, 0),
    "ARRAY_OF_MAPS": (4, 4, 8, 0, {}, 0),
    "HASH_OF_MAPS": (4, 4, 8, 0, {}, 0),
    "HASH": (4, 64, 100, 0, {}, 50),
    "HASH no-prealloc": (4, 32, 1000, NP, {}, 500),
    "PERCPU_HASH": (4, 64, 100, NP, {}, 50),
    "LRU_HASH": (4, 64, 100, 0, {}, 150),          # past max_entries: evictions
    "LRU_PERCPU_HASH": (4, 64, 100, 0, {}, 50),
    "LPM_TRIE": (8, 8, 100, NP, {}, 40),
    "STACK_TRACE": (4, 64, 100, 0, {}, 0),
    "QUEUE": (0, 8, 100, 0, {}, 30),
    "STACK": (0, 8, 100, 0, {}, 30),
    "RINGBUF": (0, 0, 1 << 16, 0, {}, 0),
    "USER_RINGBUF": (0, 0, 1 << 16, 0, {}, 0),
    "BLOOM_FILTER": (0, 8, 100, 0, {}, 30),
    "DEVMAP": (4, 4, 8, 0, {}, 0),
    "DEVMAP_HASH": (4, 4, 8, 0, {}, 0),
    "CPUMAP": (4, 4, 8, 0, {}, 0),
    "XSKMAP": (4, 4, 8, 0, {}, 0),
    "SOCKMAP": (4, 4, 8, 0, {}, 0),
    "SOCKHASH": (4, 4, 8, 0, {}, 0),
    "REUSEPORT_SOCKARRAY": (4, 4, 8, 0, {}, 0),
    "SK_STORAGE": (4, 8, 0, NP, BTF, 0),
    "TASK_STORAGE": (4, 8, 0, NP, BTF, 0),
    "INODE_STORAGE": (4, 8, 0, NP, BTF, 0),
    "CGRP_STORAGE": (4, 8, 0, NP, BTF, 0),
    "CGROUP_STORAGE": (16, 8, 0, 0, {}, 0),
    "PERCPU_CGROUP_STORAGE": (16, 8, 0, 0, {}, 0),
    "STRUCT_OPS": (4, 256, 1, 0, {"btf_vmlinux_value_type_id": 1}, 0),
}
PROFILES = pybpfmem.PROFILE_NAMES


def setup(profile: str):
    system = pybpfmem.System(nr_cpus=2, page_size=PAGE, profile=profile, cgroup="v2")
    home, cg = system.root.mkdir("home"), system.root.mkdir("a")
    task = system.spawn(cgroup=home)
    task.migrate(cg)
    task.setrlimit(pybpfmem.RLIMIT_MEMLOCK, U.RLIM_INFINITY, U.RLIM_INFINITY)
    return system, cg, task


def element(family: str, ks: int, vs: int, i: int) -> tuple[bytes | None, bytes]:
    if family == "LPM_TRIE":     # a /32 prefix: one leaf each
        return (32).to_bytes(4, "little") + i.to_bytes(4, "big"), bytes(vs)
    if family in ("QUEUE", "STACK", "BLOOM_FILTER"):
        return None, i.to_bytes(vs, "little")
    if family.startswith(("PERCPU", "LRU_PERCPU")):
        return i.to_bytes(ks, "little"), bytes(vs * 2)       # a value per possible cpu
    return i.to_bytes(ks, "little"), bytes(vs)


def create(system, task, family: str) -> int | None:
    """The map (and its elements), or None where the profile has no such family."""
    ks, vs, me, flags, kwargs, n = FAMILIES[family]
    mtype = getattr(U, "BPF_MAP_TYPE_" + family.split()[0])
    with task.running(cpu=0):
        if family.endswith("_OF_MAPS"):
            kwargs = {"inner_map_fd": task.bpf_map_create(U.BPF_MAP_TYPE_ARRAY, 4, 4, 1)}
        try:
            fd = task.bpf_map_create(mtype, ks, vs, me, flags, **kwargs)
        except OSError as exc:
            assert exc.errno == 22, exc      # not in this kernel: EINVAL (map_create)
            return None
        for i in range(n):
            task.bpf_map_update_elem(fd, *element(family, ks, vs, i))
    return fd


def check_adds_up(system, cg) -> dict:
    """memcg_attribution() sums to memory.current, and memory.stat's slab, percpu and
    vmalloc are the objects' (slab: with what the object stocks have not flushed yet)."""
    a = system.memcg_attribution(cg)
    assert a["total"] == int(cg.read("memory.current"))
    held = [*a["maps"].values(), *a["progs"].values()]
    stat = cg.stat()
    assert stat["slab_unreclaimable"] + a["slab_pending"] == sum(h["slab"] for h in held)
    assert stat["percpu"] == sum(h["percpu"] for h in held)
    if "vmalloc" in stat:          # v5.14+ has the entry
        assert stat["vmalloc"] == sum(h["vmalloc"] for h in held)
    # bpf_maps()'s "charged" is the same count, map by map
    for m in system.bpf_maps():
        if m["id"] in a["maps"]:
            assert m["charged"] == a["maps"][m["id"]], m["name"]
    return a


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_byte_of_memory_current_is_attributed(family, profile):
    system, cg, task = setup(profile)
    if create(system, task, family) is None:
        pytest.skip(f"{profile} has no {family} maps")
    system.run_deferred()
    check_adds_up(system, cg)              # with the per-cpu stocks full
    system.drain_all_stock()
    a = check_adds_up(system, cg)          # and drained: no page stock, nothing pending
    assert a["page_stock"] == 0 and a["slab_pending"] == 0
    if profile == "5.10":                  # RLIMIT_MEMLOCK era: memcg is charged nothing
        assert a["total"] == 0


# the families a release lacks, by the release that added each: task storage v5.11
# (4cf1bc1f1045), bloom filter v5.16 (9330986c0300), user ring buffer v6.1 (583c1f420173),
# cgrp storage v6.2 (c4bcfb38a95e)
MISSING = {
    "5.10": {"TASK_STORAGE", "BLOOM_FILTER", "USER_RINGBUF", "CGRP_STORAGE"},
    "5.11": {"BLOOM_FILTER", "USER_RINGBUF", "CGRP_STORAGE"},
    "5.15": {"BLOOM_FILTER", "USER_RINGBUF", "CGRP_STORAGE"},
    "6.1": {"CGRP_STORAGE"},
    "6.6": set(), "6.8": set(), "6.12": set(), "6.18": set(),
}


@pytest.mark.parametrize("profile", PROFILES)
def test_the_families_every_profile_creates(profile):
    # the test above covers every family: only those a kernel does not have are skipped
    # (map_create() refuses an unknown type with EINVAL)
    system, _, task = setup(profile)
    made = {f for f in FAMILIES if create(system, task, f) is not None}
    assert set(FAMILIES) - made == MISSING[profile]


def test_5_11_hash_element_is_charged_as_memory_stat_counts_it():
    """The case of the first-hour issue: 5.11 HASH k4 v32, no-prealloc."""
    system, cg, task = setup("5.11")
    sizes = get_profile("5.11").sizes
    fd = create(system, task, "HASH no-prealloc")
    system.drain_all_stock()
    (m,) = system.bpf_maps()
    # alloc_htab_elem(): htab_elem 48 + round_up(key 4, 8) + round_up(value 32, 8) = 88 B
    # asked of kmalloc: the kmalloc-96 slot + the slab's 8-byte objcg pointer = 104 B charged
    # (obj_full_size()), for each of the 500 elements (5.11 allocates each one on update)
    assert sizes.htab_elem + 8 + 32 == 88
    # creation: struct bpf_htab (704 B -> kmalloc-1k, + 8) = 1032 B of slab; the 1024
    # buckets of 16 B = 16 KiB, a kmalloc_large() (4 pages) that 5.11's memory.stat does
    # not count (before v5.12); map_locked: 8 ints per cpu = 32 B x 2 cpus of percpu
    assert sizes.bpf_htab == 704 and sizes.bucket == 16
    assert m["charged"] == {"slab": 1032 + 500 * 104, "vmalloc": 0, "percpu": 64, "pages": 16384}
    assert m["requested"]["slab"] == 704 + 16384 + 500 * 88
    assert cg.stat()["slab_unreclaimable"] == 1032 + 500 * 104
    task.close(fd)


def test_6_18_hash_elements_come_from_bpf_mem_alloc_caches():
    """6.18 allocates hash elements from bpf_mem_alloc caches, refilled in batches: the
    objects charged are the elements plus the caches' free objects, each the 96-byte
    slot of an 88-byte unit + 8 (obj_full_size())."""
    system, cg, task = setup("6.18")
    with task.running(cpu=0):
        fd = task.bpf_map_create(U.BPF_MAP_TYPE_HASH, 4, 32, 1000, NP)
    system.drain_all_stock()
    before = system.bpf_maps()[0]["charged"]["slab"]
    assert cg.stat()["slab_unreclaimable"] == before
    with task.running(cpu=0):
        for i in range(500):
            task.bpf_map_update_elem(fd, i.to_bytes(4, "little"), bytes(32))
    system.drain_all_stock()
    grown = system.bpf_maps()[0]["charged"]["slab"] - before
    assert grown == cg.stat()["slab_unreclaimable"] - before
    assert grown % 104 == 0 and grown // 104 >= 500


def test_a_dying_child_and_reparented_objcgs_are_in_the_parent():
    # a pinned map outlives its container: 5.11-5.15 keep the removed cgroup dying
    # (map->memcg), v6.0+ reparent the map's obj_cgroup to the parent (map_objcg); either
    # way the parent's memory.current is the map's charges plus the objcg remainders
    for profile in PROFILES[1:]:          # the memcg-accounting profiles
        system = pybpfmem.System(nr_cpus=2, page_size=PAGE, profile=profile)
        web = system.root.mkdir("web")
        c1 = web.mkdir("c1")
        task = system.spawn(cgroup=c1)
        with task.running(cpu=0):
            fd = task.bpf_map_create(U.BPF_MAP_TYPE_HASH, 16, 128, 20000, NP)
            for i in range(200):
                task.bpf_map_update_elem(fd, i.to_bytes(16, "little"), bytes(128))
            task.bpf_obj_pin(fd, "/sys/fs/bpf/sessions")
            task.close(fd)
        task.exit()
        c1.rmdir()
        system.run_deferred()
        a = system.memcg_attribution(web)
        assert a["total"] == int(web.read("memory.current")) > 0
        assert list(a["maps"]) == [system.bpf_maps()[0]["id"]]
        system.bpffs_unlink("/sys/fs/bpf/sessions")


def test_programs_are_attributed_too():
    system, cg, task = setup("6.18")
    with task.running(cpu=0):
        task.bpf_prog_load(U.BPF_PROG_TYPE_SOCKET_FILTER, 100)
    a = check_adds_up(system, cg)
    (prog,) = system.bpf_progs()
    assert a["progs"] == {prog["id"]: prog["charged"]} and sum(prog["charged"].values()) > 0


def test_charged_size_of_objects_on_tail_pages_of_a_slab() -> None:
    """obj_full_size() is the object plus its objcg slot wherever the object sits in its
    slab: kmalloc-cg-2048 slabs are order 3 (16 objects on 8 pages), so most objects sit
    on tail pages, whose frame is a tail, not the slab's head."""
    system = pybpfmem.System(nr_cpus=2, page_size=PAGE, profile="6.18", cgroup="v2")
    cg = system.root.mkdir("a")
    task = system.spawn(cgroup=cg)
    with task.running(cpu=0):
        objs = [system.kmalloc(2048, pybpfmem.GFP_KERNEL_ACCOUNT) for _ in range(16)]
    kinds = {system.page_info(system.virt_to_pfn(x))["kind_name"] for x in objs}
    assert len(kinds) == 2, kinds                     # heads and tails
    assert {system.kmalloc_charged_size(x) for x in objs} == {2056}


@pytest.mark.parametrize("profile", PROFILES)
def test_child_cgroups_and_kernel_stacks_are_attributed(profile: str) -> None:
    """A cgroup's memory.current also holds its children's structures (mem_cgroup_alloc()
    charged to the parent; a dying child's until it is freed) and the kernel stacks of the
    tasks forked in it: "cgroups" and "stacks" account for them."""
    system = pybpfmem.System(nr_cpus=2, page_size=PAGE, profile=profile, cgroup="v2")
    web = system.root.mkdir("web")
    kids = [web.mkdir(f"c{i}") for i in range(3)]
    task = system.spawn(cgroup=kids[0])
    thread = task.clone_thread()
    pinned = kids[1]
    pinned.charge_user(1, pybpfmem.GFP_KERNEL)        # keeps c1 dying after its rmdir
    pinned.rmdir()
    kids[2].rmdir()                                   # freed: its structures go
    system.drain_all_stock()
    a = system.memcg_attribution(web)
    assert a["total"] + PAGE == int(web.read("memory.current"))     # + c1's user page
    assert sorted(a["cgroups"]) == sorted([kids[0].id, pinned.id])
    per_child = sum(system.pcpu_obj_full_size(size) if kind == "percpu" else 0
                    for _, kind, size in system.profile.memcg_allocs())
    assert a["cgroups"][kids[0].id]["percpu"] == per_child
    assert a["stacks"] == {task.pid: 16384, thread.pid: 16384}
    pinned.uncharge_user(1)
