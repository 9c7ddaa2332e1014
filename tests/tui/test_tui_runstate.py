"""RunState, the events reader and run status, from the recorded run directories."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.tui.tui_helpers import DATA
from tui.rundir import run_events, status_from_events, summarize, tail_text
from tui.runstate import RunState
from tui.tailer import EventFileReader
from tui.widgets.progress import progress_info


def replay(name: str) -> RunState:
    state = RunState()
    for event in run_events(DATA / name):
        state.apply(event)
    return state


def last_evaluated(name: str) -> dict:
    return [e for e in run_events(DATA / name) if e["type"] == "evaluated"][-1]


def test_finished_run_has_the_recorded_matrices_and_metrics():
    state = replay("finished-3tasks")
    recorded = last_evaluated("finished-3tasks")
    assert state.status == "finished"
    assert state.tasks == 3 and state.tasks_done == 3
    assert [list(r) for r in state.matrix("tag")] == recorded["acc_matrix_tag"]
    assert [list(r) for r in state.matrix("taw")] == recorded["acc_matrix_taw"]
    assert [len(r) for r in state.matrix("tag")] == [1, 2, 3]
    assert state.per_task("tag")[-1] == recorded["tag"]
    assert state.latest_metrics["taw"] == recorded["taw"]
    assert state.run_fraction() == 1.0


def test_ownership_is_the_latest_allocation():
    state = replay("finished-3tasks")
    allocated = [e for e in run_events(DATA / "finished-3tasks") if e["type"] == "allocated"]
    assert state.ownership == allocated[-1]["layers"]
    for layer in state.ownership.values():
        assert sum(layer["owned"]) + layer["free"] == layer["total"]


def test_loss_curves_hold_every_progress_and_epoch_event_of_a_phase():
    events = run_events(DATA / "finished-3tasks")
    state = replay("finished-3tasks")
    progress = [e for e in events if e["type"] == "progress" and e["task"] == 1
                and e["phase"] == "distill"]
    curve = state.curve(1, "distill")
    assert [loss for _, loss in curve.live] == [e["loss"] for e in progress]
    assert [e["epoch"] for e in curve.epochs] == [0, 1, 2]
    xs = [x for x, _ in curve.live]
    assert xs == sorted(xs)


def test_interrupted_then_resumed_run_becomes_running_again():
    state = replay("interrupted-4tasks")
    assert state.status == "interrupted"
    assert state.failure and "SIGINT" in state.failure["message"]
    state.apply({"type": "run_started", "time": 1.7e9 + 100, "backend": "fake", "tasks": 4,
                 "pid": 1, "resumed": True})
    assert state.status == "running" and state.failure is None
    assert state.tasks_done == 2  # what was learned before the stop stays


def test_a_resumed_phase_replaces_the_points_it_redoes():
    state = RunState()
    for epoch, loss in ((0, 3.0), (1, 2.0), (2, 1.0), (1, 2.5), (2, 1.5)):
        state.apply({"type": "progress", "time": 0, "task": 0, "phase": "teacher",
                     "epoch": epoch, "epochs": 3, "batch": 1, "batches": 2, "loss": loss})
    assert [loss for _, loss in state.curve(0, "teacher").live] == [3.0, 2.5, 1.5]


def test_progress_fractions_follow_the_phases():
    state = RunState()
    state.apply({"type": "run_started", "time": 0, "tasks": 2})
    state.apply({"type": "task_started", "time": 0, "task": 0, "tasks": 2, "class_range": [0, 5]})
    state.apply({"type": "phase_started", "time": 0, "task": 0, "phase": "teacher", "epochs": 2})
    state.apply({"type": "progress", "time": 1, "task": 0, "phase": "teacher", "epoch": 1,
                 "epochs": 2, "batch": 5, "batches": 10, "loss": 1.0, "eta_s": 30})
    assert state.phase_fraction() == 0.75
    state.planned_epochs["distill"] = 2
    assert state.task_fraction() == 1.5 / 4
    assert state.run_fraction() == 1.5 / 4 / 2
    assert state.eta_s == 30 and state.elapsed_s == 1
    info = progress_info(state)
    assert "task [b]1/2[/b]" in info.headline and "teacher · epoch 2/2" in info.headline
    assert "loss 1.0000" in info.headline
    # 1 s for 3/16 of the run: 13/3 s to go by linear extrapolation
    assert info.timing == "ETA phase 0:30 · run ~0:04 · elapsed 0:01"
    assert (info.run_fraction, info.phase_fraction) == (1.5 / 4 / 2, 0.75)


def test_reader_waits_for_a_line_to_be_complete(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    reader = EventFileReader(path)
    assert reader.read_new() == []  # no file yet
    first = json.dumps({"type": "run_started", "time": 1})
    second = json.dumps({"type": "task_started", "time": 2, "task": 0})
    path.write_text(first + "\n" + second[:10])
    assert [e["type"] for e in reader.read_new()] == ["run_started"]
    with open(path, "a") as f:
        f.write(second[10:] + "\nnot json\n")
    assert [e["type"] for e in reader.read_new()] == ["task_started"]
    assert reader.read_new() == []


def test_reader_starts_again_when_the_file_is_rewritten(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"type": "a", "time": 1}) + "\n" + json.dumps({"type": "b"}) + "\n")
    reader = EventFileReader(path)
    assert len(reader.read_new()) == 2
    path.write_text(json.dumps({"type": "c", "time": 1}) + "\n")
    assert [e["type"] for e in reader.read_new()] == ["c"] and reader.restarted


def test_status_of_each_recorded_run(tmp_path: Path):
    statuses = {}
    for name in ("finished-3tasks", "interrupted-4tasks", "failed-3tasks", "crashed-3tasks"):
        run = tmp_path / name
        run.mkdir()
        for f in (DATA / name).iterdir():
            (run / f.name).write_bytes(f.read_bytes())
            os.utime(run / f.name, (1_700_000_500, 1_700_000_500))
        statuses[name] = summarize(run).status
    assert statuses == {"finished-3tasks": "finished", "interrupted-4tasks": "interrupted",
                        "failed-3tasks": "failed", "crashed-3tasks": "failed"}


def test_a_run_whose_process_lives_is_running(tmp_path: Path):
    events = [{"type": "run_started", "time": 1, "pid": os.getpid()}]
    assert status_from_events(events, tmp_path) == ("running", "")
    assert status_from_events(events, tmp_path, owned_alive=False)[0] == "failed"


def test_summary_reads_final_metrics(tmp_path: Path):
    summary = summarize(DATA / "finished-3tasks")
    metrics = json.loads((DATA / "finished-3tasks" / "metrics.json").read_text())
    assert (summary.tag, summary.taw) == (metrics["final"]["tag"], metrics["final"]["taw"])
    assert (summary.backend, summary.dataset, summary.tasks, summary.tasks_done) == (
        "fake", "synthetic", 3, 3)


def test_tail_text_returns_the_last_lines(tmp_path: Path):
    log = tmp_path / "output.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail_text(log, lines=3).splitlines() == ["line 97", "line 98", "line 99"]
    assert tail_text(tmp_path / "missing.log") == ""
