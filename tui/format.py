"""Text for people: percentages, durations, dates and one log line per event."""

from __future__ import annotations

import time
from typing import Any

from mind_core.console import plural
from mind_core.schedule import classes_text

# Theme variables made for text on the theme's background: readable on dark and light themes.
STATUS_COLOUR = {"running": "text-primary", "finished": "text-success", "failed": "text-error",
                 "interrupted": "text-warning"}
STATUS_STYLE = {status: f"bold ${variable}" for status, variable in STATUS_COLOUR.items()}
# For Rich renderables (the log, tables), which cannot name theme variables: an ANSI colour,
# which Textual maps through the dark or light theme's ANSI palette.
WARNING_STYLE = "bold yellow"
WARNING_EVENTS = frozenset({"student_behind"})  # log lines shown in WARNING_STYLE


def pct(value: float | None, digits: int = 1) -> str:
    """An accuracy in [0, 1] as a percentage; "–" for none, NaN (a task without test
    samples) or anything that is not a number (a malformed file must not crash a screen)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return "–"
    return f"{100 * value:.{digits}f}"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def date(unix: float | None, now: float | None = None) -> str:
    """"11-27 10:15" this year, "2025-11-27" before (as `ls -l` does): short enough for the
    runs list to leave its names room at 100 columns."""
    if unix is None:
        return "–"
    moment = time.localtime(unix)
    this_year = moment.tm_year == time.localtime(now).tm_year
    return time.strftime("%m-%d %H:%M" if this_year else "%Y-%m-%d", moment)


def event_line(event: dict[str, Any], start: float | None,
               routing_rule: str | None = None) -> str | None:
    """One log line for an event (None for progress events: they only move the bars).
    routing_rule: the run's rule, named beside a routing accuracy whose event does not name
    it (run_finished, and evaluations of runs made before they did)."""
    kind = event.get("type")
    describe = _DESCRIBE.get(str(kind))
    if describe is None:
        return None if kind == "progress" else f"{kind}"
    if routing_rule and not isinstance(event.get("routing_rule"), str):
        event = {**event, "routing_rule": routing_rule}
    at = event.get("time")
    offset = duration(at - start) if isinstance(at, (int, float)) and start is not None else "–"
    return f"{offset:>7}  {describe(event)}"


def _task(e: dict[str, Any]) -> str:
    task = e.get("task", 0)
    return f"task {task + 1}" if isinstance(task, int) else "task ?"  # 1-based, as shown


def _run_started(e: dict[str, Any]) -> str:
    verb = "resumed" if e.get("resumed") else "started"
    return (f"run {verb}: {e.get('backend', '?')} · {e.get('dataset', '?')} · "
            f"{_count(e.get('tasks'), 'task')} · {e.get('variant', '?')} · "
            f"{e.get('model', '?')}")


def _count(value: Any, noun: str) -> str:
    """plural() for a field that may be missing ("? tasks")."""
    return plural(value, noun) if isinstance(value, int) else f"? {noun}s"


def _task_started(e: dict[str, Any]) -> str:
    # The dataset's class ids, as the console shows them (older events have none); names only
    # where there is one per class.
    classes, names = e.get("classes"), e.get("class_names")
    names = names if classes and names and len(names) == len(classes) else None
    shown = f" (classes {classes_text(classes, names)})" if classes else ""
    return f"{_task(e)}/{e.get('tasks', '?')} started{shown}"


def _phase_started(e: dict[str, Any]) -> str:
    epochs = f", {plural(e['epochs'], 'epoch')}" if e.get("epochs") else ""
    return f"{_task(e)}: {e.get('phase', '?')} phase{epochs}"


def _loss(value: Any) -> str:
    """A loss to 4 decimals; "–" when the event has none (unknown, or malformed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return "–"
    return f"{value:.4f}"


def _epoch_ended(e: dict[str, Any]) -> str:
    parts = [f"loss {_loss(e.get('loss'))}"]
    if e.get("phase") == "distill":  # distill is left out where the phase has no such term
        distill = f" distill {_loss(e['distill'])}" if e.get("distill") is not None else ""
        parts.append(f"ce {_loss(e.get('ce'))}{distill}")
    parts.append(f"acc {pct(e.get('accuracy'))}%")
    if isinstance(e.get("images_per_s"), (int, float)):
        parts.append(f"{e['images_per_s']:.0f} img/s")
    return (f"{_task(e)} {e.get('phase', '?')} epoch {int(e.get('epoch', 0)) + 1}/"
            f"{e.get('epochs', '?')}: " + ", ".join(parts))


def _allocated(e: dict[str, Any]) -> str:
    layers = e.get("layers") or {}
    free = sum(int(v.get("free", 0)) for v in layers.values())
    total = sum(int(v.get("total", 0)) for v in layers.values()) or 1
    return f"{_task(e)}: allocated weights in {len(layers)} layers, {100 * free / total:.1f}% still free"


def _routing(e: dict[str, Any]) -> str:
    rule = e.get("routing_rule")
    return f"routing {pct(e.get('routing'))}%" + (f" ({rule})" if isinstance(rule, str) else "")


def points(value: Any) -> str:
    """A difference of accuracies (or a threshold) in percentage points, rounded; "?" when it
    is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return "?"
    return f"{100 * value:.0f}"


def _student_behind(e: dict[str, Any]) -> str:
    # The console's wording (mind_core.console.on_student_behind).
    return (f"warning: {_task(e)}'s student ended at {pct(e.get('student'))}%, more than "
            f"{points(e.get('gap'))} points below its teacher ({pct(e.get('teacher'))}%)")


def _evaluated(e: dict[str, Any]) -> str:
    return (f"{_task(e)} evaluated: TAg {pct(e.get('tag'))}%  TAw {pct(e.get('taw'))}%  "
            f"{_routing(e)}")


def _run_finished(e: dict[str, Any]) -> str:
    return (f"run finished in {duration(e.get('seconds'))}: TAg {pct(e.get('tag'))}%  "
            f"TAw {pct(e.get('taw'))}%  {_routing(e)}")


def _run_failed(e: dict[str, Any]) -> str:
    return f"run {'interrupted' if e.get('reason') == 'interrupted' else 'failed'}: {e.get('message', '')}"


_DESCRIBE = {
    "run_started": _run_started,
    "task_started": _task_started,
    "phase_started": _phase_started,
    "epoch_ended": _epoch_ended,
    "allocated": _allocated,
    "evaluated": _evaluated,
    "student_behind": _student_behind,
    "checkpoint_saved": lambda e: f"{_task(e)}: checkpoint saved",
    "run_finished": _run_finished,
    "run_failed": _run_failed,
}
