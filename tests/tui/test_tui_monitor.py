"""The monitor screen driven by Pilot on recorded (and growing) events files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from textual.widgets import TabbedContent

from tests.tui.tui_helpers import (
    DATA,
    drive,
    plain,
    recorded_variant,
    wait_for,
    without_statistics,
)
from tui.app import MindApp
from tui.rundir import run_events
from tui.screens.monitor import MonitorScreen
from tui.screens.runs import RunsScreen
from tui.widgets.matrix import AccuracyMatrix
from tui.widgets.problem import ProblemPanel
from tui.widgets.rules import RuleScores


def monitor(app: MindApp) -> MonitorScreen:
    assert isinstance(app.screen, MonitorScreen)
    return app.screen


def test_finished_run_shows_its_accuracy_matrices(runs_dir: Path, catalog):
    app = MindApp(runs_dir=runs_dir, attach=runs_dir / "finished-3tasks", catalog=catalog)
    evaluated = [e for e in run_events(DATA / "finished-3tasks") if e["type"] == "evaluated"]

    async def scenario(pilot):
        await wait_for(pilot, lambda: monitor(app).state.status == "finished")
        screen = monitor(app)
        assert screen.query_one(TabbedContent).active == "accuracy"
        tag = screen.query_one("#matrix-tag", AccuracyMatrix)
        taw = screen.query_one("#matrix-taw", AccuracyMatrix)
        assert [list(r) for r in tag.data[0]] == evaluated[-1]["acc_matrix_tag"]
        assert [list(r) for r in taw.data[0]] == evaluated[-1]["acc_matrix_taw"]
        text = plain(tag)
        for value in evaluated[-1]["acc_matrix_tag"][-1]:  # last row, in percent
            assert f"{100 * value:.1f}" in text
        final = plain(screen.query_one("#final-metrics"))
        assert f"TAg {100 * evaluated[-1]['tag']:.1f}%" in final
        assert f"TAw {100 * evaluated[-1]['taw']:.1f}%" in final
        assert final.endswith(f"routing {100 * evaluated[-1]['routing']:.1f}% (mahalanobis)")
        rules = plain(screen.query_one(RuleScores))
        for name, v in evaluated[-1]["rules"].items():
            mark = "●" if name == "mahalanobis" else " "
            assert f"{mark}  {name:<11}  {100 * v['routing']:>9.1f}  {100 * v['tag']:>5.1f}" in rules
        assert "unavailable" not in rules
        panel = screen.query_one(ProblemPanel)  # only the warning: the run itself went well
        assert panel.display and panel.has_class("-notice") and not panel.has_class("-error")
        assert plain(panel).startswith("Task 3's student ended 11.5 points below its teacher")
        assert screen.check_action("stop", ()) is None  # nothing to stop

    drive(app, scenario)


def test_failed_run_shows_the_error_and_output_log(runs_dir: Path, catalog):
    app = MindApp(runs_dir=runs_dir, attach=runs_dir / "failed-3tasks", catalog=catalog)

    async def scenario(pilot):
        panel = None
        await wait_for(pilot, lambda: monitor(app).query_one(ProblemPanel).display)
        panel = monitor(app).query_one(ProblemPanel)
        text = plain(panel)
        assert "Run failed: RuntimeError: CUDA out of memory (simulated)" in text
        assert "Traceback (most recent call last)" in text  # from output.log
        assert panel.has_class("-error")
        assert monitor(app).check_action("resume", ()) is True

    drive(app, scenario)


def test_run_that_died_without_a_final_event_is_reported(runs_dir: Path, catalog):
    app = MindApp(runs_dir=runs_dir, attach=runs_dir / "crashed-3tasks", catalog=catalog)

    async def scenario(pilot):
        await wait_for(pilot, lambda: monitor(app).query_one(ProblemPanel).display)
        text = plain(monitor(app).query_one(ProblemPanel))
        assert "is no longer running and wrote no final event" in text
        assert "Segmentation fault" in text

    drive(app, scenario)


def test_interrupted_run_offers_resume(runs_dir: Path, catalog):
    app = MindApp(runs_dir=runs_dir, attach=runs_dir / "interrupted-4tasks", catalog=catalog)

    async def scenario(pilot):
        await wait_for(pilot, lambda: monitor(app).state.status == "interrupted")
        screen = monitor(app)
        panel = screen.query_one(ProblemPanel)
        assert panel.has_class("-notice") and "Press r to resume" in plain(panel)
        assert screen.check_action("resume", ()) is True
        assert screen.check_action("stop", ()) is None

    drive(app, scenario)


def test_monitor_follows_a_growing_events_file(tmp_path: Path, catalog):
    """Events appended while the monitor is open show up (the worker tails the file)."""
    run = tmp_path / "live"
    run.mkdir()
    events = run_events(DATA / "finished-3tasks")
    events[0] = {**events[0], "pid": os.getpid()}  # a live process: not reported as dead
    cut = next(i for i, e in enumerate(events) if e["type"] == "evaluated") + 1
    app = MindApp(runs_dir=tmp_path, attach=run, catalog=catalog)

    def append(batch):
        with open(run / "events.jsonl", "a") as f:
            f.writelines(json.dumps(e) + "\n" for e in batch)

    async def scenario(pilot):
        await pilot.pause(0.3)
        assert monitor(app).state.events_seen == 0
        append(events[:cut])
        await wait_for(pilot, lambda: monitor(app).state.tasks_done == 1)
        screen = monitor(app)
        assert screen.state.status == "running"
        assert screen.query_one(TabbedContent).active == "losses"
        assert len(screen.query_one("#matrix-tag", AccuracyMatrix).data[0]) == 1
        append(events[cut:])
        await wait_for(pilot, lambda: monitor(app).state.status == "finished")
        assert len(screen.query_one("#matrix-tag", AccuracyMatrix).data[0]) == 3

    drive(app, scenario)


def test_keys_switch_tabs_browse_tasks_copy_path_and_go_back(runs_dir: Path, catalog):
    app = MindApp(runs_dir=runs_dir, attach=runs_dir / "finished-3tasks", catalog=catalog)

    async def scenario(pilot):
        await wait_for(pilot, lambda: monitor(app).state.status == "finished")
        screen = monitor(app)
        await pilot.press("4")
        assert screen.query_one(TabbedContent).active == "ownership"
        await pilot.press("1", "left_square_bracket")
        assert screen.loss_task == 1  # task 2 of 3 (0-based 1)
        assert "task 2" in screen.query_one("#plot-teacher").figure.title
        await pilot.press("right_square_bracket")
        assert screen.loss_task is None  # back to following the latest task
        await pilot.press("o")
        assert app.clipboard == str((runs_dir / "finished-3tasks").resolve())
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)

    drive(app, scenario)


def test_stop_on_an_attached_run_creates_its_stop_file(tmp_path: Path, catalog):
    run = tmp_path / "attached"
    run.mkdir()
    started = {"type": "run_started", "time": 1.0, "backend": "fake", "dataset": "synthetic",
               "tasks": 2, "variant": "mind", "model": "small_cnn", "pid": os.getpid(),
               "resumed": False}
    (run / "events.jsonl").write_text(json.dumps(started) + "\n")
    app = MindApp(runs_dir=tmp_path, attach=run, catalog=catalog)

    async def scenario(pilot):
        await wait_for(pilot, lambda: monitor(app).state.status == "running")
        assert monitor(app).check_action("stop", ()) is True
        await pilot.press("s")
        assert (run / "STOP").exists()

    drive(app, scenario)


def test_a_run_without_statistics_says_which_rules_it_could_not_score(tmp_path: Path, catalog):
    run = recorded_variant("finished-3tasks", tmp_path / "no-stats", without_statistics(),
                           routing="max_prob")
    app = MindApp(runs_dir=tmp_path, attach=run, catalog=catalog)

    async def scenario(pilot):
        await wait_for(pilot, lambda: monitor(app).state.status == "finished")
        screen = monitor(app)
        assert plain(screen.query_one("#final-metrics")).endswith("routing 79.0% (max_prob)")
        rules = plain(screen.query_one(RuleScores))
        assert "●  max_prob" in rules and "mahalanobis, pairwise unavailable" in rules

    drive(app, scenario, size=(80, 24))


def test_a_run_from_before_the_rules_shows_its_config_rule(runs_dir: Path, catalog):
    app = MindApp(runs_dir=runs_dir, attach=runs_dir / "interrupted-4tasks", catalog=catalog)

    async def scenario(pilot):
        await wait_for(pilot, lambda: monitor(app).state.status == "interrupted")
        screen = monitor(app)
        assert plain(screen.query_one("#final-metrics")).endswith("routing 89.2% (max_prob)")
        assert plain(screen.query_one(RuleScores)) == (
            "Routing rules: only max_prob was scored (the run predates comparing them)")
        await pilot.press("5")  # the log renders what it was given once it is shown
        await wait_for(pilot, lambda: screen.query_one("#event-log").lines)
        log = "\n".join(line.text for line in screen.query_one("#event-log").lines)
        assert "task 2 evaluated: TAg 87.2%  TAw 96.2%  routing 89.2% (max_prob)" in log

    drive(app, scenario)


def test_malformed_evaluations_do_not_crash_the_monitor(tmp_path: Path, catalog):
    garbage = iter([{"routing_rule": None, "rules": {"x": "y"}},
                    {"rules": [], "routing": "high", "tag": None}])

    def spoil(event: dict) -> dict:
        return {**event, **next(garbage)} if event["type"] == "evaluated" else event

    run = recorded_variant("interrupted-4tasks", tmp_path / "bad", spoil)
    with open(run / "events.jsonl", "a") as f:
        f.write(json.dumps({"type": "evaluated", "time": 1.7e9 + 20, "task": "two"}) + "\n")
    (run / "config.json").write_text(json.dumps({"config": {"inference": "max_prob",
                                                            "teacher": 3, "tasks": "4"}}))
    app = MindApp(runs_dir=tmp_path, attach=run, catalog=catalog)

    async def scenario(pilot):
        await wait_for(pilot, lambda: monitor(app).state.status == "interrupted")
        await pilot.press("2")
        await pilot.pause(0.2)
        screen = monitor(app)
        assert screen.state.routing_rule == "max_prob" and screen.state.tasks_done == 2
        assert plain(screen.query_one("#final-metrics")) == "after task 2:  TAw 96.2%"
        assert "only max_prob was scored" in plain(screen.query_one(RuleScores))

    drive(app, scenario)
