"""Grouped, depthwise and separable convolutions mean the same in both backends: the same
MobileNet-style network (tests/backends/grouped_nets.py), written once per framework, given
the same canonical weights and BatchNorm state, predicts the same logits and features."""

import numpy as np
import pytest

from mind_core.protocol import ModelSpec, Subnet
from tests.backends.grouped_nets import keras_mobilenet, torch_mobilenet

pytest.importorskip("torch")
pytest.importorskip("tensorflow")

SHAPE, CLASSES = (6, 6, 1), 4
SPEC = ModelSpec(arch="custom", input_shape=SHAPE, num_classes=CLASSES)


def test_the_same_canonical_state_gives_the_same_logits_in_both_backends():
    from backends.tf.backend import TFBackend
    from backends.torch.backend import TorchBackend

    torch_backend, tf_backend = TorchBackend("cpu"), TFBackend(device="cpu")
    torch_backend.adopt_network(torch_mobilenet(), SHAPE, CLASSES)
    tf_backend.adopt_network(keras_mobilenet(), SHAPE, CLASSES)
    in_torch, in_tf = torch_backend.build_model(SPEC, 0), tf_backend.build_model(SPEC, 0)
    rng = np.random.default_rng(0)
    weights = {k: rng.normal(0, 0.4, v.shape).astype(np.float32)
               for k, v in torch_backend.get_weights(in_torch).items()}
    bn = {"bn0": {k: rng.uniform(0.5, 1.5, 8).astype(np.float32)
                  for k in ("gamma", "beta", "mean", "var")}}
    gates = {k: rng.random(v.shape) < 0.7 for k, v in weights.items()}
    x = rng.integers(0, 256, (7, *SHAPE), dtype=np.uint8)
    outputs = []
    for backend, model in ((torch_backend, in_torch), (tf_backend, in_tf)):
        backend.set_weights(model, weights)
        subnet = Subnet(gates=gates, bn=bn, class_range=(0, CLASSES))
        outputs.append(backend.predict(model, x, [subnet], 4, (0.5,), (0.25,), features=True))
    (torch_logits, torch_features), (tf_logits, tf_features) = outputs
    np.testing.assert_allclose(torch_logits, tf_logits, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(torch_features, tf_features, rtol=1e-4, atol=1e-5)
