"""What a cgroup costs its parent: mem_cgroup_css_alloc() runs mem_cgroup_alloc() under
set_active_memcg(parent), so its GFP_KERNEL_ACCOUNT allocations are charged to the parent
(nothing for a child of root: the objcg walk stops at root), and stay until the memcg is
freed (__mem_cgroup_free()), dying or not.  struct mem_cgroup, mem_cgroup_per_node and the
objcg are GFP_KERNEL: never charged.

Per child, from the profiles' struct sizes (one node, 2 possible cpus):
- 6.18: kzalloc(memcg_vmstats 1712) -> kmalloc-cg-2048 + 8 = 2056; percpu
  memcg_vmstats_percpu 1216 x 2 + 1216 / 4 x 8 = 4864; percpu memcg1_events_percpu
  24 x 2 + 6 x 8 = 96; kzalloc(lruvec_stats 792) -> kmalloc-cg-1024 + 8 = 1032; percpu
  lruvec_stats_percpu 528 x 2 + 132 x 8 = 2112: 10160 bytes (7072 percpu, 3088 slab).
  The live 6.18.44 kernel charges 10,162,176 bytes for 1000 children: 2481 pages,
  10,160,000 rounded up (tests/test_live_memcg.py).
- 5.10 / 5.11: two percpu memcg_vmstats_percpu and two percpu lruvec_stat, no pointer
  overhead, all percpu: 5.10 (1112 + 1112 + 296 + 296) x 2 = 5632 bytes; 5.11, one more
  node stat item (NR_PAGETABLE), (1120 + 1120 + 304 + 304) x 2 = 5696 bytes.
- 5.15 (rstat: one percpu memcg_vmstats_percpu, per node one percpu lruvec_stats_percpu; no
  pointer overhead before v5.17): (2296 + 624) x 2 = 5840 bytes, all percpu.
- 6.1 / 6.6 / 6.8 (memcg->vmstats kzalloc'ed GFP_KERNEL: not charged; the objcg pointer
  overhead, size / 4 x 8): 6.1 1096 x 2 + 274 x 8 = 4384 and 688 x 2 + 172 x 8 = 2752, 7136
  bytes; 6.6 4864 (1216) + 2752 (688) = 7616; 6.8 1280 x 2 + 320 x 8 = 5120 and 736 x 2 +
  184 x 8 = 2944, 8064; all percpu.
- 6.12 (as 6.18, but Debian 13's kernel has no CONFIG_MEMCG_V1: no memcg1_events_percpu):
  kzalloc(memcg_vmstats 1520) -> kmalloc-cg-2048 + 8 = 2056; percpu 1088 x 2 + 272 x 8 =
  4352; kzalloc(lruvec_stats 744) -> kmalloc-cg-1024 + 8 = 1032; percpu 496 x 2 + 124 x 8 =
  1984: 9424 bytes (6336 percpu, 3088 slab).
"""

from __future__ import annotations

import errno

import pytest

import pybpfmem
from pybpfmem import reference
from pybpfmem.constants import GFP_KERNEL, GFP_KERNEL_ACCOUNT

PS = 4096
COST = {"6.18": (7072, 3088), "6.12": (6336, 3088), "6.8": (8064, 0), "6.6": (7616, 0),
        "6.1": (7136, 0), "5.15": (5840, 0), "5.11": (5696, 0), "5.10": (5632, 0)}   # (percpu, slab) bytes


@pytest.mark.parametrize("profile", sorted(COST))
def test_profile_allocations(profile: str) -> None:
    want = {"6.18": (("memcg_vmstats", "kmalloc", 1712), ("memcg_vmstats_percpu", "percpu", 1216),
                     ("memcg1_events_percpu", "percpu", 24), ("lruvec_stats", "kmalloc", 792),
                     ("lruvec_stats_percpu", "percpu", 528)),
            "6.12": (("memcg_vmstats", "kmalloc", 1520), ("memcg_vmstats_percpu", "percpu", 1088),
                     ("lruvec_stats", "kmalloc", 744), ("lruvec_stats_percpu", "percpu", 496)),
            "6.8": (("memcg_vmstats_percpu", "percpu", 1280), ("lruvec_stats_percpu", "percpu", 736)),
            "6.6": (("memcg_vmstats_percpu", "percpu", 1216), ("lruvec_stats_percpu", "percpu", 688)),
            "6.1": (("memcg_vmstats_percpu", "percpu", 1096), ("lruvec_stats_percpu", "percpu", 688)),
            "5.15": (("memcg_vmstats_percpu", "percpu", 2296), ("lruvec_stats_percpu", "percpu", 624)),
            "5.11": (("memcg_vmstats_percpu", "percpu", 1120),) * 2 + (("lruvec_stat", "percpu", 304),) * 2,
            "5.10": (("memcg_vmstats_percpu", "percpu", 1112),) * 2 + (("lruvec_stat", "percpu", 296),) * 2}
    assert pybpfmem.profiles.get_profile(profile).memcg_allocs() == want[profile]


