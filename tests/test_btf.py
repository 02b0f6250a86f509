"""The BTF reader: hand-built blobs of known layout, every kind, malformed input, ELF .BTF
sections of the committed BPF fixtures, and the host's vmlinux BTF."""
import os
import random
import struct
from pathlib import Path

import pytest

from pybpfmem import btf

FIXTURES = Path(__file__).parent / "fixtures" / "bpf"


def _tiny() -> tuple[bytes, dict[str, int]]:
    b = btf.BtfBuilder()
    ids = {}
    ids["int"] = b.int_("int", 4, signed=True)          # id 1
    ids["char"] = b.int_("char", 1)                     # id 2
    ids["ptr"] = b.ptr(ids["char"])                     # id 3
    ids["arr"] = b.array(ids["char"], ids["int"], 10)   # id 4: char[10]
    ids["td"] = b.typedef("u32_t", ids["int"])          # id 5
    ids["cst"] = b.const(ids["td"])                     # id 6
    # struct s { int a; char *p; char name[10]; } : 0,8,16 -> size 32 (padded to 8)
    ids["s"] = b.struct("s", 32, [("a", ids["int"], 0), ("p", ids["ptr"], 8),
                                  ("name", ids["arr"], 16)])
    ids["e"] = b.enum("color", 4, [("RED", 0), ("BLUE", 7)])
    return b.build(), ids


def _every_kind() -> tuple[bytes, dict[str, int]]:
    """One type of each of the 19 kinds, with the layouts the assertions below derive."""
    b = btf.BtfBuilder()
    i = {}
    i["u8"] = b.int_("unsigned char", 1)
    i["u32"] = b.int_("unsigned int", 4)
    i["s64"] = b.int_("long long", 8, signed=True)
    i["bool"] = b.int_("_Bool", 1, encoding=btf.INT_BOOL)
    i["dbl"] = b.float_("double", 8)
    i["vol"] = b.volatile(i["s64"])
    i["rst"] = b.restrict(b.ptr(i["u8"]))
    i["tag"] = b.type_tag("user", i["u32"])
    i["td"] = b.typedef("__u32", i["tag"])
    i["arr2d"] = b.array(b.array(i["u32"], i["u32"], 3), i["u32"], 4)     # u32[4][3]
    # struct packed_s { u8 a; u32 b; } __packed: b at byte 1 -> size 5, alignment 1
    i["packed"] = b.struct("packed_s", 5, [("a", i["u8"], 0), ("b", i["u32"], 1)])
    # struct bits { u32 lo:3; u32 hi:5; long long v; } -> v at 8, size 16
    i["bits"] = b.struct("bits", 16, [("lo", i["u32"], 0, 3), ("hi", i["u32"], 3, 5),
                                      ("v", i["vol"], 64, 0)])
    i["un"] = b.struct("u", 8, [("x", i["u32"], 0), ("y", i["dbl"], 0)], union=True)
    i["fwd"] = b.fwd("opaque")
    i["fwd_u"] = b.fwd("opaque_u", union=True)
    i["e_signed"] = b.enum("sign", 4, [("NEG", -2), ("POS", 3)], signed=True)
    i["e64"] = b.enum64("big", 8, [("HUGE", (5 << 32) | 9)])
    i["e64s"] = b.enum64("bigs", 8, [("MINUS_ONE", -1)], signed=True)
    i["proto"] = b.func_proto(i["u32"], [("ctx", i["rst"]), ("", 0)])
    i["func"] = b.func("prog", i["proto"], linkage=1)
    i["var"] = b.var("counter", i["td"], btf.VAR_GLOBAL_ALLOCATED)
    i["svar"] = b.var("hidden", i["u8"], btf.VAR_STATIC)
    i["dsec"] = b.datasec(".data", 8, [(i["var"], 0, 4), (i["svar"], 4, 1)])
    i["dtag"] = b.decl_tag("kfunc", i["var"])
    i["cst"] = b.const(i["vol"])
    return b.build(), i


