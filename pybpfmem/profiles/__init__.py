"""Kernel profiles: one ``Profile`` per kernel release, as data.

A profile holds everything that differs between the kernels the model
follows: the memory-layer switches passed to the C core (``MmSwitches`` ==
``struct bm_profile`` of csrc/bpfmem.h, in declaration order), the Python-level
facts of the memory layer (gfp values, memory.stat / memory.events keys,
memory.peak), the BPF-layer switches (``BpfSwitches``), the bpf() uapi facts
(``BpfUapi``) and the struct sizes (``StructSizes``, from
``structs/<profile>.json``).  Every switch is listed, with the kernel commit
behind it, in ``switches.py``; the values each kernel takes are in
``kernels.py``.  Nothing here imports the memory or the BPF layer: both layers
read their profile, no code compares release numbers.

Every switch is also readable by name on the profile: ``profile.charge_batch``,
``profile.htab_mem_alloc``.
"""

from __future__ import annotations

from .from_btf import BtfProfileWarning, BtfSource, profile_with_btf
from .kernels import CURRENT_PROFILE, PROFILES, RELEASE_LINES, profile_for_release
from .profile import MM_FACTS, PROFILE_SWITCHES, BpfSwitches, BpfUapi, MmSwitches, Profile
from .sizes import StructSizes, load_struct_sizes
from .switches import SWITCHES, Switch, render_table

#: profile names a user can pass to System(profile=...)
PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)


def get_profile(name: str) -> Profile:
    """Look a profile up by name (ValueError if unknown)."""
    if not isinstance(name, str):
        raise TypeError(f"profile must be a str, not {type(name).__name__}")
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILE_NAMES)}") from None


def list_profiles() -> list[str]:
    return list(PROFILE_NAMES)


__all__ = ["Profile", "MmSwitches", "BpfSwitches", "BpfUapi", "StructSizes", "Switch", "SWITCHES",
           "PROFILES", "PROFILE_NAMES", "PROFILE_SWITCHES", "CURRENT_PROFILE", "MM_FACTS",
           "RELEASE_LINES", "BtfProfileWarning", "BtfSource", "get_profile", "list_profiles",
           "load_struct_sizes", "profile_for_release", "profile_with_btf", "render_table"]
