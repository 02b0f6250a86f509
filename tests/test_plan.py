"""``pybpfmem plan``: plans that cannot mislead.  Each test pins a line of the output or a
JSON field, and the exit code, to a value derived from the kernel's rules (the struct
sizes are the profile's: 6.18 bpf_htab 832, bpf_array 312; 5.11 htab_elem 48)."""

from __future__ import annotations

import json
import pathlib

import pytest

from pybpfmem.commands import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
PAGE = 4096


@pytest.fixture(autouse=True)
def _80_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")


def run(capsys, *argv):
    rc = cli.main(["plan", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def run_json(capsys, *argv):
    rc, out, err = run(capsys, *argv, "--json")
    return rc, json.loads(out), err


def lines(text: str) -> list[str]:
    return [ln.rstrip() for ln in text.splitlines()]


# ------------------------------------------------------------- maps that cannot be created

def test_a_map_that_cannot_be_created_fails_the_plan(capsys):
    # 4 TiB of array values: bpf_map_area_alloc() -> vmalloc fails on any machine of 64 GiB,
    # whatever memory.max is; the plan names the map and the check, recommends nothing
    argv = ("--map", "big=array:4:4096:1073741824", "--map", "ok=hash:4:8:100")
    rc, out, _ = run(capsys, *argv)
    assert rc == 1
    text = " ".join(out.split())
    assert ("FAILED on 6.18: big (array 4/4096 x1,073,741,824): ENOMEM: "
            "bpf_map_area_alloc(4398046511416) for map 'big' failed") in text
    assert "fails at any limit on a machine of 64 GiB" in text
    assert "none recommended: a map of this cgroup cannot be created (FAILED above)" in text
    # the failed map sits in no numeric column: the table lists the created map only
    assert "│ big" not in out and "│ ok" in out
    rc, doc, _ = run_json(capsys, *argv)
    assert rc == 1
    big = doc["maps"][0]
    assert (big["status"], big["errno"]) == ("failed", "ENOMEM")
    assert big["charged_at_creation"] is None and big["memlock_empty"] is None
    assert doc["recommended_memory_max"] is None
    assert doc["cgroups"]["/agent"]["recommended_memory_max"] is None
    assert doc["errors"][0].startswith("big: ENOMEM: bpf_map_area_alloc(4398046511416)")


@pytest.mark.parametrize("argv, errno_name, check", [
    # htab_map_alloc_check() before htab_large_key (c6bde958a62b, v5.11: 5.10 only):
    # key_size > MAX_BPF_STACK (512)
    (("--map", "k=hash:600:8:10", "--profile", "5.10"), "E2BIG", "htab_map_alloc_check: key_size 600"),
    # BLOOM_FILTER (v5.16) does not exist on 5.10: map_create() refuses the type
    (("--map", "b=bloom_filter:0:4:100", "--profile", "5.10"), "EINVAL", "map_create: unknown or unsupported"),
    # htab_map_alloc_check(): LRU maps are preallocated
    (("--map", "l=lru_hash:4:8:100:no_prealloc"), "ENOTSUPP", "LRU maps cannot be BPF_F_NO_PREALLOC"),
])
def test_kernel_refusals_name_the_check(capsys, argv, errno_name, check):
    rc, doc, _ = run_json(capsys, *argv)
    assert rc == 1
    m = doc["maps"][0]
    assert m["errno"] == errno_name and check in m["error"]


# ------------------------------------------------------------- memlock empty and full

def test_memlock_is_shown_empty_and_full(capsys):
    # cilium_auth_map: HASH 12/8 x524,288, no prealloc, on 6.18 (htab_map_mem_usage()):
    # empty: sizeof(bpf_htab) 832 + 524,288 buckets x 16 + map_locked 8 x 4 B x 2 cpus
    #        = 832 + 8,388,608 + 64 = 8,389,504
    # full:  + (elem_size + LLIST_NODE_SZ) per element: elem_size = htab_elem 48 +
    #        round_up(12, 8) + round_up(8, 8) = 72; (72 + 8) x 524,288 = 41,943,040
    #        = 50,332,544 -- never a figure from a partial fill
    rc, doc, _ = run_json(capsys, "--map", "auth=hash:12:8:524288:no_prealloc")
    assert rc == 0
    m = doc["maps"][0]
    assert (m["memlock_empty"], m["memlock_full"]) == (8_389_504, 50_332_544)
    assert m["entries_when_full"] == 524_288
    rc, out, _ = run(capsys, "--map", "auth=hash:12:8:524288:no_prealloc")
    assert "│ auth │ 8,389,504 │ 50,332,544 │" in out
    assert "┃ map  ┃     empty ┃       full ┃" in out


def test_5_11_memlock_is_the_footprint_whatever_the_fill(capsys):
    # v5.11-v6.3 fdinfo memlock: bpf_map_memory_footprint() = round_up(max_entries x
    # round_up(key + value, 8), PAGE) = round_up(1024 x 208, 4096) = 212,992, empty or full
    rc, doc, _ = run_json(capsys, "--map", "s=hash:8:200:1024:no_prealloc", "--profile", "5.11")
    m = doc["maps"][0]
    assert (m["memlock_empty"], m["memlock_full"]) == (212_992, 212_992)


# ------------------------------------------------------------- 5.10: RLIMIT_MEMLOCK

def test_5_10_plan_says_what_rlimit_memlock_each_uid_needs(capsys, tmp_path):
    # ARRAY 4/64 x1000 on 5.10: array_map_alloc() charges round_up(sizeof(bpf_array) 320 +
    # 64,000, PAGE) = 16 pages to the creating user's locked_vm; a HASH 4/8 x100 of uid
    # 1000: htab cost n_buckets 128 x 16 + elem_size (48 + 8 + 8 = 64) x 100 + 64 x 2 cpus
    # (extra elements) = 8,576 -> 3 pages
    f = tmp_path / "maps.toml"
    f.write_text('[[map]]\nname = "cfg"\ntype = "array"\nkey_size = 4\nvalue_size = 64\n'
                 'max_entries = 1000\n\n[[map]]\nname = "flows"\ntype = "hash"\nkey_size = 4\n'
                 'value_size = 8\nmax_entries = 100\nuid = 1000\n')
    rc, out, _ = run(capsys, "--file", str(f), "--profile", "5.10")
    assert rc == 0
    text = " ".join(out.split())
    assert ("RLIMIT_MEMLOCK: uid 0 needs >= 65,536 bytes on 5.10 (shared by every process of "
            "the uid; the default is 65,536)") in text
    assert "RLIMIT_MEMLOCK: uid 1000 needs >= 12,288 bytes on 5.10" in text
    assert ("memory.max - maps are not charged to memory cgroups on 5.10: RLIMIT_MEMLOCK is "
            "their limit") in text
    rc, doc, _ = run_json(capsys, "--file", str(f), "--profile", "5.10")
    assert doc["rlimit_memlock"] == {"0": 65_536, "1000": 12_288}
    assert doc["recommended_memory_max"] is None
    rc, doc, _ = run_json(capsys, "--file", str(f), "--profile", "6.18")
    assert doc["rlimit_memlock"] is None


# ------------------------------------------------------------- inputs: --file and --map

FILE_ERRORS = [
    ('name = "flows"\ntype = "hash"\nvalue_size = 8\nmax_entries = 10\n',
     "[[map]] #1 ('flows'): key_size is missing"),
    ('type = "hash"\nkey_size = 4\nmax_entries = 10\n', "[[map]] #1: value_size is missing"),
    ('type = "hash"\nkey_size = 4\nvalue_size = 8\nmax_entries = 4294967296\n',
     "[[map]] #1: max_entries 4294967296 is above the u32 maximum 4294967295"),
    ('type = "hash"\nkey_size = 4\nvalue_size = 8\nmax_entries = 10.5\n',
     "[[map]] #1: max_entries must be an integer, not 10.5"),
    ('type = "hash"\nkey_size = 4\nvalue_size = 8\nmax_entries = 10\nmax_entry = 3\n',
     "[[map]] #1: unknown key 'max_entry'"),
    ('type = "hash"\nkey_size = 4\nvalue_size = 8\nmax_entries = 10\nflags = ["no_prealoc"]\n',
     "[[map]] #1: unknown map flag 'no_prealoc'"),
    ('type = "hash"\nkey_size = 4\nvalue_size = 8\nmax_entries = 10\ncgroup = "agent"\n',
     "[[map]] #1: cgroup must be an absolute path"),
    ('type = "hash_of_maps"\nkey_size = 4\nvalue_size = 4\nmax_entries = 10\n',
     "[[map]] #1: a map-in-map needs its inner map template"),
]


@pytest.mark.parametrize("body, message", FILE_ERRORS)
def test_file_errors_are_one_line(capsys, tmp_path, body, message):
    f = tmp_path / "p.toml"
    f.write_text("[[map]]\n" + body)
    rc, out, err = run(capsys, "--file", str(f))
    assert rc == 2 and out == ""
    assert err.startswith(f"pybpfmem plan: {f}: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("spec, message", [
    ("hash:-4:64:10", "--map 'hash:-4:64:10': key size -4 is negative"),
    ("hash:4:64:4294967296", "max_entries 4294967296 is above the u32 maximum 4294967295"),
    ("hash:4:64", "expected [NAME=]TYPE:KEY:VALUE:MAX[:FLAGS]"),
    ("hash:4:x:10", "value size 'x' is not an integer"),
    ("nosuch:4:4:1", "unknown map type 'nosuch'"),
])
def test_map_errors_are_one_line(capsys, spec, message):
    rc, out, err = run(capsys, "--map", spec)
    assert rc == 2 and out == "" and message in err
    assert len(err.strip().splitlines()) == 1


def test_map_rows_take_a_name_and_flags(capsys):
    rc, doc, _ = run_json(capsys, "--map", "flows=hash:4:64:1000:no_prealloc,rdonly_prog",
                          "--map", "percpu_array:4:8:4")
    assert rc == 0
    a, b = doc["maps"]
    assert (a["name"], a["flags"], a["flag_names"]) == ("flows", 0x81, "no_prealloc,rdonly_prog")
    assert (b["name"], b["flags"]) == ("map2", 0)


def test_file_keys_are_documented():
    # every key of a [[map]] table is described in the guide's --file section
    from pybpfmem.commands.plan_inputs import FILE_KEYS

    guide = (ROOT / "docs" / "guide.md").read_text()
    section = guide[guide.index("### The --file format"):]
    for key in FILE_KEYS:
        assert f"`{key}`" in section, key


# ------------------------------------------------------------- one system, attribution

def test_maps_of_one_plan_share_one_system(capsys):
    # ARRAY 4/8 x1 on 6.18: bpf_map_area_alloc(312 + 8) -> kmalloc-cg-512, charged 512 + an
    # 8-byte objcg slot = 520 bytes through the object stock.  Three of them: 1,560 bytes,
    # one page of memory.current in one system (a system per map showed a page each);
    # the attribution (each map's growth of memory.current) adds up to the total
    rc, doc, _ = run_json(capsys, "--map", "a=array:4:8:1", "--map", "b=array:4:8:1",
                          "--map", "c=array:4:8:1")
    assert [m["charged_at_creation"] for m in doc["maps"]] == [PAGE, 0, 0]
    assert doc["cgroups"]["/agent"]["charged_at_creation"] == PAGE
    # two ARRAY 4/64 x1000: each vmalloc()s 312 + 64,000 bytes = 16 whole pages
    rc, doc, _ = run_json(capsys, "--map", "a=array:4:64:1000", "--map", "b=array:4:64:1000")
    assert [m["charged_when_full"] for m in doc["maps"]] == [16 * PAGE, 16 * PAGE]
    assert doc["cgroups"]["/agent"]["charged_when_full"] == 32 * PAGE


def test_maps_in_several_cgroups(capsys, tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[[map]]\ntype = "array"\nkey_size = 4\nvalue_size = 64\nmax_entries = 1000\n'
                 'cgroup = "/a"\n\n[[map]]\ntype = "array"\nkey_size = 4\nvalue_size = 64\n'
                 'max_entries = 1000\ncgroup = "/b/c"\n')
    rc, doc, _ = run_json(capsys, "--file", str(f))
    assert {p: c["charged_when_full"] for p, c in doc["cgroups"].items()} == {
        "/a": 16 * PAGE, "/b/c": 16 * PAGE}


# ------------------------------------------------------------- output form

def test_json_keys_are_not_duplicated(capsys):
    rc, doc, _ = run_json(capsys, "--bpftool", str(FIXTURES / "bpftool-map-show.json"))
    m = doc["maps"][0]
    assert set(m) == {
        "name", "type", "key_size", "value_size", "max_entries", "flags", "flag_names",
        "cgroup", "uid", "source", "id", "pinned", "inner", "status", "errno", "error",
        "growth", "entries_when_full", "memlock_empty", "memlock_full", "input_memlock",
        "charged_at_creation", "charged_when_full", "churn_peak", "at_memory_max",
        "at_memory_max_detail", "note"}
    # the input's own memlock (a 5.11-6.3 kernel's footprint) is kept beside, never used
    assert m["input_memlock"] == 73_728 and m["memlock_empty"] == 64_312


def test_long_names_and_paths_wrap(capsys):
    path = "/kubepods.slice/kubepods-burstable.slice/pod-0123456789abcdef0123456789abcdef.scope"
    name = "a_map_name_longer_than_any_column_of_the_table_x"
    rc, out, _ = run(capsys, "--map", f"{name}=hash:4:8:10", "--cgroup", path)
    assert rc == 0 and "…" not in out
    joined = "".join(ln.strip() for ln in out.splitlines())
    assert path in joined
    cells = "".join(ln.split("│")[1].strip() for ln in out.splitlines() if ln.startswith("│"))
    assert name in cells


# ------------------------------------------------------------- memory.max and its slack

@pytest.mark.parametrize("profile, cpus, slack", [
    # 6.18: MEMCG_CHARGE_BATCH 64 pages in each of NR_MEMCG_STOCK 7 slots, + a page of
    # object stock, per possible cpu
    ("6.18", 2, 2 * (64 * 7 + 1) * PAGE),
    ("6.18", 4, 4 * (64 * 7 + 1) * PAGE),
    # 5.11: batch 32, one slot
    ("5.11", 2, 2 * (32 * 1 + 1) * PAGE),
])
def test_recommendation_includes_the_stock_slack(capsys, profile, cpus, slack):
    argv = ("--map", "cfg=array:4:64:1000", "--profile", profile, "--cpus", str(cpus))
    rc, doc, _ = run_json(capsys, *argv)
    c = doc["cgroups"]["/agent"]
    assert c["stock_slack"] == slack
    need = c["charged_when_full"] + c["churn_peak"] + slack
    assert c["recommended_memory_max"] == -(-need // (1 << 20)) * (1 << 20)
    rc, out, _ = run(capsys, *argv)
    assert f"+ stock slack  {slack:>9,}  per-cpu stocks: {cpus} cpus x (" in out


# ------------------------------------------------------------- dynamic maps

def test_churn_holds_v5_frees_for_a_grace_period(capsys):
    # 5.11 HASH 8/200 no prealloc: an element is kmalloc(htab_elem 48 + 8 + 200 = 256)
    # -> kmalloc-256 + the 8-byte objcg slot = 264 bytes.  Full, 1024 of them:
    # 270,336 bytes = 66 pages over creation.  Churn: each of the 2 cpus deletes and
    # rewrites 256 entries; call_rcu() holds the 512 deleted elements until the grace
    # period while their replacements are allocated: 512 x 264 = 135,168 = 33 pages
    rc, doc, _ = run_json(capsys, "--map", "s=hash:8:200:1024:no_prealloc", "--profile", "5.11",
                          "--churn", "256")
    m = doc["maps"][0]
    assert m["charged_when_full"] - m["charged_at_creation"] == 66 * PAGE
    assert m["churn_peak"] == 33 * PAGE
    assert doc["cgroups"]["/agent"]["churn_peak"] == 33 * PAGE


@pytest.mark.parametrize("profile, word", [
    ("5.10", "not charged"),      # RLIMIT_MEMLOCK era: nothing reaches the memcg
    ("5.11", "force-charged"),    # GFP_ATOMIC elements: try_charge() forces the charge
    ("6.18", "ENOMEM"),           # bpf_mem_alloc refills with GFP_NOWAIT fail at the limit
])
def test_what_an_update_does_at_memory_max(capsys, profile, word):
    rc, doc, _ = run_json(capsys, "--map", "h=hash:4:64:100000:no_prealloc", "--map",
                          "l=lru_hash:4:64:1000", "--map", "t=lpm_trie:8:8:1000:no_prealloc",
                          "--profile", profile)
    h, lru, lpm = doc["maps"]
    assert h["at_memory_max"] == word and lpm["at_memory_max"] == word
    assert lru["at_memory_max"] == "no allocation"
    rc, out, _ = run(capsys, "--map", "h=hash:4:64:100000:no_prealloc", "--map",
                     "l=lru_hash:4:64:1000", "--profile", profile)
    shown = {"force-charged": "forced"}.get(word, word)
    assert f"at memory.max, {shown}: " in out
    assert "at memory.max, evicts: updates allocate nothing: a full LRU map evicts" in " ".join(out.split())


# ------------------------------------------------------------- BPF objects

def test_object_maps_as_libbpf_creates_them(capsys):
    # map_in_map.bpf.o: outer_arr's slots 0 and 2 name inner_a and inner_b, written after
    # the outer map is created from its inner template (which libbpf then destroys)
    rc, doc, _ = run_json(capsys, str(FIXTURES / "bpf" / "map_in_map.bpf.o"))
    assert rc == 0
    names = [m["name"] for m in doc["maps"]]
    assert names == ["inner_a", "inner_b", "outer_arr", "jmp_table", "outer_hash"]
    outer = doc["maps"][2]
    assert outer["inner"] == "array 4/8 x16" and outer["status"] == "planned"
    assert doc["maps"][4]["growth"] == "entries"      # HASH_OF_MAPS, no prealloc


def test_struct_ops_needs_the_kernels_btf(capsys):
    rc, out, _ = run(capsys, str(FIXTURES / "bpf" / "struct_ops.bpf.o"))
    assert rc == 0
    text = " ".join(out.split())
    assert ("NOT PLANNED: fixture_cc (struct_ops 4/56 x1): struct_ops map: its value is the "
            "kernel's struct bpf_struct_ops_tcp_congestion_ops, whose size only the kernel's "
            "BTF gives") in text
    assert "INCOMPLETE: the totals leave out what NOT PLANNED and the notes name" in text
    rc, doc, _ = run_json(capsys, str(FIXTURES / "bpf" / "struct_ops.bpf.o"))
    assert doc["complete"] is False and doc["maps"][0]["status"] == "not_planned"


def test_set_overrides_object_maps(capsys):
    obj = str(FIXTURES / "bpf" / "cilium_maps.bpf.o")
    # an LRU map with per-cpu lists (BPF_F_NO_COMMON_LRU) on NUMA node 1: map_create()
    # first checks the node against nr_node_ids (one on the planned machine), and
    # htab_map_alloc_check() refuses a NUMA node for per-cpu lists on any machine
    rc, doc, _ = run_json(capsys, obj)
    assert rc == 1
    assert doc["errors"] == ["cilium_nodeport_neigh4: EINVAL: map_create: numa_node 1 >= "
                             "nr_node_ids 1 (the planned machine has one NUMA node)"]
    rc, doc, _ = run_json(capsys, obj, "--set", "cilium_nodeport_neigh4.numa_node=0")
    assert doc["errors"] == ["cilium_nodeport_neigh4: EINVAL: htab_map_alloc_check: NUMA node "
                             "with per-cpu map"]
    rc, doc, _ = run_json(capsys, obj, "--set", "cilium_ct4_global.max_entries=65536",
                          "--set", "cilium_nodeport_neigh4.map_flags=2")
    assert rc == 0 and doc["complete"] is True
    ct = next(m for m in doc["maps"] if m["name"] == "cilium_ct4_global")
    assert ct["max_entries"] == 65_536
    rc, _, err = run(capsys, obj, "--set", "nosuch.max_entries=1")
    assert rc == 2 and "--set 'nosuch.max_entries=1': no map of that name in cilium_maps.bpf.o" in err
    rc, _, err = run(capsys, obj, "--set", "cilium_ct4_global.max_entries=4294967296")
    assert rc == 2 and "4294967296 is outside 0..4294967295" in err
    rc, _, err = run(capsys, "--map", "hash:4:4:1", "--set", "x.max_entries=1")
    assert rc == 2 and "--set applies to the maps of OBJECT.bpf.o files" in err


def test_not_an_object(capsys, tmp_path):
    f = tmp_path / "x.o"
    f.write_bytes(b"not an elf")
    rc, _, err = run(capsys, str(f))
    assert rc == 2 and "not an ELF file" in err


# ------------------------------------------------------------- every profile

def test_compare_profiles(capsys):
    rc, doc, _ = run_json(capsys, "--map", "cfg=array:4:64:1000", "--compare-profiles")
    assert rc == 0
    # fdinfo memlock of ARRAY 4/64 x1000: 5.10 the rlimit charge (16 pages), 5.11 the
    # footprint round_up(1000 x 72, PAGE) = 73,728, 6.18 array_map_mem_usage() 312 + 64,000
    assert {p: d["maps"][0]["memlock_empty"] for p, d in doc.items()
            if p in ("5.10", "5.11", "6.18")} == {"5.10": 65_536, "5.11": 73_728, "6.18": 64_312}
    rc, out, _ = run(capsys, "--map", "cfg=array:4:64:1000", "--compare-profiles")
    assert "│ 6.18    │      64 │        64 │       0 │   3,592 │       4,096 │ -" in out


def test_local_storage_is_planned_per_owner(capsys):
    # SK_STORAGE 4/64 on 6.18: struct bpf_local_storage_map (480, bpf_map_area_alloc ->
    # kmalloc-cg-512 + 8 = 520 B; its buckets are kvcalloc'ed before the objcg is saved:
    # root).  Each socket: its element (offsetof(selem, sdata.data) 72 + 64 = 136 ->
    # kmalloc-cg-192 + 8 = 200 B) and, with its first element, its struct
    # bpf_local_storage (176 -> 192 + 8 = 200 B).  2000 sockets: 520 + 800,000 bytes
    # = 196 pages
    rc, doc, _ = run_json(capsys, "--map", "sk=sk_storage:4:64:0:no_prealloc", "--owners", "sk=2000")
    m = doc["maps"][0]
    assert (m["charged_at_creation"], m["charged_when_full"]) == (PAGE, 196 * PAGE)
    assert m["entries_when_full"] == 2000 and m["growth"] == "owners"
    # without a count the map is in the totals at creation only, and the plan says so
    rc, doc, _ = run_json(capsys, "--map", "sk=sk_storage:4:64:0:no_prealloc")
    m = doc["maps"][0]
    assert m["charged_when_full"] is None and doc["complete"] is False
    assert "give their number (--owners sk=N, or owners = N in a [[map]])" in m["note"]
    rc, _, err = run(capsys, "--map", "sk=sk_storage:4:64:0:no_prealloc", "--owners", "nosuch=3")
    assert rc == 2 and "--owners 'nosuch=3': no map named 'nosuch'" in err


def test_a_parent_cgroup_counts_its_subtree(capsys, tmp_path):
    # memory.current of /a counts /a/b's maps too: two ARRAY 4/64 x1000, 16 pages each
    f = tmp_path / "p.toml"
    f.write_text('[[map]]\ntype = "array"\nkey_size = 4\nvalue_size = 64\nmax_entries = 1000\n'
                 'cgroup = "/a"\n\n[[map]]\ntype = "array"\nkey_size = 4\nvalue_size = 64\n'
                 'max_entries = 1000\ncgroup = "/a/b"\n')
    rc, doc, _ = run_json(capsys, "--file", str(f))
    assert {p: c["charged_when_full"] for p, c in doc["cgroups"].items()} == {
        "/a": 32 * PAGE, "/a/b": 16 * PAGE}
    # the plan's own recommendation counts /a once
    slack = doc["cgroups"]["/a"]["stock_slack"]
    assert doc["recommended_memory_max"] == -(-(32 * PAGE + slack) // (1 << 20)) * (1 << 20)


def test_maps_whose_values_reference_objects(capsys, tmp_path):
    # a devmap's values are net devices, a hash of maps' values inner maps: the plan makes
    # one of each (outside the plan's cgroups) and writes it into every entry
    f = tmp_path / "p.toml"
    f.write_text('[[map]]\nname = "d"\ntype = "devmap_hash"\nkey_size = 4\nvalue_size = 4\n'
                 'max_entries = 1000\n\n[[map]]\nname = "o"\ntype = "hash_of_maps"\nkey_size = 4\n'
                 'value_size = 4\nmax_entries = 1000\nflags = ["no_prealloc"]\n'
                 'inner = { type = "array", key_size = 4, value_size = 8, max_entries = 16 }\n')
    rc, doc, _ = run_json(capsys, "--file", str(f))
    assert rc == 0
    for m in doc["maps"]:
        assert m["status"] == "planned" and m["entries_when_full"] == 1000
        assert m["charged_when_full"] > m["charged_at_creation"]
    rc, _, err = run(capsys, "--map", "o=hash_of_maps:4:4:100")
    assert rc == 2 and "a map-in-map needs its inner map template" in err


@pytest.mark.parametrize("content, message", [
    ('[{"type": "hash", "bytes_value": 8, "max_entries": 10}]', "map #0: key 'bytes_key' is missing"),
    ('[{"name": "x", "type": "hash", "bytes_key": "two", "bytes_value": 8, "max_entries": 10}]',
     "map #0 ('x'): bytes_key 'two' is not an integer"),
    ('{"not": "a list"}', "expected the JSON list of `bpftool -j map show`"),
    ('[{"type": "hash",', "not valid JSON"),
])
def test_bpftool_errors_are_one_line(capsys, tmp_path, content, message):
    f = tmp_path / "maps.json"
    f.write_text(content)
    rc, out, err = run(capsys, "--bpftool", str(f))
    assert rc == 2 and out == "" and err.startswith(f"pybpfmem plan: {f}: ") and message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (("--cpus", "0"), "--cpus must be 1..1024, got 0"),
    (("--ram", "lots"), "--ram 'lots'"),
    (("--churn", "-1"), "--churn must not be negative"),
])
def test_machine_options_are_checked(capsys, argv, message):
    rc, _, err = run(capsys, "--map", "a=array:4:4:1", *argv)
    assert rc == 2 and message in err


def test_no_maps_given_plans_the_builtin_example(capsys):
    # The quick start's main job: with no input, plan plans the packaged Cilium set,
    # exactly as if it were given with --bpftool, and says so (on stderr under --json,
    # so the JSON stays parseable).
    from pybpfmem.commands.plan_inputs import DEFAULT_SET

    rc, builtin, err = run_json(capsys, "--profile", "5.11")
    assert rc == 0 and "no maps given, so the built-in example" in err
    rc, given, _ = run_json(capsys, "--profile", "5.11", "--bpftool", DEFAULT_SET)
    assert rc == 0 and builtin == given
    assert len(builtin["maps"]) == 30
    assert {"cilium_ct4_glob", "cilium_lxc"} <= {m["name"] for m in builtin["maps"]}


def test_an_input_without_maps_is_bad_input(capsys, tmp_path):
    f = tmp_path / "none.json"
    f.write_text("[]")
    rc, out, err = run(capsys, "--bpftool", str(f))
    assert rc == 2 and out == "" and err == "pybpfmem plan: the input has no maps\n"
