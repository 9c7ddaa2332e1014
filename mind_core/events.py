"""Event records of a run: JSON lines appended and flushed as they happen, and read back."""

from __future__ import annotations

import json
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
            self._file = open(self.path, "a", encoding="utf-8")
        if self._file:
            self._file.write(json.dumps(event) + "\n")
            self._file.flush()
        for observer in self.observers:
            observer(event)
        return event

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete event in the file; a half-written last line (a live run) is skipped."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            line = line.strip()
            if line:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


def write_json_atomic(path: Path, data: Any) -> None:
    """Write via a temp file + rename, so a reader or a crash never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
