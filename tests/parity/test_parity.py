"""Cross-framework parity: the same canonical state gives the same numbers in torch and TF.

Tolerances (float32, different kernels and summation orders):
- logits: max abs difference < 1e-4 + 1e-5 * max |logit| (float32 round-off grows with the
  logits' scale). Observed: ~1e-6 for small_cnn, ~1e-5 for resnet32 with logits up to ~20,
  ~2e-4 for a freshly initialised resnet32 (default BN statistics, logits ~130);
- epoch losses (CE, each distillation loss, total) at lr 0: relative 1e-5, absolute 1e-5;
- BatchNorm running statistics after an epoch in training mode: abs 1e-5 (this is where a
  biased/unbiased variance mismatch would show, at a factor n / (n - 1)).
"""

from __future__ import annotations

import numpy as np
import pytest

from mind_core.protocol import LOSSES, ModelSpec, PhaseSpec, Subnet

pytest.importorskip("torch")
pytest.importorskip("tensorflow")

from backends.tf.backend import TFBackend  # noqa: E402
from backends.torch.backend import TorchBackend  # noqa: E402

CLASSES = 6
SPECS = {
    "small_cnn": ModelSpec(arch="small_cnn", input_shape=(12, 12, 3), num_classes=CLASSES),
    "resnet32": ModelSpec(arch="resnet32", input_shape=(12, 12, 3), num_classes=CLASSES),
    # Odd, non-square, one channel: stride-2 padding and option-A subsampling on odd sizes.
    "resnet32-odd": ModelSpec(arch="resnet32", input_shape=(9, 11, 1), num_classes=CLASSES),
}


@pytest.fixture(scope="module")
def backends():
    return TorchBackend(device="cpu"), TFBackend(device="cpu")


def batch(spec: ModelSpec, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *spec.input_shape), dtype=np.uint8)
    return x, rng.integers(0, CLASSES, n).astype(np.int64)


def norm(spec: ModelSpec):
    c = spec.input_shape[2]
    return (0.45,) * c, (0.3,) * c


