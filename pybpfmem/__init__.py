"""pybpfmem: a userspace model of memcg accounting of BPF maps and programs.

Module-level gfp constants are those of the current kernel (the "6.18"
profile): ``GFP_ATOMIC`` is 0x820 and ``GFP_NOWAIT`` 0x2800 there.  The
values of another profile are on ``System.gfp`` (e.g. ``System(profile="5.11").gfp.GFP_ATOMIC``
is 0xA20, with ``__GFP_ATOMIC``).
"""

from ._version import __version__
from .constants import (
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_KERNEL_ACCOUNT,
    GFP_NOFS,
    GFP_NOIO,
    GFP_NOWAIT,
    GFP_USER,
    MEMCG_DATA_FLAGS_MASK,
    MEMCG_DATA_KMEM,
    MEMCG_DATA_OBJCGS,
    SLAB_ACCOUNT,
    SLAB_RECLAIM_ACCOUNT,
    GfpFlags,
    __GFP_ACCOUNT,
    __GFP_ATOMIC,
    __GFP_COMP,
    __GFP_DIRECT_RECLAIM,
    __GFP_FS,
    __GFP_HIGH,
    __GFP_IO,
    __GFP_KSWAPD_RECLAIM,
    __GFP_NOFAIL,
    __GFP_NORETRY,
    __GFP_NOWARN,
    __GFP_RECLAIM,
    __GFP_RECLAIMABLE,
    __GFP_RETRY_MAYFAIL,
    __GFP_ZERO,
    page_counter_max,
)
from .profiles import PROFILE_NAMES, PROFILES, Profile, get_profile, list_profiles
from .mm import page_counter_memparse
from .system import OP_DTYPE, KmemCache, MemCgroup, System, Task
from .bpf import BpfError
from .bpf import uapi as _uapi
from .bpf.uapi import *  # noqa: F403  (the uapi constants by their kernel names)

__all__ = [
    "__version__",
    "System", "MemCgroup", "Task", "KmemCache", "Profile", "GfpFlags", "OP_DTYPE",
    "PROFILES", "PROFILE_NAMES", "get_profile", "list_profiles", "page_counter_memparse",
    "page_counter_max",
    "GFP_ATOMIC", "GFP_KERNEL", "GFP_KERNEL_ACCOUNT", "GFP_NOFS", "GFP_NOIO", "GFP_NOWAIT", "GFP_USER",
    "__GFP_ACCOUNT", "__GFP_ATOMIC", "__GFP_COMP", "__GFP_DIRECT_RECLAIM", "__GFP_FS", "__GFP_HIGH",
    "__GFP_IO", "__GFP_KSWAPD_RECLAIM", "__GFP_NOFAIL", "__GFP_NORETRY", "__GFP_NOWARN",
    "__GFP_RECLAIM", "__GFP_RECLAIMABLE", "__GFP_RETRY_MAYFAIL", "__GFP_ZERO",
    "MEMCG_DATA_OBJCGS", "MEMCG_DATA_KMEM", "MEMCG_DATA_FLAGS_MASK",
    "SLAB_ACCOUNT", "SLAB_RECLAIM_ACCOUNT", "BpfError",
]
__all__ += _uapi.__all__    # RLIMIT_MEMLOCK among them
