"""bpf.fill(): a bulk fill leaves exactly what the element loop -- one BPF_MAP_UPDATE_ELEM
per entry -- leaves, for every map family ``pybpfmem plan`` fills, under every profile, at
sizes that cross the bpf_mem_alloc refill points (low 32, batch 48 for small objects),
page and stock boundaries: the same memory.current and memory.stat, fdinfo memlock,
locked_vm, the map's books, the same keys; and the same again after later operations on
both (deletes, inserts, freeing the map).  The families whose updates allocate nothing
the memory cgroup sees are shown to be full at creation, which is what plan reports."""

from __future__ import annotations

import pytest

import pybpfmem
from pybpfmem.bpf import fill as bpffill
from pybpfmem.bpf import uapi as U
from pybpfmem.bpf.errors import BpfError
from pybpfmem.bpf.hashtab import HashMap
from pybpfmem.bpf.lpm_trie import LpmTrieMap
from pybpfmem.profiles import PROFILE_NAMES

NP = U.BPF_F_NO_PREALLOC
SIZES = (1, 2, 37, 400)

# (name, type, key_size, value_size, max_entries, flags, what a value references)
FILLED = [
    ("hash", U.BPF_MAP_TYPE_HASH, 4, 64, 700, NP, None),
    ("hash_large_elem", U.BPF_MAP_TYPE_HASH, 16, 300, 700, NP, None),
    ("percpu_hash", U.BPF_MAP_TYPE_PERCPU_HASH, 8, 20, 700, NP, None),
    ("hash_prealloc", U.BPF_MAP_TYPE_HASH, 4, 8, 700, 0, None),
    ("percpu_hash_prealloc", U.BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 700, 0, None),
    ("lpm", U.BPF_MAP_TYPE_LPM_TRIE, 8, 16, 700, NP, None),
    ("lpm_ipv6", U.BPF_MAP_TYPE_LPM_TRIE, 20, 4, 700, NP, None),
    ("hash_of_maps", U.BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 700, NP, "map"),
    ("devmap_hash", U.BPF_MAP_TYPE_DEVMAP_HASH, 4, 4, 700, 0, "netdev"),
    ("devmap", U.BPF_MAP_TYPE_DEVMAP, 4, 4, 700, 0, "netdev"),
]
# map types whose updates allocate nothing a memory cgroup is charged for
STATIC = [
    ("array", U.BPF_MAP_TYPE_ARRAY, 4, 64, 700, 0, None),
    ("percpu_array", U.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 24, 700, 0, None),
    ("lru_hash", U.BPF_MAP_TYPE_LRU_HASH, 4, 8, 700, 0, None),
    ("lru_percpu_hash", U.BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 8, 700, 0, None),
    ("lru_hash_percpu_lists", U.BPF_MAP_TYPE_LRU_HASH, 4, 8, 700, U.BPF_F_NO_COMMON_LRU, None),
    ("hash_of_maps_prealloc", U.BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 700, 0, "map"),
    ("array_of_maps", U.BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 700, 0, "map"),
    ("prog_array", U.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 700, 0, "prog"),
    ("perf_event_array", U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 700, 0, "perf"),
    ("cgroup_array", U.BPF_MAP_TYPE_CGROUP_ARRAY, 4, 4, 700, 0, "cgroup"),
    ("queue", U.BPF_MAP_TYPE_QUEUE, 0, 16, 700, 0, None),
    ("stack", U.BPF_MAP_TYPE_STACK, 0, 16, 700, 0, None),
    ("bloom_filter", U.BPF_MAP_TYPE_BLOOM_FILTER, 0, 8, 700, 0, None),
]


