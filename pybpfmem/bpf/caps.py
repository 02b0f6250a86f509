"""Capability checks of the BPF layer (include/linux/capability.h)."""

from __future__ import annotations

import errno
from typing import Any

from . import uapi as U
from .errors import BpfError


def bpf_capable(task: Any) -> bool:
    """bpf_capable(): CAP_BPF or CAP_SYS_ADMIN."""
    return bool(task.capable(U.CAP_BPF) or task.capable(U.CAP_SYS_ADMIN))


def perfmon_capable(task: Any) -> bool:
    """perfmon_capable() (= bpf_bypass_spec_v1()): CAP_PERFMON or CAP_SYS_ADMIN."""
    return bool(task.capable(U.CAP_PERFMON) or task.capable(U.CAP_SYS_ADMIN))


def net_admin_capable(task: Any) -> bool:
    """capable(CAP_NET_ADMIN) (CAP_SYS_ADMIN implies it)."""
    return bool(task.capable(U.CAP_NET_ADMIN) or task.capable(U.CAP_SYS_ADMIN))


_CHECKS = {"bpf": (bpf_capable, "CAP_BPF or CAP_SYS_ADMIN (bpf_capable())"),
           "net_admin": (net_admin_capable, "CAP_NET_ADMIN"),
           "perfmon": (perfmon_capable, "CAP_PERFMON")}


def require_cap(task: Any, which: str, map_kind: str) -> None:
    """-EPERM unless the creating task has the capability ("bpf", "net_admin", "perfmon"):
    the per-type check of map_alloc_check()/map_alloc() (v5.10 .. v6.4), which
    map_create() makes centrally from v6.5 (switch caps_central); same errno either way."""
    check, name = _CHECKS[which]
    if not check(task):
        raise BpfError(errno.EPERM, f"{map_kind}: creating this map type needs {name}")
