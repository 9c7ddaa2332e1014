"""Cross-framework parity of what the LwF and EWC baselines ask of a backend: the same
checkpoint weights, gates, BN state and batch give the same Fisher information and the same
losses with a penalty, a distill_range and a temperature in torch and TF.

Tolerances (float32, different kernels and summation orders): Fisher values are squared
batch gradients (BN in training mode, the labels given), compared per tensor at relative 1e-3 of that tensor's largest value (its
small entries are round-off of cancelling sums); losses at relative 1e-5 as in
test_parity.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from mind_core.backend_checks import anchorable_values
from mind_core.protocol import ModelSpec, Penalty, PhaseSpec

torch = pytest.importorskip("torch")
pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from backends.tf.backend import TFBackend  # noqa: E402
from backends.torch.backend import TorchBackend  # noqa: E402

CLASSES = 6
SPECS = {
    "small_cnn": ModelSpec(arch="small_cnn", input_shape=(12, 12, 3), num_classes=CLASSES),
    "resnet32": ModelSpec(arch="resnet32", input_shape=(9, 11, 1), num_classes=CLASSES),
}
MEAN, STD = (0.45,), (0.3,)


@pytest.fixture(scope="module")
def backends():
    return TorchBackend(device="cpu"), TFBackend(device="cpu")


def random_state(reference, model, seed: int):
    """Canonical weights (biases included), task-style gates and a BN snapshot, drawn
    independently of either backend's initialisation."""
    rng = np.random.default_rng(seed)
    weights, gates = {}, {}
    for info in reference.layers(model):
        fan_in = int(np.prod(info.shape[1:])) if len(info.shape) > 1 else 4
        weights[info.name] = (rng.standard_normal(info.shape) * np.sqrt(2 / fan_in)).astype(
            np.float32)
        gates[info.name] = rng.random(info.shape) < 0.6
    bn = {name: {key: (rng.uniform(0.5, 1.5, v.shape) if key in ("gamma", "var")
                       else rng.normal(0, 0.3, v.shape)).astype(np.float32)
                 for key, v in values.items()}
          for name, values in reference.get_bn(model).items()}
    return weights, gates, bn


def load(backend, spec, weights, gates, bn):
    model = backend.build_model(spec, seed=1)
    backend.set_weights(model, weights)
    backend.set_bn(model, bn)
    backend.set_gates(model, gates)
    return model


def batch(spec: ModelSpec, n: int, classes: tuple[int, int], seed: int):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, *spec.input_shape), dtype=np.uint8)
    return x, rng.integers(*classes, n).astype(np.int64)


def assert_same_fisher(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for name, value in a.items():
        assert value.dtype == b[name].dtype == np.float32 and value.shape == b[name].shape
        scale = float(np.abs(value).max())
        np.testing.assert_allclose(b[name], value, rtol=1e-3, atol=1e-3 * scale + 1e-12,
                                   err_msg=name)
    assert any(np.abs(v).max() > 0 for v in a.values())  # zeros everywhere would prove nothing


def norm(spec):
    return MEAN * spec.input_shape[2], STD * spec.input_shape[2]


@pytest.mark.parametrize("labels", ["given", "predicted"])
@pytest.mark.parametrize("arch", SPECS)
def test_same_checkpoint_same_fisher(backends, arch, labels):
    spec = SPECS[arch]
    torch_b = backends[0]
    weights, gates, bn = random_state(torch_b, torch_b.build_model(spec, seed=0), seed=1)
    x, y = batch(spec, 19, (2, 4), seed=2)
    y = y if labels == "given" else None  # None: each model's own argmax (FACIL's default)
    out = [b.fisher(load(b, spec, weights, gates, bn), x, y, (2, 4), 8, *norm(spec))
           for b in backends]
    assert_same_fisher(out[0], out[1])
    assert np.all(out[1]["fc"][[0, 1, 4, 5]] == 0)  # other classes' rows get no gradient


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, CLASSES)

    def forward(self, x):
        return self.fc(torch.relu(self.bn1(self.conv1(x))).mean(dim=(2, 3)))


