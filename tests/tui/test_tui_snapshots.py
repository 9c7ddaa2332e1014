"""Layout snapshots (pytest-textual-snapshot) of every screen at 100x30 and 80x24.

Deterministic by construction: recorded runs copied to ./runs of a temporary working
directory (relative paths), dates in UTC, a fixed catalog, no clocks or pids rendered.
Regenerate with `pytest tests/tui --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from tests.tui.tui_helpers import start_running, wait_for, write_sweep
from tui.app import MindApp
from tui.screens.compare import CompareScreen
from tui.screens.launch import LaunchScreen
from tui.screens.monitor import MonitorScreen

SIZES = [pytest.param((100, 30), id="100x30"), pytest.param((80, 24), id="80x24")]


def settled_monitor(status: str, *keys: str):
    async def run_before(pilot):
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, MonitorScreen)
                       and pilot.app.screen.state.status == status)
        await pilot.press(*keys)
        await pilot.pause(0.2)
    return run_before


async def launch_ready(pilot):
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, LaunchScreen)
                   and bool(pilot.app.screen.preset_values))
    await pilot.pause(0.1)


async def runs_ready(pilot):
    await pilot.press("f2")
    await wait_for(pilot, lambda: pilot.app.screen.query(DataTable)
                   and pilot.app.screen.query_one(DataTable).row_count == 4)


@pytest.mark.parametrize("size", SIZES)
def test_launch_screen(snap_compare, runs_dir: Path, catalog, size):
    app = MindApp(runs_dir=runs_dir, catalog=catalog)
    assert snap_compare(app, terminal_size=size, run_before=launch_ready)


def test_launch_screen_with_an_invalid_setting(snap_compare, runs_dir: Path, catalog):
    async def run_before(pilot):
        await launch_ready(pilot)
        pilot.app.screen.query_one("#f-tasks").value = "3"
        await wait_for(pilot, lambda: not pilot.app.screen.validation.ok)

    app = MindApp(runs_dir=runs_dir, catalog=catalog)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_monitor_of_a_finished_run(snap_compare, runs_dir: Path, catalog, size):
    app = MindApp(runs_dir=runs_dir, attach=runs_dir / "finished-3tasks", catalog=catalog)
    assert snap_compare(app, terminal_size=size, run_before=settled_monitor("finished"))


@pytest.mark.parametrize("tab", ["1", "3", "4"], ids=["losses", "per-task", "ownership"])
def test_monitor_tabs(snap_compare, runs_dir: Path, catalog, tab):
    app = MindApp(runs_dir=runs_dir, attach=runs_dir / "finished-3tasks", catalog=catalog)
    assert snap_compare(app, terminal_size=(100, 30),
                        run_before=settled_monitor("finished", tab))


def test_monitor_teachers_beside_students_at_80x24(snap_compare, runs_dir: Path, catalog):
    """The per-task tab's plot keeps its title beside the teacher table in 80 columns."""
    app = MindApp(runs_dir=runs_dir, attach=runs_dir / "finished-3tasks", catalog=catalog)
    assert snap_compare(app, terminal_size=(80, 24), run_before=settled_monitor("finished", "3"))


def test_monitor_of_a_failed_run(snap_compare, runs_dir: Path, catalog):
    app = MindApp(runs_dir=runs_dir, attach=runs_dir / "failed-3tasks", catalog=catalog)
    assert snap_compare(app, terminal_size=(80, 24), run_before=settled_monitor("failed"))


@pytest.mark.parametrize("size", SIZES)
def test_runs_screen(snap_compare, runs_dir: Path, catalog, size):
    app = MindApp(runs_dir=runs_dir, catalog=catalog)
    assert snap_compare(app, terminal_size=size, run_before=runs_ready)


def test_runs_screen_with_a_sweep(snap_compare, runs_dir: Path, catalog):
    """A sweep's row expanded to its trials: recorded runs copied in as one finished, one
    failed and one interrupted trial; one training now, for 60 s so far; one not started."""
    import shutil

    from mind_core.rundir import CHECKPOINT_DIR, RESUME_CHECKPOINT, task_checkpoint
    from mind_core.sweep.trial import write_error

    beta = runs_dir / "beta"
    trials, _ = write_sweep(beta, seeds="0,1,2,3,4")  # created after the recorded runs
    recorded = ("finished-3tasks", "failed-3tasks", "interrupted-4tasks")
    for trial, run in zip(trials[:3], recorded, strict=True):
        shutil.copytree(runs_dir / run, beta / trial.name)
    # A sweep counts a trial finished only with its last task's checkpoint.
    (beta / trials[0].name / CHECKPOINT_DIR).mkdir()
    (beta / trials[0].name / CHECKPOINT_DIR / task_checkpoint(2)).write_bytes(b"")
    write_error(beta / trials[1].name, "Traceback ...\nRuntimeError: the fake backend failed\n")
    (beta / trials[2].name / CHECKPOINT_DIR).mkdir()
    (beta / trials[2].name / CHECKPOINT_DIR / RESUME_CHECKPOINT).write_bytes(b"")
    start_running(beta / trials[3].name, 3, started=1_700_000_600.0, trained=60.0)

    async def run_before(pilot):
        await pilot.press("f2")
        await wait_for(pilot, lambda: pilot.app.screen.query(DataTable)
                       and pilot.app.screen.query_one(DataTable).row_count == 5)
        await pilot.press("enter")  # the cursor starts on the sweep's row
        await wait_for(pilot, lambda: pilot.app.screen.query_one(DataTable).row_count == 10)
        await pilot.pause(0.1)

    app = MindApp(runs_dir=runs_dir, catalog=catalog)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_compare_screen(snap_compare, runs_dir: Path, catalog):
    async def run_before(pilot):
        await runs_ready(pilot)
        pilot.app.push_screen(CompareScreen(runs_dir / "finished-3tasks",
                                            runs_dir / "interrupted-4tasks"))
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, CompareScreen)
                       and pilot.app.screen.query("#compare-table")
                       and "loading" not in str(pilot.app.screen.query_one("#compare-table")
                                                .content))

    app = MindApp(runs_dir=runs_dir, catalog=catalog)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


@pytest.mark.parametrize("tab", ["2", "4"], ids=["accuracy", "ownership"])
def test_monitor_in_the_light_theme(snap_compare, runs_dir: Path, catalog, tab):
    async def run_before(pilot):
        pilot.app.theme = "textual-light"
        await settled_monitor("finished", tab)(pilot)

    app = MindApp(runs_dir=runs_dir, attach=runs_dir / "finished-3tasks", catalog=catalog)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_compare_screen_with_long_run_names(snap_compare, runs_dir: Path, catalog):
    """Names as long as `mind run` gives: they fold, the difference column stays on screen."""
    import shutil

    first = runs_dir / "demo-fmnist-mini-20261127-101500"
    second = runs_dir / "cifar100-resnet32-torch-20261127-103000"
    shutil.copytree(runs_dir / "finished-3tasks", first)
    shutil.copytree(runs_dir / "interrupted-4tasks", second)

    async def run_before(pilot):
        pilot.app.push_screen(CompareScreen(first, second))
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, CompareScreen)
                       and pilot.app.screen.query("#compare-table")
                       and "loading" not in str(pilot.app.screen.query_one("#compare-table")
                                                .content))

    app = MindApp(runs_dir=runs_dir, catalog=catalog)
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)
