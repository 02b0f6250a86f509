"""tools/btf_sizes.py on synthetic inputs (BTF blob, vmlinux ELF, bzImage, .deb; objects that gcc
compiles here and a stand-in kernel tree for `compile`), and the committed struct-size data
files (pybpfmem/profiles/structs/*.json) with their recipes, read directly with json."""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pybpfmem.btf import Btf, BtfBuilder, BtfError

ROOT = Path(__file__).resolve().parent.parent
STRUCTS = ROOT / "pybpfmem" / "profiles" / "structs"
REQUIRED_PROFILES = ("5.10", "5.11", "5.15", "6.1", "6.6", "6.8", "6.12", "6.18")


def _load_tool():
    spec = importlib.util.spec_from_file_location("btf_sizes", ROOT / "tools" / "btf_sizes.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["btf_sizes"] = mod          # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


bs = _load_tool()


# --- a synthetic kernel -------------------------------------------------------------------

def _synthetic_btf(*, ringbuf_ptr: bool = False, second_bucket: bool = True,
                   drop: tuple[str, ...] = ()) -> tuple[bytes, dict[str, int]]:
    """A BTF blob with every required struct; plain struct X of size 1000 + its index (so
    every size is distinct), except the ones laid out by hand below."""
    b = BtfBuilder()
    u8 = b.int_("unsigned char", 1)
    u64 = b.int_("long unsigned int", 8)
    ptr = b.ptr(u64)
    want: dict[str, int] = {}
    if second_bucket:   # an unrelated struct bucket first: the signature must skip it
        b.struct("bucket", 40, [("a", u64, 0), ("b", u64, 8)])
    for i, name in enumerate(bs.required_keys()):
        if name in drop or name in bs.COMPUTED or name in ("bucket", "bpf_ringbuf"):
            continue
        size = 1000 + 8 * i
        b.struct(name, size, [("x", u64, 0)])
        want[name] = size
    if "bucket" not in drop:
        # hashtab's bucket: struct hlist_nulls_head head; raw spinlock -> 16 bytes
        b.struct("bucket", 16, [("head", u64, 0), ("raw_lock", u64, 8)])
        want["bucket"] = 16
    # struct bpf_prog { ...; struct bpf_prog_aux *aux @80; union { insns[]; insnsi[] } @96 }
    # sizeof 96 and offsetof(insns) 96 (through the anonymous union)
    insns = b.array(u64, u64, 0)
    union = b.struct("", 0, [("insns", insns, 0), ("insnsi", insns, 0)], union=True)
    b.struct("bpf_prog", 96, [("pages", u8, 0), ("aux", ptr, 80), ("", union, 96)])
    want["bpf_prog"] = 96
    # struct bpf_ringbuf { ...; consumer_pos @8192 (page aligned) ... }:
    # RINGBUF_NR_META_PAGES = (8192 >> 12) + 2 position pages = 4
    cons = ptr if ringbuf_ptr else u64
    b.struct("bpf_ringbuf", 16384, [("mask", u64, 0), ("consumer_pos", cons, 8192),
                                     ("producer_pos", cons, 12288)])
    want["bpf_ringbuf_meta_pages"] = 4
    return b.build(), want


def test_extract_sizes_from_synthetic_btf():
    blob, want = _synthetic_btf()
    sizes, notes, absent = bs.extract_sizes(Btf(blob))
    assert absent == {}
    assert sizes == want
    assert set(notes) == set(bs.COMPUTED)


def test_missing_struct_is_reported_absent():
    blob, want = _synthetic_btf(drop=("bpf_bloom_filter", "memcg_vmstats"))
    sizes, _notes, absent = bs.extract_sizes(Btf(blob))
    assert set(absent) == {"bpf_bloom_filter", "memcg_vmstats"}
    assert "bpf_bloom_filter" not in sizes and sizes == want


def test_ambiguous_struct_name_is_an_error():
    b = BtfBuilder()
    u64 = b.int_("long unsigned int", 8)
    b.struct("file", 184, [("f", u64, 0)])
    b.struct("file", 200, [("g", u64, 0)])
    with pytest.raises(BtfError, match="struct file: 2 definitions of sizes \\[184, 200\\]"):
        bs.find_struct(Btf(b.build()), "file")


def test_pointer_ring_positions_need_a_tool_update():
    blob, _ = _synthetic_btf(ringbuf_ptr=True)
    with pytest.raises(BtfError, match="consumer_pos is a pointer"):
        bs.extract_sizes(Btf(blob))


def test_offsetof_through_nested_anonymous_members():
    b = BtfBuilder()
    u32 = b.int_("unsigned int", 4)
    inner = b.struct("", 8, [("deep", u32, 4)])                   # deep @4 in inner
    mid = b.struct("", 16, [("pad", u32, 0), ("", inner, 8)], union=True)  # inner @8
    outer = b.struct("outer", 40, [("a", u32, 0), ("", mid, 16)])  # mid @16
    t = Btf(b.build())
    assert bs.offsetof(t, outer, "deep") == 16 + 8 + 4
    assert bs.offsetof(t, outer, "missing") is None


# --- containers ---------------------------------------------------------------------------

BANNER = (b"Linux version 6.1.0-99-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian "
          b"12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC "
          b"Debian 6.1.999-1 (2026-01-01)\n\x00")
CONFIG = "# comment\nCONFIG_SMP=y\nCONFIG_NR_CPUS=8192\n# CONFIG_LOCKDEP is not set\n" \
         'CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14) 12.2.0"\n'


def _elf(sections: list[tuple[str, bytes]]) -> bytes:
    """A minimal ELF64 little-endian x86_64 file holding `sections` (PROGBITS) and .shstrtab."""
    names = b"\0"
    offs = []
    for n, _ in sections + [(".shstrtab", b"")]:
        offs.append(len(names))
        names += n.encode() + b"\0"
    body = b""
    placed = []
    pos = 64
    for (_n, data) in sections + [(".shstrtab", names)]:
        placed.append((pos, len(data)))
        body += data
        pos += len(data)
    shoff = (pos + 7) & ~7
    body += b"\0" * (shoff - pos)
    nsec = len(sections) + 2
    ehdr = (b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8 +
            struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, nsec,
                        nsec - 1))
    shdrs = b"\0" * 64
    for i, (off, size) in enumerate(placed):
        stype = 3 if i == len(placed) - 1 else 1          # STRTAB / PROGBITS
        shdrs += struct.pack("<IIQQQQIIQQ", offs[i], stype, 0, 0, off, size, 0, 0, 1, 0)
    return ehdr + body + shdrs


