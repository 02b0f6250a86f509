#!/usr/bin/env python3
"""Kernel struct sizes -> pybpfmem/profiles/structs/<profile>.json, from a real vmlinux BTF
(`extract`) or from the DWARF of kernel objects compiled from a source tree (`compile`).

    python tools/btf_sizes.py extract SOURCE --profile 6.1 [--distro "Debian 12"] ...
    python tools/btf_sizes.py compile tools/recipes/6.6.json --git GITDIR --config CONFIG
    python tools/btf_sizes.py compare A.json B.json

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

``compile`` serves the kernels whose distro builds cannot be had: it checks a commit of a kernel
tree out of its git directory, brings a distro config to it with ``make olddefconfig``, runs
``make prepare``, builds the few objects of ``OBJECTS`` (whose DWARF holds every struct), and
encodes their struct types as BTF (``DwarfBtf``, as pahole does for a vmlinux) so that the same
``extract_sizes()`` reads them.  Its inputs and the reasons for them are a recipe in
``tools/recipes/``; docs/btf-sizes.md says how the method was validated against real BTF.

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
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pybpfmem.btf import Btf, BtfBuilder, BtfError, offsetof  # noqa: E402,F401  (the project's BTF parser)
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
    # options distro configs differ on that change task_struct or the memcg structs
    "CONFIG_PREEMPT_RCU", "CONFIG_LRU_GEN", "CONFIG_SCHED_CORE", "CONFIG_UCLAMP_TASK",
    "CONFIG_UBSAN", "CONFIG_LATENCYTOP", "CONFIG_RV", "CONFIG_VIRT_CPU_ACCOUNTING_GEN",
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


# --- compiled: a kernel source tree, a distro config, the compiler's DWARF ---------------------

#: The objects built for `compile`: together their DWARF holds every struct of required_keys()
#: (the comment names the structs each one is there for; most headers' structs are in several).
#: An object whose source file a tree does not have is skipped (bloom_filter.c came in v5.16).
OBJECTS = (
    "kernel/bpf/syscall.o",            # bpf_map, bpf_prog, bpf_prog_aux, bpf_prog_stats
    "kernel/bpf/arraymap.o",           # bpf_array, bpf_array_aux
    "kernel/bpf/hashtab.o",            # bpf_htab, htab_elem, bucket
    "kernel/bpf/lpm_trie.o",           # lpm_trie, lpm_trie_node
    "kernel/bpf/ringbuf.o",            # bpf_ringbuf_map, bpf_ringbuf (RINGBUF_NR_META_PAGES)
    "kernel/bpf/local_storage.o",      # bpf_cgroup_storage_map, bpf_cgroup_storage, bpf_storage_buffer
    "kernel/bpf/bpf_local_storage.o",  # bpf_local_storage_map (+ _bucket), _elem, bpf_local_storage
    "kernel/bpf/queue_stack_maps.o",   # bpf_queue_stack
    "kernel/bpf/stackmap.o",           # bpf_stack_map
    "kernel/bpf/devmap.o",             # bpf_dtab, bpf_dtab_netdev
    "kernel/bpf/cpumap.o",             # bpf_cpu_map
    "kernel/bpf/bloom_filter.o",       # bpf_bloom_filter
    "kernel/bpf/bpf_struct_ops.o",     # bpf_struct_ops_map
    "kernel/bpf/reuseport_array.o",    # reuseport_array
    "kernel/bpf/offload.o",            # bpf_offloaded_map
    "net/xdp/xskmap.o",                # xsk_map, xsk_map_node
    "net/core/sock_map.o",             # bpf_stab, bpf_shtab (+ _bucket, _elem)
    "mm/memcontrol.o",                 # mem_cgroup and its per-node, stats and objcg structs
    "mm/page_counter.o",               # page_counter
    "fs/file.o",                       # file, fdtable, files_struct (and dentry, inode, task_struct)
)

#: Structs whose DWARF definitions are encoded (the sized keys and the two COMPUTED reads).
_ROOTS = frozenset(set(required_keys()) - set(COMPUTED) | {"bpf_prog", "bpf_ringbuf"})

_DW_ATE_FLOAT = 0x04
_MODIFIER_TAGS = {"DW_TAG_const_type": "const", "DW_TAG_volatile_type": "volatile",
                  "DW_TAG_restrict_type": "restrict"}


class DwarfBtf:
    """The struct types of compiled objects' DWARF, encoded as BTF, as pahole -J encodes a
    vmlinux (scripts/link-vmlinux.sh), so that extract_sizes() reads a compiled tree exactly as
    it reads a distro kernel's BTF.  Only what sizes and member offsets need is encoded: each
    root struct with everything it holds by value; a pointer becomes ``void *`` (its target's
    layout plays no part), an enum keeps its size but not its values."""

    def __init__(self) -> None:
        self.builder = BtfBuilder()
        self._ids: dict[tuple[str, int], int] = {}
        self._index_type = self.builder.int_("__ARRAY_SIZE_TYPE__", 4)   # as pahole names it

    def add_object(self, path: str, roots: frozenset[str] = _ROOTS) -> None:
        """Encode every definition of a `roots` struct at file scope in the object's DWARF."""
        try:
            from elftools.common.exceptions import ELFError
            from elftools.elf.elffile import ELFFile
        except ImportError:
            raise ValueError("reading DWARF needs pyelftools (pip install pyelftools)") from None
        with open(path, "rb") as f:
            try:
                elf = ELFFile(f)
            except ELFError as e:
                raise ValueError(f"{path}: not an ELF object ({e})") from None
            if elf.get_section_by_name(".debug_info") is None:
                raise ValueError(f"{path}: no DWARF (.debug_info); build it with -g")
            for cu in elf.get_dwarf_info().iter_CUs():
                for die in cu.get_top_DIE().iter_children():
                    if (die.tag == "DW_TAG_structure_type" and _name(die) in roots
                            and "DW_AT_declaration" not in die.attributes):
                        self._type(path, die)

    def build(self) -> bytes:
        return self.builder.build()

    def _type(self, path: str, die) -> int:
        key = (path, die.offset)
        if key not in self._ids:
            self._ids[key] = self._encode(path, die)
        return self._ids[key]

    def _target(self, path: str, die) -> int:
        """The type id of the DIE's DW_AT_type (0, void, when it has none)."""
        if "DW_AT_type" not in die.attributes:
            return 0
        return self._type(path, die.get_DIE_from_attribute("DW_AT_type"))

    def _encode(self, path: str, die) -> int:
        b, tag, attrs = self.builder, die.tag, die.attributes
        if tag == "DW_TAG_base_type":
            size = attrs["DW_AT_byte_size"].value
            if attrs["DW_AT_encoding"].value == _DW_ATE_FLOAT:
                return b.float_(_name(die), size)
            return b.int_(_name(die), size)
        if tag in ("DW_TAG_pointer_type", "DW_TAG_reference_type"):
            return b.ptr(0)
        if tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
            union = tag == "DW_TAG_union_type"
            if "DW_AT_declaration" in attrs:
                return b.fwd(_name(die), union)
            members = [_member(die_m, self._target(path, die_m))
                       for die_m in die.iter_children() if die_m.tag == "DW_TAG_member"]
            return b.struct(_name(die), attrs["DW_AT_byte_size"].value, members, union)
        if tag == "DW_TAG_typedef":
            return b.typedef(_name(die), self._target(path, die))
        if tag in _MODIFIER_TAGS:
            return getattr(b, _MODIFIER_TAGS[tag])(self._target(path, die))
        if tag == "DW_TAG_atomic_type":       # BTF has no _Atomic (pahole drops it too)
            return self._target(path, die)
        if tag == "DW_TAG_enumeration_type":
            return b.enum(_name(die), attrs["DW_AT_byte_size"].value
                          if "DW_AT_byte_size" in attrs else 4, [])
        if tag == "DW_TAG_array_type":
            tid = self._target(path, die)
            dims = [_nelems(d) for d in die.iter_children() if d.tag == "DW_TAG_subrange_type"]
            for n in reversed(dims or [0]):   # int a[2][3]: array of 2 (array of 3 int)
                tid = b.array(tid, self._index_type, n)
            return tid
        raise ValueError(f"{path}: DWARF {tag} at {die.offset:#x} held by value in a struct: "
                         f"not encodable (extend DwarfBtf)")


