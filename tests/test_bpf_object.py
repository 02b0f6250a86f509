"""Maps of compiled BPF objects (pybpfmem.bpf.object) against the committed fixtures.

Each expected spec is derived by hand from the fixture's C source
(tests/fixtures/bpf/*.bpf.c) and libbpf's rules, cited per case.  Orders are not
hand-written: libbpf lists BTF-defined maps by their offset in ``.maps``
(btf_fixup_datasec() sorts the DATASEC, compare_vsi_off()) and global-data maps by ELF
section index, both clang's layout, so the tests read those from the ELF symbol and
section tables independently of the reader.
"""
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from pybpfmem import btf
from pybpfmem.bpf import object as bo
from pybpfmem.bpf import uapi as u

FIXTURES = Path(__file__).parent / "fixtures" / "bpf"
OBJECTS = sorted(FIXTURES.glob("*.bpf.o"))


def _spec(m: bo.ObjectMap) -> tuple:
    return (m.type_name, m.key_size, m.value_size, m.max_entries, m.map_flags, m.map_extra,
            m.numa_node, m.pinning)


def _by_name(maps):
    return {m.name: m for m in maps}


def _symbol_order(path: Path, section: str) -> list[str]:
    """Names of the symbols defined in ``section``, by offset (clang's layout)."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        idx = next(i for i, s in enumerate(elf.iter_sections()) if s.name == section)
        syms = [s for s in elf.get_section_by_name(".symtab").iter_symbols()
                if s["st_shndx"] == idx and s["st_info"]["type"] == "STT_OBJECT"]
        return [s.name for s in sorted(syms, key=lambda s: s["st_value"])]


def _patched(tmp_path: Path, src: Path, edit) -> Path:
    """A copy of ``src`` with ``edit(bytearray, elf)`` applied."""
    data = bytearray(src.read_bytes())
    with open(src, "rb") as f:
        edit(data, ELFFile(f))
    out = tmp_path / src.name
    out.write_bytes(bytes(data))
    return out


# ---------------------------------------------------------------- BTF-defined maps

def test_cilium_like_btf_maps():
    path = FIXTURES / "cilium_maps.bpf.o"
    maps = bo.read_object(path)
    assert [m.name for m in maps] == _symbol_order(path, ".maps")
    got = {m.name: _spec(m) for m in maps}
    assert got == {
        # __type(key, struct ipv4_ct_tuple): __packed 4+4+2+2+1+1 = 14 (typedef'd __be32_t);
        # struct ct_entry 2*8 + 4*4 + 2*2 + u8[4] = 40; pinning LIBBPF_PIN_BY_NAME = 1
        "cilium_ct4_global": ("LRU_HASH", 14, 40, 524288, 0, 0, 0, 1),
        # struct lb4_key 4 + const u16 (cport_t) + u16 + u8 + u8 + u8[2] = 12; lb4_service 12
        "cilium_lb4_services_v2": ("HASH", 12, 12, 65536, u.BPF_F_NO_PREALLOC, 0, 0, 1),
        # ipcache_key: u32 header + u16 + u8 + u8 + union{u32, u32[4]} = 24;
        # remote_endpoint_info 4 + 16 + 1 + 1 = 22, padded to 4-byte alignment = 24
        "cilium_ipcache": ("LPM_TRIE", 24, 24, 512000,
                           u.BPF_F_NO_PREALLOC | u.BPF_F_RDONLY_PROG, 0, 0, 1),
        "cilium_metrics": ("PERCPU_HASH", 8, 16, 1024, 0, 0, 0, 0),
        # __uint(key_size, sizeof(__u32)), __uint(value_size, 64): sizes without BTF types
        "cilium_scratch": ("PERCPU_ARRAY", 4, 64, 1, 0, 0, 0, 0),
        # PERF_EVENT_ARRAY without max_entries: 0 until load (map_set_def_max_entries())
        "cilium_events": ("PERF_EVENT_ARRAY", 4, 4, 0, 0, 0, 0, 0),
        "cilium_calls": ("PROG_ARRAY", 4, 4, 64, 0, 0, 0, 1),
        # bloom filter: no key, __type(value, __u32), map_extra = 3 hash functions
        "cilium_seen_ids": ("BLOOM_FILTER", 0, 4, 10000, 0, 3, 0, 0),
        "cilium_nodeport_neigh4": ("LRU_PERCPU_HASH", 8, 4, 8192,
                                   u.BPF_F_NUMA_NODE | u.BPF_F_NO_COMMON_LRU, 0, 1, 0),
    }
    m = _by_name(maps)
    ct = m["cilium_ct4_global"]
    assert (ct.origin, ct.section, ct.autocreate) == (bo.ORIGIN_BTF, ".maps", True)
    assert ct.pin_path == "/sys/fs/bpf/cilium_ct4_global" and m["cilium_metrics"].pin_path is None
    assert (ct.key_type, ct.value_type) == ("struct ipv4_ct_tuple", "struct ct_entry")
    b = btf.load(path)
    assert b.type(ct.btf_key_type_id).name == "ipv4_ct_tuple"
    assert (m["cilium_scratch"].btf_key_type_id, m["cilium_scratch"].btf_value_type_id) == (0, 0)
    assert m["cilium_nodeport_neigh4"].key_type == "__u64"


def test_map_in_map_inner_specs_and_values():
    path = FIXTURES / "map_in_map.bpf.o"
    maps = bo.read_object(path)
    assert [m.name for m in maps] == _symbol_order(path, ".maps")
    m = _by_name(maps)
    # struct inner_array: ARRAY, 16 x (__u32 -> __u64)
    assert _spec(m["inner_a"]) == _spec(m["inner_b"]) == ("ARRAY", 4, 8, 16, 0, 0, 0, 0)
    outer = m["outer_arr"]
    # __array(values, ...) makes the value a 4-byte map fd (parse_btf_map_def())
    assert _spec(outer) == ("ARRAY_OF_MAPS", 4, 4, 4, 0, 0, 0, 0)
    assert outer.inner is not None and outer.inner.name == "outer_arr.inner"
    assert _spec(outer.inner) == ("ARRAY", 4, 8, 16, 0, 0, 0, 0)
    assert outer.inner.autocreate is False          # created with the outer map only
    assert outer.init_slots == ((0, "inner_a"), (2, "inner_b"))  # .values = {[0]=, [2]=}
    h = m["outer_hash"]
    assert _spec(h) == ("HASH_OF_MAPS", 4, 4, 64, u.BPF_F_NO_PREALLOC, 0, 0, 0)
    # anonymous inner spec: HASH, __u32 -> __u32[6] (24 bytes), 128 entries, no prealloc
    assert _spec(h.inner) == ("HASH", 4, 24, 128, u.BPF_F_NO_PREALLOC, 0, 0, 0)
    assert h.inner.value_type == "__u32[6]" and h.init_slots == ()
    jt = m["jmp_table"]
    assert _spec(jt) == ("PROG_ARRAY", 4, 4, 8, 0, 0, 0, 0)
    assert jt.init_slots == ((1, "tail_prog"),) and jt.inner is None
    d = outer.as_dict()
    assert d["type"] == "ARRAY_OF_MAPS" and d["inner"]["type"] == "ARRAY"
    assert d["init_slots"] == [[0, "inner_a"], [2, "inner_b"]]


def test_ringbuf_sizes_perf_arrays_and_pinning():
    path = FIXTURES / "ringbuf_perf.bpf.o"
    maps = bo.read_object(path)
    assert [m.name for m in maps] == _symbol_order(path, ".maps")
    got = {m.name: _spec(m) for m in maps}
    assert got == {
        # adjust_ringbuf_sz(): 256 KiB = 64 pages, a power of two: kept
        "events_rb": ("RINGBUF", 0, 0, 262144, 0, 0, 0, 0),
        # 3*4096+1 is not a page multiple: the smallest 2^k pages above it = 4 pages
        "odd_rb": ("RINGBUF", 0, 0, 16384, 0, 0, 0, 0),
        "user_rb": ("USER_RINGBUF", 0, 0, 8192, 0, 0, 0, 0),       # 5000 -> 2 pages
        "perf_events": ("PERF_EVENT_ARRAY", 4, 4, 0, 0, 0, 0, 0),
        "perf_fixed": ("PERF_EVENT_ARRAY", 4, 4, 8, 0, 0, 0, 0),
        # struct flow_key 4+4+2+2+1 = 13 -> 16 (4-aligned); flow_stats_t 3 x u64 = 24
        "pinned_flows": ("HASH", 16, 24, 4096, 0, 0, 0, 1),
    }
    assert _by_name(maps)["pinned_flows"].value_type == "flow_stats_t"
    # on 64 KiB pages: 262144 is 4 pages (kept); 12289 and 5000 become one 64 KiB page
    big = {m.name: m.max_entries for m in bo.read_object(path, page_size=65536)}
    assert (big["events_rb"], big["odd_rb"], big["user_rb"]) == (262144, 65536, 65536)


def test_load_time_adjustments():
    maps = bo.read_object(FIXTURES / "ringbuf_perf.bpf.o")
    created = _by_name(bo.maps_to_create(maps, possible_cpus=6))
    # map_set_def_max_entries(): PERF_EVENT_ARRAY with max_entries 0 -> possible CPUs
    assert created["perf_events"].max_entries == 6
    assert created["perf_fixed"].max_entries == 8                     # set: kept
    # bpf_object__create_map(): PERF_EVENT_ARRAY is created without BTF type ids
    assert (created["perf_fixed"].btf_key_type_id, created["perf_fixed"].btf_value_type_id) == (0, 0)
    assert created["pinned_flows"].btf_key_type_id != 0                # HASH keeps them
    assert _by_name(maps)["perf_events"].max_entries == 0             # the open-time list is kept
    mim = _by_name(bo.maps_to_create(bo.read_object(FIXTURES / "map_in_map.bpf.o"),
                                     possible_cpus=2))
    assert mim["outer_arr"].btf_key_type_id == 0 and mim["outer_arr"].inner.btf_key_type_id != 0
    with pytest.raises(ValueError, match="at least 1"):
        bo.maps_to_create(maps, possible_cpus=0)


# ---------------------------------------------------------------- global data

def test_global_data_maps():
    path = FIXTURES / "global_data.bpf.o"
    maps = bo.read_object(path)
    with open(path, "rb") as f:
        sec_order = [s.name for s in ELFFile(f).iter_sections()]
    data_secs = [m.section for m in maps[:-1]]
    assert data_secs == sorted(data_secs, key=sec_order.index)         # ELF section order
    assert maps[-1].section == ".kconfig"                              # then the kconfig map
    rdonly, mmap = u.BPF_F_RDONLY_PROG, u.BPF_F_MMAPABLE
    got = {m.section: (m.name, m.value_size, m.map_flags) for m in maps}
    assert got == {
        # internal_map_name(): object name "global_data" (basename up to the first dot);
        # 7 characters reserved for the suffix leave 8 of the prefix: "global_d" + ".bss"
        ".bss": ("global_d.bss", 32, mmap),           # u64 + u32[6]
        ".data": ("global_d.data", 24, mmap),         # u32 @0, u64[2] @8
        # .rodata/.kconfig are BPF_F_RDONLY_PROG; with a non-hidden global: mmapable
        ".rodata": ("global_d.rodata", 16, rdonly | mmap),
        # two dots: a custom section keeps its own name, no prefix
        ".data.custom": (".data.custom", 4, mmap),
        ".rodata.tag": (".rodata.tag", 10, rdonly | mmap),
        # only a __hidden global (made static by btf_fixup_datasec()) and a static:
        # not mmapable (map_is_mmapable())
        ".data.priv": (".data.priv", 8, 0),
        # "getpid\n" + NUL; string literals have no DATASEC, so no BTF and no mmap
        ".rodata.str1.1": (".rodata.str1.1", 8, rdonly),
        # bpf_object__collect_externs(): sort by alignment desc, size asc, name:
        # CONFIG_NR_CPUS u64 @0; CONFIG_HZ int @8; LINUX_KERNEL_VERSION u32 @12;
        # CONFIG_BPF_SYSCALL bool @16; CONFIG_DEFAULT_HOSTNAME char[16] @17 -> 33 bytes.
        # ".kconfig" is 8 characters, leaving 7 of the object name.
        ".kconfig": ("global_.kconfig", 33, rdonly | mmap),
    }
    for m in maps:
        assert (m.type_name, m.key_size, m.max_entries, m.origin) == \
            ("ARRAY", 4, 1, bo.ORIGIN_GLOBAL_DATA)
    by_sec = {m.section: m for m in maps}
    assert by_sec[".rodata.str1.1"].btf_value_type_id == 0
    b = btf.load(path)
    assert b.type(by_sec[".bss"].btf_value_type_id).name == ".bss"      # its DATASEC


def test_internal_map_names_from_the_file_name(tmp_path):
    short = tmp_path / "gd.o"
    shutil.copy(FIXTURES / "global_data.bpf.o", short)
    names = {m.section: m.name for m in bo.read_object(short)}
    # object name "gd": the whole prefix fits
    assert (names[".bss"], names[".kconfig"], names[".data.custom"]) == \
        ("gd.bss", "gd.kconfig", ".data.custom")
    odd = tmp_path / "my-prog+x.o"
    shutil.copy(FIXTURES / "global_data.bpf.o", odd)
    # characters the kernel refuses in map names become '_'
    assert {m.section: m.name for m in bo.read_object(odd)}[".bss"] == "my_prog_.bss"


# ---------------------------------------------------------------- legacy and struct_ops

def test_legacy_maps_section():
    path = FIXTURES / "legacy_maps.bpf.o"
    maps = bo.read_object(path)
    assert [m.name for m in maps] == _symbol_order(path, "maps")
    assert {m.name: _spec(m) for m in maps} == {
        "legacy_hash": ("HASH", 4, 8, 10240, u.BPF_F_NO_PREALLOC, 0, 0, 0),
        "legacy_array": ("PERCPU_ARRAY", 4, 32, 256, 0, 0, 0, 0),
        "legacy_perf": ("PERF_EVENT_ARRAY", 4, 4, 0, 0, 0, 0, 0),
    }
    assert {(m.origin, m.section) for m in maps} == {(bo.ORIGIN_LEGACY, "maps")}
    assert _by_name(bo.maps_to_create(maps, possible_cpus=4))["legacy_perf"].max_entries == 4


def test_iproute2_map_defs(tmp_path):
    path = FIXTURES / "iproute2_maps.bpf.o"
    # 36-byte struct bpf_elf_map records with pinning = PIN_GLOBAL_NS (2): refused
    with pytest.raises(ValueError, match=r"iproute2_maps.bpf.o: section maps: map "
                                         r"'tc_counters' \(legacy\): unrecognized, non-zero"):
        bo.read_object(path)

    def zero_pinning(data, elf):
        sec = elf.get_section_by_name("maps")
        off = sec["sh_offset"] + 24                     # pinning: 7th u32
        assert struct.unpack_from("<I", data, off)[0] == 2
        struct.pack_into("<I", data, off, 0)
    maps = bo.read_object(_patched(tmp_path, path, zero_pinning))
    # zero extras: the first 20 bytes are a struct bpf_map_def
    assert [(m.name, _spec(m)) for m in maps] == [("tc_counters", ("HASH", 4, 8, 1024, 0, 0, 0, 0))]


def test_struct_ops_maps():
    path = FIXTURES / "struct_ops.bpf.o"
    maps = bo.read_object(path)
    # init_struct_ops_maps(): key 4, value = the BPF-side struct (4 pointers + char[16] +
    # u32 = 52, padded to 8 = 56), one entry; .struct_ops.link adds BPF_F_LINK;
    # "?.struct_ops" maps are not auto-created
    got = {m.name: (m.section, _spec(m), m.autocreate) for m in maps}
    assert got == {
        "fixture_cc": (".struct_ops", ("STRUCT_OPS", 4, 56, 1, 0, 0, 0, 0), True),
        "fixture_cc_link": (".struct_ops.link", ("STRUCT_OPS", 4, 56, 1, u.BPF_F_LINK, 0, 0, 0), True),
        "fixture_cc_off": ("?.struct_ops", ("STRUCT_OPS", 4, 56, 1, 0, 0, 0, 0), False),
    }
    assert {m.st_ops_type for m in maps} == {"tcp_congestion_ops"}
    with pytest.raises(ValueError, match="bpf_struct_ops_tcp_congestion_ops; pass the kernel's BTF"):
        bo.maps_to_create(maps, possible_cpus=2)
    # bpf_map__init_kern_struct_ops(): value_size = sizeof(struct bpf_struct_ops_<name>)
    # of the kernel; a stand-in vmlinux where that struct has 264 bytes
    vb = btf.BtfBuilder()
    vb.struct("bpf_struct_ops_tcp_congestion_ops", 264, [])
    created = bo.maps_to_create(maps, possible_cpus=2, vmlinux=btf.Btf(vb.build()))
    assert [(m.name, m.value_size, m.btf_value_type_id) for m in created] == \
        [("fixture_cc", 264, 0), ("fixture_cc_link", 264, 0)]
    with pytest.raises(ValueError, match="not in the kernel's BTF"):
        bo.maps_to_create(maps, possible_cpus=2, vmlinux=btf.Btf(btf.BtfBuilder().build()))


@pytest.mark.skipif(not os.path.exists(btf.VMLINUX), reason=f"{btf.VMLINUX} missing")
def test_struct_ops_value_size_from_host_btf():
    vmlinux = btf.load()
    want = vmlinux.struct_size("bpf_struct_ops_tcp_congestion_ops")
    if want is None:
        pytest.skip("host kernel BTF has no struct bpf_struct_ops_tcp_congestion_ops")
    created = bo.maps_to_create(bo.read_object(FIXTURES / "struct_ops.bpf.o"), possible_cpus=2,
                                vmlinux=vmlinux)
    # the kernel's value wraps struct tcp_congestion_ops after a refcount and state
    assert {m.value_size for m in created} == {want}
    assert want > vmlinux.struct_size("tcp_congestion_ops")


# ---------------------------------------------------------------- setters and overrides

def test_adjust_ringbuf_sz():
    assert bo.adjust_ringbuf_sz(0) == 0                     # left for the kernel to refuse
    assert bo.adjust_ringbuf_sz(4096) == 4096
    assert bo.adjust_ringbuf_sz(4097) == 8192
    assert bo.adjust_ringbuf_sz(3 * 4096) == 16384          # 3 pages: not a power of two
    assert bo.adjust_ringbuf_sz(1 << 31) == 1 << 31
    # above 2^31 no power-of-two page count fits a u32: kept as given
    assert bo.adjust_ringbuf_sz(0xFFFFF001) == 0xFFFFF001
    assert bo.adjust_ringbuf_sz(100, page_size=65536) == 65536


def test_set_max_entries_and_autocreate():
    maps = bo.read_object(FIXTURES / "ringbuf_perf.bpf.o")
    assert bo.set_max_entries(maps, "pinned_flows", 10).max_entries == 10
    # bpf_map__set_max_entries() rounds ring buffers like the open did
    assert bo.set_max_entries(maps, "odd_rb", 5000).max_entries == 8192
    assert bo.set_max_entries(maps, "odd_rb", 5000, page_size=16384).max_entries == 16384
    bo.set_autocreate(maps, "user_rb", False)
    assert "user_rb" not in {m.name for m in bo.maps_to_create(maps, possible_cpus=1)}
    with pytest.raises(ValueError, match="unknown map 'nope' \\(maps: pinned_flows, events_rb"):
        bo.set_max_entries(maps, "nope", 1)
    for bad in (-1, 1 << 32, 1.5, True):
        with pytest.raises(ValueError, match="pinned_flows.max_entries"):
            bo.set_max_entries(maps, "pinned_flows", bad)
    with pytest.raises(ValueError, match="power of two"):
        bo.set_max_entries(maps, "odd_rb", 1, page_size=3000)


def test_parse_and_apply_overrides():
    assert bo.parse_override("cilium_ct4_global.max_entries=65536") == \
        ("cilium_ct4_global", "max_entries", 65536)
    assert bo.parse_override(" .data.custom.map_flags = 0x400") == (".data.custom", "map_flags", 1024)
    assert bo.parse_override("x.autocreate=false") == ("x", "autocreate", 0)
    assert bo.parse_override("x.map_extra=18446744073709551615") == ("x", "map_extra", 2**64 - 1)
    for text, msg in [
        ("nodot=5", "expected NAME.FIELD=VALUE"),
        ("x.max_entries", "expected NAME.FIELD=VALUE"),
        (".max_entries=1", "expected NAME.FIELD=VALUE"),
        ("x.bogus=1", "unknown field 'bogus'"),
        ("x.max_entries=abc", "bad number 'abc'"),
        ("x.max_entries=", "bad number ''"),
        ("x.max_entries=4294967296", "4294967296 is outside 0..4294967295"),
        ("x.max_entries=-1", "-1 is outside"),
        ("x.map_extra=18446744073709551616", "outside 0..18446744073709551615"),
        ("x.autocreate=2", "2 is outside 0..1"),
    ]:
        with pytest.raises(ValueError, match=msg):
            bo.parse_override(text)
    maps = bo.read_object(FIXTURES / "map_in_map.bpf.o")
    bo.apply_overrides(maps, ["outer_hash.max_entries=1000", "outer_hash.inner.max_entries=4",
                              "inner_b.autocreate=0", "inner_a.map_flags=0x400",
                              "inner_a.numa_node=3", "outer_arr.map_extra=7"])
    m = _by_name(maps)
    assert (m["outer_hash"].max_entries, m["outer_hash"].inner.max_entries) == (1000, 4)
    assert (m["inner_b"].autocreate, m["inner_a"].map_flags, m["inner_a"].numa_node,
            m["outer_arr"].map_extra) == (False, 0x400, 3, 7)
    with pytest.raises(ValueError, match="unknown map 'missing'"):
        bo.apply_overrides(maps, ["missing.max_entries=1"])


# ---------------------------------------------------------------- malformed input

def test_refused_objects(tmp_path):
    with pytest.raises(ValueError, match=r"bad_inner_fwd.bpf.o: section .maps: map "
                                         r"'outer.inner': can't determine value size"):
        bo.read_object(FIXTURES / "bad_inner_fwd.bpf.o")
    with pytest.raises(ValueError, match="not an ELF file"):
        bo.read_object(FIXTURES / "cilium_maps.bpf.c")
    with pytest.raises(ValueError, match="not a BPF object file"):
        bo.read_object(os.path.realpath(sys.executable))
    with pytest.raises(FileNotFoundError):
        bo.read_object(tmp_path / "missing.o")
    cilium = FIXTURES / "cilium_maps.bpf.o"

    def rename(old: bytes, new: bytes):
        def edit(data, _elf):
            data[:] = data.replace(old, new)
        return edit
    # without .BTF, BTF-defined maps cannot be read
    with pytest.raises(ValueError, match="section .maps: BTF-defined maps need a .BTF section"):
        bo.read_object(_patched(tmp_path, cilium, rename(b".BTF\0", b".XTF\0")))
    # parse_btf_map_def() in strict mode: an unknown field is refused
    with pytest.raises(ValueError, match="map 'cilium_ct4_global': unknown field 'pinnin_'"):
        bo.read_object(_patched(tmp_path, cilium, rename(b"pinning\0", b"pinnin_\0")))

    # a global in BTF whose ELF symbol is STB_LOCAL: btf_fixup_datasec() finds no
    # global symbol to place it
    def make_static(data, elf):
        symtab = elf.get_section_by_name(".symtab")
        i = next(i for i, s in enumerate(symtab.iter_symbols()) if s.name == "legacy_hash")
        off = symtab["sh_offset"] + 24 * i + 4                   # st_info
        data[off] = (0 << 4) | (data[off] & 0xF)
    with pytest.raises(ValueError, match="legacy_maps.bpf.o: section maps: no ELF symbol "
                                         "for VAR 'legacy_hash'"):
        bo.read_object(_patched(tmp_path, FIXTURES / "legacy_maps.bpf.o", make_static))


def test_fuzz_truncated_and_corrupted_objects(tmp_path):
    """Truncations and seeded byte corruption of every fixture: read_object returns maps
    or raises ValueError, never another exception."""
    rng = random.Random(11)
    target = tmp_path / "x.bpf.o"
    for obj in OBJECTS:
        data = obj.read_bytes()
        cases = [data[:n] for n in range(0, len(data), max(1, len(data) // 40))]
        for _ in range(40):
            d = bytearray(data)
            for _ in range(rng.randint(1, 6)):
                d[rng.randrange(len(d))] = rng.randrange(256)
            cases.append(bytes(d))
        for case in cases:
            target.write_bytes(case)
            try:
                bo.read_object(target)
            except ValueError:
                pass


def _no_ids(d):
    d = {k: v for k, v in d.items() if not k.startswith("btf_")}
    if d["inner"] is not None:
        d["inner"] = _no_ids(d["inner"])
    return d


def test_fixtures_match_their_sources(tmp_path):
    """The committed objects are what `make fixtures` builds from the committed sources
    (compared through read_object; needs clang and libbpf-dev, else skipped)."""
    clang = shutil.which("clang")
    if clang is None or not os.path.exists("/usr/include/bpf/bpf_helpers.h"):
        pytest.skip("clang or libbpf-dev (bpf_helpers.h) not installed")
    arch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip()
    for src in sorted(FIXTURES.glob("*.bpf.c")):
        out = tmp_path / src.name.replace(".c", ".o")
        subprocess.run([clang, "-target", "bpf", "-g", "-O2", f"-I/usr/include/{arch}", "-c",
                        str(src), "-o", str(out)], check=True)
        committed = FIXTURES / out.name

        def read(p):
            """The specs without BTF type ids and order, which another clang may change."""
            try:
                return sorted((_no_ids(m.as_dict()) for m in bo.read_object(p)),
                              key=lambda d: d["name"])
            except ValueError as e:
                return str(e).replace(str(p), "")
        assert read(out) == read(committed), src.name