def _vmlinux(blob: bytes, config: str | None = CONFIG) -> bytes:
    rodata = b"\0junk" + BANNER
    if config is not None:   # CONFIG_IKCONFIG: IKCFG_ST <gzip of .config> IKCFG_ED
        rodata += b"IKCFG_ST" + gzip.compress(config.encode()) + b"IKCFG_ED"
    return _elf([(".rodata", rodata), (".BTF", blob)])


def _bzimage(payload_plain: bytes, compress) -> bytes:
    """bzImage-like: boot sector + 1 setup sector, HdrS/protocol 2.15, payload at offset 64
    of the protected-mode code, stream + le32 decompressed size (as the kernel's Makefile)."""
    setup_sects = 1
    payload = compress(payload_plain) + struct.pack("<I", len(payload_plain))
    boot = bytearray(512 * (setup_sects + 1))
    boot[0:2] = b"MZ"
    boot[0x1F1] = setup_sects
    boot[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", boot, 0x206, 0x020F)
    struct.pack_into("<II", boot, 0x248, 64, len(payload))
    return bytes(boot) + b"\xcc" * 64 + payload + b"\0" * 100


def _xz(d: bytes) -> bytes:
    return lzma.compress(d, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)


def test_elf_btf_section_banner_and_ikconfig():
    blob, want = _synthetic_btf()
    u = bs.unpack(_vmlinux(blob), "vmlinux")
    assert u.btf == blob and u.arch == "x86_64" and u.container == "ELF .BTF"
    assert u.release == "6.1.0-99-amd64"
    assert u.version == "#1 SMP PREEMPT_DYNAMIC Debian 6.1.999-1 (2026-01-01)"
    assert u.config["CONFIG_NR_CPUS"] == "8192" and u.config["CONFIG_LOCKDEP"] == "n"


def test_elf_without_btf_is_a_clear_error():
    with pytest.raises(ValueError, match="no .BTF section"):
        bs.unpack(_elf([(".rodata", BANNER)]), "vmlinux")


@pytest.mark.parametrize("name, compress", [("gzip", gzip.compress), ("xz", _xz)])
def test_bzimage_payload(name, compress):
    blob, _ = _synthetic_btf()
    vmlinux = _vmlinux(blob)
    u = bs.unpack(_bzimage(vmlinux, compress), "vmlinuz")
    assert u.container == f"bzImage ({name}) > ELF .BTF"
    assert u.btf == blob and u.release == "6.1.0-99-amd64"


def test_bzimage_size_mismatch_and_bad_payload():
    blob, _ = _synthetic_btf()
    img = bytearray(_bzimage(_vmlinux(blob), gzip.compress))
    _off, length = struct.unpack_from("<II", img, 0x248)
    start = 1024 + 64
    struct.pack_into("<I", img, start + length - 4, 12345)      # wrong appended size
    with pytest.raises(ValueError, match="the image says 12345"):
        bs.unpack(bytes(img), "vmlinuz")
    img[start:start + 4] = b"\0\0\0\0"                             # no known magic
    with pytest.raises(ValueError, match="unknown payload compression"):
        bs.unpack(bytes(img), "vmlinuz")
    old = bytearray(img)
    struct.pack_into("<H", old, 0x206, 0x0206)
    with pytest.raises(ValueError, match="boot protocol 2.6"):
        bs.unpack(bytes(old), "vmlinuz")


def test_compressed_vmlinux_and_garbage():
    blob, _ = _synthetic_btf()
    u = bs.unpack(_xz(_vmlinux(blob)), "vmlinux.xz")
    assert u.container == "xz > ELF .BTF" and u.btf == blob
    with pytest.raises(ValueError, match="neither BTF, ELF, bzImage"):
        bs.unpack(b"hello world, not a kernel" * 40, "junk")
    with pytest.raises(ValueError, match="bad gzip stream"):
        bs.unpack(b"\x1f\x8b\x08" + b"\xff" * 64, "junk.gz")


def _tar_xz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return _xz(raw.getvalue())


def _deb(vmlinuz: bytes) -> bytes:
    control = b"Package: linux-image-6.1.0-99-amd64\nSource: linux-signed-amd64 (6.1.999+1)\n" \
              b"Version: 6.1.999-1\nDescription: Linux 6.1\n multi-line\n"
    members = [("debian-binary", b"2.0\n"),
               ("control.tar.xz", _tar_xz({"./control": control})),
               ("data.tar.xz", _tar_xz({"./boot/config-6.1.0-99-amd64": CONFIG.encode()
                                        .replace(b"8192", b"64"),
                                        "./boot/vmlinuz-6.1.0-99-amd64": vmlinuz}))]
    out = b"!<arch>\n"
    for name, data in members:
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) & 1 else b"")
    return out


