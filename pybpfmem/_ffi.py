"""Loading the C core and turning its negative errnos into OSError."""

from __future__ import annotations

import errno as _errno
import operator
import os
from typing import Any

from ._core import ffi, lib  # noqa: F401  (re-exported)

__all__ = ["ffi", "lib", "check", "errno_name", "as_int", "cdata_to_py", "NoCopy"]


class NoCopy:
    """Base of the objects that own or name C-core state of one System (the bm_system,
    memcg handles, kmem caches, BPF maps and their stores, kernel objects): a copy
    would be a second owner of the same state, so copying and pickling are refused."""

    __slots__ = ()

    def __copy__(self) -> Any:
        raise TypeError(f"{type(self).__name__} cannot be copied: it owns state of its System")

    def __deepcopy__(self, memo: Any) -> Any:
        raise TypeError(f"{type(self).__name__} cannot be copied: it owns state of its System")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"{type(self).__name__} cannot be pickled: it owns state of its System")


def errno_name(err: int) -> str:
    return _errno.errorcode.get(err, f"errno {err}")


def check(rc: int, what: str, detail: str = "") -> int:
    """Return rc if it is >= 0, else raise OSError(-rc) naming ``what``.

    ``what`` is the C function (and, where useful, the arguments) so the
    message says which kernel check refused the call; ``detail`` explains it.
    """
    if rc < 0:
        err = -rc
        raise OSError(err, f"{what} failed: {errno_name(err)} ({os.strerror(err)}){detail}")
    return rc


# --- argument checks (TypeError/ValueError before any C call) ---

def as_int(value: Any, what: str, lo: int, hi: int) -> int:
    """Accept an int (or an integer-like such as numpy.int64) in [lo, hi].

    bool and float are rejected with TypeError, out-of-range values with
    ValueError.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if type(value) is not int:
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(f"{what} must be an int, not {type(value).__name__}") from None
    if value < lo:
        raise ValueError(f"{what} must be >= {lo}, got {value}")
    if value > hi:
        raise ValueError(f"{what} must be <= {hi}, got {value}")
    return value


def cdata_to_py(obj: Any) -> Any:
    """Convert a cffi struct / array into dicts, lists and ints."""
    if not isinstance(obj, ffi.CData):
        return obj
    t = ffi.typeof(obj)
    if t.kind == "pointer":
        return cdata_to_py(obj[0])
    if t.kind == "struct":
        return {name: cdata_to_py(getattr(obj, name)) for name, _ in t.fields}
    if t.kind == "array":
        return [cdata_to_py(x) for x in obj]
    return obj

