"""The PNG plots of `mind report` (needs matplotlib, the `report` extra).

Figures are drawn on matplotlib's Agg canvas directly, without pyplot: no window, no global
figure state, and no change to the backend of a program that calls this from Python.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mind_core.run_results import Row, RunResults

DPI = 100
# Characters of the run's title per inch of figure width at its font size (12 pt: about
# 6.6 pt a character, less a margin), so a long title wraps instead of running off the edges.
TITLE_CHARS_PER_INCH = 10


def write_plots(results: RunResults, out: Path) -> list[Path]:
    written = [_accuracy_curves(results, out / "accuracy.png")]
    for kind, label in (("taw", "task-aware (TAw)"), ("tag", "task-agnostic (TAg)")):
        written.append(_heatmap(getattr(results, f"acc_matrix_{kind}"), label, results.title,
                                out / f"acc_matrix_{kind}.png"))
    if results.ownership:
        written.append(_ownership_bars(results, out / "ownership.png"))
    return written


def _titled(fig: Figure, run_title: str) -> None:
    """The run's title over the whole figure, wrapped to its width: constrained layout makes
    room above the axes for a title's lines, not beside the figure for its length."""
    width = int(fig.get_figwidth() * TITLE_CHARS_PER_INCH)
    fig.suptitle(textwrap.fill(run_title, width=width, break_on_hyphens=False))


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI)
    return path


def _percent(values: Row) -> np.ndarray:
    """Accuracies in %, a missing one (None) as NaN, which matplotlib leaves undrawn."""
    return np.array([np.nan if v is None else 100 * v for v in values], dtype=float)


def _accuracy_curves(results: RunResults, path: Path) -> Path:
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    learned = np.arange(1, results.tasks_done + 1)
    ax.plot(learned, _percent(results.taw), marker="o", label="TAw (task-aware)")
    ax.plot(learned, _percent(results.tag), marker="o", label="TAg (task-agnostic)")
    ax.plot(learned, _percent(results.routing), marker=".", linestyle="--",
            label=f"routing accuracy ({results.routing_rule})")
    ax.set(xlabel="tasks learned", ylabel="accuracy on the tasks so far (%)", ylim=(0, 102),
           xticks=learned, title="accuracy after each task")
    _titled(fig, results.title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    return _save(fig, path)


def _heatmap(matrix: list[Row], label: str, title: str, path: Path) -> Path:
    size = len(matrix)
    values = np.full((size, size), np.nan)
    for t, row in enumerate(matrix):
        values[t, :len(row)] = _percent(row)
    side = max(4.5, 0.55 * size + 2.5)
    fig = Figure(figsize=(side + 1, side), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(values), vmin=0, vmax=100, cmap=cmap)
    digits = 1 if size <= 10 else 0  # keep the numbers inside their cells
    for (t, j), value in np.ndenumerate(values):
        if not math.isnan(value):
            ax.text(j, t, f"{value:.{digits}f}", ha="center", va="center",
                    fontsize=8 if size <= 10 else 6,
                    color="white" if value < 60 else "black")
    ticks = np.arange(size)
    names = [f"T{t + 1}" for t in ticks]
    ax.set(xticks=ticks, yticks=ticks, xticklabels=names, yticklabels=names,
           xlabel="task evaluated", ylabel="after learning task",
           title=f"{label} accuracy (%)")
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    _titled(fig, title)
    return _save(fig, path)


def _task_colors(tasks: int) -> list:
    name = "tab10" if tasks <= 10 else "tab20" if tasks <= 20 else "viridis"
    cmap = matplotlib.colormaps[name]
    if name == "viridis":
        return [cmap(i / max(tasks - 1, 1)) for i in range(tasks)]
    return [cmap(i) for i in range(tasks)]


def _ownership_bars(results: RunResults, path: Path) -> Path:
    """One horizontal bar per layer: each task's share of its weights, then the free share."""
    layers = results.ownership or {}
    names = list(layers)
    tasks = len(next(iter(layers.values()))["owned"])
    shown = (results.ownership_task + 1 if results.ownership_task is not None else tasks)
    totals = np.array([max(layers[n]["total"], 1) for n in names], dtype=float)
    fig = Figure(figsize=(9, max(3.0, 0.32 * len(names) + 1.8)), layout="constrained")
    ax = fig.add_subplot()
    rows = np.arange(len(names))
    left = np.zeros(len(names))
    for t, color in zip(range(shown), _task_colors(shown), strict=True):
        share = 100 * np.array([layers[n]["owned"][t] for n in names]) / totals
        ax.barh(rows, share, left=left, color=color, label=f"task {t + 1}")
        left += share
    free = 100 * np.array([layers[n]["free"] for n in names]) / totals
    ax.barh(rows, free, left=left, color="lightgray", label="free")
    after = f"after allocating task {shown}" if results.ownership_task is not None else ""
    ax.set(yticks=rows, yticklabels=names, xlim=(0, 100), xlabel="share of the layer's "
           "weights (%)", title=f"weights owned per layer {after}".rstrip())
    _titled(fig, results.title)
    ax.set_ylim(len(names) - 0.5, -0.5)  # the first layer on top, as in the model
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return _save(fig, path)
