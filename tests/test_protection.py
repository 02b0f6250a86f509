"""memory.min / memory.low: effective protection and reclaim under a limit, in the C core
and in the reference model (the same hand-derived numbers for both).

Rules (mm/page_counter.c effective_protection(), page_counter_calculate_protection();
mm/vmscan.c shrink_node_memcgs(), get_scan_count() / apply_proportional_protection(),
do_try_to_free_pages()):
- a child of the reclaim target is protected by its own setting; deeper down, by its
  share of its parent's effective protection (scaled down when the siblings claim more
  than the parent has; with memory_recursiveprot, the parent's unclaimed protection is
  handed out in proportion to each child's unprotected usage);
- below memory.min a memcg is never reclaimed (the charge ends in OOM); below memory.low
  it is skipped until a pass reclaims nothing, then reclaimed with a `low` event each
  time the walk visits it;
- the model's page cache is one inactive file list per memcg, scanned size >> priority
  (DEF_PRIORITY 12 down to 0) until nr_to_reclaim = max(nr, SWAP_CLUSTER_MAX = 32).
cgroup v2 only: memory.min, memory.low and memory.events exist on the default hierarchy;
the live kernel here has the v1 controller, so these are checked against the source.
"""

from __future__ import annotations

import errno

import pytest

import pybpfmem
from pybpfmem import reference
from pybpfmem.constants import GFP_KERNEL

PS = 4096
IMPLS = ("core", "reference")


def make(impl: str, profile: str = "6.18", recursiveprot: bool = False):
    mod = pybpfmem if impl == "core" else reference
    s = mod.System(nr_cpus=2, page_size=PS, profile=profile, cgroup="v2", oom_kill=False,
                   memory_recursiveprot=recursiveprot)
    return s, s.root.mkdir("t")         # t: the reclaim target (a child of root: no cost)


def elow(cg) -> int:
    info = cg.info()
    return info["memory"]["elow"] if "memory" in info else cg._st.elow


