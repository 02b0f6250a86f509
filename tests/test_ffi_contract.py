"""The cffi binding against csrc/bpfmem.h: every cdef'd struct can be
instantiated, every cdef'd function is called at least once (with bad
arguments where that is enough) and must reject them without crashing, and
the Python mirrors of C structs (profile fields, the replay dtype) match."""

from __future__ import annotations

import errno
import pathlib
import re

import numpy as np
import pytest

from pybpfmem import System
from pybpfmem._core import ffi, lib
from pybpfmem.profiles import PROFILE_SWITCHES, PROFILES
from pybpfmem.system import OP_DTYPE

HEADER = pathlib.Path(__file__).resolve().parent.parent / "csrc" / "bpfmem.h"


def cdef_text() -> str:
    text = HEADER.read_text()
    return text[text.index("/* BEGIN CDEF */"):text.index("/* END CDEF */")]


def cdef_structs() -> list[str]:
    return re.findall(r"^struct (\w+) \{", cdef_text(), re.M)


def cdef_functions() -> list[str]:
    # prototypes: "<type> [*]name(" at the start of a line
    return re.findall(r"^[A-Za-z_][\w ]*?[\s*](bm_\w+)\(", cdef_text(), re.M)


def test_header_parsed() -> None:
    # sanity of the parser itself, so an empty list cannot make the tests vacuous
    assert "bm_op" in cdef_structs() and "bm_memcg_info" in cdef_structs()
    assert "bm_system_new" in cdef_functions() and "bm_kfree_bulk" in cdef_functions()


@pytest.mark.parametrize("name", cdef_structs())
def test_struct_instantiable(name: str) -> None:
    p = ffi.new(f"struct {name} *")
    t = ffi.typeof(p[0])
    assert t.kind == "struct" and ffi.sizeof(p[0]) > 0
    # every integer field holds its own width: write the all-ones value and read it back
    for fname, field in t.fields:
        ft = field.type
        if ft.kind == "primitive":
            size = ffi.sizeof(ft)
            value = -1 if ft.cname.startswith("int") else (1 << (8 * size)) - 1
            setattr(p, fname, value)
            assert getattr(p, fname) == value, (name, fname)


def test_profile_fields_match_struct() -> None:
    fields = [f for f, _ in ffi.typeof("struct bm_profile").fields]
    assert tuple(fields) == PROFILE_SWITCHES
    for prof in PROFILES.values():
        c = prof.to_cdata(ffi)
        assert [getattr(c, f) for f in fields] == [getattr(prof, f) for f in fields]


def test_op_dtype_matches_struct() -> None:
    assert OP_DTYPE.itemsize == ffi.sizeof("struct bm_op")
    for name, _ in ffi.typeof("struct bm_op").fields:
        assert OP_DTYPE.fields[name][1] == ffi.offsetof("struct bm_op", name), name


@pytest.fixture
def sysobj():
    s = System(nr_cpus=2, ram="64M")
    yield s
    s.close()


