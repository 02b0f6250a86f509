"""``python -m pybpfmem.profiles``: print the switch table of docs/profiles.md."""

from . import PROFILES, render_table

print(render_table(PROFILES.values()), end="")
