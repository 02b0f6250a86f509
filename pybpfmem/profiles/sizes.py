"""Kernel struct sizes of a profile, loaded from ``structs/<profile>.json``.

Each profile's data file records ``sizeof(struct X)`` keyed by the struct name
and its provenance: ``"btf"`` (read from a real vmlinux BTF by
``tools/btf_sizes.py``) or ``"derived"`` (worked out from the struct layouts of
that release, each figure explained under ``"derived"``).  ``StructSizes`` holds
the figures the model uses; other structs a file may carry (the memcg and
fd-object structs) stay in the file until the model needs them.

Two fields are not ``sizeof`` of the struct they are named after: they are
computed from BTF member offsets (``COMPUTED``): ``bpf_ringbuf_meta_pages``
(RINGBUF_NR_META_PAGES, kernel/bpf/ringbuf.c) and ``bpf_prog``
(``offsetof(struct bpf_prog, insns)``, bpf_prog_size()).  ``extract_sizes()``
reads every figure from a BTF (the data files' tool, tools/btf_sizes.py, and
``System(btf=...)`` both use it).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from ..btf import Btf

STRUCTS_DIR = Path(__file__).with_name("structs")
PROVENANCE_KINDS = ("btf", "derived", "compiled")


@dataclass(frozen=True)
class StructSizes:
    """sizeof() of the kernel structs the model allocates (x86_64)."""

    bpf_map: int
    bpf_array: int
    bpf_array_aux: int
    bpf_htab: int
    htab_elem: int
    bucket: int
    bpf_ringbuf_map: int
    bpf_ringbuf_meta_pages: int     # RINGBUF_NR_META_PAGES (a page count)
    bpf_prog: int                   # offsetof(struct bpf_prog, insns)
    bpf_prog_aux: int
    bpf_prog_stats: int
    lpm_trie: int
    lpm_trie_node: int
    bpf_queue_stack: int
    bpf_stack_map: int
    stack_map_bucket: int
    bpf_dtab: int
    bpf_dtab_netdev: int
    bpf_cpu_map: int
    bpf_cpu_map_entry: int
    xdp_bulk_queue: int
    ptr_ring: int
    xsk_map: int
    xsk_map_node: int
    bpf_stab: int
    bpf_shtab: int
    bpf_shtab_bucket: int
    bpf_shtab_elem: int
    sk_psock_link: int
    sk_psock: int
    reuseport_array: int
    bpf_cgroup_storage_map: int
    bpf_cgroup_storage: int
    bpf_storage_buffer: int         # header of struct bpf_storage_buffer
    bpf_local_storage_map: int
    bpf_local_storage_map_bucket: int
    bpf_local_storage_elem: int
    bpf_local_storage: int
    bpf_struct_ops_map: int
    bpf_bloom_filter: int
    bpf_offloaded_map: int

    def with_overrides(self, **sizes: int) -> StructSizes:
        """A copy with some sizes replaced (unknown names raise TypeError)."""
        return dataclasses.replace(self, **sizes)

    def from_btf(self, path: str = "/sys/kernel/btf/vmlinux", page_size: int = 4096) -> StructSizes:
        """A copy with every figure the BTF in the file at ``path`` gives (raw BTF, vmlinux
        ELF, vmlinuz, compressed vmlinux or .deb: pybpfmem.kimage), the computed ones
        included (``extract_sizes()``); figures it lacks keep this copy's values."""
        from .. import kimage
        from ..btf import Btf
        found, _, _ = extract_sizes(Btf(kimage.read(path).btf), page_size)
        return self.with_overrides(**{k: v for k, v in found.items() if k in _FIELDS})

    @classmethod
    def from_mapping(cls, sizes: Mapping[str, int], what: str,
                     absent: Mapping[str, str] | None = None) -> StructSizes:
        """The sizes of a data file's ``"sizes"`` object.  Every field is required unless
        the file lists it under ``"absent"`` (the struct does not exist in that release,
        e.g. ``bpf_bloom_filter`` before v5.16): such a field is None, and the profile's
        map-type table keeps the model from ever reading it."""
        absent = absent or {}
        missing = [n for n in _FIELDS if n not in sizes and n not in absent]
        if missing:
            raise ValueError(f"{what}: no size for {', '.join(missing)}")
        bad = [n for n, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0]
        if bad:
            raise ValueError(f"{what}: sizes must be non-negative ints: {', '.join(bad)}")
        return cls(**{n: sizes.get(n) for n in _FIELDS})  # type: ignore[arg-type]


_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(StructSizes))


