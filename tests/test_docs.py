"""The documentation cannot rot.

Every ```python fence in README.md and docs/*.md that holds ``>>>`` lines is run
with the doctest module (each fence on its own, in a fresh namespace, so a
page's examples are independent and their order does not matter), and every
relative link in those files must point to a file that exists.

Fences that are not Python (```sh, ```toml, ```text, plain ```) are not run:
command output in docs/guide.md is captured by hand from real runs; its
numbers are cross-checked by the doctests of docs/api.md and docs/bpf-maps.md
where they come from the model.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

_FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
# [text](target) links, skipping images' and code spans' look-alikes is not
# needed: docs do not put links inside code spans.
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")

_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _python_fences(path: Path) -> list[tuple[int, str]]:
    """(first line number, source) of every ```python fence with a doctest prompt."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        lang, body = m.group(1).lower(), m.group(2)
        if lang in ("python", "py", "pycon") and ">>>" in body:
            out.append((text.count("\n", 0, m.start(2)) + 1, body))
    return out


def _doc_cases() -> list[tuple[Path, int, str]]:
    return [(p, line, body) for p in DOC_FILES for line, body in _python_fences(p)]


def _case_id(case: tuple[Path, int, str]) -> str:
    return f"{case[0].relative_to(ROOT)}:{case[1]}"


def test_there_are_doc_examples() -> None:
    # the README's example and the API reference's must be found by the
    # fence parser, or the doctests below would silently check nothing
    files = {p.name for p, _, _ in _doc_cases()}
    assert "README.md" in files
    assert "api.md" in files


@pytest.mark.parametrize("case", _doc_cases(), ids=_case_id)
def test_doc_example(case: tuple[Path, int, str]) -> None:
    path, line, body = case
    name = f"{path.relative_to(ROOT)}:{line}"
    parser = doctest.DocTestParser()
    test = parser.get_doctest(body, {"__name__": "__doc__"}, name, str(path), line - 1)
    assert test.examples, f"{name}: no doctest examples parsed"
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=True)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed\n" + \
        "".join(report)


def _links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    # links inside fenced code are not links
    text = _FENCE.sub("", text)
    return [m.group(1) for m in _LINK.finditer(text)]


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_exist(path: Path) -> None:
    broken = []
    for target in _links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http:, https:, mailto: ... and in-page anchors
        file_part = target.split("#", 1)[0]
        if not (path.parent / file_part).exists():
            broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)}: broken relative links {broken}"


def test_link_checker_sees_broken_links(tmp_path: Path) -> None:
    # the checker itself must be able to fail
    page = tmp_path / "p.md"
    page.write_text("[ok](p.md) [web](https://example.org) [bad](missing.md#x)\n"
                    "```python\n[not a link](nowhere.md)\n```\n")
    assert _links(page) == ["p.md", "https://example.org", "missing.md#x"]
    assert not (tmp_path / "missing.md").exists()


def test_doctest_runner_sees_wrong_output(tmp_path: Path) -> None:
    # a fence whose expected output is wrong must be reported as a failure
    page = tmp_path / "p.md"
    page.write_text("```python\n>>> 1 + 1\n3\n```\n")
    ((_, body),) = _python_fences(page)
    test = doctest.DocTestParser().get_doctest(body, {}, "p", str(page), 0)
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    runner.run(test, out=lambda s: None)
    assert runner.summarize(verbose=False).failed == 1


# ---------------------------------------------------------------- guide output
# The ```text blocks of docs/guide.md show real runs.  Deterministic commands are
# run again here and must print exactly what the page shows (80 columns, no
# colour); `PYBPFMEM_UPDATE_DOCS=1 pytest tests/test_docs.py` rewrites the blocks
# after an intended change.  Commands whose output depends on the machine or the
# clock (verify, fuzz, bench) are run with --help, so their flags stay real.
GUIDE = ROOT / "docs" / "guide.md"
_DETERMINISTIC = ("--help", "demo", "simulate", "plan")


def _guide_runs() -> list[tuple[int, list[str], str]]:
    """(line, argv, shown output) of every `$ python -m pybpfmem ...` in guide.md."""
    text = GUIDE.read_text(encoding="utf-8")
    runs = []
    for m in _FENCE.finditer(text):
        if m.group(1) != "text":
            continue
        body = m.group(2)
        first = text.count("\n", 0, m.start(2)) + 1
        chunks = re.split(r"^(?:sudo )?\$ python -m pybpfmem(.*)\n", body, flags=re.M)
        offset = first
        for i in range(1, len(chunks), 2):
            runs.append((offset, chunks[i].split(), chunks[i + 1]))
    return runs


def _run_cli(argv: list[str]) -> str:
    import os
    import subprocess
    import sys

    env = dict(os.environ, COLUMNS="80", NO_COLOR="1", TERM="dumb")
    proc = subprocess.run([sys.executable, "-m", "pybpfmem", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    return proc.stdout + proc.stderr


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


@pytest.mark.parametrize("run", _guide_runs(), ids=lambda r: " ".join(r[1]) or "(none)")
def test_guide_output_is_current(run) -> None:
    import os

    _, argv, shown = run
    if argv and argv[0] not in _DETERMINISTIC:
        out = _run_cli([argv[0], "--help"])
        assert "usage: pybpfmem " + argv[0] in out
        return
    got = _run_cli(argv)
    if os.environ.get("PYBPFMEM_UPDATE_DOCS") == "1":
        text = GUIDE.read_text(encoding="utf-8")
        GUIDE.write_text(text.replace(shown, got if got.endswith("\n") else got + "\n", 1), encoding="utf-8")
        return
    assert _normal(got) == _normal(shown), f"docs/guide.md is stale for {' '.join(argv)}"