def test_deb_package_fields_and_config(tmp_path):
    blob, want = _synthetic_btf()
    deb = _deb(_bzimage(_vmlinux(blob, config=None), _xz))
    u = bs.unpack(deb, "pkg.deb")
    assert u.package == "linux-image-6.1.0-99-amd64" and u.package_version == "6.1.999-1"
    assert u.member == "boot/vmlinuz-6.1.0-99-amd64"
    assert u.container == "deb boot/vmlinuz-6.1.0-99-amd64 > bzImage (xz) > ELF .BTF"
    assert u.config["CONFIG_NR_CPUS"] == "64"          # from boot/config-*, not IKCONFIG
    assert u.extra["package_source"] == "linux-signed-amd64 (6.1.999+1)"


def test_cli_writes_a_complete_record(tmp_path, capsys):
    blob, want = _synthetic_btf()
    deb = _deb(_bzimage(_vmlinux(blob), gzip.compress))
    src = tmp_path / "k.deb"
    src.write_bytes(deb)
    out = tmp_path / "6.1.json"
    rc = bs.main(["extract", str(src), "--profile", "6.1", "--distro", "Debian 12",
                  "--date", "2026-01-02", "-o", str(out)])
    assert rc == 0
    rec = json.loads(out.read_text())
    assert rec["profile"] == "6.1" and rec["sizes"] == want and "absent" not in rec
    p = rec["provenance"]
    assert p["kind"] == "btf" and p["date"] == "2026-01-02" and p["tool"] == "tools/btf_sizes.py"
    assert p["btf_sha256"] == hashlib.sha256(blob).hexdigest()
    assert p["input_sha256"] == hashlib.sha256(deb).hexdigest()
    assert p["kernel_release"] == "6.1.0-99-amd64" and p["arch"] == "x86_64"
    assert p["source"].startswith("Debian 12 linux-image-6.1.0-99-amd64 6.1.999-1 (deb ")
    assert p["config"]["CONFIG_NR_CPUS"] == "64" and p["config"]["CONFIG_MEMCG_V1"] is None
    _check_record(rec, "6.1")


