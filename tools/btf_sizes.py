#!/usr/bin/env python3
"""Struct sizes from a real vmlinux BTF -> pybpfmem/profiles/structs/<profile>.json.

    python tools/btf_sizes.py extract SOURCE --profile 6.1 [--distro "Debian 12"] ...
    python tools/btf_sizes.py derive tools/derivations/6.6.json

SOURCE may be any of
  * a raw BTF blob, e.g. /sys/kernel/btf/vmlinux (the running kernel);
  * a vmlinux ELF (its .BTF section, read with pyelftools);
  * a bzImage (``vmlinuz``): the protected-mode payload named by the boot header
    (payload_offset/payload_length, boot protocol >= 2.08, Documentation/arch/x86/boot.rst)
    is decompressed (gzip, xz, lzma, bzip2, zstd, lz4, lzo: whatever CONFIG_KERNEL_* the
    distro chose) into the vmlinux ELF;
  * a compressed vmlinux (one of those streams at offset 0);
  * a distro ``.deb`` (ar archive): ``boot/vmlinuz-*`` and ``boot/config-*`` from its
    data.tar.*, and Package/Version from its control file.

The JSON format and the struct list are those of the Profile design: ``sizes`` holds the value
of every ``StructSizes`` field (sizeof(struct <field>) except the computed facts of
``COMPUTED``) plus the memcg and fd-object structs of ``EXTRA_STRUCTS``; ``notes`` says how
each computed fact was obtained; ``provenance`` says where the blob came from.

``derive`` writes a profile for which no real BTF could be had: a committed profile's sizes
(the nearest real BTF) with per-struct changes read from the target version's source, every
size carrying its reasoning in ``derived``.

The unpacking (ELF / bzImage / deb) lives in this file; the BTF parser is the project's.
"""
from __future__ import annotations

import argparse
import bz2
import dataclasses
import datetime
import gzip
import hashlib
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
import zlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pybpfmem.profiles.sizes import StructSizes  # noqa: E402  (the one list of model sizes)
from pybpfmem.btf import Btf, BtfError  # noqa: E402  (the project's BTF parser)

STRUCTS_DIR = ROOT / "pybpfmem" / "profiles" / "structs"
TOOL = "tools/btf_sizes.py"

# --- what is extracted ---------------------------------------------------------------------

#: StructSizes fields whose value is not sizeof(struct <field>), with how BTF gives them.
COMPUTED = {
    "bpf_prog": "offsetof(struct bpf_prog, insns): bpf_prog_size() (include/linux/filter.h) "
                "sizes a program as max(sizeof(struct bpf_prog), offsetof(struct bpf_prog, "
                "insns[len])); read from the BTF member offset (insns sits in an anonymous union)",
    "bpf_ringbuf_meta_pages": "RINGBUF_NR_META_PAGES (kernel/bpf/ringbuf.c) = RINGBUF_PGOFF + "
                              "RINGBUF_POS_PAGES: (offsetof(struct bpf_ringbuf, consumer_pos) >> "
                              "PAGE_SHIFT) from the BTF member offset, plus the 2 position pages "
                              "(consumer and producer)",
}
RINGBUF_POS_PAGES = 2  # kernel/bpf/ringbuf.c: the consumer page and the producer page

#: Kernel structs the memory layer (memcg) and the fd-object accounting need, beside the BPF ones.
EXTRA_STRUCTS = (
    "mem_cgroup", "mem_cgroup_per_node", "memcg_vmstats_percpu", "memcg_vmstats",
    "lruvec_stats_percpu", "lruvec_stats", "obj_cgroup", "page_counter",
    "file", "dentry", "inode", "fdtable", "files_struct", "task_struct",
)

#: Members that tell the right struct apart where vmlinux has two structs of one name
#: (struct bucket: kernel/bpf/hashtab.c's has a `head`; others elsewhere do not).
SIGNATURES = {"bucket": ("head",)}

