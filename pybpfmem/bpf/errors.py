"""Errors of the BPF model: kernel errnos as BpfError, with a message naming the check.

The rule: everything the BPF layer raises with a kernel errno — a bpf() command,
a BPF helper, or one of the layer's own syscalls and sysctls (setrlimit, unlink of
a pin, kernel.unprivileged_bpf_disabled) — is a ``BpfError``, an ``OSError``
subclass whose ``errno`` is the kernel's.  Plain ``OSError`` reaching a caller
comes from the memory layer below (an allocation the BPF code lets fail through);
bad Python input is ``TypeError`` / ``ValueError``.
"""

from __future__ import annotations

import errno as _errno
from typing import Sequence

from .uapi import ENOTSUPP


class BpfError(OSError):
    """A bpf() failure: ``.errno`` is the kernel's errno, the message names the check.

    Batch commands attach the partial results the kernel copies back:
    ``.count`` (elements processed), and for lookups ``.keys``, ``.values``
    and ``.out_batch``.
    """

    errno: int            # always set: the constructor takes it
    count: int | None
    keys: Sequence[bytes] | None
    values: Sequence[bytes] | None
    out_batch: bytes | None

    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, message)
        self.count = None
        self.keys = None
        self.values = None
        self.out_batch = None


def errname(err: int) -> str:
    """The errno's kernel name (ENOTSUPP included, which userspace headers lack)."""
    if err == ENOTSUPP:
        return "ENOTSUPP"
    return _errno.errorcode.get(err, str(err))
