"""The torch backend's mixed precision (backends/torch/amp.py) where a CPU can check it: the
choice on stubbed devices, fp32 untouched, and fp16's loss scaling, run here on the CPU (torch
autocasts to float16 on CPUs too; the backend itself refuses fp16 there)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from backends.torch import amp
from backends.torch.backend import TorchBackend
from backends.torch.trainer import Trainer
from mind_core.precision import LOSS_SCALER as SCALER
from tests.backends.conformance_helpers import SMALL, images, phase, task1_masks

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("native,expected", [(True, "bf16"), (False, "fp32")])
def test_auto_follows_the_cpu_flags(monkeypatch, native, expected):
    monkeypatch.setattr("mind_core.precision.cpu_flags",
                        lambda: frozenset({"avx512_bf16"} if native else set()))
    assert amp.resolve("auto", CPU) == expected


@pytest.mark.parametrize("native,expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_a_gpu_asks_cuda(monkeypatch, native, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: native)
    assert amp.resolve("auto", CUDA) == expected
    assert amp.resolve("fp16", CUDA) == "fp16"


def test_fp16_on_the_cpu_is_refused_in_one_line_naming_the_key():
    with pytest.raises(ValueError, match="^precision: fp16 runs on a GPU only"):
        TorchBackend(device="cpu", precision="fp16")


def test_fp32_adds_no_context_and_no_scaler():
    assert isinstance(amp.autocast(CPU, "fp32"), contextlib.nullcontext)
    assert amp.loss_scaler(CPU, "fp32") is None and amp.loss_scaler(CPU, "bf16") is None
    assert isinstance(amp.loss_scaler(CPU, "fp16"), amp.LossScaler)


def fp16_trainer(weight_decay: float = 0.1):
    """A distill phase trained in fp16 on the CPU with earlier tasks' entries frozen."""
    backend = TorchBackend(device="cpu")
    model = backend.build_model(SMALL, seed=0)
    gates, trainable = task1_masks(backend, model)
    backend.set_gates(model, gates)
    ph = phase(kind="distill", weight_decay=weight_decay, beta=2.0, class_range=(0, 3))
    teacher = backend.build_model(SMALL, seed=1)
    return backend, model, trainable, Trainer(model, ph, trainable, teacher, CPU, None, "fp16")


def test_fp16_steps_freeze_exactly_and_save_the_scaler():
    backend, model, trainable, trainer = fp16_trainer()
    before = backend.get_weights(model)
    x, y = images(24, classes=range(3))
    result = trainer.train_epoch(x, y, 0, 0, None, None)
    after = backend.get_weights(model)
    assert np.isfinite(result.loss)
    for name in before:
        assert np.array_equal(after[name][~trainable[name]], before[name][~trainable[name]])
        assert after[name].dtype == np.float32
    assert any(not np.array_equal(after[k], before[k]) for k in before)
    state = trainer.state()
    assert state[f"{SCALER}.scale"] == 65536.0  # no overflow: no back-off in 3 steps


def test_an_overflowing_fp16_step_is_skipped_weight_decay_included():
    backend, model, _, trainer = fp16_trainer()
    trainer.scaler.load_state({"scale": 3e38, "growth_tracker": 0})  # loss * scale = inf
    before = backend.get_weights(model)
    x, y = images(8, classes=range(3))
    trainer.train_epoch(x, y, 0, 0, None, None)
    assert all(np.array_equal(backend.get_weights(model)[k], before[k]) for k in before)
    assert float(trainer.state()[f"{SCALER}.scale"]) == pytest.approx(1.5e38, rel=1e-6)  # halved


def test_scaler_state_resumes_and_is_refused_by_another_precision():
    _, _, _, trainer = fp16_trainer()
    trainer.scaler.load_state({"scale": 1024.0, "growth_tracker": 7})
    state = trainer.state()
    _, _, _, other = fp16_trainer()
    other.load_state(state)
    assert other.state()[f"{SCALER}.growth_tracker"] == 7
    backend, model, trainable, _ = fp16_trainer()
    fp32 = Trainer(model, phase(kind="distill", class_range=(0, 3)), trainable, None, CPU)
    with pytest.raises(ValueError, match="resume with the precision it was saved in"):
        fp32.load_state(state)


def test_batchnorm_fits_its_statistics_in_float32_under_autocast():
    """What docs/precision.md relies on: a bf16 input's running statistics are accumulated
    in float32 (as float32 BatchNorm computes them from the same rounded input)."""
    x = (torch.randn(64, 16, 8, 8, generator=torch.Generator().manual_seed(0)) * 3 + 1)
    x = x.bfloat16()
    mixed, plain = torch.nn.BatchNorm2d(16), torch.nn.BatchNorm2d(16)
    with amp.autocast(CPU, "bf16"):
        mixed(x)
    plain(x.float())
    assert mixed.running_mean.dtype == mixed.running_var.dtype == torch.float32
    torch.testing.assert_close(mixed.running_mean, plain.running_mean, rtol=0, atol=1e-6)
    torch.testing.assert_close(mixed.running_var, plain.running_var, rtol=1e-6, atol=1e-6)
