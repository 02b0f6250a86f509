"""Host memory stays flat (issue 15, items 7 and 8): exited tasks, removed cgroups and
closed or dropped Systems give their host memory back, whatever must be remembered is
bounded, a preallocated per-cpu map costs host memory independent of max_entries, and
the limits on a System's configuration are checked before anything is allocated.

Scale: PYBPFMEM_CHURN_CYCLES create/remove cycles of each kind (default 5,000;
``make test-stress`` runs 100,000).  The malloc heap (mallinfo2) and Python's allocated
blocks are exact counts, so a leak of one small object per cycle shows at any scale;
the resident set is page-grained and only bounded loosely."""

from __future__ import annotations

import gc
import os
import sys

import pytest

import pybpfmem
from pybpfmem.bpf import BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH
from pybpfmem.commands.bench import churn, heap_bytes, rss_bytes

CYCLES = int(os.environ.get("PYBPFMEM_CHURN_CYCLES", "5000"))

needs_glibc = pytest.mark.skipif(heap_bytes() == 0, reason="mallinfo2() needs glibc >= 2.33")


@needs_glibc
@pytest.mark.parametrize("kind", ["task", "cgroup", "system", "dropped-system"])
def test_create_remove_cycles_keep_host_memory_flat(kind):
    """Issue 15 item 8: a spawned and exited task, a made and removed cgroup, a System
    closed or dropped: before, every cycle kept 0.3-2.4 KB (the task and cgroup registries,
    the C graveyard of freed memcgs, ids never reused)."""
    g = churn(kind, CYCLES)
    # exact counters: a few dict resizes at most, never a per-cycle object
    assert g.heap_per_cycle * g.n < 64 * 1024, g
    assert g.blocks_per_cycle * g.n < 100, g
    assert g.rss_per_cycle * g.n < 4 * 1024 * 1024, g


def test_more_cgroups_than_ids_over_time():
    """MEM_CGROUP_ID_MAX (65,535) mkdirs exhausted the ids: freed ones are reused now,
    with a new generation, so a stale handle never names the new cgroup."""
    system = pybpfmem.mm.System(nr_cpus=2)
    old = system.root.mkdir("old")
    old_id = old.id
    old.rmdir()
    for _ in range(70_000):
        system.root.mkdir("c").rmdir()
    new = system.root.mkdir("new")
    assert new.id != old_id
    with pytest.raises(OSError):
        system.memcg_by_id(old_id)
    assert system.dying_cgroups == 0
    system.check()


@needs_glibc
@pytest.mark.parametrize("map_type", [BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY])
def test_preallocated_percpu_values_cost_host_memory_independent_of_max_entries(map_type):
    """Issue 15 item 7: a preallocated PERCPU_HASH of 1,000,000 entries made one per-cpu
    allocation (a host record and a Python booking) per element: 353 MB.  Now the values
    are one percpu array: the host memory is the simulated memory's page bookkeeping,
    the same as for the other preallocated maps."""
    system = pybpfmem.System(nr_cpus=2, profile="5.11")
    cg = system.root.mkdir("a")
    task = system.spawn(cgroup=cg)
    with task.running(cpu=0):
        task.close(task.bpf_map_create(map_type, 4, 8, 16))   # the family's module loaded
    gc.collect()
    heap0, blocks0 = heap_bytes(), sys.getallocatedblocks()
    with task.running(cpu=0):
        fd = task.bpf_map_create(map_type, 4, 8, 1_000_000)
    gc.collect()
    assert heap_bytes() - heap0 < 16 << 20
    assert sys.getallocatedblocks() - blocks0 < 1000
    # charged as 1,000,000 allocations: pcpu_obj_full_size(8) = 8 x 2 cpus (5.11: no
    # objcg pointer array) = 16 bytes each; a hash map also has its map_locked per-cpu
    # ints: HASHTAB_MAP_LOCK_COUNT (8) x 4 bytes x 2 cpus = 64
    percpu = 16_000_000 + (64 if map_type == BPF_MAP_TYPE_PERCPU_HASH else 0)
    assert cg.stat()["percpu"] == percpu
    assert system.bpf_maps()[0]["charged"]["percpu"] == percpu
    task.close(fd)
    system.drain_all_stock()
    # what is left is the task's kernel stack: THREAD_SIZE = 16 KiB, 4 pages
    assert cg.stat()["percpu"] == 0 and cg.read("memory.current") == "16384\n"


def test_ram_limits_are_values_errors_naming_them():
    """Issue 15 item 7: ram="16T" with 4 KiB pages passed the Python check (which said
    64T) and failed in bm_config_check with EINVAL; the limits are the core's, stated
    once in bpfmem.h (BM_MAX_RAM_PAGES frames, BM_MAX_RAM_BYTES), and checked first."""
    with pytest.raises(ValueError, match=r"4294967295 page frames and 64 TiB"):
        pybpfmem.System(ram="16T")                    # 2^32 frames of 4 KiB: one too many
    with pytest.raises(ValueError, match=r"4294967295 page frames and 64 TiB"):
        pybpfmem.System(ram=(64 << 40) + 65536, page_size=65536)
    with pytest.raises(ValueError, match="below 16 pages"):
        pybpfmem.System(ram="32K")


def test_the_largest_ram_is_made_without_host_memory():
    """Issue 15 item 7: System(ram="64T", page_size=65536) raised a bare MemoryError (the
    frame array was calloc'ed); it is reserved now, and only what is used costs memory."""
    rss0 = rss_bytes()
    big = pybpfmem.System(ram="64T", page_size=65536)          # 2^30 frames
    edge = pybpfmem.System(ram=(1 << 32) - 1 << 12)            # the last 4 KiB frame count
    for s in (big, edge):
        cg = s.root.mkdir("a")
        with s.spawn(cgroup=cg).running(cpu=0):
            s.kfree(s.kmalloc(100, pybpfmem.GFP_KERNEL_ACCOUNT))
        s.check()
    assert rss_bytes() - rss0 < 64 << 20
    big.close()
    edge.close()
