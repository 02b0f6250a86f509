"""The BPF model: bpf() commands, map families, programs and both accounting regimes.

Every uapi constant (commands, map/prog types, flags, ENOTSUPP, capability
numbers, RLIMIT_MEMLOCK) is exported here under its kernel name.
"""

from . import uapi as _uapi
from .errors import BpfError
from .uapi import *  # noqa: F401,F403  (the uapi names are the public API)

__all__ = sorted(_uapi.uapi_names()) + ["BpfError"]
