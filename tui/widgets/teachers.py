"""Each task's teacher beside its student, on that task's test data right after it was learned.

Distillation should bring the student close to its teacher; a student that ended more than
the run's gap (10 points) below it is marked, and the monitor warns about it. Runs made before
teachers were scored, and variants without a teacher, show "–" for the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.format import WARNING_STYLE, pct, points
from tui.runstate import STUDENT_GAP, RunState, TeacherRow

MARK = "⚠"  # before a student that ended too far below its teacher


@dataclass(frozen=True)
class TeachersInfo:
    rows: tuple[TeacherRow, ...] = ()
    gap: float = STUDENT_GAP


def teachers_info(state: RunState) -> TeachersInfo:
    return TeachersInfo(rows=state.teacher_rows(), gap=state.student_gap)


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:+.1f}"


def teachers_table(info: TeachersInfo) -> Group | Text:
    title = Text("Teacher vs student", style="bold")
    if not info.rows:
        return Group(title, Text("no task evaluated yet", style="italic"))
    table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False, show_edge=False,
                  header_style="bold")
    table.add_column("", no_wrap=True, width=1, min_width=1)
    for name in ("task", "teacher", "student", "gap"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in info.rows:
        table.add_row(MARK if row.behind else "", str(row.task + 1), pct(row.teacher),
                      pct(row.student), _signed(row.gap),
                      style=WARNING_STYLE if row.behind else "")
    parts: list[Text | Table] = [title, Text("TAw % right after each task", style="italic"),
                                 table]
    if all(row.teacher is None for row in info.rows):
        parts.append(Text("teachers not scored (a run from before they were, or a variant "
                          "without teachers)", style="italic"))
    elif any(row.behind for row in info.rows):
        parts.append(Text(f"{MARK} over {points(info.gap)} points below teacher",
                          style=WARNING_STYLE))
    return Group(*parts)


def behind_message(state: RunState) -> str:
    """One sentence for the monitor's warning; "" when no student is behind."""
    behind = state.students_behind()
    if not behind:
        return ""
    gap = points(state.student_gap)
    if len(behind) == 1:
        row = behind[0]
        if row.gap is None:  # the run said so but its numbers are unreadable
            return f"Task {row.task + 1}'s student ended more than {gap} points below its teacher."
        return (f"Task {row.task + 1}'s student ended {-100 * row.gap:.1f} points below its "
                f"teacher ({pct(row.student)}% vs {pct(row.teacher)}%).")
    tasks = ", ".join(str(row.task + 1) for row in behind)
    return (f"{len(behind)} students ended more than {gap} points below their teachers "
            f"(tasks {tasks}).")


class TeacherScores(Static):
    """Set `info`; the table re-renders when it changes."""

    info: reactive[TeachersInfo] = reactive(TeachersInfo())

    def watch_info(self, info: TeachersInfo) -> None:
        self.update(teachers_table(info))
