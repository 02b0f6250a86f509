"""``python -m pybpfmem``: the same as the ``pybpfmem`` command."""

import sys

from pybpfmem.cli import main

sys.exit(main())
