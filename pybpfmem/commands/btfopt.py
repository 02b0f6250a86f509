"""The ``--btf FILE`` option of the commands that build a model System (plan, simulate).

The file is one node's kernel BTF: ``/sys/kernel/btf/vmlinux`` copied from it, or its
vmlinux, vmlinuz or distro ``.deb``.  Its struct sizes replace the profile's
(``pybpfmem.profiles.profile_with_btf``); the switches stay the profile's.  A BTF of
another kernel line than the profile is said on stderr as a warning, never silently.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO

from pybpfmem.profiles import BtfProfileWarning, get_profile
from pybpfmem.profiles.from_btf import check_btf_source, read_btf_source

HELP = ("a vmlinux BTF (/sys/kernel/btf/vmlinux copied from a node, or its vmlinux, vmlinuz "
        "or .deb): struct sizes from that kernel instead of the profile's")


def add_btf_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--btf", metavar="FILE", help=HELP)


def read_btf_sizes(names: Iterable[str], btf: str | None, prog: str,
                   err: TextIO | None = None) -> tuple[tuple[str, int], ...] | None:
    """The struct sizes of ``btf`` (read once; None without one), for the named profiles:
    where the file's kernel line is not a profile's, ``prog: warning: ...`` on ``err``.
    OSError / ValueError when the file cannot be read or holds no BTF."""
    if btf is None:
        return None
    src = read_btf_source(btf)
    for n in names:
        for w in check_btf_source(get_profile(n), src):
            print(f"{prog}: warning: {w}", file=err or sys.stderr)
    return tuple(sorted(src.sizes.items()))


@contextmanager
def btf_warnings(prog: str, err: TextIO | None = None) -> Iterator[None]:
    """Print the BtfProfileWarnings raised inside as ``prog: warning: ...`` lines."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BtfProfileWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, BtfProfileWarning):
                    print(f"{prog}: warning: {w.message}", file=err or sys.stderr)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
