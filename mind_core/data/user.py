"""The user's own data: "npz:PATH" (arrays) and "folder:PATH" (an ImageFolder tree).

npz: x_train, y_train, x_test, y_test; images uint8 NHWC, or NHW for grayscale; labels
integers 0..K-1; an optional class_names array. folder: PATH/train/<class>/*.png|jpg and
PATH/test/<class>/..., classes sorted by folder name, decoded once (Pillow) into a cache;
16-bit gray images are scaled to 8 bits (v / 257, not clipped) and images over Pillow's
decompression-bomb limit are refused. Both compute mean/std from the train split.
"""

from __future__ import annotations

import hashlib
import warnings
import zipfile
from pathlib import Path

import numpy as np

from mind_core.data.base import Dataset, DatasetError
from mind_core.data.cache import ArrayWriter, cached, fingerprint
from mind_core.data.checks import channel_stats, checked_class_names, checked_splits
from mind_core.data.images import bomb_message, decode_into, list_images, require_pillow
from mind_core.data.locations import cache_dir
from mind_core.protocol import Augment

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
GRAY_MODES = ("1", "L", "LA", "I;16", "I")


def npz_arrays(path: Path, what: str) -> dict[str, np.ndarray]:
    """Every array of an .npz archive, pickles refused. Anything else is a DatasetError saying
    so: numpy reads a file that is not a zip as a pickle and would advise allow_pickle."""
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{what} {path} is not an .npz archive (a zip of .npy arrays, as "
                           "numpy.savez writes)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"cannot read {what} {path}: {exc}") from None


def read_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz (pickles refused), with a DatasetError naming any missing key."""
    if not path.is_file():
        raise DatasetError(f"{what} {path} does not exist")
    arrays = npz_arrays(path, what)
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise DatasetError(f"{what} {path} lacks the arrays {missing} (it has "
                           f"{sorted(arrays)}); expected {list(REQUIRED_KEYS)} "
                           "and optionally class_names")
    return arrays


def dataset_from_arrays(name: str, arrays: dict[str, np.ndarray], source: str,
                        augment: Augment = Augment()) -> Dataset:
    """A validated Dataset with mean/std computed from its train split."""
    x_train, y_train, x_test, y_test, k = checked_splits(
        arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], source)
    names = checked_class_names(arrays.get("class_names"), k, source)
    mean, std = channel_stats(x_train)
    return Dataset(name=name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   num_classes=k, class_names=names, mean=mean, std=std, augment=augment)


def load_npz(path: Path) -> Dataset:
    return dataset_from_arrays(f"npz:{path}", read_npz(path, "the dataset file"), str(path))


def _class_folders(split_dir: Path) -> dict[str, list[Path]]:
    if not split_dir.is_dir():
        raise DatasetError(f"{split_dir} is missing; a folder dataset needs train/<class>/ "
                           "and test/<class>/ sub-folders of images")
    classes = {c.name: list_images(c) for c in sorted(split_dir.iterdir()) if c.is_dir()}
    if not classes:
        raise DatasetError(f"{split_dir} has no class sub-folders")
    return classes


def _folder_files(path: Path):
    """(class names, train paths, train labels, test paths, test labels)."""
    train = _class_folders(path / "train")
    test = _class_folders(path / "test")
    names = sorted(train)
    empty = [c for c in names if not train[c]]
    if empty:
        raise DatasetError(f"{path / 'train'}: classes {empty} have no images "
                           "(.png, .jpg, .jpeg, .bmp, .gif, .webp)")
    unknown = sorted(set(test) - set(train))
    if unknown:
        raise DatasetError(f"{path / 'test'} has classes {unknown} that train does not have")
    if not any(test.values()):
        raise DatasetError(f"{path / 'test'} has no images")
    index = {c: i for i, c in enumerate(names)}

    def flatten(split: dict[str, list[Path]]):
        paths = [p for c in sorted(split) for p in split[c]]
        labels = np.array([index[c] for c in sorted(split) for _ in split[c]], dtype=np.int64)
        return paths, labels

    return (names, *flatten(train), *flatten(test))


def _geometry(paths: list[Path]) -> tuple[int, int, str]:
    """(height, width, mode) shared by all images: 'L' when every image is grayscale."""
    image_mod = require_pillow("image folders")
    first_size, first_path, gray = None, None, True
    bombs = (image_mod.DecompressionBombError, image_mod.DecompressionBombWarning)
    for path in paths:
        try:
            with warnings.catch_warnings():  # Pillow only warns below twice its pixel limit
                warnings.simplefilter("error", image_mod.DecompressionBombWarning)
                with image_mod.open(path) as image:  # reads the header only
                    size, mode = image.size, image.mode
        except bombs as exc:
            raise DatasetError(bomb_message(path, exc)) from None
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot decode image {path}: {exc}") from exc
        gray = gray and mode in GRAY_MODES
        if first_size is None:
            first_size, first_path = size, path
        elif size != first_size:
            raise DatasetError(f"images differ in size: {first_path} is "
                               f"{first_size[0]}x{first_size[1]} but {path} is "
                               f"{size[0]}x{size[1]}; resize them to one size first")
    width, height = first_size
    return height, width, "L" if gray else "RGB"


def _build_folder(train_paths, test_paths, writer: ArrayWriter) -> dict:
    height, width, mode = _geometry([*train_paths, *test_paths])
    channels = 1 if mode == "L" else 3
    for name, paths in (("x_train", train_paths), ("x_test", test_paths)):
        decode_into(writer.create(name, (len(paths), height, width, channels), np.uint8),
                    paths, mode)
    return {}


def load_folder(path: Path, root: Path) -> Dataset:
    if not path.is_dir():
        raise DatasetError(f"the image folder {path} does not exist")
    names, train_paths, y_train, test_paths, y_test = _folder_files(path)
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    # v2: 16-bit gray scaled, not clipped (a cache built before is decoded again).
    fp = fingerprint([*train_paths, *test_paths], salt=f"folder:v2:{path.resolve()}")
    arrays, _ = cached(cache_dir(root, f"folder-{key}"), fp,
                       lambda w: _build_folder(train_paths, test_paths, w))
    data = {"x_train": arrays["x_train"], "y_train": y_train, "x_test": arrays["x_test"],
            "y_test": y_test, "class_names": np.array(names)}
    return dataset_from_arrays(f"folder:{path}", data, str(path))


def peek_npz(path: Path) -> tuple[int, tuple[int, ...]]:
    """(classes, image shape) of an .npz without reading its images: the TUI's check."""
    if not path.is_file():
        raise DatasetError(f"the dataset file {path} does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {name.removesuffix(".npy"): name for name in zf.namelist()}
            missing = [key for key in REQUIRED_KEYS if key not in members]
            if missing:
                raise DatasetError(f"{path} lacks the arrays {missing}; expected "
                                   f"{list(REQUIRED_KEYS)} and optionally class_names")
            with zf.open(members["x_train"]) as handle:
                version = np.lib.format.read_magic(handle)
                header = {(1, 0): np.lib.format.read_array_header_1_0,
                          (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                shape = header(handle)[0] if header else None
        with np.load(path, allow_pickle=False) as data:
            labels = data["y_train"]
            if shape is None:  # a newer .npy format: read the array after all
                shape = data["x_train"].shape
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"cannot read the dataset file {path}: {exc}") from exc
    classes = int(labels.max()) + 1 if labels.size else 0
    if classes > labels.size:  # as checks.checked_splits says when the data is loaded
        raise DatasetError(f"{path}: y_train has label {classes - 1} but only {labels.size} "
                           "training images; labels must be the contiguous range 0..K-1")
    return classes, tuple(int(s) for s in shape[1:])


def peek_folder(path: Path) -> tuple[int, tuple[int, ...]]:
    """(classes, ()) of an image folder from its train/ sub-folders; sizes need decoding."""
    if not path.is_dir():
        raise DatasetError(f"the image folder {path} does not exist")
    return len(_class_folders(path / "train")), ()
