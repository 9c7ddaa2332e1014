"""The numpy loss oracles, for all logit batches: symmetry, sign, zero at equality, JS bound."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mind_core.metrics import LOSS_ORACLES
from mind_core.protocol import LOSSES

SYMMETRIC = [name for name in LOSSES if name != "kl"]  # a new loss must say which it is
TOLERANCE = 1e-9  # float rounding only; the exact values are 0 or the bound


@st.composite
def logit_pairs(draw):
    # |logits| <= 50: probabilities stay far from underflow, where true_js takes log(0).
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 8)))
    elements = st.floats(-50, 50, allow_nan=False)
    return (draw(hnp.arrays(np.float64, shape, elements=elements)),
            draw(hnp.arrays(np.float64, shape, elements=elements)))


@given(logit_pairs(), st.sampled_from(SYMMETRIC))
def test_symmetric_losses_do_not_care_which_side_is_the_teacher(pair, name):
    teacher, student = pair
    loss = LOSS_ORACLES[name]
    assert math.isclose(loss(teacher, student), loss(student, teacher), rel_tol=1e-9,
                        abs_tol=TOLERANCE)


@given(logit_pairs(), st.sampled_from(sorted(LOSS_ORACLES)))
def test_every_loss_is_non_negative(pair, name):
    assert LOSS_ORACLES[name](*pair) >= -TOLERANCE


@given(logit_pairs(), st.sampled_from(sorted(LOSS_ORACLES)))
def test_every_loss_is_zero_for_equal_logits(pair, name):
    logits = pair[0]
    if name == "cosine":
        # A (near-)zero logit vector has no direction: below the oracle's eps floor on the norm
        # product the loss tends to 1 (see test_loss_oracles). Move such rows away from 0.
        tiny = np.linalg.norm(logits, axis=-1, keepdims=True) < 1e-3
        logits = logits + np.where(tiny, 1.0, 0.0)
    assert abs(LOSS_ORACLES[name](logits, logits.copy())) <= TOLERANCE


@given(logit_pairs())
def test_true_js_is_at_most_ln_2(pair):
    assert LOSS_ORACLES["true_js"](*pair) <= math.log(2) + TOLERANCE


@given(logit_pairs())
def test_symmetric_kl_is_the_mean_of_both_kl_directions(pair):
    teacher, student = pair
    kl = LOSS_ORACLES["kl"]
    expected = 0.5 * (kl(teacher, student) + kl(student, teacher))
    assert math.isclose(LOSS_ORACLES["sym_kl"](teacher, student), expected, rel_tol=1e-9,
                        abs_tol=TOLERANCE)


@given(logit_pairs(), st.sampled_from(["sym_kl", "true_js", "kl"]), st.floats(-100, 100))
def test_probability_losses_ignore_a_constant_shift_of_the_logits(pair, name, shift):
    teacher, student = pair
    loss = LOSS_ORACLES[name]
    assert math.isclose(loss(teacher + shift, student), loss(teacher, student), rel_tol=1e-6,
                        abs_tol=1e-9)
