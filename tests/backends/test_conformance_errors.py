"""Backend conformance, error paths: every backend refuses the same bad inputs with the same
message (mind_core/backend_checks.py), so a tf run fails where a torch run fails.

Run against whichever backend MIND_TEST_BACKEND names, like test_conformance.py.
"""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from mind_core.protocol import Penalty, Subnet
from tests.backends.conformance_helpers import CLASSES, MEAN, SMALL, STD, images, ones, phase


@pytest.fixture(scope="module")
def model(backend):
    return backend.build_model(SMALL, seed=0)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu:-1", "cpu:1", "cuda0"])
def test_unknown_device_strings(backend, device):
    with pytest.raises(ValueError, match="unknown device"):
        type(backend)(device=device)


def test_a_gpu_that_is_not_there(backend):
    with pytest.raises(ValueError, match=r"asked for, but .* sees \d+ GPU"):
        type(backend)(device="cuda:99")


def test_labels_outside_the_phase_classes(backend, model):
    x, y = images(8, classes=range(2, 5))
    trainer = backend.start_phase(model, phase(class_range=(0, 3)), None)
    with pytest.raises(ValueError, match=r"labels span \[\d+, 4\], outside the classes"):
        backend.train_epoch(trainer, x, y, epoch=0, seed=0)


def test_images_and_labels_of_different_lengths(backend, model):
    x, y = images(8)
    trainer = backend.start_phase(model, phase(), None)
    with pytest.raises(ValueError, match="8 images but 7 labels"):
        backend.train_epoch(trainer, x, y[:7], epoch=0, seed=0)
    with pytest.raises(ValueError, match="8 images but 7 labels"):
        backend.fisher(model, x, y[:7], (0, CLASSES), 4, MEAN, STD)


def test_bad_fisher_inputs(backend, model):
    x, y = images(8, classes=range(2, 5))
    with pytest.raises(ValueError, match="outside the classes"):
        backend.fisher(model, x, y, (3, 5), 4, MEAN, STD)
    with pytest.raises(ValueError, match="within the model's 6 classes"):
        backend.fisher(model, x, y, (0, CLASSES + 1), 4, MEAN, STD)
    with pytest.raises(ValueError, match="batch_size"):
        backend.fisher(model, x, y, (0, CLASSES), 0, MEAN, STD)
    with pytest.raises(ValueError, match="at least one sample"):
        backend.fisher(model, x[:0], y[:0], (0, CLASSES), 4, MEAN, STD)


def test_phase_ranges_beyond_the_model(backend, model):
    with pytest.raises(ValueError, match="within the model's 6 classes"):
        backend.start_phase(model, phase(class_range=(0, CLASSES + 1)), None)


def test_subnets_of_different_widths_cannot_be_stacked(backend, model):
    x, _ = images(4)
    bn = backend.get_bn(model)
    subnets = [Subnet(gates=ones(backend, model), bn=bn, class_range=r)
               for r in ((0, 2), (2, 5))]
    with pytest.raises(ValueError, match="different class counts"):
        backend.predict(model, x, subnets, batch_size=4, mean=MEAN, std=STD)


def test_trainable_mask_of_an_unknown_layer(backend, model):
    with pytest.raises(ValueError, match=r"trainable masks for unknown layers \['nope'\]"):
        backend.start_phase(model, phase(), {"nope": np.ones((2, 2), bool)})


def test_trainable_mask_of_the_wrong_shape(backend, model):
    with pytest.raises(ValueError, match="trainable mask of fc has shape"):
        backend.start_phase(model, phase(), {"fc": np.ones((CLASSES, 3), bool)})


