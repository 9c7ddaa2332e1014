"""One numbering (issue 25, docs/design.md "Numbering"): what a person reads numbers tasks from
1 and names classes by the dataset's own ids; events keep 0-based tasks and relabelled ranges."""

from __future__ import annotations

import io

from mind_core.cli import main
from mind_core.console import ConsoleReporter
from mind_core.data import load_dataset
from mind_core.events import read_events
from mind_core.schedule import original_labels
from tui.format import event_line

FAKE = ["--backend", "tests.fakes:FakeBackend", "--dataset", "synthetic"]


def test_the_task_header_shows_the_datasets_class_ids_and_events_keep_both(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", *FAKE, "--set", "tasks=2", "--seed", "3",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    dataset = load_dataset("synthetic")
    order = original_labels(dataset.num_classes, "class", 3)  # relabelled id -> dataset id
    per_task = dataset.num_classes // 2
    started = list(read_events(out / "events.jsonl", {"task_started"}))
    assert [e["task"] for e in started] == [0, 1]  # events: 0-based
    for t, event in enumerate(started):
        lo, hi = event["class_range"]
        assert (lo, hi) == (t * per_task, (t + 1) * per_task)  # the relabelled range
        assert event["classes"] == order[lo:hi].tolist()  # the dataset's own ids
        shown = ", ".join(f"{c} {dataset.class_names[c]}" for c in order[lo:hi])
        assert f"Task {t + 1}/2  (classes {shown})" in printed
    assert order[:per_task].tolist() != list(range(per_task))  # the test tells them apart


def test_class_names_are_shown_where_the_dataset_has_them():
    event = {"type": "task_started", "time": 0.0, "task": 0, "tasks": 5, "class_range": [0, 2],
             "classes": [3, 7], "class_names": ["Dress", "Sneaker"]}
    stream = io.StringIO()
    ConsoleReporter(stream)(event)
    assert stream.getvalue() == "Task 1/5  (classes 3 Dress, 7 Sneaker)\n"
    assert event_line(event, 0.0).endswith("task 1/5 started (classes 3 Dress, 7 Sneaker)")
    older = {k: v for k, v in event.items() if k not in ("classes", "class_names")}
    assert event_line(older, 0.0).endswith("task 1/5 started")  # no relabelled ids shown