#: Kernel config facts recorded in the provenance (layouts and accounting depend on them).
CONFIG_FACTS = (
    "CONFIG_CC_VERSION_TEXT", "CONFIG_SMP", "CONFIG_NR_CPUS", "CONFIG_NUMA", "CONFIG_NODES_SHIFT",
    "CONFIG_PREEMPT_RT", "CONFIG_PREEMPT_DYNAMIC", "CONFIG_DEBUG_SPINLOCK",
    "CONFIG_DEBUG_LOCK_ALLOC", "CONFIG_LOCKDEP", "CONFIG_KASAN", "CONFIG_SLUB", "CONFIG_SLAB",
    "CONFIG_SLUB_DEBUG", "CONFIG_MEMCG", "CONFIG_MEMCG_KMEM", "CONFIG_MEMCG_V1",
    "CONFIG_CGROUP_BPF", "CONFIG_BPF_SYSCALL", "CONFIG_BPF_JIT", "CONFIG_BPF_LSM",
    "CONFIG_BPF_STREAM_PARSER", "CONFIG_XDP_SOCKETS", "CONFIG_DEBUG_INFO_BTF",
)


def model_fields() -> tuple[str, ...]:
    """The StructSizes field names, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(StructSizes))


def required_keys() -> tuple[str, ...]:
    """Every key a structs file's `sizes` holds (when the kernel has the struct)."""
    return model_fields() + EXTRA_STRUCTS


# --- BTF queries -------------------------------------------------------------------------------

_KIND_STRUCT, _KIND_UNION = 4, 5
def find_struct(btf: Btf, name: str) -> int | None:
    """The type id of `struct name`; where vmlinux has several of that name with different
    sizes, the one with the SIGNATURES members; an ambiguity left is an error."""
    ids = btf.find(name, "STRUCT")
    if len({btf.sizeof(i) for i in ids}) <= 1:
        return ids[0] if ids else None
    want = SIGNATURES.get(name, ())
    fits = [i for i in ids if want and all(
        m in {mem.name for mem in btf.type(i).members} for m in want)]
    if len({btf.sizeof(i) for i in fits}) == 1:
        return fits[0]
    sizes = sorted({btf.sizeof(i) for i in ids})
    raise BtfError(f"struct {name}: {len(ids)} definitions of sizes {sizes}; "
                   f"add a member signature to SIGNATURES")


def offsetof(btf: Btf, tid: int, member: str) -> int | None:
    """Byte offset of `member` in the struct/union `tid`, looking through anonymous
    struct/union members (as C's offsetof does)."""
    for m in btf.type(tid).members:
        if m.name == member:
            return m.offset
        if not m.name:
            inner = btf.skip_mods_and_typedefs(m.type)
            if inner and btf.type(inner).kind in (_KIND_STRUCT, _KIND_UNION):
                sub = offsetof(btf, inner, member)
                if sub is not None:
                    return m.offset + sub
    return None


def _computed(btf: Btf, name: str, page_size: int) -> tuple[int | None, str]:
    if name == "bpf_prog":
        tid = find_struct(btf, "bpf_prog")
        off = offsetof(btf, tid, "insns") if tid else None
        if off is None:
            return None, "no struct bpf_prog with an insns member"
        note = COMPUTED[name]
        if btf.sizeof(tid) != off:
            note += f"; sizeof(struct bpf_prog) = {btf.sizeof(tid)}"
        return off, note
    if name == "bpf_ringbuf_meta_pages":
        tid = find_struct(btf, "bpf_ringbuf")
        off = offsetof(btf, tid, "consumer_pos") if tid else None
        if off is None:
            return None, "no struct bpf_ringbuf with a consumer_pos member"
        mt = next(m.type for m in btf.type(tid).members if m.name == "consumer_pos")
        if btf.type(btf.skip_mods_and_typedefs(mt)).kind == 2:
            raise BtfError("struct bpf_ringbuf.consumer_pos is a pointer: the ring buffer "
                           "layout changed, update RINGBUF_NR_META_PAGES in this tool")
        pages = off // page_size + RINGBUF_POS_PAGES
        return pages, (COMPUTED[name] + f"; offsetof = {off}, page size {page_size}")
    raise KeyError(name)


