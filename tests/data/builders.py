"""Tiny files in each real on-disk format, written by the tests themselves."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np


def pixels(n: int, h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, c), dtype=np.uint8)


def write_idx(path: Path, array: np.ndarray, magic_type: int = 0x08,
              ndim: int | None = None, compress: bool = True) -> Path:
    ndim = array.ndim if ndim is None else ndim
    header = bytes([0, 0, magic_type, ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def fmnist_folder(folder: Path, per_class_train: int = 3, per_class_test: int = 2) -> dict:
    """Gzipped IDX files of a 10-class, 28x28 set; returns the arrays written."""
    arrays = {}
    for split, per_class, stem in (("train", per_class_train, "train"),
                                   ("test", per_class_test, "t10k")):
        y = np.tile(np.arange(10, dtype=np.uint8), per_class)
        x = pixels(len(y), 28, 28, 1, seed=len(y))[..., 0]
        write_idx(folder / f"{stem}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", y)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    return arrays


def cifar_parts(per_class_train: int = 3, per_class_test: int = 2) -> dict[str, dict]:
    """CIFAR-100-style dicts for 2 classes (bytes keys, CHW-flattened uint8 rows)."""
    parts = {}
    for split, per_class in (("train", per_class_train), ("test", per_class_test)):
        labels = [c for c in (0, 1) for _ in range(per_class)]
        images = pixels(len(labels), 32, 32, 3, seed=len(labels))
        parts[split] = {b"data": images.transpose(0, 3, 1, 2).reshape(len(labels), -1),
                        b"fine_labels": labels, b"coarse_labels": [0] * len(labels)}
    parts["meta"] = {b"fine_label_names": [b"apple", b"bicycle"]}
    return parts


def cifar_archive(path: Path, parts: dict[str, dict] | None = None) -> Path:
    parts = parts or cifar_parts()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, content in parts.items():
            raw = content if isinstance(content, bytes) else pickle.dumps(content, protocol=2)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return path


def save_image(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)
    return path


def tinyimagenet_folder(root: Path, wnids=("n02", "n01"), per_class_train: int = 2,
                        per_class_val: int = 1) -> Path:
    folder = root / "tiny-imagenet-200"
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (folder / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tcat\n")
    lines = []
    for k, wnid in enumerate(wnids):
        for i in range(per_class_train):
            save_image(folder / "train" / wnid / "images" / f"{wnid}_{i}.JPEG",
                       np.full((64, 64, 3), 40 + 100 * k, dtype=np.uint8))
        for i in range(per_class_val):
            name = f"val_{wnid}_{i}.JPEG"
            save_image(folder / "val" / "images" / name,
                       np.full((64, 64, 3), 40 + 100 * k, dtype=np.uint8))
            lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return folder


def core50_folder(root: Path, sessions: int = 11, objects: int = 2, frames: int = 5) -> Path:
    """128x128 PNGs; pixel value encodes (session, object) so tests can trace frames."""
    folder = root / "core50_128x128"
    for s in range(1, sessions + 1):
        for o in range(1, objects + 1):
            for f in range(frames):
                value = np.uint8(10 * s + o)
                save_image(folder / f"s{s}" / f"o{o}" / f"C_{s:02d}_{o:02d}_{f:03d}.png",
                           np.full((128, 128, 3), value, dtype=np.uint8))
    return folder


def image_folder(root: Path, classes=("cat", "ant"), per_class: int = 2, size=(6, 5),
                 channels: int = 3) -> Path:
    for split in ("train", "test"):
        for k, name in enumerate(classes):
            for i in range(per_class):
                value = 50 * k + i
                save_image(root / split / name / f"{i}.png",
                           np.full((*size, channels), value, dtype=np.uint8))
    return root
