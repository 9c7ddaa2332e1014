"""Backend conformance for the comparison baselines (LwF and EWC): PhaseSpec.distill_range and
distill_temperature, a Penalty in start_phase, Backend.fisher, and the threads argument.

Part of the conformance suite (test_conformance.py, whose helpers it shares): it runs against
whichever backend MIND_TEST_BACKEND names, through the protocol alone, with numpy references.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from mind_core.backend_checks import anchorable_shapes, anchorable_values
from mind_core.metrics import LOSS_ORACLES
from mind_core.numerics import log_softmax
from mind_core.protocol import Penalty
from tests.backends.conformance_helpers import (
    AUGMENT,
    MEAN,
    SMALL,
    STD,
    assert_same,
    images,
    logits,
    needs_determinism,
    ones,
    phase,
    random_bn,
    task1_masks,
)

DEVICE = os.environ.get("MIND_TEST_DEVICE", "cpu")  # as the backend fixture's


def ce_oracle(z: np.ndarray, y: np.ndarray, class_range, masking: str) -> float:
    """The phase's cross-entropy on full-width float64 logits: "slice" keeps the task's
    logits and shifts the labels, "zero" zeroes every other logit and keeps global labels."""
    lo, hi = class_range
    if masking == "slice":
        z, y = z[:, lo:hi], y - lo
    else:
        z = np.where((np.arange(z.shape[1]) >= lo) & (np.arange(z.shape[1]) < hi), z, 0.0)
    return float(-log_softmax(z)[np.arange(len(y)), y].mean())


def distill_oracle(name: str, teacher: np.ndarray, student: np.ndarray, class_range,
                   masking: str, distill_range, temperature: float) -> float:
    """loss(teacher / T, student / T) on the compared logits: distill_range's classes, or
    without one the phase's masked logits (full width with zeros for "zero" masking). No T^2
    factor: Li and Hoiem's L_old is weighted by lambda alone."""
    if distill_range is not None:
        lo, hi = distill_range
        teacher, student = teacher[:, lo:hi], student[:, lo:hi]
    else:
        lo, hi = class_range
        keep = (np.arange(teacher.shape[1]) >= lo) & (np.arange(teacher.shape[1]) < hi)
        if masking == "slice":
            teacher, student = teacher[:, keep], student[:, keep]
        else:
            teacher, student = teacher * keep, student * keep
    t = temperature
    return LOSS_ORACLES[name](teacher / t, student / t)


@pytest.mark.parametrize("name,masking,distill_range,temperature", [
    ("kl", "zero", (1, 4), 2.0),  # LwF: the old classes of a class range that covers them
    ("kl", "slice", (1, 4), 2.0),
    ("sym_kl", "zero", (2, 6), 0.5),
    ("true_js", "slice", (1, 6), 3.0),
    ("cosine", "slice", (3, 5), 2.0),
    ("l2", "zero", (1, 6), 4.0),
    ("sym_kl", "zero", None, 1.0),  # today's term: the masked logits, no temperature
    ("kl", "zero", None, 2.0),
    ("true_js", "slice", None, 3.0),
], ids=lambda v: str(v))
def test_distill_range_and_temperature_match_numpy_oracles(backend, name, masking,
                                                           distill_range, temperature):
    check_distill(backend, name, masking, distill_range, temperature, class_range=(1, 6))


def test_lwf_distils_old_classes_outside_the_current_head(backend):
    # LwF's phase: cross-entropy over the current task's classes, distillation of the
    # earlier ones, which the class range does not cover.
    check_distill(backend, "kl", "slice", (0, 3), 2.0, class_range=(3, 6))


