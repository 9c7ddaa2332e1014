"""TinyImageNet-200 from its official folder layout; JPEGs decoded once (Pillow) and cached.

tiny-imagenet-200/wnids.txt, words.txt (optional, for names), train/<wnid>/images/*.JPEG,
val/images/*.JPEG with val/val_annotations.txt (file, wnid, box). The official val split is
the test split (the official test split has no labels). Classes are the sorted wnids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mind_core.data.base import Dataset, DatasetError
from mind_core.data.cache import ArrayWriter, cached, fingerprint
from mind_core.data.checks import channel_stats, checked_splits
from mind_core.data.images import decode_into, list_images, require_pillow
from mind_core.data.locations import cache_dir
from mind_core.protocol import Augment

FOLDER = "tiny-imagenet-200"
IMAGE_SHAPE = (64, 64, 3)
NUM_CLASSES = 200
# Same geometry as CIFAR's crop 32 pad 4, scaled to 64 px; brightness as for CIFAR-100.
AUGMENT = Augment(crop_pad=8, hflip=True, brightness=0.2)


def find_tinyimagenet(roots: Sequence[Path]) -> Path | None:
    for root in roots:
        for candidate in (root / FOLDER, root):
            if (candidate / "wnids.txt").is_file() and (candidate / "train").is_dir():
                return candidate
    return None


def _read_lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc


def _class_names(folder: Path, wnids: list[str]) -> tuple[str, ...]:
    words = {}
    if (folder / "words.txt").is_file():
        for line in _read_lines(folder / "words.txt"):
            wnid, _, text = line.partition("\t")
            words[wnid] = text.split(",")[0].strip()
    return tuple(words.get(w) or w for w in wnids)


def _file_lists(folder: Path, wnids: list[str]):
    """(train paths, train labels, val paths, val labels), validated."""
    index = {w: i for i, w in enumerate(wnids)}
    train_paths, train_labels = [], []
    for wnid in wnids:
        images = folder / "train" / wnid / "images"
        files = list_images(images) if images.is_dir() else []
        if not files:
            raise DatasetError(f"TinyImageNet class {wnid} has no images in {images}")
        train_paths += files
        train_labels += [index[wnid]] * len(files)
    annotations = folder / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise DatasetError(f"{annotations} is missing (needed for the test split)")
    val_paths, val_labels = [], []
    for line in _read_lines(annotations):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise DatasetError(f"{annotations}: bad line {line!r} (file, wnid from wnids.txt)")
        path = folder / "val" / "images" / fields[0]
        if not path.is_file():
            raise DatasetError(f"{annotations} names {fields[0]}, missing from {path.parent}")
        val_paths.append(path)
        val_labels.append(index[fields[1]])
    return train_paths, np.array(train_labels), val_paths, np.array(val_labels)


def _build(train_paths, train_labels, val_paths, val_labels, writer: ArrayWriter) -> dict:
    require_pillow("TinyImageNet JPEGs")
    size = (IMAGE_SHAPE[1], IMAGE_SHAPE[0])
    x_train = writer.create("x_train", (len(train_paths), *IMAGE_SHAPE), np.uint8)
    decode_into(x_train, train_paths, "RGB", size)
    x_test = writer.create("x_test", (len(val_paths), *IMAGE_SHAPE), np.uint8)
    decode_into(x_test, val_paths, "RGB", size)
    writer.put("y_train", train_labels.astype(np.int64))
    writer.put("y_test", val_labels.astype(np.int64))
    mean, std = channel_stats(x_train)
    return {"mean": mean, "std": std}


def load_tinyimagenet(folder: Path, root: Path) -> Dataset:
    wnids = sorted(set(_read_lines(folder / "wnids.txt")))
    if not wnids:
        raise DatasetError(f"{folder / 'wnids.txt'} lists no classes")
    train_paths, train_labels, val_paths, val_labels = _file_lists(folder, wnids)
    fp = fingerprint([*train_paths, *val_paths], salt="tinyimagenet")
    arrays, extra = cached(cache_dir(root, "tinyimagenet"), fp,
                           lambda w: _build(train_paths, train_labels, val_paths, val_labels, w))
    x_train, y_train, x_test, y_test, k = checked_splits(
        arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
        f"TinyImageNet in {folder}", num_classes=len(wnids))
    return Dataset(name="tinyimagenet", x_train=x_train, y_train=y_train, x_test=x_test,
                   y_test=y_test, num_classes=k, class_names=_class_names(folder, wnids),
                   mean=tuple(extra["mean"]), std=tuple(extra["std"]), augment=AUGMENT)
