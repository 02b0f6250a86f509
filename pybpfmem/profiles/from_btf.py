"""A profile with the struct sizes of one node's kernel: ``System(btf=PATH)`` and ``--btf``.

A user copies ``/sys/kernel/btf/vmlinux`` from a node of the fleet (or hands in that
kernel's vmlinux, vmlinuz or distro ``.deb``); every struct size the model uses is read
from it (``sizes.extract_sizes()``, the code ``tools/btf_sizes.py`` writes the data files
with) and replaces the profile's figure.  The switches stay the profile's: a BTF says how
big the structs are, not how the kernel charges them.  Where the file names its kernel's
release (a vmlinux banner, a package, or ``/sys/kernel/btf/vmlinux`` of this machine) and
that release belongs to another line than the profile, or where the BTF's ``enum
bpf_map_type`` ends at another map type than the profile's, a ``BtfProfileWarning`` says
so: the sizes are used, never silently against the wrong switches.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

from .kernels import PROFILES, profile_for_release
from .profile import Profile
from .sizes import extract_sizes, model_fields

SYS_BTF = "/sys/kernel/btf/vmlinux"


class BtfProfileWarning(UserWarning):
    """The BTF handed in seems to come from another kernel line than the profile."""


@dataclass(frozen=True)
class BtfSource:
    """What a BTF file gave a profile."""

    path: str
    container: str                   # how the blob was reached ("raw BTF", "deb ... > ELF .BTF")
    release: str | None              # the kernel release the file names, if it names one
    sizes: dict[str, int]            # the StructSizes figures it gave
    kept: tuple[str, ...]            # StructSizes fields it lacks: the profile's figures stay
    last_map_type: int | None        # the last value of its enum bpf_map_type, if it has one
    warnings: tuple[str, ...]        # why it may not match the profile


def _last_map_type(btf: object) -> int | None:
    """The last map type of the BTF's enum bpf_map_type (__MAX_BPF_MAP_TYPE - 1)."""
    for tid in btf.find("bpf_map_type", "ENUM"):          # type: ignore[attr-defined]
        values = {v.name: v.value for v in btf.type(tid).items}   # type: ignore[attr-defined]
        if "__MAX_BPF_MAP_TYPE" in values:
            return values["__MAX_BPF_MAP_TYPE"] - 1
        if values:
            return max(values.values())
    return None


def read_btf_source(path: str | os.PathLike[str], page_size: int = 4096) -> BtfSource:
    """The struct sizes and the kernel facts of the BTF in the file at ``path`` (raw BTF,
    vmlinux, vmlinuz, compressed vmlinux or .deb).  OSError if unreadable, ValueError if it
    holds no usable BTF."""
    from .. import kimage
    from ..btf import Btf
    p = Path(path)
    u = kimage.read(p)
    btf = Btf(u.btf)
    found, _, _ = extract_sizes(btf, page_size)
    fields = model_fields()
    sizes = {k: v for k, v in found.items() if k in fields}
    release = u.release
    if release is None and u.container == "raw BTF":
        try:
            if p.resolve() == Path(SYS_BTF).resolve():
                release = platform.release()          # this machine's running kernel
        except OSError:
            pass
    return BtfSource(path=str(p), container=u.container, release=release, sizes=sizes,
                     kept=tuple(f for f in fields if f not in sizes),
                     last_map_type=_last_map_type(btf), warnings=())


def _rules(p: Profile) -> tuple[object, ...]:
    """What a profile says about a kernel besides its struct sizes."""
    return (p.mm, p.bpf, p.uapi, p.has_gfp_atomic, p.nowait_nowarn, p.has_memory_peak,
            p.memory_peak_write, p.stat_keys_v2, p.stat_keys_v1, p.event_keys)


def check_btf_source(profile: Profile, src: BtfSource) -> tuple[str, ...]:
    """Why the BTF may come from another kernel line than ``profile`` (empty: it matches
    as far as the file tells)."""
    out = []
    if src.release is not None:
        line = profile_for_release(src.release)
        # the rules of the BTF's line against the profile's: the switches and uapi, not names
        if line is None or _rules(PROFILES[line]) != _rules(profile):
            which = f"profile {line}" if line else "no profile of this project"
            out.append(f"{src.path}: the BTF is of kernel {src.release} ({which}), used with "
                       f"profile {profile.name}: the struct sizes are that kernel's, the "
                       f"accounting rules profile {profile.name}'s")
    if src.last_map_type is not None and src.last_map_type != profile.uapi.max_map_type:
        out.append(f"{src.path}: the BTF's enum bpf_map_type ends at {src.last_map_type}, "
                   f"profile {profile.name}'s at {profile.uapi.max_map_type}: the BTF seems to "
                   f"come from another kernel line")
    return tuple(out)


def profile_with_btf(profile: Profile, path: str | os.PathLike[str], page_size: int = 4096,
                     *, warn: bool = True) -> tuple[Profile, BtfSource]:
    """``profile`` with the struct sizes of the BTF at ``path``, and what the BTF gave.  A
    mismatch between the BTF's kernel and the profile is a ``BtfProfileWarning`` (and is
    listed in the returned source's ``warnings``)."""
    src = read_btf_source(path, page_size)
    src = dataclasses.replace(src, warnings=check_btf_source(profile, src))
    if warn:
        for w in src.warnings:
            warnings.warn(w, BtfProfileWarning, stacklevel=3)
    sized = dataclasses.replace(profile, sizes=profile.sizes.with_overrides(**src.sizes))
    return sized, src