def extract_sizes(btf: Btf, page_size: int = 4096
                  ) -> tuple[dict[str, int], dict[str, str], dict[str, str]]:
    """(sizes, notes, absent): every required key found in `btf`, how each computed fact
    was obtained, and why each missing one is missing."""
    sizes: dict[str, int] = {}
    notes: dict[str, str] = {}
    absent: dict[str, str] = {}
    for name in required_keys():
        if name in COMPUTED:
            value, note = _computed(btf, name, page_size)
            if value is None:
                absent[name] = note
            else:
                sizes[name], notes[name] = value, note
            continue
        tid = find_struct(btf, name)
        if tid is None:
            absent[name] = f"no struct {name} in this BTF"
        else:
            sizes[name] = btf.sizeof(tid)
    return sizes, notes, absent


# --- decompression -----------------------------------------------------------------------------

#: stream magics (as scripts/extract-vmlinux and the boot decompressors know them)
MAGICS = (
    (b"\x1f\x8b\x08", "gzip"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"), (b"\x02\x21\x4c\x18", "lz4"), (b"\x89LZO", "lzo"),
    (b"\x5d\x00\x00", "lzma"),
)


def compression_of(data: bytes) -> str | None:
    for magic, name in MAGICS:
        if data.startswith(magic):
            return name
    return None


def _cli(cmd: list[str], data: bytes, what: str) -> bytes:
    if shutil.which(cmd[0]) is None:
        raise ValueError(f"{what}: decompressing needs the `{cmd[0]}` program "
                         f"(or the Python module named in docs/btf-sizes.md)")
    r = subprocess.run(cmd, input=data, capture_output=True, check=False)
    if r.returncode != 0 and not r.stdout:
        raise ValueError(f"{what}: {cmd[0]} failed: {r.stderr.decode(errors='replace')[:200]}")
    return r.stdout


def decompress(data: bytes, kind: str, what: str = "payload") -> bytes:
    """One compressed stream; bytes after its end (the kernel appends the decompressed size)
    are ignored."""
    try:
        if kind == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
        if kind == "xz":
            return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data)
        if kind == "lzma":
            return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(data)
    except (zlib.error, lzma.LZMAError, OSError, EOFError) as e:
        raise ValueError(f"{what}: bad {kind} stream: {e}") from None
    if kind == "zstd":
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            return _cli(["zstd", "-dc"], data, what)
        try:
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
        except zstandard.ZstdError as e:
            raise ValueError(f"{what}: bad zstd stream: {e}") from None
    if kind == "lz4":    # the kernel's lz4 is the legacy frame format, which lz4(1) reads
        return _cli(["lz4", "-dc"], data, what)
    if kind == "lzo":
        return _cli(["lzop", "-dc"], data, what)
    raise ValueError(f"{what}: unknown compression {kind}")


# --- containers --------------------------------------------------------------------------------

BTF_MAGICS = (b"\x9f\xeb", b"\xeb\x9f")
ELF_MAGIC = b"\x7fELF"
AR_MAGIC = b"!<arch>\n"
_ELF_ARCH = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64", "EM_386": "i386"}
_PAGE_SIZE = {"x86_64": 4096, "i386": 4096}


@dataclass
class Unpacked:
    """A BTF blob and what its container told about the kernel."""
    btf: bytes
    container: str                           # how the blob was reached, e.g. "deb > vmlinuz (xz) > ELF .BTF"
    arch: str | None = None
    release: str | None = None               # uname -r
    version: str | None = None               # uname -v
    config: dict[str, str] | None = None
    package: str | None = None
    package_version: str | None = None
    member: str | None = None                # the file inside a package
    extra: dict[str, str] = field(default_factory=dict)


