"""Allocation and gates, for all layer shapes, task counts and seeds
(docs/algorithm.md, steps 2-3)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from mind_core import masks
from tests.properties.strategies import Setup, setups


def allocate_all(setup: Setup, mode: str = "random", class_rows: bool = True,
                 teacher: dict | None = None) -> list[dict]:
    """Ownership after each task 0..N-1, in order (index 0 = before any task)."""
    history = [masks.new_ownership(setup.layers, setup.num_tasks)]
    for task in range(setup.num_tasks):
        history.append(masks.allocate(
            history[-1], task, layers=setup.layers, num_tasks=setup.num_tasks, mode=mode,
            rng=np.random.default_rng([setup.seed, task]), teacher_weights=teacher,
            class_range=setup.class_range(task) if class_rows else None))
    return history


def teacher_weights(setup: Setup) -> dict[str, np.ndarray]:
    # Small integers make equal magnitudes common, so tie-breaking gets exercised.
    rng = np.random.default_rng(setup.seed)
    return {layer.name: rng.integers(-3, 4, size=layer.shape).astype(np.float32)
            for layer in setup.layers}


@given(setups(), st.sampled_from(masks.MODES), st.booleans())
def test_each_task_gets_its_quota_of_free_weights_and_nothing_owned_changes(setup, mode, rows):
    teacher = teacher_weights(setup) if mode == "magnitude" else None
    history = allocate_all(setup, mode, class_rows=rows, teacher=teacher)
    for task, (before, after) in enumerate(zip(history, history[1:], strict=False)):
        for layer in setup.layers:
            old, new = before[layer.name], after[layer.name]
            owned_before = old != masks.FREE
            np.testing.assert_array_equal(new[owned_before], old[owned_before])
            assert set(np.unique(new[~owned_before])) <= {masks.FREE, task}
            assert (new == masks.FREE).sum() <= (old == masks.FREE).sum()
            if layer.classifier and rows:
                continue
            expected = min(layer_numel(layer) // setup.num_tasks, int((old == masks.FREE).sum()))
            assert int((new == task).sum()) == expected


@given(setups())
def test_classifier_rows_are_exactly_the_tasks_classes(setup):
    final = allocate_all(setup)[-1][setup.classifier.name]
    for task in range(setup.num_tasks):
        lo, hi = setup.class_range(task)
        expected = np.zeros(final.shape, dtype=bool)
        expected[lo:hi, :] = True
        np.testing.assert_array_equal(final == task, expected)


@given(setups())
def test_sharing_gates_are_nested_and_cover_every_earlier_task(setup):
    final = allocate_all(setup)[-1]
    previous = None
    for task in range(setup.num_tasks):
        gate = masks.gates(final, task, weight_sharing=True)
        for name, owner in final.items():
            np.testing.assert_array_equal(gate[name], np.isin(owner, np.arange(task + 1)))
            if previous is not None:
                assert not (previous[name] & ~gate[name]).any()
        previous = gate


@given(setups())
def test_gates_without_sharing_are_disjoint_and_match_trainable(setup):
    final = allocate_all(setup)[-1]
    for name, owner in final.items():
        stacked = np.stack([masks.gates(final, t, weight_sharing=False)[name]
                            for t in range(setup.num_tasks)])
        assert (stacked.sum(axis=0) <= 1).all()
        np.testing.assert_array_equal(stacked.any(axis=0), owner != masks.FREE)
        for task in range(setup.num_tasks):
            np.testing.assert_array_equal(stacked[task], masks.trainable(final, task)[name])


@given(setups(), st.booleans())
def test_same_seed_gives_the_same_allocation(setup, rows):
    first = allocate_all(setup, class_rows=rows)[-1]
    second = allocate_all(setup, class_rows=rows)[-1]
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


@given(setups(), st.integers(0, 7), st.booleans())
def test_magnitude_takes_the_largest_free_weights_lowest_index_first(setup, task, rows):
    task = task % setup.num_tasks
    teacher = teacher_weights(setup)
    # Start from a random partial ownership so "among the free ones" matters.
    start = allocate_all(setup, class_rows=rows)[task]
    after = masks.allocate(start, task, layers=setup.layers, num_tasks=setup.num_tasks,
                           mode="magnitude", rng=np.random.default_rng(0),
                           teacher_weights=teacher,
                           class_range=setup.class_range(task) if rows else None)
    for layer in setup.layers:
        if layer.classifier and rows:
            continue
        free_idx = np.flatnonzero(start[layer.name].reshape(-1) == masks.FREE)
        magnitude = np.abs(teacher[layer.name].reshape(-1))
        k = min(layer_numel(layer) // setup.num_tasks, free_idx.size)
        expected = sorted(free_idx.tolist(), key=lambda i: (-magnitude[i], i))[:k]
        chosen = np.flatnonzero(after[layer.name].reshape(-1) == task)
        assert sorted(expected) == chosen.tolist()


@given(setups(), st.booleans())
def test_allocation_leaves_its_input_untouched(setup, rows):
    owner = allocate_all(setup, class_rows=rows)[setup.num_tasks // 2]
    snapshot = {name: arr.copy() for name, arr in owner.items()}
    task = setup.num_tasks - 1
    masks.allocate(owner, task, layers=setup.layers, num_tasks=setup.num_tasks,
                   rng=np.random.default_rng(setup.seed),
                   class_range=setup.class_range(task) if rows else None)
    for name in owner:
        np.testing.assert_array_equal(owner[name], snapshot[name])


@given(setups(), st.booleans())
def test_ownership_counts_add_up(setup, rows):
    final = allocate_all(setup, class_rows=rows)[-1]
    counts = masks.ownership_counts(final, setup.num_tasks)
    for layer in setup.layers:
        entry = counts[layer.name]
        assert entry["total"] == layer_numel(layer)
        assert sum(entry["owned"]) + entry["free"] == entry["total"]
        assert entry["owned"] == [int((final[layer.name] == t).sum())
                                  for t in range(setup.num_tasks)]


def layer_numel(layer) -> int:
    return int(np.prod(layer.shape))
