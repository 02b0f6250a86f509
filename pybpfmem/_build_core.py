"""Generate the cffi API-mode C source of ``pybpfmem._core``.

CMake runs this at build time (``python _build_core.py OUT.c``) and compiles
the result together with ``csrc/*.c``.  The cdef is the BEGIN/END CDEF region
of ``csrc/bpfmem.h`` taken verbatim, so the binding cannot drift from the
header; ``tests/test_ffi_contract.py`` checks that every cdef'd type and
function is usable.
"""

from __future__ import annotations

import pathlib
import sys

import cffi

HEADER = pathlib.Path(__file__).resolve().parent.parent / "csrc" / "bpfmem.h"


def cdef_source(header: pathlib.Path = HEADER) -> str:
    """Return the cdef region of the public header."""
    text = header.read_text()
    try:
        start = text.index("/* BEGIN CDEF */") + len("/* BEGIN CDEF */")
        end = text.index("/* END CDEF */")
    except ValueError as exc:  # pragma: no cover - a broken header
        raise RuntimeError(f"{header}: CDEF markers missing") from exc
    return text[start:end]


def make_ffi() -> cffi.FFI:
    ffi = cffi.FFI()
    ffi.cdef(cdef_source())
    ffi.set_source("pybpfmem._core", '#include "bpfmem.h"')
    return ffi


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: _build_core.py OUT.c", file=sys.stderr)
        return 2
    make_ffi().emit_c_code(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
