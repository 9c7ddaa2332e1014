"""Where a run is: task k/N, phase, epoch, loss, ETA, and progress bars for the run and phase."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Label, ProgressBar, Static

from tui.format import STATUS_STYLE, duration
from tui.runstate import TRAINING_PHASES, RunState


@dataclass(frozen=True)
class ProgressInfo:
    headline: str  # Textual content markup
    timing: str
    run_fraction: float
    phase_fraction: float
    phase_label: str


def progress_info(state: RunState) -> ProgressInfo:
    status = state.status
    style = STATUS_STYLE.get(status, "")
    parts = [f"[{style}]{status}[/]" if style else status]
    if state.task is not None and state.tasks:
        parts.append(f"task [b]{state.task + 1}/{state.tasks}[/b]")
    if state.phase and status in ("running", "waiting"):
        phase = state.phase
        if phase in TRAINING_PHASES and state.phase_epochs:
            phase += f" · epoch {min(state.epoch + 1, state.phase_epochs)}/{state.phase_epochs}"
        parts.append(phase)
    if state.loss is not None and status == "running":
        parts.append(f"loss {state.loss:.4f}")
    timing = [f"elapsed {duration(state.elapsed_s)}"]
    fraction = state.run_fraction()
    if status == "running" and fraction > 0.02:
        # A linear extrapolation: rough (tasks differ), but it only ever reads the events.
        timing.insert(0, f"run ~{duration(state.elapsed_s * (1 - fraction) / fraction)}")
    if status == "running" and state.eta_s is not None and state.phase in TRAINING_PHASES:
        timing.insert(0, f"ETA phase {duration(state.eta_s)}")
    done = status == "finished"
    phase_label = (state.phase or "phase")[:8]
    return ProgressInfo(
        headline=" · ".join(parts),
        timing=" · ".join(timing),
        run_fraction=fraction,
        phase_fraction=1.0 if done else state.phase_fraction(),
        phase_label=phase_label,
    )


class ProgressPanel(Widget):
    DEFAULT_CSS = """
    ProgressPanel { height: 2; }
    ProgressPanel #headline-row { height: 1; }
    ProgressPanel #headline { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    ProgressPanel #timing { width: auto; color: $text-muted; padding-left: 1; }
    ProgressPanel #bars { height: 1; }
    ProgressPanel .bar-label { width: 10; padding-left: 1; color: $text-muted; }
    ProgressPanel #run-label { width: 4; padding-left: 0; }
    ProgressPanel ProgressBar { width: 1fr; }
    ProgressPanel ProgressBar Bar { width: 1fr; }
    """

    info: reactive[ProgressInfo | None] = reactive(None)

    def compose(self) -> ComposeResult:
        with Horizontal(id="headline-row"):
            yield Static("waiting for the run's first event…", id="headline")
            yield Static("", id="timing")
        with Horizontal(id="bars"):
            yield Label("run", classes="bar-label", id="run-label")
            yield ProgressBar(total=100, show_eta=False, id="run-bar")
            yield Label("phase", classes="bar-label", id="phase-label")
            yield ProgressBar(total=100, show_eta=False, id="phase-bar")

    def watch_info(self, info: ProgressInfo | None) -> None:
        if info is None:
            return
        self.query_one("#headline", Static).update(info.headline)
        self.query_one("#timing", Static).update(info.timing)
        self.query_one("#phase-label", Label).update(info.phase_label)
        self.query_one("#run-bar", ProgressBar).update(progress=round(100 * info.run_fraction, 1))
        self.query_one("#phase-bar", ProgressBar).update(
            progress=round(100 * info.phase_fraction, 1))
