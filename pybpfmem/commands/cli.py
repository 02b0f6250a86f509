"""The ``pybpfmem`` command.

One entry point (also ``python -m pybpfmem``) with a subcommand per job.
argparse (standard library) parses; rich draws tables and progress bars and
switches colour off when stdout is not a terminal.  Each subcommand lives in
its own module and exposes ``main(argv) -> int``; this file only dispatches,
so ``--help`` lists every command and a missing optional piece is reported
as an error message, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help).  Modules are imported only when used.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("pybpfmem.commands.demo", "the seed series' story: one workload under 5.10, 5.11 and 6.18"),
    "simulate": ("pybpfmem.commands.scenario", "run a TOML scenario file and report per-step charges"),
    "plan": ("pybpfmem.commands.plan", "capacity planning: predicted memcg charge of a set of maps"),
    "verify": ("pybpfmem.live.verify", "measure the model against the running kernel"),
    "doctor": ("pybpfmem.commands.doctor", "which rule charges BPF memory on this host, and what a limit returns"),
    "fuzz": ("pybpfmem.commands.fuzzcmd", "differential fuzzing of the C core against the reference model"),
    "bench": ("pybpfmem.commands.bench", "charge-throughput microbenchmarks"),
}

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pybpfmem",
        description="A userspace model of how Linux accounts BPF memory to memory cgroups.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not args or args[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if args else EXIT_USAGE
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
