"""Class-incremental splits, for all class counts, task counts, sample counts and seeds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mind_core.data.base import Dataset
from mind_core.schedule import ScheduleError, class_incremental, class_order


@st.composite
def datasets(draw) -> Dataset:
    num_classes = draw(st.integers(1, 12))
    sizes = [draw(st.integers(0, 40)), draw(st.integers(0, 20))]
    labels = [np.array(draw(st.lists(st.integers(0, num_classes - 1), min_size=s, max_size=s)),
                       dtype=np.int64) for s in sizes]
    # Each image's single pixel holds its sample index, so a sample can be traced through.
    images = [np.arange(s, dtype=np.uint8).reshape(s, 1, 1, 1) for s in sizes]
    return Dataset(name="generated", x_train=images[0], y_train=labels[0], x_test=images[1],
                   y_test=labels[1], num_classes=num_classes)


def divisor(num_classes: int):
    return st.sampled_from([d for d in range(1, num_classes + 1) if num_classes % d == 0])


@given(datasets(), st.data(), st.integers(0, 2**32 - 1))
def test_tasks_get_contiguous_disjoint_classes_and_keep_every_sample(dataset, data, seed):
    num_tasks = data.draw(divisor(dataset.num_classes), label="num_tasks")
    tasks = class_incremental(dataset, num_tasks, seed)
    per_task = dataset.num_classes // num_tasks
    order = class_order(dataset.num_classes, seed)
    assert [t.class_range for t in tasks] == [(i * per_task, (i + 1) * per_task)
                                              for i in range(num_tasks)]
    all_classes = [c for t in tasks for c in t.classes]
    assert sorted(all_classes) == list(range(dataset.num_classes))
    assert all_classes == order.tolist()
    for split in ("train", "test"):
        x_all = getattr(dataset, f"x_{split}")
        y_all = getattr(dataset, f"y_{split}")
        kept = []
        for task in tasks:
            x, y = getattr(task, f"x_{split}"), getattr(task, f"y_{split}")
            lo, hi = task.class_range
            assert ((y >= lo) & (y < hi)).all()
            ids = x.reshape(-1).astype(int)
            # new label i stands for original class order[i]
            np.testing.assert_array_equal(order[y], y_all[ids])
            kept.extend(ids.tolist())
        assert sorted(kept) == list(range(len(x_all)))


@given(datasets(), st.integers(0, 2**32 - 1))
def test_same_seed_gives_the_same_split(dataset, seed):
    first = class_incremental(dataset, 1, seed)[0]
    second = class_incremental(dataset, 1, seed)[0]
    assert first.classes == second.classes
    np.testing.assert_array_equal(first.y_train, second.y_train)
    np.testing.assert_array_equal(first.x_test, second.x_test)


@given(datasets(), st.integers(1, 12))
def test_a_split_that_is_not_even_is_refused(dataset, num_tasks):
    if dataset.num_classes % num_tasks == 0 and num_tasks <= dataset.num_classes:
        assert len(class_incremental(dataset, num_tasks, 0)) == num_tasks
    else:
        with pytest.raises(ScheduleError, match=str(dataset.num_classes)):
            class_incremental(dataset, num_tasks, 0)
