"""CORe50 from core50_128x128/s<session>/o<object>/*.png, resized to 64x64 once and cached.

Labels are the 50 objects (o1..o50 -> 0..49); domains are the 11 acquisition sessions
(s1..s11 -> 0..10). Two splits of the same frames:
- "core50": the standard session split, sessions s3, s7 and s10 are the test set and the other
  eight train (class-incremental).
- "core50-frames": every session keeps 80% of each object's frames for training and 20% for
  test, chosen by a fixed hash of the file path (version-independent, no seed to set). Domain-
  incremental learning needs test data in every session, which the session split cannot give.
  Consecutive frames of one video are near-duplicates, so this split is the easier one.
The cache stores the frames ordered session-train first, so the session split is two slices
of the memmap (no copy).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mind_core.data.base import Dataset, DatasetError
from mind_core.data.cache import ArrayWriter, cached, fingerprint
from mind_core.data.checks import channel_stats
from mind_core.data.images import decode_into, list_images, require_pillow
from mind_core.data.locations import cache_dir
from mind_core.protocol import Augment

FOLDER = "core50_128x128"
IMAGE_SHAPE = (64, 64, 3)
NUM_CLASSES = 50
TEST_SESSIONS = (3, 7, 10)  # 1-based, as in the folder names
FRAMES_TEST_FRACTION = 0.2
CATEGORIES = ("plug_adapter", "mobile_phone", "scissors", "light_bulb", "can", "glasses",
              "ball", "marker", "cup", "remote_control")  # o1-o5, o6-o10, ... o46-o50
AUGMENT = Augment(crop_pad=8, hflip=True, brightness=0.2)
_SESSION = re.compile(r"^s(\d+)$")
_OBJECT = re.compile(r"^o(\d+)$")


def _numbered(folder: Path, pattern: re.Pattern) -> list[tuple[int, Path]]:
    found = []
    for child in folder.iterdir():
        match = pattern.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def find_core50(roots: Sequence[Path]) -> Path | None:
    for root in roots:
        for candidate in (root / FOLDER, root / "core50" / FOLDER, root / "core50", root):
            if candidate.is_dir() and (candidate / "s1").is_dir():
                return candidate
    return None


def class_name(obj: int) -> str:
    """'ball3' for o33: the category and the object's number within it."""
    if 1 <= obj <= 5 * len(CATEGORIES):
        return f"{CATEGORIES[(obj - 1) // 5]}{(obj - 1) % 5 + 1}"
    return f"o{obj}"


def _scan(folder: Path):
    """Every frame as (session, object, path), in cache order (session-train ones first)."""
    frames = []
    for session, session_dir in _numbered(folder, _SESSION):
        for obj, obj_dir in _numbered(session_dir, _OBJECT):
            frames += [(session, obj, path) for path in list_images(obj_dir)]
    if not frames:
        raise DatasetError(f"{folder} holds no s<N>/o<N>/*.png frames")
    frames.sort(key=lambda f: (f[0] in TEST_SESSIONS, f[0], f[1], f[2].name))
    return frames


def _frame_keys(folder: Path, paths: Sequence[Path]) -> np.ndarray:
    keys = [hashlib.sha256(f"core50-frames:{p.relative_to(folder).as_posix()}".encode())
            .digest()[:8] for p in paths]
    return np.frombuffer(b"".join(keys), dtype=">u8").astype(np.uint64)


def frames_test_mask(objects: np.ndarray, sessions: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """20% of each (session, object) group's frames, those with the smallest keys."""
    test = np.zeros(len(keys), dtype=bool)
    group = sessions.astype(np.int64) * 1000 + objects
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        if len(members) < 2:
            continue  # a lone frame stays in train: a class must never lack training data
        count = max(1, int(round(FRAMES_TEST_FRACTION * len(members))))
        test[members[np.argsort(keys[members], kind="stable")[:count]]] = True
    return test


def _build(folder: Path, frames, writer: ArrayWriter) -> dict:
    require_pillow("CORe50 PNGs")
    paths = [f[2] for f in frames]
    x = writer.create("x", (len(frames), *IMAGE_SHAPE), np.uint8)
    decode_into(x, paths, "RGB", (IMAGE_SHAPE[1], IMAGE_SHAPE[0]))
    objects = np.array([f[1] - 1 for f in frames], dtype=np.int64)
    sessions = np.array([f[0] - 1 for f in frames], dtype=np.int64)
    keys = _frame_keys(folder, paths)
    writer.put("objects", objects)
    writer.put("sessions", sessions)
    writer.put("keys", keys)
    n_train = int(sum(1 for f in frames if f[0] not in TEST_SESSIONS))
    frames_train = np.flatnonzero(~frames_test_mask(objects, sessions, keys))
    session_stats = channel_stats(x, np.arange(n_train)) if n_train else ((0.5,) * 3,
                                                                          (0.25,) * 3)
    return {"session_train": n_train, "stats": {
        "core50": session_stats, "core50-frames": channel_stats(x, frames_train)}}


def _check_objects(objects: np.ndarray, folder: Path) -> int:
    present = np.unique(objects)
    k = int(present.max()) + 1
    if len(present) != k:
        missing = sorted(set(range(k)) - set(present.tolist()))
        raise DatasetError(f"CORe50 in {folder}: objects {[f'o{m + 1}' for m in missing[:10]]} "
                           f"have no frames; object folders must be o1..o{k}")
    return k


def load_core50(folder: Path, root: Path, split: str = "core50") -> Dataset:
    """split: "core50" (sessions s3, s7, s10 are test) or "core50-frames" (80/20 per session)."""
    frames = _scan(folder)
    fp = fingerprint([f[2] for f in frames], salt="core50")
    arrays, extra = cached(cache_dir(root, "core50"), fp, lambda w: _build(folder, frames, w))
    # Labels and sessions are small: plain arrays; the images stay a memmap.
    x, objects, sessions = arrays["x"], np.array(arrays["objects"]), np.array(arrays["sessions"])
    k = _check_objects(objects, folder)
    if split == "core50":
        n_train = int(extra["session_train"])
        if n_train == 0 or n_train == len(x):
            raise DatasetError(f"CORe50 in {folder}: the session split needs training sessions "
                               f"and the test sessions s{', s'.join(map(str, TEST_SESSIONS))}")
        train, test = slice(0, n_train), slice(n_train, len(x))
    elif split == "core50-frames":
        is_test = frames_test_mask(objects, sessions, np.asarray(arrays["keys"]))
        train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    else:
        raise ValueError(f"unknown CORe50 split {split!r}")
    mean, std = extra["stats"][split]
    return Dataset(name=split, x_train=x[train], y_train=objects[train], x_test=x[test],
                   y_test=objects[test], num_classes=k,
                   class_names=tuple(class_name(i + 1) for i in range(k)),
                   mean=tuple(mean), std=tuple(std), augment=AUGMENT,
                   domains_train=sessions[train], domains_test=sessions[test])