def _name(die) -> str:
    a = die.attributes.get("DW_AT_name")
    return a.value.decode(errors="replace") if a is not None else ""


def _nelems(sub) -> int:
    """Elements of one array dimension: DW_AT_count, or DW_AT_upper_bound + 1; a flexible
    array member (no bound) has 0."""
    a = sub.attributes
    if "DW_AT_count" in a:
        return int(a["DW_AT_count"].value)
    if "DW_AT_upper_bound" in a and isinstance(a["DW_AT_upper_bound"].value, int):
        return int(a["DW_AT_upper_bound"].value) + 1
    return 0


def _member(die, tid: int) -> tuple:
    """A BtfBuilder member (name, type, byte offset) or, for a bitfield, (name, type, bit
    offset, bits).  DWARF 4/5 give a bitfield's DW_AT_data_bit_offset; DWARF 2/3's
    DW_AT_bit_offset counts from the storage unit's most significant bit (little endian:
    from the top of DW_AT_byte_size bytes at DW_AT_data_member_location)."""
    a = die.attributes
    loc = a["DW_AT_data_member_location"].value if "DW_AT_data_member_location" in a else 0
    # (a union's members have no location: offset 0)
    if not isinstance(loc, int):
        raise ValueError(f"member {_name(die)!r}: DW_AT_data_member_location is an expression, "
                         f"not a constant")
    if "DW_AT_bit_size" not in a:
        return (_name(die), tid, loc)
    bits = a["DW_AT_bit_size"].value
    if "DW_AT_data_bit_offset" in a:
        return (_name(die), tid, a["DW_AT_data_bit_offset"].value, bits)
    unit = a["DW_AT_byte_size"].value * 8
    return (_name(die), tid, loc * 8 + unit - a["DW_AT_bit_offset"].value - bits, bits)


