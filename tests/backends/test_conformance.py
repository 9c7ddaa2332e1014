"""Backend conformance: every backend must pass this file, through the protocol alone.

Run it for another backend with MIND_TEST_BACKEND=tf (or module:Class). Only numpy crosses
the boundary here; behaviour that needs bit-exact repeatability asks for the "deterministic"
capability instead of naming a backend. Models are tiny (8x8 inputs) to keep it fast.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mind_core.metrics import LOSS_ORACLES
from mind_core.protocol import LOSSES, MASKINGS
from tests.backends.conformance_helpers import (
    AUGMENT,
    CLASSES,
    MEAN,
    RESNET,
    SMALL,
    STD,
    assert_same,
    expected_layers,
    images,
    logits,
    needs_determinism,
    ones,
    phase,
    random_bn,
    task1_masks,
    train,
    two_subnets,
)


def test_identity(backend):
    assert isinstance(backend.name, str) and isinstance(backend.device, str)
    assert isinstance(backend.capabilities, frozenset)
    versions = backend.versions()
    assert versions and all(isinstance(v, str) for v in versions.values())


@pytest.mark.parametrize("spec", [SMALL, RESNET], ids=["small_cnn", "resnet32"])
def test_layer_names_shapes_and_order(backend, spec):
    model = backend.build_model(spec, seed=0)
    layers, bns = expected_layers(spec)
    infos = backend.layers(model)
    assert [(i.name, tuple(i.shape)) for i in infos] == layers
    assert [i.kind for i in infos] == ["conv"] * (len(layers) - 1) + ["linear"]
    assert [i.classifier for i in infos] == [False] * (len(layers) - 1) + [True]
    assert backend.bn_layers(model) == bns
    weights = backend.get_weights(model)
    assert list(weights) == [name for name, _ in layers]
    assert all(w.dtype == np.float32 and w.shape == shape
               for (_, shape), w in zip(layers, weights.values(), strict=True))
    if spec.arch == "resnet32":
        assert len(layers) == 32 and weights["fc"].shape == (CLASSES, 64)


def test_initialisation(backend):
    model = backend.build_model(RESNET, seed=3)
    for name, w in backend.get_weights(model).items():
        if name.startswith(("layer2", "layer3")):  # big enough for a tight estimate
            fan_in = w.shape[1] * w.shape[2] * w.shape[3]
            assert abs(w.std() / math.sqrt(2.0 / fan_in) - 1) < 0.05, name
            assert abs(w.mean()) < 0.1 * w.std(), name
    for values in backend.get_bn(model).values():
        assert np.all(values["gamma"] == 1) and np.all(values["beta"] == 0)
        assert np.all(values["mean"] == 0) and np.all(values["var"] == 1)


def test_weight_round_trip(backend):
    model = backend.build_model(RESNET, seed=0)
    weights = backend.get_weights(model)
    backend.set_weights(model, weights)
    assert_same(backend.get_weights(model), weights)
    new_fc = np.random.default_rng(1).normal(size=weights["fc"].shape).astype(np.float32)
    backend.set_weights(model, {"fc": new_fc})  # a subset is allowed
    after = backend.get_weights(model)
    assert np.array_equal(after["fc"], new_fc)
    assert_same({k: v for k, v in after.items() if k != "fc"},
                {k: v for k, v in weights.items() if k != "fc"})


def test_same_seed_same_model_other_seed_other_model(backend):
    needs_determinism(backend)
    a, b, c = (backend.get_weights(backend.build_model(SMALL, seed=s)) for s in (4, 4, 5))
    assert_same(a, b)
    assert not np.array_equal(a["conv2"], c["conv2"])


@pytest.mark.parametrize("spec", [SMALL, RESNET], ids=["small_cnn", "resnet32"])
def test_gated_forward_equals_dense_with_zeroed_weights(backend, spec):
    x, _ = images(20)
    gated = backend.build_model(spec, seed=0)
    gates, _ = task1_masks(backend, gated)
    bn = random_bn(backend, gated, seed=2)
    dense = backend.build_model(spec, seed=1)
    backend.set_weights(dense, {k: w * gates[k] for k, w in backend.get_weights(gated).items()})
    out = logits(backend, gated, x, gates, bn)
    np.testing.assert_allclose(out, logits(backend, dense, x, ones(backend, dense), bn),
                               rtol=1e-5, atol=1e-5)
    assert not np.allclose(out, logits(backend, gated, x, ones(backend, gated), bn), atol=1e-3)


def test_predict_runs_each_subnet_with_its_gates_bn_and_classes(backend):
    x, _ = images(20)
    model = backend.build_model(SMALL, seed=0)
    subnets = two_subnets(backend, model)
    out = backend.predict(model, x, subnets, batch_size=7, mean=MEAN, std=STD)
    assert out.shape == (2, 20, 3) and out.dtype == np.float32
    weights = backend.get_weights(model)
    for j, subnet in enumerate(subnets):
        reference = backend.build_model(SMALL, seed=9)
        backend.set_weights(reference, {k: w * subnet.gates[k] for k, w in weights.items()})
        full = logits(backend, reference, x, ones(backend, reference), subnet.bn)
        np.testing.assert_allclose(out[j], full[:, 3 * j:3 * j + 3], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec", [SMALL, RESNET], ids=["small_cnn", "resnet32"])
def test_predict_features_are_the_classifier_input_of_each_subnet(backend, spec):
    x, _ = images(13)
    model = backend.build_model(spec, seed=0)
    subnets = two_subnets(backend, model)
    plain = backend.predict(model, x, subnets, batch_size=5, mean=MEAN, std=STD)
    out, features = backend.predict(model, x, subnets, batch_size=5, mean=MEAN, std=STD,
                                    features=True)
    np.testing.assert_array_equal(out, plain)  # asking for features changes no logit
    classifier = next(info for info in backend.layers(model) if info.classifier)
    assert features.shape == (2, 13, classifier.shape[1]) and features.dtype == np.float32
    assert np.all(features >= 0)  # after the last ReLU and the average pool
    head = backend.get_weights(model)[classifier.name]
    for j, subnet in enumerate(subnets):
        gated = (head * subnet.gates[classifier.name])[3 * j:3 * j + 3]
        np.testing.assert_allclose(features[j] @ gated.T, out[j], rtol=1e-4, atol=1e-4)
    assert not np.allclose(features[0], features[1])  # each subnet's own gates and BN


@pytest.mark.parametrize("spec", [SMALL, RESNET], ids=["small_cnn", "resnet32"])
def test_the_inference_batch_size_changes_no_prediction(backend, spec):
    """inference.batch_size is for speed and memory only: every image's logits and features
    are the same, up to float rounding, whatever batch it falls in."""
    x, _ = images(13)
    model = backend.build_model(spec, seed=0)
    subnets = two_subnets(backend, model)
    whole = backend.predict(model, x, subnets, batch_size=13, mean=MEAN, std=STD, features=True)
    for batch_size in (1, 4):
        out = backend.predict(model, x, subnets, batch_size=batch_size, mean=MEAN, std=STD,
                              features=True)
        for got, expected in zip(out, whole, strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_bn_round_trip_and_bn_changes_predictions(backend):
    model = backend.build_model(SMALL, seed=0)
    x, _ = images(10)
    initial = backend.get_bn(model)
    state = random_bn(backend, model, seed=1)
    backend.set_bn(model, state)
    assert_same(backend.get_bn(model), state)
    gates = ones(backend, model)
    assert not np.allclose(logits(backend, model, x, gates, initial),
                           logits(backend, model, x, gates, state), atol=1e-3)


@pytest.mark.parametrize("name", LOSSES)
def test_distill_loss_matches_numpy_oracle(backend, name):
    rng = np.random.default_rng(0)
    teacher, student = (rng.normal(0, 3, (5, 4)).astype(np.float32) for _ in range(2))
    expected = LOSS_ORACLES[name](teacher.astype(np.float64), student.astype(np.float64))
    assert backend.distill_loss(name, teacher, student) == pytest.approx(expected, rel=1e-4,
                                                                        abs=1e-6)
    assert backend.distill_loss(name, teacher, teacher) == pytest.approx(0.0, abs=1e-5)


def test_updates_reach_only_trainable_entries(backend):
    model = backend.build_model(SMALL, seed=0)
    gates, trainable = task1_masks(backend, model)
    backend.set_gates(model, gates)
    before = backend.get_weights(model)
    train(backend, model, phase(kind="distill"), trainable)
    after = backend.get_weights(model)
    changed = 0
    for name in before:
        frozen = ~trainable[name]
        assert np.array_equal(after[name][frozen], before[name][frozen]), name
        assert np.any(after[name][trainable[name]] != before[name][trainable[name]]), name
        changed += np.count_nonzero(after[name][trainable[name]] != before[name][trainable[name]])
    assert changed > 0.5 * sum(np.count_nonzero(t) for t in trainable.values())


@pytest.mark.parametrize("spec,epochs,outliers", [(SMALL, 3, 0.0), (RESNET, 2, 0.0),
                                                  (SMALL, 2, 1.0)],
                         ids=["small_cnn", "resnet32", "small_cnn-outliers"])
def test_full_distill_phase_keeps_frozen_entries_bit_identical(backend, spec, epochs,
                                                               outliers):
    model = backend.build_model(spec, seed=0)
    teacher = backend.build_model(spec, seed=1)
    gates, trainable = task1_masks(backend, model)
    backend.set_gates(model, gates)
    before, bn_before = backend.get_weights(model), backend.get_bn(model)
    teacher_before = backend.get_weights(teacher), backend.get_bn(teacher)
    ph = phase(kind="distill", epochs=epochs, milestones=(1,), weight_decay=0.1, beta=5.0,
               class_range=(3, 6), augment=AUGMENT, outlier_weight=outliers)
    results = train(backend, model, ph, trainable, teacher, n=20)
    after = backend.get_weights(model)
    for name in before:
        frozen = ~trainable[name]
        assert np.array_equal(after[name][frozen], before[name][frozen]), name
    assert all(r.distill > 0 and r.loss > r.ce and not r.stopped for r in results)
    assert_same(backend.get_weights(teacher), teacher_before[0])  # no gradient, eval mode
    assert_same(backend.get_bn(teacher), teacher_before[1])
    assert any(not np.array_equal(v["mean"], bn_before[k]["mean"])
               for k, v in backend.get_bn(model).items())


def max_probability(backend, model, x, bn, class_range) -> float:
    z = logits(backend, model, x, ones(backend, model), bn, class_range).astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    return float((p / p.sum(1, keepdims=True)).max(1).mean())


def test_outlier_training_lowers_confidence_on_turned_images_only(backend):
    """Routing-aware training: with outlier_weight > 0 the student grows unsure on turned
    copies of its task's images, stays sure on the images, and its BN statistics never see
    the turned copies."""
    x, y = images(48, classes=range(3))
    turned = np.ascontiguousarray(np.rot90(x, 1, axes=(1, 2)))
    out = {}
    for weight in (0.0, 2.0):
        model = backend.build_model(SMALL, seed=0)
        ph = phase(kind="distill", epochs=4, lr=0.01, class_range=(0, 3), outlier_weight=weight)
        trainer = backend.start_phase(model, ph, None)
        for e in range(ph.epochs):
            backend.train_epoch(trainer, x, y, epoch=e, seed=e)
        bn = backend.get_bn(model)
        out[weight] = (max_probability(backend, model, turned, bn, (0, 3)),
                       max_probability(backend, model, x, bn, (0, 3)))
    assert out[2.0][0] < out[0.0][0] - 0.1  # unsure on what is not its task
    assert out[2.0][1] > out[2.0][0] + 0.2  # but sure on its own images
    # lr ~ 0: the weights stay put, so the running statistics could differ only if the
    # turned copies went through BN in training mode.
    states = []
    for weight in (0.0, 2.0):
        model = backend.build_model(SMALL, seed=0)
        train(backend, model, phase(kind="distill", lr=1e-30, class_range=(0, 3),
                                    outlier_weight=weight), n=24)
        states.append({k: {f: v[f] for f in ("mean", "var")}
                       for k, v in backend.get_bn(model).items()})
    assert_same(states[0], states[1])


def test_train_bn_false_keeps_bn_state(backend):
    model = backend.build_model(SMALL, seed=0)
    backend.set_bn(model, random_bn(backend, model, seed=3))
    bn_before, weights_before = backend.get_bn(model), backend.get_weights(model)
    train(backend, model, phase(train_bn=False, weight_decay=0.1, epochs=2))
    assert_same(backend.get_bn(model), bn_before)
    assert not np.array_equal(backend.get_weights(model)["conv1"], weights_before["conv1"])


def test_same_seed_same_epoch(backend):
    needs_determinism(backend)
    runs = []
    for _ in range(2):
        model = backend.build_model(SMALL, seed=0)
        result = train(backend, model, phase(augment=AUGMENT, weight_decay=0.01))[0]
        runs.append((backend.get_weights(model), backend.get_bn(model), result.loss))
    assert_same(runs[0][0], runs[1][0])
    assert_same(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]


def test_trainer_state_resume_is_bit_identical(backend):
    needs_determinism(backend)
    ph = phase(kind="distill", epochs=2, milestones=(1,), weight_decay=0.05, beta=2.0,
               class_range=(0, 3), augment=AUGMENT)
    x, y = images(24, classes=range(3))
    teacher = backend.build_model(SMALL, seed=7)

    def fresh(seed):
        model = backend.build_model(SMALL, seed=seed)
        gates, trainable = task1_masks(backend, model)
        backend.set_gates(model, gates)
        return model, backend.start_phase(model, ph, trainable, teacher)

    straight, trainer = fresh(0)
    for epoch in range(2):
        backend.train_epoch(trainer, x, y, epoch=epoch, seed=10 + epoch)
    first, trainer = fresh(0)
    backend.train_epoch(trainer, x, y, epoch=0, seed=10)
    state = backend.trainer_state(trainer)
    assert state and all(isinstance(v, np.ndarray) for v in state.values())
    weights, bn = backend.get_weights(first), backend.get_bn(first)
    resumed, trainer = fresh(5)
    backend.set_weights(resumed, weights)
    backend.set_bn(resumed, bn)
    backend.load_trainer_state(trainer, state)
    backend.train_epoch(trainer, x, y, epoch=1, seed=11)
    assert_same(backend.get_weights(resumed), backend.get_weights(straight))
    assert_same(backend.get_bn(resumed), backend.get_bn(straight))


def test_progress_every_batch_and_should_stop_abandons_epoch(backend):
    model = backend.build_model(SMALL, seed=0)
    calls = []
    full = train(backend, model, phase(), n=36, progress=lambda *a: calls.append(a))[0]
    assert [c[:2] for c in calls] == [(b, 5) for b in range(1, 6)]
    assert all(math.isfinite(c[2]) for c in calls)
    assert full.images == 36 and not full.stopped and 0 <= full.accuracy <= 1
    assert full.distill == 0.0 and full.ce == pytest.approx(full.loss)
    calls.clear()
    stopped = train(backend, model, phase(), n=36, progress=lambda *a: calls.append(a),
                    should_stop=lambda: len(calls) >= 2)[0]
    assert stopped.stopped and stopped.images == 16 and len(calls) == 2


@pytest.mark.parametrize("masking", MASKINGS)
def test_logit_masking_trains(backend, masking):
    model = backend.build_model(SMALL, seed=0)
    results = train(backend, model, phase(class_range=(2, 4), logit_masking=masking, epochs=4),
                    n=32)
    assert all(math.isfinite(r.loss) for r in results)
    assert results[-1].loss < results[0].loss
    assert results[-1].accuracy > 0.5


def test_zero_masking_keeps_other_logits_in_the_cross_entropy(backend):
    # lr 0 leaves the weights alone, so both runs see the same logits: CE over all outputs
    # with the other logits at 0 is strictly larger than CE over the task's outputs alone.
    ce = {}
    for masking in ("zero", "slice"):
        model = backend.build_model(SMALL, seed=0)
        ph = phase(class_range=(2, 4), logit_masking=masking, lr=0.0)
        ce[masking] = train(backend, model, ph)[0].ce
    assert ce["zero"] > ce["slice"] + 1e-3


@pytest.mark.parametrize("masking", MASKINGS)
def test_distillation_compares_masked_teacher_and_student_logits(backend, masking):
    # Teacher = an exact copy of the student, both in eval mode (train_bn False), lr 0: the
    # distillation term is 0 only if both sides are masked the same way.
    model, teacher = backend.build_model(SMALL, seed=0), backend.build_model(SMALL, seed=0)
    ph = phase(kind="distill", beta=1.0, lr=0.0, train_bn=False, class_range=(2, 4),
               logit_masking=masking)
    result = train(backend, model, ph, teacher=teacher)[0]
    assert result.distill == pytest.approx(0.0, abs=1e-6)
    assert result.loss == pytest.approx(result.ce, abs=1e-6)