class Rig:
    """A map in a cgroup of its own, created by a task there; the objects its values
    reference are made by a task in another cgroup (their memory is not the map's)."""

    def __init__(self, profile: str, spec: tuple) -> None:
        _, self.type, ks, vs, maxe, flags, ref = spec
        self.system = pybpfmem.System(nr_cpus=2, profile=profile, cgroup="v2", ram="4G")
        self.cg = self.system.root.mkdir("maps")
        self.task = self.system.spawn(cgroup=self.cg)
        other = self.system.spawn(cgroup=self.system.root.mkdir("objects"))
        for t in (self.task, other):
            t.setrlimit(pybpfmem.RLIMIT_MEMLOCK, 1 << 62, 1 << 62)
        self.value: bytes | None = None
        inner = None
        if ref == "map":
            inner = other.dup_fd_to(self.task, other.bpf_map_create(U.BPF_MAP_TYPE_ARRAY, 4, 8, 4))
            self.value = inner.to_bytes(4, "little")
        elif ref == "netdev":
            self.value = self.system.create_netdev("eth0").ifindex.to_bytes(4, "little")
        elif ref == "prog":
            prog = other.bpf_prog_load(U.BPF_PROG_TYPE_SOCKET_FILTER, 4)
            self.value = other.dup_fd_to(self.task, prog).to_bytes(4, "little")
        elif ref == "perf":
            self.value = other.dup_fd_to(self.task, other.perf_event_open()).to_bytes(4, "little")
        elif ref == "cgroup":
            self.value = other.dup_fd_to(self.task, other.open_cgroup(self.cg)).to_bytes(4, "little")
        self.fd = self.task.bpf_map_create(self.type, ks, vs, maxe, flags, inner_map_fd=inner)
        self.map = self.system.bpf_map_by_id(self.task.bpf_obj_get_info_by_fd(self.fd)["id"])

    def state(self) -> dict:
        s = self.system
        s.run_deferred()
        s.drain_all_stock()
        s.check()
        out = {"usage": self.cg.usage_pages, "stat": self.cg.stat(),
               "memlock": self.task.fdinfo(self.fd)["memlock"], "locked_vm": s.locked_vm(0),
               "books": self.map.charged_bytes(), "allocated": self.map.allocated_bytes()}
        out["content"] = self.content()
        return out

    def content(self) -> list:
        """The map's entries as the model holds them: a hash map's keys, values and the
        addresses of their elements; an LPM trie's nodes (prefix, flags, address) in
        pre-order (the first get_next_key links bulk-written leaves); other maps' keys."""
        m = self.map
        if isinstance(m, HashMap):
            return list(zip(m.items(), m.elem_objs() or [None] * len(m)))
        if isinstance(m, LpmTrieMap):
            try:
                self.task.bpf_map_get_next_key(self.fd, None)
            except BpfError:
                return []
            out, stack = [], [m.root]
            while stack:
                node = stack.pop()
                if node is not None:
                    out.append((node.prefixlen, node.data, node.flags, node.addr))
                    stack += node.child[::-1]
            return out
        if self.type == U.BPF_MAP_TYPE_DEVMAP_HASH:
            keys, k = [], None
            while True:
                try:
                    k = self.task.bpf_map_get_next_key(self.fd, k)
                except BpfError:
                    return sorted(keys)
                keys.append(k)
        return []


def _ids(spec: tuple) -> str:
    return spec[0]


