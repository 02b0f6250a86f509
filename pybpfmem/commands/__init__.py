"""The ``pybpfmem`` commands (demo, simulate, plan, fuzz, bench; verify is
pybpfmem.live.verify): users of the model, not part of it.  ``cli.py`` dispatches."""
