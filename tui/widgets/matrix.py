"""The accuracy matrix A[t][j] (accuracy on task j after learning task t) as a coloured table."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Static

from tui.format import pct

# Cells carry their own background with white text, so they read the same on dark and light
# themes. From worst to best; each entry applies from its threshold up.
HEAT = (
    (0.0, "#b3261e"),
    (0.3, "#c2571a"),
    (0.45, "#8d7400"),
    (0.6, "#5c8a2b"),
    (0.75, "#2e7d32"),
    (0.9, "#1b5e20"),
)


def heat_style(accuracy: float) -> str:
    background = HEAT[0][1]
    for threshold, colour in HEAT:
        if accuracy >= threshold:
            background = colour
    return f"bold #ffffff on {background}"


def matrix_table(title: str, rows: tuple[tuple[float, ...], ...],
                 totals: tuple[float, ...] = ()) -> Group | Text:
    """Rows are lower-triangular (row t has t+1 entries); totals[t] is the row's overall
    accuracy over every sample seen so far, shown in an extra column."""
    if not rows:
        return Text(f"{title}: no task evaluated yet", style="italic")
    n = max(len(row) for row in rows)
    table = Table(box=None, padding=(0, 0), pad_edge=False, collapse_padding=True,
                  show_edge=False)
    table.add_column("", justify="left", style="bold", no_wrap=True, min_width=4)
    for j in range(n):
        table.add_column(f"T{j + 1}", justify="center", no_wrap=True, min_width=6)
    if totals:
        table.add_column("all", justify="center", no_wrap=True, min_width=6)
    for t, row in enumerate(rows):
        cells: list[Text | str] = [f"T{t + 1}"]
        for j in range(n):
            if j < len(row):
                cells.append(Text(f"{pct(row[j]):>5} ", style=heat_style(row[j])))
            else:
                cells.append("")
        if totals:
            total = totals[t] if t < len(totals) else None
            cells.append(Text(f"{pct(total):>5} ", style="bold") if total is not None else "")
        table.add_row(*cells)
    return Group(Text(title, style="bold"), table)  # a title line never wraps to the table


MatrixData = tuple[tuple[tuple[float, ...], ...], tuple[float, ...]]  # (rows, totals per row)


class AccuracyMatrix(Static):
    """Set `data` to (rows, totals); the table re-renders when it or the heading changes."""

    DEFAULT_CSS = "AccuracyMatrix { width: auto; height: auto; padding: 0 1; }"

    heading: reactive[str] = reactive("")
    data: reactive[MatrixData] = reactive(((), ()))

    def __init__(self, heading: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.set_reactive(AccuracyMatrix.heading, heading)

    def watch_heading(self) -> None:
        self.update(matrix_table(self.heading, *self.data))

    def watch_data(self) -> None:
        self.update(matrix_table(self.heading, *self.data))

    @property
    def rows(self) -> tuple[tuple[float, ...], ...]:
        return self.data[0]

    def needed_width(self) -> int:
        n = max((len(r) for r in self.rows), default=0)
        return 4 + 6 * (n + 1) + 2


class MatrixPair(Horizontal):
    """Two matrices side by side, stacked when the terminal is too narrow for both."""

    DEFAULT_CSS = """
    MatrixPair { height: auto; width: 1fr; }
    MatrixPair.-stacked { layout: vertical; }
    """

    def __init__(self, left: tuple[str, str], right: tuple[str, str], **kwargs: object) -> None:
        """left, right: (heading, id) of each matrix."""
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.sides = (left, right)

    def compose(self) -> ComposeResult:
        for heading, matrix_id in self.sides:
            yield AccuracyMatrix(heading, id=matrix_id)

    def set_matrices(self, left: MatrixData, right: MatrixData) -> None:
        for (_, matrix_id), data in zip(self.sides, (left, right), strict=True):
            self.query_one(f"#{matrix_id}", AccuracyMatrix).data = data
        self._arrange(self.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self._arrange(event.size.width)

    def _arrange(self, width: int) -> None:
        needed = sum(m.needed_width() for m in self.query(AccuracyMatrix))
        self.set_class(0 < width < needed, "-stacked")
