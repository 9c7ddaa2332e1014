"""Grouped Conv2D, DepthwiseConv2D and SeparableConv2D in a user's Keras model (issue 25):
converted to gated convs with groups (a separable conv to two, `<name>.depthwise` and
`<name>.pointwise`), computing Keras's own function, gated entry by entry, frozen exactly."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from backends.tf.backend import TFBackend, keras, tf  # noqa: E402
from mind_core.protocol import ModelSpec, PhaseSpec, Subnet  # noqa: E402
from tests.backends.grouped_nets import LAYERS, keras_mobilenet  # noqa: E402

SHAPE, CLASSES = (6, 6, 1), 4
SPEC = ModelSpec(arch="custom", input_shape=SHAPE, num_classes=CLASSES)
L = keras.layers


def images(n=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *SHAPE), dtype=np.uint8)


def adopted(seed=0):
    backend = TFBackend(device="cpu")
    backend.adopt_network(keras_mobilenet(), SHAPE, CLASSES)
    return backend, backend.build_model(SPEC, seed)


def keras_kernel(canonical: np.ndarray, multiplier: int | None = None) -> np.ndarray:
    """A canonical [out, in / groups, kh, kw] conv weight in Keras's layout: [kh, kw, in /
    groups, out]; with a multiplier, a depthwise kernel's [kh, kw, in, multiplier] (output
    channel c * multiplier + m comes from input c)."""
    kernel = np.transpose(canonical, (2, 3, 1, 0))
    return kernel if multiplier is None else kernel.reshape(*kernel.shape[:2], -1, multiplier)


def keras_reference(backend, model):
    """keras_mobilenet (BN epsilon 1e-5, as MIND's) holding the converted model's values."""
    weights, bn = backend.get_weights(model), backend.get_bn(model)
    reference = keras_mobilenet(epsilon=1e-5)
    get = reference.get_layer
    get("stem").set_weights([keras_kernel(weights["stem"])])
    state = bn["bn0"]
    get("bn0").set_weights([state["gamma"], state["beta"], state["mean"], state["var"]])
    get("dw").set_weights([keras_kernel(weights["dw"], 2), weights["dw.bias"]])
    get("grouped").set_weights([keras_kernel(weights["grouped"]),
                                weights["grouped.bias"]])
    get("sep").set_weights([keras_kernel(weights["sep.depthwise"], 1),
                            keras_kernel(weights["sep.pointwise"]),
                            weights["sep.pointwise.bias"]])
    get("fc").set_weights([weights["fc"].T, weights["fc.bias"]])
    return reference


def test_grouped_convs_convert_and_compute_keras_function():
    backend, model = adopted()
    assert [(i.name, i.shape) for i in backend.layers(model)] == LAYERS
    rng = np.random.default_rng(1)
    backend.set_weights(model, {i.name: rng.normal(0, 0.5, i.shape).astype(np.float32)
                                for i in backend.layers(model)})
    backend.set_bn(model, {"bn0": {k: rng.uniform(0.5, 1.5, 8).astype(np.float32)
                                   for k in ("gamma", "beta", "mean", "var")}})
    x = tf.constant(images(5), tf.float32) / 255.0
    np.testing.assert_allclose(model(x, training=False).numpy(),
                               keras_reference(backend, model)(x, training=False).numpy(),
                               rtol=1e-4, atol=1e-5)


def test_a_gated_grouped_net_equals_the_dense_one_with_zeroed_weights():
    backend, gated = adopted(0)
    dense = backend.build_model(SPEC, 1)
    rng = np.random.default_rng(2)
    weights = backend.get_weights(gated)
    gates = {k: rng.random(v.shape) < 0.5 for k, v in weights.items()}
    backend.set_weights(dense, {k: w * gates[k] for k, w in weights.items()})
    bn = backend.get_bn(gated)
    x = images(6)
    ones = {k: np.ones(v.shape, bool) for k, v in gates.items()}
    out = backend.predict(gated, x, [Subnet(gates=gates, bn=bn, class_range=(0, CLASSES))],
                          6, (0.5,), (0.25,))
    dense_out = backend.predict(dense, x, [Subnet(gates=ones, bn=bn,
                                                  class_range=(0, CLASSES))], 6, (0.5,), (0.25,))
    np.testing.assert_allclose(out, dense_out, rtol=1e-5, atol=1e-5)
    whole = backend.predict(gated, x, [Subnet(gates=ones, bn=bn, class_range=(0, CLASSES))],
                            6, (0.5,), (0.25,))
    assert not np.allclose(out, whole, atol=1e-4)


def test_distill_keeps_every_frozen_entry_of_a_grouped_kernel_bit_identical():
    backend, student = adopted(0)
    teacher = backend.build_model(SPEC, 1)
    before = backend.get_weights(student)
    rng = np.random.default_rng(3)
    trainable = {k: rng.random(v.shape) < 0.5 for k, v in before.items()}
    phase = PhaseSpec(kind="distill", epochs=2, lr=0.05, milestones=(), gamma=0.5,
                      weight_decay=0.1, batch_size=4, class_range=(0, 2), beta=1.0)
    trainer = backend.start_phase(student, phase, trainable, teacher=teacher)
    for epoch in range(2):
        backend.train_epoch(trainer, images(), np.arange(8) % 2, epoch, seed=epoch)
    after = backend.get_weights(student)
    for name, w in before.items():
        assert np.array_equal(after[name][~trainable[name]], w[~trainable[name]]), name
    for name in ("dw", "grouped", "sep.depthwise"):
        assert not np.array_equal(after[name][trainable[name]], before[name][trainable[name]])


def test_a_strided_depthwise_conv_matches_keras():
    """Strides and a multiplier of 3 through TF's depthwise kernel, and a non-square stride
    through the per-group path."""
    inputs = keras.Input((9, 9, 2))
    x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=3, name="dw")(inputs)
    x = L.Conv2D(6, 3, strides=(2, 1), groups=3, name="g")(x)
    network = keras.Model(inputs, L.Dense(3, name="fc")(L.Flatten()(x)))
    backend = TFBackend(device="cpu")
    backend.adopt_network(network, (9, 9, 2), 3)
    model = backend.build_model(ModelSpec(arch="custom", input_shape=(9, 9, 2),
                                          num_classes=3), 0)
    weights = backend.get_weights(model)
    network.get_layer("dw").set_weights([keras_kernel(weights["dw"], 3), weights["dw.bias"]])
    network.get_layer("g").set_weights([keras_kernel(weights["g"]), weights["g.bias"]])
    network.get_layer("fc").set_weights([weights["fc"].T, weights["fc.bias"]])
    x = tf.random.stateless_normal((2, 9, 9, 2), seed=(1, 2))
    np.testing.assert_allclose(model(x).numpy(), network(x).numpy(), rtol=1e-4, atol=1e-5)
