"""Validation of loaded arrays and per-channel statistics, shared by every loader."""

from __future__ import annotations

import numpy as np

from mind_core.data.base import DatasetError

ALLOWED_CHANNELS = (1, 3)
CHUNK_VALUES = 1 << 22  # pixel values per statistics chunk (~32 MB of bin indices)


def as_images(x: np.ndarray, what: str) -> np.ndarray:
    """uint8 NHWC view of ``x`` (NHW gets a channel axis); DatasetError when it cannot be."""
    x = x if isinstance(x, np.ndarray) else np.asarray(x)  # a memmap stays a memmap
    if x.dtype != np.uint8:
        raise DatasetError(f"{what} must be uint8 images (0..255), got dtype {x.dtype}; "
                           "scale to 0..255 and cast with .astype(np.uint8)")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DatasetError(f"{what} must have shape [n, h, w] or [n, h, w, c], got {x.shape}")
    if x.shape[-1] not in ALLOWED_CHANNELS:
        raise DatasetError(f"{what} must have 1 or 3 channels (NHWC), got shape {x.shape}; "
                           "channels-first data needs x.transpose(0, 2, 3, 1)")
    if x.shape[0] == 0:
        raise DatasetError(f"{what} is empty")
    return x


def as_labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{what} must be a 1-D integer array, got dtype {y.dtype} "
                           f"and shape {y.shape}")
    if len(y) != n:
        raise DatasetError(f"{what} has {len(y)} labels for {n} images")
    if y.min() < 0:
        raise DatasetError(f"{what} has negative labels (min {y.min()}); labels must be 0..K-1")
    if y.max() > np.iinfo(np.int64).max:  # an unsigned 64-bit label int64 would wrap negative
        raise DatasetError(f"{what} has label {y.max()}, far beyond any number of classes; "
                           "labels must be 0..K-1")
    return y.astype(np.int64)


def checked_splits(x_train, y_train, x_test, y_test, source: str,
                   num_classes: int | None = None):
    """Validate both splits; returns (x_train, y_train, x_test, y_test, num_classes).

    Labels must be 0..K-1 with every class present in the train split; K is taken from the
    train labels unless given. Images must be uint8 and the same shape in both splits.
    """
    x_train = as_images(x_train, f"{source}: x_train")
    x_test = as_images(x_test, f"{source}: x_test")
    y_train = as_labels(y_train, len(x_train), f"{source}: y_train")
    y_test = as_labels(y_test, len(x_test), f"{source}: y_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(f"{source}: train images are {x_train.shape[1:]} but test images are "
                           f"{x_test.shape[1:]}; both splits need the same image shape")
    top = int(y_train.max())
    if num_classes is None and top >= len(y_train):
        # Checked before anything is sized by label value (bincount below, one-hot later):
        # every class needs a training image, so K can never exceed the train split.
        raise DatasetError(f"{source}: y_train has label {top} but only {len(y_train)} "
                           "training images; labels must be the contiguous range 0..K-1 with "
                           "every class in the train split")
    k = top + 1 if num_classes is None else num_classes
    if y_train.max() >= k:
        raise DatasetError(f"{source}: y_train has label {y_train.max()} but there are only "
                           f"{k} classes (labels must be 0..{k - 1})")
    counts = np.bincount(y_train, minlength=k)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise DatasetError(f"{source}: classes {empty[:10].tolist()} have no training images; "
                           f"labels must be the contiguous range 0..K-1 (found K={k})")
    if y_test.max() >= k:
        raise DatasetError(f"{source}: y_test has label {y_test.max()} but the train split only "
                           f"has classes 0..{k - 1}")
    return x_train, y_train, x_test, y_test, k


def checked_class_names(names, num_classes: int, source: str) -> tuple[str, ...]:
    if names is None:
        return tuple(str(i) for i in range(num_classes))
    names = tuple(str(n) for n in np.asarray(names).reshape(-1).tolist())
    if len(names) != num_classes:
        raise DatasetError(f"{source}: {len(names)} class names for {num_classes} classes")
    return names


def channel_stats(x: np.ndarray, indices: np.ndarray | None = None
                  ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of x / 255 over NHWC uint8 images (or the rows ``indices``).

    Counts a 256-bin histogram per channel, chunk by chunk: exact, about 4 ns a value, and a
    memmap is never read whole into memory.
    """
    channels = x.shape[-1]
    rows = len(x) if indices is None else len(indices)
    per_row = max(1, int(np.prod(x.shape[1:])))
    step = max(1, CHUNK_VALUES // per_row)
    hist = np.zeros(256 * channels, dtype=np.int64)
    offsets = np.zeros(0, dtype=np.intp)
    for start in range(0, rows, step):
        part = x[start:start + step] if indices is None else x[indices[start:start + step]]
        values = np.ascontiguousarray(part).reshape(-1)
        if channels == 1:
            hist += np.bincount(values, minlength=256)
            continue
        if len(offsets) != len(values):  # channel c counts into bins [256 c, 256 c + 256)
            offsets = np.tile(np.arange(channels, dtype=np.intp) * 256, len(values) // channels)
        hist += np.bincount(offsets + values, minlength=256 * channels)
    hist = hist.reshape(channels, 256)
    levels = np.arange(256) / 255.0
    count = hist.sum(axis=1)
    mean = (hist * levels).sum(axis=1) / count
    std = np.sqrt(np.maximum((hist * levels**2).sum(axis=1) / count - mean**2, 0.0))
    std = np.where(std > 1e-8, std, 1.0)  # a constant channel must not divide by zero
    return tuple(round(float(m), 6) for m in mean), tuple(round(float(s), 6) for s in std)
