"""Every run under the runs directory, with its status and results; open or compare them."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.markup import escape
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from tui.format import STATUS_COLOUR, date, pct
from tui.rundir import RunSummary, fingerprint, list_run_dirs, summarize

REFRESH_S = 3.0
ENDED = ("finished", "failed", "interrupted")
COLUMNS = ("", "run", "status", "backend", "dataset", "tasks", "TAg %", "TAw %", "started")


def status_text(status: str, colours: dict[str, str]) -> Text:
    """The status in the current theme's colour for it (running = accent, failed = error...)."""
    variable = STATUS_COLOUR.get(status)
    colour = colours.get(variable, "") if variable else ""
    return Text(status, style=f"bold {colour}" if colour else "dim")


class RunsScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "Open", show=True),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        # Not in the footer: the app's f3 says "New run" already, and 80 columns need the room.
        Binding("n", "app.switch_mode('launch')", "New run", show=False),
        Binding("r", "refresh", "Refresh"),
    ]

    class Scanned(Message):
        def __init__(self, summaries: list[RunSummary]) -> None:
            super().__init__()
            self.summaries = summaries

    def __init__(self) -> None:
        super().__init__()
        self.summaries: list[RunSummary] = []
        self.marked: list[Path] = []
        # Summaries of ended runs by directory, with the fingerprint of the files they came
        # from: rescanning every few seconds then costs a stat per file, not a read.
        self._ended: dict[Path, tuple[tuple[tuple[int, int], ...], RunSummary]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="runs-title")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="runs-table")
        yield Static("", id="runs-hint")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Runs"
        runs_label = self.app.runs_label  # type: ignore[attr-defined]
        self.query_one("#runs-title", Static).update(f"Runs in [b]{escape(runs_label)}[/b]")
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column or "mark")
        self.action_refresh()
        self.set_interval(REFRESH_S, self.action_refresh)
        # Status colours come from the theme: repaint them when it changes.
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._fill_table())

    def action_refresh(self) -> None:
        self._scan()

    @work(thread=True, exclusive=True, group="scan")
    def _scan(self) -> None:
        processes = self.app.processes  # type: ignore[attr-defined]
        summaries = []
        for run_dir in list_run_dirs(self.app.runs_dir):  # type: ignore[attr-defined]
            proc = processes.get(run_dir.resolve())
            stamp = fingerprint(run_dir)
            cached = self._ended.get(run_dir)
            if cached is not None and cached[0] == stamp and (proc is None or not proc.alive):
                summaries.append(cached[1])
                continue
            summary = summarize(run_dir, None if proc is None else proc.alive)
            if summary.status in ENDED:
                self._ended[run_dir] = (stamp, summary)
            summaries.append(summary)
        summaries.sort(key=lambda s: (-(s.started or 0.0), s.name))  # newest first
        self.post_message(self.Scanned(summaries))

    def on_runs_screen_scanned(self, message: Scanned) -> None:
        if message.summaries == self.summaries:
            return
        self.summaries = message.summaries
        self._fill_table()

    def _fill_table(self) -> None:
        table = self.query_one(DataTable)
        selected = self._selected()
        table.clear()
        colours = self.app.theme_variables
        for s in self.summaries:
            done = f"{s.tasks_done}/{s.tasks}" if s.tasks else str(s.tasks_done)
            table.add_row(
                "●" if s.path in self.marked else "",
                s.name, status_text(s.status, colours), s.backend.split(":")[-1], s.dataset, done,
                pct(s.tag), pct(s.taw), date(s.started), key=str(s.path))
        if selected is not None:
            keys = [str(s.path) for s in self.summaries]
            if str(selected) in keys:
                table.move_cursor(row=keys.index(str(selected)))
        self._update_hint()

    def _update_hint(self) -> None:
        if not self.summaries:
            text = ("No runs yet. Press [b]n[/b] to launch one, or start one with "
                    "[b]mind run --out <runs>/<name>[/b].")
        elif self.marked:
            names = escape(", ".join(p.name for p in self.marked))
            text = f"Marked for comparison: {names}. Mark another or press [b]c[/b]."
        else:
            selected = self._summary()
            text = f"[b]{escape(selected.name)}[/b]: {escape(selected.message)}" \
                if selected and selected.message \
                else "[b]enter[/b] open · [b]space[/b] mark two runs, [b]c[/b] compare them"
        self.query_one("#runs-hint", Static).update(text)

    def on_data_table_row_highlighted(self) -> None:
        self._update_hint()

    def on_data_table_row_selected(self) -> None:
        self.action_open()

    def _selected(self) -> Path | None:
        summary = self._summary()
        return summary.path if summary else None

    def _summary(self) -> RunSummary | None:
        table = self.query_one(DataTable)
        if not self.summaries or table.cursor_row < 0 or table.cursor_row >= len(self.summaries):
            return None
        return self.summaries[table.cursor_row]

    def action_open(self) -> None:
        from tui.screens.monitor import MonitorScreen

        path = self._selected()
        if path is not None:
            self.app.push_screen(MonitorScreen(path))

    def action_mark(self) -> None:
        path = self._selected()
        if path is None:
            return
        if path in self.marked:
            self.marked.remove(path)
        else:
            self.marked = (self.marked + [path])[-2:]
        self._fill_table()

    def action_compare(self) -> None:
        from tui.screens.compare import CompareScreen

        pair = list(self.marked)
        selected = self._selected()
        if len(pair) == 1 and selected is not None and selected not in pair:
            pair.append(selected)
        if len(pair) != 2:
            self.notify("Mark two runs with space first (or mark one and select another).",
                        severity="warning")
            return
        self.app.push_screen(CompareScreen(pair[0], pair[1]))
