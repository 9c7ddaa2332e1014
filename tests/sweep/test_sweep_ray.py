"""`mind sweep` end to end on one local Ray (2 CPUs) with numpy fake backends: trials, the
summary, skipping and resuming on a rerun, failures, stopping."""

from __future__ import annotations

import json

from mind_core.cli import main
from mind_core.config import resolve_config
from mind_core.methods import method_settings
from mind_core.runner import start_run
from mind_core.sweep.driver import Resources, run_sweep
from mind_core.sweep.grid import parse_grid
from mind_core.sweep.progress import Progress
from mind_core.sweep.summary import mean_std
from mind_core.sweep.trial import is_finished
from tests.sweep.helpers import (
    FAKES,
    assert_summary_matches_metrics,
    metrics,
    resumed_flags,
    summary_rows,
)

GRID = ["--presets", "smoke", "--seeds", "0,1", "--set", "distill.beta=1,5"]
NAMES = [f"smoke-synthetic-mind-seed{s}-distill.beta={b}" for b in (1, 5) for s in (0, 1)]


def sweep(out, backend, *grid):
    return main(["sweep", *(grid or GRID), "--backend", f"{FAKES}:{backend}", "--out", str(out)])


def test_two_seeds_by_two_values_run_four_trials_summarised_from_their_metrics(
        ray_session, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert sweep(out, "ThreadsBackend") == 0
    captured = capsys.readouterr()
    assert "4/4 done" in captured.err and "4 trials: 4 finished, 0 failed" in captured.out
    assert sorted(p.name for p in out.iterdir() if (p / "config.json").exists()) == sorted(NAMES)
    for name in NAMES:
        saved = json.loads((out / name / "config.json").read_text())
        seed, beta = int(name.split("seed")[1][0]), float(name.rsplit("=", 1)[1])
        assert saved["config"]["seed"] == seed and saved["config"]["name"] == name
        assert saved["config"]["distillation"]["beta"] == beta
        assert saved["config"]["device"] == "cpu"  # no GPU share: not device auto
        assert saved["versions"]["threads"] == "1"  # --cpus-per-trial 1
        assert resumed_flags(out / name) == [False]
    rows = assert_summary_matches_metrics(out)
    assert list(rows) == NAMES  # the grid's order, seeds fastest
    assert {r["status"] for r in rows.values()} == {"finished"}
    assert {r["distill.beta"] for r in rows.values()} == {"1", "5"}
    record = json.loads((out / "sweep.json").read_text())
    assert record["grid"]["seeds"] == [0, 1] and record["grid"]["sets"] == {
        "distill.beta": ["1", "5"]}
    assert record["grid"]["methods"] == {"mind": method_settings("mind")}
    assert [t["name"] for t in record["trials"]] == NAMES
    # summary.md: mean and sample std over the two seeds of each configuration.
    md = (out / "summary.md").read_text()
    for beta in (1, 5):
        tags = [metrics(out / n)["final"]["tag"] * 100 for n in NAMES if n.endswith(f"={beta}")]
        mean, std = mean_std(tags)
        assert f"| smoke | synthetic | mind | {beta} | 2/2 | {mean:.1f} ± {std:.1f} |" in md
        assert (out / "plots" / f"tag-smoke-synthetic-distill.beta={beta}.png").stat().st_size


def test_an_interrupted_trial_resumes_on_a_rerun_and_finished_ones_are_skipped(
        ray_session, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert sweep(out, "StopOnceBackend") == 130  # one trial stopped: the sweep is unfinished
    assert "run the same command" in capsys.readouterr().err
    rows = summary_rows(out)
    stopped = [n for n, r in rows.items() if r["status"] == "interrupted"]
    assert len(stopped) == 1 and sum(r["status"] == "finished" for r in rows.values()) == 3
    assert (out / stopped[0] / "checkpoint" / "resume.safetensors").is_file()
    finished_events = {n: (out / n / "events.jsonl").read_bytes() for n in NAMES
                       if n not in stopped}

    assert sweep(out, "StopOnceBackend") == 0
    for name, before in finished_events.items():  # skipped: not even started again
        assert (out / name / "events.jsonl").read_bytes() == before
        assert resumed_flags(out / name) == [False]
    assert resumed_flags(out / stopped[0]) == [False, True]
    rows = assert_summary_matches_metrics(out)
    assert {r["status"] for r in rows.values()} == {"finished"}
    # The resumed trial ends with the numbers of an uninterrupted run of its config.
    saved = json.loads((out / stopped[0] / "config.json").read_text())["config"]
    straight = start_run(resolve_config(base=saved), tmp_path / "straight")
    # The thread pools each process ran with are recorded, not results: the trial had its
    # share of the CPUs, the straight run the framework's default.
    resumed = metrics(out / stopped[0])
    assert resumed.pop("threads") == {"intra_op": 1}
    straight.pop("threads")
    assert resumed == straight


def test_a_failing_trial_is_recorded_and_the_others_finish(ray_session, tmp_path, capsys):
    out = tmp_path / "sweep"
    code = sweep(out, "FailOnBetaBackend", "--presets", "smoke", "--seeds", "0",
                 "--set", "distill.beta=1,5")
    printed = capsys.readouterr().out
    assert code == 1
    failed, fine = "smoke-synthetic-mind-seed0-distill.beta=5", \
        "smoke-synthetic-mind-seed0-distill.beta=1"
    log = (out / failed / "error.log").read_text()
    assert "Traceback" in log and log.strip().endswith("RuntimeError: simulated failure at beta 5")
    assert f"failed: {failed}: RuntimeError: simulated failure at beta 5" in printed
    rows = assert_summary_matches_metrics(out)
    assert rows[failed]["status"] == "failed"
    assert rows[failed]["error"] == "RuntimeError: simulated failure at beta 5"
    assert rows[fine]["status"] == "finished" and metrics(out / fine)["tasks_done"] == 5
    assert "simulated failure at beta 5" in (out / "summary.md").read_text()


def test_added_seeds_run_only_the_new_trials_and_other_changes_are_refused(
        ray_session, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert sweep(out, "ThreadsBackend", "--presets", "smoke", "--seeds", "0") == 0
    first = out / "smoke-synthetic-mind-seed0"
    before = (first / "events.jsonl").read_bytes()
    assert sweep(out, "ThreadsBackend", "--presets", "smoke", "--seeds", "0,1") == 0
    assert (first / "events.jsonl").read_bytes() == before  # skipped, not run again
    rows = assert_summary_matches_metrics(out)
    assert list(rows) == ["smoke-synthetic-mind-seed0", "smoke-synthetic-mind-seed1"]
    assert {r["status"] for r in rows.values()} == {"finished"}
    assert json.loads((out / "sweep.json").read_text())["grid"]["seeds"] == [0, 1]
    capsys.readouterr()
    # Dropping a seed, or changing another axis, would mix results: refused.
    assert sweep(out, "ThreadsBackend", "--presets", "smoke", "--seeds", "2") == 2
    assert "records other seeds" in capsys.readouterr().err
    assert sweep(out, "ThreadsBackend", "--presets", "smoke", "--seeds", "0,1,2",
                 "--set", "distill.beta=5") == 2
    assert "records other sets" in capsys.readouterr().err
    assert not (out / "smoke-synthetic-mind-seed2").exists()


def test_a_stopped_sweep_leaves_every_running_trial_resumable(ray_session, tmp_path):
    """What Ctrl-C does: running trials checkpoint and stop, queued ones do not start; the
    same sweep run again finishes them all, resuming those that had started."""
    out = tmp_path / "sweep"
    grid = parse_grid("smoke", seeds="0,1,2", backend=f"{FAKES}:SlowBackend")
    names = [f"smoke-synthetic-mind-seed{s}" for s in range(3)]

    def trained_an_epoch() -> bool:  # both running trials (two slots) are mid-run
        return all((out / n / "events.jsonl").exists()
                   and b"epoch_ended" in (out / n / "events.jsonl").read_bytes()
                   for n in names[:2])

    quiet = Progress(0, quiet=True)
    result = run_sweep(grid, out, Resources(), should_stop=trained_an_epoch, progress=quiet)
    assert result.interrupted and not (out / "STOP").exists()
    statuses = {r["trial"]: r["status"] for r in result.rows}
    assert statuses == {names[0]: "interrupted", names[1]: "interrupted", names[2]: "pending"}
    assert not (out / names[2]).exists()
    for name in names[:2]:
        assert (out / name / "checkpoint" / "resume.safetensors").is_file()
        assert not is_finished(out / name, 5)

    result = run_sweep(grid, out, Resources(), progress=quiet)
    assert not result.interrupted and {r["status"] for r in result.rows} == {"finished"}
    assert [resumed_flags(out / n) for n in names] == [[False, True], [False, True], [False]]
    assert_summary_matches_metrics(out)


def test_the_sweep_speed_benchmark_measures_a_sweep(ray_session, tmp_path):
    from benchmarks.sweep_speed import measure_sweep

    measured = measure_sweep(tmp_path, f"{FAKES}:ThreadsBackend", epochs=1, trials=2)
    assert measured["ray_init_s"] == 0 and measured["ray_shutdown_s"] == 0  # Ray was running
    assert len(measured["seconds_inside_tasks"]) == 2
    assert 0 <= measured["ray_task_overhead_s"] == measured["ray_overhead_per_trial_s"]
    assert measured["sweep_s"] >= max(measured["seconds_inside_tasks"])


def test_an_aborted_sweep_kills_its_trials_and_a_rerun_resumes_them(ray_session, tmp_path):
    """The second Ctrl-C (a KeyboardInterrupt in the driver): running trials are killed at
    once, and resume from their last checkpoint when the sweep runs again."""
    out = tmp_path / "sweep"
    grid = parse_grid("smoke", seeds="0,1", backend=f"{FAKES}:SlowBackend")
    names = [f"smoke-synthetic-mind-seed{s}" for s in range(2)]

    def second_ctrl_c() -> bool:
        if all((out / n / "events.jsonl").exists()
               and b"epoch_ended" in (out / n / "events.jsonl").read_bytes() for n in names):
            raise KeyboardInterrupt
        return False

    quiet = Progress(0, quiet=True)
    result = run_sweep(grid, out, Resources(), should_stop=second_ctrl_c, progress=quiet)
    assert result.interrupted
    assert {r["status"] for r in result.rows} == {"interrupted"}
    for name in names:  # killed: no run_failed event was written
        assert b"run_failed" not in (out / name / "events.jsonl").read_bytes()
        assert not is_finished(out / name, 5)

    result = run_sweep(grid, out, Resources(), progress=quiet)
    assert {r["status"] for r in result.rows} == {"finished"}
    assert [resumed_flags(out / n) for n in names] == [[False, True], [False, True]]
    assert_summary_matches_metrics(out)
