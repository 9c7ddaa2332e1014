"""The tf backend's mixed precision (backends/tf/amp.py): the choice on stubbed devices, the
Keras policy on the layers it builds, BatchNorm kept float32, and what it refuses."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")

from backends.tf import amp  # noqa: E402
from backends.tf.backend import TFBackend  # noqa: E402
from mind_core.network import NetworkError  # noqa: E402
from mind_core.protocol import ModelSpec  # noqa: E402
from tests.backends.test_conformance import RESNET, SMALL  # noqa: E402


@pytest.mark.parametrize("native,expected", [(True, "bf16"), (False, "fp32")])
def test_auto_follows_the_cpu_flags(monkeypatch, native, expected):
    monkeypatch.setattr(amp, "cpu_runs_bf16", lambda: native)
    assert amp.resolve("auto", "/CPU:0") == expected


@pytest.mark.parametrize("native,expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_a_gpu_asks_its_compute_capability(monkeypatch, native, expected):
    monkeypatch.setattr(amp, "_gpu_runs_bf16", lambda device: native)
    assert amp.resolve("auto", "/GPU:0") == expected


@pytest.mark.parametrize("device", ["/CPU:0", "/GPU:0"])
def test_fp16_is_refused_in_one_line_naming_the_key(monkeypatch, device):
    monkeypatch.setattr(amp, "_gpu_runs_bf16", lambda device: True)
    with pytest.raises(ValueError, match="^precision: fp16"):
        amp.resolve("fp16", device)


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