def sizes_from_objects(paths: list[str], page_size: int = 4096
                       ) -> tuple[dict[str, int], dict[str, str], dict[str, str], bytes]:
    """extract_sizes() of the BTF encoded from these objects' DWARF; also that BTF blob."""
    enc = DwarfBtf()
    for p in paths:
        enc.add_object(p)
    blob = enc.build()
    sizes, notes, absent = extract_sizes(Btf(blob), page_size)
    absent = {k: v.replace("in this BTF", "in the DWARF of the compiled objects")
              for k, v in absent.items()}
    return sizes, notes, absent, blob


# The build.  Every step is an ordinary kernel make target run in the exported tree, so a
# record can be reproduced by hand from its provenance: export, .config, olddefconfig,
# prepare, the objects.

def _run(cmd: list[str], cwd: str, log, check: bool = True) -> subprocess.CompletedProcess:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    r = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, check=False)
    if check and r.returncode != 0:
        raise ValueError(f"`{' '.join(cmd)}` failed (exit {r.returncode}); see {log.name}")
    return r


def _git(git_dir: str, *args: str, index: str | None = None, input: bytes | None = None
         ) -> bytes:
    env = dict(os.environ, GIT_DIR=git_dir)
    if index:
        env["GIT_INDEX_FILE"] = index
    r = subprocess.run(["git", *args], env=env, input=input, capture_output=True, check=False)
    if r.returncode != 0:
        raise ValueError(f"git {' '.join(args)}: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout


def export_tree(git_dir: str, commit: str, dest: Path) -> tuple[str, list[str]]:
    """Check `commit` of the repository `git_dir` out into `dest` (no work tree needed):
    (the full commit id, the paths left out because the snapshot lacks their blobs: partial
    mirrors drop their largest files, firmware and register headers that no BPF, mm or fs
    object includes).  A `dest` already holding that commit is reused."""
    full = _git(git_dir, "rev-parse", "--verify", f"{commit}^{{commit}}").decode().strip()
    stamp = dest / ".btf_sizes-export"
    if stamp.exists():
        rec = json.loads(stamp.read_text())
        if rec["commit"] == full:
            return full, rec["skipped"]
        raise ValueError(f"{dest} holds commit {rec['commit']}, not {full}: remove it first")
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"{dest} exists and is not an export of this tool: remove it first")
    dest.mkdir(parents=True, exist_ok=True)
    index = str(dest.parent / f".{dest.name}.index")
    _git(git_dir, "read-tree", full, index=index)
    listing = _git(git_dir, "ls-files", "-s", "-z", index=index).split(b"\0")
    blobs = {}                                      # "<mode> <sha> <stage>\t<path>"
    for entry in filter(None, listing):
        meta, path = entry.split(b"\t", 1)
        blobs[path.decode()] = meta.split()[1].decode()
    check = _git(git_dir, "cat-file", "--batch-check",
                 input="\n".join(sorted(set(blobs.values()))).encode() + b"\n")
    absent = {line.split()[0] for line in check.decode().splitlines() if line.endswith(" missing")}
    skipped = sorted(p for p, sha in blobs.items() if sha in absent)
    if skipped:
        _git(git_dir, "update-index", "--force-remove", "-z", "--stdin", index=index,
             input=b"\0".join(p.encode() for p in skipped) + b"\0")
    _git(git_dir, "checkout-index", "-a", f"--prefix={dest}/", index=index)
    os.unlink(index)
    stamp.write_text(json.dumps({"commit": full, "skipped": skipped}))
    return full, skipped


