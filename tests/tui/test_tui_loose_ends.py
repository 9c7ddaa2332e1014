"""The TUI's loose ends of issue 25: f3 opens the launch form from anywhere (f2 the runs
list), `mind sweep`'s sweeps/ is listed beside runs/, a sweep's row shows its mean TAg, the
runs list fits 100 columns whatever the names, the compare screen's difference is the second
run's shown number minus the first's, and counts are pluralised."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from textual.widgets import DataTable

from tests.tui.test_tui_runs import rows, runs_screen
from tests.tui.tui_helpers import drive, plain, rendered, wait_for, write_sweep
from tui.app import MindApp
from tui.cli import parse_args
from tui.format import date, event_line
from tui.rundir import RunSummary, summarize
from tui.screens.compare import RunReport, results_table
from tui.screens.launch import LaunchScreen
from tui.screens.monitor import MonitorScreen
from tui.screens.runs import RunsScreen


def test_f3_opens_the_launch_form_from_a_monitor_and_from_the_runs_list(runs_dir, catalog):
    app = MindApp(runs_dir=runs_dir, catalog=catalog)

    async def scenario(pilot):
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen))
        # What a launch leaves: its monitor on top of the launch form.
        app.push_screen(MonitorScreen(runs_dir / "finished-3tasks"))
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen))
        app.push_screen(MonitorScreen(runs_dir / "finished-3tasks"))
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("f3")  # not back to the launched run's monitor
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen))
        await pilot.pause(0.1)
        assert isinstance(app.screen, LaunchScreen)

    drive(app, scenario)


def test_f2_from_an_attached_monitor_shows_the_runs_list(runs_dir, catalog):
    app = MindApp(runs_dir=runs_dir, attach=runs_dir / "finished-3tasks", catalog=catalog)

    async def scenario(pilot):
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))

    drive(app, scenario)


def test_sweeps_are_listed_beside_the_runs_with_their_mean_tag(runs_dir, catalog):
    assert parse_args([]).sweeps == "sweeps"  # mind sweep's own default --out
    sweep = Path("sweeps") / "beta"
    trials, _ = write_sweep(sweep, seeds="0,1,2")
    for trial, run in zip(trials, ("finished-3tasks", "failed-3tasks"), strict=False):
        shutil.copytree(runs_dir / run, sweep / trial.name)
    # The finished trial's last checkpoint: a sweep counts a trial finished only with it.
    (sweep / trials[0].name / "checkpoint").mkdir()
    (sweep / trials[0].name / "checkpoint" / "task-2.safetensors").write_bytes(b"")
    finished = summarize(sweep / trials[0].name)
    app = MindApp(runs_dir=runs_dir, catalog=catalog)

    async def scenario(pilot):
        screen = await runs_screen(pilot, app)
        await wait_for(pilot, lambda: "beta" in rows(screen))
        assert plain(screen.query_one("#runs-title")) == "Runs in runs and sweeps"
        row = rows(screen)["beta"]
        assert row[2] == "1/3 done"
        assert row[6:8] == [f"{100 * finished.tag:.1f}", f"{100 * finished.taw:.1f}"]
        screen.query_one(DataTable).move_cursor(row=list(rows(screen)).index("beta"))
        await pilot.pause()
        assert f"mean TAg {100 * finished.tag:.1f} % of the finished" in " ".join(
            plain(screen.query_one("#runs-hint")).split())

    drive(app, scenario)


def test_the_runs_list_fits_100_columns_with_long_names(runs_dir, catalog):
    long = "demo-fmnist-mini-packnet-seed2-distill.beta=5-teacher.epochs=30-20261127-101500"
    shutil.copytree(runs_dir / "finished-3tasks", runs_dir / long)
    app = MindApp(runs_dir=runs_dir, catalog=catalog)

    async def scenario(pilot):
        screen = await runs_screen(pilot, app)
        await wait_for(pilot, lambda: len(rows(screen)) == 5)
        await pilot.pause(0.1)
        table = screen.query_one(DataTable)
        assert table.virtual_size.width <= table.scrollable_content_region.width
        shown = next(name for name in rows(screen) if name.startswith("demo-"))
        head, tail = shown.split("…")  # both ends kept: runs differ at either
        assert long.startswith(head) and long.endswith(tail) and len(tail) >= 10
        assert all(cells[1] in ("finished-3tasks", "interrupted-4tasks", "failed-3tasks",
                                "crashed-3tasks", shown) for cells in rows(screen).values())
        assert all(cells[-1] == "2023-11-14" for cells in rows(screen).values())
        table.move_cursor(row=list(rows(screen)).index(shown))
        await pilot.pause()
        assert plain(screen.query_one("#runs-hint")).replace("\n", "").startswith(long)
        await pilot.resize_terminal(170, 30)  # wide enough for the name: it is shown whole
        await wait_for(pilot, lambda: long in rows(screen))

    drive(app, scenario, size=(100, 30))


def test_the_difference_is_the_second_shown_number_minus_the_first():
    run = RunSummary(path=Path("a"), name="a", status="finished", backend="fake",
                     dataset="synthetic", variant="mind", tasks=2, tasks_done=2, tag=None,
                     taw=None, routing=None, started=None)
    first = RunReport(summary=replace(run, tag=0.63549, taw=0.9))
    second = RunReport(summary=replace(run, name="b", tag=0.76954, taw=0.8))
    text = rendered(results_table(first, second), 100)
    tag = next(line for line in text.splitlines() if line.startswith("TAg %"))
    assert tag.split()[2:] == ["63.5", "77.0", "+13.5"]  # not +13.4, the unrounded gap
    taw = next(line for line in text.splitlines() if line.startswith("TAw %"))
    assert taw.split()[2:] == ["90.0", "80.0", "-10.0"]


def test_dates_leave_out_the_year_only_within_it():
    now = 1_764_000_000.0  # 2025-11-24
    assert date(now - 86_400, now)[:5] == "11-23" and len(date(now - 86_400, now)) == 11
    assert date(now - 400 * 86_400, now) == "2024-10-20"


def test_counts_are_pluralised():
    assert event_line({"type": "phase_started", "time": 0, "task": 0, "phase": "distill",
                       "epochs": 1}, 0).endswith("task 1: distill phase, 1 epoch")
    assert event_line({"type": "phase_started", "time": 0, "task": 0, "phase": "distill",
                       "epochs": 2}, 0).endswith("distill phase, 2 epochs")
    assert "· 1 task ·" in event_line({"type": "run_started", "time": 0, "tasks": 1}, 0)
