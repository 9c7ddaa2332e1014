"""What the fields of a run's events and config.json hold, and events cleaned of what does not.

A run's files may be hand-edited, cut short or written by another version. Every event the TUI
reads goes through `clean_event`: a known field holding the wrong kind of value is dropped and
the event says so under PROBLEMS, so the screens only ever meet the types they expect (or
nothing) and the monitor can show what it skipped. null stands for "unknown" (a run writes it
for a number that does not exist) and is dropped without a word.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

PROBLEMS = "_problems"  # key of the notes clean_event adds to an event it had to mend
MAX_SHOWN = 60  # characters of a bad value quoted in a note


def count(value: Any) -> int | None:
    """A whole number >= 0 (a task, an epoch, a batch); None when value is not one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def finite(value: Any) -> float | None:
    """A finite number (a loss, a time); None when value is not one (bool is no number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def class_range(value: Any) -> list[int] | None:
    """[lo, hi): a task's classes."""
    if (isinstance(value, list) and len(value) == 2 and all(count(v) is not None for v in value)
            and value[0] < value[1]):
        return value
    return None


def counts(value: Any) -> list[int] | None:
    """A list of whole numbers >= 0 (a task's class ids)."""
    if isinstance(value, list) and all(count(v) is not None for v in value):
        return value
    return None


def texts(value: Any) -> list[str] | None:
    """A list of strings (a task's class names)."""
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def layers(value: Any) -> dict[str, dict[str, Any]] | None:
    """An allocated event's ownership: {layer: {"owned": [count per task], "free", "total"}}."""
    if not isinstance(value, dict):
        return None
    for info in value.values():
        if not (isinstance(info, dict) and isinstance(info.get("owned", []), list)
                and all(count(c) is not None for c in info.get("owned", []))
                and count(info.get("free", 0)) is not None
                and count(info.get("total", 0)) is not None):
            return None
    return value


def matrix(value: Any) -> list[list[float]] | None:
    """An accuracy matrix: rows of numbers (NaN where a value is unknown: null in the file)."""
    if not isinstance(value, list) or not all(isinstance(row, list) for row in value):
        return None
    rows = []
    for row in value:
        cells = []
        for cell in row:
            if cell is None:
                cells.append(math.nan)
            elif isinstance(cell, bool) or not isinstance(cell, (int, float)):
                return None
            else:
                cells.append(float(cell))
        rows.append(cells)
    return rows


Reader = Callable[[Any], Any]
# What each known field must hold (the same in every event type that has it), and how a note
# names it. Fields not listed here are read where they are used (accuracies: runstate.fraction).
KINDS: dict[str, tuple[Reader, str]] = {
    "count": (count, "a whole number >= 0"),
    "number": (finite, "a finite number"),
    "text": (text, "a string"),
    "class_range": (class_range, "[first class, end class]"),
    "counts": (counts, "a list of whole numbers >= 0"),
    "texts": (texts, "a list of strings"),
    "layers": (layers, "{layer: {owned, free, total}} counts"),
    "matrix": (matrix, "a list of rows of numbers"),
}
FIELDS: dict[str, str] = {
    **dict.fromkeys(("task", "tasks", "epoch", "epochs", "batch", "batches", "pid"), "count"),
    **dict.fromkeys(("time", "loss", "ce", "distill", "lr", "seconds", "images_per_s", "eta_s",
                     "gap"), "number"),
    **dict.fromkeys(("phase", "backend", "dataset", "variant", "model", "name", "reason",
                     "message", "path", "routing_rule"), "text"),
    "class_range": "class_range",
    "classes": "counts",
    "class_names": "texts",
    "layers": "layers",
    "acc_matrix_tag": "matrix",
    "acc_matrix_taw": "matrix",
}
# Fields an event of a type means nothing without: a note says when one is missing.
REQUIRED: dict[str, tuple[str, ...]] = {
    "task_started": ("task",),
    "phase_started": ("phase",),
    "progress": ("phase", "epoch"),
    "epoch_ended": ("phase", "epoch"),
    "allocated": ("layers",),
    "evaluated": ("task",),
    "student_behind": ("task",),
}


def shown(value: Any) -> str:
    """A bad value as a note quotes it: repr, cut short."""
    quoted = repr(value)
    return quoted if len(quoted) <= MAX_SHOWN else quoted[:MAX_SHOWN - 1] + "…"


def clean_event(event: dict[str, Any]) -> dict[str, Any]:
    """event without its malformed known fields (the same dict when none is), with a note per
    dropped or missing field under PROBLEMS."""
    kind = event.get("type")
    notes: list[str] = []
    cleaned: dict[str, Any] | None = None
    for key, value in event.items():
        field_kind = FIELDS.get(key)
        if field_kind is None:
            continue
        read, expected = KINDS[field_kind]
        good = None if value is None else read(value)
        if good is None or good is not value:
            cleaned = dict(event) if cleaned is None else cleaned
            if good is None:
                del cleaned[key]
                if value is not None:
                    notes.append(f"{kind} event: {key} is {shown(value)}, not {expected}")
            else:
                cleaned[key] = good
    result = event if cleaned is None else cleaned
    for key in REQUIRED.get(str(kind), ()):
        if key not in result and key not in event:
            notes.append(f"{kind} event without {key}")
    if notes:
        result = {**result, PROBLEMS: notes}
    return result


def problems_of(event: dict[str, Any]) -> list[str]:
    notes = event.get(PROBLEMS)
    return notes if isinstance(notes, list) else []


# config.json: what the TUI reads from it ({"config": {...}}), and the kind each must be.
CONFIG_FIELDS: dict[str, str] = {
    **dict.fromkeys(("backend", "dataset", "variant", "model", "name"), "text"),
    "tasks": "count",
    "teacher.epochs": "count",
    "distill.epochs": "count",
    "inference.routing": "text",
}


def config_problems(data: Any) -> list[str]:
    """What is wrong in config.json's content (as read: {} when unreadable), one note each."""
    if not isinstance(data, dict) or not data:
        return ["config.json is unreadable or holds no settings"]
    config = data.get("config")
    if not isinstance(config, dict):
        return [f"config.json: config is {shown(config)}, not a table of settings"]
    notes = []
    for key, field_kind in CONFIG_FIELDS.items():
        node: Any = config
        for part in key.split(".")[:-1]:
            section = node.get(part)
            if section is not None and not isinstance(section, dict):
                notes.append(f"config.json: {part} is {shown(section)}, not a table of settings")
            node = section if isinstance(section, dict) else {}
        value = node.get(key.split(".")[-1])
        read, expected = KINDS[field_kind]
        if value is not None and read(value) is None:
            notes.append(f"config.json: {key} is {shown(value)}, not {expected}")
    return list(dict.fromkeys(notes))  # a bad section is said once