def test_cli_errors(tmp_path, capsys):
    raw = tmp_path / "raw.btf"
    raw.write_bytes(_synthetic_btf()[0])
    assert bs.main(["extract", str(raw), "--profile", "x", "-o", "-"]) == 1
    assert "give --arch" in capsys.readouterr().err
    assert bs.main(["extract", str(raw), "--profile", "x", "--arch", "x86_64", "-o", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["provenance"]["container"] == "raw BTF"
    assert bs.main(["extract", str(tmp_path / "nope"), "--profile", "x"]) == 1
    assert "No such file" in capsys.readouterr().err


# --- compile: DWARF of compiled objects -----------------------------------------------------

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc on this machine")

#: Kernel-like structs whose layouts are worked out by hand in the comments; the C compiler
#: checks each derivation with a _Static_assert, the test checks the tool reads the same.
MAPS_C = r"""
#include <stddef.h>
typedef unsigned int u32;
typedef struct { volatile int counter; } atomic_t;
enum map_kind { K_HASH, K_ARRAY };
struct ops;                                   /* only pointed to: never encoded */
struct bpf_map {
    const struct ops *ops;                    /* 0 */
    u32 key_size, value_size;                 /* 8, 12 */
    enum map_kind kind;                       /* 16 */
    char name[16];                            /* 20 .. 36 */
    atomic_t refcnt __attribute__((aligned(64)));   /* 64 (second cache line) */
    double load;                              /* 72 .. 80, rounded up to 64: 128 */
};
struct bucket { struct { void *first; } head; u32 raw_lock; };   /* 8 + 4 + 4 pad = 16 */
struct htab_elem {
    union {
        struct { void *next; void *pprev; };  /* anonymous struct in an anonymous union: 16 */
        struct bpf_map *map;
    };
    u32 hash;                                 /* 16 */
    char key[] __attribute__((aligned(8)));   /* 24: sizeof 24 */
};
struct bpf_htab {
    struct bpf_map map;                       /* 0 .. 128 */
    struct bucket *buckets;                   /* 128 */
    long lru_zone_size[5][5];                 /* 136 .. 336, rounded up to 64: 384 */
};
struct bpf_prog {
    unsigned short pages;                     /* 0 */
    unsigned short jited:1, gpl_compatible:1; /* bits 16 and 17 */
    u32 len;                                  /* 4 */
    void *aux;                                /* 8 */
    union { struct { int code; } insns[0]; unsigned long long insnsi[0]; };   /* 16 */
};                                            /* sizeof 16 = offsetof(insns) */
struct bpf_ringbuf {
    unsigned long mask;
    unsigned long consumer_pos __attribute__((aligned(4096)));   /* 4096: page 1 */
    unsigned long producer_pos __attribute__((aligned(4096)));   /* 8192 */
};
_Static_assert(sizeof(struct bpf_map) == 128, "bpf_map");
_Static_assert(sizeof(struct bucket) == 16, "bucket");
_Static_assert(offsetof(struct htab_elem, key) == 24 && sizeof(struct htab_elem) == 24, "elem");
_Static_assert(sizeof(struct bpf_htab) == 384, "bpf_htab");
_Static_assert(offsetof(struct bpf_prog, insns) == 16, "bpf_prog");
_Static_assert(offsetof(struct bpf_ringbuf, consumer_pos) == 4096, "bpf_ringbuf");
struct bpf_htab *htab_ref; struct htab_elem *elem_ref; struct bpf_prog *prog_ref;
struct bpf_ringbuf *ringbuf_ref;
"""
#: another object's unrelated struct bucket (as in a vmlinux): SIGNATURES must skip it
OTHER_C = "struct bucket { long a, b, c; };\nstruct bucket *other_ref;\n"

#: what the tool must read from MAPS_C + OTHER_C (derived in MAPS_C's comments);
#: RINGBUF_NR_META_PAGES = (4096 >> 12) + 2 position pages = 3
MAPS_SIZES = {"bpf_map": 128, "bpf_htab": 384, "htab_elem": 24, "bucket": 16,
              "bpf_ringbuf_meta_pages": 3, "bpf_prog": 16}


def _gcc(tmp_path: Path, name: str, source: str, *flags: str) -> str:
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    obj = tmp_path / f"{name}.o"
    subprocess.run(["gcc", "-c", "-O2", *flags, "-o", str(obj), str(src)], check=True)
    return str(obj)


@needs_gcc
@pytest.mark.parametrize("dwarf", ["-gdwarf-4", "-gdwarf-5"])
def test_dwarf_of_compiled_objects(tmp_path, dwarf):
    """gcc's DWARF 4 (DW_AT_bit_offset) and DWARF 5 (DW_AT_data_bit_offset) give the sizes
    and offsets derived by hand, through the anonymous union of bpf_prog and htab_elem, past
    the unrelated struct bucket, and every other key is reported absent."""
    objs = [_gcc(tmp_path, "maps", MAPS_C, dwarf), _gcc(tmp_path, "other", OTHER_C, dwarf)]
    sizes, notes, absent, blob = bs.sizes_from_objects(objs)
    assert sizes == MAPS_SIZES
    assert set(absent) == set(bs.required_keys()) - set(MAPS_SIZES)
    assert absent["bpf_array"] == "no struct bpf_array in the DWARF of the compiled objects"
    assert set(notes) == set(bs.COMPUTED)
    btf = Btf(blob)
    prog = btf.type(bs.find_struct(btf, "bpf_prog"))
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in prog.members] == [
        ("pages", 0, 0), ("jited", 16, 1), ("gpl_compatible", 17, 1), ("len", 32, 0),
        ("aux", 64, 0), ("", 128, 0)]
    assert bs.offsetof(btf, bs.find_struct(btf, "htab_elem"), "pprev") == 8
    # int lru_zone_size[5][5]: an array of 5 arrays of 5 longs (8 bytes): 200
    htab = btf.type(bs.find_struct(btf, "bpf_htab"))
    zone = next(m for m in htab.members if m.name == "lru_zone_size")
    assert btf.sizeof(zone.type) == 200 and zone.offset == 136
    assert btf.find("ops", "STRUCT") == []          # behind a pointer: left out


@needs_gcc
def test_dwarf_errors(tmp_path):
    nodebug = _gcc(tmp_path, "nodebug", OTHER_C)
    with pytest.raises(ValueError, match="no DWARF"):
        bs.sizes_from_objects([nodebug])
    with pytest.raises(ValueError, match="nodebug.c: not an ELF object"):
        bs.sizes_from_objects([str(tmp_path / "nodebug.c")])


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


#: a stand-in kernel tree: the make targets compile runs, with an olddefconfig that drops
#: CONFIG_OLD, flips CONFIG_FLIP y -> m and adds CONFIG_NEW
FAKE_MAKEFILE = """\
olddefconfig:
\tgrep -v -e '^CONFIG_OLD=' -e '^CONFIG_GONE=' .config | sed 's/^CONFIG_FLIP=y/CONFIG_FLIP=m/' > .c
\techo CONFIG_NEW=y >> .c && mv .c .config
prepare:
\ttest -f .config
kernelversion:
\t@echo 9.8.7
kernelrelease:
\t@echo 9.8.7-test
%.o: %.c
\t$(CC) -c $(KCFLAGS) -o $@ $<
"""


def _fake_tree(tmp_path: Path, *, drop_blob: bool = False) -> tuple[Path, str]:
    repo = tmp_path / "linux"
    (repo / "kernel" / "bpf").mkdir(parents=True)
    (repo / "Makefile").write_text(FAKE_MAKEFILE)
    (repo / "kernel" / "bpf" / "hashtab.c").write_text(MAPS_C)
    (repo / "kernel" / "bpf" / "arraymap.c").write_text("this is not C\n")   # fails to build
    (repo / "firmware.bin").write_bytes(b"\x00blob" * 100)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "tree")
    if drop_blob:   # as a partial snapshot: the tree lists the blob, the object store lacks it
        sha = _git(repo, "rev-parse", "HEAD:firmware.bin")
        (repo / ".git" / "objects" / sha[:2] / sha[2:]).unlink()
    return repo / ".git", _git(repo, "rev-parse", "HEAD")


