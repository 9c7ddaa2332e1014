"""Sweeps on the runs screen: a sweep directory is one group row (trials done / running /
failed / total, an ETA) that expands to its trials, which open like any run."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from mind_core.sweep.grid import read_sweep
from tests.tui.test_tui_runs import rows, runs_screen
from tests.tui.tui_helpers import (
    drive,
    plain,
    run_sweep_trial,
    start_running,
    wait_for,
    write_sweep,
)
from tui.app import MindApp
from tui.rundir import RunSummary, summarize
from tui.screens.monitor import MonitorScreen
from tui.screens.runs import TRIAL_INDENT, RunsScreen
from tui.sweeps import SweepReader, SweepSummary, recorded_trials, sweep_eta, trial_status


@pytest.fixture
def sweep(runs_dir: Path) -> Path:
    """runs/beta: one trial finished, one running, one failed, one not started."""
    beta = runs_dir / "beta"
    trials, record = write_sweep(beta, seeds="0,1", sets=("tasks=2,3",))
    finished, running, failed, _pending = trials
    assert run_sweep_trial(beta, finished, record)["status"] == "finished"
    # 3 tasks do not divide the synthetic set's 10 classes: it fails loading its data.
    assert run_sweep_trial(beta, failed, record)["status"] == "failed"
    start_running(beta / running.name, 2, started=1_700_000_000.0, trained=1.0)
    return beta


def test_a_sweep_is_one_row_that_expands_to_its_trials(runs_dir: Path, sweep: Path, catalog):
    names = [p.name for p in sorted(sweep.iterdir()) if p.is_dir()]
    trials = [t["name"] for t in recorded_trials(read_sweep(sweep))]
    app = MindApp(runs_dir=runs_dir, catalog=catalog)

    async def scenario(pilot):
        screen = await runs_screen(pilot, app)
        await wait_for(pilot, lambda: "beta" in rows(screen))
        row = rows(screen)["beta"]
        assert row[:5] == ["▸", "beta", "1/4 done", "1 running", "1 failed"]
        assert row[5].startswith("ETA ")
        finished = summarize(sweep / trials[0])  # the one finished trial: its TAg is the mean
        assert row[6:8] == [f"{100 * finished.tag:.1f}", f"{100 * finished.taw:.1f}"]
        assert not set(names) & {n.strip() for n in rows(screen)}  # collapsed
        assert len(rows(screen)) == 5  # the four recorded runs and the sweep
        table = screen.query_one(DataTable)
        table.move_cursor(row=list(rows(screen)).index("beta"))
        await pilot.pause()
        assert plain(screen.query_one("#runs-hint")).startswith(
            "beta: 1/4 done, 1 running, 1 failed, ETA ")
        assert "shows its 4 trials (smoke-synthetic-mind-…)" in " ".join(
            plain(screen.query_one("#runs-hint")).split())
        await pilot.press("enter")
        shown = rows(screen)
        assert shown["beta"][0] == "▾"
        # The grid's order, under the sweep, named without what every trial's name shares.
        short = [TRIAL_INDENT + "…" + t.removeprefix("smoke-synthetic-mind-") for t in trials]
        assert [n for n in shown if n.startswith(TRIAL_INDENT)] == short
        assert [shown[n][2] for n in short] == ["finished", "running", "failed", "pending"]
        failed = list(shown).index(short[2])
        table.move_cursor(row=failed)
        await pilot.pause()
        assert plain(screen.query_one("#runs-hint")).startswith(
            f"{trials[2]}: ConfigError: tasks: 10 classes of synthetic do not split")
        table.move_cursor(row=list(shown).index(short[0]))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        assert app.screen.run_dir == sweep / trials[0]
        await wait_for(pilot, lambda: app.screen.state.status == "finished")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert short[0] in rows(screen)  # still expanded
        table.move_cursor(row=list(rows(screen)).index("beta"))
        await pilot.press("enter")
        assert len(rows(screen)) == 5 and rows(screen)["beta"][0] == "▸"

    drive(app, scenario)


def test_two_trials_of_a_sweep_are_marked_like_runs(runs_dir: Path, sweep: Path, catalog):
    from tui.screens.compare import CompareScreen

    app = MindApp(runs_dir=runs_dir, catalog=catalog)

    async def scenario(pilot):
        screen = await runs_screen(pilot, app)
        await wait_for(pilot, lambda: "beta" in rows(screen))
        table = screen.query_one(DataTable)
        table.move_cursor(row=list(rows(screen)).index("beta"))
        await pilot.press("space")  # a sweep's row is no run: nothing is marked
        assert screen.marked == []
        await pilot.press("enter")
        for name in ("finished-3tasks", TRIAL_INDENT + "…seed0-tasks=2"):
            table.move_cursor(row=list(rows(screen)).index(name))
            await pilot.press("space")
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert app.screen.second == sweep / "smoke-synthetic-mind-seed0-tasks=2"

    drive(app, scenario)


def summary(path: Path, status: str, tasks: int = 2) -> RunSummary:
    return RunSummary(path=path, name=path.name, status=status, backend="fake",
                      dataset="synthetic", variant="mind", tasks=tasks, tasks_done=0, tag=None,
                      taw=None, routing=None, started=None)


def test_the_eta_is_the_sweeps_own_from_its_finished_trials(tmp_path: Path):
    done = [summary(tmp_path / f"done{i}", "finished") for i in range(2)]
    running = [summary(tmp_path / "run", "running")]
    left = [summary(tmp_path / "later", "pending"), summary(tmp_path / "stopped", "interrupted")]
    seconds = {tmp_path / "done0": 8.0, tmp_path / "done1": 12.0, tmp_path / "run": 4.0}.get
    # mean 10 s: two waiting trials and one running for 4 s (6 left), one at a time = 26 s
    assert sweep_eta((*done, *running, *left), seconds) == pytest.approx(26.0)
    failed = summary(tmp_path / "failed", "failed")
    assert sweep_eta((*done, *running, failed), seconds) == pytest.approx(6.0)
    assert sweep_eta((*done, *left), seconds) is None  # nothing runs: a stopped sweep
    assert sweep_eta((*running, *left), seconds) is None  # nothing finished: no estimate


def test_a_trials_status_is_the_sweeps_and_running_is_the_runs_lists(tmp_path: Path):
    from mind_core.sweep.trial import write_error

    run = tmp_path / "trial"
    assert trial_status(run, summarize(run)) == "pending"
    start_running(run, 2, started=1_700_000_000.0, trained=1.0)
    assert trial_status(run, summarize(run)) == "running"
    write_error(run, "Traceback ...\nRuntimeError: worker died\n")  # the sweep's word wins
    assert trial_status(run, summarize(run)) == "failed"


def test_a_sweep_not_started_has_pending_trials(tmp_path: Path):
    beta = tmp_path / "beta"
    write_sweep(beta, seeds="0")
    reader = SweepReader(summarize)
    sweep = reader.read(beta)
    assert (sweep.name, len(sweep.trials), sweep.problem) == ("beta", 1, "")
    assert sweep.progress() == "0/1 done" and sweep.trials[0].status == "pending"
    assert sweep.short_name(sweep.trials[0]) == "smoke-synthetic-mind-seed0"  # nothing shared
    assert sweep.trials[0].dataset == "synthetic"  # from sweep.json, before the run says


def test_trials_are_named_without_what_every_name_shares(tmp_path: Path):
    def sweep(*names: str) -> SweepSummary:
        return SweepSummary(tmp_path, "s", tuple(summary(tmp_path / n, "pending") for n in names))

    grid = sweep("demo-fmnist-mini-mind-seed0", "demo-fmnist-mini-packnet-seed0",
                 "demo-fmnist-mini-mind-seed1")
    assert grid.shared_prefix == "demo-fmnist-mini-"  # cut at a "-", never inside a part
    assert [grid.short_name(t) for t in grid.trials] == ["…mind-seed0", "…packnet-seed0",
                                                          "…mind-seed1"]
    assert sweep("a-b", "a-b-c").shared_prefix == "a-"
    alone = sweep("demo-synthetic-mind-seed0")
    assert alone.short_name(alone.trials[0]) == "demo-synthetic-mind-seed0"