@dataclass(frozen=True)
class MmStructs:
    """sizeof() of the structs the memory layer allocates itself: what
    mem_cgroup_alloc() allocates with GFP_KERNEL_ACCOUNT (by release, see
    Profile.memcg_allocs()), and a dentry.  None: not in the profile's data (the
    struct does not exist in that release, or the file does not carry it).
    ``source`` names the structs file the sizes came from."""

    memcg_vmstats_percpu: int | None = None
    memcg_vmstats: int | None = None
    lruvec_stat: int | None = None          # <= v5.14 (per node, percpu)
    lruvec_stats_percpu: int | None = None  # v5.15+
    lruvec_stats: int | None = None
    memcg1_events_percpu: int | None = None  # v6.11+, with CONFIG_MEMCG_V1
    dentry: int | None = None
    source: str = ""


MM_STRUCTS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(MmStructs) if f.name != "source")


def load_mm_structs(profile: str, **extra: int) -> MmStructs:
    """The MmStructs of ``structs/<profile>.json``.  A struct a derived file (no
    BTF of its own) does not size is taken from its base profile's file
    (provenance ``base_profile``): the nearest real BTF's size.  ``extra``
    supplies sizes the files do not carry, each with its source in the
    caller's comment."""
    path = STRUCTS_DIR / f"{profile}.json"
    data = read_struct_file(path)
    found = {k: data["sizes"][k] for k in MM_STRUCTS if k in data["sizes"]}
    source = path.name
    base = data["provenance"].get("base_profile")
    if base and len(found) < len(MM_STRUCTS):
        bpath = STRUCTS_DIR / f"{base}.json"
        bsizes = read_struct_file(bpath)["sizes"]
        taken = {k: bsizes[k] for k in MM_STRUCTS if k not in found and k in bsizes}
        if taken:
            found.update(taken)
            source = f"{path.name} (+ {', '.join(sorted(taken))} from {bpath.name})"
    found.update(extra)
    return MmStructs(source=source, **found)


def load_struct_sizes(profile: str) -> StructSizes:
    """The StructSizes of ``structs/<profile>.json`` (ValueError if malformed)."""
    path = STRUCTS_DIR / f"{profile}.json"
    data = read_struct_file(path)
    if data["profile"] != profile:
        raise ValueError(f"{path}: written for profile {data['profile']!r}, not {profile!r}")
    return StructSizes.from_mapping(data["sizes"], str(path), data.get("absent"))


def read_struct_file(path: Path) -> dict[str, Any]:
    """A struct-size data file, checked for the keys the format requires."""
    data = json.loads(path.read_text())
    for key in ("profile", "provenance", "sizes"):
        if key not in data:
            raise ValueError(f"{path}: no {key!r}")
    kind = data["provenance"].get("kind")
    if kind not in PROVENANCE_KINDS:
        raise ValueError(f"{path}: provenance kind {kind!r} not in {PROVENANCE_KINDS}")
    if kind == "derived" and not data.get("derived"):
        raise ValueError(f"{path}: a derived file explains its figures under 'derived'")
    return data


# --- what a BTF gives -------------------------------------------------------------------

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
COMPUTED_FIELDS = frozenset(COMPUTED)
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


def model_fields() -> tuple[str, ...]:
    """The StructSizes field names, in declaration order."""
    return _FIELDS


def required_keys() -> tuple[str, ...]:
    """Every key a structs file's `sizes` holds (when the kernel has the struct)."""
    return _FIELDS + EXTRA_STRUCTS


def find_struct(btf: Btf, name: str) -> int | None:
    """The type id of `struct name`; where vmlinux has several of that name with different
    sizes, the one with the SIGNATURES members; an ambiguity left is an error."""
    from ..btf import BtfError
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


def _computed(btf: Btf, name: str, page_size: int) -> tuple[int | None, str]:
    from ..btf import BtfError, offsetof
    if name == "bpf_prog":
        tid = find_struct(btf, "bpf_prog")
        off = offsetof(btf, tid, "insns") if tid else None
        if tid is None or off is None:
            return None, "no struct bpf_prog with an insns member"
        note = COMPUTED[name]
        if btf.sizeof(tid) != off:
            note += f"; sizeof(struct bpf_prog) = {btf.sizeof(tid)}"
        return off, note
    if name == "bpf_ringbuf_meta_pages":
        tid = find_struct(btf, "bpf_ringbuf")
        off = offsetof(btf, tid, "consumer_pos") if tid else None
        if tid is None or off is None:
            return None, "no struct bpf_ringbuf with a consumer_pos member"
        mt = next(m.type for m in btf.type(tid).members if m.name == "consumer_pos")
        if btf.type(btf.skip_mods_and_typedefs(mt)).kind_name == "PTR":
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
