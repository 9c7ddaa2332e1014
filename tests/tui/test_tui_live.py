"""Runs launched from the launch screen as real child processes (`python -m mind_core.cli`)
with the numpy fake backend: finish, stop and resume, crash."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import Select

from tests.tui.tui_helpers import drive, plain, wait_for
from tui.app import MindApp
from tui.rundir import run_events
from tui.screens.leave import LeaveScreen
from tui.screens.monitor import MonitorScreen
from tui.widgets.matrix import AccuracyMatrix
from tui.widgets.problem import ProblemPanel

SLOW = "tests.tui.slow_backend:SlowBackend"
STALLING = "tests.tui.slow_backend:StallingBackend"


async def launch_smoke(pilot, app: MindApp) -> MonitorScreen:
    """Pick the smoke preset (synthetic data) and press F5; returns the monitor."""
    await wait_for(pilot, lambda: bool(app.screen.query("#f-preset")))
    app.screen.query_one("#f-preset", Select).value = "smoke"
    await wait_for(pilot, lambda: app.screen.query_one("#f-teacher-epochs").value == "1"
                   and app.screen.validation.ok)
    await pilot.press("f5")
    await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
    return app.screen


def only_run(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run


def test_a_launched_smoke_run_finishes_with_its_accuracy_matrix(tmp_path: Path):
    app = MindApp(backend="tests.fakes:FakeBackend", runs_dir=tmp_path / "runs")

    async def scenario(pilot):
        screen = await launch_smoke(pilot, app)
        await wait_for(pilot, lambda: screen.state.status == "finished" and
                       screen.exit_code is not None, timeout=60)
        metrics = json.loads((only_run(tmp_path / "runs") / "metrics.json").read_text())
        tag = screen.query_one("#matrix-tag", AccuracyMatrix)
        assert [list(r) for r in tag.data[0]] == metrics["acc_matrix_tag"]
        assert len(tag.data[0]) == 5
        assert f"{100 * metrics['acc_matrix_tag'][-1][-1]:.1f}" in plain(tag)
        assert screen.exit_code == 0
        # Each teacher beside its student, from the events, as the core wrote them down.
        rows = screen.state.teacher_rows()
        assert [r.teacher for r in rows] == metrics["teacher_taw"]
        assert [r.student for r in rows] == metrics["student_taw"]
        assert [r.task for r in rows if r.behind] == [b["task"] for b in metrics["students_behind"]]
        assert screen.query_one(ProblemPanel).display == bool(metrics["students_behind"])

    drive(app, scenario)
    run = only_run(tmp_path / "runs")
    assert "mind run --preset smoke" in (run / "output.log").read_text()


def test_stop_and_resume_from_the_ui(tmp_path: Path):
    app = MindApp(backend=SLOW, runs_dir=tmp_path / "runs")

    async def scenario(pilot):
        screen = await launch_smoke(pilot, app)
        await wait_for(pilot, lambda: screen.state.tasks_done >= 1, timeout=60)
        await pilot.press("s")
        await wait_for(pilot, lambda: screen.state.status == "interrupted" and
                       screen.exit_code is not None, timeout=60)
        assert screen.exit_code == 130
        assert screen.state.tasks_done < 5
        assert "resume" in plain(screen.query_one(ProblemPanel))
        await pilot.press("r")
        await wait_for(pilot, lambda: screen.state.status == "finished", timeout=60)
        assert len(screen.query_one("#matrix-tag", AccuracyMatrix).data[0]) == 5

    drive(app, scenario)
    events = run_events(only_run(tmp_path / "runs"))
    starts = [e for e in events if e["type"] == "run_started"]
    assert [e["resumed"] for e in starts] == [False, True]
    assert [e["reason"] for e in events if e["type"] == "run_failed"] == ["interrupted"]


def test_a_crashing_backend_shows_the_error(tmp_path: Path):
    app = MindApp(backend="tests.fakes:CrashingBackend", runs_dir=tmp_path / "runs")

    async def scenario(pilot):
        screen = await launch_smoke(pilot, app)
        await wait_for(pilot, lambda: screen.exit_code is not None, timeout=60)
        await wait_for(pilot, lambda: screen.query_one(ProblemPanel).display)
        assert screen.exit_code == 1 and screen.state.status == "failed"
        assert "Run failed: RuntimeError: simulated backend crash" in plain(
            screen.query_one(ProblemPanel))
        assert screen.check_action("resume", ()) is True

    drive(app, scenario)


def test_a_child_that_exits_before_any_event_shows_its_exit_code_and_output(tmp_path: Path):
    app = MindApp(backend="tests.tui.no_such_module:Backend", runs_dir=tmp_path / "runs")

    async def scenario(pilot):
        screen = await launch_smoke(pilot, app)
        await wait_for(pilot, lambda: screen.query_one(ProblemPanel).display, timeout=60)
        text = plain(screen.query_one(ProblemPanel))
        assert "exited with code 2 (bad input" in text
        assert "no_such_module" in text  # the CLI's message, from output.log

    drive(app, scenario)


def test_quitting_with_a_run_going_asks_and_stop_ends_it_resumably(tmp_path: Path):
    app = MindApp(backend=STALLING, runs_dir=tmp_path / "runs")
    children = []

    async def scenario(pilot):
        screen = await launch_smoke(pilot, app)
        await wait_for(pilot, lambda: screen.state.status == "running", timeout=60)
        children.extend(app.running_children())
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, LeaveScreen))
        assert str(only_run(tmp_path / "runs")) in plain(app.screen.query_one("#leave-text"))
        await pilot.press("escape")  # stay: nothing happens to the run
        await wait_for(pilot, lambda: app.screen is screen)
        assert children[0].alive
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, LeaveScreen))
        await pilot.press("s")
        # drive() kills children still alive when the scenario ends: let this one checkpoint.
        await wait_for(pilot, lambda: not children[0].alive, timeout=60)

    drive(app, scenario)
    (child,) = children
    assert child.popen.wait(timeout=60) == 130
    events = run_events(only_run(tmp_path / "runs"))
    assert [e["reason"] for e in events if e["type"] == "run_failed"] == ["interrupted"]


def test_leaving_a_run_going_exits_without_touching_it(tmp_path: Path):
    app = MindApp(backend=STALLING, runs_dir=tmp_path / "runs")

    async def scenario(pilot):
        screen = await launch_smoke(pilot, app)
        await wait_for(pilot, lambda: screen.state.status == "running", timeout=60)
        (child,) = app.running_children()
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, LeaveScreen))
        await pilot.press("l")
        await wait_for(pilot, lambda: app.return_code is not None)
        assert child.alive and not child.stop_requested

    drive(app, scenario)  # which ends the child, as a test must
