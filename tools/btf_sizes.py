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

The unpacking (ELF / bzImage / deb) is pybpfmem/kimage.py, the size extraction
pybpfmem/profiles/sizes.py and the BTF parser pybpfmem/btf.py: ``System(btf=...)`` and
``--btf`` use the same code.
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pybpfmem.profiles.sizes import StructSizes  # noqa: E402  (the one list of model sizes)
from pybpfmem.btf import Btf, BtfError, offsetof  # noqa: E402,F401  (the project's BTF parser)
# what a BTF gives the model: shared with System(btf=...)
from pybpfmem.profiles.sizes import (  # noqa: E402,F401
    COMPUTED, EXTRA_STRUCTS, RINGBUF_POS_PAGES, SIGNATURES, extract_sizes, find_struct,
    model_fields, required_keys)
# where the BTF sits in a kernel file: shared with System(btf=...)
from pybpfmem.kimage import (  # noqa: E402,F401
    ARCH_PAGE_SIZE, AR_MAGIC, BTF_MAGICS, ELF_MAGIC, MAGICS, Unpacked, bzimage_payload, compression_of,
    decompress, from_bzimage, from_deb, from_elf, parse_config, unpack)

STRUCTS_DIR = ROOT / "pybpfmem" / "profiles" / "structs"
TOOL = "tools/btf_sizes.py"

#: Kernel config facts recorded in the provenance (layouts and accounting depend on them).
CONFIG_FACTS = (
    "CONFIG_CC_VERSION_TEXT", "CONFIG_SMP", "CONFIG_NR_CPUS", "CONFIG_NUMA", "CONFIG_NODES_SHIFT",
    "CONFIG_PREEMPT_RT", "CONFIG_PREEMPT_DYNAMIC", "CONFIG_DEBUG_SPINLOCK",
    "CONFIG_DEBUG_LOCK_ALLOC", "CONFIG_LOCKDEP", "CONFIG_KASAN", "CONFIG_SLUB", "CONFIG_SLAB",
    "CONFIG_SLUB_DEBUG", "CONFIG_MEMCG", "CONFIG_MEMCG_KMEM", "CONFIG_MEMCG_V1",
    "CONFIG_CGROUP_BPF", "CONFIG_BPF_SYSCALL", "CONFIG_BPF_JIT", "CONFIG_BPF_LSM",
    "CONFIG_BPF_STREAM_PARSER", "CONFIG_XDP_SOCKETS", "CONFIG_DEBUG_INFO_BTF",
)


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
    if arch not in ARCH_PAGE_SIZE:
        raise ValueError(f"arch {arch}: page size unknown to this tool")
    btf = Btf(u.btf)
    sizes, notes, absent = extract_sizes(btf, ARCH_PAGE_SIZE[arch])
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
