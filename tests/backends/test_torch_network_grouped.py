"""Grouped and depthwise convolutions in a user's nn.Module (issue 25): converted to gated
convs with groups, computing the user's function, gated entry by entry, and frozen exactly."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends.torch.backend import TorchBackend  # noqa: E402
from backends.torch.layers import GatedConv2d  # noqa: E402
from mind_core.protocol import ModelSpec, PhaseSpec, Subnet  # noqa: E402
from tests.backends.grouped_nets import LAYERS, torch_mobilenet  # noqa: E402

SHAPE, CLASSES = (6, 6, 1), 4
SPEC = ModelSpec(arch="custom", input_shape=SHAPE, num_classes=CLASSES)


@pytest.fixture
def tb():
    return TorchBackend("cpu")


def images(n=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *SHAPE), dtype=np.uint8)


def test_grouped_convs_convert_with_their_groups_and_compute_the_users_function(tb):
    torch.manual_seed(0)
    network = torch_mobilenet().eval()
    assert tb.adopt_network(network, SHAPE, CLASSES) == \
        "MobileNetLike: 5 conv, 1 linear, 1 BatchNorm layers"
    template = tb._template.eval()
    groups = {name: m.groups for name, m in template.named_modules()
              if isinstance(m, GatedConv2d)}
    assert groups == {"stem": 1, "dw": 8, "grouped": 4, "sep.depthwise": 8, "sep.pointwise": 1}
    x = torch.randn(3, 1, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(template(x), network(x))
    model = tb.build_model(SPEC, 0)
    assert [(i.name, i.shape) for i in tb.layers(model)] == LAYERS
    # He-normal over a group's fan-in (in / groups * kh * kw): 9 for a depthwise kernel.
    assert 0.3 < np.std(tb.get_weights(model)["dw"]) * np.sqrt(9 / 2) < 1.7


def test_a_gated_grouped_net_equals_the_dense_one_with_zeroed_weights(tb):
    tb.adopt_network(torch_mobilenet(), SHAPE, CLASSES)
    gated, dense = tb.build_model(SPEC, 0), tb.build_model(SPEC, 1)
    rng = np.random.default_rng(2)
    weights = tb.get_weights(gated)
    gates = {k: rng.random(v.shape) < 0.5 for k, v in weights.items()}
    tb.set_weights(dense, {k: w * gates[k] for k, w in weights.items()})
    bn = tb.get_bn(gated)
    x = images(6)
    run = [Subnet(gates=gates, bn=bn, class_range=(0, CLASSES))]
    ones = [Subnet(gates={k: np.ones(v.shape, bool) for k, v in gates.items()}, bn=bn,
                   class_range=(0, CLASSES))]
    out = tb.predict(gated, x, run, 6, (0.5,), (0.25,))
    np.testing.assert_allclose(out, tb.predict(dense, x, ones, 6, (0.5,), (0.25,)),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(out, tb.predict(gated, x, ones, 6, (0.5,), (0.25,)), atol=1e-4)


def test_distill_keeps_every_frozen_entry_of_a_grouped_kernel_bit_identical(tb):
    tb.adopt_network(torch_mobilenet(), SHAPE, CLASSES)
    student, teacher = tb.build_model(SPEC, 0), tb.build_model(SPEC, 1)
    before = tb.get_weights(student)
    rng = np.random.default_rng(3)
    trainable = {k: rng.random(v.shape) < 0.5 for k, v in before.items()}
    phase = PhaseSpec(kind="distill", epochs=2, lr=0.05, milestones=(), gamma=0.5,
                      weight_decay=0.1, batch_size=4, class_range=(0, 2), beta=1.0)
    trainer = tb.start_phase(student, phase, trainable, teacher=teacher)
    for epoch in range(2):
        tb.train_epoch(trainer, images(), np.arange(8) % 2, epoch, seed=epoch)
    after = tb.get_weights(student)
    for name, w in before.items():
        assert np.array_equal(after[name][~trainable[name]], w[~trainable[name]]), name
    for name in ("dw", "grouped", "sep.depthwise"):
        assert not np.array_equal(after[name][trainable[name]], before[name][trainable[name]])
