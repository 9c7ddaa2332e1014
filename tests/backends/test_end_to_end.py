"""A real backend through the whole loop: the `mind` command, interrupt + resume, eval."""

import json
import os

import pytest

from mind_core.cli import main
from mind_core.config import resolve_config
from mind_core.engine import Interrupted
from mind_core.runner import evaluate_run, resume_run, start_run
from tests.fakes import StopAfter

NAME = os.environ.get("MIND_TEST_BACKEND", "torch")
SMOKE = ["tasks=5", f"backend={NAME}", "device=cpu", "teacher.epochs=4", "distill.epochs=4",
         "teacher.batch_size=32", "distill.batch_size=32"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, backend):
    run_dir = tmp_path_factory.mktemp("e2e") / "run"
    metrics = start_run(resolve_config("smoke", SMOKE), run_dir)
    return run_dir, metrics


def test_smoke_run_through_the_cli_writes_the_documented_files(tmp_path, capsys, backend):
    out = tmp_path / "run"
    code = main(["run", "--preset", "smoke", "--backend", NAME, "--device", "cpu",
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "Accuracy matrix (TAG)" in printed and f"Run directory: {out}" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tasks_done"] == 5
    assert 0.0 <= metrics["final"]["tag"] <= metrics["final"]["taw"] <= 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["versions"]["backend"] == backend.name
    assert len(list((out / "checkpoint").glob("task-*.safetensors"))) == 5


def test_learns_the_synthetic_tasks_better_than_chance(finished_run):
    _, metrics = finished_run
    assert metrics["final"]["taw"] > 0.75  # 2 classes per task: chance is 0.5


def test_eval_reproduces_the_runs_own_metrics(finished_run):
    run_dir, metrics = finished_run
    again = evaluate_run(run_dir)
    assert again["acc_matrix_taw"] == metrics["acc_matrix_taw"]
    assert again["acc_matrix_tag"] == metrics["acc_matrix_tag"]
    assert again["final"] == metrics["final"]


@pytest.mark.parametrize("polls", [7, 40])
def test_resume_after_interrupt_gives_identical_metrics(tmp_path, finished_run, backend, polls):
    if "deterministic" not in backend.capabilities:
        pytest.skip("bit-identical resume is promised on deterministic (CPU) backends only")
    _, reference = finished_run
    run_dir = tmp_path / "run"
    with pytest.raises(Interrupted):
        start_run(resolve_config("smoke", SMOKE), run_dir, should_stop=StopAfter(polls))
    assert resume_run(run_dir) == reference
