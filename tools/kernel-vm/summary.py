#!/usr/bin/env python3
"""One markdown row per kernel VM run of `make kernel-vm` (results/*.meta.json).

    tools/kernel-vm/summary.py build/kernel-vm/results [--rows]

Columns: the run (kernel, cgroup mode, profile, exit code, times), the rows verify compared
(every row but skipped ones), how many agree (verdict ok or info), and verify's summary.
--rows also lists every verify row that is not "ok" or "info".
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    results, show_rows = Path(argv[0]), "--rows" in argv
    print("| kernel | cgroup | profile | exit | VM wall s | guest boot s | verify s "
          "| rows compared | agree | result |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    details = []
    for meta_path in sorted(results.glob("*.meta.json")):
        meta = _load(meta_path) or {}
        prefix = str(meta_path)[: -len(".meta.json")]
        err = Path(prefix + ".err").read_text(errors="replace") if Path(prefix + ".err").exists() else ""
        t = meta.get("guest_times_s", {})
        vt = round(t["done_s"] - t["setup_s"], 1) if "done_s" in t and "setup_s" in t else ""
        out = _load(Path(prefix + ".out"))
        profile = (out or {}).get("host", {}).get("profile", "")
        rows = (out or {}).get("rows") or []
        compared = [r for r in rows if r.get("verdict") != "skip"]
        agree = sum(1 for r in compared if r.get("verdict") in ("ok", "info"))
        if meta.get("setup_error"):
            result = "setup: " + meta["setup_error"]
        elif out is None:
            result = "no JSON: " + (err.strip().splitlines() or ["(no output)"])[-1][:120]
        elif "summary" not in out:
            result = json.dumps(out)[:120]
        else:
            s = out["summary"]
            result = ("PASS" if s["pass"] else "below: " + ", ".join(s["failed"])) + (
                f"; {s['fails']} FAIL, {s['deviations']} deviation, {s['skipped']} skipped rows")
            details += [(meta.get("kernel"), meta.get("cgroup"), r) for r in out["rows"]
                        if r["verdict"] not in ("ok", "info")]
        print(f"| {meta.get('kernel')} | {meta.get('cgroup')} | {profile} "
              f"| {meta.get('rc')} | {meta.get('wall_s')} | {t.get('boot_s', '')} | {vt} "
              f"| {len(compared) if rows else ''} | {agree if rows else ''} | {result} |")
    if show_rows and details:
        print("\n| kernel | cgroup | case | quantity | model | kernel value | verdict | why |")
        print("|---|---|---|---|---|---|---|---|")
        for k, c, r in details:
            q, why = (str(r[x]).replace("|", "/") for x in ("quantity", "why"))
            print(f"| {k} | {c} | {r['case']} | {q} | {r['model']} | {r['kernel']} "
                  f"| {r['verdict']} | {why[:160]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
