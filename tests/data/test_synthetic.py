"""The in-memory synthetic set: deterministic per seed, balanced, and learnable."""

from __future__ import annotations

import numpy as np

from mind_core.data import load_dataset, make_synthetic


def test_shapes_balance_and_dtypes():
    data = load_dataset("synthetic")
    assert data.x_train.shape == (600, 12, 12, 1) and data.x_test.shape == (200, 12, 12, 1)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert np.bincount(data.y_train).tolist() == [60] * 10
    assert np.bincount(data.y_test).tolist() == [20] * 10
    assert len(data.class_names) == data.num_classes == 10


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = make_synthetic(seed=3), make_synthetic(seed=3), make_synthetic(seed=4)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)


def test_classes_are_separable_by_their_train_means():
    data = make_synthetic(seed=0)
    x_train = data.x_train.reshape(len(data.x_train), -1).astype(np.float64)
    x_test = data.x_test.reshape(len(data.x_test), -1).astype(np.float64)
    centroids = np.stack([x_train[data.y_train == c].mean(axis=0) for c in range(10)])
    distances = ((x_test[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    accuracy = float((distances.argmin(axis=1) == data.y_test).mean())
    assert accuracy > 0.9


def test_images_are_noisy_not_copies_of_one_pattern():
    data = make_synthetic(seed=0)
    same_class = data.x_train[data.y_train == 0]
    assert len({img.tobytes() for img in same_class}) == len(same_class)


def test_options_change_the_size_and_counts():
    data = make_synthetic(seed=1, classes=4, per_class_train=5, per_class_test=2, size=16)
    assert data.x_train.shape == (20, 16, 16, 1) and data.x_test.shape == (8, 16, 16, 1)
    assert data.num_classes == 4
