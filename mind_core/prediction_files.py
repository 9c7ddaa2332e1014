"""`mind predict`'s files: the images to classify (an .npz or a folder of images) and the
CSV of predictions (one row per image: class, class name, task, score)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from mind_core.data.base import DatasetError
from mind_core.data.checks import as_images
from mind_core.data.images import IMAGE_SUFFIXES, decode_into
from mind_core.data.user import npz_arrays
from mind_core.events import write_text_atomic
from mind_core.inference import Predictions

NPZ_KEYS = ("x", "images", "x_test")
"""Where an .npz's images are looked for, in order; an .npz with one array may name it
anything."""
CSV_COLUMNS = ("image", "class", "class_name", "task", "score")


def read_images(path: Path, image_shape: tuple[int, int, int]) -> tuple[list[str], np.ndarray]:
    """(an id per image, uint8 images): an .npz's rows are numbered, a folder's images (any
    depth, sorted) are named by their path relative to the folder."""
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, image_shape)
    if path.is_file() and path.suffix == ".npz":
        images = _read_npz(path)
        return [str(i) for i in range(len(images))], images
    if not path.exists():
        raise DatasetError(f"{path} does not exist: give an .npz of images or a folder of "
                           "images")
    raise DatasetError(f"{path} is neither an .npz nor a folder of images")


def _read_npz(path: Path) -> np.ndarray:
    """The images array, checked to be images here: the row ids are counted from it."""
    arrays = npz_arrays(path, "the images file")
    found = [key for key in NPZ_KEYS if key in arrays] or (list(arrays) if len(arrays) == 1
                                                           else [])
    if found:
        return as_images(arrays[found[0]], f"{path}: {found[0]}")
    raise DatasetError(f"{path} holds {sorted(arrays)}: name the images array one of "
                       f"{', '.join(NPZ_KEYS)}")


def _read_folder(folder: Path, image_shape: tuple[int, int, int]) -> tuple[list[str], np.ndarray]:
    paths = sorted(p for p in folder.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DatasetError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    height, width, channels = image_shape
    images = np.empty((len(paths), height, width, channels), np.uint8)
    # Images of another size are an error (decode_into names the file), never silently resized:
    # the run's network was trained on its own size.
    decode_into(images, paths, "L" if channels == 1 else "RGB")
    return [p.relative_to(folder).as_posix() for p in paths], images


def predictions_csv(ids: list[str], found: Predictions) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for name, cls, class_name, task, score in zip(ids, found.classes, found.names(),
                                                  found.tasks, found.scores, strict=True):
        # Tasks from 1, as every file a person reads numbers them (docs/design.md,
        # "Numbering"); Predictions.tasks keeps the 0-based index.
        writer.writerow([name, int(cls), class_name, int(task) + 1, f"{float(score):.6f}"])
    return out.getvalue()


def save_csv(path: Path, text: str) -> None:
    """The whole file or none of it (events.write_text_atomic); a failure is one line."""
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise DatasetError(f"cannot write {path}: {exc.strerror or exc}") from None
