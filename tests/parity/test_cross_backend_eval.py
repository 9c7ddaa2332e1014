"""A run trained with one backend, evaluated with the other (`mind eval --backend`)."""

import json

import pytest

from mind_core.cli import main
from mind_core.config import resolve_config
from mind_core.runner import start_run

pytest.importorskip("torch")
pytest.importorskip("tensorflow")

SETTINGS = ["tasks=5", "device=cpu", "teacher.epochs=3", "distill.epochs=3"]


@pytest.mark.parametrize("trained_with, evaluated_with", [("torch", "tf"), ("tf", "torch")])
def test_eval_with_the_other_backend_gives_the_same_accuracies(tmp_path, capsys, trained_with,
                                                               evaluated_with):
    run_dir = tmp_path / "run"
    own = start_run(resolve_config("smoke", [*SETTINGS, f"backend={trained_with}"]), run_dir)
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--backend", evaluated_with, "--json"]) == 0
    other = json.loads(capsys.readouterr().out)
    test_samples = 5 * 2 * 20  # synthetic: 20 test images per class
    tolerance = 1.0 / test_samples  # at most one sample may flip on a float32 near-tie
    for kind in ("acc_matrix_tag", "acc_matrix_taw"):
        for row_own, row_other in zip(own[kind], other[kind], strict=True):
            assert row_other == pytest.approx(row_own, abs=5 * tolerance)
    for key in ("tag", "taw", "routing"):
        assert other["final"][key] == pytest.approx(own["final"][key], abs=tolerance)


def test_a_bf16_trained_checkpoint_evaluates_alike_in_both_backends(tmp_path, capsys):
    """Checkpoints stay float32 and backend-neutral whatever the training precision: `mind
    eval` (float32) of a bf16 torch run gives the same accuracies with torch and with tf."""
    run_dir = tmp_path / "run"
    start_run(resolve_config("smoke", ["tasks=2", "device=cpu", "teacher.epochs=2",
                                       "distill.epochs=2", "backend=torch",
                                       "precision=bf16"]), run_dir)
    evaluated = {}
    for backend in ("torch", "tf"):
        capsys.readouterr()
        assert main(["eval", str(run_dir), "--backend", backend, "--json"]) == 0
        evaluated[backend] = json.loads(capsys.readouterr().out)
    tolerance = 1.0 / (2 * 2 * 20)  # one of the synthetic test samples on a near-tie
    for key in ("tag", "taw", "routing"):
        assert evaluated["tf"]["final"][key] == pytest.approx(evaluated["torch"]["final"][key],
                                                              abs=tolerance)


def test_a_label_augmented_checkpoint_evaluates_alike_in_both_backends(tmp_path, capsys):
    """The wider head of label_aug is an ordinary classifier to both backends: a rotation run
    trained with tf evaluates with torch to the same accuracies."""
    run_dir = tmp_path / "run"
    own = start_run(resolve_config("smoke", ["tasks=2", "device=cpu", "teacher.epochs=2",
                                             "distill.epochs=2", "backend=tf",
                                             "label_aug.transform=rotation"]), run_dir)
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--backend", "torch", "--json"]) == 0
    other = json.loads(capsys.readouterr().out)
    tolerance = 1.0 / (2 * 2 * 20)  # one of the synthetic test samples on a near-tie
    for key in ("tag", "taw", "routing"):
        assert other["final"][key] == pytest.approx(own["final"][key], abs=tolerance)
