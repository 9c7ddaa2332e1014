"""Two runs side by side: final metrics, accuracy matrices, then the settings that differ."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from mind_core.console import plural
from tui.catalog import format_value, lookup
from tui.format import duration, pct
from tui.rundir import CONFIG, METRICS, RunSummary, read_json, run_events, summarize
from tui.runstate import fraction
from tui.widgets.matrix import AccuracyMatrix, MatrixPair

SETTINGS = ("backend", "dataset", "variant", "model", "tasks", "seed", "teacher.epochs",
            "distill.epochs", "distillation.beta", "inference.temperature",
            "inference.routing", "allocation.weight_sharing")


@dataclass(frozen=True)
class RunReport:
    summary: RunSummary
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    matrix_tag: tuple[tuple[float, ...], ...] = ()
    matrix_taw: tuple[tuple[float, ...], ...] = ()
    per_task_tag: tuple[float, ...] = ()
    per_task_taw: tuple[float, ...] = ()
    seconds: float | None = None


def load_report(run_dir: Path) -> RunReport:
    """metrics.json when the run wrote one, else its last evaluated event."""
    summary = summarize(run_dir)
    config = read_json(run_dir / CONFIG).get("config")
    config = config if isinstance(config, dict) else {}
    metrics = read_json(run_dir / METRICS)
    events = run_events(run_dir, frozenset({"evaluated", "run_finished"}))
    evaluated = [e for e in events if e["type"] == "evaluated"]
    last = evaluated[-1] if evaluated else {}
    finished = [e for e in events if e["type"] == "run_finished"]
    source = metrics if metrics.get("acc_matrix_tag") else last
    return RunReport(
        summary=summary, config=config, metrics=metrics,
        matrix_tag=_matrix(source.get("acc_matrix_tag")),
        matrix_taw=_matrix(source.get("acc_matrix_taw")),
        per_task_tag=_numbers(metrics.get("tag") or [e.get("tag") for e in evaluated]),
        per_task_taw=_numbers(metrics.get("taw") or [e.get("taw") for e in evaluated]),
        seconds=finished[-1].get("seconds") if finished else None,
    )


def _numbers(values: Any) -> tuple[float, ...]:
    """Accuracies read from a run's files; NaN (shown as "–") where one is not a number."""
    if not isinstance(values, list):
        return ()
    return tuple(math.nan if (v := fraction(value)) is None else v for value in values)


def _matrix(rows: Any) -> tuple[tuple[float, ...], ...]:
    if not isinstance(rows, list):
        return ()
    return tuple(_numbers(row) for row in rows if isinstance(row, list))


DELTA = "Δ\n2nd − 1st"  # on two lines: the narrow column leaves the names more room


def _table(a: RunReport, b: RunReport, delta: bool) -> Table:
    # The widget is as wide as the screen (app.tcss), so two run names too long to fit side
    # by side fold onto more lines; the labels and the differences never do (the difference
    # column, last, was the one cut off at 100 columns).
    table = Table(box=None, padding=(0, 2, 0, 0), show_edge=False, header_style="bold")
    table.add_column("", no_wrap=True)
    table.add_column(a.summary.name, overflow="fold")
    table.add_column(b.summary.name, overflow="fold")
    if delta:
        table.add_column(DELTA, justify="right", no_wrap=True, min_width=9)
    return table


def results_table(a: RunReport, b: RunReport) -> Table:
    """Final (or latest) metrics, percentage points apart."""
    table = _table(a, b, delta=True)
    table.add_row("status", _status(a), _status(b), "")
    for label, getter in _RESULTS:
        va, vb = getter(a), getter(b)
        table.add_row(label, pct(va), pct(vb), _delta(va, vb))
    table.add_row("time", duration(a.seconds), duration(b.seconds), "")
    return table


def settings_table(a: RunReport, b: RunReport) -> Table:
    """The settings that matter; the ones that differ in bold."""
    table = _table(a, b, delta=False)
    for key in SETTINGS:
        va, vb = format_value(lookup(a.config, key)), format_value(lookup(b.config, key))
        style = "bold" if va != vb else "dim"
        table.add_row(Text(key, style=style), Text(va or "–", style=style),
                      Text(vb or "–", style=style))
    return table


def _status(report: RunReport) -> str:
    s = report.summary
    return s.status if s.tasks_done == s.tasks else \
        f"{s.status} ({s.tasks_done}/{plural(s.tasks, 'task')})"


def _delta(a: float | None, b: float | None) -> Text:
    """The second run's number minus the first's, as the column heading says, from the
    numbers as shown: 63.5 and 77.0 differ by +13.5, even where the unrounded values are
    13.45 apart (a difference of its own rounding would read +13.4 beside them)."""
    shown_a, shown_b = pct(a), pct(b)
    if "–" in (shown_a, shown_b):
        return Text("")
    diff = float(shown_b) - float(shown_a)
    return Text(f"{diff:+.1f}", style="bold" if abs(diff) >= 0.05 else "dim")


def _nested(report: RunReport, *keys: str) -> float | None:
    node: Any = report.metrics
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return float(node) if isinstance(node, (int, float)) else None


_RESULTS = (
    ("TAg %", lambda r: r.summary.tag),
    ("TAw %", lambda r: r.summary.taw),
    ("routing %", lambda r: r.summary.routing),
    ("forgetting TAg", lambda r: _nested(r, "forgetting", "tag", "average")),
    ("forgetting TAw", lambda r: _nested(r, "forgetting", "taw", "average")),
    ("BWT TAg", lambda r: _nested(r, "bwt", "tag")),
)


class CompareScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"),
                Binding("b", "app.pop_screen", "Back", show=False)]

    class Loaded(Message):
        def __init__(self, a: RunReport, b: RunReport) -> None:
            super().__init__()
            self.a, self.b = a, b

    def __init__(self, first: Path, second: Path) -> None:
        super().__init__()
        self.first, self.second = first, second

    def compose(self) -> ComposeResult:
        yield Header()
        with ScrollableContainer(id="compare-body"):
            yield Static("loading…", id="compare-table")
            for kind in ("tag", "taw"):
                yield MatrixPair(("", f"a-{kind}"), ("", f"b-{kind}"), classes="matrix-row")
            yield Static("", id="compare-settings")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.first.name} vs {self.second.name}"
        self._load()

    @work(thread=True, exclusive=True)
    def _load(self) -> None:
        self.post_message(self.Loaded(load_report(self.first), load_report(self.second)))

    def on_compare_screen_loaded(self, message: Loaded) -> None:
        a, b = message.a, message.b
        self.query_one("#compare-table", Static).update(results_table(a, b))
        self.query_one("#compare-settings", Static).update(settings_table(a, b))
        for side, report in (("a", a), ("b", b)):
            for kind in ("tag", "taw"):
                label = "TAg" if kind == "tag" else "TAw"
                self.query_one(f"#{side}-{kind}", AccuracyMatrix).heading = (
                    f"{report.summary.name}: {label} %")
        pairs = list(self.query(MatrixPair))
        pairs[0].set_matrices((a.matrix_tag, a.per_task_tag), (b.matrix_tag, b.per_task_tag))
        pairs[1].set_matrices((a.matrix_taw, a.per_task_taw), (b.matrix_taw, b.per_task_taw))
