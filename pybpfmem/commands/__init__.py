"""The ``pybpfmem`` commands (demo, simulate, plan, verify, fuzz, bench): users of the
model, not part of it; verify's machinery is pybpfmem/live/.  ``cli.py`` dispatches."""
