"""Find the BTF of a kernel in the files a user has: a raw BTF blob
(``/sys/kernel/btf/vmlinux``), a vmlinux ELF (its ``.BTF`` section), a bzImage
(``vmlinuz``: the compressed payload named by the x86 boot header), a compressed
vmlinux, or a distro ``.deb`` (``boot/vmlinuz-*`` and ``boot/config-*`` of its
data.tar).  ``unpack()`` returns the blob with what the container told about the
kernel (release, config, package), which ``tools/btf_sizes.py`` records as
provenance and ``System(btf=...)`` uses to name the kernel.

Decompression: gzip, xz, lzma and bzip2 from the standard library; zstd from the
``zstandard`` module or the ``zstd`` program; lz4 and lzo from the ``lz4`` and
``lzop`` programs.  A base module: it imports nothing else from pybpfmem.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import shutil
import struct
import subprocess
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

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
ARCH_PAGE_SIZE = {"x86_64": 4096, "i386": 4096}


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


def read(path: str | Path) -> Unpacked:
    """``unpack()`` of the file at ``path`` (OSError if unreadable, ValueError if no BTF)."""
    p = Path(path)
    return unpack(p.read_bytes(), str(p))
