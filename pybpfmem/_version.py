"""The package version, from one source: ``version`` in pyproject.toml.

In a source tree (a clone, the editable install ``make run``/``make test``
make in .venv, ``PYTHONPATH=.`` in the kernel VMs) the pyproject.toml beside
the package is read, so the version cannot go stale; an installed wheel has
no pyproject.toml and reads the metadata pip wrote from it.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path


def _version() -> str:
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        with pyproject.open("rb") as fh:
            project = tomllib.load(fh).get("project", {})
        if project.get("name") == "pybpfmem":
            return str(project["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        pass
    try:
        return metadata.version("pybpfmem")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _version()