@needs_gcc
def test_export_tree_skips_blobs_the_snapshot_lacks(tmp_path):
    git_dir, head = _fake_tree(tmp_path, drop_blob=True)
    dest = tmp_path / "out" / "linux"
    assert bs.export_tree(str(git_dir), "HEAD", dest) == (head, ["firmware.bin"])
    assert (dest / "kernel" / "bpf" / "hashtab.c").read_text() == MAPS_C
    assert not (dest / "firmware.bin").exists()
    assert bs.export_tree(str(git_dir), head[:12], dest) == (head, ["firmware.bin"])  # reused
    _git(git_dir.parent, "commit", "-q", "--allow-empty", "-m", "next")
    with pytest.raises(ValueError, match="remove it first"):
        bs.export_tree(str(git_dir), "HEAD", dest)
    with pytest.raises(ValueError, match="git rev-parse"):
        bs.export_tree(str(git_dir), "no-such-rev", tmp_path / "x")


def test_config_settings_and_olddefconfig_changes():
    text = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"s\"\nCONFIG_AB=y\n"
    out = bs.with_settings(text, {"CONFIG_A": "n", "CONFIG_B": "m"})
    assert out == 'CONFIG_C="s"\nCONFIG_AB=y\n# CONFIG_A is not set\nCONFIG_B=m\n'
    assert bs.with_settings(text, {}) == text
    before = bs.parse_config(text)
    after = {"CONFIG_A": "m", "CONFIG_B": "n", "CONFIG_D": "y"}
    assert bs.olddefconfig_changes(before, after) == {
        "changed": {"CONFIG_A": ["y", "m"]}, "added_with_defaults": 1,
        "dropped_unknown_to_tree": 2}
    with pytest.raises(ValueError, match="CONFIG_NAME=VALUE"):
        bs._assignment("LOCKDEP=y")