def parse_config(text: str) -> dict[str, str]:
    """A kernel .config as {CONFIG_X: value}; `# CONFIG_X is not set` gives "n"."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"(CONFIG_\w+)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip('"')
            continue
        m = re.match(r"# (CONFIG_\w+) is not set$", line)
        if m:
            out[m.group(1)] = "n"
    return out


def _banner(data: bytes) -> tuple[str | None, str | None]:
    """(uname -r, uname -v) from linux_banner (init/version.c) inside a vmlinux."""
    m = re.search(rb"Linux version (\S+) \(.*?\) (#\d+[^\n\x00]*)\n", data)
    if not m:
        return None, None
    return m.group(1).decode(errors="replace"), m.group(2).decode(errors="replace")


def _ikconfig(data: bytes) -> dict[str, str] | None:
    """The config embedded by CONFIG_IKCONFIG (kernel/configs.c: IKCFG_ST <gzip> IKCFG_ED)."""
    start = data.find(b"IKCFG_ST")
    if start < 0:
        return None
    end = data.find(b"IKCFG_ED", start)
    try:
        return parse_config(gzip.decompress(data[start + 8:end]).decode(errors="replace"))
    except (OSError, EOFError, zlib.error):
        return None


def from_elf(data: bytes, what: str = "vmlinux") -> Unpacked:
    try:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
    except ImportError:
        raise ValueError("reading a vmlinux ELF needs pyelftools (pip install pyelftools)") from None
    try:
        elf = ELFFile(io.BytesIO(data))
        sec = elf.get_section_by_name(".BTF")
        arch = _ELF_ARCH.get(elf["e_machine"], str(elf["e_machine"]))
        blob = sec.data() if sec is not None else None
    except ELFError as e:
        raise ValueError(f"{what}: bad ELF: {e}") from None
    if blob is None:
        raise ValueError(f"{what}: ELF has no .BTF section (kernel built without "
                         f"CONFIG_DEBUG_INFO_BTF?)")
    release, version = _banner(data)
    return Unpacked(btf=blob, container="ELF .BTF", arch=arch, release=release,
                    version=version, config=_ikconfig(data))


def bzimage_payload(data: bytes, what: str = "vmlinuz") -> tuple[bytes, str]:
    """(compressed payload, its compression) of a bzImage, from the x86 boot header:
    setup_sects at 0x1f1 ("HdrS" at 0x202), payload_offset/length at 0x248/0x24c,
    relative to the protected-mode code at (setup_sects + 1) * 512."""
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        raise ValueError(f"{what}: not a bzImage (no HdrS boot header)")
    (proto,) = struct.unpack_from("<H", data, 0x206)
    if proto < 0x208:
        raise ValueError(f"{what}: boot protocol {proto >> 8}.{proto & 0xff} has no payload "
                         f"fields (needs 2.08+)")
    setup_sects = data[0x1F1] or 4
    off, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + off
    payload = data[start:start + length]
    if len(payload) != length or length < 8:
        raise ValueError(f"{what}: payload runs past the end of the file")
    kind = compression_of(payload)
    if kind is None:
        raise ValueError(f"{what}: unknown payload compression (magic {payload[:4].hex()})")
    return payload, kind


def from_bzimage(data: bytes, what: str = "vmlinuz") -> Unpacked:
    payload, kind = bzimage_payload(data, what)
    # arch/x86/boot/compressed/Makefile appends the decompressed size (le32) to the stream
    (size,) = struct.unpack_from("<I", payload, len(payload) - 4)
    vmlinux = decompress(payload[:-4], kind, what)
    if len(vmlinux) != size:
        raise ValueError(f"{what}: {kind} payload gave {len(vmlinux)} bytes, "
                         f"the image says {size}")
    if not vmlinux.startswith(ELF_MAGIC):
        raise ValueError(f"{what}: decompressed payload is not an ELF")
    u = from_elf(vmlinux, what)
    u.container = f"bzImage ({kind}) > {u.container}"
    return u


def _ar_members(data: bytes, what: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    pos = len(AR_MAGIC)
    while pos + 60 <= len(data):
        hdr = data[pos:pos + 60]
        name = hdr[:16].decode(errors="replace").strip().rstrip("/")
        try:
            size = int(hdr[48:58].decode().strip())
        except ValueError:
            raise ValueError(f"{what}: bad ar member header at {pos}") from None
        pos += 60
        out[name] = data[pos:pos + size]
        pos += size + (size & 1)
    return out


def _tar(blob: bytes, name: str, what: str) -> tarfile.TarFile:
    kind = compression_of(blob)
    raw = decompress(blob, kind, f"{what}:{name}") if kind else blob
    return tarfile.open(fileobj=io.BytesIO(raw), mode="r:")


def from_deb(data: bytes, what: str = "package") -> Unpacked:
    members = _ar_members(data, what)
    control = next((k for k in members if k.startswith("control.tar")), None)
    dtar = next((k for k in members if k.startswith("data.tar")), None)
    if dtar is None:
        raise ValueError(f"{what}: not a .deb (no data.tar.* member)")
    fields: dict[str, str] = {}
    if control is not None:
        with _tar(members[control], control, what) as t:
            for m in t.getmembers():
                if m.name.lstrip("./") == "control":
                    f = t.extractfile(m)
                    text = f.read().decode(errors="replace") if f else ""
                    for line in text.splitlines():
                        k, sep, v = line.partition(":")
                        if sep and not line.startswith(" "):
                            fields[k.strip()] = v.strip()
    image = config = None
    member = None
    with _tar(members[dtar], dtar, what) as t:
        for m in t.getmembers():
            n = m.name.lstrip("./")
            f = t.extractfile(m) if m.isfile() else None
            if f is None:
                continue
            if re.fullmatch(r"boot/vmlinu[xz]-.*", n) and image is None:
                image, member = f.read(), n
            elif re.fullmatch(r"boot/config-.*", n) and config is None:
                config = f.read().decode(errors="replace")
    if image is None:
        raise ValueError(f"{what}: no boot/vmlinuz-* in the package")
    u = unpack(image, member or "vmlinuz")
    u.container = f"deb {member} > {u.container}"
    u.package, u.package_version, u.member = fields.get("Package"), fields.get("Version"), member
    if fields.get("Source"):
        u.extra["package_source"] = fields["Source"]
    if config is not None:
        u.config = parse_config(config)
    if u.release is None and member:
        u.release = member.split("-", 1)[1]
    return u


def unpack(data: bytes, what: str = "input") -> Unpacked:
    """The BTF blob inside any of the accepted containers (see the module docstring)."""
    if data[:2] in BTF_MAGICS:
        return Unpacked(btf=data, container="raw BTF")
    if data.startswith(ELF_MAGIC):
        return from_elf(data, what)
    if data.startswith(AR_MAGIC):
        return from_deb(data, what)
    if data[0x202:0x206] == b"HdrS":
        return from_bzimage(data, what)
    kind = compression_of(data)
    if kind is not None:
        u = unpack(decompress(data, kind, what), what)
        u.container = f"{kind} > {u.container}"
        return u
    raise ValueError(f"{what}: neither BTF, ELF, bzImage, .deb nor a compressed vmlinux "
                     f"(starts {data[:8].hex()})")


# --- the data file -----------------------------------------------------------------------------

SYS_BTF = "/sys/kernel/btf/vmlinux"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_config(path: str) -> dict[str, str]:
    raw = Path(path).read_bytes()
    if raw.startswith(b"\x1f\x8b"):
        raw = gzip.decompress(raw)
    return parse_config(raw.decode(errors="replace"))


def build_record(u: Unpacked, profile: str, *, source: str | None = None,
                 distro: str | None = None, date: str | None = None,
                 input_name: str | None = None, input_sha: str | None = None) -> dict:
    """The structs-file dict for one unpacked BTF."""
    arch = u.arch or "x86_64"
    if arch not in _PAGE_SIZE:
        raise ValueError(f"arch {arch}: page size unknown to this tool")
    btf = Btf(u.btf)
    sizes, notes, absent = extract_sizes(btf, _PAGE_SIZE[arch])
    if source is None:
        what = f"{u.package} {u.package_version}" if u.package else (input_name or "BTF")
        source = f"{distro + ' ' if distro else ''}{what} ({u.container})"
    config = None
    if u.config is not None:
        config = {k: u.config.get(k) for k in CONFIG_FACTS}  # None: no such option
    prov: dict = {
        "kind": "btf",
        "source": source,
        "distro": distro,
        "package": u.package,
        "package_version": u.package_version,
        "kernel_release": u.release,
        "kernel_version": u.version,
        "arch": arch,
        "container": u.container,
        "config": config,
        "btf_sha256": sha256(u.btf),
        "input_sha256": input_sha,
        "tool": TOOL,
        "date": date or datetime.date.today().isoformat(),
    }
    prov.update(u.extra)
    rec: dict = {"profile": profile, "provenance": prov, "sizes": sizes, "notes": notes}
    if absent:
        rec["absent"] = absent
    return rec


def dump(rec: dict) -> str:
    return json.dumps(rec, indent=2, sort_keys=False) + "\n"


def extract(args: argparse.Namespace) -> dict:
    path = args.source
    data = Path(path).read_bytes()
    u = unpack(data, os.path.basename(path))
    running = os.path.realpath(path) == os.path.realpath(SYS_BTF)
    if running:   # the running kernel: uname and its /proc/config.gz
        uts = os.uname()
        u.release, u.version, u.arch = uts.release, uts.version, uts.machine
        if u.config is None and os.path.exists("/proc/config.gz"):
            u.config = _read_config("/proc/config.gz")
    if args.config:
        u.config = _read_config(args.config)
    if args.arch:
        u.arch = args.arch
    if u.arch is None:
        raise ValueError(f"{path}: a raw BTF blob does not say its architecture: give --arch")
    return build_record(u, args.profile, source=args.source_label, distro=args.distro,
                        date=args.date, input_name=os.path.basename(path),
                        input_sha=None if running else sha256(data))


# --- derived profiles --------------------------------------------------------------------------

def derive(spec: dict, base: dict, other: dict | None = None, date: str | None = None) -> dict:
    """A structs file for a kernel with no real BTF at hand, from the committed real-BTF files
    of the nearest release (`base`) and of the real release on the other side (`other`), and
    the facts of `spec` read from the target version's source.  Per required key:

    * `spec["sizes"][name]` ({"size", "why"}): a size worked out from the source;
    * `spec["absent"][name]`: the struct does not exist in that release (why);
    * else, base and other agree: that size ("same in both real BTFs around it");
    * else, a BPF-model field: the base's size, marked uncertain (the change between the two
      releases was not pinned to a release);
    * else (memcg / fd structs, config-heavy): left out, in `absent`, as not derived.

    spec = {"profile", "base", "other", "source", "kernel_release", "sizes", "absent"}"""
    for rec in (base, other):
        if rec is not None and rec["provenance"]["kind"] != "btf":
            raise ValueError("derive from structs files read from real BTF")
    changes = spec.get("sizes", {})
    absent = dict(spec.get("absent", {}))
    unknown = (set(changes) | set(absent)) - set(required_keys())
    if unknown:
        raise ValueError(f"unknown struct names in the derivation: {sorted(unknown)}")
    bname = f"{base['profile']} ({base['provenance']['kernel_release']})"
    oname = f"{other['profile']} ({other['provenance']['kernel_release']})" if other else None
    sizes: dict[str, int] = {}
    derived: dict[str, str] = {}
    for name in required_keys():
        if name in absent:
            continue
        if name in changes:
            sizes[name] = int(changes[name]["size"])
            derived[name] = changes[name]["why"]
            continue
        b = base["sizes"].get(name)
        o = other["sizes"].get(name) if other else None
        if b is not None and b == o:
            sizes[name] = b
            derived[name] = (f"same size in the real BTFs of {bname} and {oname} on either "
                             f"side; no change assumed in between")
        elif b is not None and name in model_fields():
            sizes[name] = b
            derived[name] = (f"UNCERTAIN: {bname} has {b}, {oname} has {o}; the change was "
                             f"not pinned to a release, the nearer real BTF's size is used")
        elif b is not None:
            absent[name] = (f"not derived: {bname} has {b}, {oname} has {o}, and the "
                            f"struct depends on config and many releases' changes")
        else:
            raise ValueError(f"{name}: not in {bname} and no size given in the derivation")
    bp = base["provenance"]
    prov = {
        "kind": "derived",
        "source": spec["source"],
        "base_profile": base["profile"],
        "base_source": bp["source"],
        "base_btf_sha256": bp["btf_sha256"],
        "other_profile": other["profile"] if other else None,
        "other_btf_sha256": other["provenance"]["btf_sha256"] if other else None,
        "kernel_release": spec.get("kernel_release"),
        "arch": bp["arch"],
        "config": None,
        "tool": TOOL,
        "date": date or datetime.date.today().isoformat(),
    }
    notes = {k: v for k, v in base.get("notes", {}).items() if k in sizes}
    rec: dict = {"profile": spec["profile"], "provenance": prov, "sizes": sizes,
                 "notes": notes, "derived": derived}
    if absent:
        rec["absent"] = absent
    return rec


# --- command line ------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="btf_sizes.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("extract", help="sizes from a real BTF (raw, ELF, vmlinuz or .deb)")
    ex.add_argument("source", help=f"BTF blob, vmlinux, vmlinuz or .deb (e.g. {SYS_BTF})")
    ex.add_argument("--profile", required=True, help='profile name, e.g. "6.1"')
    ex.add_argument("--distro", help='e.g. "Debian 12 (bookworm-security)"')
    ex.add_argument("--source-label", help="provenance source text (default: built)")
    ex.add_argument("--config", help="kernel .config (plain or gzip) for the config facts")
    ex.add_argument("--arch", help="architecture of a raw BTF blob (default from the ELF)")
    ex.add_argument("--date", help="provenance date (default today)")
    ex.add_argument("-o", "--output", help="output file (default "
                    "pybpfmem/profiles/structs/<profile>.json; - for stdout)")
    de = sub.add_parser("derive", help="a derived profile from a derivation spec")
    de.add_argument("spec", help="tools/derivations/<profile>.json")
    de.add_argument("--date", help="provenance date (default today)")
    de.add_argument("-o", "--output", help="output file (default as for extract)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "extract":
            rec = extract(args)
        else:
            spec = json.loads(Path(args.spec).read_text())
            base = json.loads((STRUCTS_DIR / f"{spec['base']}.json").read_text())
            other = (json.loads((STRUCTS_DIR / f"{spec['other']}.json").read_text())
                     if spec.get("other") else None)
            rec = derive(spec, base, other, args.date)
    except (OSError, ValueError) as e:   # BtfError is a ValueError
        print(f"btf_sizes: {e}", file=sys.stderr)
        return 1
    out = args.output or str(STRUCTS_DIR / f"{rec['profile']}.json")
    if out == "-":
        sys.stdout.write(dump(rec))
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(dump(rec))
        absent = ", ".join(rec.get("absent", {})) or "none"
        print(f"{out}: {len(rec['sizes'])} sizes, absent: {absent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
