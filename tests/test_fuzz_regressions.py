"""Regression tests for bugs the fuzzers and the differential machines found.

Each test names the finding (which machine or driver, which divergence), replays it
minimally, and asserts the value derived by hand from the kernel's rules.
"""

from __future__ import annotations

import pybpfmem
from pybpfmem import constants as K


def test_obj_cgroup_of_v5_kmem_page_names_its_memcg() -> None:
    """Diff_5_11 (owner of kmalloc: real None vs reference /c1): System.obj_cgroup_of()
    dropped the memcg the core reports for a v5.x kmem page.

    5.11: kmalloc(8193) is above KMALLOC_MAX_CACHE_SIZE (2 pages), so kmalloc_order()
    allocates an order-2 compound page with the caller's __GFP_ACCOUNT;
    __memcg_kmem_charge_page() charges it to the active memcg c1 and stores
    c1|MEMCG_DATA_KMEM in page->memcg_data (no objcg before v5.13).  So the owner is
    (no objcg, c1), and c1 holds one charge batch of 32 pages (4 used, 28 in the stock).
    """
    s = pybpfmem.System(nr_cpus=2, page_size=4096, profile="5.11", cgroup="v2", oom_kill=False)
    c1 = s.root.mkdir("c1")
    with s.in_interrupt(cpu=0), s.active_memcg(c1):
        x = s.kmalloc(8193, K.GFP_KERNEL | K.__GFP_ACCOUNT)
    assert s.obj_cgroup_of(x) == (None, c1)
    assert c1.usage_pages == 32
    s.kfree(x)
    s.drain_all_stock()
    assert c1.usage_pages == 0
    s.check()