def check_distill(backend, name, masking, distill_range, temperature, class_range):
    # lr 0 and train_bn False: both models stay as they are and run BN in inference mode,
    # so predict() gives exactly the logits the phase's losses saw.
    model, teacher = backend.build_model(SMALL, seed=0), backend.build_model(SMALL, seed=1)
    backend.set_bn(model, random_bn(backend, model, seed=2))
    backend.set_bn(teacher, random_bn(backend, teacher, seed=3))
    ph = phase(kind="distill", lr=0.0, train_bn=False, beta=0.7, class_range=class_range,
               logit_masking=masking, loss=name, distill_range=distill_range,
               distill_temperature=temperature)
    x, y = images(20, classes=range(*class_range))
    result = backend.train_epoch(backend.start_phase(model, ph, None, teacher), x, y,
                                 epoch=0, seed=0)
    s, t = (logits(backend, m, x, ones(backend, m), backend.get_bn(m)).astype(np.float64)
            for m in (model, teacher))
    ce = ce_oracle(s, y, class_range, masking)
    distill = distill_oracle(name, t, s, class_range, masking, distill_range, temperature)
    assert result.ce == pytest.approx(ce, rel=1e-4, abs=1e-6)
    assert result.distill == pytest.approx(distill, rel=1e-4, abs=1e-6)
    assert result.loss == pytest.approx(ce + 0.7 * distill, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("field,value", [("distill_range", (4, 9)), ("distill_range", (3, 3)),
                                         ("distill_temperature", 0.0),
                                         ("distill_temperature", -1.0)])
def test_bad_distill_range_or_temperature_is_a_value_error(backend, field, value):
    model, teacher = backend.build_model(SMALL, seed=0), backend.build_model(SMALL, seed=1)
    with pytest.raises(ValueError):
        backend.start_phase(model, phase(kind="distill", beta=1.0, **{field: value}), None,
                            teacher)


def start(backend, model, ph, trainable=None, penalty=None):
    return backend.start_phase(model, ph, trainable, None, penalty=penalty)


def penalty_oracle(penalty: Penalty, weights) -> float:
    return penalty.weight / 2 * sum(
        float((penalty.importance[k].astype(np.float64)
               * (weights[k].astype(np.float64) - penalty.anchor[k]) ** 2).sum())
        for k in penalty.anchor)


def test_penalty_is_part_of_the_loss_only(backend):
    # lr 0: the weights, hence the penalty, stay the same for every batch, and both runs see
    # the same cross-entropy.
    x, y = images(20)
    rng = np.random.default_rng(4)
    results = []
    for use_penalty in (False, True):
        model = backend.build_model(SMALL, seed=0)
        weights = backend.get_weights(model)
        penalty = Penalty(weight=3.0,
                          anchor={k: (weights[k] + rng.normal(0, 0.02, weights[k].shape))
                                  .astype(np.float32) for k in ("conv2", "fc")},
                          importance={k: rng.uniform(0, 2, weights[k].shape).astype(np.float32)
                                      for k in ("conv2", "fc")})
        trainer = start(backend, model, phase(lr=0.0), penalty=penalty if use_penalty else None)
        results.append(backend.train_epoch(trainer, x, y, epoch=0, seed=0))
        assert_same(backend.get_weights(model), weights)
    expected = penalty_oracle(penalty, weights)
    assert expected > 0.1
    plain, pulled = results
    assert pulled.ce == pytest.approx(plain.ce, rel=1e-5) and pulled.distill == 0.0
    assert pulled.loss - plain.loss == pytest.approx(expected, rel=1e-4)


def test_penalty_anchors_bn_gamma_and_beta(backend):
    # FACIL's EWC anchors every feature-extractor parameter, BN's affine ones included.
    x, y = images(20)
    model = backend.build_model(SMALL, seed=0)
    values = anchorable_values(backend.get_weights(model), backend.get_bn(model))
    names = [k for k in anchorable(backend, model) if k.endswith((".gamma", ".beta"))][:2]
    rng = np.random.default_rng(5)
    penalty = Penalty(weight=3.0, anchor={k: values[k] + 0.5 for k in names},
                      importance={k: rng.uniform(0, 2, values[k].shape).astype(np.float32)
                                  for k in names})
    results = [backend.train_epoch(start(backend, model, phase(lr=0.0, train_bn=False),
                                         penalty=pull), x, y, epoch=0, seed=0)
               for pull in (None, penalty)]
    assert results[1].loss - results[0].loss == pytest.approx(
        penalty_oracle(penalty, values), rel=1e-4)


def test_penalty_pulls_towards_the_anchor_and_never_moves_frozen_entries(backend):
    # One batch, one AdamW step: an entry moves by about lr * sign(gradient). With importance
    # 1 and a large weight the penalty's gradient decides the sign: towards the anchor. With
    # importance 0 the entry takes exactly the step it takes without a penalty.
    x, y = images(16)
    rng = np.random.default_rng(6)
    after = {}
    for use_penalty in (False, True):
        model = backend.build_model(SMALL, seed=0)
        gates, trainable = task1_masks(backend, model)
        backend.set_gates(model, gates)
        before = backend.get_weights(model)
        if use_penalty:
            anchor = {k: (w + rng.choice([-1.0, 1.0], w.shape)).astype(np.float32)
                      for k, w in before.items()}
            importance = {k: (rng.random(w.shape) < 0.5).astype(np.float32)
                          for k, w in before.items()}
            penalty = Penalty(weight=1000.0, anchor=anchor, importance=importance)
        trainer = start(backend, model, phase(batch_size=16), trainable,
                        penalty if use_penalty else None)
        backend.train_epoch(trainer, x, y, epoch=0, seed=0)
        after[use_penalty] = backend.get_weights(model)
    for k, w in before.items():
        frozen = ~trainable[k]
        assert np.array_equal(after[True][k][frozen], w[frozen]), k
        free = trainable[k] & (importance[k] == 0)
        np.testing.assert_allclose(after[True][k][free], after[False][k][free], rtol=0,
                                   atol=1e-6, err_msg=k)
        pulled = trainable[k] & (importance[k] > 0)
        moved = np.sign(after[True][k][pulled] - w[pulled])
        assert np.array_equal(moved, np.sign(anchor[k] - w)[pulled]), k


def test_penalty_keeps_weights_near_the_anchor_over_epochs(backend):
    # EWC's use: the anchor is where the weights start, the importance says which to hold.
    x, y = images(32)
    distance = {}
    for weight in (0.0, 50.0):
        model = backend.build_model(SMALL, seed=0)
        gates, trainable = task1_masks(backend, model)
        backend.set_gates(model, gates)
        before = backend.get_weights(model)
        penalty = Penalty(weight=weight, anchor=before,
                          importance={k: np.ones_like(w) for k, w in before.items()})
        trainer = start(backend, model, phase(lr=0.01, weight_decay=0.1), trainable, penalty)
        results = [backend.train_epoch(trainer, x, y, epoch=e, seed=e) for e in range(3)]
        after = backend.get_weights(model)
        for k, w in before.items():
            assert np.array_equal(after[k][~trainable[k]], w[~trainable[k]]), k
        distance[weight] = sum(float(((after[k] - w) ** 2).sum()) for k, w in before.items())
        assert all(r.loss >= r.ce - 1e-6 for r in results)
    assert distance[50.0] < 0.5 * distance[0.0]


def test_zero_importance_trains_as_without_penalty(backend):
    needs_determinism(backend)
    x, y = images(24)
    runs = []
    for use_penalty in (False, True):
        model = backend.build_model(SMALL, seed=0)
        gates, trainable = task1_masks(backend, model)
        backend.set_gates(model, gates)
        weights = backend.get_weights(model)
        penalty = Penalty(weight=10.0, anchor={k: w + 1 for k, w in weights.items()},
                          importance={k: np.zeros_like(w) for k, w in weights.items()})
        trainer = start(backend, model, phase(augment=AUGMENT, weight_decay=0.05), trainable,
                        penalty if use_penalty else None)
        result = [backend.train_epoch(trainer, x, y, epoch=e, seed=e) for e in range(2)][-1]
        runs.append((backend.get_weights(model), backend.get_bn(model), result.loss))
    assert_same(runs[0][0], runs[1][0])
    assert_same(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]


def test_bad_penalty_is_a_value_error(backend):
    model = backend.build_model(SMALL, seed=0)
    w = backend.get_weights(model)["fc"]
    bad = [Penalty(weight=1.0, anchor={"nope": w}, importance={"nope": w}),
           Penalty(weight=1.0, anchor={"fc": w[:2]}, importance={"fc": w[:2]}),
           Penalty(weight=1.0, anchor={"fc": w}, importance={}),
           Penalty(weight=-1.0, anchor={"fc": w}, importance={"fc": w})]
    for penalty in bad:
        with pytest.raises(ValueError):
            start(backend, model, phase(), penalty=penalty)


def fisher_setup(backend, spec=SMALL, n=13):
    model = backend.build_model(spec, seed=0)
    gates, _ = task1_masks(backend, model, seed=1)
    backend.set_gates(model, gates)
    backend.set_bn(model, random_bn(backend, model, seed=2))
    x, y = images(n, seed=3, classes=range(2, 5))
    return model, gates, x, y


def anchorable(backend, model) -> dict:
    return anchorable_shapes({i.name: tuple(i.shape) for i in backend.layers(model)},
                             {k: len(v["gamma"]) for k, v in backend.get_bn(model).items()})


def test_fisher_labels_are_the_models_own_prediction(backend):
    # FACIL's max_pred. One image, dense gates: the classifier row j's Fisher is
    # (p_j - [j = c]) ** 2 * h ** 2 for label c, so its total is (|p| ** 2 - 2 p_c + 1) |h| ** 2,
    # smallest for the class the model predicts, whatever BN mode gave p and h.
    model = backend.build_model(SMALL, seed=0)
    backend.set_bn(model, random_bn(backend, model, seed=2))
    x, _ = images(1, seed=5)
    head = next(info.name for info in backend.layers(model) if info.classifier)
    given = [backend.fisher(model, x, np.array([c]), (2, 5), 1, MEAN, STD) for c in (2, 3, 4)]
    totals = [float(f[head].sum()) for f in given]
    assert len({round(t, 6) for t in totals}) == 3
    own = backend.fisher(model, x, None, (2, 5), 1, MEAN, STD)
    expected = given[int(np.argmin(totals))]
    for name, value in own.items():
        np.testing.assert_allclose(value, expected[name], rtol=1e-5, atol=1e-12, err_msg=name)


def test_fisher_runs_bn_in_training_mode(backend):
    # Batch statistics, as FACIL's model.train(): the running statistics play no part.
    model, gates, x, y = fisher_setup(backend)
    before = backend.fisher(model, x, y, (2, 5), 5, MEAN, STD)
    other = random_bn(backend, model, seed=7)
    bn = backend.get_bn(model)
    backend.set_bn(model, {k: {**v, "mean": other[k]["mean"], "var": other[k]["var"]}
                           for k, v in bn.items()})
    after = backend.fisher(model, x, y, (2, 5), 5, MEAN, STD)
    for name, value in before.items():
        np.testing.assert_allclose(after[name], value, rtol=1e-4, atol=1e-12, err_msg=name)


def test_fisher_names_zeros_and_batches(backend):
    model, gates, x, y = fisher_setup(backend, n=10)
    weights, bn = backend.get_weights(model), backend.get_bn(model)
    fisher = backend.fisher(model, x, y, (2, 5), 4, MEAN, STD)
    assert [(k, v.shape) for k, v in fisher.items()] == list(anchorable(backend,
                                                                         model).items())
    for k, f in fisher.items():
        assert f.dtype == np.float32 and np.all(np.isfinite(f)) and np.all(f >= 0), k
        assert np.any(f > 0), k
        if k in gates:
            assert np.all(f[~gates[k]] == 0), k  # a gated-off entry does not reach the loss
    head = next(info.name for info in backend.layers(model) if info.classifier)
    assert np.all(fisher[head][[0, 1, 5]] == 0)  # classes outside the range: no gradient
    assert_same(backend.get_weights(model), weights)
    assert_same(backend.get_bn(model), bn)  # the running statistics are put back
    # FACIL's batches: the full ones (4 and 4; the last 2 samples are left out), F the mean
    # of their squared gradients; with no full batch, one batch of everything.
    parts = [backend.fisher(model, x[s:s + 4], y[s:s + 4], (2, 5), 4, MEAN, STD)
             for s in (0, 4)]
    short = backend.fisher(model, x[:3], y[:3], (2, 5), 4, MEAN, STD)
    whole = backend.fisher(model, x[:3], y[:3], (2, 5), 3, MEAN, STD)
    for k, f in fisher.items():
        np.testing.assert_allclose(f, (parts[0][k] + parts[1][k]) / 2, rtol=1e-4,
                                   atol=1e-12 + 1e-5 * f.max(), err_msg=k)
        np.testing.assert_allclose(short[k], whole[k], rtol=1e-5, atol=1e-12, err_msg=k)


def test_fisher_leaves_training_as_it_was(backend):
    # Computing a Fisher between two epochs (no gradient left behind, no BN statistic or
    # optimiser state touched) gives the same second epoch as not computing it.
    needs_determinism(backend)
    runs = []
    for compute in (False, True):
        model, gates, x, y = fisher_setup(backend, n=16)
        _, trainable = task1_masks(backend, model, seed=1)
        trainer = backend.start_phase(model, phase(class_range=(2, 5), weight_decay=0.05),
                                      trainable)
        backend.train_epoch(trainer, x, y, epoch=0, seed=0)
        if compute:
            backend.fisher(model, x, y, (2, 5), 5, MEAN, STD)
            backend.set_gates(model, gates)
        result = backend.train_epoch(trainer, x, y, epoch=1, seed=1)
        runs.append((backend.get_weights(model), backend.get_bn(model), result.loss,
                     backend.trainer_state(trainer)))
    for a, b in zip(*runs, strict=True):
        if isinstance(a, dict):
            assert_same(a, b)
        else:
            assert a == b


@pytest.mark.parametrize("bad", [0, -2, 1.5, "4", True])
def test_threads_must_be_a_positive_whole_number(backend, bad):
    with pytest.raises(ValueError):
        type(backend)(device=DEVICE, threads=bad)


def test_threads_argument_is_accepted(backend):
    # 1, as the suite runs with anyway (conftest's OMP_NUM_THREADS).
    other = type(backend)(device=DEVICE, threads=1)
    assert other.device == backend.device and other.name == backend.name
