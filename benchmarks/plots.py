"""The accuracy benchmark's PNGs: one per setting and backend, TAg after each task per method
and MIND's TAg accuracy matrix, both averaged over seeds (benchmarks/accuracy.py writes them)."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np


def plot(results: dict, out_dir: Path) -> list[str]:
    """One PNG per setting and backend: TAg after each task per method, and MIND's TAg
    accuracy matrix (both averaged over seeds)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots (pip install matplotlib)", file=sys.stderr)
        return []
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for row in results["runs"]:
        if "error" not in row:
            groups.setdefault((row["setting"], row["backend"]), {}).setdefault(
                row["method"], []).append(row)
    written = []
    for (setting, backend), methods in groups.items():
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
        for method, runs in methods.items():
            curve = 100 * np.mean([r["tag"] for r in runs], axis=0)
            left.plot(range(1, len(curve) + 1), curve, marker="o", label=method)
        left.set(xlabel="tasks learned", ylabel="TAg accuracy (%)", ylim=(0, 100),
                 xticks=range(1, len(curve) + 1),
                 title=f"{setting} ({backend}): TAg after each task")
        left.legend(fontsize=8)
        if "mind" in methods:
            size = len(methods["mind"][0]["acc_matrix_tag"])
            matrix = np.full((size, size), np.nan)
            for t in range(size):
                matrix[t, :t + 1] = np.mean([r["acc_matrix_tag"][t] for r in methods["mind"]],
                                            axis=0)
            image = right.imshow(100 * matrix, vmin=0, vmax=100, cmap="viridis")
            for (t, j), value in np.ndenumerate(matrix):
                if not math.isnan(value):
                    right.text(j, t, f"{100 * value:.0f}", ha="center", va="center",
                               fontsize=7, color="white" if value < 0.6 else "black")
            right.set(xlabel="task evaluated", ylabel="after task",
                      title="MIND TAg accuracy matrix (%)")
            fig.colorbar(image, ax=right)
        else:
            right.axis("off")
        fig.tight_layout()
        path = out_dir / re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{setting}-{backend}.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path.name)
    return written
