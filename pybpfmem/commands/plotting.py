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
    """One panel per profile, over the steps of a workload: memory.current of each cgroup
    (solid) and its memory.max (dashed, same colour, where it is not "max"); where the
    profile charges BPF memory to RLIMIT_MEMLOCK (uid 0's locked_vm moves: the 5.10
    rules), locked_vm (black) against RLIMIT_MEMLOCK (dotted, where it is not unlimited).
    Optional keys of a timeline: "memory.max", "locked_vm", "RLIMIT_MEMLOCK"."""
    plt = _pyplot()
    if plt is None:
        print(f"pybpfmem: {INSTALL_HINT}", file=sys.stderr)
        return EXIT_NO_PLOT
    profiles = list(timelines)
    fig, axes = plt.subplots(1, len(profiles), figsize=(5 * len(profiles), 4.5), squeeze=False)

    def kib(series: list[Any], n: int) -> list[float]:
        padded = list(series) + [None] * (n - len(series))
        # None: the cgroup does not exist, or no limit, at that step (a gap)
        return [float("nan") if v is None else v / 1024 for v in padded]

    for ax, profile in zip(axes[0], profiles):
        data = timelines[profile]
        steps = data["steps"]
        x = range(len(steps))
        limits = data.get("memory.max", {})
        for cgroup, series in sorted(data["memory.current"].items()):
            (line,) = ax.step(x, kib(series, len(steps)), where="post", label=cgroup)
            if any(v is not None for v in limits.get(cgroup, [])):
                ax.step(x, kib(limits[cgroup], len(steps)), where="post", linestyle="--",
                        color=line.get_color(), linewidth=1, label=f"{cgroup} memory.max")
        locked = data.get("locked_vm", [])
        if any(locked):
            ax.step(x, kib(locked, len(steps)), where="post", color="black", label="uid 0 locked_vm")
            ax.step(x, kib(data.get("RLIMIT_MEMLOCK", []), len(steps)), where="post", color="black",
                    linestyle=":", label="RLIMIT_MEMLOCK")
        ax.set_title(f"profile {profile}")
        ax.set_xticks(list(x))
        ax.set_xticklabels(steps, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("KiB (memory.current; locked_vm where charged)")
        ax.legend(fontsize=6)
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
