"""Optional plots (the ``plot`` extra: matplotlib).

Every function returns 0 on success or an exit code after printing how to
install the extra, so commands never fail with a traceback when it is missing.
"""

from __future__ import annotations

import sys
from typing import Any

EXIT_NO_PLOT = 3
INSTALL_HINT = "plotting needs matplotlib: pip install 'pybpfmem[plot]' (or pip install matplotlib)"


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
            padded = list(series) + [series[-1] if series else 0] * (len(steps) - len(series))
            ax.step(range(len(steps)), [v / 1024 for v in padded], where="post", label=cgroup)
        ax.set_title(f"profile {profile}")
        ax.set_xticks(range(len(steps)))
        ax.set_xticklabels(steps, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("memory.current (KiB)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return 0
