"""What the commands share: the one-line error a command exits with, and the
checks of output paths made before a run (a long bench must not fail at its
end because its output directory does not exist)."""

from __future__ import annotations

import os
import signal
from types import FrameType, TracebackType
from typing import Any

EXIT_USAGE = 2
#: a plot was asked for and matplotlib (the ``plot`` extra) is missing
EXIT_NO_PLOT = 3
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
INSTALL_HINT = "plotting needs matplotlib: pip install 'pybpfmem[plot]' (or pip install matplotlib)"


class CommandError(Exception):
    """A one-line message for stderr and the exit code that goes with it."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def check_output_path(option: str, path: str, suffixes: tuple[str, ...] = ()) -> None:
    """`path` can be written: its directory exists and is writable, it is not a
    directory, and its name ends in one of `suffixes` (when given)."""
    if suffixes and not path.lower().endswith(suffixes):
        listed = " or ".join([", ".join(suffixes[:-1]), suffixes[-1]] if len(suffixes) > 1 else suffixes)
        raise CommandError(f"{option} {path}: the file name must end in {listed}")
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise CommandError(f"{option} {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise CommandError(f"{option} {path}: is a directory")
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise CommandError(f"{option} {path}: not writable")


def check_plot_path(option: str, path: str) -> None:
    """check_output_path() for a plot, and matplotlib importable."""
    check_output_path(option, path, PLOT_SUFFIXES)
    from pybpfmem.commands.plotting import _pyplot

    if _pyplot() is None:
        raise CommandError(INSTALL_HINT, EXIT_NO_PLOT)


class DeferredInterrupt:
    """``with DeferredInterrupt() as stop:`` -- a first Ctrl-C (SIGINT) only sets
    ``stop.requested``, so the work stops at a point where its state is whole (a fuzz
    round: a KeyboardInterrupt inside a step would leave the C core and the reference
    model half updated, a divergence that is not one); a second raises
    KeyboardInterrupt at once.  The caller raises KeyboardInterrupt itself when it has
    stopped (cli.main turns it into exit 130)."""

    def __init__(self) -> None:
        self.requested = False
        self._saved: Any = None

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> DeferredInterrupt:
        self._saved = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        signal.signal(signal.SIGINT, self._saved)
