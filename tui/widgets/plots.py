"""Line plots (textual-plotext) of loss curves and per-task accuracies.

A plot's whole content is one immutable `Figure` in a reactive: set it and the watch method
redraws. Series colours are mid-tones that read on both dark and light themes; the canvas
follows the app's theme ("auto").
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.reactive import reactive
from textual_plotext import PlotextPlot

from tui.runstate import Curve, RunState

BLUE = (0, 120, 215)
ORANGE = (225, 115, 0)
GREEN = (30, 150, 70)
MAGENTA = (185, 55, 160)


@dataclass(frozen=True)
class Series:
    label: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    color: tuple[int, int, int]
    points: bool = False  # markers only (few values, e.g. one per epoch)


@dataclass(frozen=True)
class Figure:
    title: str
    series: tuple[Series, ...] = ()
    xlabel: str = ""
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None
    xticks: tuple[float, ...] = ()


class LinePlot(PlotextPlot):
    figure: reactive[Figure] = reactive(Figure(title=""))

    def watch_figure(self, figure: Figure) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.title(figure.title)
        if figure.xlabel:
            plt.xlabel(figure.xlabel)
        if figure.xlim:
            plt.xlim(*figure.xlim)
        if figure.ylim:
            plt.ylim(*figure.ylim)
        if figure.xticks:
            plt.xticks(list(figure.xticks), [f"{x:g}" for x in figure.xticks])
        for s in figure.series:
            if not s.xs:
                continue
            draw = plt.scatter if s.points or len(s.xs) == 1 else plt.plot
            draw(list(s.xs), list(s.ys), label=s.label, color=s.color, marker="braille"
                 if not (s.points or len(s.xs) == 1) else "dot")
        self.refresh()


def loss_figure(state: RunState, task: int | None, phase: str) -> Figure:
    """Live loss of one phase of one task plus its per-epoch CE (and distillation) terms."""
    name = {"teacher": "Teacher", "distill": "Distillation"}[phase]
    if task is None:
        return Figure(title=f"{name}: waiting for the first task")
    curve: Curve = state.curve(task, phase)
    live = "total loss" if phase == "distill" else "loss"
    series = [Series(live, *_unzip(curve.live), BLUE)] if curve.live else []
    ends = tuple(float(e.get("epoch", 0)) + 1 for e in curve.epochs)
    ce = tuple(float(e.get("ce", e.get("loss", 0.0))) for e in curve.epochs)
    series.append(Series("CE / epoch", ends, ce, ORANGE, points=True))
    # Epochs without a distillation term (beta 0) have no distill value: no such curve.
    distilled = [(end, float(e["distill"])) for end, e in zip(ends, curve.epochs, strict=True)
                 if e.get("distill") is not None]
    if phase == "distill" and distilled:
        series.append(Series("distill / epoch", *_unzip(distilled), MAGENTA, points=True))
    empty = not curve.live and not curve.epochs
    title = f"{name} · task {task + 1}" + (" (not started)" if empty else "")
    # The whole phase on the x axis, so the curve grows towards the right edge.
    epochs = state.planned_epochs.get(phase) or max((int(e.get("epochs", 0))
                                                     for e in curve.epochs), default=0)
    return Figure(title=title, series=tuple(series), xlabel="epoch",
                  xlim=(0.0, float(epochs)) if epochs else None)


def accuracy_figure(state: RunState) -> Figure:
    tag, taw, routing = state.per_task("tag"), state.per_task("taw"), state.per_task("routing")
    xs = tuple(float(t + 1) for t in range(len(tag)))
    series = (
        Series("TAg", xs, tuple(100 * v for v in tag), BLUE),
        Series("TAw", xs, tuple(100 * v for v in taw), GREEN),
        Series("routing", xs, tuple(100 * v for v in routing), ORANGE),
    )
    # The rule goes in the title: a longer legend label would hide the first task's points.
    # Short, as plotext drops a title wider than the plot (80 columns beside the teachers).
    title = (f"Accuracy %, routing with {state.routing_rule}" if xs
             else "Accuracy: no task evaluated yet")
    return Figure(title=title, series=series, xlabel="tasks learned", ylim=(0, 100), xticks=xs)


def _unzip(points: list[tuple[float, float]]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(p[0] for p in points), tuple(p[1] for p in points)