@needs_gcc
def test_compile_command_end_to_end(tmp_path, capsys):
    """`compile` on a stand-in tree: export, the config with --set, olddefconfig, prepare,
    the objects (one fails: recorded, its structs absent), the DWARF read, the provenance."""
    git_dir, head = _fake_tree(tmp_path)
    config = tmp_path / "config-test"
    config.write_text("CONFIG_OLD=y\nCONFIG_FLIP=y\nCONFIG_KEEP=y\n")
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({
        "profile": "9.8", "tree": "example/linux", "commit": head,
        "config": "test config", "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest(),
        "set": {"CONFIG_KEEP": "n"}, "make_vars": ["V=1"], "why": "a test",
        "notes": {"bucket": "hand-made"}}))
    out = tmp_path / "9.8.json"
    common = ["--git", str(git_dir), "--config", str(config), "--workdir",
              str(tmp_path / "w"), "--date", "2026-02-03", "-o", str(out)]
    assert bs.main(["compile", str(recipe), *common]) == 0
    rec = json.loads(out.read_text())
    assert rec["sizes"] == MAPS_SIZES
    assert rec["notes"]["bucket"] == "hand-made"
    p = rec["provenance"]
    assert p["kind"] == "compiled" and p["commit"] == head and p["tree"] == "example/linux"
    assert p["kernel_version"] == "9.8.7" and p["kernel_release"] == "9.8.7-test"
    assert p["objects"] == ["kernel/bpf/hashtab.o"]
    assert p["objects_failed"] == ["kernel/bpf/arraymap.o"]
    assert p["config_set"] == {"CONFIG_KEEP": "n"} and p["make_vars"] == ["V=1"]
    # CONFIG_KEEP=n was set before olddefconfig, which then dropped OLD, flipped FLIP, added NEW
    assert p["olddefconfig"] == {"changed": {"CONFIG_FLIP": ["y", "m"], "CONFIG_KEEP": ["y", "n"]},
                                 "added_with_defaults": 1, "dropped_unknown_to_tree": 1}
    assert p["debug_info"].startswith("KCFLAGS=-g")
    assert p["date"] == "2026-02-03" and p["why"] == "a test"
    assert p["command"].startswith("tools/btf_sizes.py compile ")
    _check_record(rec, "9.8")
    # the recipe's config must be the one given; a --set olddefconfig drops is an error
    other = tmp_path / "other-config"
    other.write_text("CONFIG_FLIP=y\n")
    assert bs.main(["compile", str(recipe), *common[:2], "--config", str(other),
                    *common[4:]]) == 1
    assert "is not the recipe's" in capsys.readouterr().err
    assert bs.main(["compile", "--profile", "9.8", "--tree-name", "t", "--commit", head,
                    "--config-label", "c", "--set", "CONFIG_GONE=y", *common]) == 1
    assert "did not keep {'CONFIG_GONE': 'y'}" in capsys.readouterr().err
    assert bs.main(["compile", "--profile", "9.8", *common]) == 1
    assert "compile needs tree, commit, config" in capsys.readouterr().err
    for bad, message in (({"sizes": {}}, "unknown recipe keys ['sizes']"),
                         ({"notes": {"bpf_mapp": "typo"}}, "note for 'bpf_mapp'")):
        recipe.write_text(json.dumps(bad))
        assert bs.main(["compile", str(recipe), *common]) == 1
        assert message in capsys.readouterr().err


