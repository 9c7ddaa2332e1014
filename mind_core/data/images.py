"""Image decoding with Pillow (an optional dependency, imported only when images are read)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from mind_core.data.base import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def require_pillow(what: str) -> Any:
    """The PIL.Image module, or a DatasetError saying how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError(f"reading {what} needs an image decoder: Pillow is not installed. "
                           "Install it with `pip install pillow`.") from None
    return Image


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: Path, mode: str = "RGB", size: tuple[int, int] | None = None) -> np.ndarray:
    """One image as uint8 [h, w, c]; resized to size=(w, h) when given."""
    image_mod = require_pillow(f"{path.suffix} images")
    try:
        with image_mod.open(path) as image:
            image = image.convert(mode)
            if size is not None and image.size != size:
                image = image.resize(size, image_mod.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}") from exc
    return array[..., None] if array.ndim == 2 else array


def decode_into(out: np.ndarray, paths: Sequence[Path], mode: str = "RGB",
                size: tuple[int, int] | None = None) -> None:
    """Decode every path into out[i] (out: [n, h, w, c]); Pillow releases the GIL while
    decoding, so threads help on multi-core machines."""
    require_pillow("images")
    expected = out.shape[1:]

    def read(path: Path) -> np.ndarray:
        array = read_image(path, mode, size)
        if array.shape != expected:
            raise DatasetError(f"image {path} is {array.shape[1]}x{array.shape[0]} pixels but "
                               f"the others are {expected[1]}x{expected[0]}; all images must "
                               "have the same size")
        return array

    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, array in enumerate(pool.map(read, paths)):
            out[i] = array