def keras_net():
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(epsilon=1e-5, name="bn1")(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="fc")(x))


def test_same_own_network_with_biases_same_fisher():
    """A user's network: every "<layer>.bias" gets its Fisher value too, alike in both."""
    spec = ModelSpec(arch="custom", input_shape=(6, 6, 1), num_classes=CLASSES)
    torch_b, tf_b = TorchBackend(device="cpu"), TFBackend(device="cpu")
    torch_b.adopt_network(TorchNet(), (6, 6, 1), CLASSES)
    tf_b.adopt_network(keras_net(), (6, 6, 1), CLASSES)
    weights, gates, bn = random_state(torch_b, torch_b.build_model(spec, seed=0), seed=3)
    x, y = batch(spec, 13, (0, 3), seed=4)
    out = [b.fisher(load(b, spec, weights, gates, bn), x, y, (0, 3), 5, MEAN, STD)
           for b in (torch_b, tf_b)]
    assert list(out[1]) == ["conv1", "conv1.bias", "fc", "fc.bias", "bn1.gamma", "bn1.beta"]
    assert_same_fisher(out[0], out[1])


def lr0_epoch(backend, spec, state, teacher_state, phase, penalty, x, y):
    """One epoch at lr 0 (weights stay put, BN in inference mode): both frameworks see the
    same network in every batch, so every reported loss must agree."""
    weights, gates, bn = state
    model = load(backend, spec, weights, gates, bn)
    teacher = load(backend, spec, *teacher_state)
    trainer = backend.start_phase(model, phase, {k: g.copy() for k, g in gates.items()},
                                  teacher, penalty)
    return backend.train_epoch(trainer, x, y, epoch=0, seed=7)


@pytest.mark.parametrize("masking", ["zero", "slice"])
def test_same_checkpoint_same_lwf_and_ewc_losses(backends, masking):
    spec = SPECS["small_cnn"]
    torch_b = backends[0]
    reference = torch_b.build_model(spec, seed=0)
    state = random_state(torch_b, reference, seed=5)
    t_weights, _, t_bn = random_state(torch_b, reference, seed=6)
    teacher_state = (t_weights, {k: np.ones_like(g) for k, g in state[1].items()}, t_bn)
    rng = np.random.default_rng(8)
    values = anchorable_values(state[0], state[2])  # BN gamma and beta are anchored too
    anchored = ("conv2", "fc", "bn2.gamma", "bn2.beta")
    penalty = Penalty(weight=4.0,
                      anchor={k: values[k] + rng.normal(0, 0.1, values[k].shape).astype(
                          np.float32) for k in anchored},
                      importance={k: rng.uniform(0, 1, w.shape).astype(np.float32)
                                  for k, w in values.items()})
    x, y = batch(spec, 20, (2, 4), seed=9)
    # LwF's phase: cross-entropy over the current task's classes, distillation of the old
    # ones at T=2.
    phase = PhaseSpec(kind="distill", epochs=1, lr=0.0, milestones=(), gamma=0.5,
                      weight_decay=0.0, batch_size=8, class_range=(2, 4),
                      logit_masking=masking, beta=1.5, loss="kl", distill_range=(0, 2),
                      distill_temperature=2.0, train_bn=False, mean=norm(spec)[0],
                      std=norm(spec)[1])
    results = [lr0_epoch(b, spec, state, teacher_state, phase, penalty, x, y) for b in backends]
    for field in ("loss", "ce", "distill", "accuracy"):
        assert getattr(results[1], field) == pytest.approx(getattr(results[0], field),
                                                           rel=1e-5, abs=1e-5), field
    value = 2.0 * sum(float((penalty.importance[k] * (values[k] - a).astype(np.float64) ** 2)
                            .sum()) for k, a in penalty.anchor.items())
    for result in results:
        assert result.distill > 0
        assert result.loss - result.ce - 1.5 * result.distill == pytest.approx(value, rel=1e-4)