def _assignment(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"CONFIG_\w+", key):
        raise ValueError(f"--set {text!r}: expected CONFIG_NAME=VALUE")
    return key, value


def with_settings(config: str, sets: dict[str, str]) -> str:
    """The .config text with each option of `sets` given that value (as scripts/config
    --set-val / --disable): its old line removed, the new one appended."""
    if not sets:
        return config
    keep = [line for line in config.splitlines()
            if not any(re.fullmatch(rf"(# )?{k}(=.*| is not set)", line) for k in sets)]
    for k, v in sets.items():
        keep.append(f"# {k} is not set" if v == "n" else f"{k}={v}")
    return "\n".join(keep) + "\n"


def olddefconfig_changes(before: dict[str, str], after: dict[str, str]) -> dict:
    """What `make olddefconfig` did to a config: options whose value changed (old -> new), and
    how many it added with their Kconfig defaults or dropped (not in this tree)."""
    changed = {k: [before[k], after[k]] for k in sorted(before)
               if k in after and before[k] != after[k]}
    return {"changed": changed,
            "added_with_defaults": len(set(after) - set(before)),
            "dropped_unknown_to_tree": len(set(before) - set(after))}


def _make_var(tree: str, target: str, log) -> str:
    r = subprocess.run(["make", "-s", target], cwd=tree, capture_output=True, check=False)
    log.write(f"$ make -s {target}\n{r.stdout.decode(errors='replace')}")
    if r.returncode != 0:
        raise ValueError(f"make {target} failed in {tree}")
    return r.stdout.decode().strip().splitlines()[-1]


#: What a compile recipe (tools/recipes/<profile>.json) holds: the build's inputs and why.
RECIPE_KEYS = ("profile", "tree", "commit", "config", "config_sha256", "set", "make_vars",
               "why", "notes")


def load_recipe(args: argparse.Namespace) -> dict:
    """The recipe file (if given) with the command line's values on top; profile, tree, commit
    and config (the config's label) must be known, and a recipe's config_sha256 must be the
    --config file's."""
    r: dict = json.loads(Path(args.recipe).read_text()) if args.recipe else {}
    unknown = set(r) - set(RECIPE_KEYS)
    if unknown:
        raise ValueError(f"{args.recipe}: unknown recipe keys {sorted(unknown)}")
    for key, value in (("profile", args.profile), ("tree", args.tree_name),
                       ("commit", args.commit), ("config", args.config_label)):
        if value is not None:
            r[key] = value
    r["set"] = {**r.get("set", {}), **dict(_assignment(a) for a in args.set or ())}
    r["make_vars"] = [*r.get("make_vars", []), *(args.make_var or ())]
    for key, text in r.get("notes", {}).items():
        if key not in required_keys():
            raise ValueError(f"recipe note for {key!r}: not a struct key of this tool")
    missing = [k for k in ("profile", "tree", "commit", "config") if not r.get(k)]
    if missing:
        raise ValueError(f"compile needs {', '.join(missing)} (in a recipe or as options)")
    return r


