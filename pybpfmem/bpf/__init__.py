"""The BPF model: bpf() commands, map families, programs and both accounting regimes.

Every uapi constant (commands, map/prog types, flags, ENOTSUPP, capability
numbers, RLIMIT_MEMLOCK) is exported here under its kernel name.
"""

from . import uapi as _uapi
from .errors import BpfError
from .uapi import *  # noqa: F403  (the uapi names are the public API)
from .uapi import (  # the attr tables and their packing, for the model's and the live binding's callers
    LAYOUTS as LAYOUTS,
    MAP_INFO_LAYOUT as MAP_INFO_LAYOUT,
    MAP_TYPE_NAMES as MAP_TYPE_NAMES,
    PROG_TYPE_NAMES as PROG_TYPE_NAMES,
    field_end as field_end,
    pack_attr as pack_attr,
    pack_layout as pack_layout,
    unpack_attr as unpack_attr,
    unpack_layout as unpack_layout,
)

__all__ = ["BpfError"]
__all__ += _uapi.__all__
