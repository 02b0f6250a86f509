"""The BPF layer under threads: its state (one BpfState per System, the tasks'
fd tables, the maps) is plain Python data, so its public calls serialise on the
System lock (``MemSystem.lock``, re-entrant), see docs/api.md "Threads".  The
memory layer's allocators it calls stay per cpu."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, TypeVar

_C = TypeVar("_C", bound=type)


def serialised(lock_of: Callable[[Any], Any]) -> Callable[[_C], _C]:
    """Class decorator: every public method of the class runs under the System lock,
    ``lock_of(self)``.  Methods the class lists in ``_unlocked`` take it themselves
    (hot paths, which save the wrapper's call)."""
    def decorate(cls: _C) -> _C:
        skip = set(getattr(cls, "_unlocked", ()))
        for name, fn in list(vars(cls).items()):
            if name.startswith("_") or name in skip or not inspect.isfunction(fn):
                continue
            setattr(cls, name, _locked(fn, lock_of))
        return cls
    return decorate


def _locked(fn: Callable[..., Any], lock_of: Callable[[Any], Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock_of(self):
            return fn(self, *args, **kwargs)
    return locked