def _config_text(path: str) -> bytes:
    raw = Path(path).read_bytes()
    return gzip.decompress(raw) if raw.startswith(b"\x1f\x8b") else raw


def _gcc_version() -> str | None:
    """make's default compiler, for trees older than CONFIG_CC_VERSION_TEXT (v5.8)."""
    r = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=False)
    return r.stdout.splitlines()[0] if r.returncode == 0 and r.stdout else None


def compile_tree(args: argparse.Namespace) -> dict:
    """The `compile` command: export the tree, bring the config to it (make olddefconfig),
    `make prepare`, build OBJECTS, read their DWARF."""
    r = load_recipe(args)
    cfg_raw = _config_text(args.config)
    if r.get("config_sha256") and sha256(cfg_raw) != r["config_sha256"]:
        raise ValueError(f"{args.config}: sha256 {sha256(cfg_raw)} is not the recipe's "
                         f"{r['config_sha256']} ({r['config']})")
    work = Path(args.workdir or f"/tmp/btf-sizes-{r['profile']}").resolve()
    tree = work / "linux"
    work.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now()
    timings: dict[str, float] = {}
    make_vars, sets = r["make_vars"], r["set"]
    with open(work / "build.log", "a") as log:
        log.write(f"\n# {started.isoformat()} {shlex.join([TOOL, *args.argv])}\n")

        def step(name: str, fn):
            t = datetime.datetime.now()
            out = fn()
            timings[name] = round((datetime.datetime.now() - t).total_seconds(), 1)
            return out

        commit, skipped = step("export", lambda: export_tree(args.git, r["commit"], tree))
        (tree / ".config").write_text(with_settings(cfg_raw.decode(errors="replace"), sets))
        before = parse_config(cfg_raw.decode(errors="replace"))
        step("olddefconfig", lambda: _run(["make", *make_vars, "olddefconfig"], str(tree), log))
        after = parse_config((tree / ".config").read_text(errors="replace"))
        lost = {k: v for k, v in sets.items() if after.get(k, "n") != v.strip('"')}
        if lost:
            raise ValueError(f"make olddefconfig did not keep {lost} (dependencies?): "
                             f"got { {k: after.get(k) for k in lost} }")
        if after.get("CONFIG_DEBUG_INFO_REDUCED") == "y":
            raise ValueError("CONFIG_DEBUG_INFO_REDUCED leaves most structs out of the DWARF")
        make = ["make", f"-j{args.jobs}", *make_vars]
        debug = "the config's CONFIG_DEBUG_INFO"
        if after.get("CONFIG_DEBUG_INFO") != "y":   # -g alone changes no layout
            make.append("KCFLAGS=-g")
            debug = "KCFLAGS=-g (the config has no CONFIG_DEBUG_INFO)"
        step("prepare", lambda: _run([*make, "prepare"], str(tree), log))
        objects = [o for o in OBJECTS if (tree / o).with_suffix(".c").exists()]
        for o in objects:                          # no stale object from an earlier run
            (tree / o).unlink(missing_ok=True)
        step("objects", lambda: _run([*make, "-k", *objects], str(tree), log, check=False))
        built = [o for o in objects if (tree / o).exists()]
        sizes, notes, absent, blob = step(
            "dwarf", lambda: sizes_from_objects([str(tree / o) for o in built]))
        version = _make_var(str(tree), "kernelversion", log)
        release = _make_var(str(tree), "kernelrelease", log)
    for key, text in r.get("notes", {}).items():
        notes[key] = f"{notes[key]}; {text}" if key in notes else text
    recipe = None
    if args.recipe:
        path = Path(args.recipe).resolve()
        recipe = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    prov = {
        "kind": "compiled",
        "source": (f"Linux {version} source ({r['tree']} @ {commit[:12]}) with {r['config']} "
                   f"(make olddefconfig), sizes from the DWARF of the objects compiled from it"),
        "recipe": recipe,
        "why": r.get("why"),
        "tree": r["tree"],
        "commit": commit,
        "kernel_version": version,
        "kernel_release": release,
        "tree_paths_absent": skipped,
        "config_source": r["config"],
        "config_sha256": sha256(cfg_raw),
        "config_set": sets,
        "olddefconfig": olddefconfig_changes(before, after),
        "config": {k: after.get(k) for k in CONFIG_FACTS},
        "compiler": after.get("CONFIG_CC_VERSION_TEXT") or _gcc_version(),
        "debug_info": debug,
        "make_vars": make_vars,
        "objects": built,
        "objects_failed": sorted(set(objects) - set(built)),
        "btf_encoded_sha256": sha256(blob),
        "arch": os.uname().machine,
        "command": shlex.join([TOOL, *args.argv]),
        "timings_s": timings,
        "tool": TOOL,
        "date": args.date or started.date().isoformat(),
    }
    rec: dict = {"profile": r["profile"], "provenance": prov, "sizes": sizes, "notes": notes}
    if absent:
        rec["absent"] = absent
    return rec


