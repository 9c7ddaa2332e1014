"""Synbols: symbols rendered on gradient backgrounds, stored as one .npz (loaded numpy-only).

``data_dir/synbols.npz`` holds x_train, y_train, x_test, y_test (uint8 NHWC, int labels) and
class_names. ``prepare_synbols`` (synbols_gen.py) renders such a file with the optional
``synbols`` package.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mind_core.data.base import Dataset
from mind_core.data.user import dataset_from_arrays, read_npz
from mind_core.protocol import Augment

FILENAME = "synbols.npz"
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 200
# No flips (symbols are not mirror-symmetric) and no crops: the renderer already varies the
# position, scale, rotation, font and colours of every symbol.
AUGMENT = Augment()


def find_synbols(roots: Sequence[Path]) -> Path | None:
    for root in roots:
        for candidate in (root / FILENAME, root / "synbols" / FILENAME):
            if candidate.is_file():
                return candidate
    return None


def load_synbols(path: Path) -> Dataset:
    arrays = read_npz(path, "the Synbols file")
    return dataset_from_arrays("synbols", arrays, str(path), AUGMENT)