def assert_same_logits(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert np.abs(a).max() > 0.1  # a degenerate all-zero network would prove nothing
    assert np.abs(a - b).max() < 1e-4 + 1e-5 * np.abs(a).max()


def random_state(reference, model, seed: int):
    """Canonical weights, task-style gates and a BN snapshot, all drawn independently of
    either backend's own initialisation."""
    rng = np.random.default_rng(seed)
    weights, gates = {}, {}
    for info in reference.layers(model):
        fan_in = int(np.prod(info.shape[1:]))
        weights[info.name] = (rng.standard_normal(info.shape) * np.sqrt(2 / fan_in)).astype(
            np.float32)
        gates[info.name] = rng.random(info.shape) < 0.6
    bn = {name: {key: (rng.uniform(0.5, 1.5, v.shape) if key in ("gamma", "var")
                       else rng.normal(0, 0.3, v.shape)).astype(np.float32)
                 for key, v in values.items()}
          for name, values in reference.get_bn(model).items()}
    return weights, gates, bn


def load(backend, spec, weights, bn, seed: int):
    model = backend.build_model(spec, seed=seed)
    backend.set_weights(model, weights)
    backend.set_bn(model, bn)
    return model


@pytest.mark.parametrize("arch", SPECS)
def test_same_state_same_logits(backends, arch):
    spec = SPECS[arch]
    torch_b, tf_b = backends
    weights, gates, bn = random_state(torch_b, torch_b.build_model(spec, seed=0), seed=1)
    _, gates2, bn2 = random_state(torch_b, torch_b.build_model(spec, seed=0), seed=2)
    subnets = [Subnet(gates=gates, bn=bn, class_range=(0, 3)),
               Subnet(gates=gates2, bn=bn2, class_range=(3, 6))]
    x, _ = batch(spec, 11)
    mean, std = norm(spec)
    out = [b.predict(load(b, spec, weights, bn, seed=5), x, subnets, 4, mean, std)
           for b in backends]
    assert out[0].shape == (2, 11, 3)
    assert_same_logits(out[0], out[1])


@pytest.mark.parametrize("arch", SPECS)
def test_same_state_same_features(backends, arch):
    spec = SPECS[arch]
    torch_b, _ = backends
    weights, gates, bn = random_state(torch_b, torch_b.build_model(spec, seed=0), seed=3)
    subnets = [Subnet(gates=gates, bn=bn, class_range=(0, 3))]
    x, _ = batch(spec, 9)
    mean, std = norm(spec)
    out = [b.predict(load(b, spec, weights, bn, seed=5), x, subnets, 4, mean, std,
                     features=True) for b in backends]
    assert out[0][1].shape == out[1][1].shape == (1, 9, spec_width(torch_b, spec))
    assert_same_logits(out[0][0], out[1][0])
    assert_same_logits(out[0][1], out[1][1])


def spec_width(backend, spec) -> int:
    model = backend.build_model(spec, seed=0)
    return next(i.shape[1] for i in backend.layers(model) if i.classifier)


def test_checkpoint_written_by_one_backend_loads_in_the_other(backends):
    """The other direction: TF's own initial state, read out and loaded into torch."""
    spec = SPECS["resnet32"]
    torch_b, tf_b = backends
    tf_model = tf_b.build_model(spec, seed=3)
    weights, bn = tf_b.get_weights(tf_model), tf_b.get_bn(tf_model)
    torch_model = load(torch_b, spec, weights, bn, seed=0)
    assert all(np.array_equal(torch_b.get_weights(torch_model)[k], w) for k, w in weights.items())
    x, _ = batch(spec, 6)
    dense = {i.name: np.ones(i.shape, bool) for i in tf_b.layers(tf_model)}
    subnet = [Subnet(gates=dense, bn=bn, class_range=(0, CLASSES))]
    a = tf_b.predict(tf_model, x, subnet, 6, *norm(spec))
    b = torch_b.predict(torch_model, x, subnet, 6, *norm(spec))
    assert_same_logits(a, b)


@pytest.mark.parametrize("name", LOSSES)
def test_distill_loss_functions_agree(backends, name):
    rng = np.random.default_rng(4)
    teacher, student = (rng.normal(0, 4, (7, 5)).astype(np.float32) for _ in range(2))
    values = [b.distill_loss(name, teacher, student) for b in backends]
    assert values[0] == pytest.approx(values[1], rel=1e-5, abs=1e-6)


def lr0_epoch(backend, spec, weights, gates, bn, teacher_state, phase, x, y):
    """One epoch at lr 0: weights stay put, so every batch sees the same network in both
    frameworks and the reported losses and updated BN running statistics must agree."""
    model = load(backend, spec, weights, bn, seed=1)
    backend.set_gates(model, gates)
    teacher = None
    if teacher_state is not None:
        teacher = load(backend, spec, teacher_state[0], teacher_state[1], seed=2)
    trainer = backend.start_phase(model, phase, {k: g.copy() for k, g in gates.items()},
                                  teacher)
    result = backend.train_epoch(trainer, x, y, epoch=0, seed=7)
    return result, backend.get_bn(model)


# Masking acts before (and independently of) the loss: every loss with "zero", one with "slice".
@pytest.mark.parametrize("loss,masking", [(name, "zero") for name in LOSSES] + [("kl", "slice")])
def test_training_losses_and_bn_statistics_agree(backends, loss, masking):
    spec = SPECS["small_cnn"]
    torch_b = backends[0]
    reference = torch_b.build_model(spec, seed=0)
    weights, gates, bn = random_state(torch_b, reference, seed=3)
    t_weights, _, t_bn = random_state(torch_b, reference, seed=4)
    x, y = batch(spec, 20, seed=5)
    y = 2 + y % 2  # the active task owns classes 2 and 3
    phase = PhaseSpec(kind="distill", epochs=1, lr=0.0, milestones=(), gamma=0.5,
                      weight_decay=0.0, batch_size=8, class_range=(2, 4), logit_masking=masking,
                      beta=3.0, loss=loss, mean=norm(spec)[0], std=norm(spec)[1])
    (r_torch, bn_torch), (r_tf, bn_tf) = (
        lr0_epoch(b, spec, weights, gates, bn, (t_weights, t_bn), phase, x, y) for b in backends)
    for field in ("loss", "ce", "distill", "accuracy"):
        assert getattr(r_tf, field) == pytest.approx(getattr(r_torch, field), rel=1e-5,
                                                     abs=1e-5), field
    assert r_tf.distill > 0 and r_tf.images == r_torch.images == 20
    for name, values in bn_torch.items():
        assert not np.allclose(values["var"], bn[name]["var"])  # the epoch did update them
        for key in ("mean", "var"):
            np.testing.assert_allclose(bn_tf[name][key], values[key], atol=1e-5, rtol=1e-5,
                                       err_msg=f"{name}.{key}")


def test_optimiser_state_moves_between_backends(backends):
    """Both backends name and lay out AdamW state alike (torch's names, canonical layout)."""
    spec = SPECS["small_cnn"]
    x, y = batch(spec, 16, seed=6)
    phase = PhaseSpec(kind="teacher", epochs=1, lr=0.01, milestones=(), gamma=0.5,
                      weight_decay=0.01, batch_size=8, class_range=(0, CLASSES))
    states, trainers = [], []
    for backend in backends:
        model = backend.build_model(spec, seed=0)
        gates = {i.name: np.random.default_rng(1).random(i.shape) < 0.5
                 for i in backend.layers(model)}
        trainer = backend.start_phase(model, phase, gates)
        backend.train_epoch(trainer, x, y, epoch=0, seed=0)
        states.append(backend.trainer_state(trainer))
        trainers.append(trainer)
    assert states[0].keys() == states[1].keys()
    for key, value in states[0].items():
        if not key.endswith(".step"):
            assert np.shape(states[1][key]) == np.shape(value), key  # canonical layout in both
    for (source, target), backend in zip(((0, 1), (1, 0)), (backends[1], backends[0]),
                                         strict=True):
        backend.load_trainer_state(trainers[target], states[source])
        back = backend.trainer_state(trainers[target])
        for key, value in states[source].items():
            np.testing.assert_array_equal(np.asarray(back[key]).reshape(-1),
                                          np.asarray(value).reshape(-1), err_msg=key)
