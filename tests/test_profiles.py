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

# Switches whose mainline commit is still not established (only rebasing mm-tree hashes were
# found; the subject and the first release are known).  The test below fails both when a
# switch is missing one and is not listed here, and when a listed switch has gained it
# (then remove it from the list).
COMMIT_PENDING = frozenset({"max_event_on_force", "nofail_forces_before_oom",
                            "sb_scan_exact_total"})   # bracketed 6.14.0 .. 6.17.0
FIRST_PENDING: frozenset[str] = frozenset()


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
        assert s.doc and s.layer in ("mm", "bpf") and s.title, s


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


def _changed(a: object, b: object) -> set[str]:
    return {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}


def test_derived_profiles_differ_only_where_named() -> None:
    # 5.11.0 against the latest 5.10.y: the memcg-accounting switches, and what 5.10.y took
    # as backports after 5.11 was released (dying tasks no longer force: a4ebf1b6ca1e in
    # 5.10.y; the large kmalloc stat 96403bfe50c3; the 2024 BPF fixes)
    a, b = get_profile("5.10"), get_profile("5.11")
    assert _changed(a.mm, b.mm) == {"dying_task_forces", "large_kmalloc_memcg_stat"}
    assert _changed(a.bpf, b.bpf) == {
        "rlimit", "account", "map_memcg", "htab_map_locked", "htab_large_key",
        "percpu_value_limit", "htab_max_2g", "lpm_exist_flags"}
    assert (a.uapi.max_map_type, b.uapi.max_map_type) == (28, 29)   # + TASK_STORAGE
    # 6.8.0 against 6.6.y: the 6.8 switches (memcg->orig_objcg, v6.7), and the LTS
    # backports 6.8.y never got
    c, d = get_profile("6.6"), get_profile("6.8")
    assert _changed(c.mm, d.mm) == {"memcg_orig_objcg"}
    assert _changed(c.bpf, d.bpf) == {
        "memalloc_prefill_split", "perf_event_entry_kernel_gfp", "percpu_value_limit",
        "htab_max_2g", "lpm_exist_flags", "lpm_full_inplace", "lru_target_free_clamp",
        "prog_array_owner_attach_type"}
    assert (c.nowait_nowarn, d.nowait_nowarn) == (False, True)


def test_lts_profiles_follow_their_stable_backports() -> None:
    # a switch that names a stable backport carries the newer value on every profile whose
    # line took it, though the line's first release predates the commit
    p = PROFILES
    assert p["5.10"].percpu_value_limit and p["5.15"].percpu_value_limit   # 5.10.227, 5.15.168
    assert p["6.1"].selem_compact and p["6.1"].local_storage_kvcalloc      # 6.1.100
    assert p["5.10"].lpm_exist_flags and not p["5.10"].lpm_full_inplace    # 5.10.231 only
    assert p["6.1"].lpm_full_inplace and not p["6.8"].lpm_full_inplace     # 6.1.120; 6.8.y ended
    assert p["5.10"].large_kmalloc_memcg_stat and not p["5.11"].large_kmalloc_memcg_stat
    assert not p["5.10"].dying_task_forces and not p["5.15"].dying_task_forces
    assert p["6.6"].lru_target_free_clamp and p["6.12"].lru_target_free_clamp   # 6.6.99, 6.12.39
    assert not p["6.1"].lru_target_free_clamp and not p["6.8"].lru_target_free_clamp
    assert p["6.1"].prog_array_owner_attach_type and not p["6.8"].prog_array_owner_attach_type
    assert not p["5.15"].prog_array_owner_attach_type           # 6.1.156, 6.6.112, 6.12.53


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


def test_memory_stat_keys_are_what_the_kernels_print() -> None:
    # memory.stat of a fresh v2 cgroup in Debian's 5.10.262, 6.1.192, 6.12.118 and 6.18.15,
    # booted under QEMU (tools/kernel-vm): the keys, in order
    data = json.loads((ROOT / "tests" / "fixtures" / "memory_stat_v2_keys.json").read_text())
    seen = set()
    for k in data["kernels"]:
        assert list(get_profile(k["profile"]).stat_keys_v2) == k["keys"], k["kernel"]
        seen.add(k["profile"])
    assert seen == {"5.10", "6.1", "6.12", "6.18"}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_key_lists_agree_with_the_switches(name: str) -> None:
    p = get_profile(name)
    keys = set(p.stat_keys_v2)
    assert ("kernel" in keys) == bool(p.stat_kernel)
    assert ("vmalloc" in keys) == bool(p.stat_vmalloc)
    assert ("memory.peak" in p.files("v2")) == p.has_memory_peak
    assert not p.memory_peak_write or p.has_memory_peak
    assert ("oom_group_kill" in p.event_keys) == p.has_memory_peak   # v5.17 and v5.19: 6.1+
    assert len(set(p.stat_keys_v2)) == len(p.stat_keys_v2)
    assert p.gfp.GFP_ATOMIC == (0xA20 if p.has_gfp_atomic else 0x820)


@pytest.mark.parametrize("release, profile", [
    ("5.10.0-46-amd64", "5.10"), ("5.15.0-119-generic", "5.15"), ("6.1.0-57-amd64", "6.1"),
    ("6.8.0-45-generic", "6.8"), ("6.12.118+deb13-amd64", "6.12"), ("6.18.44-fc-v1300", "6.18"),
    ("6.6.87.2-microsoft-standard-WSL2", "6.6"), ("6.5.0-1-amd64", None), ("4.19.0", None),
    ("linux", None), ("", None)])
def test_profile_for_release(release: str, profile: str | None) -> None:
    from pybpfmem.profiles import profile_for_release
    assert profile_for_release(release) == profile


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_absent_structs_are_map_types_the_release_lacks(name: str) -> None:
    # a struct size marked absent belongs to a map type the release does not have; the map
    # type's existence is the profile's uapi data (enum bpf_map_type), not the missing size
    from pybpfmem.bpf import uapi as U
    p = get_profile(name)
    absent = {f.name for f in dataclasses.fields(StructSizes) if getattr(p.sizes, f.name) is None}
    owners = {"bpf_bloom_filter": U.BPF_MAP_TYPE_BLOOM_FILTER}
    assert absent <= set(owners)
    for struct_name, map_type in owners.items():
        assert (struct_name in absent) == (not p.uapi.has_map_type(map_type)), struct_name
