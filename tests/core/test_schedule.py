"""Class order, class- and domain-incremental splits, and the evaluation test set."""

from __future__ import annotations

import numpy as np
import pytest

from mind_core import schedule
from mind_core.data.base import Dataset
from mind_core.schedule import ScheduleError, class_incremental, class_order, domain_incremental


def make_dataset(num_classes=4, train_labels=(0, 1, 2, 3, 3, 2, 1, 0), test_labels=(0, 1, 2, 3),
                 domains_train=None, domains_test=None) -> Dataset:
    y_train = np.array(train_labels, dtype=np.int64)
    y_test = np.array(test_labels, dtype=np.int64)
    # Pixel value = sample index, so a sample can be traced into its task.
    return Dataset(
        name="tiny",
        x_train=np.arange(len(y_train), dtype=np.uint8).reshape(-1, 1, 1, 1),
        y_train=y_train,
        x_test=np.arange(len(y_test), dtype=np.uint8).reshape(-1, 1, 1, 1),
        y_test=y_test,
        num_classes=num_classes,
        domains_train=None if domains_train is None else np.array(domains_train),
        domains_test=None if domains_test is None else np.array(domains_test),
    )


def test_class_order_is_a_seeded_permutation():
    order = class_order(10, seed=3)
    assert sorted(order.tolist()) == list(range(10))
    np.testing.assert_array_equal(order, class_order(10, seed=3))
    assert any(not np.array_equal(order, class_order(10, seed=s)) for s in range(4, 8))


def test_class_incremental_relabels_by_the_class_order():
    dataset = make_dataset()
    order = class_order(4, seed=0).tolist()
    tasks = class_incremental(dataset, 2, seed=0)
    assert [t.index for t in tasks] == [0, 1]
    assert [t.classes for t in tasks] == [tuple(order[:2]), tuple(order[2:])]
    assert [t.class_range for t in tasks] == [(0, 2), (2, 4)]
    for task in tasks:
        for split in ("train", "test"):
            x, y = getattr(task, f"x_{split}"), getattr(task, f"y_{split}")
            original_labels = getattr(dataset, f"y_{split}")[x.reshape(-1)]
            assert [order[label] for label in y] == original_labels.tolist()
            assert y.dtype == np.int64


def test_class_incremental_keeps_sample_order_within_a_task():
    tasks = class_incremental(make_dataset(), 1, seed=5)
    np.testing.assert_array_equal(tasks[0].x_train.reshape(-1), np.arange(8))


@pytest.mark.parametrize("num_tasks", [0, 3, 5])
def test_uneven_or_impossible_splits_are_refused_with_the_numbers(num_tasks):
    with pytest.raises(ScheduleError, match=f"{num_tasks}") as error:
        class_incremental(make_dataset(), num_tasks, seed=0)
    assert "4" in str(error.value)
    assert isinstance(error.value, ValueError)


def test_labels_outside_the_class_count_are_refused():
    with pytest.raises(ScheduleError, match="outside"):
        class_incremental(make_dataset(train_labels=(0, 4)), 2, seed=0)


def test_domain_incremental_splits_by_domain_and_keeps_labels():
    dataset = make_dataset(domains_train=[0, 0, 1, 1, 2, 2, 0, 1], domains_test=[2, 1, 0, 0])
    tasks = domain_incremental(dataset, 3)
    assert [t.class_range for t in tasks] == [(0, 4)] * 3
    assert tasks[0].classes == (0, 1, 2, 3)
    np.testing.assert_array_equal(tasks[0].x_train.reshape(-1), [0, 1, 6])
    np.testing.assert_array_equal(tasks[0].y_train, [0, 1, 1])
    np.testing.assert_array_equal(tasks[1].y_train, [2, 3, 0])
    np.testing.assert_array_equal(tasks[2].x_test.reshape(-1), [0])
    np.testing.assert_array_equal(tasks[0].y_test, [2, 3])


def test_domain_incremental_needs_domain_ids():
    with pytest.raises(ScheduleError, match="no domain ids"):
        domain_incremental(make_dataset(), 2)


def test_domain_incremental_refuses_a_missing_or_an_extra_domain():
    dataset = make_dataset(domains_train=[0, 0, 2, 2, 0, 2, 0, 2], domains_test=[0, 1, 2, 2])
    with pytest.raises(ScheduleError, match=r"lacks \[1\]"):
        domain_incremental(dataset, 3)
    dataset = make_dataset(domains_train=[0, 1, 2, 0, 1, 2, 0, 1], domains_test=[0, 1, 2, 2])
    with pytest.raises(ScheduleError, match=r"domains \[2\] beyond the 2 tasks"):
        domain_incremental(dataset, 2)


def test_make_tasks_dispatches_on_the_scenario():
    dataset = make_dataset(domains_train=[0, 1] * 4, domains_test=[0, 1] * 2)
    assert [t.class_range for t in schedule.make_tasks(dataset, 2, "class", seed=1)] == [
        (0, 2), (2, 4)]
    assert [t.class_range for t in schedule.make_tasks(dataset, 2, "domain")] == [(0, 4)] * 2
    with pytest.raises(ScheduleError, match="scenario"):
        schedule.make_tasks(dataset, 2, "instance")


def test_test_set_concatenates_the_tasks_seen_so_far():
    tasks = class_incremental(make_dataset(), 2, seed=0)
    x, y, task_ids = schedule.test_set(tasks, upto=0)
    np.testing.assert_array_equal(y, tasks[0].y_test)
    np.testing.assert_array_equal(task_ids, [0] * len(tasks[0].y_test))
    x, y, task_ids = schedule.test_set(tasks)
    assert len(x) == len(y) == len(task_ids) == 4
    np.testing.assert_array_equal(y, np.concatenate([tasks[0].y_test, tasks[1].y_test]))
    np.testing.assert_array_equal(task_ids, [0, 0, 1, 1])
    with pytest.raises(ValueError):
        schedule.test_set(tasks, upto=2)
