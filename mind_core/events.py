"""Event records of a run: JSON lines appended and flushed as they happen, and read back."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

EVENT_TYPES = ("run_started", "task_started", "phase_started", "progress", "epoch_ended",
               "allocated", "evaluated", "student_behind", "checkpoint_saved", "run_finished",
               "run_failed")

Observer = Callable[[dict[str, Any]], None]


class EventLog:
    """Appends events to events.jsonl and hands each to the observers.

    progress events are throttled (at most one per `progress_interval` seconds) because a
    backend reports every batch and the file is read live by the TUI."""

    def __init__(self, path: Path | None, observers: list[Observer] | None = None,
                 progress_interval: float = 0.5, clock: Callable[[], float] = time.time):
        self.path = path
        self.observers = list(observers or [])
        self.progress_interval = progress_interval
        self._clock = clock
        self._last_progress = float("-inf")
        self._file = None  # opened on the first event, so a run that fails validation writes nothing

    def emit(self, type_: str, **fields: Any) -> dict[str, Any] | None:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        now = self._clock()
        if type_ == "progress":
            if now - self._last_progress < self.progress_interval:
                return None
            self._last_progress = now
        event = {"type": type_, "time": round(now, 3), **fields}
        if self.path and self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            cut_short = _ends_mid_line(self.path)
            self._file = open(self.path, "a", encoding="utf-8")
            if cut_short:  # a killed writer's partial line must not swallow this event
                self._file.write("\n")
        if self._file:
            self._file.write(dumps(event) + "\n")
            self._file.flush()
        for observer in self.observers:
            observer(event)
        return event

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None


def json_safe(value: Any) -> Any:
    """value with every NaN or infinite float replaced by None (JSON null), in dicts, lists
    and tuples at any depth: what the run's JSON files hold for a number that does not exist
    (e.g. the accuracy on a task without test samples)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON (no NaN or Infinity tokens, which other readers reject): non-finite floats
    become null here, and `allow_nan=False` catches anything that slips past."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)


def _ends_mid_line(path: Path) -> bool:
    """The file's last line lacks its newline: a writer was killed while appending it."""
    try:
        with open(path, "rb") as handle:
            if handle.seek(0, os.SEEK_END) == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except OSError:
        return False


EVENT_START = '{"type": '  # how every event line begins (EventLog writes "type" first)


def parse_event_line(line: str) -> Any:
    """The JSON value of one line; None when it holds none. A line that is a killed writer's
    fragment continued by a whole event (files written before EventLog started a new line
    after a fragment) gives that event."""
    try:
        return json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        pass
    start = line.find(EVENT_START, 1)
    while start != -1:
        try:
            return json.loads(line[start:])
        except (json.JSONDecodeError, RecursionError):
            start = line.find(EVENT_START, start + 1)
    return None


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete event in the file; a half-written last line (a live run) is skipped,
    and so is any other line that holds no event."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            event = parse_event_line(line.strip()) if line.strip() else None
            if isinstance(event, dict):
                yield event


def write_json_atomic(path: Path, data: Any) -> None:
    """Write via a temp file + rename, so a reader or a crash never sees half a file."""
    text = dumps(data, indent=2)  # before the temp file: a failure leaves nothing behind
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
