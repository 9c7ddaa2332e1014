"""config.json's "data" block: what a run knows of the data it was trained on.

Written once by runner.prepare_run_dir (data_facts) and read only through read_data_facts,
which checks it as strictly as a checkpoint: a run directory may come from anyone, and these
numbers normalise every image a prediction sees. The fingerprint lets resume and eval refuse
data that is not the run's own (a replaced npz file, other arrays under the same name).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mind_core.data.base import Dataset, DatasetError
from mind_core.errors import short_repr
from mind_core.rundir import CONFIG, RunDirError

SAMPLED_IMAGES = 256
"""Images hashed per split: every n/256-th one. Reading them costs milliseconds even for a
memmapped dataset of gigabytes, and a replaced or transformed file differs in all of them."""

REQUIRED = ("image_shape", "num_classes", "mean", "std")


def data_facts(dataset: Dataset) -> dict[str, Any]:
    """The "data" block of a new run: the dataset's facts and its fingerprint."""
    return {**dataset.facts(), "fingerprint": fingerprint(dataset)}


def fingerprint(dataset: Dataset) -> dict[str, dict[str, Any]]:
    return {"train": _split_print(dataset.x_train, dataset.y_train, dataset.num_classes),
            "test": _split_print(dataset.x_test, dataset.y_test, dataset.num_classes)}


def _split_print(x: np.ndarray, y: np.ndarray, classes: int) -> dict[str, Any]:
    step = max(1, -(-len(x) // SAMPLED_IMAGES))
    labels = np.ascontiguousarray(y, dtype="<i8")
    return {"shape": [int(v) for v in x.shape], "dtype": str(x.dtype),
            "label_counts": np.bincount(labels, minlength=classes).tolist(),
            "labels": _digest(labels.tobytes()),
            "images": _digest(np.ascontiguousarray(x[::step]).tobytes())}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


# What differs, named in the order a user would look: shapes first, then labels, then pixels.
ASPECTS = (("shapes", ("shape", "dtype")), ("labels", ("label_counts", "labels")),
           ("contents", ("images",)))


def check_same_data(run_dir: Path, dataset: Dataset) -> None:
    """DatasetError naming the split and what differs (shapes, labels or contents) when the
    data given to a saved run is not the data it was trained on. A run made before the
    fingerprint was kept is taken on trust: there is nothing to compare."""
    saved = read_data_facts(run_dir)
    recorded = (saved or {}).get("fingerprint")
    if recorded is None:
        return
    now = fingerprint(dataset)
    for split in ("train", "test"):
        for aspect, fields in ASPECTS:
            if any(recorded[split][f] != now[split][f] for f in fields):
                detail = _detail(aspect, recorded[split], now[split])
                raise DatasetError(
                    f"the data given ({dataset.name}) is not the data {run_dir} was trained "
                    f"on: the {split} split's {aspect} differ{detail}; give the run its own "
                    "data")


def _detail(aspect: str, was: dict, now: dict) -> str:
    if aspect != "shapes":
        return ""
    return (f" (was {'x'.join(map(str, was['shape']))} {was['dtype']}, now "
            f"{'x'.join(map(str, now['shape']))} {now['dtype']})")


def read_data_facts(run_dir: Path) -> dict[str, Any] | None:
    """config.json's "data" block, checked; None for a run made before it was kept. A block
    that is there but malformed is a RunDirError naming the field."""
    path = Path(run_dir) / CONFIG
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise RunDirError(f"{path} is unreadable ({exc})") from None
    block = saved.get("data") if isinstance(saved, dict) else None
    if block is None:
        return None
    check_data_facts(block, path)
    return block


def check_data_facts(block: Any, path: Path | str) -> None:
    """The rules a "data" block must meet before any of its numbers is used."""
    def bad(field: str, expected: str) -> RunDirError:
        value = block.get(field) if isinstance(block, dict) else block
        where = f'"data" field {field!r}' if field else '"data"'
        return RunDirError(f"{path}: {where} is {short_repr(value)}; expected {expected}")

    if not isinstance(block, dict):
        raise bad("", "a table of the data's facts")
    missing = [key for key in REQUIRED if key not in block]
    if missing:
        raise RunDirError(f'{path}: "data" lacks {", ".join(missing)}')
    shape = block["image_shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(_whole(v, 1) for v in shape)
            and shape[2] in (1, 3)):
        raise bad("image_shape", "[height, width, channels] with 1 or 3 channels")
    if not _whole(block["num_classes"], 1):
        raise bad("num_classes", "a whole number >= 1")
    channels = shape[2]
    if not _numbers(block["mean"], channels, lambda v: 0 <= v <= 1):
        raise bad("mean", f"{channels} numbers in 0..1, one per channel")
    if not _numbers(block["std"], channels, lambda v: 0 < v <= 1):
        raise bad("std", f"{channels} numbers in (0, 1], one per channel")
    names = block.get("class_names", [])
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)
            and len(names) in (0, block["num_classes"])):
        raise bad("class_names", f"{block['num_classes']} strings (or none)")
    if not isinstance(block.get("name", ""), str):
        raise bad("name", "a string")
    if "fingerprint" in block and not _fingerprint_ok(block["fingerprint"]):
        raise bad("fingerprint", "the train and test splits' shapes, labels and hashes")


def _whole(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _numbers(values: Any, length: int, within) -> bool:
    return (isinstance(values, list) and len(values) == length
            and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                    and within(v) for v in values))


def _fingerprint_ok(value: Any) -> bool:
    def split_ok(split: Any) -> bool:
        return (isinstance(split, dict)
                and isinstance(split.get("shape"), list)
                and all(_whole(v, 0) for v in split["shape"])
                and isinstance(split.get("label_counts"), list)
                and all(_whole(v, 0) for v in split["label_counts"])
                and all(isinstance(split.get(k), str) for k in ("dtype", "labels", "images")))

    return isinstance(value, dict) and all(split_ok(value.get(s)) for s in ("train", "test"))
