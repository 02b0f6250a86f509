"""Kernel profiles as data: the switch catalogue, its docs table, the struct-size files and
the rule that no code compares release numbers."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest

import pybpfmem
from pybpfmem.profiles import (MM_FACTS, PROFILE_SWITCHES, PROFILES, SWITCHES, BpfSwitches,
                               MmSwitches, StructSizes, get_profile, load_struct_sizes,
                               render_table)
from pybpfmem.profiles.sizes import STRUCTS_DIR, read_struct_file

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "pybpfmem"

# Switches whose commit (or first release) is still being researched.  The test below fails
# both when a switch is missing one and is not listed here, and when a listed switch has
# gained it (then remove it from the list).
COMMIT_PENDING = frozenset({
    "drain_obj_stock_direct", "max_event_on_force", "percpu_ptr_overhead", "stat_kernel",
    "stat_vmalloc", "high_set_before_reclaim", "nospin_no_batch", "kmem_uncharge_skips_root",
    "has_memory_peak", "map_objcg", "prog_alloc_enomem", "memalloc_prefill_split",
    "array_value_int_max", "cgroup_storage_large_value", "local_storage_kvcalloc",
    "selem_compact", "lpm_trie_update_flags", "struct_ops_vtype_btf_obj_fd", "fdinfo_ino",
    # the mainline hashes of these were not established (only rebased mm/linux-next ones)
    "reclaim_partial_walk", "memcg_reclaim_counts_slab", "sb_scan_exact_total",
    "kpagecgroup_folio",
})
FIRST_PENDING = frozenset({"drain_obj_stock_direct", "nospin_no_batch", "kmem_uncharge_skips_root"})


def test_catalogue_names_every_switch_once() -> None:
    names = [s.name for s in SWITCHES]
    assert len(names) == len(set(names))
    fields = set(PROFILE_SWITCHES) | {f.name for f in dataclasses.fields(BpfSwitches)} | set(MM_FACTS)
    assert set(names) == fields
    layers = {s.name: s.layer for s in SWITCHES}
    assert {n for n, layer in layers.items() if layer == "bpf"} == \
        {f.name for f in dataclasses.fields(BpfSwitches)}


def test_every_switch_cites_its_commit_and_first_release() -> None:
    no_commit = {s.name for s in SWITCHES if not s.commit}
    no_first = {s.name for s in SWITCHES if not s.first}
    assert no_commit == COMMIT_PENDING
    assert no_first == FIRST_PENDING
    for s in SWITCHES:
        assert not s.commit or re.fullmatch(r"[0-9a-f]{12,40}", s.commit), s
        assert not s.first or re.fullmatch(r"v\d+\.\d+", s.first), s
        assert s.doc and s.layer in ("mm", "bpf"), s


def test_docs_table_is_the_rendered_catalogue() -> None:
    text = (ROOT / "docs" / "profiles.md").read_text()
    start = text.index("<!-- switch table:")
    start = text.index("\n", start) + 1
    end = text.index("<!-- end of switch table -->")
    assert text[start:end] == render_table(PROFILES.values()), \
        "regenerate the table with `python -m pybpfmem.profiles`"


def test_mm_switches_are_struct_bm_profile_in_order() -> None:
    # the order the C core declares its fields in (csrc/bpfmem.h)
    header = (ROOT / "csrc" / "bpfmem.h").read_text()
    body = header[header.index("struct bm_profile {"):]
    body = body[:body.index("};")]
    c_fields = re.findall(r"uint32_t (\w+);", body)
    assert tuple(c_fields) == PROFILE_SWITCHES == tuple(f.name for f in dataclasses.fields(MmSwitches))


def test_profile_reads_switches_by_name() -> None:
    p = get_profile("5.11")
    assert (p.charge_batch, p.mm.charge_batch, p.account, p.bpf.account) == (32, 32, True, True)
    assert p.switch("rlimit") is False
    with pytest.raises(AttributeError):
        p.no_such_switch
    with pytest.raises(KeyError):
        p.switch("name")          # a field, not a catalogued switch


def test_derived_profiles_differ_only_where_named() -> None:
    # 5.11 is 5.10 with the memcg-accounting switches: the mm side is the same (3de7d4f25a74
    # reached 5.10.y), so is every other BPF switch
    a, b = get_profile("5.10"), get_profile("5.11")
    assert a.mm == b.mm
    changed = {f.name for f in dataclasses.fields(BpfSwitches)
               if getattr(a.bpf, f.name) != getattr(b.bpf, f.name)}
    assert changed == {"rlimit", "account", "map_memcg", "htab_map_locked"}
    assert (a.uapi.max_map_type, b.uapi.max_map_type) == (28, 29)   # + TASK_STORAGE


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_struct_size_file(name: str) -> None:
    # the file's format and provenance: tests/test_btf_sizes.py; here, what the loader needs
    data = read_struct_file(STRUCTS_DIR / f"{name}.json")
    assert data["profile"] == name
    fields = {f.name for f in dataclasses.fields(StructSizes)}
    absent = set(data.get("absent", {}))
    assert fields <= set(data["sizes"]) | absent
    if data["provenance"]["kind"] == "derived":
        assert set(data["derived"]) >= fields - absent     # every figure says where it comes from
    sizes = load_struct_sizes(name)
    assert sizes == get_profile(name).sizes
    assert {f for f in fields if getattr(sizes, f) is None} == fields & absent


def test_struct_size_file_errors(tmp_path: Path) -> None:
    good = json.loads((STRUCTS_DIR / "6.18.json").read_text())
    bad = dict(good, provenance=dict(good["provenance"], kind="guess"))
    (tmp_path / "x.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="provenance kind"):
        read_struct_file(tmp_path / "x.json")
    sizes = dict(good["sizes"])
    del sizes["bpf_htab"]
    with pytest.raises(ValueError, match="no size for bpf_htab"):
        StructSizes.from_mapping(sizes, "x")


def test_cli_profile_choices_come_from_the_registry() -> None:
    from pybpfmem.commands import demo, fuzzcmd, plan
    assert demo.build_parser().parse_args(["--profile", "5.10"]).profile == ["5.10"]
    for mod in (demo, plan, fuzzcmd):
        parser = mod.build_parser()
        action = next(a for a in parser._actions if a.dest == "profile")
        assert set(action.choices) - {"all"} <= set(pybpfmem.PROFILE_NAMES)
        assert set(action.choices) - {"all"}      # not empty


_VERSION = re.compile(r"^v?\d+\.\d+")


def _version_comparisons(source: str) -> list[int]:
    """Lines comparing with a release-number literal ("6.18" == x, x in ("5.10",), x < "6.1")
    or comparing a profile's name."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        for side in (node.left, *node.comparators):
            consts = [side] if isinstance(side, ast.Constant) else (
                list(side.elts) if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [])
            if any(isinstance(c, ast.Constant) and isinstance(c.value, str)
                   and _VERSION.match(c.value) for c in consts):
                out.append(node.lineno)
            elif isinstance(side, ast.Attribute) and side.attr == "name" and \
                    "prof" in ast.unparse(side.value):
                out.append(node.lineno)
    return sorted(set(out))


def test_no_code_compares_release_numbers() -> None:
    found = [f"{p.relative_to(ROOT)}:{line}" for p in sorted(PKG.rglob("*.py"))
             for line in _version_comparisons(p.read_text())]
    assert found == []


def test_version_comparison_finder_sees_them() -> None:
    src = ('a = p == "6.18"\nb = prof.name in ("5.10",)\nc = x < "6.1"\nd = "5.11" in names\n'
           'e = S.profile.name != x\nf = x == "memory.peak"\n')
    assert _version_comparisons(src) == [1, 2, 3, 4, 5]
