"""The built-in "fmnist-mini": a class-balanced Fashion-MNIST subset shipped with the package.

1,000 train and 200 test images per class, 28x28x1 uint8 (see builtin/PROVENANCE.md and
scripts/make_builtin_fmnist.py). The file is checked against its sha256 before use.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mind_core.data.base import Dataset, DatasetError
from mind_core.data.checks import checked_class_names, checked_splits
from mind_core.data.idx import CLASS_NAMES

FILE = Path(__file__).resolve().parent / "builtin" / "fmnist_mini.npz"
SHA256 = "4d8fedfa3a07fd088795c1fdf4ee29363694034c72590a738d7813e02d907e48"
IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = len(CLASS_NAMES)
# x / 255 over the file's 10,000 training images.
MEAN = (0.28583,)
STD = (0.353561,)
REGENERATE = "python scripts/make_builtin_fmnist.py (needs the Debian package dataset-fashion-mnist)"


def available(path: Path = FILE) -> bool:
    return path.is_file()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_fmnist_mini(path: Path = FILE) -> Dataset:
    if not path.is_file():
        raise DatasetError(f"the built-in dataset file {path} is missing; reinstall mind-cl or "
                           f"regenerate it: {REGENERATE}")
    actual = _sha256(path)
    if actual != SHA256:
        raise DatasetError(f"the built-in dataset file {path} is damaged (sha256 {actual[:16]}..., "
                           f"expected {SHA256[:16]}...); reinstall mind-cl or regenerate it: "
                           f"{REGENERATE}")
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    x_train, y_train, x_test, y_test, k = checked_splits(
        arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], str(path),
        num_classes=NUM_CLASSES)
    names = checked_class_names(arrays["class_names"], k, str(path))
    return Dataset(name="fmnist-mini", x_train=x_train, y_train=y_train, x_test=x_test,
                   y_test=y_test, num_classes=k, class_names=names, mean=MEAN, std=STD)
