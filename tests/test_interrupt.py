"""Ctrl-C (SIGINT) during a long command: exit 130 and one line on stderr, never a
traceback (pybpfmem.commands.cli, the one place that handles it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# a scenario that runs for minutes: ten million updates of a no-prealloc hash
LONG_SCENARIO = """\
[[task]]
name = "t"
[[step]]
action = "create_map"
task = "t"
name = "m"
type = "hash"
key_size = 8
value_size = 8
max_entries = 10000000
flags = ["NO_PREALLOC"]
[[step]]
action = "update"
map = "m"
count = 10000000
"""


def interrupted(argv: list[str], cwd: Path, wait: float = 4.0) -> tuple[int, str, str]:
    """Start `pybpfmem ARGV`, let it run `wait` seconds (past its imports, into the work),
    send SIGINT as a terminal's Ctrl-C does, and return (exit code, stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "pybpfmem", *argv], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    time.sleep(wait)
    assert proc.poll() is None, f"pybpfmem {argv[0]} ended before the signal: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


# fuzz runs derandomized: what is tested is Ctrl-C, not whether random examples find a
# divergence in 4 s (a divergence would exit 1 with FAILED, whatever the signal)
@pytest.mark.parametrize("argv", [["fuzz", "--seconds", "300", "--quiet", "--derandomize"], ["bench", "--full"],
                                  ["simulate", "long.toml"]], ids=lambda a: a[0])
def test_ctrl_c_exits_130_with_one_line(argv, tmp_path):
    (tmp_path / "long.toml").write_text(LONG_SCENARIO)
    rc, out, err = interrupted(argv, tmp_path)
    assert (rc, err) == (130, f"pybpfmem {argv[0]}: interrupted\n"), out
    # fuzz stops between rounds: an interrupted step is no divergence to report
    assert "FAILED" not in out


@pytest.mark.live
def test_ctrl_c_during_verify(tmp_path):
    # verify cleans up its scratch cgroups and children first (live/session.py), then
    # exits 128 + SIGINT with its own lines
    rc, _, err = interrupted(["verify", "--quick", "--json"], tmp_path, wait=8.0)
    assert rc == 130
    assert "Traceback" not in err
    assert err.splitlines()[-1] == "verify: cleaned up after SIGINT"


@pytest.mark.parametrize("json_out", [False, True], ids=["table", "json"])
def test_a_closed_pipe_ends_quietly(tmp_path, json_out):
    # `pybpfmem simulate many.toml | head -1`: the reader goes away while the command
    # still writes (3000 steps: far more than a pipe holds, so a write must fail); it
    # ends quietly: 128 + SIGPIPE from cli.main's handler, or 1 where rich's table
    # writer met the closed pipe first (rich's Console.on_broken_pipe)
    (tmp_path / "many.toml").write_text('[[step]]\naction = "drain"\n' * 3000)
    argv = ["simulate", "many.toml"] + (["--json"] if json_out else [])
    proc = subprocess.Popen([sys.executable, "-m", "pybpfmem", *argv], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    rc = proc.wait(timeout=120)
    assert rc in (128 + signal.SIGPIPE, 1) and err == b""
