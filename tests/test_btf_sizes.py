"""tools/btf_sizes.py on synthetic inputs (BTF blob, vmlinux ELF, bzImage, .deb), and the
committed struct-size data files (pybpfmem/profiles/structs/*.json), read directly with json."""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import lzma
import os
import re
import struct
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


def _record(profile: str, release: str, **override: int) -> dict:
    blob, _ = _synthetic_btf()
    u = bs.Unpacked(btf=blob, container="raw BTF", arch="x86_64", release=release)
    rec = bs.build_record(u, profile, source="synthetic", date="2026-01-01")
    rec["sizes"].update(override)
    return rec


def test_derive_rules():
    """derive(): a size from the spec wins; both real neighbours agree -> that size; they
    differ -> the base's size marked UNCERTAIN for a model field, left out for memcg/fd."""
    base = _record("6.1", "6.1.0-1")
    other = _record("6.12", "6.12.0-1", bpf_htab=2000, mem_cgroup=3000)
    spec = {"profile": "6.6", "base": "6.1", "other": "6.12", "source": "synthetic v6.6",
            "kernel_release": "6.6",
            "sizes": {"bpf_map": {"size": 248, "why": "a field went away in v6.6"}},
            "absent": {"bpf_bloom_filter": "no such map type in v6.6"}}
    rec = bs.derive(spec, base, other, date="2026-01-03")
    assert rec["sizes"]["bpf_map"] == 248
    assert rec["derived"]["bpf_map"] == "a field went away in v6.6"
    assert rec["sizes"]["htab_elem"] == base["sizes"]["htab_elem"]
    assert rec["derived"]["htab_elem"].startswith("same size in the real BTFs of 6.1")
    assert rec["sizes"]["bpf_htab"] == base["sizes"]["bpf_htab"]
    assert rec["derived"]["bpf_htab"].startswith("UNCERTAIN")
    assert "mem_cgroup" not in rec["sizes"] and "not derived" in rec["absent"]["mem_cgroup"]
    assert "bpf_bloom_filter" not in rec["sizes"] and rec["absent"]["bpf_bloom_filter"]
    p = rec["provenance"]
    assert p["kind"] == "derived" and p["base_profile"] == "6.1" and p["other_profile"] == "6.12"
    assert p["base_btf_sha256"] == base["provenance"]["btf_sha256"]
    _check_record(rec, "6.6")
    with pytest.raises(ValueError, match="unknown struct names"):
        bs.derive(dict(spec, sizes={"bpf_mapp": {"size": 1, "why": "typo"}}), base, other)
    with pytest.raises(ValueError, match="real BTF"):
        bs.derive(spec, rec, other)


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
    assert p["kind"] in ("btf", "derived")
    for key in ("source", "arch", "tool", "date"):
        assert isinstance(p[key], str) and p[key], key
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", p["date"])
    sha = p["btf_sha256"] if p["kind"] == "btf" else p["base_btf_sha256"]
    assert re.fullmatch(r"[0-9a-f]{64}", sha)
    if p["kind"] == "btf":
        assert p["kernel_release"] and p["container"]
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
    if p["kind"] == "derived":
        assert set(rec["derived"]) == set(sizes)
        assert all(isinstance(w, str) and len(w) > 10 for w in rec["derived"].values())
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
    if rec["provenance"]["kind"] == "derived":   # derived from a committed real-BTF file
        base = _committed()[rec["provenance"]["base_profile"]]
        assert base["provenance"]["kind"] == "btf"
        assert base["provenance"]["btf_sha256"] == rec["provenance"]["base_btf_sha256"]


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


def test_derived_files_follow_from_their_specs():
    """Every derived file is what `btf_sizes.py derive` makes of its committed spec and the
    committed real-BTF files (only the date may differ)."""
    for f in STRUCTS.glob("*.json"):
        rec = json.loads(f.read_text())
        if rec["provenance"]["kind"] != "derived":
            continue
        spec = json.loads((ROOT / "tools" / "derivations" / f.name).read_text())
        base = _committed()[spec["base"]]
        other = _committed()[spec["other"]] if spec.get("other") else None
        again = bs.derive(spec, base, other, date=rec["provenance"]["date"])
        assert again == rec, f.name