def test_tiny_blob_header_and_types():
    blob, ids = _tiny()
    # header: magic, version 1, flags 0, hdr_len 24 (Documentation/bpf/btf.rst)
    assert struct.unpack_from("<HBBI", blob, 0) == (0xEB9F, 1, 0, 24)
    b = btf.Btf(blob)
    assert len(b) == 8
    assert b.type(ids["s"]).kind_name == "STRUCT" and b.type(ids["s"]).name == "s"
    assert b.type(ids["e"]).items[1] == btf.EnumValue("BLUE", 7)
    assert [m.name for m in b.type(ids["s"]).members] == ["a", "p", "name"]


def test_tiny_blob_sizes():
    blob, ids = _tiny()
    b = btf.Btf(blob)
    assert b.sizeof(ids["int"]) == 4
    assert b.sizeof(ids["ptr"]) == 8          # 64-bit pointers
    assert b.sizeof(ids["arr"]) == 10         # 10 x char
    assert b.sizeof(ids["cst"]) == 4          # const -> typedef -> int
    assert b.struct_size("s") == 32
    assert b.member_offset("s", "name") == 16
    assert b.struct_size("nope") is None
    assert btf.Btf(blob, ptr_size=4).sizeof(ids["ptr"]) == 4


def test_every_kind_decodes_and_resolves():
    blob, i = _every_kind()
    b = btf.Btf(blob)
    assert len(b) == max(i.values()) == 27
    assert {t.kind_name for t in b.types()} == set(btf.KINDS.values()) - {"UNKN"}
    # sizes: modifiers, type tags, typedefs, VARs and DECL_TAGs are looked through
    assert b.sizeof(i["vol"]) == 8 and b.sizeof(i["tag"]) == 4 and b.sizeof(i["td"]) == 4
    assert b.sizeof(i["var"]) == 4 and b.sizeof(i["dtag"]) == 4
    assert b.sizeof(i["rst"]) == 8                         # restrict pointer
    assert b.sizeof(i["arr2d"]) == 4 * 3 * 4               # u32[4][3] = 48
    assert b.sizeof(i["dbl"]) == 8 and b.sizeof(i["dsec"]) == 8
    assert b.sizeof(i["e64"]) == 8 and b.sizeof(i["un"]) == 8
    for no_size in ("fwd", "proto", "func"):
        with pytest.raises(btf.BtfError, match="has no size"):
            b.sizeof(i[no_size])
    with pytest.raises(btf.BtfError, match="has no size"):
        b.sizeof(0)                                        # void
    # alignment (btf__align_of): ints min(ptr, size); packed struct 1; union max member
    assert b.align_of(i["td"]) == 4 and b.align_of(i["s64"]) == 8
    assert b.align_of(i["packed"]) == 1                    # b at byte 1: misaligned u32
    assert b.align_of(i["bits"]) == 8 and b.align_of(i["un"]) == 8
    assert b.align_of(i["arr2d"]) == 4
    # members: kind_flag bitfields split offset and size
    lo, hi, v = b.type(i["bits"]).members
    assert (lo.bit_offset, lo.bitfield_size, hi.bit_offset, hi.bitfield_size) == (0, 3, 3, 5)
    assert v.offset == 8 and v.bitfield_size == 0
    # enums: kind_flag = signed; ENUM64 values are hi << 32 | lo
    assert b.type(i["e_signed"]).items == (btf.EnumValue("NEG", -2), btf.EnumValue("POS", 3))
    assert b.type(i["e64"]).items[0].value == 5 * 2**32 + 9
    assert b.type(i["e64s"]).items[0].value == -1
    # functions, variables, sections, tags
    assert b.type(i["proto"]).items == (btf.Param("ctx", i["rst"]), btf.Param("", 0))
    assert b.type(i["func"]).linkage == 1 and b.type(i["func"]).size_or_type == i["proto"]
    assert b.type(i["var"]).linkage == btf.VAR_GLOBAL_ALLOCATED
    assert b.type(i["svar"]).linkage == btf.VAR_STATIC
    assert b.type(i["dsec"]).items == (btf.VarSecinfo(i["var"], 0, 4),
                                       btf.VarSecinfo(i["svar"], 4, 1))
    assert b.type(i["dtag"]).extra == (-1,)
    assert b.type(i["bool"]).extra == (btf.INT_BOOL, 0, 8)
    # lookups and C spellings
    assert b.find("counter", "VAR") == [i["var"]] and b.find("counter", "STRUCT") == []
    assert b.find(".data", None) == [i["dsec"]]
    assert b.skip_mods_and_typedefs(i["td"]) == i["u32"]
    assert b.type_name(i["arr2d"]) == "unsigned int[4][3]"
    assert b.type_name(i["cst"]) == "const volatile long long" and b.sizeof(i["cst"]) == 8
    assert b.type_name(i["rst"]) == "restrict unsigned char *"
    assert b.type_name(i["fwd_u"]) == "union opaque_u"
    assert b.type_name(i["td"]) == "__u32"
    assert b.first_of_kind("STRUCT") == {"packed_s": i["packed"], "bits": i["bits"]}


