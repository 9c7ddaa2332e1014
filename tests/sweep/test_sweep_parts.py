"""The sweep's parts without Ray: the grid and its trial names, the ETA, the summary's
numbers, a trial's state on disk, plots without matplotlib, `mind run --threads`."""

from __future__ import annotations

import json
import os
import sys

import pytest

from mind_core.cli import main
from mind_core.config import ConfigError
from mind_core.sweep.grid import (
    NAME_LIMIT,
    expand,
    grid_difference,
    parse_grid,
    split_values,
)
from mind_core.sweep.progress import eta_seconds
from mind_core.sweep.summary import mean_std, summary_md, write_plots
from mind_core.sweep.trial import status_on_disk, training_seconds

METHODS = {"mind": {}, "packnet": {"variant": "packnet"}, "no_distill": {"distillation.beta": 0}}


def test_values_split_at_commas_outside_brackets():
    assert split_values("1,5") == ["1", "5"]
    assert split_values("[2,4],[3]") == ["[2,4]", "[3]"]
    assert split_values(" a , b ") == ["a", "b"]


def test_the_grid_expands_in_order_with_readable_unique_names():
    grid = parse_grid("smoke", "synthetic,npz:/data/x.npz", "mind,packnet", "0,1",
                      ["distill.beta=1,5", "teacher.milestones=[1],[]"])
    trials = expand(grid, METHODS)
    assert len(trials) == 2 * 2 * 2 * 2 * 2
    first = trials[0]
    assert first.name == "smoke-synthetic-mind-seed0-distill.beta=1-teacher.milestones=_1"
    assert trials[1].seed == 1 and trials[1].sets == first.sets  # seeds vary fastest
    assert len({t.name for t in trials}) == len(trials)
    assert all(t.config.name == t.name for t in trials)
    packnet = next(t for t in trials if t.method == "packnet")
    assert packnet.config.variant == "packnet" and packnet.config.distillation.beta == 1.0
    npz = next(t for t in trials if t.dataset.startswith("npz"))
    assert npz.name.startswith("smoke-npz-x.npz-") and npz.config.dataset == "npz:/data/x.npz"


def test_grid_settings_override_the_methods_and_the_preset():
    (trial,) = expand(parse_grid("smoke", methods="no_distill", sets=["tasks=2"]), METHODS)
    assert trial.config.distillation.beta == 0 and trial.config.tasks == 2
    assert trial.seed == 0 and trial.dataset == "synthetic"  # the preset's own


def test_names_too_long_or_made_equal_get_a_hash_of_the_settings():
    long = parse_grid("smoke", sets=[f"inference.temperature={'1' * 200}.5"])
    (trial,) = expand(long, METHODS)
    assert len(trial.name) <= NAME_LIMIT and "-" in trial.name[-9:]
    same = expand(parse_grid("smoke", datasets="npz:/a/x.npz,npz:/b/x.npz"), METHODS)
    assert len({t.name for t in same}) == 2
    assert all(t.name.startswith("smoke-npz-x.npz-mind-seed0-") for t in same)


def test_a_method_setting_that_fails_is_named_by_the_method():
    with pytest.raises(ConfigError, match=r"^--methods bad: bn: must be one of"):
        expand(parse_grid("smoke", methods="bad"), {"bad": {"bn": "nope"}})


def test_eta_from_finished_durations():
    assert eta_seconds([], 3, [1.0], 2) is None
    assert eta_seconds([], 0, [], 2) == 0.0
    # mean 10 s: 4 pending + one running for 4 s (6 left) over 2 lanes = 23 s
    assert eta_seconds([8.0, 12.0], 4, [4.0], 2) == pytest.approx(23.0)
    assert eta_seconds([10.0], 0, [2.0], 2) == pytest.approx(8.0)  # the last one running


def test_mean_and_sample_std():
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(2 ** 0.5))
    assert mean_std([4.0]) == (4.0, None)


def row(seed, status="finished", tag=0.5, method="mind"):
    return {"trial": f"t{seed}", "preset": "smoke", "dataset": "synthetic", "method": method,
            "seed": seed, "status": status, "tag": tag, "taw": 0.9, "routing": 0.6,
            "forgetting_tag": 0.1, "seconds": 2.0, "error": "Boom: x" if status == "failed"
            else None}


