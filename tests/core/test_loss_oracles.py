"""The numpy loss oracles against hand-written formulas on small cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mind_core import metrics
from mind_core.metrics import LOSS_ORACLES
from mind_core.protocol import LOSSES

# softmax([0, ln 3]) = [1/4, 3/4]; softmax([0, 0]) = [1/2, 1/2]
TEACHER = np.array([[0.0, math.log(3.0)]])
STUDENT = np.array([[0.0, 0.0]])
P = (0.25, 0.75)
Q = (0.5, 0.5)


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))


def test_every_protocol_loss_has_an_oracle():
    assert set(LOSS_ORACLES) == set(LOSSES)


def test_kl_by_hand():
    assert metrics.kl_loss(TEACHER, STUDENT) == pytest.approx(kl(P, Q))


def test_sym_kl_by_hand():
    expected = 0.5 * (0.25 * math.log(0.5) + 0.75 * math.log(1.5)) + 0.5 * (
        0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0))
    assert metrics.sym_kl_loss(TEACHER, STUDENT) == pytest.approx(expected)
    assert expected > 0


def test_true_js_by_hand():
    m = tuple((p + q) / 2 for p, q in zip(P, Q, strict=True))
    assert metrics.true_js_loss(TEACHER, STUDENT) == pytest.approx(0.5 * kl(P, m) + 0.5 * kl(Q, m))


def test_true_js_approaches_ln_2_for_disjoint_distributions():
    teacher = np.array([[0.0, 40.0]])
    student = np.array([[40.0, 0.0]])
    assert metrics.true_js_loss(teacher, student) == pytest.approx(math.log(2.0), rel=1e-9)


def test_cosine_by_hand_and_for_zero_logits():
    assert metrics.cosine_loss(np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]])) == pytest.approx(1.0)
    assert metrics.cosine_loss(np.array([[1.0, 1.0]]), np.array([[2.0, 0.0]])) == pytest.approx(
        1.0 - 1.0 / math.sqrt(2.0))
    assert metrics.cosine_loss(np.array([[1.0, 2.0]]), np.array([[-1.0, -2.0]])) == pytest.approx(
        2.0)
    # A zero vector has no direction: the eps floor makes the similarity 0, the loss 1.
    assert metrics.cosine_loss(np.zeros((1, 3)), np.zeros((1, 3))) == pytest.approx(1.0)


def test_l2_is_the_mean_over_batch_and_classes():
    teacher = np.array([[1.0, 2.0], [0.0, 0.0]])
    student = np.array([[1.0, 0.0], [3.0, 0.0]])
    assert metrics.l2_loss(teacher, student) == pytest.approx((0 + 4 + 9 + 0) / 4)


@pytest.mark.parametrize("name", sorted(LOSS_ORACLES))
def test_losses_average_over_the_batch(name):
    rng = np.random.default_rng(7)
    teacher, student = rng.normal(size=(2, 5, 4)) * 3
    loss = LOSS_ORACLES[name]
    per_row = [loss(teacher[i:i + 1], student[i:i + 1]) for i in range(5)]
    assert loss(teacher, student) == pytest.approx(np.mean(per_row))
    assert isinstance(loss(teacher, student), float)


def test_softmax_and_log_softmax_agree_and_survive_large_logits():
    logits = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    probs = metrics.softmax(logits)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0)
    np.testing.assert_allclose(np.exp(metrics.log_softmax(logits)), probs)
    assert np.isfinite(metrics.log_softmax(logits)).all()
