"""The TUI on malformed run files: mistyped or missing event fields, a config.json with wrong
types, lines that hold no event, a directory that is no run, and a crash of the app itself."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from textual.app import App

from mind_core.events import EventLog
from tests.fakes import event_fields
from tests.tui.tui_helpers import DATA, drive, plain, recorded_variant, wait_for
from tui.app import MindApp, run_app
from tui.cli import main
from tui.rundir import run_events, summarize
from tui.runstate import RunState
from tui.screens.compare import load_report
from tui.screens.monitor import MonitorScreen
from tui.tailer import EventFileReader
from tui.widgets.problem import ProblemPanel, diagnose, malformed_message


def monitor(app: MindApp) -> MonitorScreen:
    assert isinstance(app.screen, MonitorScreen)
    return app.screen


MISTYPED = [
    {"type": "run_started", "time": 1.0, "tasks": "four", "backend": ["torch"], "pid": "me"},
    {"type": "task_started", "time": 2.0, "task": "one", "tasks": 4, "class_range": [5]},
    {"type": "task_started", "time": 2.5, "tasks": 4},
    {"type": "task_started", "time": 3.0, "task": 0, "tasks": 4, "class_range": [0, 2]},
    {"type": "phase_started", "time": 3.0, "task": 0, "phase": "teacher", "epochs": "3"},
    {"type": "progress", "time": 4.0, "task": 0, "phase": "teacher", "epoch": "x",
     "epochs": 3, "batch": None, "batches": "10", "loss": "high", "eta_s": "soon"},
    {"type": "progress", "time": 4.5, "task": 0, "phase": "teacher", "epoch": 0, "epochs": 3,
     "batch": 2, "batches": 4, "loss": 0.5, "eta_s": 9.0},
    {"type": "epoch_ended", "time": 5.0, "task": 0, "phase": "teacher", "epoch": "two",
     "epochs": [3], "loss": "nan", "ce": {}, "distill": None, "images_per_s": "fast"},
    {"type": "epoch_ended", "time": 5.5, "task": [0], "phase": 7, "epoch": -1},
    {"type": "allocated", "time": 6.0, "task": 0, "layers": [1, 2]},
    {"type": "allocated", "time": 6.5, "task": 0,
     "layers": {"conv1": {"owned": ["a"], "free": 1, "total": 2}}},
    {"type": "evaluated", "time": 7.0, "task": 0, "acc_matrix_tag": [["x"]],
     "acc_matrix_taw": [[None]]},
    {"type": "run_finished", "time": 8.0, "seconds": "long", "tag": 0.5},
]


def test_mistyped_and_missing_fields_are_skipped_and_noted():
    """Every event with a mistyped or missing field is applied without it (no exception) and
    leaves a note naming the event, the field and the value."""
    state = RunState()
    for event in MISTYPED:
        state.apply(event)
    assert state.status == "finished" and state.task == 0 and state.tasks == 4
    assert state.class_range == (0, 2) and state.planned_epochs == {}
    assert state.loss == 0.5 and state.epoch == 1 and state.batch == 0
    assert [e.get("loss") for e in state.curve(0, "teacher").epochs] == [None]  # dropped
    assert state.ownership == {} and state.matrix("tag") == ()
    notes = state.problems()
    for expected in ("run_started event: tasks is 'four', not a whole number >= 0",
                     "run_started event: backend is ['torch'], not a string",
                     "task_started event: task is 'one'",
                     "task_started event: class_range is [5]",
                     "task_started event without task",
                     "phase_started event: epochs is '3'",
                     "progress event: epoch is 'x'", "progress event: loss is 'high'",
                     "progress event: batches is '10'",
                     "epoch_ended event: epoch is 'two'", "epoch_ended event: ce is {}",
                     "epoch_ended event: epoch is -1",
                     "allocated event: layers is [1, 2]",
                     "evaluated event: acc_matrix_tag is [['x']]",
                     "run_finished event: seconds is 'long'"):
        assert any(expected in note for note in notes), expected
    assert not any("batch is None" in note or "distill is" in note for note in notes)  # null


def test_malformed_lines_and_config_are_shown_in_the_monitor(tmp_path: Path, catalog):
    """A recorded run whose progress and epoch events are mistyped, with a line that holds no
    event and a config.json of wrong types: the monitor replays it to the end and its problem
    panel names what it skipped."""
    def spoil(event: dict) -> dict:
        if event["type"] == "progress":
            return {**event, "epoch": str(event["epoch"]), "batch": [event["batch"]]}
        if event["type"] == "epoch_ended":
            return {**event, "loss": "n/a", "epoch": None, "epochs": "3"}
        if event["type"] == "task_started":
            return {**event, "class_range": "0-2"}
        return event

    run = recorded_variant("interrupted-4tasks", tmp_path / "bad", spoil)
    lines = (run / "events.jsonl").read_text().splitlines(keepends=True)
    lines.insert(3, '{"type": "progress", "time": 1700000000.2, "ta\n')  # cut short
    (run / "events.jsonl").write_text("".join(lines))
    (run / "config.json").write_text(json.dumps(
        {"config": {"tasks": "four", "teacher": {"epochs": "3"}, "inference": "max_prob"}}))
    app = MindApp(runs_dir=tmp_path, attach=run, catalog=catalog)

    async def scenario(pilot):
        await wait_for(pilot, lambda: monitor(app).state.status == "interrupted")
        screen = monitor(app)
        assert screen.state.tasks_done == 2 and screen.state.tasks == 4
        panel = screen.query_one(ProblemPanel)
        assert panel.display and "Press r to resume" in plain(panel)
        shown = " ".join(plain(panel).split())
        assert "Skipped malformed input: config.json: tasks is 'four'" in shown
        assert "config.json: inference is 'max_prob', not a table of settings" in shown
        assert "more)" in shown
        problems = screen.state.problems()
        assert any("teacher.epochs is '3'" in p for p in problems)
        assert any(p.startswith("events.jsonl: a line that holds no event") for p in problems)
        assert any("progress event: epoch is '0'" in p for p in problems)
        assert any("epoch_ended event: loss is 'n/a'" in p for p in problems)
        await pilot.press("1")  # the loss plots draw what is left
        await pilot.press("5")
        await pilot.pause(0.2)

    drive(app, scenario)


def test_the_runs_list_and_compare_survive_wrong_types(tmp_path: Path):
    run = recorded_variant("finished-3tasks", tmp_path / "bad", lambda e: e)
    (run / "config.json").write_text(json.dumps({"config": {"tasks": "three",
                                                            "backend": ["fake"]}}))
    (run / "metrics.json").write_text(json.dumps({"tasks_done": "x", "tag": ["a", 0.5],
                                                  "acc_matrix_tag": [[None], "row"]}))
    summary = summarize(run)
    assert (summary.tasks, summary.tasks_done, summary.status) == (3, 3, "finished")
    report = load_report(run)
    assert report.per_task_tag[1] == 0.5 and report.per_task_tag[0] != report.per_task_tag[0]
    assert len(report.matrix_tag) == 1


def test_a_directory_that_is_not_a_run_says_so(tmp_path: Path, catalog, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--attach", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "is not a run directory" in err and err.count("\n") == 1

    app = MindApp(runs_dir=tmp_path, attach=empty, catalog=catalog)
    events = run_events(DATA / "finished-3tasks")
    events[0] = {**events[0], "pid": os.getpid()}

    async def scenario(pilot):
        panel = monitor(app).query_one(ProblemPanel)
        await wait_for(pilot, lambda: panel.display)
        assert panel.has_class("-error") and "is not a run directory" in plain(panel)
        with open(empty / "events.jsonl", "w") as f:  # a run starts there after all
            f.writelines(json.dumps(e) + "\n" for e in events[:5])
        await wait_for(pilot, lambda: monitor(app).state.status == "running")
        await wait_for(pilot, lambda: not panel.display)

    drive(app, scenario)


def test_an_event_after_a_killed_writers_partial_line_reaches_the_monitor(tmp_path: Path):
    """A run killed mid-line, then resumed: the resumed run's first event is read whether
    the writer started a new line (EventLog now does) or glued it to the fragment (older
    files)."""
    for writer in ("event_log", "glued"):
        path = tmp_path / writer / "events.jsonl"
        path.parent.mkdir()
        path.write_text(json.dumps({"type": "task_started", "time": 1, "task": 0}) + "\n"
                        + '{"type": "progress", "time": 2, "task": 0, "pha')
        reader = EventFileReader(path)
        assert [e["type"] for e in reader.read_new()] == ["task_started"]
        if writer == "event_log":
            log = EventLog(path)
            log.emit("run_started", **event_fields("run_started", resumed=True))
            log.close()
        else:
            with open(path, "a") as f:
                f.write(json.dumps({"type": "run_started", "time": 3, "resumed": True}) + "\n")
        assert [e["type"] for e in reader.read_new()] == ["run_started"], writer
        assert [e["type"] for e in run_events(path.parent)] == ["task_started", "run_started"]
        assert len(reader.notes) == (writer == "event_log")  # the fragment, on its own line


def test_well_formed_runs_leave_no_note():
    for name in ("finished-3tasks", "interrupted-4tasks", "failed-3tasks", "crashed-3tasks"):
        state = RunState()
        for event in run_events(DATA / name):
            state.apply(event)
        assert state.problems() == [] and malformed_message(state) == "", name
    state = RunState()
    state.apply({"type": "run_started", "time": 1.0, "pid": os.getpid()})
    assert diagnose(state, None, None, "") is None


class Crashing(App[None]):
    def on_mount(self) -> None:
        raise RuntimeError("a bug in a screen")


def test_a_crash_of_the_app_is_a_non_zero_exit(runs_dir: Path, monkeypatch):
    assert run_app(Crashing(), headless=True) == 1

    def crash(self) -> None:
        raise RuntimeError("a bug in a screen")

    monkeypatch.setattr(MindApp, "on_mount", crash)
    monkeypatch.setattr(MindApp, "run", functools.partialmethod(App.run, headless=True))
    assert main(["--attach", str(runs_dir / "finished-3tasks")]) == 1


def test_a_sweep_whose_record_cannot_be_used_is_one_line_saying_so(runs_dir: Path, catalog):
    from textual.widgets import DataTable

    from tests.tui.test_tui_runs import rows, runs_screen

    records = {"binary": b"\xff\xfe\x00", "cut-short": '{"format": 1, "trials": [',
               "a-list": "[1, 2]", "no-trials": json.dumps({"format": 1, "trials": "all of them"}),
               "outside": json.dumps({"trials": [{"name": "../finished-3tasks"}]}),
               "twice": json.dumps({"trials": [{"name": "a"}, {"name": "a"}]}),
               "deep": "[" * 100_000 + "]" * 100_000}  # too deep for the JSON reader
    for name, text in records.items():
        (runs_dir / name).mkdir()
        (runs_dir / name / "sweep.json").write_bytes(text if isinstance(text, bytes)
                                                     else text.encode())
    app = MindApp(runs_dir=runs_dir, catalog=catalog)

    async def scenario(pilot):
        screen = await runs_screen(pilot, app)
        await wait_for(pilot, lambda: len(rows(screen)) == 11)
        shown = rows(screen)
        for name in records:
            assert shown[name][:3] == ["", name, "unreadable"], name
        table = screen.query_one(DataTable)

        async def hint(name: str) -> str:
            table.move_cursor(row=list(rows(screen)).index(name))
            await pilot.pause()
            return " ".join(plain(screen.query_one("#runs-hint")).split())

        # "deep": nested past the parser's recursion limit, which read_sweep takes as unreadable.
        for name in ("cut-short", "a-list", "binary", "deep"):
            assert await hint(name) == f"{name}: a sweep; its sweep.json cannot be read " \
                                       "(unreadable, not JSON, or not a table)"
        assert (await hint("no-trials")).endswith("trials is 'all of them', not a list")
        assert (await hint("outside")).endswith("trial 1 has no usable name ({'name': "
                                                "'../finished-3tasks'})")
        assert (await hint("twice")).endswith("trial 2 repeats the name 'a'")
        await pilot.press("enter")  # nothing to expand, nothing to open
        await pilot.pause()
        assert len(rows(screen)) == 11 and app.screen is screen

    drive(app, scenario)
