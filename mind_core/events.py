"""Event records of a run: JSON lines appended and flushed as they happen, and read back."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

# The event schema: every type and the fields an event of it always has, besides "type" and
# "time" (EventLog adds both). Readers (CLI, TUI, report, TensorBoard) may rely on them; an
# event may carry more (run_failed with reason "diverged" adds task, phase and epoch). A value
# may be null where a number does not exist (teacher_taw of a variant without a teacher).
# Contract: docs/design.md, "The run directory".
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "run_started": ("name", "backend", "dataset", "tasks", "variant", "model", "pid", "resumed"),
    "task_started": ("task", "tasks", "class_range", "classes", "class_names"),
    "phase_started": ("task", "phase", "epochs"),
    "progress": ("task", "phase", "epoch", "epochs", "batch", "batches", "loss", "eta_s"),
    "epoch_ended": ("task", "phase", "epoch", "epochs", "loss", "ce", "distill", "accuracy", "lr",
                    "seconds", "images_per_s"),
    "allocated": ("task", "layers"),
    "evaluated": ("task", "tag", "taw", "routing", "tag_entropy", "routing_rule", "rules",
                  "teacher_taw", "per_task_tag", "per_task_taw", "per_task_routing",
                  "acc_matrix_tag", "acc_matrix_taw"),
    "student_behind": ("task", "teacher", "student", "gap"),
    "checkpoint_saved": ("task", "path"),
    "run_finished": ("tag", "taw", "routing", "seconds"),
    "run_failed": ("reason", "message"),
}
EVENT_TYPES = tuple(EVENT_FIELDS)


class EventError(ValueError):
    """An event outside the schema: a bug in the writer, never bad user input."""


def check_event(type_: str, fields: dict[str, Any]) -> None:
    """EventError unless type_ is a known type and fields hold every field it requires."""
    if type_ not in EVENT_FIELDS:
        raise EventError(f"unknown event type {type_!r}; expected one of "
                         f"{', '.join(EVENT_TYPES)}")
    missing = [name for name in EVENT_FIELDS[type_] if name not in fields]
    if missing:
        raise EventError(f"{type_} event without {', '.join(missing)}")

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
        check_event(type_, fields)  # before anything is written or observed
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


def _json_of_line(line: str) -> Any:
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


def event_from_line(line: str) -> dict[str, Any] | None:
    """The event one line of events.jsonl holds (a JSON object with a string "type"), also
    after a killed writer's fragment; None for a line that holds none."""
    line = line.strip()
    event = _json_of_line(line) if line else None
    return event if isinstance(event, dict) and isinstance(event.get("type"), str) else None


def read_events(path: Path, types: Collection[str] | None = None) -> Iterator[dict[str, Any]]:
    """Every complete event in an events.jsonl file, or only those of the given types; the
    one reader of the file (report, TUI, tests). A half-written last line (a live run)
    is skipped, and so is any other line that holds no event. With types, a line that does
    not name one of them is skipped before parsing: a long run's file is mostly progress."""
    needles = tuple(f'"{t}"' for t in types) if types is not None else ()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            if needles and not any(needle in line for needle in needles):
                continue
            event = event_from_line(line)
            if event is not None and (types is None or event["type"] in types):
                yield event


def write_json_atomic(path: Path, data: Any) -> None:
    """write_text_atomic of the data as strict JSON."""
    write_text_atomic(path, dumps(data, indent=2))  # dumps first: a failure leaves nothing


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temp file + rename, so a reader or a crash never sees half a file; a failed
    write removes its temp file and raises the OSError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
