"""A model System that matches the running host (``System.from_host`` equivalent).

``host_system()`` reads the facts of this machine that the model needs —
possible CPUs (/sys/devices/system/cpu/possible, what num_possible_cpus() counts
and what per-cpu allocations are multiplied by), the page size, the memory-cgroup
version in use (cgroupfs.detect()), the RLIMIT_MEMLOCK in force — and builds a
``pybpfmem.System`` with the profile of the running kernel whose BPF struct sizes
are replaced by the sizes the running kernel's BTF reports
(pybpfmem.profiles.sizes.extract_sizes(): sizeof() of each struct, and the two
figures computed from member offsets).  Where BTF is missing or lacks a struct, the
profile's built-in size stays.

The profile is the one named by the caller, else the profile registry's entry for
the running release (``pybpfmem.profiles.profile_for_release(uname -r)``, a lookup
table, not a version comparison); a release the registry has no entry for is an
error (``NoProfile``) that names the release and the profiles there are.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import resource
from dataclasses import dataclass, field
from typing import Any

from ..bpf.uapi import RLIM_INFINITY
from ..profiles import PROFILE_NAMES, StructSizes, get_profile, profile_for_release
from .bpf import parse_cpu_list, possible_cpus  # noqa: F401  (re-exported)


class NoProfile(ValueError):
    """The registry has no profile for the running kernel's release."""

    def __init__(self, release: str) -> None:
        super().__init__(f"no profile for kernel {release} in the profile registry "
                         f"(pybpfmem.profiles); name the nearest one with --profile "
                         f"(known: {', '.join(PROFILE_NAMES)})")
        self.release = release


@dataclass(frozen=True)
class HostFacts:
    nr_cpus: int                 # possible CPUs
    page_size: int
    cgroup: str                  # "v1" or "v2"
    release: str                 # uname -r
    profile: str = "6.18"        # the profile the model follows
    profile_source: str = "registry"   # "registry" (by release) or "user" (named)
    memlock: int = RLIM_INFINITY       # RLIMIT_MEMLOCK soft limit, bytes
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


def host_profile(release: str | None = None) -> str:
    """The registry's profile for ``release`` (default: the running kernel's);
    NoProfile if it has none."""
    rel = release if release is not None else platform.release()
    name = profile_for_release(rel)
    if name is None:
        raise NoProfile(rel)
    return name


def memlock_rlimit() -> int:
    """This process's RLIMIT_MEMLOCK soft limit in bytes (RLIM_INFINITY: 2^64 - 1)."""
    soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    return RLIM_INFINITY if soft == resource.RLIM_INFINITY else soft


def host_facts(btf_path: str = "/sys/kernel/btf/vmlinux", profile: str | None = None
               ) -> HostFacts:
    """The host's facts; ``profile`` None: the registry's entry for this kernel
    (NoProfile if it has none), else the named one (ValueError if unknown)."""
    from . import cgroupfs
    version, _ = cgroupfs.own_memory_cgroup()
    source = "user" if profile is not None else "registry"
    name = profile if profile is not None else host_profile()
    prof = get_profile(name)
    sizes: dict[str, int] = {}
    err = None
    try:
        sizes = host_btf_sizes(prof.sizes, btf_path)
    except (OSError, ValueError) as e:  # no BTF: fall back to the profile's sizes
        err = f"{btf_path}: {e}"
    return HostFacts(nr_cpus=possible_cpus(), page_size=os.sysconf("SC_PAGE_SIZE"),
                     cgroup=f"v{version}", release=platform.release(), profile=name,
                     profile_source=source, memlock=memlock_rlimit(), btf_sizes=sizes,
                     btf_error=err)


def host_system(profile: str | None = None, facts: HostFacts | None = None, **kw: Any) -> Any:
    """A pybpfmem.System matching this host (CPUs, page size, cgroup version,
    profile) with BPF struct sizes from host BTF.  ``profile`` None: the facts'
    profile (the registry's for this kernel).  Extra keywords go to System() and
    override the host facts (e.g. ``cgroup="v2"``, ``ram="16G"``)."""
    from ..system import System
    f = facts if facts is not None else host_facts(profile=profile)
    args: dict[str, Any] = {"nr_cpus": f.nr_cpus, "page_size": f.page_size,
                            "cgroup": f.cgroup, "profile": profile or f.profile}
    args.update(kw)
    sysm = System(**args)
    if f.btf_sizes:
        sysm.bpf_struct_sizes = sysm.bpf_struct_sizes.with_overrides(**f.btf_sizes)
    return sysm