def _exists(profile: str, spec: tuple) -> None:
    if spec[1] > pybpfmem.get_profile(profile).uapi.max_map_type:
        pytest.skip(f"{spec[0]} does not exist on {profile}")


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("spec", FILLED, ids=_ids)
def test_bulk_fill_leaves_what_the_element_loop_leaves(profile: str, spec: tuple) -> None:
    _exists(profile, spec)
    for n in SIZES:
        spare = min(n, 5) if spec[1] == U.BPF_MAP_TYPE_LPM_TRIE and n > 2 else 0
        bulk, loop = Rig(profile, spec), Rig(profile, spec)
        created = bulk.state()
        kb = bpffill.fill(bulk.task, bulk.fd, n, spare=spare, value=bulk.value, bulk=True)
        kl = bpffill.fill(loop.task, loop.fd, n, spare=spare, value=loop.value, bulk=False)
        assert kb == kl and len(kb) == spare
        full = bulk.state()
        assert full == loop.state(), (spec[0], n)
        if n == SIZES[-1] and spec[5] & NP and bulk.system.profile.bpf.account:
            assert full["usage"] > created["usage"]      # the fill allocated, and it counts
        if spec[1] != U.BPF_MAP_TYPE_DEVMAP:
            nodes = 2 * n - 1 if spec[1] == U.BPF_MAP_TYPE_LPM_TRIE else n   # leaves + intermediates
            assert len(full["content"]) == nodes
        # later operations see the same map: delete the first keys, write new ones, free it
        for rig in (bulk, loop):
            m = rig.map
            for i in range(min(n, 3)):
                rig.task.bpf_map_delete_elem(rig.fd, bpffill.key_at(m, i))
            value = rig.value or bytes(m.syscall_value_size())
            for i in range(min(n, 3)):
                rig.task.bpf_map_update_elem(rig.fd, bpffill.key_at(m, n + i), value)
        assert bulk.state() == loop.state(), (spec[0], n, "after updates")
        after = []
        for rig in (bulk, loop):
            rig.task.close(rig.fd)
            rig.system.run_deferred()
            rig.system.drain_all_stock()
            rig.system.check()
            after.append((rig.cg.usage_pages, rig.cg.stat()))
        assert after[0] == after[1]


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("spec", STATIC, ids=_ids)
def test_static_maps_are_full_at_creation(profile: str, spec: tuple) -> None:
    """What plan reports as 'no alloc': writing every entry (the element loop) charges
    the map's cgroup nothing beyond its creation."""
    _exists(profile, spec)
    rig = Rig(profile, spec)
    created = rig.state()["usage"]
    n = bpffill.capacity(rig.map)
    assert n == spec[4]
    bpffill.fill(rig.task, rig.fd, n, value=rig.value)
    assert rig.state()["usage"] == created


def test_capacity_counts_distinct_keys() -> None:
    # a 1-byte hash key has 256 values; an LPM trie with one data byte 256 full prefixes
    rig = Rig("6.18", ("h", U.BPF_MAP_TYPE_HASH, 1, 8, 1000, NP, None))
    assert bpffill.capacity(rig.map) == 256
    bpffill.fill(rig.task, rig.fd, 256)
    assert len(rig.map) == 256
    with pytest.raises(ValueError, match="at most 256 distinct keys"):
        bpffill.fill(rig.task, rig.fd, 257)
    rig = Rig("6.18", ("l", U.BPF_MAP_TYPE_LPM_TRIE, 5, 8, 1000, NP, None))
    assert bpffill.capacity(rig.map) == 256


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_bulk_fill_stops_where_the_loop_stops_at_memory_max(profile: str) -> None:
    """At memory.max the bulk fill fails with the loop's errno, after as many entries."""
    spec = ("hash", U.BPF_MAP_TYPE_HASH, 4, 64, 5000, NP, None)
    rigs = [Rig(profile, spec), Rig(profile, spec)]
    for rig in rigs:
        rig.state()
        rig.cg.write("memory.max", str(rig.cg.usage_pages * 4096 + 64 * 1024))
    outcomes = []
    for rig, bulk in zip(rigs, (True, False)):
        try:
            bpffill.fill(rig.task, rig.fd, 4000, bulk=bulk)
            outcomes.append(("ok", len(rig.map)))
        except BpfError as exc:
            outcomes.append((exc.errno, len(rig.map)))
    assert outcomes[0] == outcomes[1]
    assert rigs[0].state() == rigs[1].state()
    if rigs[0].system.profile.bpf.account:
        # 6.x: GFP_NOWAIT refills fail at the limit; 5.11: GFP_ATOMIC is forced past it
        assert outcomes[0][0] == (12 if rigs[0].system.profile.bpf.runtime_gfp_nowait else "ok")
