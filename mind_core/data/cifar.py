"""CIFAR-100 from the python-format archive (cifar-100-python.tar.gz) or its extracted folder.

The archive holds pickled dicts: b"data" uint8 [n, 3072] (channel-major, 32x32), b"fine_labels"
and, in ``meta``, b"fine_label_names". They are unpickled with a whitelist (numpy arrays, plain
containers) so a tampered archive cannot run code. Decoded arrays are cached as .npy.
"""

from __future__ import annotations

import importlib
import io
import pickle
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mind_core.data.base import Dataset, DatasetError
from mind_core.data.cache import ArrayWriter, cached, fingerprint
from mind_core.data.checks import channel_stats, checked_class_names, checked_splits
from mind_core.data.locations import cache_dir
from mind_core.protocol import Augment

ARCHIVE = "cifar-100-python.tar.gz"
FOLDER = "cifar-100-python"
PARTS = ("train", "test", "meta")
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 100
# Brightness is in normalised units (pixels are (x/255 - mean)/std, std ~0.27): 0.2 shifts an
# image by up to ~0.05 of the 0..1 pixel range, a mild jitter that keeps colours recognisable.
AUGMENT = Augment(crop_pad=4, hflip=True, brightness=0.2)

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol 2 (harmless)
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        # numpy 2 renamed numpy.core to numpy._core; a pickle may name either spelling.
        tail = module.split(".", 2)[-1] if module.startswith("numpy.") else ""
        spellings = [module] if not tail else [f"numpy._core.{tail}", f"numpy.core.{tail}"]
        for spelling in spellings:
            try:
                return getattr(importlib.import_module(spelling), name)
            except (ImportError, AttributeError):
                continue
        return getattr(importlib.import_module(module), name)


def _unpickle(raw: bytes, what: str) -> dict:
    try:
        data = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure means the file is not CIFAR's dict
        raise DatasetError(f"{what} is not a readable CIFAR pickle: {exc}") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{what} does not hold a dict (got {type(data).__name__})")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def find_cifar100(roots: Sequence[Path]) -> Path | None:
    for root in roots:
        for candidate in (root / ARCHIVE, root / FOLDER, root / "cifar100" / ARCHIVE,
                          root / "cifar100" / FOLDER):
            if candidate.is_file() or (candidate / "train").is_file():
                return candidate
    return None


def _read_parts(source: Path) -> dict[str, dict]:
    if source.is_dir():
        parts = {}
        for part in PARTS:
            path = source / part
            if not path.is_file():
                raise DatasetError(f"{source} lacks the file {part!r} of the CIFAR-100 layout")
            parts[part] = _unpickle(path.read_bytes(), str(path))
        return parts
    try:
        with tarfile.open(source, "r:*") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            missing = [p for p in PARTS if p not in members]
            if missing:
                raise DatasetError(f"{source} lacks {missing} (expected {FOLDER}/train, "
                                   "test and meta)")
            return {p: _unpickle(archive.extractfile(members[p]).read(), f"{source}:{p}")
                    for p in PARTS}
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(f"cannot read the archive {source}: {exc}; delete it and "
                           "download again") from exc


def _images_and_labels(part: dict, what: str) -> tuple[np.ndarray, np.ndarray]:
    if "data" not in part or "fine_labels" not in part:
        raise DatasetError(f"{what} lacks b'data' or b'fine_labels'")
    data = np.asarray(part["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{what}: b'data' must be uint8 [n, 3072], got {data.dtype} "
                           f"{data.shape}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), np.asarray(part["fine_labels"], dtype=np.int64)


def _build(source: Path, writer: ArrayWriter) -> dict:
    parts = _read_parts(source)
    x_train, y_train = _images_and_labels(parts["train"], f"{source}: train")
    x_test, y_test = _images_and_labels(parts["test"], f"{source}: test")
    raw_names = parts["meta"].get("fine_label_names")
    names = None if raw_names is None else [
        n.decode() if isinstance(n, bytes) else str(n) for n in raw_names]
    k = len(names) if names else None
    x_train, y_train, x_test, y_test, k = checked_splits(
        x_train, y_train, x_test, y_test, f"CIFAR-100 in {source}", num_classes=k)
    for name, array in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test),
                        ("y_test", y_test)):
        writer.put(name, array)
    mean, std = channel_stats(x_train)
    return {"class_names": list(checked_class_names(names, k, str(source))),
            "mean": mean, "std": std}


def load_cifar100(source: Path, root: Path) -> Dataset:
    files = [source / p for p in PARTS] if source.is_dir() else [source]
    fp = fingerprint(files, salt="cifar100")
    arrays, extra = cached(cache_dir(root, "cifar100"), fp, lambda w: _build(source, w))
    names = tuple(extra["class_names"])
    return Dataset(name="cifar100", x_train=arrays["x_train"], y_train=np.array(arrays["y_train"]),
                   x_test=arrays["x_test"], y_test=np.array(arrays["y_test"]),
                   num_classes=len(names),
                   class_names=names, mean=tuple(extra["mean"]), std=tuple(extra["std"]),
                   augment=AUGMENT)
