"""Ownership arrays, allocation, gates and counts on small hand-checked cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mind_core import masks
from mind_core.protocol import LayerInfo

CONV = LayerInfo(name="conv.weight", shape=(4, 2, 3, 3), kind="conv")
HEAD = LayerInfo(name="head.weight", shape=(6, 5), kind="linear", classifier=True)
LAYERS = [CONV, HEAD]


def allocate(owner, task, **kwargs):
    kwargs.setdefault("layers", LAYERS)
    kwargs.setdefault("num_tasks", 3)
    kwargs.setdefault("rng", np.random.default_rng(0))
    return masks.allocate(owner, task, **kwargs)


def test_new_ownership_is_free_everywhere_in_the_canonical_shape():
    owner = masks.new_ownership(LAYERS, 3)
    assert owner["conv.weight"].shape == (4, 2, 3, 3)
    assert owner["head.weight"].shape == (6, 5)
    assert all((o == -1).all() for o in owner.values())


@pytest.mark.parametrize("num_tasks, dtype", [(1, np.int8), (127, np.int8), (128, np.int16)])
def test_ownership_uses_the_smallest_type_that_holds_every_task(num_tasks, dtype):
    assert masks.new_ownership(LAYERS, num_tasks)["conv.weight"].dtype == dtype


def test_quota_is_the_floor_of_numel_over_tasks():
    assert masks.quota(72, 10) == 7
    assert masks.quota(5, 10) == 0
    with pytest.raises(ValueError):
        masks.quota(10, 0)


def test_random_allocation_gives_the_quota_and_the_classifier_its_rows():
    owner = allocate(masks.new_ownership(LAYERS, 3), 1, class_range=(2, 4))
    assert (owner["conv.weight"] == 1).sum() == 72 // 3
    expected_head = np.full((6, 5), -1)
    expected_head[2:4] = 1
    np.testing.assert_array_equal(owner["head.weight"], expected_head)


def test_domain_incremental_classifier_is_allocated_by_quota():
    owner = allocate(masks.new_ownership(LAYERS, 3), 0, class_range=None)
    assert (owner["head.weight"] == 0).sum() == 30 // 3


def test_a_task_gets_fewer_than_its_quota_when_fewer_are_free():
    layer = LayerInfo(name="fc.weight", shape=(2, 3), kind="linear")
    owner = {"fc.weight": np.array([[0, 0, -1], [0, -1, 0]], np.int8)}
    after = masks.allocate(owner, 1, layers=[layer], num_tasks=2, rng=np.random.default_rng(1))
    # quota 6 // 2 = 3, but only 2 entries are free
    np.testing.assert_array_equal(after["fc.weight"], [[0, 0, 1], [0, 1, 0]])


def test_magnitude_takes_the_largest_free_and_breaks_ties_by_index():
    layer = LayerInfo(name="fc.weight", shape=(2, 4), kind="linear")
    owner = {"fc.weight": np.array([[0, -1, -1, -1], [-1, -1, -1, -1]], np.int8)}
    teacher = {"fc.weight": np.array([[9.0, 1.0, -3.0, 2.0], [3.0, -3.0, 0.5, 0.0]])}
    # quota = 8 // 2 = 4 among the 7 free: |w| 3 three times (indices 2, 4, 5), then 2 (index 3)
    after = masks.allocate(owner, 1, layers=[layer], num_tasks=2, mode="magnitude",
                           rng=np.random.default_rng(0), teacher_weights=teacher)
    np.testing.assert_array_equal(after["fc.weight"],
                                  [[0, -1, 1, 1], [1, 1, -1, -1]])


def test_magnitude_needs_teacher_weights():
    with pytest.raises(ValueError, match="teacher_weights"):
        allocate(masks.new_ownership(LAYERS, 3), 0, mode="magnitude")


def test_magnitude_rejects_teacher_weights_of_the_wrong_shape():
    teacher = {"conv.weight": np.zeros((4, 2, 3, 3)), "head.weight": np.zeros((5, 6))}
    with pytest.raises(ValueError, match="shape"):
        allocate(masks.new_ownership(LAYERS, 3), 0, mode="magnitude", teacher_weights=teacher,
                 class_range=None)


def test_unknown_mode_and_task_out_of_range_are_refused():
    owner = masks.new_ownership(LAYERS, 3)
    with pytest.raises(ValueError, match="mode"):
        allocate(owner, 0, mode="largest")
    with pytest.raises(ValueError, match="task"):
        allocate(owner, 3)


def test_classifier_rows_already_owned_are_refused():
    owner = allocate(masks.new_ownership(LAYERS, 3), 0, class_range=(0, 2))
    with pytest.raises(ValueError, match="already owned"):
        allocate(owner, 1, class_range=(1, 3))


def test_classifier_rows_outside_the_layer_are_refused():
    with pytest.raises(ValueError, match="does not fit"):
        allocate(masks.new_ownership(LAYERS, 3), 0, class_range=(4, 7))


def test_a_task_is_allocated_only_once():
    owner = allocate(masks.new_ownership(LAYERS, 3), 0, class_range=(0, 2))
    with pytest.raises(ValueError, match="already owns"):
        allocate(owner, 0, class_range=(2, 4))


def test_missing_or_misshapen_ownership_is_refused():
    with pytest.raises(ValueError, match="no ownership"):
        allocate({"conv.weight": np.full((4, 2, 3, 3), -1, np.int8)}, 0)
    bad = {"conv.weight": np.full((4, 2, 3, 3), -1, np.int8),
           "head.weight": np.full((5, 6), -1, np.int8)}
    with pytest.raises(ValueError, match="shape"):
        allocate(bad, 0)


def test_different_seeds_usually_choose_differently():
    owner = masks.new_ownership(LAYERS, 3)
    picks = {allocate(owner, 0, rng=np.random.default_rng(seed), class_range=(0, 2))
             ["conv.weight"].tobytes() for seed in range(5)}
    assert len(picks) > 1


def test_gates_on_a_hand_written_ownership():
    owner = {"w": np.array([-1, 0, 1, 2, 1], np.int8)}
    np.testing.assert_array_equal(masks.gates(owner, 1)["w"], [False, True, True, False, True])
    np.testing.assert_array_equal(masks.gates(owner, 1, weight_sharing=False)["w"],
                                  [False, False, True, False, True])
    np.testing.assert_array_equal(masks.trainable(owner, 2)["w"], [False, False, False, True, False])
    np.testing.assert_array_equal(masks.free(owner)["w"], [True, False, False, False, False])


def test_ownership_counts_are_plain_json_ints():
    owner = {"w": np.array([[-1, 0], [1, 1]], np.int8)}
    counts = masks.ownership_counts(owner, 3)
    assert counts == {"w": {"owned": [1, 2, 0], "free": 1, "total": 4}}
    assert json.loads(json.dumps(counts)) == counts


def test_ownership_counts_reject_owners_beyond_the_task_count():
    with pytest.raises(ValueError):
        masks.ownership_counts({"w": np.array([0, 3], np.int8)}, 3)


def test_he_normal_is_float32_with_std_from_fan_in():
    weights = masks.he_normal((64, 8, 3, 3), np.random.default_rng(0))
    assert weights.dtype == np.float32
    assert weights.shape == (64, 8, 3, 3)
    # 4608 samples: the sample std is within a few percent of sqrt(2 / 72)
    assert weights.std() == pytest.approx(np.sqrt(2 / 72), rel=0.05)
    np.testing.assert_array_equal(weights, masks.he_normal((64, 8, 3, 3), np.random.default_rng(0)))


def test_zero_free_and_fill_owned_touch_only_their_entries():
    owner = {"w": np.array([-1, 0, 1, -1], np.int8)}
    weights = {"w": np.array([1.0, 2.0, 3.0, 4.0], np.float32)}
    zeroed = masks.zero_free(weights, owner)
    np.testing.assert_array_equal(zeroed["w"], [0.0, 2.0, 3.0, 0.0])
    assert zeroed["w"].dtype == np.float32
    filled = masks.fill_owned(weights, {"w": np.full(4, 9.0, np.float32)}, owner, 1)
    np.testing.assert_array_equal(filled["w"], [1.0, 2.0, 9.0, 4.0])
    np.testing.assert_array_equal(weights["w"], [1.0, 2.0, 3.0, 4.0])