def compare(a: dict, b: dict) -> list[tuple[str, int | None, int | None]]:
    """(key, a's size, b's size) for every required key where the two records differ."""
    return [(k, a["sizes"].get(k), b["sizes"].get(k)) for k in required_keys()
            if a["sizes"].get(k) != b["sizes"].get(k)]


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
    co = sub.add_parser("compile", help="sizes from the DWARF of objects compiled from a "
                        "kernel source tree with a distro config")
    co.add_argument("recipe", nargs="?", help="tools/recipes/<profile>.json: the tree, commit, "
                    "config label and sha256, --set values, make variables, notes (the options "
                    "below override it, or replace it for an ad-hoc build)")
    co.add_argument("--git", required=True, help="the tree's git directory (no work tree needed)")
    co.add_argument("--config", required=True, help="the distro .config (plain or gzip), "
                    "brought to the tree with make olddefconfig")
    co.add_argument("--commit", help="the commit to build")
    co.add_argument("--tree-name", help='the tree in the provenance, e.g. '
                    '"github.com/unifreq/linux-6.1.y"')
    co.add_argument("--config-label", help='where the config comes from, e.g. "Debian 12 '
                    'linux-image-6.1.0-57-amd64 6.1.192-3 boot/config-6.1.0-57-amd64"')
    co.add_argument("--set", action="append", metavar="CONFIG_X=VALUE", help="set one option "
                    "before olddefconfig (repeatable; n to disable); olddefconfig must keep it")
    co.add_argument("--make-var", action="append", metavar="NAME=VALUE", help="a variable "
                    "for every make run (repeatable), e.g. WERROR=0 HOSTCFLAGS=-Wno-error for "
                    "an old tree's host tools under a newer compiler")
    co.add_argument("--profile", help='profile name, e.g. "6.6"')
    co.add_argument("--workdir", help="build directory (default /tmp/btf-sizes-<profile>); the "
                    "tree is exported to WORKDIR/linux, make's output goes to WORKDIR/build.log")
    co.add_argument("--jobs", type=int, default=2, help="make -j (default 2)")
    co.add_argument("--date", help="provenance date (default today)")
    co.add_argument("-o", "--output", help="output file (default as for extract)")
    cm = sub.add_parser("compare", help="the sizes where two structs files differ")
    cm.add_argument("a", help="a structs file")
    cm.add_argument("b", help="another structs file")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if args.cmd == "compare":
            a, b = (json.loads(Path(f).read_text()) for f in (args.a, args.b))
            diff = compare(a, b)
            for key, x, y in diff:
                print(f"{key}: {x} -> {y}")
            print(f"{len(required_keys()) - len(diff)} of {len(required_keys())} keys equal")
            return 0 if not diff else 3
        rec = extract(args) if args.cmd == "extract" else compile_tree(args)
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
