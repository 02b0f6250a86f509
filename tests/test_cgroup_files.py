"""cgroupfs files: exact kernel output and kernel parsing (mm/memcontrol.c,
mm/memcontrol-v1.c, mm/page_counter.c page_counter_memparse)."""

from __future__ import annotations

import errno

import pytest

from pybpfmem import GFP_KERNEL, GFP_KERNEL_ACCOUNT, System, page_counter_memparse

PS = 4096
# PAGE_COUNTER_MAX = LONG_MAX / PAGE_SIZE = 2**51 - 1 pages; v1 prints it in bytes:
# (2**51 - 1) * 4096 = 2**63 - 4096 = 9223372036854771712
V1_UNLIMITED = "9223372036854771712\n"


@pytest.fixture
def v2():
    s = System(profile="6.18", cgroup="v2", ram="256M")
    yield s
    s.close()


@pytest.fixture
def v1():
    s = System(profile="6.18", cgroup="v1", ram="256M")
    yield s
    s.close()


def errno_of(excinfo) -> int:
    return excinfo.value.errno


# ---------------------------------------------------------------- memparse
@pytest.mark.parametrize("text,pages", [
    ("64M", 64 * 1024 * 1024 // PS),      # 16384 pages
    ("4097", 1),                          # rounds down
    ("4095", 0),
    (" 8k\n", 2),                         # strstrip + lower-case suffix
    ("0x1000", 1),                        # base auto-detect: hex
    ("010", 0),                           # octal 8 bytes -> 0 pages
    ("1G", 262144),
    ("\n", 0),                            # empty after strstrip: memparse gives 0
    ("max", 2**51 - 1),
    ("1E", 2**48),                        # 2**60 bytes / 4096, below PAGE_COUNTER_MAX
    ("16E", 0),                           # 16 << 60 wraps to 0 in the u64 memparse result
    (" max\t", 2**51 - 1),               # keyword compared after strstrip
])
def test_memparse_v2(text: str, pages: int) -> None:
    assert page_counter_memparse(text, "max", PS) == pages


@pytest.mark.parametrize("text", ["abc", "-1", "-4096", "1.5G", "64MB", "0x", "08", "1 G", "MAX", "maxx"])
def test_memparse_v2_garbage(text: str) -> None:
    with pytest.raises(OSError) as e:
        page_counter_memparse(text, "max", PS)
    assert errno_of(e) == errno.EINVAL


def test_memparse_v1_keyword() -> None:
    assert page_counter_memparse("-1", "-1", PS) == 2**51 - 1
    with pytest.raises(OSError):
        page_counter_memparse("max", "-1", PS)   # "max" is not the v1 keyword


# ---------------------------------------------------------------- v2 reads
def test_first_charge_moves_current_by_a_batch(v2: System) -> None:
    a = v2.root.mkdir("a")
    assert a.read("memory.current") == "0\n"
    a.try_charge(1, GFP_KERNEL, cpu=0)
    # MEMCG_CHARGE_BATCH = 64 on 6.18: 64 * 4096
    assert a.read("memory.current") == "262144\n"
    assert a.read("memory.peak") == "262144\n"


def test_first_charge_batch_511() -> None:
    with System(profile="5.11", ram="64M") as s:
        a = s.root.mkdir("a")
        a.try_charge(1, GFP_KERNEL, cpu=0)
        assert a.read("memory.current") == f"{32 * PS}\n"   # batch 32 on v5.x
        with pytest.raises(OSError) as e:                   # memory.peak is v5.19+
            a.read("memory.peak")
        assert errno_of(e) == errno.ENOENT


def test_limits_default_and_writes(v2: System) -> None:
    a = v2.root.mkdir("a")
    assert a.read("memory.max") == "max\n"
    assert a.read("memory.high") == "max\n"
    assert a.read("memory.low") == "0\n"
    assert a.read("memory.min") == "0\n"
    a.write("memory.max", "64M")
    assert a.read("memory.max") == "67108864\n"
    a.write("memory.max", "4097")
    assert a.read("memory.max") == "4096\n"
    a.write("memory.max", "max\n")
    assert a.read("memory.max") == "max\n"
    a.write("memory.high", "1M")
    assert a.read("memory.high") == "1048576\n"
    a.write("memory.low", "12k")
    assert a.read("memory.low") == "12288\n"
    a.write("memory.min", b"8192")
    assert a.read("memory.min") == "8192\n"


def test_garbage_write_is_einval_and_changes_nothing(v2: System) -> None:
    a = v2.root.mkdir("a")
    a.write("memory.max", "1M")
    for bad in ("abc", "-1", "1.5M", "12 34"):
        with pytest.raises(OSError) as e:
            a.write("memory.max", bad)
        assert errno_of(e) == errno.EINVAL
    assert a.read("memory.max") == "1048576\n"
    with pytest.raises(TypeError):
        a.write("memory.max", 4096)  # type: ignore[arg-type]


def test_events_format(v2: System) -> None:
    a = v2.root.mkdir("a")
    want = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"
    assert a.read("memory.events") == want
    assert a.read("memory.events.local") == want
    assert a.events() == {"low": 0, "high": 0, "max": 0, "oom": 0, "oom_kill": 0, "oom_group_kill": 0}
    with System(profile="5.11", ram="64M") as s:
        b = s.root.mkdir("b")
        assert b.read("memory.events") == "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"


def test_stat_keys_and_user_pages(v2: System) -> None:
    a = v2.root.mkdir("a")
    a.charge_user(3, cpu=0)
    a.charge_user(2, cpu=0, file=True)
    st = a.stat()
    assert list(st) == list(v2.profile.stat_keys_v2)
    keys = list(st)
    # kernel order of memory_stats[]: anon, file, kernel, kernel_stack, ..., slab after slab_unreclaimable
    assert keys[:10] == ["anon", "file", "kernel", "kernel_stack", "pagetables", "sec_pagetables",
                         "percpu", "sock", "vmalloc", "shmem"]
    assert keys[keys.index("slab_unreclaimable") + 1] == "slab"
    assert st["anon"] == 3 * PS and st["inactive_anon"] == 3 * PS
    assert st["file"] == 2 * PS and st["inactive_file"] == 2 * PS
    text = a.read("memory.stat")
    assert text.startswith(f"anon {3 * PS}\nfile {2 * PS}\nkernel 0\n") and text.endswith("\n")
    # recursive: the root's memory.stat includes a's pages
    assert v2.root.stat()["anon"] == 3 * PS


def test_stat_keys_511_have_no_kernel_or_vmalloc() -> None:
    with System(profile="5.11", ram="64M") as s:
        keys = list(s.root.stat())
        assert "kernel" not in keys and "vmalloc" not in keys and "percpu" in keys
        assert keys[:3] == ["anon", "file", "kernel_stack"]


def test_root_has_only_stat_and_procs(v2: System) -> None:
    for name in ("memory.current", "memory.max", "memory.events", "memory.peak"):
        with pytest.raises(OSError) as e:
            v2.root.read(name)
        assert errno_of(e) == errno.ENOENT
    with pytest.raises(OSError) as e:
        v2.root.write("memory.max", "1M")
    assert errno_of(e) == errno.ENOENT
    assert v2.root.read("memory.stat").startswith("anon 0\n")
    assert v2.root.read("cgroup.procs") == ""


def test_unknown_other_version_and_readonly(v2: System) -> None:
    a = v2.root.mkdir("a")
    for name in ("memory.nonexistent", "memory.limit_in_bytes", "memory.kmem.usage_in_bytes"):
        with pytest.raises(OSError) as e:
            a.read(name)
        assert errno_of(e) == errno.ENOENT
    for name in ("memory.current", "memory.stat", "memory.events"):
        with pytest.raises(OSError) as e:
            a.write(name, "1")
        assert errno_of(e) == errno.EACCES   # kernfs_fop_open: no write handler


def test_procs(v2: System) -> None:
    a = v2.root.mkdir("a")
    t1 = v2.spawn(a)
    t2 = v2.spawn(a)
    v2.spawn()
    assert (t1.pid, t2.pid) == (1000, 1001)
    assert a.read("cgroup.procs") == "1000\n1001\n"
    assert v2.root.read("cgroup.procs") == "1002\n"
    t1.exit()
    assert a.read("cgroup.procs") == "1001\n"
    # writing a pid to cgroup.procs migrates it
    v2.root.write("cgroup.procs", "1001\n")
    assert a.read("cgroup.procs") == ""
    with pytest.raises(OSError) as e:
        a.write("cgroup.procs", "999")
    assert errno_of(e) == errno.ESRCH


def test_removed_cgroup_files_enoent(v2: System) -> None:
    a = v2.root.mkdir("a")
    a.rmdir()
    with pytest.raises(OSError) as e:
        a.read("memory.current")
    assert errno_of(e) == errno.ENOENT


# ---------------------------------------------------------------- v1
def test_v1_files(v1: System) -> None:
    a = v1.root.mkdir("a")
    assert a.read("memory.limit_in_bytes") == V1_UNLIMITED
    assert a.read("memory.kmem.limit_in_bytes") == V1_UNLIMITED
    assert a.read("memory.use_hierarchy") == "1\n"
    assert a.read("memory.failcnt") == "0\n"
    a.write("memory.limit_in_bytes", "64M")
    assert a.read("memory.limit_in_bytes") == "67108864\n"
    a.write("memory.limit_in_bytes", "-1")
    assert a.read("memory.limit_in_bytes") == V1_UNLIMITED
    with pytest.raises(OSError) as e:
        a.write("memory.limit_in_bytes", "max")   # not the v1 keyword
    assert errno_of(e) == errno.EINVAL
    with pytest.raises(OSError) as e:
        a.read("memory.current")                 # v2 file
    assert errno_of(e) == errno.ENOENT
    with pytest.raises(OSError) as e:
        a.write("memory.use_hierarchy", "0")     # v5.11+: non-hierarchical mode is gone
    assert errno_of(e) == errno.EINVAL
    a.write("memory.use_hierarchy", "1")
    with pytest.raises(OSError) as e:
        a.read("memory.force_empty")             # write-only file
    assert errno_of(e) == errno.EACCES
    with pytest.raises(OSError) as e:
        v1.root.write("memory.limit_in_bytes", "1M")   # mem_cgroup_write: root is -EINVAL
    assert errno_of(e) == errno.EINVAL


def test_v1_usage_peak_and_resets(v1: System) -> None:
    a = v1.root.mkdir("a")
    a.try_charge(1, GFP_KERNEL, cpu=0)
    # one batch of 64 pages in the counter (63 of them in cpu 0's stock)
    assert a.read("memory.usage_in_bytes") == f"{64 * PS}\n"
    assert a.read("memory.max_usage_in_bytes") == f"{64 * PS}\n"
    v1.drain_all_stock()
    assert a.read("memory.usage_in_bytes") == f"{PS}\n"
    a.write("memory.max_usage_in_bytes", "0")   # any write resets the watermark to usage
    assert a.read("memory.max_usage_in_bytes") == f"{PS}\n"
    # v1 root usage is mem_cgroup_usage(): recursive anon + file only
    a.charge_user(2, cpu=0)
    assert v1.root.read("memory.usage_in_bytes") == f"{2 * PS}\n"


def test_v1_failcnt_reset() -> None:
    with System(profile="6.18", cgroup="v1", ram="64M") as s:
        a = s.root.mkdir("a")
        a.write("memory.limit_in_bytes", "40K")          # 10 pages
        a.try_charge(1, GFP_KERNEL, cpu=0)
        # batch of 64 does not fit under 10: page_counter_try_charge fails once (failcnt 1,
        # v1 tracks failcnt), then the charge is retried with exactly 1 page
        assert a.read("memory.usage_in_bytes") == f"{PS}\n"
        assert a.read("memory.failcnt") == "1\n"
        a.write("memory.failcnt", "0")
        assert a.read("memory.failcnt") == "0\n"


def test_v1_stat_keys(v1: System) -> None:
    a = v1.root.mkdir("a")
    a.charge_user(3, cpu=0)
    text = a.read("memory.stat")
    lines = [ln.split(" ") for ln in text.splitlines()]
    keys = [k for k, _ in lines]
    assert keys[:3] == ["cache", "rss", "rss_huge"]
    assert "hierarchical_memory_limit" in keys and keys[-1] == "total_unevictable"
    vals = dict((k, int(v)) for k, v in lines)
    assert vals["rss"] == 3 * PS and vals["total_rss"] == 3 * PS and vals["cache"] == 0
    assert vals["hierarchical_memory_limit"] == 2**63 - 4096
    a.write("memory.limit_in_bytes", "1M")
    b = a.mkdir("b")
    assert b.stat()["hierarchical_memory_limit"] == 1 << 20


def test_v1_force_empty(v1: System) -> None:
    a = v1.root.mkdir("a")
    a.try_charge(1, GFP_KERNEL, cpu=0)
    a.uncharge(1, cpu=0)
    assert a.read("memory.usage_in_bytes") == f"{64 * PS}\n"   # all 64 pages sit in the stock
    a.write("memory.force_empty", "1")                          # drains the stocks
    assert a.read("memory.usage_in_bytes") == "0\n"
    with pytest.raises(OSError) as e:
        v1.root.write("memory.force_empty", "1")
    assert errno_of(e) == errno.EINVAL


def test_v1_kmem_limit_per_profile() -> None:
    from pybpfmem import GFP_KERNEL_ACCOUNT
    # v5.11: memcg_update_kmem_max sets the kmem counter's max, and __memcg_kmem_charge
    # try-charges kmem after memory: an order-2 large kmalloc (4 pages) over a 2-page kmem
    # limit fails, the memory charge is cancelled (-ENOMEM) and kmem.failcnt counts it.
    # A fork is refused the same way: its kernel stack (4 one-page KMEM charges) does not fit.
    with System(profile="5.11", cgroup="v1", ram="64M") as s:
        a = s.root.mkdir("a")
        a.write("memory.kmem.limit_in_bytes", "8K")
        assert a.read("memory.kmem.limit_in_bytes") == "8192\n"
        with pytest.raises(OSError) as e:
            s.spawn(a)                     # pages 1 and 2 fit, page 3 fails: fork ENOMEM
        assert e.value.errno == errno.ENOMEM
        s.drain_all_stock()
        assert a.read("memory.kmem.usage_in_bytes") == "0\n"
        assert a.read("memory.kmem.failcnt") == "1\n"
        a.write("memory.kmem.limit_in_bytes", "24K")   # the stack + 2 pages
        t = s.spawn(a)
        with t.running(cpu=0):
            with pytest.raises(OSError) as e:
                s.kmalloc(16384, GFP_KERNEL_ACCOUNT)
            assert e.value.errno == errno.ENOMEM
        s.drain_all_stock()
        assert a.read("memory.kmem.usage_in_bytes") == f"{4 * PS}\n"    # the stack
        assert a.read("memory.kmem.failcnt") == "2\n"
        assert a.read("memory.usage_in_bytes") == f"{4 * PS}\n"
    # v5.16+: the write is parsed, then ignored; the kmem counter is charged unconditionally
    with System(profile="6.18", cgroup="v1", ram="64M") as s:
        a = s.root.mkdir("a")
        a.write("memory.kmem.limit_in_bytes", "8K")
        assert a.read("memory.kmem.limit_in_bytes") == V1_UNLIMITED
        with pytest.raises(OSError) as e:
            a.write("memory.kmem.limit_in_bytes", "junk")
        assert e.value.errno == errno.EINVAL
        t = s.spawn(a)
        with t.running(cpu=0):
            x = s.kmalloc(16384, GFP_KERNEL_ACCOUNT)
        assert a.read("memory.kmem.usage_in_bytes") == f"{4 * PS + 4 * PS}\n"   # + the stack
        s.kfree(x)


def test_memory_stat_prints_a_drifted_counter_as_zero():
    # 6.6 (obj_stock_slab_stats, __account_obj_stock()): an object stock keeps an item's
    # first slab delta, adds later ones to it and flushes the sum once it passes PAGE_SIZE.
    # x = kmalloc(8192) on cpu 0: kmalloc-cg-8k, 8192 + 8 bytes, +8200 kept by cpu 0.
    # y = kmalloc(8) on cpu 1: kmalloc-cg-8, 16 bytes, +16 kept by cpu 1.  kfree(x) on cpu 1:
    # 16 - 8200 = -8184, past PAGE_SIZE: flushed, so the counter reads -8184 while cpu 0
    # still keeps +8200.  memory.stat prints 0 (memcg_page_state() clamps an SMP kernel's
    # drift); draining cpu 0's stock brings the counter to y's 16.
    s = System(nr_cpus=2, page_size=4096, profile="6.6", cgroup="v2", oom_kill=False)
    a = s.root.mkdir("a")
    with s.in_interrupt(cpu=0), s.active_memcg(a):
        x = s.kmalloc(8192, GFP_KERNEL_ACCOUNT)
    with s.in_interrupt(cpu=1), s.active_memcg(a):
        y = s.kmalloc(8, GFP_KERNEL_ACCOUNT)
        s.kfree(x)
    printed = dict(line.split() for line in a.read("memory.stat").splitlines())
    assert (a.stat()["slab_unreclaimable"], printed["slab_unreclaimable"]) == (-8184, "0")
    s.drain_local_stock(0)
    assert a.stat()["slab_unreclaimable"] == 16
    s.kfree(y)