def _calls(sp, nr_cpus: int) -> dict:
    """One call per cdef'd function.  Each returns (rc, must_be_negative)."""
    gfp = 0x400CC0
    u64 = ffi.new("uint64_t *")
    i32 = ffi.new("int32_t *")
    i32b = ffi.new("int32_t *")
    bad_cfg = ffi.new("struct bm_config *")   # nr_cpus = 0, page_size = 0
    msg = ffi.new("char[]", 256)
    ops = np.zeros(1, dtype=OP_DTYPE)
    ops["op"] = 250                             # unknown op code
    results = np.zeros(1, dtype=np.int64)
    addrs = np.array([12345], dtype=np.uint64)
    sizes = np.array([8], dtype=np.uint64)
    BAD = 123456                                # never a valid handle here
    return {
        "bm_config_check": lambda: (lib.bm_config_check(bad_cfg), True),
        "bm_system_new": lambda: (-1 if lib.bm_system_new(bad_cfg) == ffi.NULL else 0, True),
        "bm_system_free": None,                 # exercised by the fixture's close()
        "bm_system_nr_dying": lambda: (lib.bm_system_nr_dying(sp), False),
        "bm_fail_nth_alloc": lambda: (lib.bm_fail_nth_alloc(sp, -1), True),
        "bm_memcg_state": lambda: (lib.bm_memcg_state(sp, BAD), True),
        "bm_system_check": lambda: (lib.bm_system_check(sp, msg, 256), False),
        "bm_memcg_create": lambda: (lib.bm_memcg_create(sp, BAD, 0), True),
        "bm_memcg_offline": lambda: (lib.bm_memcg_offline(sp, BAD), True),
        "bm_memcg_get": lambda: (lib.bm_memcg_get(sp, BAD), True),
        "bm_memcg_put": lambda: (lib.bm_memcg_put(sp, BAD), True),
        "bm_memcg_info": lambda: (lib.bm_memcg_info(sp, -1, ffi.new("struct bm_memcg_info *")), True),
        "bm_memcg_write": lambda: (lib.bm_memcg_write(sp, BAD, 0, 1), True),
        "bm_set_task": lambda: (lib.bm_set_task(sp, nr_cpus, 0, -1), True),
        "bm_set_interrupt": lambda: (lib.bm_set_interrupt(sp, -1, 1), True),
        "bm_syscall_enter": lambda: (lib.bm_syscall_enter(sp, -1), True),
        "bm_syscall_exit": lambda: (lib.bm_syscall_exit(sp, 0), True),    # no enter
        "bm_set_active_memcg": lambda: (lib.bm_set_active_memcg(sp, nr_cpus, 0, i32), True),
        "bm_take_oom_victim": lambda: (lib.bm_take_oom_victim(sp, -1), True),
        "bm_last_charge_failure": lambda: (lib.bm_last_charge_failure(sp, 0, ffi.NULL), True),
        "bm_get_obj_cgroup_from_current": lambda: (lib.bm_get_obj_cgroup_from_current(sp, -1, i32), True),
        "bm_obj_cgroup_get": lambda: (lib.bm_obj_cgroup_get(sp, BAD), True),
        "bm_obj_cgroup_put": lambda: (lib.bm_obj_cgroup_put(sp, BAD), True),
        "bm_obj_cgroup_charge": lambda: (lib.bm_obj_cgroup_charge(sp, 0, BAD, gfp, 8), True),
        "bm_obj_cgroup_uncharge": lambda: (lib.bm_obj_cgroup_uncharge(sp, 0, BAD, 8), True),
        "bm_bench_floor": lambda: (lib.bm_bench_floor(-1, 0, 1, ffi.new("double *")), True),
        "bm_bench_threads": lambda: (lib.bm_bench_threads(sp, 0, BAD, 0, 1, ffi.new("double *")), True),
        "bm_try_charge": lambda: (lib.bm_try_charge(sp, BAD, 1, gfp, 0), True),
        "bm_uncharge": lambda: (lib.bm_uncharge(sp, BAD, 1, 0), True),
        "bm_charge_user": lambda: (lib.bm_charge_user(sp, BAD, 1, gfp, 0, 0), True),
        "bm_uncharge_user": lambda: (lib.bm_uncharge_user(sp, BAD, 1, 0), True),
        "bm_drain_all_stock": lambda: (lib.bm_drain_all_stock(sp, BAD), True),
        "bm_drain_local_stock": lambda: (lib.bm_drain_local_stock(sp, -1), True),
        "bm_stock_info": lambda: (lib.bm_stock_info(sp, nr_cpus, ffi.new("struct bm_cpu_stock_info *")), True),
        "bm_alloc_pages": lambda: (lib.bm_alloc_pages(sp, -1, 0, gfp, u64), True),
        "bm_free_pages": lambda: (lib.bm_free_pages(sp, 0, 1 << 62, 0), True),
        "bm_kmalloc": lambda: (lib.bm_kmalloc(sp, -1, 8, gfp, u64), True),
        "bm_kfree": lambda: (lib.bm_kfree(sp, 0, BAD), True),
        "bm_ksize": lambda: (lib.bm_ksize(sp, BAD, u64), True),
        "bm_kmem_cache_create": lambda: (lib.bm_kmem_cache_create(sp, 0, 0, i32), None),
        "bm_kmem_cache_alloc": lambda: (lib.bm_kmem_cache_alloc(sp, 0, BAD, gfp, u64), True),
        "bm_kmem_cache_free": lambda: (lib.bm_kmem_cache_free(sp, 0, BAD, 0), True),
        "bm_vmalloc": lambda: (lib.bm_vmalloc(sp, -1, 4096, gfp, u64), True),
        "bm_vfree": lambda: (lib.bm_vfree(sp, 0, BAD), True),
        "bm_kvmalloc": lambda: (lib.bm_kvmalloc(sp, -1, 8, gfp, u64), True),
        "bm_kvfree": lambda: (lib.bm_kvfree(sp, 0, BAD), True),
        "bm_alloc_percpu": lambda: (lib.bm_alloc_percpu(sp, -1, 8, 8, gfp, u64), True),
        "bm_alloc_percpu_array": lambda: (lib.bm_alloc_percpu_array(sp, 0, 8, 8, gfp, 0, u64), True),
        "bm_free_percpu": lambda: (lib.bm_free_percpu(sp, 0, BAD), True),
        "bm_page_info": lambda: (lib.bm_page_info(sp, 1 << 62, ffi.new("struct bm_page_info *")), True),
        "bm_obj_cgroup_of": lambda: (lib.bm_obj_cgroup_of(sp, BAD, i32, i32b), True),
        "bm_objcg_info": lambda: (lib.bm_objcg_info(sp, BAD, ffi.new("struct bm_objcg_info *")), True),
        "bm_ram_used_pages": lambda: (lib.bm_ram_used_pages(sp), False),
        "bm_replay": lambda: (
            -1 if lib.bm_replay(sp, ffi.from_buffer("struct bm_op[]", ops), 1,
                                ffi.cast("int64_t *", ffi.from_buffer(results))) != 0 and results[0] < 0 else 0,
            True),
        # an unknown kind is refused before anything is allocated
        "bm_allocs_until_fail": lambda: (
            lib.bm_allocs_until_fail(sp, 0, b"x", ffi.cast("const uint64_t *", ffi.from_buffer(sizes)), 1,
                                     gfp, u64), True),
        "bm_kmalloc_bulk": lambda: (
            lib.bm_kmalloc_bulk(sp, -1, ffi.cast("const uint64_t *", ffi.from_buffer(sizes)), 1, gfp,
                                ffi.cast("uint64_t *", ffi.from_buffer(addrs.copy()))), True),
        # the hash element store: NULL handles and bad sizes are refused
        "bm_htab_new": lambda: (-1 if lib.bm_htab_new(0, 8, 1, 1, 0) == ffi.NULL else 0, True),
        "bm_htab_free": lambda: (lib.bm_htab_free(ffi.NULL) or -1, True),
        "bm_htab_count": lambda: (lib.bm_htab_count(ffi.NULL), True),
        "bm_htab_lookup": lambda: (lib.bm_htab_lookup(ffi.NULL, b"k", ffi.NULL, ffi.NULL), True),
        "bm_htab_update": lambda: (lib.bm_htab_update(ffi.NULL, b"k", b"v", 0), True),
        "bm_htab_commit": lambda: (lib.bm_htab_commit(ffi.NULL, b"k", b"v", u64, u64), True),
        "bm_htab_delete": lambda: (lib.bm_htab_delete(ffi.NULL, b"k", u64), True),
        "bm_htab_next_key": lambda: (lib.bm_htab_next_key(ffi.NULL, ffi.NULL, ffi.new("char[8]")), True),
        "bm_htab_all_new": lambda: (lib.bm_htab_all_new(ffi.NULL, b"k", 1), True),
        "bm_htab_insert_bulk": lambda: (lib.bm_htab_insert_bulk(ffi.NULL, b"k", b"v", ffi.NULL, 1), True),
        "bm_htab_dump": lambda: (lib.bm_htab_dump(ffi.NULL, ffi.NULL, ffi.NULL, ffi.NULL, 1), True),
        "bm_htab_host_bytes": lambda: (lib.bm_htab_host_bytes(ffi.NULL), True),
        "bm_htab_lru_init": lambda: (lib.bm_htab_lru_init(ffi.NULL, 2, 0), True),
        "bm_htab_lru_update": lambda: (lib.bm_htab_lru_update(ffi.NULL, 0, b"k", b"v", 0, 1), True),
        "bm_htab_lru_lookup": lambda: (lib.bm_htab_lru_lookup(ffi.NULL, b"k", ffi.NULL), True),
        "bm_htab_lru_list": lambda: (lib.bm_htab_lru_list(ffi.NULL, 0, 0, ffi.NULL, ffi.NULL, 1), True),
        "bm_memalloc_bulk": lambda: (lib.bm_memalloc_bulk(sp, -1, 8, 1, gfp, u64), True),
        "bm_task_stack_alloc": lambda: (lib.bm_task_stack_alloc(sp, 0, BAD, u64), True),
        "bm_task_stack_free": lambda: (lib.bm_task_stack_free(sp, 0, BAD), True),
        "bm_list_lru_add": lambda: (lib.bm_list_lru_add(sp, BAD, 4096), True),
        "bm_list_lru_del": lambda: (lib.bm_list_lru_del(sp, BAD, 4096), True),
        "bm_list_lru_count": lambda: (lib.bm_list_lru_count(sp, BAD, 0), True),
        "bm_kmem_cache_alloc_lru_bulk": lambda: (
            lib.bm_kmem_cache_alloc_lru_bulk(sp, 0, BAD, gfp, 1, u64), True),
        "bm_drop_slab": lambda: (lib.bm_drop_slab(sp, -1), True),
        "bm_kfree_bulk": lambda: (
            -1 if lib.bm_kfree_bulk(sp, 0, ffi.cast("const uint64_t *", ffi.from_buffer(addrs)), 1,
                                    ffi.cast("int64_t *", ffi.from_buffer(results))) != 0 and results[0] < 0
            else 0, True),
    }


