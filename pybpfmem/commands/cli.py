"""The ``pybpfmem`` command.

One entry point (also ``python -m pybpfmem``) with a subcommand per job.
argparse (standard library) parses; rich draws tables and progress bars and
switches colour off when stdout is not a terminal.  Each subcommand lives in
its own module and exposes ``main(argv) -> int``; this file only dispatches,
so ``--help`` lists every command, and it is the one place that turns what
can end any command into its exit code (``main`` returns it, never raises
SystemExit): argparse's 0 and 2, Ctrl-C (130, one line on stderr), a closed
output pipe, a missing optional piece.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from pybpfmem._version import __version__

# name -> (module, one-line help).  Modules are imported only when used.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("pybpfmem.commands.demo", "the seed series' story: one workload under 5.10, 5.11 and 6.18"),
    "simulate": ("pybpfmem.commands.scenario", "run a TOML scenario file and report per-step charges"),
    "plan": ("pybpfmem.commands.plan", "capacity planning: predicted memcg charge of a set of maps"),
    "verify": ("pybpfmem.commands.verify", "measure the model against the running kernel"),
    "doctor": ("pybpfmem.commands.doctor", "which rule charges BPF memory on this host, and what a limit returns"),
    "fuzz": ("pybpfmem.commands.fuzzcmd", "differential fuzzing of the C core against the reference model"),
    "bench": ("pybpfmem.commands.bench", "charge-throughput microbenchmarks"),
}

EXIT_USAGE = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT   # 130, what a shell reports for Ctrl-C
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE  # 141


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pybpfmem",
        description="A userspace model of how Linux accounts BPF memory to memory cgroups.",
        epilog="`pybpfmem COMMAND --help` describes each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"pybpfmem {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0] if args else "pybpfmem"
    try:
        return _dispatch(args)
    except SystemExit as exc:            # argparse: --help (0), bad arguments (2)
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # on a terminal, off the line ^C and a progress bar were on
        print(f"{chr(10) if sys.stderr.isatty() else ''}pybpfmem {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`pybpfmem demo --json | head`): nothing more to say, and
        # Python must not complain again when it flushes stdout at exit.  (SIGPIPE stays
        # ignored: verify's parent must see a dead child's pipe as an error, not die.
        # rich's tables handle it themselves: Console.on_broken_pipe() exits 1.)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _dispatch(args: list[str]) -> int:
    parser = _parser()
    if not args or args[0].startswith("-"):
        if not args:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        parser.parse_args(args)          # --help and --version exit 0, others exit 2
        return EXIT_USAGE
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        parser.print_usage(sys.stderr)
        print(f"pybpfmem: unknown command {name!r} (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return EXIT_USAGE
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"pybpfmem {name}: not available in this build ({module_name} is missing)", file=sys.stderr)
            return EXIT_USAGE
        raise
    return int(module.main(rest))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
