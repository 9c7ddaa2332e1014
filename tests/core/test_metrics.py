"""TAg/TAw/routing on hand-computed logits, the entropy rule, matrices, forgetting and BWT."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mind_core.metrics import (
    Evaluation,
    accuracy_matrix,
    add_row,
    backward_transfer,
    evaluate_logits,
    forgetting,
    summary,
)


def test_two_tasks_by_hand():
    # logits[task][sample]: sample 0 is easy, sample 1 is routed to the wrong task (task 0 is
    # more confident), sample 2 is routed right.
    logits = np.array([[[0, 2], [3, 0], [0, 0]],
                       [[1, 0], [2, 0], [0, 1]]], dtype=np.float32)
    result = evaluate_logits(logits, labels=np.array([1, 2, 3]), true_tasks=np.array([0, 1, 1]),
                             class_ranges=[(0, 2), (2, 4)], temperature=1.0)
    assert result.tag == pytest.approx(2 / 3)
    assert result.taw == 1.0
    assert result.routing == pytest.approx(2 / 3)
    assert result.per_task_tag == [1.0, 0.5]
    assert result.per_task_taw == [1.0, 1.0]
    assert result.per_task_routing == [1.0, 0.5]
    assert result.confusion == [[1, 0], [1, 1]]


def entropy_case():
    # Sample 0 (true task 1): task 0 is most confident (0.5 vs 0.49) but task 1 is more peaked.
    # Sample 1 (true task 0): task 2 has the lowest entropy but is only third most confident.
    probs = np.array([
        [[0.50, 0.25, 0.25], [0.60, 0.20, 0.20]],
        [[0.49, 0.47, 0.04], [0.55, 0.30, 0.15]],
        [[1 / 3, 1 / 3, 1 / 3], [0.52, 0.47, 0.01]],
    ])
    return dict(logits=np.log(probs), labels=np.array([3, 0]), true_tasks=np.array([1, 0]),
                class_ranges=[(0, 3), (3, 6), (6, 9)], temperature=1.0)


def test_entropy_rule_picks_the_more_peaked_of_the_two_most_confident_tasks():
    result = evaluate_logits(**entropy_case(), routing="entropy")
    assert result.tag == 1.0
    assert result.tag_entropy == 1.0
    assert result.routing == 1.0
    assert result.confusion == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]


def test_max_prob_rule_reports_the_entropy_rule_beside_it():
    result = evaluate_logits(**entropy_case(), routing="max_prob")
    assert result.tag == 0.5
    assert result.routing == 0.5
    assert result.tag_entropy == 1.0
    assert result.confusion == [[1, 0, 0], [1, 0, 0], [0, 0, 0]]


def test_temperature_can_change_the_routing():
    # Task 0 has one clear winner; task 1 two close ones and a distant third. Sharpening
    # (T = 1) favours task 0, flattening (T = 10) favours task 1.
    logits = np.array([[[2.0, 0.0, 0.0]], [[1.5, 1.4, -10.0]]])
    kwargs = dict(labels=np.array([3]), true_tasks=np.array([1]), class_ranges=[(0, 3), (3, 6)])
    assert evaluate_logits(logits, temperature=1.0, **kwargs).routing == 0.0
    assert evaluate_logits(logits, temperature=10.0, **kwargs).routing == 1.0


def test_domain_incremental_ranges_and_a_single_task():
    logits = np.array([[[5, 0, 0], [0, 0, 2]], [[0, 9, 0], [0, 1, 0]]], dtype=float)
    result = evaluate_logits(logits, labels=np.array([0, 2]), true_tasks=np.array([0, 1]),
                             class_ranges=[(0, 3), (0, 3)], temperature=2.0)
    # Sample 0 goes to task 1 (9 beats 5) which says class 1; sample 1 goes to task 0 (class 2).
    assert result.taw == 0.5
    assert result.tag == 0.5
    assert result.routing == 0.0
    single = evaluate_logits(logits[:1], labels=np.array([0, 1]), true_tasks=np.array([0, 0]),
                             class_ranges=[(0, 3)], temperature=1.0)
    assert single.tag == single.taw == single.tag_entropy == 0.5
    assert single.routing == 1.0


def test_a_task_without_samples_reports_nan():
    logits = np.zeros((2, 1, 2))
    result = evaluate_logits(logits, np.array([0]), np.array([0]), [(0, 2), (2, 4)], 1.0)
    assert result.per_task_taw[0] == 1.0
    assert np.isnan(result.per_task_taw[1])


@pytest.mark.parametrize("change, message", [
    (dict(routing="vote"), "routing"),
    (dict(temperature=0.0), "temperature"),
    (dict(class_ranges=[(0, 2)]), "class ranges"),
    (dict(class_ranges=[(0, 3), (3, 6)]), "span"),
    (dict(true_tasks=np.array([0, 2])), "true_tasks"),
    (dict(labels=np.array([0])), "labels"),
])
def test_bad_inputs_are_refused(change, message):
    kwargs = dict(logits=np.zeros((2, 2, 2)), labels=np.array([0, 2]),
                  true_tasks=np.array([0, 1]), class_ranges=[(0, 2), (2, 4)], temperature=1.0)
    with pytest.raises(ValueError, match=message):
        evaluate_logits(**{**kwargs, **change})


MATRIX = [[0.9], [0.95, 0.8], [0.6, 0.7, 0.95]]


def test_forgetting_uses_the_best_earlier_accuracy():
    per_task, average = forgetting(MATRIX)
    assert per_task == pytest.approx([0.95 - 0.6, 0.8 - 0.7])
    assert average == pytest.approx((0.35 + 0.1) / 2)


def test_backward_transfer_compares_with_the_diagonal():
    assert backward_transfer(MATRIX) == pytest.approx(((0.6 - 0.9) + (0.7 - 0.8)) / 2)


def test_one_task_has_no_forgetting_and_no_transfer():
    assert forgetting([[0.7]]) == ([], 0.0)
    assert backward_transfer([[0.7]]) == 0.0


def test_matrices_must_be_lower_triangular():
    with pytest.raises(ValueError, match="row 1"):
        forgetting([[0.5], [0.5]])
    with pytest.raises(ValueError, match="empty"):
        backward_transfer([])
    with pytest.raises(ValueError, match="2 entries"):
        add_row([[0.5]], [0.5, 0.5, 0.5])


def evaluation(per_task_tag, per_task_taw, tag):
    return Evaluation(tag=tag, taw=float(np.mean(per_task_taw)), routing=tag, tag_entropy=tag,
                      per_task_tag=per_task_tag, per_task_taw=per_task_taw,
                      per_task_routing=per_task_tag,
                      confusion=[[1] * len(per_task_tag)] * len(per_task_tag))


def test_summary_builds_the_metrics_json_content():
    evaluations = [evaluation([0.9], [0.9], 0.9), evaluation([0.5, 0.8], [0.85, 0.9], 0.65)]
    assert accuracy_matrix(evaluations, "taw") == [[0.9], [0.85, 0.9]]
    result = summary(evaluations)
    assert json.loads(json.dumps(result)) == result
    assert result["tasks_done"] == 2
    assert result["final"] == {"tag": 0.65, "taw": 0.875, "routing": 0.65, "tag_entropy": 0.65,
                               "rules": {}}
    assert result["tag"] == [0.9, 0.65]
    assert result["acc_matrix_tag"] == [[0.9], [0.5, 0.8]]
    assert result["forgetting"]["tag"]["per_task"] == pytest.approx([0.4])
    assert result["forgetting"]["taw"]["average"] == pytest.approx(0.05)
    assert result["bwt"]["tag"] == pytest.approx(-0.4)
    assert result["confusion"] == [[1, 1], [1, 1]]