@pytest.mark.parametrize("impl", ["core", "reference"])
@pytest.mark.parametrize("profile", sorted(COST))
def test_1000_children_cost_their_parent(impl: str, profile: str) -> None:
    mod = pybpfmem if impl == "core" else reference
    s = mod.System(nr_cpus=2, page_size=PS, profile=profile, cgroup="v2", oom_kill=False)
    p = s.root.mkdir("p")
    assert s.root.stat()["percpu"] == 0              # a child of root costs root nothing
    kids = [p.mkdir(f"c{i}") for i in range(1000)]
    s.drain_all_stock()
    percpu, slab = COST[profile]
    st = p.stat()
    assert (st["percpu"], st["slab_unreclaimable"]) == (1000 * percpu, 1000 * slab)
    # whole pages: the objcg's sub-page rest stays parked in nr_charged_bytes
    assert p.usage_pages == -(-1000 * (percpu + slab) // PS)
    for c in kids:
        c.rmdir()
    s.drain_all_stock()
    assert p.usage_pages == 0 and p.stat()["percpu"] == p.stat()["slab_unreclaimable"] == 0


def test_v1_kmem_counter_and_usage() -> None:
    s = pybpfmem.System(nr_cpus=2, page_size=PS, profile="6.18", cgroup="v1")
    p = s.root.mkdir("p")
    for i in range(1000):
        p.mkdir(f"c{i}")
    s.drain_all_stock()
    assert p.read("memory.kmem.usage_in_bytes") == p.read("memory.usage_in_bytes") == "10162176\n"


def test_a_dying_cgroup_keeps_costing() -> None:
    # a removed cgroup pinned by a page charged to it stays dying: its structures stay
    # charged to the parent until its last reference goes; they are freed at the next
    # flush point of the deferred __mem_cgroup_free() (here the drain)
    s = pybpfmem.System(nr_cpus=2, profile="6.18", oom_kill=False)
    p = s.root.mkdir("p")
    c = p.mkdir("c")
    c.charge_user(1, GFP_KERNEL)                  # an anon page: pins c
    c.rmdir()
    s.drain_all_stock()
    assert s.dying_cgroups == 1
    assert p.stat()["percpu"] == 7072 and p.usage_pages == 1 + 3   # c's page + 10160 bytes
    c.uncharge_user(1)                            # uncharge_batch(): c's last reference
    assert s.dying_cgroups == 0 and p.stat()["percpu"] == 7072     # freed, not yet flushed
    s.drain_all_stock()
    assert p.stat()["percpu"] == 0 and p.usage_pages == 0


def test_mkdir_fails_when_the_parent_cannot_pay() -> None:
    # the parent at its limit with nothing to reclaim: the first structure's charge fails
    # (GFP_KERNEL: reclaim, retries, memcg OOM without a victim -> -ENOMEM), mkdir returns
    # ENOMEM, and nothing it allocated stays charged
    s = pybpfmem.System(nr_cpus=2, profile="6.18", oom_kill=False)
    p = s.root.mkdir("p")
    t = s.spawn()
    t.migrate(p)
    with t.running(cpu=0):
        x = s.kmalloc(4000, GFP_KERNEL_ACCOUNT)
    s.drain_all_stock()
    p.write("memory.max", str(p.usage_pages * PS))
    before = (p.usage_pages, p.stat())
    with pytest.raises(OSError) as e:
        p.mkdir("c")
    assert e.value.errno == errno.ENOMEM and "memory.max" in str(e.value)
    s.drain_all_stock()
    assert (p.usage_pages, p.stat()) == before and p.children == []
    s.kfree(x)
    s.check()
