"""``python -m pybpfmem``: the same as the ``pybpfmem`` command."""

import sys

from pybpfmem.commands.cli import main

sys.exit(main())
