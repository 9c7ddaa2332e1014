"""Fashion-MNIST from its IDX files (gzipped or not), e.g. the Debian package's copy."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mind_core.data import locations
from mind_core.data.base import Dataset, DatasetError
from mind_core.data.checks import checked_splits

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
IMAGE_SHAPE = (28, 28, 1)
# x / 255 over the 60,000 training images.
MEAN = (0.286041,)
STD = (0.353024,)
FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
SUBDIRS = ("fashion-mnist", "fmnist", "")
UBYTE = 0x08


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX array of unsigned bytes with ``ndim`` dimensions, validated against its header."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    if raw[2] != UBYTE or raw[3] != ndim:
        raise DatasetError(f"{path}: expected unsigned bytes with {ndim} dimensions "
                           f"(magic 0x00000{UBYTE:x}0{ndim}), got magic 0x{raw[:4].hex()}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path} is truncated (header incomplete)")
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], dtype=">u4"))
    if len(raw) - header != int(np.prod(shape)):
        raise DatasetError(f"{path}: header says shape {shape} ({int(np.prod(shape))} bytes) "
                           f"but the file holds {len(raw) - header} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _file_in(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def candidate_dirs(roots: Sequence[Path]) -> list[Path]:
    dirs = [root / sub if sub else root for root in roots for sub in SUBDIRS]
    return dirs + list(locations.SYSTEM_FMNIST_DIRS)  # looked up late: tests replace it


def find_fmnist(roots: Sequence[Path]) -> Path | None:
    """The first folder holding all four IDX files."""
    for folder in candidate_dirs(roots):
        if all(_file_in(folder, stem) for stem in FILES.values()):
            return folder
    return None


def load_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    """The four arrays of an MNIST-layout folder, with their shapes cross-checked."""
    arrays = {}
    for key, stem in FILES.items():
        path = _file_in(folder, stem)
        if path is None:
            raise DatasetError(f"{folder} lacks {stem}.gz")
        arrays[key] = read_idx(path, 3 if key.startswith("x") else 1)
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y):
            raise DatasetError(f"{folder}: {split} has {len(x)} images but {len(y)} labels")
    return arrays


def load_fmnist(folder: Path) -> Dataset:
    arrays = load_idx_folder(folder)
    x_train, y_train, x_test, y_test, k = checked_splits(
        arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
        f"Fashion-MNIST in {folder}", num_classes=len(CLASS_NAMES))
    return Dataset(name="fmnist", x_train=x_train, y_train=y_train, x_test=x_test,
                   y_test=y_test, num_classes=k, class_names=CLASS_NAMES, mean=MEAN, std=STD)
