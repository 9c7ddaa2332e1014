"""Conformance in bfloat16 (precision=bf16): every backend must pass this file too.

What must hold whatever the arithmetic (docs/precision.md): weights stay float32 and frozen
entries bit-identical after every step, BN state stays float32, logits and features reach the
core as float32, an epoch resumed from the trainer state is bit-identical, and a bf16 run
resumes to the metrics of an uninterrupted one. The conformance tests are reused as they are,
given the bf16 backend.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mind_core.cli import main
from mind_core.config import resolve_config
from mind_core.engine import Interrupted
from mind_core.runner import evaluate_run, resume_run, start_run
from tests.backends import test_conformance as conformance
from tests.backends.conformance_helpers import (
    MEAN,
    RESNET,
    SMALL,
    STD,
    images,
    needs_determinism,
    phase,
    task1_masks,
    train,
    two_subnets,
)
from tests.fakes import StopAfter

NAME = os.environ.get("MIND_TEST_BACKEND", "torch")
SMOKE = ["tasks=2", f"backend={NAME}", "device=cpu", "teacher.epochs=2", "distill.epochs=2",
         "teacher.batch_size=32", "distill.batch_size=32", "precision=bf16"]


def test_the_backend_says_it_runs_bf16(bf16_backend):
    assert bf16_backend.precision == "bf16"


def test_updates_reach_only_trainable_entries(bf16_backend):
    conformance.test_updates_reach_only_trainable_entries(bf16_backend)


@pytest.mark.parametrize("spec,epochs,outliers", [(SMALL, 3, 0.0), (RESNET, 2, 0.0),
                                                  (SMALL, 2, 1.0)],
                         ids=["small_cnn", "resnet32", "small_cnn-outliers"])
def test_full_distill_phase_keeps_frozen_entries_bit_identical(bf16_backend, spec, epochs,
                                                               outliers):
    conformance.test_full_distill_phase_keeps_frozen_entries_bit_identical(
        bf16_backend, spec, epochs, outliers)


def test_same_seed_same_epoch(bf16_backend):
    conformance.test_same_seed_same_epoch(bf16_backend)


def test_trainer_state_resume_is_bit_identical(bf16_backend):
    conformance.test_trainer_state_resume_is_bit_identical(bf16_backend)


def test_logits_and_features_are_float32_and_close_to_fp32(backend, bf16_backend):
    x, _ = images(13)
    model = backend.build_model(SMALL, seed=0)
    subnets = two_subnets(backend, model)
    fp32 = backend.predict(model, x, subnets, batch_size=5, mean=MEAN, std=STD, features=True)
    low = bf16_backend.build_model(SMALL, seed=0)
    bf16 = bf16_backend.predict(low, x, subnets, batch_size=5, mean=MEAN, std=STD,
                                features=True)
    for exact, approx in zip(fp32, bf16, strict=True):
        assert approx.dtype == np.float32 and approx.shape == exact.shape
        scale = np.abs(exact).max()
        # bf16 keeps 8 bits of mantissa: about 2-3 significant digits through 4 layers.
        np.testing.assert_allclose(approx, exact, atol=0.05 * scale)
        assert not np.array_equal(approx, exact)  # it did run in bf16


def test_training_keeps_weights_and_bn_float32_near_the_fp32_result(backend, bf16_backend):
    results = {}
    for b in (backend, bf16_backend):
        model = b.build_model(SMALL, seed=0)
        gates, trainable = task1_masks(b, model)
        b.set_gates(model, gates)
        losses = [r.loss for r in train(b, model, phase(kind="distill", epochs=2), trainable)]
        results[b.precision] = b.get_weights(model), b.get_bn(model), losses
    weights, bn, losses = results["bf16"]
    assert all(w.dtype == np.float32 for w in weights.values())
    assert all(v.dtype == np.float32 for state in bn.values() for v in state.values())
    np.testing.assert_allclose(losses, results["fp32"][2], rtol=0.05)
    for name, state in bn.items():  # 8 steps apart from the fp32 path: close, not equal
        exact = results["fp32"][1][name]["mean"]
        assert np.linalg.norm(state["mean"] - exact) < 0.1 * np.linalg.norm(exact), name


def test_a_bf16_run_records_its_precision_and_resumes_to_identical_metrics(tmp_path, capsys,
                                                                            bf16_backend):
    needs_determinism(bf16_backend)
    out = tmp_path / "straight"
    assert main(["run", "--preset", "smoke", "--out", str(out), "--quiet",
                 *[arg for s in SMOKE for arg in ("--set", s)]]) == 0
    assert json.loads((out / "config.json").read_text())["versions"]["precision"] == "bf16"
    reference = json.loads((out / "metrics.json").read_text())
    assert reference["precision"] == "bf16"
    stopped = tmp_path / "stopped"
    with pytest.raises(Interrupted):
        start_run(resolve_config("smoke", SMOKE), stopped, should_stop=StopAfter(11))
    assert resume_run(stopped) == reference
    # The checkpoints are float32: an fp32 evaluation routes and classifies nearly alike.
    again = evaluate_run(out)
    assert abs(again["final"]["taw"] - reference["final"]["taw"]) <= 0.05