def test_resolution_errors_are_btf_errors():
    b = btf.BtfBuilder()
    t_self = b.typedef("loop", 1)                 # id 1 refers to itself
    dangling = b.typedef("dangling", 99)          # no type 99
    u32 = b.int_("u32", 4)
    big = b.array(b.array(u32, u32, 1 << 20), u32, 1 << 20)   # 2^40 u32s
    blob = btf.Btf(b.build())
    with pytest.raises(btf.BtfError, match="deeper"):
        blob.sizeof(t_self)
    with pytest.raises(btf.BtfError, match="deeper"):
        blob.skip_mods_and_typedefs(t_self)
    with pytest.raises(btf.BtfError, match="out of range"):
        blob.sizeof(dangling)
    with pytest.raises(btf.BtfError, match="more than"):
        blob.sizeof(big)
    with pytest.raises(btf.BtfError, match="unknown BTF kind"):
        blob.find("u32", "STRUCTURE")
    with pytest.raises(btf.BtfError, match="out of range"):
        blob.type(0)


def test_big_endian_blob_parses():
    blob, ids = _tiny()
    # re-encode every u32 of header/type section big-endian; strings unchanged
    hdr = struct.unpack_from("<HBBIIIII", blob, 0)
    tlen = hdr[5]
    words = struct.unpack_from(f"<{tlen // 4}I", blob, 24)
    be = struct.pack(">HBBIIIII", *hdr) + struct.pack(f">{tlen // 4}I", *words) + blob[24 + tlen:]
    b = btf.Btf(be)
    assert b.endian == ">" and b.struct_size("s") == 32
    assert b.type(ids["e"]).items[1].value == 7


@pytest.mark.parametrize("mutate, msg", [
    (lambda d: b"\x00\x00" + d[2:], "magic"),
    (lambda d: d[:10], "shorter"),
    (lambda d: d[:-3], "past the end"),
    (lambda d: d[:2] + b"\x02" + d[3:], "version 2"),
    (lambda d: d[:4] + struct.pack("<I", 16) + d[8:], "hdr_len 16"),
    (lambda d: d[:8] + struct.pack("<I", 2) + d[12:], "unaligned"),
    (lambda d: d[:-1] + b"x", "NUL"),
])
def test_corrupt_blobs_raise(mutate, msg):
    blob, _ = _tiny()
    with pytest.raises(btf.BtfError, match=msg):
        btf.Btf(mutate(blob))


def test_unknown_kind_and_bad_name_rejected():
    blob, _ = _tiny()
    d = bytearray(blob)
    struct.pack_into("<I", d, 24 + 4, 31 << 24)  # first type: kind 31
    with pytest.raises(btf.BtfError, match="unknown kind"):
        btf.Btf(bytes(d))
    d = bytearray(blob)
    struct.pack_into("<I", d, 24, 10_000)        # first type's name_off past the strings
    with pytest.raises(btf.BtfError, match="string offset 10000"):
        btf.Btf(bytes(d)).type(1)


def _elf_btf_blob(path: Path) -> bytes:
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        return ELFFile(f).get_section_by_name(".BTF").data()


def _exercise(b: btf.Btf) -> None:
    """Every query on every type: each answers or raises BtfError."""
    for tid in range(0, len(b) + 2):
        for q in (b.type, b.sizeof, b.align_of, b.type_name, b.skip_mods_and_typedefs):
            try:
                q(tid)
            except btf.BtfError:
                pass
    b.first_of_kind("STRUCT")


