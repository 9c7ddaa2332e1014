"""Decode-once caches: arrays written as .npy files and read back as read-only memmaps.

A cache folder holds one .npy per array and ``meta.json`` (format version, a fingerprint of
the source files, extra metadata such as class names and channel statistics). It is built in a
temporary sibling folder and renamed into place, so an interrupted build never looks valid.
A different fingerprint (the source files changed) rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mind_core.data.base import DatasetError

CACHE_VERSION = 1
META = "meta.json"


def fingerprint(files: Iterable[Path], salt: str = "") -> str:
    """Hash of each file's path, size and mtime: cheap, and changes when a file does."""
    digest = hashlib.sha256(salt.encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class ArrayWriter:
    """Creates the cache's arrays as writable memmaps, so a large set never sits in RAM."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.arrays: dict[str, np.memmap] = {}

    def create(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.memmap:
        array = np.lib.format.open_memmap(self.folder / f"{name}.npy", mode="w+",
                                          dtype=np.dtype(dtype), shape=shape)
        self.arrays[name] = array
        return array

    def put(self, name: str, values: np.ndarray) -> None:
        values = np.asarray(values)
        self.create(name, values.shape, values.dtype)[...] = values

    def flush(self) -> None:
        for array in self.arrays.values():
            array.flush()


def read_cache(folder: Path, fp: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The cached arrays (memmaps) and metadata, or None when missing, stale or unreadable."""
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        if meta.get("version") != CACHE_VERSION or meta.get("fingerprint") != fp:
            return None
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r")
                  for name in meta["arrays"]}
    except (OSError, ValueError, KeyError):
        return None
    return arrays, meta.get("extra", {})


def cached(folder: Path, fp: str, build: Callable[[ArrayWriter], dict[str, Any]]
           ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read the cache in ``folder``, or build it with ``build(writer) -> extra metadata``."""
    hit = read_cache(folder, fp)
    if hit is not None:
        return hit
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        writer = ArrayWriter(tmp)
        extra = build(writer)
        writer.flush()
        meta = {"version": CACHE_VERSION, "fingerprint": fp,
                "arrays": sorted(writer.arrays), "extra": extra}
        (tmp / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        writer.arrays.clear()  # drop the memmaps before the folder moves
        if read_cache(folder, fp) is None:  # another process may have finished first
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
    except OSError as exc:
        raise DatasetError(f"could not write the dataset cache {folder}: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    hit = read_cache(folder, fp)
    if hit is None:
        raise DatasetError(f"the dataset cache {folder} was written but cannot be read back")
    return hit
