"""The runs screen (status of every run, open, compare) and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from textual.widgets import DataTable

from tests.tui.tui_helpers import drive, plain, wait_for
from tui.app import MindApp
from tui.cli import main, parse_args
from tui.screens.compare import CompareScreen
from tui.screens.monitor import MonitorScreen
from tui.screens.runs import RunsScreen


def final(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["final"]


async def runs_screen(pilot, app: MindApp) -> RunsScreen:
    await pilot.press("f2")
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen)
                   and app.screen.query_one(DataTable).row_count > 0)
    return app.screen


def rows(screen: RunsScreen) -> dict[str, list[str]]:
    table = screen.query_one(DataTable)
    return {str(cells[1]): [str(c) for c in cells]
            for cells in (table.get_row_at(i) for i in range(table.row_count))}


def test_every_run_is_listed_with_status_and_results(runs_dir: Path, catalog):
    live = runs_dir / "live-run"
    live.mkdir()
    (live / "events.jsonl").write_text(json.dumps(
        {"type": "run_started", "time": 1_700_000_100.0, "backend": "torch", "dataset": "fmnist",
         "tasks": 5, "pid": os.getpid()}) + "\n")
    app = MindApp(runs_dir=runs_dir, catalog=catalog)

    async def scenario(pilot):
        screen = await runs_screen(pilot, app)
        table = rows(screen)
        status = {name: cells[2] for name, cells in table.items()}
        assert status == {"finished-3tasks": "finished", "interrupted-4tasks": "interrupted",
                          "failed-3tasks": "failed", "crashed-3tasks": "failed",
                          "live-run": "running"}
        finished = table["finished-3tasks"]
        metrics = final(runs_dir / "finished-3tasks")
        assert finished[3:8] == ["fake", "synthetic", "3/3", f"{100 * metrics['tag']:.1f}",
                                 f"{100 * metrics['taw']:.1f}"]
        assert finished[8] == "2023-11-14"  # the first run_started, in UTC (another year)
        assert list(table)[0] == "live-run"  # newest first

    drive(app, scenario)


def test_opening_a_run_shows_its_monitor_and_back_returns(runs_dir: Path, catalog):
    app = MindApp(runs_dir=runs_dir, catalog=catalog)

    async def scenario(pilot):
        screen = await runs_screen(pilot, app)
        names = list(rows(screen))
        screen.query_one(DataTable).move_cursor(row=names.index("interrupted-4tasks"))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        assert app.screen.run_dir.name == "interrupted-4tasks"
        await wait_for(pilot, lambda: app.screen.state.status == "interrupted")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))

    drive(app, scenario)


def test_two_marked_runs_are_compared_side_by_side(runs_dir: Path, catalog):
    app = MindApp(runs_dir=runs_dir, catalog=catalog)

    async def scenario(pilot):
        screen = await runs_screen(pilot, app)
        names = list(rows(screen))
        table = screen.query_one(DataTable)
        for name in ("finished-3tasks", "interrupted-4tasks"):
            table.move_cursor(row=names.index(name))
            await pilot.press("space")
        assert [p.name for p in screen.marked] == ["finished-3tasks", "interrupted-4tasks"]
        assert rows(screen)["finished-3tasks"][0] == "●"
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen)
                       and "loading" not in plain(app.screen.query_one("#compare-table")))
        text = plain(app.screen.query_one("#compare-table"))
        a, b = final(runs_dir / "finished-3tasks"), final(runs_dir / "interrupted-4tasks")
        tag_line = next(line for line in text.splitlines() if line.startswith("TAg %"))
        shown = [f"{100 * a['tag']:.1f}", f"{100 * b['tag']:.1f}"]
        # Δ = 2nd − 1st of the numbers as shown
        assert tag_line.split() == ["TAg", "%", *shown,
                                    f"{float(shown[1]) - float(shown[0]):+.1f}"]
        assert "interrupted (2/4 tasks)" in text
        settings = plain(app.screen.query_one("#compare-settings"))
        assert ["tasks", "3", "4"] in [line.split() for line in settings.splitlines()]
        assert ["inference.routing", "mahalanobis", "max_prob"] in [
            line.split() for line in settings.splitlines()]
        matrices = plain(app.screen.query_one("#b-taw"))
        assert "interrupted-4tasks: TAw %" in matrices

    drive(app, scenario)


def test_help_and_arguments():
    result = subprocess.run([sys.executable, "-m", "tui.cli", "--help"], capture_output=True,
                            text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0
    for option in ("--backend", "--runs", "--attach"):
        assert option in result.stdout
    args = parse_args(["--backend", "tf", "--runs", "elsewhere", "--attach", "runs/x"])
    assert (args.backend, args.runs, args.attach) == ("tf", "elsewhere", "runs/x")
    assert main(["--attach", str(Path(__file__).parent / "no-such-run")]) == 2


def test_the_tui_never_imports_a_framework():
    code = ("import sys, tui.app, tui.screens.launch, tui.screens.monitor; "
            "bad = [m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_runs_lock_file_is_ignored(tmp_path: Path):
    from mind_core.rundir import LOCK_FILE, RunDirLock
    from tui.rundir import list_run_dirs, summarize

    only_lock = tmp_path / "a-not-a-run"
    only_lock.mkdir()
    (only_lock / LOCK_FILE).touch()
    run = tmp_path / "b-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": {"backend": "torch", "tasks": 5}}))
    RunDirLock(run).acquire().release()  # the file a run leaves
    free = summarize(run)
    with RunDirLock(run):  # held by a live run
        assert list_run_dirs(tmp_path) == [run]
        assert summarize(run) == free