def test_summary_md_averages_finished_seeds_and_lists_failures():
    rows = [row(0, tag=0.5), row(1, tag=0.7), row(2, status="failed", tag=None),
            row(0, method="packnet", tag=0.4)]
    md = summary_md(rows, [], {"id": "abcdef123", "command": "mind sweep --seeds 0,1,2"})
    assert "| smoke | synthetic | mind | 2/3 | 60.0 ± 14.1 | 90.0 ± 0.0 |" in md
    assert "| smoke | synthetic | packnet | 1/1 | 40.0 | 90.0 |" in md
    assert "- `t2`: Boom: x" in md and "4 trials: 3 finished, 1 failed" in md


def test_without_matplotlib_the_plots_are_skipped_with_one_note(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    written, notes = write_plots(tmp_path, [{**row(0), "curve_tag": [1.0, 0.5]}], [])
    assert written == [] and not (tmp_path / "plots").exists()
    assert len(notes) == 1 and "pip install -e '.[report]'" in notes[0]


def test_a_trials_state_and_seconds_come_from_its_directory(tmp_path):
    run = tmp_path / "t"
    assert status_on_disk(run, 2) == "pending" and training_seconds(run) is None
    run.mkdir()
    events = [{"type": "run_started", "time": 100.0, "resumed": False},
              {"type": "epoch_ended", "time": 103.5},
              {"type": "run_failed", "time": 104.0},
              {"type": "run_started", "time": 500.0, "resumed": True},
              {"type": "run_finished", "time": 502.0}]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    assert training_seconds(run) == 6.0  # 4 s, then 2 s: not the pause between
    (run / "checkpoint").mkdir()
    (run / "checkpoint" / "resume.safetensors").write_bytes(b"")
    assert status_on_disk(run, 2) == "interrupted"
    (run / "error.log").write_text("Traceback...\nRuntimeError: x\n")
    assert status_on_disk(run, 2) == "failed"
    (run / "metrics.json").write_text('{"tasks_done": 2}')
    assert status_on_disk(run, 2) == "failed"  # its last task's checkpoint is not there
    (run / "checkpoint" / "task-1.safetensors").write_bytes(b"")
    assert status_on_disk(run, 2) == "finished"


@pytest.mark.parametrize("flag, expected", [([], None), (["--threads", "1"], 1)])
def test_mind_run_passes_its_threads_to_the_backend(tmp_path, monkeypatch, flag, expected):
    import mind_core.runner as runner

    given = []
    real = runner.get_backend

    def spy(name, device="auto", threads=None, *rest):
        given.append(threads)
        return real(name, device, threads, *rest)

    monkeypatch.setattr(runner, "get_backend", spy)
    assert main(["run", "--preset", "smoke", "--backend", "tests.fakes:FakeBackend",
                 "--out", str(tmp_path / "run"), "--quiet", *flag]) == 0
    assert given == [expected or len(os.sched_getaffinity(0))]


def test_a_trial_not_started_this_time_keeps_the_state_its_directory_shows(tmp_path):
    from mind_core.sweep.summary import trial_row

    (trial,) = expand(parse_grid("smoke"), METHODS)
    run = tmp_path / trial.name
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "resume.safetensors").write_bytes(b"")
    assert trial_row(trial, tmp_path, {"status": "pending"})["status"] == "interrupted"
    failed = trial_row(trial, tmp_path, {"status": "failed", "error": "Boom: now"})
    assert failed["status"] == "failed" and failed["error"] == "Boom: now"


def test_a_sweep_json_nested_too_deep_reads_as_unreadable(tmp_path):
    from mind_core.sweep.grid import SWEEP_JSON, read_sweep

    (tmp_path / SWEEP_JSON).write_text("[" * 100_000 + "]" * 100_000)
    assert read_sweep(tmp_path) is None


@pytest.mark.parametrize("recorded, now, differ", [
    ([0, 1], [0, 1, 2], []),        # grown: the same sweep, new trials only
    ([0, 1], [2, 0, 1], []),
    ([0, 1], [0], ["seeds"]),       # a dropped seed would leave results no grid names
    ([0, 1], [2], ["seeds"]),
    ([], [0], ["seeds"]),           # the presets' own seeds are no list to grow
])
def test_seeds_may_grow_but_not_change(recorded, now, differ):
    grid = {"presets": ["smoke"], "sets": {}}
    assert grid_difference({**grid, "seeds": recorded}, {**grid, "seeds": now}) == differ
    assert grid_difference({**grid, "seeds": recorded},
                           {"presets": ["demo"], "sets": {}, "seeds": now}) == \
        ["presets", *differ]
