"""`mind-tui`: the Textual app. Its command line is tui.cli (importable without Textual, and
`python -m tui.cli` runs it), which imports this module once its checks pass; this module never
imports tui.cli back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen

from tui.catalog import Catalog, CoreCatalog
from tui.process import RunProcess
from tui.screens.launch import LaunchScreen
from tui.screens.leave import STOP, LeaveScreen
from tui.screens.monitor import MonitorScreen
from tui.screens.runs import RunsScreen


class MindApp(App[None]):
    TITLE = "MIND"
    CSS_PATH = "app.tcss"
    MODES = {"launch": LaunchScreen, "runs": RunsScreen}
    # q quits wherever a key is not text being typed (an Input takes its q first); ctrl+q,
    # Textual's own, quits from anywhere.
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("f2", "show_mode('runs')", "Runs"),
        Binding("f3", "show_mode('launch')", "New run"),
    ]

    def __init__(self, backend: str = "torch", runs_dir: Path | str = "runs",
                 attach: Path | str | None = None, catalog: Catalog | None = None,
                 sweeps_dir: Path | str | None = "sweeps") -> None:
        # With --attach the monitor sits on top of the runs list, so "back" lands there.
        self.DEFAULT_MODE = "runs" if attach else "launch"
        super().__init__()
        self.backend = backend
        self.runs_dir = Path(runs_dir)  # where runs launched here go
        # The runs list shows both: `mind run` writes to runs/ and `mind sweep` to sweeps/.
        self.list_dirs = [self.runs_dir]
        if sweeps_dir is not None and Path(sweeps_dir).absolute() != self.runs_dir.absolute():
            self.list_dirs.append(Path(sweeps_dir))
        self.runs_label = " and ".join(str(d) for d in self.list_dirs)
        self.attach = Path(attach) if attach else None
        self.catalog: Catalog = catalog if catalog is not None else CoreCatalog()
        # Child processes this app started, by resolved run directory.
        self.processes: dict[Path, RunProcess] = {}

    def on_mount(self) -> None:
        if self.attach is not None:
            self.push_screen(MonitorScreen(self.attach))

    def action_show_mode(self, mode: str) -> None:
        """The mode's own screen, the launch form or the runs list, with whatever was opened
        on top of it closed: a monitor a launch opened sits on the launch mode's stack, and
        switching modes alone would show that monitor again (or do nothing from it)."""
        if isinstance(self.screen, ModalScreen):  # a question waits for its answer
            return
        self.switch_mode(mode)
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def running_children(self) -> list[RunProcess]:
        return [process for process in self.processes.values() if process.alive]

    async def action_quit(self) -> None:
        """Quit, asking first what happens to the runs this app started that still go on."""
        running = self.running_children()
        if not running or isinstance(self.screen, LeaveScreen):
            self.exit()
            return

        def chosen(choice: str | None) -> None:
            if choice is None:
                return
            if choice == STOP:
                for process in self.running_children():
                    process.interrupt()
            self.exit()

        self.push_screen(LeaveScreen([process.run_dir for process in running]), chosen)


def run_app(app: App[Any], **run_options: Any) -> int:
    """Run the app; its exit status: non-zero when it ended on an error (Textual then returns
    from run() after printing the traceback, with return_code 1)."""
    app.run(**run_options)
    return app.return_code or 0


__all__ = ["MindApp", "run_app"]
