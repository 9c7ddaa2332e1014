"""The tf backend's mixed precision (backends/tf/amp.py): the choice on stubbed devices, the
Keras policy on the layers it builds, BatchNorm kept float32, what it refuses, and fp16's loss
scaling, run here on the CPU (Keras runs mixed_float16 on CPUs too; the backend itself refuses
fp16 there)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from backends.tf import amp  # noqa: E402
from backends.tf.backend import TFBackend  # noqa: E402
from backends.tf.trainer import Trainer  # noqa: E402
from mind_core.network import NetworkError  # noqa: E402
from mind_core.precision import LOSS_SCALER  # noqa: E402
from mind_core.protocol import ModelSpec  # noqa: E402
from tests.backends.conformance_helpers import (  # noqa: E402
    RESNET,
    SMALL,
    images,
    phase,
    task1_masks,
)
from tests.backends.test_tf_network import sequential_cnn  # noqa: E402


@pytest.mark.parametrize("native,expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_a_cpu_asks_for_bf16_instructions_and_bf16_stays_available(monkeypatch,
                                                                           native, expected):
    """As with torch (docs/precision.md): bf16 where the CPU has it; asked for, it runs anyway."""
    monkeypatch.setattr("mind_core.precision.cpu_flags",
                        lambda: frozenset({"avx512_bf16"} if native else set()))
    assert amp.resolve("auto", "/CPU:0") == expected
    assert amp.resolve("bf16", "/CPU:0") == "bf16"


@pytest.mark.parametrize("native,expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_a_gpu_asks_its_compute_capability(monkeypatch, native, expected):
    monkeypatch.setattr(amp, "_gpu_runs_bf16", lambda device: native)
    assert amp.resolve("auto", "/GPU:0") == expected


def test_fp16_is_refused_on_the_cpu_in_one_line_naming_the_key(monkeypatch):
    monkeypatch.setattr(amp, "_gpu_runs_bf16", lambda device: True)
    assert amp.resolve("fp16", "/GPU:0") == "fp16"
    with pytest.raises(ValueError, match="^precision: fp16 runs on a GPU only"):
        TFBackend(device="cpu", precision="fp16")


@pytest.mark.parametrize("spec", [SMALL, RESNET], ids=["small_cnn", "resnet32"])
def test_bf16_models_compute_gated_layers_in_bf16_and_keep_bn_float32(spec):
    model = TFBackend(device="cpu", precision="bf16").build_model(spec, seed=0)
    for layer in model.gated.values():
        assert layer.compute_dtype == "bfloat16" and layer.kernel.dtype == "float32"
    for layer in model.bn.values():
        assert layer.compute_dtype == "float32" and layer.moving_mean.dtype == "float32"
    plain = TFBackend(device="cpu").build_model(spec, seed=0)
    assert all(layer.compute_dtype == "float32" for layer in plain.gated.values())


def test_a_users_network_is_refused_in_bf16():
    spec = ModelSpec(arch="custom", input_shape=(8, 8, 3), num_classes=6)
    with pytest.raises(NetworkError, match="^precision: bf16 covers the built-in models"):
        TFBackend(device="cpu", precision="bf16").build_model(spec, seed=0)


@pytest.mark.parametrize("asked, adopted_in", [("auto", "fp32"), ("bf16", None)])
def test_auto_falls_back_to_fp32_for_a_users_network_and_bf16_is_still_refused(
        monkeypatch, asked, adopted_in):
    """Where auto picks bf16, a user's network (covered in fp32 only) gets fp32, before the
    run records its precision; an explicit bf16 stays an error."""
    monkeypatch.setattr("mind_core.precision.cpu_flags", lambda: frozenset({"avx512_bf16"}))
    backend = TFBackend(device="cpu", precision=asked)
    assert backend.precision == "bf16"
    backend.adopt_network(sequential_cnn(), (8, 8, 1), 4)
    spec = ModelSpec(arch="custom", input_shape=(8, 8, 1), num_classes=4)
    if adopted_in is None:
        with pytest.raises(NetworkError, match="^precision: bf16 covers the built-in models"):
            backend.build_model(spec, seed=0)
        return
    assert backend.precision == adopted_in
    backend.build_model(spec, seed=0)  # built, not refused


def fp16_trainer():
    """A distill phase trained in fp16 on the CPU with earlier tasks' entries frozen."""
    backend = TFBackend(device="cpu")
    model = backend.build_model(SMALL, seed=0)
    amp.apply_policy(model, "fp16")
    gates, trainable = task1_masks(backend, model)
    backend.set_gates(model, gates)
    ph = phase(kind="distill", weight_decay=0.1, beta=2.0, class_range=(0, 3))
    teacher = backend.build_model(SMALL, seed=1)
    trainer = Trainer(model, ph, trainable, teacher, backend.device, None, "fp16")
    return backend, model, trainable, trainer


def test_fp16_steps_freeze_exactly_and_save_the_scale():
    backend, model, trainable, trainer = fp16_trainer()
    before = backend.get_weights(model)
    x, y = images(24, classes=range(3))
    assert np.isfinite(trainer.train_epoch(x, y, 0, 0, None, None).loss)
    after = backend.get_weights(model)
    for name in before:
        assert np.array_equal(after[name][~trainable[name]], before[name][~trainable[name]])
        assert after[name].dtype == np.float32
    assert any(not np.array_equal(after[k], before[k]) for k in before)
    assert trainer.state()[f"{LOSS_SCALER}.scale"] == amp.INITIAL_SCALE


def test_an_overflowing_fp16_step_is_skipped_and_the_scale_halved():
    backend, model, _, trainer = fp16_trainer()
    trainer.loss_scale.load_state({"scale": 3e38, "growth_tracker": 5})  # loss * scale = inf
    before = backend.get_weights(model)
    x, y = images(8, classes=range(3))
    trainer.train_epoch(x, y, 0, 0, None, None)
    assert all(np.array_equal(backend.get_weights(model)[k], before[k]) for k in before)
    state = trainer.state()
    assert float(state[f"{LOSS_SCALER}.scale"]) == pytest.approx(1.5e38, rel=1e-6)
    assert state[f"{LOSS_SCALER}.growth_tracker"] == 0
    assert not any(key.startswith("adamw.") for key in state)  # no AdamW step was taken


def test_the_scale_resumes_and_is_refused_by_another_precision():
    _, _, _, trainer = fp16_trainer()
    trainer.loss_scale.load_state({"scale": 1024.0, "growth_tracker": 7})
    state = trainer.state()
    _, _, _, other = fp16_trainer()
    other.load_state(state)
    assert other.state()[f"{LOSS_SCALER}.growth_tracker"] == 7
    backend, model, trainable, _ = fp16_trainer()
    fp32 = Trainer(model, phase(kind="distill", class_range=(0, 3)), trainable, None,
                   backend.device)
    with pytest.raises(ValueError, match="resume with the precision it was saved in"):
        fp32.load_state(state)
