"""Per-layer weight ownership: how much of every gated layer each task owns, and how much is free."""

from __future__ import annotations

from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

# Distinct mid-tone colours (one per task, cycling) that read on dark and light backgrounds.
TASK_COLOURS = ("#1f77b4", "#e6780a", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
Layers = tuple[tuple[str, tuple[int, ...], int, int], ...]  # (name, owned per task, free, total)


def freeze_layers(layers: dict[str, dict[str, Any]]) -> Layers:
    return tuple(
        (name, tuple(int(c) for c in info.get("owned", ())), int(info.get("free", 0)),
         int(info.get("total", 0)))
        for name, info in layers.items()
    )


class OwnershipBars:
    """A stacked bar per layer sized to the available width."""

    def __init__(self, layers: Layers) -> None:
        self.layers = layers

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.layers:
            yield Text("No weights allocated yet (allocation follows each task's teacher).",
                       style="italic")
            return
        tasks = max(len(owned) for _, owned, _, _ in self.layers)
        legend = Text("owner: ")
        for t in range(tasks):
            legend.append("■", style=TASK_COLOURS[t % len(TASK_COLOURS)]).append(f" T{t + 1}  ")
        legend.append("░ free", style="dim")
        yield legend
        name_width = min(28, max(len(name) for name, *_ in self.layers))
        bar_width = max(10, options.max_width - name_width - 14)
        for name, owned, free, total in self.layers:
            line = Text(f"{name[-name_width:]:<{name_width}} ", no_wrap=True)
            line.append_text(_bar(owned, total, bar_width))
            line.append(f" {100 * free / max(1, total):5.1f}% free")
            yield line


def _bar(owned: tuple[int, ...], total: int, width: int) -> Text:
    total = max(1, total)
    bar, used, cumulative = Text(), 0, 0
    for t, count in enumerate(owned):
        cumulative += count
        end = round(cumulative / total * width)
        if end > used:
            bar.append("█" * (end - used), style=TASK_COLOURS[t % len(TASK_COLOURS)])
            used = end
    bar.append("░" * (width - used), style="dim")
    return bar


class OwnershipView(Static):
    layers: reactive[Layers] = reactive(())

    def watch_layers(self, layers: Layers) -> None:
        self.update(OwnershipBars(layers))
