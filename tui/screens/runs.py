"""Every run under the runs directory, with its status and results; open or compare them.
A sweep's directory (tui.sweeps) is one group row that expands to its trials, each an
ordinary run."""

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

from mind_core.console import plural
from mind_core.sweep.progress import clock
from mind_core.sweep.trial import FAILED, FINISHED
from tui.format import STATUS_COLOUR, date, pct
from tui.rundir import RunSummary, fingerprint, list_run_dirs, summarize
from tui.sweeps import RUNNING, SweepReader, SweepSummary, is_sweep_dir, list_sweep_dirs

REFRESH_S = 3.0
ENDED = ("finished", "failed", "interrupted")
COLUMNS = ("", "run", "status", "backend", "dataset", "tasks", "TAg %", "TAw %", "started")
TRIAL_INDENT = "  "  # a trial's name under its sweep's row
MIN_NAME = 12  # the run column's narrowest: below it names are no longer told apart
Row = RunSummary | SweepSummary


def status_text(status: str, colours: dict[str, str], label: str | None = None) -> Text:
    """The status (or label) in the current theme's colour for the status (running = accent,
    failed = error...)."""
    variable = STATUS_COLOUR.get(status)
    colour = colours.get(variable, "") if variable else ""
    return Text(status if label is None else label, style=f"bold {colour}" if colour else "dim")


def name_width(cells: list[list[object]], screen_width: int) -> int:
    """How wide the run column may be for every column to fit the screen: what the other
    columns' longest cells and headings leave (each column pads one space a side, and the
    table keeps room for its scrollbar), at least MIN_NAME."""
    others = sum(max([len(COLUMNS[i]), *(_width(row[i]) for row in cells)]) + 2
                 for i in range(len(COLUMNS)) if i != 1)
    longest = max([len(COLUMNS[1]), *(_width(row[1]) for row in cells)])
    return max(MIN_NAME, min(longest, screen_width - others - 2 - 2))


def _width(cell: object) -> int:
    return cell.cell_len if isinstance(cell, Text) else len(str(cell))


def shorten(cell: object, width: int) -> object:
    """A name cut to width with "…" in its middle: runs differ at both ends (the preset at
    the start, the time or a trial's setting at the end). The hint below the table names the
    selected row in full."""
    if _width(cell) <= width:
        return cell
    text = cell.plain if isinstance(cell, Text) else str(cell)
    tail = (width - 1) // 2
    short = text[:width - 1 - tail] + "…" + text[len(text) - tail:]
    return Text(short, style=cell.style) if isinstance(cell, Text) else short


class RunsScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "Open", show=True),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        # Not in the footer: the app's f3 says "New run" already, and 80 columns need the room.
        Binding("n", "app.show_mode('launch')", "New run", show=False),
        Binding("r", "refresh", "Refresh"),
    ]

    class Scanned(Message):
        def __init__(self, summaries: list[RunSummary], sweeps: list[SweepSummary]) -> None:
            super().__init__()
            self.summaries = summaries
            self.sweeps = sweeps

    def __init__(self) -> None:
        super().__init__()
        self.summaries: list[RunSummary] = []
        self.sweeps: list[SweepSummary] = []
        self.expanded: set[Path] = set()  # sweeps whose trials are shown
        self.rows: list[Row] = []  # the table's rows, in order
        self.marked: list[Path] = []
        # Summaries of ended runs by directory, with the fingerprint of the files they came
        # from: rescanning every few seconds then costs a stat per file, not a read.
        self._ended: dict[Path, tuple[tuple[tuple[int, int], ...], RunSummary]] = {}
        self._sweep_reader = SweepReader(self._run_summary)

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
        roots = self.app.list_dirs  # type: ignore[attr-defined]
        summaries = [self._run_summary(run_dir) for root in roots
                     for run_dir in list_run_dirs(root) if not is_sweep_dir(run_dir)]
        sweeps = [self._sweep_reader.read(sweep_dir) for root in roots
                  for sweep_dir in list_sweep_dirs(root)]
        self.post_message(self.Scanned(summaries, sweeps))

    def _run_summary(self, run_dir: Path) -> RunSummary:
        """The run's summary, from the cache while it has ended and its files are unchanged."""
        proc = self.app.processes.get(run_dir.resolve())  # type: ignore[attr-defined]
        stamp = fingerprint(run_dir)
        cached = self._ended.get(run_dir)
        if cached is not None and cached[0] == stamp and (proc is None or not proc.alive):
            return cached[1]
        summary = summarize(run_dir, None if proc is None else proc.alive)
        if summary.status in ENDED:
            self._ended[run_dir] = (stamp, summary)
        return summary

    def on_runs_screen_scanned(self, message: Scanned) -> None:
        if (message.summaries, message.sweeps) == (self.summaries, self.sweeps):
            return
        self.summaries, self.sweeps = message.summaries, message.sweeps
        self._fill_table()

    def _ordered_rows(self) -> list[Row]:
        """Runs and sweeps newest first (a sweep by its sweep.json's creation), each expanded
        sweep followed by its trials in the grid's order."""
        tops: list[Row] = [*self.summaries, *self.sweeps]
        tops.sort(key=lambda row: (-(row.started or 0.0), row.name))
        rows: list[Row] = []
        for row in tops:
            rows.append(row)
            if isinstance(row, SweepSummary) and row.path in self.expanded:
                rows.extend(row.trials)
        return rows

    @staticmethod
    def _named(sweep: SweepSummary) -> str:
        """What the trials' shortened names leave out, said once on the sweep's hint."""
        prefix = sweep.shared_prefix
        return f" ({escape(prefix)}…)" if prefix else ""

    def _sweep_of(self, run: RunSummary) -> SweepSummary | None:
        """The sweep a trial belongs to (a trial's directory is in its sweep's); None for a
        run of its own."""
        return next((sweep for sweep in self.sweeps if run.path.parent == sweep.path
                     and not sweep.problem), None)

    def _fill_table(self) -> None:
        table = self.query_one(DataTable)
        selected = self._summary()
        table.clear()
        colours = self.app.theme_variables
        self.rows = self._ordered_rows()
        cells = [self._sweep_cells(row, colours) if isinstance(row, SweepSummary)
                 else self._run_cells(row, colours) for row in self.rows]
        width = name_width(cells, self.app.size.width)
        for row, row_cells in zip(self.rows, cells, strict=True):
            row_cells[1] = shorten(row_cells[1], width)
            table.add_row(*row_cells, key=str(row.path))
        if selected is not None:
            keys = [row.path for row in self.rows]
            if selected.path in keys:
                table.move_cursor(row=keys.index(selected.path))
        self._update_hint()

    def _run_cells(self, row: RunSummary, colours: dict[str, str]) -> list[object]:
        done = f"{row.tasks_done}/{row.tasks}" if row.tasks else str(row.tasks_done)
        sweep = self._sweep_of(row)
        name = TRIAL_INDENT + sweep.short_name(row) if sweep else row.name
        return ["●" if row.path in self.marked else "", name, status_text(row.status, colours),
                row.backend.split(":")[-1], row.dataset, done, pct(row.tag), pct(row.taw),
                date(row.started)]

    def _sweep_cells(self, sweep: SweepSummary, colours: dict[str, str]) -> list[object]:
        """A sweep's row, read left to right: "beta  3/6 done  1 running  1 failed  ETA 4m".
        Its counts sit in the columns a run's row gives to its status, backend, dataset and
        tasks: one wide cell would push every row's columns off an 80-column screen."""
        name = Text(sweep.name, style="bold")
        if sweep.problem:  # the hint says why
            return ["", name, status_text("failed", colours, "unreadable"), "", "", "", "", "",
                    date(sweep.started)]
        done, total = sweep.count(FINISHED), len(sweep.trials)
        running, failed = sweep.count(RUNNING), sweep.count(FAILED)
        return ["▾" if sweep.path in self.expanded else "▸", name,
                status_text(FINISHED, colours, f"{done}/{total} done") if done == total
                else Text(f"{done}/{total} done", style="bold"),
                status_text(RUNNING, colours, f"{running} running") if running else "",
                status_text(FAILED, colours, f"{failed} failed") if failed else "",
                "" if sweep.eta_s is None else f"ETA {clock(sweep.eta_s)}",
                pct(sweep.mean("tag")), pct(sweep.mean("taw")), date(sweep.started)]

    def _update_hint(self) -> None:
        selected = self._summary()
        if not self.rows:
            text = ("No runs yet. Press [b]n[/b] to launch one, or start one with "
                    "[b]mind run --out <runs>/<name>[/b].")
        elif self.marked:
            names = escape(", ".join(p.name for p in self.marked))
            text = f"Marked for comparison: {names}. Mark another or press [b]c[/b]."
        elif isinstance(selected, SweepSummary):
            text = f"[b]{escape(selected.name)}[/b]: " + (
                f"a sweep; {escape(selected.problem)}" if selected.problem else
                f"{selected.progress()}; [b]enter[/b] "
                f"{'hides' if selected.path in self.expanded else 'shows'} its "
                f"{plural(len(selected.trials), 'trial')}{self._named(selected)}")
        else:
            keys = "[b]enter[/b] open · [b]space[/b] mark two runs, [b]c[/b] compare them"
            sweep = self._sweep_of(selected) if selected is not None else None
            if sweep is not None:  # a trial: its name in full, the row shortens it
                text = f"[b]{escape(selected.name)}[/b]: " + (
                    escape(selected.message) or f"a trial of {escape(sweep.name)}: {keys}")
            elif selected is not None and selected.message:
                text = f"[b]{escape(selected.name)}[/b]: {escape(selected.message)}"
            elif selected is not None:  # its name in full: the row may shorten it
                text = f"[b]{escape(selected.name)}[/b]: {keys}"
            else:
                text = keys
        self.query_one("#runs-hint", Static).update(text)

    def on_resize(self) -> None:
        # The run column's width follows the screen's (name_width): fit it again.
        if self.rows:
            self._fill_table()

    def on_data_table_row_highlighted(self) -> None:
        self._update_hint()

    def on_data_table_row_selected(self) -> None:
        self.action_open()

    def _selected(self) -> Path | None:
        """The run (or trial) under the cursor; None on a sweep's row."""
        row = self._summary()
        return row.path if isinstance(row, RunSummary) else None

    def _summary(self) -> Row | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    def action_open(self) -> None:
        """Open the run in the monitor; on a sweep's row, show or hide its trials."""
        from tui.screens.monitor import MonitorScreen

        row = self._summary()
        if isinstance(row, SweepSummary):
            if not row.problem:
                self.expanded ^= {row.path}
                self._fill_table()
        elif row is not None:
            self.app.push_screen(MonitorScreen(row.path))

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