def test_compare_command(tmp_path, capsys):
    a = {"sizes": {"bpf_map": 256, "bucket": 16}}
    b = {"sizes": {"bpf_map": 248, "bucket": 16, "file": 232}}
    assert bs.compare(a, b) == [("bpf_map", 256, 248), ("file", None, 232)]
    fa, fb = tmp_path / "a.json", tmp_path / "b.json"
    fa.write_text(json.dumps(a))
    fb.write_text(json.dumps(b))
    assert bs.main(["compare", str(fa), str(fb)]) == 3
    out = capsys.readouterr().out
    assert "bpf_map: 256 -> 248\nfile: None -> 232\n" in out
    assert bs.main(["compare", str(fa), str(fa)]) == 0


# --- the committed data files --------------------------------------------------------------

#: every BPF map struct embeds struct bpf_map as its first member (bpf_map_area_alloc()ed
#: containers), so none can be smaller than struct bpf_map itself
EMBEDS_BPF_MAP = ("bpf_array", "bpf_htab", "bpf_ringbuf_map", "lpm_trie", "bpf_queue_stack",
                  "bpf_stack_map", "bpf_dtab", "bpf_cpu_map", "xsk_map", "bpf_stab", "bpf_shtab",
                  "reuseport_array", "bpf_cgroup_storage_map", "bpf_local_storage_map",
                  "bpf_struct_ops_map", "bpf_bloom_filter", "bpf_offloaded_map")


def _check_record(rec: dict, profile: str) -> None:
    assert rec["profile"] == profile
    p = rec["provenance"]
    assert p["kind"] in ("btf", "compiled")
    for key in ("source", "arch", "tool", "date", "kernel_release"):
        assert isinstance(p[key], str) and p[key], key
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", p["date"])
    if p["kind"] == "btf":
        assert re.fullmatch(r"[0-9a-f]{64}", p["btf_sha256"]) and p["container"]
    else:
        assert re.fullmatch(r"[0-9a-f]{40}", p["commit"])
        assert re.fullmatch(r"[0-9a-f]{64}", p["config_sha256"])
        for key in ("tree", "kernel_version", "config_source", "compiler"):
            assert isinstance(p[key], str) and p[key], key
        assert p["objects"] and set(p["objects"]) <= set(bs.OBJECTS)
    sizes, absent = rec["sizes"], rec.get("absent", {})
    for key in bs.required_keys():
        assert (key in sizes) != (key in absent), f"{profile}: {key} neither sized nor absent"
    assert set(sizes) <= set(bs.required_keys())
    for key, v in sizes.items():
        assert type(v) is int and v > 0, (key, v)
    for key in bs.COMPUTED:
        assert key in rec["notes"], key
    for key, why in absent.items():
        assert isinstance(why, str) and why, key
    for key in EMBEDS_BPF_MAP:
        if key in sizes:
            assert sizes[key] >= sizes["bpf_map"], key


