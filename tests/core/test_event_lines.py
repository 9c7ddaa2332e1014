"""events.jsonl after a writer was killed mid-line: the next run's events are never lost."""

from __future__ import annotations

import json
from pathlib import Path

from mind_core.events import EventLog, read_events
from tests.fakes import event_fields

FIRST = json.dumps({"type": "task_started", "time": 1.0, "task": 0})
FRAGMENT = '{"type": "progress", "time": 2.0, "task": 0, "ph'  # the killed writer's last line


def test_an_event_appended_after_a_partial_line_starts_a_new_line(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    path.write_text(FIRST + "\n" + FRAGMENT)
    log = EventLog(path, clock=lambda: 3.0)
    log.emit("run_started", **event_fields("run_started", resumed=True))
    log.emit("task_started", **event_fields("task_started", task=0))
    log.close()
    assert path.read_text().splitlines()[1] == FRAGMENT  # kept on its own line
    assert [e["type"] for e in read_events(path)] == ["task_started", "run_started",
                                                      "task_started"]


def test_a_file_that_ends_with_its_newline_gets_no_blank_line(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    path.write_text(FIRST + "\n")
    log = EventLog(path, clock=lambda: 3.0)
    log.emit("run_started", **event_fields("run_started", resumed=True))
    log.close()
    assert len(path.read_text().splitlines()) == 2 and "\n\n" not in path.read_text()


def test_the_reader_finds_an_event_glued_to_a_fragment(tmp_path: Path):
    """Files written before EventLog started a new line: fragment and event on one line."""
    path = tmp_path / "events.jsonl"
    resumed = json.dumps({"type": "run_started", "time": 3.0, "resumed": True,
                          "layers": {"a": {"type": 1}}})
    path.write_text(FIRST + "\n" + FRAGMENT + resumed + "\nnot an event\n[1, 2]\n"
                    + FRAGMENT)
    events = list(read_events(path))
    assert [e["type"] for e in events] == ["task_started", "run_started"]
    assert events[1] == json.loads(resumed)
