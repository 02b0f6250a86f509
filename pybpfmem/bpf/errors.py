"""Errors of the BPF model: kernel errnos as OSError with a message naming the check."""

from __future__ import annotations

import errno as _errno
from typing import Sequence


class BpfError(OSError):
    """A bpf() failure: ``.errno`` is the kernel's errno, the message names the check.

    Batch commands attach the partial results the kernel copies back:
    ``.count`` (elements processed), and for lookups ``.keys``, ``.values``
    and ``.out_batch``.
    """

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


def bpf_error(err: int, message: str) -> BpfError:
    """Build a BpfError; `err` is a positive errno (ENOTSUPP = 524 allowed)."""
    return BpfError(err, message)


def errname(err: int) -> str:
    if err == 524:
        return "ENOTSUPP"
    return _errno.errorcode.get(err, str(err))