def _committed() -> dict[str, dict]:
    return {f.stem: json.loads(f.read_text()) for f in sorted(STRUCTS.glob("*.json"))}


def test_every_required_profile_has_a_data_file():
    assert set(REQUIRED_PROFILES) <= set(_committed())


@pytest.mark.parametrize("profile", REQUIRED_PROFILES)
def test_committed_file_is_well_formed(profile):
    rec = _committed()[profile]
    _check_record(rec, profile)
    # the StructSizes fields a kernel cannot lack (every supported kernel has these maps)
    for key in ("bpf_map", "bpf_array", "bpf_htab", "htab_elem", "bucket", "bpf_prog"):
        assert key in rec["sizes"], key
    if rec["provenance"]["kind"] == "compiled":
        assert not rec["provenance"]["objects_failed"]


def test_committed_files_are_what_the_tool_writes():
    """Each file is exactly dump() of its own content (no hand edits in another format)."""
    for f in STRUCTS.glob("*.json"):
        assert f.read_text() == bs.dump(json.loads(f.read_text())), f.name


# --- the running kernel --------------------------------------------------------------------

@pytest.mark.live(privileged=False)    # reads /sys/kernel/btf/vmlinux only
def test_live_btf_against_committed_618():
    """The running kernel's BTF gives a complete record, and on the very build the 6.18 file
    was read from (same BTF sha256) every size is equal.  Another build, even of 6.18, may
    lay structs out differently (config, stable backports): then equality is not a claim the
    file makes, and the test skips, naming the structs that differ."""
    path = bs.SYS_BTF
    if not os.access(path, os.R_OK):
        pytest.skip(f"{path} not readable (kernel without CONFIG_DEBUG_INFO_BTF?)")
    data = Path(path).read_bytes()
    btf = Btf(data)
    sizes, notes, absent = bs.extract_sizes(btf, os.sysconf("SC_PAGE_SIZE"))
    assert not set(absent) & set(bs.model_fields()), absent
    rec = _committed()["6.18"]
    if hashlib.sha256(data).hexdigest() == rec["provenance"]["btf_sha256"]:
        assert sizes == rec["sizes"]
        return
    diff = {k: (rec["sizes"].get(k), sizes.get(k)) for k in set(sizes) | set(rec["sizes"])
            if rec["sizes"].get(k) != sizes.get(k)}
    pytest.skip(f"running kernel {os.uname().release} is not the build the 6.18 file was read "
                f"from ({rec['provenance']['kernel_release']}); struct: file -> here: "
                + (", ".join(f"{k}: {a} -> {b}" for k, (a, b) in sorted(diff.items()))
                   or "no size differs"))


def test_compiled_files_follow_their_recipes():
    """Every compiled file was built from its recipe in tools/recipes/ (tree, commit, config
    and its sha256, --set values, make variables) and carries the recipe's notes; the --set
    values the config facts list are in force.  (Rebuilding needs the kernel tree: the
    recipe's `why` and docs/btf-sizes.md say where it comes from.)"""
    compiled = {k: r for k, r in _committed().items() if r["provenance"]["kind"] == "compiled"}
    assert set(compiled) == {"5.11", "5.15", "6.6", "6.8"}
    for profile, rec in compiled.items():
        p = rec["provenance"]
        assert p["recipe"] == f"tools/recipes/{profile}.json"
        recipe = json.loads((ROOT / p["recipe"]).read_text())
        assert set(recipe) <= set(bs.RECIPE_KEYS)
        assert recipe["profile"] == rec["profile"]
        assert (recipe["tree"], recipe["commit"]) == (p["tree"], p["commit"])
        assert (recipe["config"], recipe["config_sha256"]) == (p["config_source"],
                                                              p["config_sha256"])
        assert recipe["set"] == p["config_set"] and recipe["make_vars"] == p["make_vars"]
        assert recipe["why"] == p["why"]
        for key, text in recipe["notes"].items():
            assert rec["notes"][key].endswith(text), (profile, key)
        for key, value in recipe["set"].items():
            if key in p["config"]:
                assert p["config"][key] == value, (profile, key)
