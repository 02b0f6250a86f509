"""A model System that matches the running host (``System.from_host`` equivalent).

``host_system()`` reads the facts of this machine that the model needs —
possible CPUs (/sys/devices/system/cpu/possible, what num_possible_cpus() counts
and what per-cpu allocations are multiplied by), the page size, the memory-cgroup
version in use (cgroupfs.detect()) — and builds a ``pybpfmem.System`` with the
6.18 profile whose BPF struct sizes are replaced by the sizes the running
kernel's BTF reports (pybpfmem.profiles.sizes.extract_sizes(): sizeof() of each
struct, and the two figures computed from member offsets).  Where BTF is missing
or lacks a struct, the profile's built-in size stays.
"""
from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass, field
from typing import Any

from ..profiles import StructSizes, get_profile
from .bpf import parse_cpu_list, possible_cpus  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class HostFacts:
    nr_cpus: int                 # possible CPUs
    page_size: int
    cgroup: str                  # "v1" or "v2"
    release: str                 # uname -r
    btf_sizes: dict[str, int] = field(default_factory=dict)
    btf_error: str | None = None


def host_btf_sizes(base: StructSizes, path: str = "/sys/kernel/btf/vmlinux"
                   ) -> dict[str, int]:
    """Every StructSizes figure the host BTF gives (extract_sizes(): the struct sizes and
    the two computed from member offsets), at the host's page size."""
    from .. import kimage
    from ..btf import Btf
    from ..profiles.sizes import extract_sizes
    found, _, _ = extract_sizes(Btf(kimage.read(path).btf), os.sysconf("SC_PAGE_SIZE"))
    names = {f.name for f in dataclasses.fields(base)}
    return {k: v for k, v in found.items() if k in names}


def host_facts(btf_path: str = "/sys/kernel/btf/vmlinux", profile: str = "6.18") -> HostFacts:
    from . import cgroupfs
    version, _ = cgroupfs.own_memory_cgroup()
    sizes: dict[str, int] = {}
    err = None
    try:
        sizes = host_btf_sizes(get_profile(profile).sizes, btf_path)
    except (OSError, ValueError) as e:  # no BTF: fall back to the profile's sizes
        err = f"{btf_path}: {e}"
    return HostFacts(nr_cpus=possible_cpus(), page_size=os.sysconf("SC_PAGE_SIZE"),
                     cgroup=f"v{version}", release=platform.release(), btf_sizes=sizes,
                     btf_error=err)


def host_system(profile: str = "6.18", facts: HostFacts | None = None, **kw: Any) -> Any:
    """A pybpfmem.System matching this host (CPUs, page size, cgroup version,
    profile) with BPF struct sizes from host BTF.  Extra keywords go to System()
    and override the host facts (e.g. ``cgroup="v2"``, ``ram="16G"``)."""
    from ..system import System
    f = facts if facts is not None else host_facts(profile=profile)
    args: dict[str, Any] = {"nr_cpus": f.nr_cpus, "page_size": f.page_size,
                            "cgroup": f.cgroup, "profile": profile}
    args.update(kw)
    sysm = System(**args)
    if f.btf_sizes:
        sysm.bpf_struct_sizes = sysm.bpf_struct_sizes.with_overrides(**f.btf_sizes)
    return sysm
