"""The sweep's PNG plots (needs matplotlib, the `report` extra), drawn on matplotlib's Agg
canvas without pyplot, as mind_core/report_plots.py does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def tag_curves(methods: Mapping[str, Sequence[Sequence[float | None]]], title: str,
               path: Path) -> Path:
    """TAg (%) after each task, one line per method: the mean over its seeds' curves, the
    band one sample standard deviation where there are two seeds or more."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    longest = 1
    for method, curves in methods.items():
        tasks = max(len(c) for c in curves)
        longest = max(longest, tasks)
        values = np.full((len(curves), tasks), np.nan)
        for i, curve in enumerate(curves):
            values[i, :len(curve)] = [np.nan if v is None else 100 * v for v in curve]
        learned = np.arange(1, tasks + 1)
        mean = np.nanmean(values, axis=0)
        seeds = f"{len(curves)} seed{'s' if len(curves) > 1 else ''}"
        ax.plot(learned, mean, marker="o", label=f"{method} ({seeds})")
        if len(curves) > 1:
            std = np.nanstd(values, axis=0, ddof=1)
            ax.fill_between(learned, mean - std, mean + std, alpha=0.2)
    ax.set(xlabel="tasks learned", ylabel="TAg on the tasks so far (%)", ylim=(0, 102),
           xticks=np.arange(1, longest + 1), title=f"{title}\ntask-agnostic accuracy")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path
