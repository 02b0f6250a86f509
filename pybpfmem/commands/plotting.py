"""Optional plots (the ``plot`` extra: matplotlib).

Every function returns 0 on success or an exit code after printing how to
install the extra, so commands never fail with a traceback when it is missing.
"""

from __future__ import annotations

import sys
from typing import Any

from pybpfmem.commands.common import EXIT_NO_PLOT, INSTALL_HINT

__all__ = ["EXIT_NO_PLOT", "INSTALL_HINT", "plot_bench", "plot_timelines"]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_timelines(timelines: dict[str, dict[str, Any]], path: str) -> int:
    """memory.current of each cgroup over the steps of a workload, one panel per profile."""
    plt = _pyplot()
    if plt is None:
        print(f"pybpfmem: {INSTALL_HINT}", file=sys.stderr)
        return EXIT_NO_PLOT
    profiles = list(timelines)
    fig, axes = plt.subplots(1, len(profiles), figsize=(5 * len(profiles), 4), sharey=True, squeeze=False)
    for ax, profile in zip(axes[0], profiles):
        data = timelines[profile]
        steps = data["steps"]
        for cgroup, series in sorted(data["memory.current"].items()):
            padded = list(series) + [None] * (len(steps) - len(series))
            # None: the cgroup does not exist at that step (a gap)
            ax.step(range(len(steps)), [float("nan") if v is None else v / 1024 for v in padded],
                    where="post", label=cgroup)
        ax.set_title(f"profile {profile}")
        ax.set_xticks(range(len(steps)))
        ax.set_xticklabels(steps, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("memory.current (KiB)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return 0


def plot_bench(doc: dict[str, Any], path: str) -> int:
    """ns/op against hierarchy depth and against threads, model vs floors."""
    plt = _pyplot()
    if plt is None:
        print(f"pybpfmem: {INSTALL_HINT}", file=sys.stderr)
        return EXIT_NO_PLOT
    rows = {r["name"]: r for r in doc["results"]}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    depths = [d for d in (1, 4, 8) if f"stock miss, depth {d}" in rows]
    if depths:
        ax1.plot(depths, [rows[f"stock miss, depth {d}"]["ns_per_op"] for d in depths], "o-", label="model: stock miss")
        ax1.plot(depths, [rows[f"stock miss, depth {d}"]["baseline_ns"] for d in depths], "s--", label="floor: d+1 atomic adds")
    if "page charge/uncharge, stock hit" in rows:
        hit = rows["page charge/uncharge, stock hit"]
        ax1.axhline(hit["ns_per_op"], color="g", label="model: stock hit")
        ax1.axhline(hit["baseline_ns"], color="g", linestyle=":", label="floor: plain add")
    ax1.set_xlabel("hierarchy depth")
    ax1.set_ylabel("ns per op")
    ax1.legend(fontsize=7)
    for path_name, style in (("per-cpu stock", "o-"), ("shared counters", "s--")):
        pts = [(n, rows[f"{n} thread(s), {path_name}"]["ns_per_op"]) for n in (1, 2) if f"{n} thread(s), {path_name}" in rows]
        if pts:
            ax2.plot([p[0] for p in pts], [1e3 / p[1] for p in pts], style, label=path_name)
    ax2.set_xlabel("threads (simulated cpus)")
    ax2.set_ylabel("Mops/s (aggregate)")
    ax2.set_xticks([1, 2])
    ax2.legend(fontsize=7)
    fig.suptitle(f"pybpfmem bench — {doc['machine']['cpu']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return 0
