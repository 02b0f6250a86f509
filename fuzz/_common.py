"""Shared driver plumbing: a byte-stream decoder and a runner that uses atheris when it is
installed (coverage-guided) and otherwise loops over the seed corpus and random bytes.

    FUZZ_SECONDS=60 python fuzz/fuzz_core.py          # either way, bounded in time
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

# values that break naive range checks: signs, word boundaries, 2**64
EDGE_INTS = (0, 1, -1, 2, 7, 4095, 4096, 4097, 1 << 31, (1 << 31) - 1, -(1 << 31), 1 << 32,
             (1 << 32) - 1, 1 << 63, (1 << 63) - 1, -(1 << 63), 1 << 64, (1 << 64) - 1, 1 << 80)
# kernel errnos, bad Python input, and the mm layer's RuntimeError for calls in the wrong
# context (a task exiting while running, a cpu already in use, contexts left out of order)
ALLOWED = (OSError, ValueError, TypeError, RuntimeError)


class Bytes:
    """Decodes operations out of a byte string; reads past the end give zeros."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def left(self) -> bool:
        return self.pos < len(self.data)

    def u8(self) -> int:
        b = self.data[self.pos] if self.pos < len(self.data) else 0
        self.pos += 1
        return b

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def pick(self, seq: tuple | list):  # type: ignore[no-untyped-def]
        return seq[self.u8() % len(seq)]

    def int_(self) -> int:
        """An int that is an edge value, a small number or an arbitrary 64-bit word."""
        sel = self.u8()
        if sel < 96:
            return EDGE_INTS[sel % len(EDGE_INTS)]
        if sel < 200:
            return self.u8()
        return int.from_bytes(self.raw(8).ljust(8, b"\0"), "little", signed=sel & 1 == 1)

    def text(self) -> str:
        return self.raw(self.u8() % 24).decode("latin-1")


def instrumented() -> Any:
    """atheris.instrument_imports() (coverage of the Python code imported inside), when
    atheris is installed and not disabled with FUZZ_PLAIN=1."""
    if os.environ.get("FUZZ_PLAIN") == "1":
        return contextlib.nullcontext()
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        return contextlib.nullcontext()
    return atheris.instrument_imports(include=["pybpfmem"])


def run(one_input: Callable[[bytes], None], name: str) -> None:
    corpus = Path(__file__).parent / "corpus" / name
    seconds = float(os.environ.get("FUZZ_SECONDS", "60"))
    try:
        import atheris  # type: ignore[import-not-found]
    except ImportError:
        atheris = None
    if atheris is not None and os.environ.get("FUZZ_PLAIN") != "1":
        # new units go to a scratch directory (libFuzzer writes into the first one);
        # the seed corpus is only read
        scratch = Path(os.environ.get("FUZZ_WORKDIR", "build/fuzz")) / name
        scratch.mkdir(parents=True, exist_ok=True)
        args = [sys.argv[0], f"-max_total_time={int(seconds)}", "-max_len=512",
                str(scratch), str(corpus)] + sys.argv[1:]
        atheris.Setup(args, one_input)
        atheris.Fuzz()
        return
    # plain loop: every seed, then random inputs until the time is up
    rnd = random.Random(int(os.environ.get("FUZZ_SEED", "0")) or None)
    end = time.monotonic() + seconds
    n = 0
    if len(sys.argv) > 1:          # replay given inputs only
        for name_ in sys.argv[1:]:
            one_input(Path(name_).read_bytes())
        return
    for f in sorted(corpus.glob("*")) if corpus.is_dir() else []:
        one_input(f.read_bytes())
        n += 1
    while time.monotonic() < end:
        data = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 512)))
        try:
            one_input(data)
        except BaseException:
            out = Path(f"crash-{name}-{hashlib.sha1(data).hexdigest()[:12]}")
            out.write_bytes(data)
            print(f"{name}: failing input saved to {out}", file=sys.stderr)
            raise
        n += 1
    print(f"{name}: {n} inputs, no crash or invariant break (plain loop, no atheris)")