def test_gates_weights_and_bn_for_unknown_layers_or_of_wrong_shape(backend, model):
    with pytest.raises(ValueError, match="gates for unknown layers"):
        backend.set_gates(model, {"nope": np.ones((2, 2), bool)})
    with pytest.raises(ValueError, match="gate of fc has shape"):
        backend.set_gates(model, {"fc": np.ones((2, 2), bool)})
    with pytest.raises(ValueError, match="weights for unknown layers"):
        backend.set_weights(model, {"nope": np.ones((2, 2), np.float32)})
    with pytest.raises(ValueError, match="weights of fc has shape"):
        backend.set_weights(model, {"fc": np.ones((2, 2), np.float32)})
    bn = backend.get_bn(model)
    name = next(iter(bn))
    with pytest.raises(ValueError, match="BN state for unknown layers"):
        backend.set_bn(model, {"nope": bn[name]})
    with pytest.raises(ValueError, match=f"BN state of {name} lacks"):
        backend.set_bn(model, {name: {"gamma": bn[name]["gamma"]}})
    with pytest.raises(ValueError, match=f"BN mean of {name} has shape"):
        backend.set_bn(model, {name: {**bn[name], "mean": bn[name]["mean"][:1]}})
    backend.set_bn(model, bn)  # the model is shared by this module's tests


def test_teacher_is_the_student(backend, model):
    with pytest.raises(ValueError, match="separate model"):
        backend.start_phase(model, phase(kind="distill", beta=1.0), None, model)


def test_distill_phase_with_beta_needs_a_teacher(backend, model):
    with pytest.raises(ValueError, match="needs a teacher"):
        backend.start_phase(model, phase(kind="distill", beta=1.0), None)
    # beta 0: no distillation, so no teacher is needed (and one given is not used)
    backend.start_phase(model, phase(kind="distill", beta=0.0), None)


@pytest.mark.parametrize("make,message", [
    (lambda w: Penalty(weight=1.0, anchor={"nope": w}, importance={"nope": w}),
     "penalty for unknown layers"),
    (lambda w: Penalty(weight=1.0, anchor={"fc": w[:2]}, importance={"fc": w[:2]}),
     "anchor of fc has shape"),
    (lambda w: Penalty(weight=1.0, anchor={"fc": w}, importance={"fc": w[:2]}),
     "importance of fc has shape"),
    (lambda w: Penalty(weight=1.0, anchor={"fc": w}, importance={}),
     "anchors without an importance"),
    (lambda w: Penalty(weight=-1.0, anchor={"fc": w}, importance={"fc": w}),
     "penalty weight"),
    (lambda w: Penalty(weight=float("nan"), anchor={"fc": w}, importance={"fc": w}),
     "penalty weight"),
], ids=["unknown", "anchor-shape", "importance-shape", "no-importance", "negative", "nan"])
def test_bad_penalty_inputs(backend, model, make, message):
    penalty = make(backend.get_weights(model)["fc"])
    with pytest.raises(ValueError, match=message):
        backend.start_phase(model, phase(), None, None, penalty=penalty)


@pytest.mark.parametrize("field,value", [
    ("kind", "student"), ("epochs", -1), ("lr", -0.1), ("lr", float("nan")),
    ("batch_size", 0), ("gamma", 0.0), ("weight_decay", -1.0), ("milestones", (2, 1)),
    ("class_range", (3, 3)), ("class_range", (-1, 2)), ("logit_masking", "none"),
    ("loss", "mse"), ("beta", -1.0), ("outlier_weight", -0.5), ("distill_temperature", 0.0),
    ("distill_range", (4, 2)), ("std", (0.2, 0.2)), ("std", (0.2, 0.0, 0.2)),
])
def test_bad_phase_values_fail_at_construction(field, value):
    good = phase()
    with pytest.raises(ValueError, match=field):
        attrs.evolve(good, **{field: value})


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_predict_refuses_a_batch_size_that_runs_no_batch(backend, model, batch_size):
    """range(0, n, batch_size) would run no batch: the logits would be whatever memory the
    output started with (issue 26)."""
    x, _ = images(4)
    subnets = [Subnet(gates=ones(backend, model), bn=backend.get_bn(model), class_range=(0, 2))]
    with pytest.raises(ValueError, match="batch_size must be"):
        backend.predict(model, x, subnets, batch_size=batch_size, mean=MEAN, std=STD)
