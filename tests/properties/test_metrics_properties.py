"""Task-agnostic / task-aware metrics on generated logits, and matrix summaries."""

from __future__ import annotations

import attrs
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mind_core.metrics import backward_transfer, evaluate_logits, forgetting
from mind_core.routing import SCORE_ONLY

ROUTINGS = st.sampled_from(SCORE_ONLY)  # the rules that need no feature statistics
TEMPERATURES = st.floats(0.1, 20.0)


@attrs.frozen
class Case:
    logits: np.ndarray  # [T, n, c]
    labels: np.ndarray
    true_tasks: np.ndarray
    class_ranges: list[tuple[int, int]]


@st.composite
def cases(draw, domain: bool = False, min_classes: int = 1) -> Case:
    num_tasks = draw(st.integers(1, 5))
    width = draw(st.integers(min_classes, 4))
    n = draw(st.integers(1, 20))
    logits = draw(hnp.arrays(np.float64, (num_tasks, n, width),
                             elements=st.floats(-10, 10, allow_nan=False)))
    true_tasks = np.array(draw(st.lists(st.integers(0, num_tasks - 1), min_size=n, max_size=n)))
    within = np.array(draw(st.lists(st.integers(0, width - 1), min_size=n, max_size=n)))
    if domain:
        class_ranges = [(0, width)] * num_tasks
        labels = within
    else:
        class_ranges = [(t * width, (t + 1) * width) for t in range(num_tasks)]
        labels = true_tasks * width + within
    return Case(logits, labels, true_tasks, class_ranges)


def evaluate(case: Case, temperature: float, routing: str):
    return evaluate_logits(case.logits, case.labels, case.true_tasks, case.class_ranges,
                           temperature, routing)


@given(cases(), TEMPERATURES, ROUTINGS)
def test_task_agnostic_never_beats_task_aware_with_disjoint_classes(case, temperature, routing):
    result = evaluate(case, temperature, routing)
    assert result.tag <= result.taw
    assert result.tag_entropy <= result.taw
    assert result.tag <= result.routing
    for tag, taw in zip(result.per_task_tag, result.per_task_taw, strict=True):
        assert np.isnan(taw) or tag <= taw


# Temperatures >= 1 keep the other tasks measurably unsure (logit gaps <= 20 after scaling).
@given(cases(min_classes=2), st.floats(1.0, 20.0), ROUTINGS, st.data())
def test_perfect_routing_makes_task_agnostic_equal_task_aware(case, temperature, routing, data):
    # A huge logit makes the true task's sub-network certain; the others stay unsure.
    logits = case.logits.copy()
    samples = np.arange(len(case.labels))
    boosted = np.array(data.draw(st.lists(st.integers(0, logits.shape[2] - 1),
                                          min_size=len(samples), max_size=len(samples))))
    logits[case.true_tasks, samples, boosted] = 1e4
    result = evaluate(attrs.evolve(case, logits=logits), temperature, routing)
    assert result.routing == 1.0
    assert result.tag == result.taw
    np.testing.assert_array_equal(result.per_task_tag, result.per_task_taw)  # NaN: no samples


@given(cases(), TEMPERATURES, ROUTINGS)
def test_confusion_counts_every_sample_once_and_its_diagonal_is_routing(case, temperature,
                                                                          routing):
    result = evaluate(case, temperature, routing)
    confusion = np.array(result.confusion)
    num_tasks = len(case.class_ranges)
    assert confusion.shape == (num_tasks, num_tasks)
    np.testing.assert_array_equal(confusion.sum(axis=1),
                                  np.bincount(case.true_tasks, minlength=num_tasks))
    assert np.isclose(np.trace(confusion) / len(case.labels), result.routing)


@given(cases(), TEMPERATURES, TEMPERATURES)
def test_temperature_does_not_change_task_aware_accuracy(case, t1, t2):
    assert evaluate(case, t1, "max_prob").taw == evaluate(case, t2, "max_prob").taw


@given(cases(domain=True), TEMPERATURES, ROUTINGS)
def test_domain_incremental_accuracies_are_fractions(case, temperature, routing):
    result = evaluate(case, temperature, routing)
    for value in (result.tag, result.taw, result.routing, result.tag_entropy):
        assert 0.0 <= value <= 1.0
    if len(case.class_ranges) == 1:
        assert result.tag == result.taw == result.tag_entropy
        assert result.routing == 1.0


@st.composite
def matrices(draw) -> list[list[float]]:
    rows = draw(st.integers(1, 6))
    return [draw(st.lists(st.floats(0, 1), min_size=t + 1, max_size=t + 1)) for t in range(rows)]


@given(matrices())
def test_average_forgetting_is_at_least_minus_backward_transfer(matrix):
    # max over earlier rows >= the diagonal entry, so f_j >= A[j][j] - A[last][j] term by term.
    per_task, average = forgetting(matrix)
    assert len(per_task) == len(matrix) - 1
    assert average >= -backward_transfer(matrix) - 1e-12


@given(matrices())
def test_unchanged_accuracies_mean_no_forgetting_and_no_transfer(matrix):
    diagonal = [matrix[t][t] for t in range(len(matrix))]
    frozen = [diagonal[:t + 1] for t in range(len(matrix))]
    per_task, average = forgetting(frozen)
    assert per_task == [0.0] * (len(matrix) - 1)
    assert average == 0.0
    assert backward_transfer(frozen) == 0.0