def file_pages(cg) -> int:
    info = cg.info()
    return info["file_pages"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("recursive,want_c", [(False, 0), (True, 37)])
def test_effective_low(impl: str, recursive: bool, want_c: int) -> None:
    # t/a (low 100 pages)/{b (low 80), c (low 0)}; b uses 60 anon pages, c 90: nothing is
    # reclaimable, so a reclaim of t only computes the protection, walking t, a, b, c:
    #  a: a child of the target: elow = a.low = 100
    #  b: protected = min(60, 80) = 60; siblings claim min(60, 80) + min(90, 0) = 60, not
    #     above a's 100: elow = 60 (recursive: b has no unprotected usage, nothing more)
    #  c: protected = min(90, 0) = 0: elow 0; recursive: a's unclaimed 100 - 60 = 40 goes
    #     to the children's unprotected usage in proportion: a's usage is 150 plus the 5
    #     pages of b's and c's structures (mkdir: 2 x 10160 bytes charged to a), so c's
    #     share is 40 * (90 - 0) / (155 - 60) = 37
    s, t = make(impl, recursiveprot=recursive)
    a = t.mkdir("a")
    b, c = a.mkdir("b"), a.mkdir("c")
    a.write("memory.low", str(100 * PS))
    b.write("memory.low", str(80 * PS))
    b.charge_user(60, GFP_KERNEL)
    c.charge_user(90, GFP_KERNEL)
    s.drain_all_stock()
    assert a.usage_pages == 155
    t.write("memory.max", str(t.usage_pages * PS))
    with pytest.raises(OSError) as e:
        t.try_charge(1, GFP_KERNEL | 0x4000)          # __GFP_RETRY_MAYFAIL: no OOM
    assert e.value.errno == errno.ENOMEM
    assert (elow(a), elow(b), elow(c)) == (100, 60, want_c)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("profile", ["5.11", "6.18"])
def test_low_breached_only_when_nothing_else(impl: str, profile: str) -> None:
    # t/a with memory.low = max and 100 file pages; t/b with 40 anon pages (not
    # reclaimable).  A 1-page charge at t's limit: reclaim(t, nr_to_reclaim 32).  First pass
    # (and, 6.18, the full-walk retry): a is below low (elow = max >= 100): skipped; nothing
    # reclaimed.  Then the memory.low pass: a's scan is its list >> priority (no min): 0 for
    # priorities 12..7, then 100 >> 6 = 1, 99 >> 5 = 3, 96 >> 4 = 6, 90 >> 3 = 11 and
    # 79 >> 2 = 19: 40 >= 32 at priority 2.  a is visited at priorities 12..2: 11 `low`
    # events (on a and, hierarchically, on t); 60 file pages left.
    s, t = make(impl, profile)
    a, b = t.mkdir("a"), t.mkdir("b")
    a.write("memory.low", "max")
    a.charge_user(100, GFP_KERNEL, file=True)
    b.charge_user(40, GFP_KERNEL)
    s.drain_all_stock()
    t.write("memory.max", str(t.usage_pages * PS))
    t.try_charge(1, GFP_KERNEL)
    assert file_pages(a) == 60
    assert a.events_local()["low"] == 11 and a.events()["low"] == 11
    assert t.events()["low"] == 11 and t.events_local()["low"] == 0
    st = a.stat()
    assert st["pgscan"] == st["pgsteal"] == 40


@pytest.mark.parametrize("impl", IMPLS)
def test_low_protects_while_others_can_give(impl: str) -> None:
    # t/a (low = max, 100 file pages) and t/b (100 file pages, no protection): a 1-page
    # charge at t's limit reclaims only b: b's list >> priority gives 1, 3, 6, 11, 19
    # (40 >= 32 at priority 2); a is skipped, no `low` event.
    s, t = make(impl)
    a, b = t.mkdir("a"), t.mkdir("b")
    a.write("memory.low", "max")
    a.charge_user(100, GFP_KERNEL, file=True)
    b.charge_user(100, GFP_KERNEL, file=True)
    s.drain_all_stock()
    t.write("memory.max", str(t.usage_pages * PS))
    t.try_charge(1, GFP_KERNEL)
    assert (file_pages(a), file_pages(b)) == (100, 60)
    assert a.events()["low"] == 0


@pytest.mark.parametrize("impl", IMPLS)
def test_min_is_never_breached(impl: str) -> None:
    # t/a with memory.min = max and 100 file pages: below min a is never reclaimed (no
    # retry breaches min), so t's charge fails after its reclaim retries and the memcg OOM
    # (6.18, no victim in this System: -ENOMEM); a keeps every page
    s, t = make(impl)
    a = t.mkdir("a")
    a.write("memory.min", "max")
    a.charge_user(100, GFP_KERNEL, file=True)
    s.drain_all_stock()
    t.write("memory.max", str(t.usage_pages * PS))
    with pytest.raises(OSError) as e:
        t.try_charge(1, GFP_KERNEL)
    assert e.value.errno == errno.ENOMEM
    assert file_pages(a) == 100
    assert t.events()["oom"] == 1 and a.events()["low"] == 0


@pytest.mark.parametrize("impl", IMPLS)
def test_proportional_scan_under_partial_low(impl: str) -> None:
    # t/a (low 50 pages, 100 file pages), t/b (100 file pages).  a is above its low, so it is
    # reclaimed in the first pass with its scan reduced by the protected share:
    # apply_proportional_protection(): protection = elow 50 (low > min), scan = size -
    # size * 50 / (usage + 1), at least SWAP_CLUSTER_MAX, >> priority; b: size >> priority.
    #   priority 6: a (100 - 49 = 51) >> 6 = 0; b 100 >> 6 = 1 (b 99)
    #   priority 5: a 51 >> 5 = 1 (a 99); b 99 >> 5 = 3 (b 96)
    #   priority 4: a (99 - 4950 / 100 = 50) >> 4 = 3 (a 96); b 96 >> 4 = 6 (b 90)
    #   priority 3: a (96 - 4800 / 97 = 47) >> 3 = 5 (a 91); b 90 >> 3 = 11 (b 79): 30 so far
    #   priority 2: a (91 - 4550 / 92 = 42) >> 2 = 10 (a 81): 40 >= 32, the partial walk
    #   stops (6.18) before b.
    s, t = make(impl)
    a, b = t.mkdir("a"), t.mkdir("b")
    a.write("memory.low", str(50 * PS))
    a.charge_user(100, GFP_KERNEL, file=True)
    b.charge_user(100, GFP_KERNEL, file=True)
    s.drain_all_stock()
    t.write("memory.max", str(t.usage_pages * PS))
    t.try_charge(1, GFP_KERNEL)
    assert (file_pages(a), file_pages(b)) == (81, 79)
    assert a.events()["low"] == 0


def test_recursiveprot_needs_cgroup_v2() -> None:
    with pytest.raises(ValueError):
        pybpfmem.System(cgroup="v1", memory_recursiveprot=True)
    with pytest.raises(TypeError):
        pybpfmem.System(memory_recursiveprot=1)   # type: ignore[arg-type]
