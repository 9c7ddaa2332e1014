"""Reading run directories: events, config, metrics, output log, and a run's status.

A run directory is the one interface between runs, the CLI and the TUI (see docs/design.md). Every
function here tolerates missing or half-written files: a run may be starting, crashing or
living on another machine's disk.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mind_core.events import event_from_line, read_events

# The run directory's names, shared with the core (which imports no framework). LOCK_FILE,
# held by the process training in a run, means nothing here: the runs list ignores it.
from mind_core.rundir import CONFIG, EVENTS, METRICS, OUTPUT_LOG
from mind_core.rundir import STOP_FILE as STOP_FILE
from tui.fields import clean_event, count

# A run whose pid is not alive here may be running on another machine that shares the disk;
# only call it dead once its events file has been quiet this long.
QUIET_BEFORE_DEAD_S = 30.0


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def parse_event(line: str) -> dict[str, Any] | None:
    """The event on one line of events.jsonl, its malformed fields dropped and noted (see
    tui.fields); None for a line that holds no event."""
    event = event_from_line(line)
    return None if event is None else clean_event(event)


def run_events(run_dir: Path, types: frozenset[str] | None = None) -> list[dict[str, Any]]:
    """The run's events as the core reads them (or only those of the given types), cleaned
    like parse_event's; [] when there is no readable events file."""
    try:
        return [clean_event(event) for event in read_events(run_dir / EVENTS, types)]
    except OSError:
        return []


def tail_text(path: Path, lines: int = 15, max_bytes: int = 16384) -> str:
    """The last lines of a text file (for output.log after a crash), or "" if unreadable."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def quiet_for(run_dir: Path, now: float | None = None) -> float:
    """Seconds since events.jsonl last changed (infinite when there is none)."""
    try:
        mtime = (run_dir / EVENTS).stat().st_mtime
    except OSError:
        return float("inf")
    return (time.time() if now is None else now) - mtime


def looks_dead(run_dir: Path, pid: Any) -> bool:
    return not pid_alive(pid) and quiet_for(run_dir) > QUIET_BEFORE_DEAD_S


_STATUS_TYPES = frozenset({"run_started", "run_finished", "run_failed", "evaluated"})


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs screen."""

    path: Path
    name: str
    status: str  # running | finished | failed | interrupted | empty
    backend: str
    dataset: str
    variant: str
    tasks: int
    tasks_done: int
    tag: float | None
    taw: float | None
    routing: float | None
    started: float | None  # unix time of the first run_started
    message: str = ""  # why it failed, when it did


def status_from_events(events: list[dict[str, Any]], run_dir: Path,
                       owned_alive: bool | None = None) -> tuple[str, str]:
    """(status, message) from the last run_started/run_finished/run_failed. owned_alive: the
    TUI's own child process for this run is alive (True) or has exited (False)."""
    last = None
    for event in events:
        if event["type"] in ("run_started", "run_finished", "run_failed"):
            last = event
    if last is None:
        if owned_alive:
            return "running", ""
        return ("failed", "no events were written") if owned_alive is False else ("empty", "")
    if last["type"] == "run_finished":
        return "finished", ""
    if last["type"] == "run_failed":
        reason = last.get("reason", "error")
        return ("interrupted" if reason == "interrupted" else "failed"), str(last.get("message", ""))
    if owned_alive or (owned_alive is None and not looks_dead(run_dir, last.get("pid"))):
        return "running", ""
    return "failed", "the process ended without a final event"


def summarize(run_dir: Path, owned_alive: bool | None = None) -> RunSummary:
    events = run_events(run_dir, _STATUS_TYPES)
    config = read_json(run_dir / CONFIG)
    cfg = config.get("config") if isinstance(config.get("config"), dict) else {}
    metrics = read_json(run_dir / METRICS)
    started = [e for e in events if e["type"] == "run_started"]
    first, last_start = (started[0], started[-1]) if started else ({}, {})
    evaluated = {e["task"]: e for e in events
                 if e["type"] == "evaluated" and isinstance(e.get("task"), int)}
    status, message = status_from_events(events, run_dir, owned_alive)
    final = metrics.get("final") if isinstance(metrics.get("final"), dict) else {}
    if not final and evaluated:
        final = evaluated[max(evaluated)]
    tasks_done = count(metrics.get("tasks_done"))
    tasks_done = len(evaluated) if tasks_done is None else tasks_done
    return RunSummary(
        path=run_dir,
        name=run_dir.name,
        status=status,
        backend=str(last_start.get("backend") or cfg.get("backend") or "?"),
        dataset=str(last_start.get("dataset") or cfg.get("dataset") or "?"),
        variant=str(last_start.get("variant") or cfg.get("variant") or "?"),
        tasks=last_start.get("tasks") or count(cfg.get("tasks")) or 0,
        tasks_done=tasks_done,
        tag=_float(final.get("tag")),
        taw=_float(final.get("taw")),
        routing=_float(final.get("routing")),
        started=_float(first.get("time")) or _dir_time(run_dir),
        message=message,
    )


def fingerprint(run_dir: Path) -> tuple[tuple[int, int], ...]:
    """Changes whenever a file the summary reads changes (mtime and size)."""
    stamps = []
    for name in (EVENTS, CONFIG, METRICS):
        try:
            st = (run_dir / name).stat()
            stamps.append((st.st_mtime_ns, st.st_size))
        except OSError:
            stamps.append((0, -1))
    return tuple(stamps)


def list_run_dirs(runs_dir: Path) -> list[Path]:
    """Subdirectories that look like runs (have events or a config), newest name last."""
    try:
        children = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    except OSError:
        return []
    return [p for p in children
            if (p / EVENTS).exists() or (p / CONFIG).exists() or (p / OUTPUT_LOG).exists()]


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _dir_time(run_dir: Path) -> float | None:
    try:
        return run_dir.stat().st_mtime
    except OSError:
        return None
