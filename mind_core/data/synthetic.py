"""A tiny learnable dataset generated in memory from a seed, for tests and the smoke preset.

Each class has a random blocky binary pattern (4x4 blocks of 3x3 pixels at the default size);
an image is its class pattern, shifted by up to one pixel, plus Gaussian noise. A small CNN
separates the classes within an epoch or two, and generation takes milliseconds.
"""

from __future__ import annotations

import numpy as np

from mind_core.data.base import Dataset
from mind_core.data.checks import channel_stats

NUM_CLASSES = 10
SIZE = 12
IMAGE_SHAPE = (SIZE, SIZE, 1)
BLOCK = 3
FOREGROUND, BACKGROUND, NOISE = 160.0, 48.0, 24.0


def _patterns(rng: np.random.Generator, classes: int, size: int) -> np.ndarray:
    """Distinct binary patterns [classes, size, size] built from BLOCK x BLOCK blocks."""
    cells = -(-size // BLOCK)
    while True:
        blocks = rng.random((classes, cells, cells)) < 0.5
        flat = blocks.reshape(classes, -1)
        if len(np.unique(flat, axis=0)) == classes:
            break
    grid = np.kron(blocks, np.ones((BLOCK, BLOCK), dtype=bool))
    return grid[:, :size, :size]


def _draw(rng: np.random.Generator, patterns: np.ndarray, labels: np.ndarray) -> np.ndarray:
    images = patterns[labels].astype(np.float32) * FOREGROUND + BACKGROUND
    shifts = rng.integers(-1, 2, size=(len(labels), 2))
    for i, (dy, dx) in enumerate(shifts):
        images[i] = np.roll(images[i], (dy, dx), axis=(0, 1))
    images += rng.normal(0.0, NOISE, size=images.shape).astype(np.float32)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)[..., None]


def make_synthetic(seed: int = 0, classes: int = NUM_CLASSES, per_class_train: int = 60,
                   per_class_test: int = 20, size: int = SIZE) -> Dataset:
    rng = np.random.default_rng(seed)
    patterns = _patterns(rng, classes, size)
    y_train = rng.permutation(np.repeat(np.arange(classes, dtype=np.int64), per_class_train))
    y_test = rng.permutation(np.repeat(np.arange(classes, dtype=np.int64), per_class_test))
    x_train = _draw(rng, patterns, y_train)
    x_test = _draw(rng, patterns, y_test)
    mean, std = channel_stats(x_train)
    return Dataset(name="synthetic", x_train=x_train, y_train=y_train, x_test=x_test,
                   y_test=y_test, num_classes=classes,
                   class_names=tuple(f"pattern{c}" for c in range(classes)), mean=mean, std=std)
