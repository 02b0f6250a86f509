"""Reclaimable slab caches with shrinker semantics: negative dentries (the "dentries"
workload), charged as slab_reclaimable, kept unused on the LRU of the memcg they are
charged to, and freed by reclaim (the superblock shrinker: fs/super.c super_cache_scan()
-> prune_dcache_sb(), mm/shrinker.c do_shrink_slab(), mm/list_lru.c).

A dentry is a "dentry" kmem_cache object of sizeof(struct dentry) = 192 bytes (the
profiles' BTF), charged with its 8-byte objcg pointer slot: 200 bytes (live: 20000
negative dentries = 4,000,000 bytes of kmem on 6.18.44, tests/test_live_memcg.py).
"""

from __future__ import annotations

import errno

import pytest

import pybpfmem
from pybpfmem import reference
from pybpfmem.constants import GFP_KERNEL, SLAB_ACCOUNT, SLAB_RECLAIM_ACCOUNT

PS = 4096
DENTRY = 192 + 8
GFP_NOFS = GFP_KERNEL & ~0x80          # no __GFP_FS: the superblock shrinker stops


def make(impl: str = "core", profile: str = "6.18", cgroup: str = "v2"):
    mod = pybpfmem if impl == "core" else reference
    s = mod.System(nr_cpus=2, page_size=PS, profile=profile, cgroup=cgroup, oom_kill=False)
    a = s.root.mkdir("a")
    t = s.spawn()                      # forked in root: its stack is not in a
    t.migrate(a)
    return s, a, t


@pytest.mark.parametrize("profile", ["5.10", "6.18"])
def test_dentries_are_charged_and_on_the_lru(profile: str) -> None:
    s, a, t = make(profile=profile)
    with t.running(cpu=0):
        d = s.create_dentries(1000)
    assert len(d) == 1000 and s.dentry_cache.lru_count(a) == 1000
    s.drain_all_stock()
    # 1000 x 200 = 200,000 bytes; whole pages charged: 49 (200,704), 704 parked
    assert a.stat()["slab_reclaimable"] == 1000 * DENTRY
    assert a.usage_pages == 49
    # dget(): in use again, off the LRU; freeing an object on the LRU takes it off too
    assert s.dentry_cache.lru_del(int(d[0])) and not s.dentry_cache.lru_del(int(d[0]))
    s.dentry_cache.free(int(d[1]))
    assert s.dentry_cache.lru_count(a) == 998
    assert s.dentry_cache.lru_add(int(d[0])) and not s.dentry_cache.lru_add(int(d[0]))
    assert s.dentry_cache.lru_count(a) == 999


@pytest.mark.parametrize("impl", ["core", "reference"])
def test_memory_high_far_below_usage_shrinks_them(impl: str) -> None:
    # 20000 dentries (4,000,000 bytes), then memory.high 1M: memory_high_write() reclaims.
    # 6.18 memcg reclaim does not count the slab pages shrinkers free, so one
    # try_to_free_mem_cgroup_pages() runs priorities 12 down to 0.  With the per-memcg
    # deferred work (v5.13+) the shrinker scans (nr_deferred >> priority) + delta, delta =
    # (freeable >> priority) * 4 / DEFAULT_SEEKS, in batches of 1024 (the superblock's);
    # at priority 0 that is twice the freeable objects, so every dentry goes.
    s, a, t = make(impl)
    with t.running(cpu=0):
        s.create_dentries(20000)
    s.drain_all_stock()
    assert a.stat()["slab_reclaimable"] == 20000 * DENTRY
    a.write("memory.high", "1M")
    s.drain_all_stock()
    assert s.dentry_cache.lru_count(a) == 0
    assert a.stat()["slab_reclaimable"] == 0 and a.usage_pages == 0


