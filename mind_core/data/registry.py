"""Dataset names -> loaders, what each needs, and where it is looked for.

Search order for files (mind_core.data.locations): the ``data_dir`` argument, then
``$MIND_DATA_DIR``, then ``~/.cache/mind/data``; Fashion-MNIST also in the Debian package's
/usr/share/datasets/fashion-mnist. Besides the names below, "npz:PATH" (or a bare PATH.npz) and "folder:PATH" load
the user's own data (see mind_core.data.user).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from mind_core.data import builtin, cifar, core50, idx, synbols, synthetic, tinyimagenet, user
from mind_core.data.base import Dataset, DatasetError
from mind_core.data.locations import ENV_VAR, describe_roots, search_roots
from mind_core.errors import did_you_mean
from mind_core.extras import install_hint
from mind_core.protocol import Augment

WHERE = f"--data-dir, ${ENV_VAR} or ~/.cache/mind/data"
CORE50_HOW = ("mind datasets download core50 (core50_128x128.zip, several GB), or unzip "
              "core50_128x128.zip from https://vlomonaco.github.io/core50/ into the data dir "
              f"({WHERE}); decoding needs Pillow (pip install pillow)")
USER_FORMATS = {
    "npz:PATH": "an .npz with x_train, y_train, x_test, y_test (uint8 NHWC or NHW images, "
                "integer labels 0..K-1) and optionally class_names",
    "folder:PATH": "an image folder PATH/train/<class>/*.png|jpg and PATH/test/<class>/... "
                   "(needs Pillow)",
}


USER_KINDS = tuple(spec.partition(":")[0] for spec in USER_FORMATS)  # npz, folder


def loads_by_name(name: str) -> bool:
    """Whether load_dataset reads something of its own for this name (a registered dataset,
    or an npz:/folder: path): a run's arrays must never be recorded under such a name, or a
    later eval or resume would load that instead."""
    return name in SPECS or user_data(name) is not None


@attrs.frozen(kw_only=True)
class DatasetInfo:
    name: str
    classes: int
    image_shape: tuple[int, ...]  # () where unknown without decoding (image folders)
    available: bool
    how_to_get: str
    description: str = ""
    location: str | None = None  # where it was found, when available


@attrs.frozen(kw_only=True)
class DatasetSpec:
    name: str
    classes: int
    image_shape: tuple[int, int, int]
    description: str
    how_to_get: str
    looks_for: str  # the files or folders searched for, for error messages
    augment: Augment = Augment()
    # Constant normalisation, or None when the loader computes it from the train split.
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    find: Callable[[Sequence[Path]], Path | None] | None = None  # None: always available
    load: Callable[[Path | None, Path], Dataset] = attrs.field(repr=False)


def _root_of(path: Path, roots: Sequence[Path]) -> Path:
    """The search root a found path lies under (where its cache goes)."""
    for root in roots:
        try:
            path.relative_to(root)
            return root
        except ValueError:
            continue
    return roots[0]


SPECS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec(
        name="fmnist-mini", classes=builtin.NUM_CLASSES, image_shape=builtin.IMAGE_SHAPE,
        description="Fashion-MNIST subset shipped with the package: 10 classes, 1,000 train / "
                    "200 test images each, 28x28 grayscale (the demo default)",
        how_to_get="built in; nothing to do", looks_for=str(builtin.FILE),
        mean=builtin.MEAN, std=builtin.STD, find=None,
        load=lambda _path, _root: builtin.load_fmnist_mini()),
    DatasetSpec(
        name="synthetic", classes=synthetic.NUM_CLASSES, image_shape=synthetic.IMAGE_SHAPE,
        description="tiny generated set for tests and the smoke preset: 10 classes of 12x12 "
                    "patterns, 60 train / 20 test each",
        how_to_get="generated in memory; nothing to do", looks_for="(nothing)", find=None,
        load=lambda _path, _root: synthetic.make_synthetic()),
    DatasetSpec(
        name="fmnist", classes=len(idx.CLASS_NAMES), image_shape=idx.IMAGE_SHAPE,
        description="Fashion-MNIST, 10 classes, 60,000 train / 10,000 test, 28x28 grayscale",
        how_to_get="apt-get install dataset-fashion-mnist (Debian/Ubuntu), or put the four "
                   "*-idx?-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist "
                   f"into <data dir>/fashion-mnist/ (data dir: {WHERE})",
        looks_for="the four Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...) in "
                  "<root>/fashion-mnist, <root>/fmnist, <root> and "
                  "/usr/share/datasets/fashion-mnist",
        mean=idx.MEAN, std=idx.STD, find=idx.find_fmnist,
        load=lambda path, _root: idx.load_fmnist(path)),
    DatasetSpec(
        name="cifar100", classes=cifar.NUM_CLASSES, image_shape=cifar.IMAGE_SHAPE,
        description="CIFAR-100, 100 classes, 50,000 train / 10,000 test, 32x32 RGB",
        how_to_get="mind datasets download cifar100 (161 MB into the data dir), or put "
                   "cifar-100-python.tar.gz or its extracted cifar-100-python/ folder into the "
                   f"data dir ({WHERE})",
        looks_for="cifar-100-python.tar.gz or cifar-100-python/ in <root> or <root>/cifar100",
        augment=cifar.AUGMENT, find=cifar.find_cifar100, load=cifar.load_cifar100),
    DatasetSpec(
        name="tinyimagenet", classes=tinyimagenet.NUM_CLASSES,
        image_shape=tinyimagenet.IMAGE_SHAPE,
        description="TinyImageNet-200, 200 classes, 100,000 train / 10,000 (val) test, 64x64 RGB",
        how_to_get="mind datasets download tinyimagenet (237 MB zip, unpacked into the data "
                   "dir), or unzip http://cs231n.stanford.edu/tiny-imagenet-200.zip into the "
                   f"data dir ({WHERE}); decoding needs Pillow (pip install pillow)",
        looks_for="tiny-imagenet-200/ (wnids.txt, train/, val/) in <root>",
        augment=tinyimagenet.AUGMENT, find=tinyimagenet.find_tinyimagenet,
        load=tinyimagenet.load_tinyimagenet),
    DatasetSpec(
        name="core50", classes=core50.NUM_CLASSES, image_shape=core50.IMAGE_SHAPE,
        description="CORe50, 50 objects, 11 sessions resized to 64x64; sessions s3, s7, s10 "
                    "are the test set (class-incremental)",
        how_to_get=CORE50_HOW,
        looks_for="core50_128x128/s1..s11/o1..o50/*.png in <root>",
        augment=core50.AUGMENT, find=core50.find_core50,
        load=lambda path, root: core50.load_core50(path, root, "core50")),
    DatasetSpec(
        name="core50-frames", classes=core50.NUM_CLASSES, image_shape=core50.IMAGE_SHAPE,
        description="CORe50 with a fixed 80/20 frame split inside every session, so each of the "
                    "11 sessions has test data (domain-incremental)",
        how_to_get=CORE50_HOW + " (the same files as core50)",
        looks_for="core50_128x128/s1..s11/o1..o50/*.png in <root>",
        augment=core50.AUGMENT, find=core50.find_core50,
        load=lambda path, root: core50.load_core50(path, root, "core50-frames")),
    DatasetSpec(
        name="synbols", classes=synbols.NUM_CLASSES, image_shape=synbols.IMAGE_SHAPE,
        description="Synbols, 200 symbol classes on gradient backgrounds, 32x32 RGB",
        how_to_get="mind datasets prepare synbols (a few minutes; needs "
                   f"{install_hint('synbols')} and the apt packages libcairo2-dev, "
                   f"pkg-config, fonts-dejavu-core); searched in {WHERE}",
        looks_for="synbols.npz in <root> or <root>/synbols",
        augment=synbols.AUGMENT, find=synbols.find_synbols,
        load=lambda path, _root: synbols.load_synbols(path)),
)}


def get_spec(name: str) -> DatasetSpec:
    if name not in SPECS:
        raise DatasetError(_unknown(name))
    return SPECS[name]


def _unknown(name: str) -> str:
    formats = "; ".join(f"{k}: {v}" for k, v in USER_FORMATS.items())
    return (f"unknown dataset {name!r}{did_you_mean(name, SPECS)}; known: {', '.join(SPECS)}; "
            f"or your own data, {formats}")


def user_data(name: str) -> tuple[str, str] | None:
    """(kind, path) of the user's own data: "npz:PATH", "folder:PATH", or a bare path ending
    .npz (no named dataset does, and it is what users type first); None for a name."""
    kind, sep, rest = name.partition(":")
    if sep and kind in USER_KINDS:
        if not rest:
            raise DatasetError(f"{name!r} needs a path after '{kind}:'")
        return kind, rest
    return ("npz", name) if name.lower().endswith(".npz") else None


def list_datasets(data_dir: str | os.PathLike[str] | None = None) -> list[DatasetInfo]:
    """Every named dataset and whether it can be loaded now (files present; cheap check)."""
    roots = search_roots(data_dir)
    return [_info(spec, roots) for spec in SPECS.values()]


def dataset_info(name: str, data_dir: str | os.PathLike[str] | None = None) -> DatasetInfo:
    """One dataset as list_datasets or describe_user_data sees it: DatasetError for a name
    that is neither registered nor npz:/folder: data, or user data that cannot be used."""
    if user_data(name) is not None:
        return describe_user_data(name)
    return _info(get_spec(name), search_roots(data_dir))


def _info(spec: DatasetSpec, roots: Sequence[Path]) -> DatasetInfo:
    if spec.name == "fmnist-mini":
        available = builtin.available()
        found = builtin.FILE if available else None
    elif spec.find is None:
        found, available = None, True
    else:
        found = spec.find(roots)
        available = found is not None
    return DatasetInfo(
        name=spec.name, classes=spec.classes, image_shape=spec.image_shape,
        available=available, how_to_get=spec.how_to_get, description=spec.description,
        location=str(found) if found is not None else None)


def describe_user_data(name: str) -> DatasetInfo:
    """A cheap look at "npz:PATH" / "folder:PATH" (no images decoded); DatasetError if it
    cannot be used."""
    found = user_data(name)
    if found is None:
        raise DatasetError(f"{name!r} is not your own data: write npz:PATH or folder:PATH")
    kind, rest = found
    path = Path(rest).expanduser()
    classes, shape = user.peek_npz(path) if kind == "npz" else user.peek_folder(path)
    return DatasetInfo(name=name, classes=classes, image_shape=shape, available=True,
                       how_to_get=USER_FORMATS[f"{kind}:PATH"], location=str(path))


def load_dataset(name: str, data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """The dataset ``name`` (see SPECS, or "npz:PATH" / "folder:PATH") as numpy arrays."""
    roots = search_roots(data_dir)
    found = user_data(name)
    if found is not None:
        kind, rest = found
        path = Path(rest).expanduser()
        return user.load_npz(path) if kind == "npz" else user.load_folder(path, roots[0])
    spec = get_spec(name)
    if spec.find is None:
        return spec.load(None, roots[0])
    found = spec.find(roots)
    if found is None:
        raise DatasetError(f"dataset {name!r} is not available: looked for {spec.looks_for}, "
                           f"with <root> = {describe_roots(roots)}. To get it: "
                           f"{spec.how_to_get}")
    return spec.load(found, _root_of(found, roots))
