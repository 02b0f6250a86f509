"""``pybpfmem verify [--quick] [--json]``: the model against the live kernel.

Exit codes: 0 agreement above thresholds; 1 below; 2 bad arguments;
3 the kernel refuses (reason printed: not root, no bpf(), no memory controller,
unprivileged_bpf_disabled); 4 the model side is not available yet.

Status: the live side (runner + matrix) is real; the model side is a stub until the
BPF model exposes a System/Task bpf() entry point to drive with the same scenario
(TODO: build ``System.from_host()`` and replay each case's steps).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_BELOW, EXIT_USAGE, EXIT_REFUSED, EXIT_NO_MODEL = 0, 1, 2, 3, 4

QUICK_CASES: list[tuple[str, dict[str, Any]]] = [
    ("ARRAY k4 v64 m1000", {"type": "ARRAY", "key": 4, "value": 64, "max": 1000}),
    ("HASH k4 v64 m1000", {"type": "HASH", "key": 4, "value": 64, "max": 1000}),
    ("HASH k4 v64 m1000 NO_PREALLOC", {"type": "HASH", "key": 4, "value": 64, "max": 1000, "flags": 1}),
    ("RINGBUF 1MiB", {"type": "RINGBUF", "key": 0, "value": 0, "max": 1 << 20}),
]


def _live(cases: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    from .runner import run_scenario
    out = []
    for label, spec in cases:
        r = run_scenario({"steps": [{"op": "create", "map": "m", **spec},
                                    {"op": "close", "map": "m"}]})
        st = r.steps[0] if r.steps else {}
        out.append({"case": label, "memlock": st.get("memlock"), "errno": st.get("errno"),
                    "kmem": st.get("delta", {}).get("A", {}).get("kmem"),
                    "killed": r.killed_by})
    return out


def _model(cases: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]] | None:
    """Model observations for the same cases, or None while the model is not wired."""
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pybpfmem verify")
    ap.add_argument("--quick", action="store_true", help="a subset that runs in under a minute")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    from .runner import refusal_reason
    reason = refusal_reason()
    if reason is not None:
        print(json.dumps({"refused": reason}) if args.json else f"verify: kernel refuses: {reason}")
        return EXIT_REFUSED
    cases = QUICK_CASES
    live = _live(cases)
    model = _model(cases)
    if args.json:
        print(json.dumps({"live": live, "model": model,
                          "status": "model not available" if model is None else "ok"}))
    else:
        print(f"{'case':40} {'memlock':>10} {'kmem':>10} {'errno':>6}")
        for o in live:
            print(f"{o['case']:40} {str(o['memlock']):>10} {str(o['kmem']):>10} {str(o['errno']):>6}")
        if model is None:
            print("verify: model not available (the BPF model has no host-matched System to "
                  "replay these cases yet); live observations only")
    return EXIT_NO_MODEL if model is None else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
