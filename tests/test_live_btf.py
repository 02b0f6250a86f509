"""BTF parser: a hand-built blob with known layout, and the host's vmlinux BTF."""
import os
import struct

import pytest

from pybpfmem.live import btf


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


def test_tiny_blob_header_and_types():
    blob, ids = _tiny()
    # header: magic, version 1, flags 0, hdr_len 24 (Documentation/bpf/btf.rst)
    assert struct.unpack_from("<HBBI", blob, 0) == (0xEB9F, 1, 0, 24)
    b = btf.Btf(blob)
    assert len(b) == 8
    assert b.type(ids["s"]).kind_name == "STRUCT" and b.type(ids["s"]).name == "s"
    assert b.type(ids["e"]).members[1][1] == 7  # BLUE = 7
    assert b.string(b.type(ids["e"]).members[1][0]) == "BLUE"


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


def test_big_endian_blob_parses():
    blob, ids = _tiny()
    # re-encode every u32 of header/type section big-endian; strings unchanged
    hdr = struct.unpack_from("<HBBIIIII", blob, 0)
    tlen, slen = hdr[5], hdr[7]
    words = struct.unpack_from(f"<{tlen // 4}I", blob, 24)
    be = struct.pack(">HBBIIIII", *hdr) + struct.pack(f">{tlen // 4}I", *words) + blob[24 + tlen:]
    # the two int encodings for enum values are signed: identical bit patterns, fine
    b = btf.Btf(be)
    assert b.endian == ">" and b.struct_size("s") == 32


@pytest.mark.parametrize("mutate, msg", [
    (lambda d: b"\x00\x00" + d[2:], "magic"),
    (lambda d: d[:10], "shorter"),
    (lambda d: d[:-3], "past the end"),
])
def test_corrupt_blobs_raise(mutate, msg):
    blob, _ = _tiny()
    with pytest.raises(btf.BtfError, match=msg):
        btf.Btf(mutate(blob))


def test_unknown_kind_rejected():
    blob, _ = _tiny()
    d = bytearray(blob)
    struct.pack_into("<I", d, 24 + 4, 31 << 24)  # first type: kind 31
    with pytest.raises(btf.BtfError, match="unknown kind"):
        btf.Btf(bytes(d))


VMLINUX = "/sys/kernel/btf/vmlinux"


@pytest.mark.skipif(not os.path.exists(VMLINUX), reason=f"{VMLINUX} missing (kernel built without CONFIG_DEBUG_INFO_BTF)")
def test_host_struct_sizes():
    sizes = btf.host_struct_sizes()
    # Invariants that hold on any 64-bit kernel, not values copied from a run:
    # struct bucket = { hlist_nulls_head (8), rqspinlock/raw_spinlock (4..8) } padded -> 16;
    # bpf_array/bpf_htab/bpf_ringbuf_map embed struct bpf_map first, so they are larger.
    assert sizes["bucket"] == 16
    for outer in ("bpf_array", "bpf_htab", "bpf_ringbuf_map", "bpf_queue_stack", "lpm_trie"):
        assert sizes[outer] > sizes["bpf_map"]
    b = btf.load()
    assert b.member_offset("bpf_array", "map") == 0
    # sizeof(struct bpf_array) = offset of its flexible value[] tail union, padded to 8
    assert sizes["bpf_array"] % 8 == 0
    assert len(b) > 10000
