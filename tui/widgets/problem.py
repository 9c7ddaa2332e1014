"""Why a run stopped: the error from run_failed, or the exit code when no event says, plus the
tail of output.log; and a warning when a student ended far below its teacher. Hidden while
nothing is wrong."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.format import WARNING_STYLE
from tui.process import exit_meaning
from tui.runstate import RunState
from tui.widgets.teachers import behind_message

MALFORMED_SHOWN = 3  # notes on malformed input shown in the panel


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" | "notice"
    message: str
    output_tail: str = ""
    warning: str = ""  # a student behind its teacher, beside a failure's message
    malformed: str = ""  # what the run's files hold that could not be read


def malformed_message(state: RunState) -> str:
    """What was skipped in the run's files: the first notes, and how many more there are."""
    notes = state.problems()
    if not notes:
        return ""
    total = len(state.config_problems) + state.malformed_count
    shown = "; ".join(notes[:MALFORMED_SHOWN])
    more = f" (and {total - MALFORMED_SHOWN} more)" if total > MALFORMED_SHOWN else ""
    return f"Skipped malformed input: {shown}{more}"


def diagnose(state: RunState, exit_code: int | None, gone_pid: int | None,
             output_tail: str, not_a_run: str = "") -> Problem | None:
    """not_a_run: why the directory is no run (empty when it is one)."""
    problem = _stopped(state, exit_code, gone_pid, output_tail)
    if problem is None and not_a_run and state.status == "waiting":
        problem = Problem("error", not_a_run, output_tail)
    warning = behind_message(state)
    malformed = malformed_message(state)
    if problem is None:
        # Not an error: the run goes on (or finished), but distillation fell short, or some
        # of what its files hold could not be read.
        if not warning and not malformed:
            return None
        return Problem("notice", warning or malformed, malformed=malformed if warning else "")
    return Problem(problem.severity, problem.message, problem.output_tail, warning, malformed)


def _stopped(state: RunState, exit_code: int | None, gone_pid: int | None,
             output_tail: str) -> Problem | None:
    failure = state.failure
    if state.status == "interrupted" and failure is not None:
        message = failure.get("message") or "the run was stopped"
        return Problem("notice", f"Interrupted: {message}. Press r to resume.")
    if state.status == "failed" and failure is not None:
        return Problem("error", f"Run failed: {failure.get('message') or 'no message'}",
                       output_tail)
    if state.status in ("waiting", "running"):
        if exit_code is not None:
            if exit_code == 0:
                reason = "exited with code 0 before its run_finished event"
            else:
                reason = f"exited with code {exit_code} ({exit_meaning(exit_code)})"
            return Problem("error", f"The run process {reason}; no event says why.",
                           output_tail)
        if gone_pid is not None:
            return Problem("error", f"Process {gone_pid} is no longer running and wrote no "
                           "final event (crashed or killed?).", output_tail)
    return None


class ProblemPanel(Static):
    """Set `problem`; the panel shows itself (styled by severity) or hides."""

    problem: reactive[Problem | None] = reactive(None)

    def watch_problem(self, problem: Problem | None) -> None:
        self.display = problem is not None
        self.set_class(problem is not None and problem.severity == "error", "-error")
        self.set_class(problem is not None and problem.severity == "notice", "-notice")
        if problem is None:
            self.update("")
            return
        parts: list[Text] = [Text(problem.message, style="bold")]
        if problem.warning:
            parts.append(Text(problem.warning, style=WARNING_STYLE))
        if problem.malformed:
            parts.append(Text(problem.malformed, style="italic"))
        if problem.output_tail:
            parts.append(Text("output.log (last lines):", style="italic"))
            parts.append(Text(problem.output_tail, no_wrap=True, overflow="ellipsis"))
        self.update(Group(*parts))