def test_every_function_has_a_call() -> None:
    table = _calls(ffi.NULL, 2)
    assert set(cdef_functions()) == set(table), "add a call for new/removed bm_* functions"


@pytest.mark.parametrize("fname", cdef_functions())
def test_function_rejects_bad_arguments(sysobj: System, fname: str) -> None:
    call = _calls(sysobj._sys, sysobj.nr_cpus)[fname]
    if call is None:
        return
    before = sysobj.root.info()
    rc, must_fail = call()
    if must_fail is None:
        assert isinstance(rc, int)            # either answer is fine; it must not crash
    elif must_fail:
        assert rc < 0, f"{fname} accepted bad arguments (rc={rc})"
        assert -rc in errno.errorcode or rc == -1
    else:
        assert rc >= 0, f"{fname} failed on valid arguments (rc={rc})"
    assert sysobj.root.info() == before   # nothing was charged or moved
    sysobj.check()


def test_htab_store_rejects_bad_sizes_and_arguments() -> None:
    # bm_htab_new refuses key_size 0, value_size 0 and more than BM_HTAB_MAX_AUX aux words
    assert lib.bm_htab_new(0, 8, 0, 1, 0) == ffi.NULL
    assert lib.bm_htab_new(4, 0, 0, 1, 0) == ffi.NULL
    assert lib.bm_htab_new(4, 8, lib.BM_HTAB_MAX_AUX + 1, 1, 0) == ffi.NULL
    assert lib.bm_htab_new(4, 8, 1, 1, 8) == ffi.NULL                               # bad mode
    h = ffi.gc(lib.bm_htab_new(4, 8, 1, 1, 0), lib.bm_htab_free)
    assert lib.bm_htab_update(h, b"abcd", b"v" * 8, 3) == -errno.EINVAL              # flags > EXIST
    assert lib.bm_htab_all_new(h, b"abcd", -1) == -errno.EINVAL
    assert lib.bm_htab_insert_bulk(h, ffi.NULL, ffi.NULL, ffi.NULL, 1) == -errno.EINVAL
    assert lib.bm_htab_count(h) == 0
