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
# Pillow's modes for more than 8 bits of gray (16-bit PNGs open as I;16, or I in old Pillows):
# converting them to "L" clips every value above 255 to white, so they are scaled instead.
WIDE_GRAY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


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
            if image.mode in WIDE_GRAY_MODES:
                image = image_mod.fromarray(to_8_bits(np.asarray(image)))
            image = image.convert(mode)
            if size is not None and image.size != size:
                image = image.resize(size, image_mod.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except image_mod.DecompressionBombError as exc:
        raise DatasetError(bomb_message(path, exc)) from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot decode image {path}: {exc}") from exc
    return array[..., None] if array.ndim == 2 else array


def to_8_bits(gray: np.ndarray) -> np.ndarray:
    """16-bit gray levels (0..65535) as 8-bit ones, rounded: v / 257 maps 65535 to 255 and
    keeps every level's place in the range (no clipping)."""
    wide = np.clip(gray.astype(np.int64), 0, 65535)
    return ((wide + 128) // 257).astype(np.uint8)


def bomb_message(path: Path, exc: Exception) -> str:
    return (f"image {path} is too large to decode safely ({exc}); images this size are "
            "refused as possible decompression bombs (Pillow's Image.MAX_IMAGE_PIXELS)")


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
