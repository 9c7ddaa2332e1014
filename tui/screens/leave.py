"""Asked on quit while runs started from this TUI are still going: leave them running, stop
them (each checkpoints after its current batch and can be resumed), or stay."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

LEAVE, STOP = "leave", "stop"


class LeaveScreen(ModalScreen[str | None]):
    """Dismisses with LEAVE, STOP, or None (stay in the app)."""

    BINDINGS = [
        Binding("l", "choose('leave')", "Leave running"),
        Binding("s", "choose('stop')", "Stop them"),
        Binding("escape", "choose(None)", "Stay"),
    ]

    def __init__(self, run_dirs: list[Path]) -> None:
        super().__init__()
        self.run_dirs = run_dirs

    def compose(self) -> ComposeResult:
        count = len(self.run_dirs)
        names = "\n".join(f"  {path}" for path in self.run_dirs)
        with Vertical(id="leave-dialog"):
            yield Static(f"{count} run{'s' if count > 1 else ''} started here "
                         f"{'are' if count > 1 else 'is'} still going:\n{names}\n\n"
                         "Left running, a run goes on in the background; watch it again with "
                         "mind-tui --attach DIR. Stopped, it checkpoints after the current "
                         "batch; continue it later with mind resume DIR.", id="leave-text")
            with Horizontal(id="leave-buttons"):
                yield Button("Leave running (l)", id=LEAVE, variant="primary")
                yield Button("Stop and quit (s)", id=STOP, variant="warning")
                yield Button("Stay (esc)", id="stay")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id if event.button.id in (LEAVE, STOP) else None)

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)
