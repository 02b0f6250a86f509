"""The package as users install it: the `pybpfmem` command and `import pybpfmem` from
any directory of the venv (make run/test install the tree, editable), one version
(pyproject's), the py.typed marker, and the names type checkers see."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pybpfmem
from pybpfmem.bpf import uapi

ROOT = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_one_version_from_pyproject(capsys):
    from pybpfmem.commands import cli

    assert pybpfmem.__version__ == VERSION
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"pybpfmem {VERSION}\n"


def test_installed_command_and_import_from_anywhere(tmp_path):
    # the console script pip made from [project.scripts], and the package found from a
    # directory that is not the source tree (the editable install's path entry)
    (script,) = metadata.entry_points(group="console_scripts", name="pybpfmem")
    assert script.value == "pybpfmem.commands.cli:main"
    command = Path(sys.executable).parent / "pybpfmem"
    out = subprocess.run([str(command), "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (0, f"pybpfmem {VERSION}\n")
    out = subprocess.run([sys.executable, "-c", "import pybpfmem; print(pybpfmem.System().profile.name)"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (0, "6.18\n"), out.stderr


def test_py_typed_marker_ships():
    assert (ROOT / "pybpfmem" / "py.typed").is_file()


def test_uapi_names_are_written_out_for_type_checkers():
    """uapi.__all__ is a literal list (mypy cannot see a computed one): it must be exactly
    the constants uapi defines, so a new constant fails here until it is listed."""
    assert uapi.__all__ == uapi.uapi_names(), (
        f"add to uapi.__all__: {sorted(set(uapi.uapi_names()) - set(uapi.__all__))}; "
        f"remove: {sorted(set(uapi.__all__) - set(uapi.uapi_names()))}")
    assert set(uapi.__all__) <= set(pybpfmem.__all__) and set(uapi.__all__) <= set(pybpfmem.bpf.__all__)


def test_the_typed_usage_script_runs(capsys):
    # tests/typing_usage.py is what `make lint` type-checks as a user's script
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import typing_usage
    finally:
        sys.path.remove(str(ROOT / "tests"))
    assert typing_usage.main() == 0
    assert capsys.readouterr().out.split()[0] == VERSION