def test_fuzz_truncated_and_garbage_blobs():
    """Truncations at every length and seeded random corruption of two real blobs:
    parsing and every query either answer or raise BtfError, never anything else."""
    blobs = [_tiny()[0], _every_kind()[0], _elf_btf_blob(FIXTURES / "cilium_maps.bpf.o")]
    for blob in blobs:
        for n in range(0, len(blob), max(1, len(blob) // 300)):
            try:
                _exercise(btf.Btf(blob[:n]))
            except btf.BtfError:
                pass
    rng = random.Random(17)
    for _ in range(400):
        d = bytearray(rng.choice(blobs))
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(d))
            if rng.random() < 0.5:
                d[pos] = rng.randrange(256)
            else:                                   # a whole random u32
                d[pos & ~3: (pos & ~3) + 4] = rng.randbytes(4)
        try:
            _exercise(btf.Btf(bytes(d)))
        except btf.BtfError:
            pass


def test_elf_btf_of_a_bpf_object():
    """The .BTF section of a compiled object (tests/fixtures/bpf/cilium_maps.bpf.c)."""
    b = btf.load(FIXTURES / "cilium_maps.bpf.o")
    assert b.ptr_size == 8                                    # ELFCLASS64
    assert b.struct_size("ipv4_ct_tuple") == 14               # __packed: 4+4+2+2+1+1
    assert b.align_of(b.find("ipv4_ct_tuple")[0]) == 1
    assert b.struct_size("ct_entry") == 40                    # 2*8 + 4*4 + 2*2 + 4
    assert b.member_offset("ct_entry", "tx_flags_seen") == 32
    assert b.struct_size("ipcache_key") == 24                 # 4 + 2+1+1 + union of 16
    assert btf.read_struct_sizes(FIXTURES / "cilium_maps.bpf.o",
                                 ["ct_entry", "lb4_key", "nope"]) == {"ct_entry": 40, "lb4_key": 12}
    every = btf.read_struct_sizes(FIXTURES / "cilium_maps.bpf.o")
    assert every["metrics_value"] == 16 and every["lpm_hdr"] == 4


def test_elf_errors(tmp_path):
    obj = (FIXTURES / "cilium_maps.bpf.o").read_bytes()
    junk = tmp_path / "junk.o"
    junk.write_bytes(obj[:200])                               # header, no section table
    with pytest.raises(btf.BtfError, match="junk.o"):
        btf.load(junk)
    nobtf = tmp_path / "nobtf.o"
    nobtf.write_bytes(obj.replace(b".BTF\0", b".XTF\0"))      # rename the section
    with pytest.raises(btf.BtfError, match="no .BTF section"):
        btf.load(nobtf)
    raw = tmp_path / "raw"
    raw.write_bytes(b"\x9f\xeb\x01")
    with pytest.raises(btf.BtfError, match="raw: BTF blob of 3 bytes"):
        btf.load(raw)
    with pytest.raises(FileNotFoundError):
        btf.load(tmp_path / "missing")


VMLINUX = "/sys/kernel/btf/vmlinux"


@pytest.mark.skipif(not os.path.exists(VMLINUX), reason=f"{VMLINUX} missing (kernel built without CONFIG_DEBUG_INFO_BTF)")
def test_host_struct_sizes():
    names = ("bucket", "bpf_map", "bpf_array", "bpf_htab", "bpf_ringbuf_map", "bpf_queue_stack",
             "lpm_trie", "no_such_struct")
    sizes = btf.read_struct_sizes(VMLINUX, names)
    # Invariants that hold on any 64-bit kernel, not values copied from a run:
    # struct bucket = { hlist_nulls_head (8), rqspinlock/raw_spinlock (4..8) } padded -> 16;
    # bpf_array/bpf_htab/bpf_ringbuf_map embed struct bpf_map first, so they are larger.
    assert sizes["bucket"] == 16 and "no_such_struct" not in sizes
    for outer in ("bpf_array", "bpf_htab", "bpf_ringbuf_map", "bpf_queue_stack", "lpm_trie"):
        assert sizes[outer] > sizes["bpf_map"]
    b = btf.load()
    assert b.member_offset("bpf_array", "map") == 0
    # sizeof(struct bpf_array) = offset of its flexible value[] tail union, padded to 8
    assert sizes["bpf_array"] % 8 == 0
    assert b.align_of(b.find("bpf_map")[0]) == 8
    assert len(b) > 10000