def test_v1_limit_write_busy_then_fits_618() -> None:
    # cgroup v1 mem_cgroup_resize_max(): set_max fails, drain once, then
    # try_to_free_mem_cgroup_pages(memcg, 1): it frees every dentry (as above) but returns
    # 0 pages reclaimed (v6.4+: slab pages do not count in memcg reclaim), so the write
    # fails with EBUSY even though the usage now fits; the next write succeeds.  This is
    # what the live 6.18 kernel does (tests/test_live_memcg.py).
    s, a, t = make(cgroup="v1")
    with t.running(cpu=0):
        s.create_dentries(20000)
    s.drain_all_stock()
    assert int(a.read("memory.kmem.usage_in_bytes")) == 977 * PS     # 4,000,000 bytes
    limit = str(a.usage_pages * PS // 2)
    with pytest.raises(OSError) as e:
        a.write("memory.limit_in_bytes", limit)
    assert e.value.errno == errno.EBUSY
    assert s.dentry_cache.lru_count(a) == 0
    a.write("memory.limit_in_bytes", limit)
    assert a.read("memory.limit_in_bytes") == f"{int(limit) // PS * PS}\n"


def test_v1_limit_write_fits_at_once_511() -> None:
    # 5.11: reclaim_state counts the slab pages the shrinker frees (memcg_reclaim_counts_slab),
    # so the reclaim returns progress and mem_cgroup_resize_max() retries until the limit fits.
    # Before v5.13 the deferred work is one count per shrinker, taken whole, clamped to
    # freeable / 2 while delta < freeable / 4: with 20000 dentries delta = (20000 >>
    # priority) * 2 is 8, 18, 38, 78, 156, 312, 624 at priorities 12..6, the deferred count
    # grows 8, 26, 64, 142, 298, 610, 1234: at priority 6 the first batch of 1024 is walked
    # (super_cache_scan(): 1024 * 20000 / 20001 = 1023, + 1) and frees 1024 dentries, with
    # whole slabs of 21 dentries (order-0 slabs of 192-byte objects): enough pages to meet
    # nr_to_reclaim 32.  Each later call frees more until the usage fits.
    s, a, t = make(profile="5.11", cgroup="v1")
    with t.running(cpu=0):
        s.create_dentries(20000)
    s.drain_all_stock()
    limit = a.usage_pages * PS // 2
    a.write("memory.limit_in_bytes", str(limit))
    assert a.usage_pages * PS <= limit
    assert 0 < s.dentry_cache.lru_count(a) < 20000


def test_a_limit_shrinks_them_for_a_charge() -> None:
    # memory.max at the usage: a GFP_KERNEL charge reclaims dentries and fits; a charge
    # without __GFP_FS cannot run the superblock shrinker (SHRINK_STOP): reclaim frees
    # nothing and the charge fails after the memcg OOM (no victim in this System)
    s, a, t = make()
    with t.running(cpu=0):
        s.create_dentries(5000)
    s.drain_all_stock()
    a.write("memory.max", str(a.usage_pages * PS))
    with pytest.raises(OSError) as e:
        a.try_charge(1, GFP_NOFS)
    assert e.value.errno == errno.ENOMEM and s.dentry_cache.lru_count(a) == 5000
    a.try_charge(1, GFP_KERNEL)
    assert s.dentry_cache.lru_count(a) < 5000


def test_rmdir_moves_the_lru_to_the_parent() -> None:
    # memcg_reparent_list_lrus(): a removed cgroup's unused dentries go to the head of its
    # parent's list (their objcg was reparented too); reclaim of the parent frees them
    s, p, _ = make()
    c = p.mkdir("c")
    t = s.spawn()
    t.migrate(c)
    with t.running(cpu=0):
        s.create_dentries(300)
    t.exit()
    c.rmdir()
    assert s.dentry_cache.lru_count(p) == 300
    s.drop_slab()
    assert s.dentry_cache.lru_count(p) == 0
    s.drain_all_stock()
    assert p.stat()["slab_reclaimable"] == 0 and s.dying_cgroups == 0


def test_drop_slab_frees_every_unused_object() -> None:
    # drop_slab() (echo 2 > drop_caches): priority 0, every memcg: the scan covers each
    # list whole (twice its length), so every unused object goes; one in use stays
    s, a, t = make()
    with t.running(cpu=0):
        d = s.create_dentries(2500)
    s.dentry_cache.lru_del(int(d[7]))
    assert s.drop_slab() == 2499
    assert s.dentry_cache.lru_count(a) == 0
    s.drain_all_stock()
    assert a.stat()["slab_reclaimable"] == DENTRY


def test_lru_api_refuses_other_caches_and_addresses() -> None:
    s, a, t = make()
    plain = s.kmem_cache_create("plain", 64, SLAB_ACCOUNT)
    with t.running(cpu=0):
        x = plain.alloc(GFP_KERNEL)
        y = s.dentry_cache.alloc(GFP_KERNEL)
    for call in (lambda: plain.lru_add(x), lambda: plain.lru_count(a)):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        s.dentry_cache.lru_add(x)             # not an object of this cache
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        s.dentry_cache.lru_add(y + 8)         # not an object start
    assert e.value.errno == errno.EINVAL
    other = pybpfmem.System()
    with pytest.raises(ValueError):
        s.dentry_cache.lru_count(other.root)
    other.close()
    reclaimable = s.kmem_cache_create("inodes", 600, SLAB_RECLAIM_ACCOUNT | SLAB_ACCOUNT)
    with t.running(cpu=0):
        z = reclaimable.alloc(GFP_KERNEL)
    assert reclaimable.lru_add(z) and reclaimable.lru_count(a) == 1
    with t.running(cpu=0):
        assert len(s.create_dentries(0)) == 0
    with pytest.raises(OSError):
        s.create_dentries(1)                  # no context
    s.check()
