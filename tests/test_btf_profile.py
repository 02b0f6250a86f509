"""Struct sizes from a user's BTF: ``System(btf=PATH)``, ``plan --btf``, ``simulate --btf``.

A synthetic vmlinux BTF (pybpfmem.btf.BtfBuilder) gives struct bpf_array a size no real
kernel has; the map's fdinfo memlock and charge must follow it.  A BTF that names another
kernel line than the profile warns (pybpfmem.profiles.BtfProfileWarning)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import pybpfmem
from pybpfmem.btf import BtfBuilder
from pybpfmem.bpf import uapi as U
from pybpfmem.profiles import BtfProfileWarning, get_profile

from test_btf_sizes import _vmlinux          # a vmlinux ELF with a banner and a .BTF section

BPF_ARRAY = 1000          # sizeof(struct bpf_array) in the synthetic kernel (6.18: 312)


def _btf(last_map_type: int | None = None) -> bytes:
    b = BtfBuilder()
    u64 = b.int_("long unsigned int", 8)
    b.struct("bpf_array", BPF_ARRAY, [("map", u64, 0)])
    b.struct("bpf_prog", 80, [("len", u64, 0), ("insns", u64, 72)])
    if last_map_type is not None:
        b.enum("bpf_map_type", 4, [("BPF_MAP_TYPE_UNSPEC", 0),
                                   ("__MAX_BPF_MAP_TYPE", last_map_type + 1)])
    return b.build()


@pytest.fixture
def raw_btf(tmp_path: Path) -> Path:
    p = tmp_path / "vmlinux.btf"
    p.write_bytes(_btf(last_map_type=33))
    return p


def test_btf_sizes_flow_into_a_maps_memlock(raw_btf: Path) -> None:
    # 6.18 array_map_mem_usage(): sizeof(struct bpf_array) + 10 entries * round_up(64, 8):
    # the profile's 312 + 640 = 952; with the BTF's struct, 1000 + 640 = 1640
    with warnings.catch_warnings():
        warnings.simplefilter("error", BtfProfileWarning)      # the BTF matches 6.18's uapi
        s = pybpfmem.System(profile="6.18", btf=raw_btf)
    assert s.btf_source is not None and s.btf_source.container == "raw BTF"
    assert s.btf_source.sizes == {"bpf_array": BPF_ARRAY, "bpf_prog": 72}
    assert "bpf_htab" in s.btf_source.kept and s.profile.sizes.bpf_htab == 832
    assert s.profile.switch("charge_batch") == 64                  # the rules stay 6.18's
    a = s.root.mkdir("a")
    t = s.spawn(cgroup=a)
    fd = t.bpf_map_create(U.BPF_MAP_TYPE_ARRAY, 4, 64, 10)
    assert t.fdinfo(fd)["memlock"] == str(BPF_ARRAY + 640)
    # the area: kmalloc(1640) -> kmalloc-2k, charged 2048 + 8 bytes
    assert s.bpf_maps()[0]["charged"]["slab"] == 2048 + 8
    plain = pybpfmem.System(profile="6.18")
    tp = plain.spawn(cgroup=plain.root.mkdir("a"))
    assert tp.fdinfo(tp.bpf_map_create(U.BPF_MAP_TYPE_ARRAY, 4, 64, 10))["memlock"] == "952"


def test_btf_of_another_line_warns(tmp_path: Path) -> None:
    # a vmlinux whose banner says 6.1.0-99-amd64 (profile 6.1), handed to profile 6.18
    elf = tmp_path / "vmlinux"
    elf.write_bytes(_vmlinux(_btf()))
    with pytest.warns(BtfProfileWarning, match=r"kernel 6\.1\.0-99-amd64 \(profile 6\.1\), "
                                               r"used with profile 6\.18"):
        s = pybpfmem.System(profile="6.18", btf=elf)
    assert s.btf_source.release == "6.1.0-99-amd64" and len(s.btf_source.warnings) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", BtfProfileWarning)
        pybpfmem.System(profile="6.1", btf=elf)                       # the right line: quiet
    # no release in a raw blob, but enum bpf_map_type ends at 31 (6.1's USER_RINGBUF)
    raw = tmp_path / "old.btf"
    raw.write_bytes(_btf(last_map_type=31))
    with pytest.warns(BtfProfileWarning, match="enum bpf_map_type ends at 31, profile 6.18's at 33"):
        pybpfmem.System(profile="6.18", btf=raw)


def test_btf_errors(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        pybpfmem.System(btf=tmp_path / "missing")
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a kernel")
    with pytest.raises(ValueError, match="neither BTF, ELF"):
        pybpfmem.System(btf=junk)
    with pytest.raises(TypeError):
        pybpfmem.System(btf=123)


def test_plan_btf_option(raw_btf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pybpfmem.commands import plan
    assert plan.main(["--map", "array:4:64:10", "--profile", "6.18", "--json",
                      "--btf", str(raw_btf)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["maps"][0]["memlock_empty"] == BPF_ARRAY + 640
    # another line: planned all the same, with the warning on stderr
    assert plan.main(["--map", "array:4:64:10", "--profile", "6.1", "--json",
                      "--btf", str(raw_btf)]) == 0
    err = capsys.readouterr().err
    assert "pybpfmem plan: warning:" in err and "ends at 33, profile 6.1's at 31" in err
    assert plan.main(["--map", "array:4:64:10", "--btf", "/nonexistent/btf"]) != 0
    assert "/nonexistent/btf" in capsys.readouterr().err


def test_simulate_btf_option(raw_btf: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from pybpfmem.commands import scenario
    f = tmp_path / "s.toml"
    f.write_text('[system]\nprofile = "6.18"\n[[cgroup]]\npath = "/a"\n[[task]]\nname = "t"\n'
                 'cgroup = "/a"\n[[step]]\naction = "create_map"\ntask = "t"\nname = "m"\n'
                 'type = "array"\nkey_size = 4\nvalue_size = 64\nmax_entries = 10\n')
    sc = scenario.load(str(f), str(raw_btf))
    assert sc.system.profile.sizes.bpf_array == BPF_ARRAY
    assert scenario.main([str(f), "--json", "--btf", str(raw_btf)]) == 0
    capsys.readouterr()
    assert scenario.main([str(f), "--btf", str(tmp_path / "none")]) != 0
    assert "--btf" in capsys.readouterr().err
    assert get_profile("6.18").sizes.bpf_array == 312        # the registry is untouched
