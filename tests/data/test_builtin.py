"""The shipped fmnist-mini file: contents, integrity check, provenance and regeneration."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from mind_core.data import DatasetError, builtin, load_dataset
from mind_core.data.checks import channel_stats
from mind_core.data.idx import CLASS_NAMES

REPO = Path(__file__).resolve().parents[2]
DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fmnist_mini_has_10000_train_and_2000_test_images_balanced():
    data = load_dataset("fmnist-mini")
    assert data.x_train.shape == (10_000, 28, 28, 1)
    assert data.x_test.shape == (2_000, 28, 28, 1)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert np.bincount(data.y_train).tolist() == [1000] * 10
    assert np.bincount(data.y_test).tolist() == [200] * 10
    assert data.class_names == CLASS_NAMES
    assert data.num_classes == 10


def test_fmnist_mini_normalisation_constants_are_its_train_statistics():
    data = load_dataset("fmnist-mini")
    mean, std = channel_stats(data.x_train)
    assert data.mean == pytest.approx(mean, abs=1e-5)
    assert data.std == pytest.approx(std, abs=1e-5)


def test_fmnist_mini_images_and_labels_come_from_the_full_set():
    from mind_core.data.idx import load_idx_folder

    full = load_idx_folder(DEBIAN_FMNIST)
    mini = load_dataset("fmnist-mini")
    for split in ("train", "test"):
        label_of = {img.tobytes(): int(y)
                    for img, y in zip(full[f"x_{split}"], full[f"y_{split}"], strict=True)}
        x, y = getattr(mini, f"x_{split}"), getattr(mini, f"y_{split}")
        assert all(label_of.get(img[..., 0].tobytes()) == int(lab)
                   for img, lab in zip(x, y, strict=True))


def test_damaged_file_is_refused(tmp_path):
    copy = tmp_path / "fmnist_mini.npz"
    raw = bytearray(builtin.FILE.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    copy.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="damaged"):
        builtin.load_fmnist_mini(copy)


def test_missing_file_is_a_readable_error(tmp_path):
    with pytest.raises(DatasetError, match="missing.*make_builtin_fmnist"):
        builtin.load_fmnist_mini(tmp_path / "fmnist_mini.npz")


def test_recorded_hash_matches_the_shipped_file_and_provenance():
    actual = sha256(builtin.FILE)
    assert actual == builtin.SHA256
    provenance = (builtin.FILE.parent / "PROVENANCE.md").read_text(encoding="utf-8")
    assert actual in provenance
    assert "dataset-fashion-mnist" in provenance and "MIT" in provenance


def test_regeneration_script_reproduces_the_shipped_file(tmp_path):
    assert DEBIAN_FMNIST.is_dir(), "apt-get install dataset-fashion-mnist (CI installs it)"
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import make_builtin_fmnist
    finally:
        sys.path.remove(str(REPO / "scripts"))
    out = tmp_path / "regenerated.npz"
    assert make_builtin_fmnist.main(["--source", str(DEBIAN_FMNIST), "--out", str(out)]) == 0
    assert sha256(out) == sha256(builtin.FILE)


def test_regeneration_with_another_seed_selects_other_images(tmp_path):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import make_builtin_fmnist
    finally:
        sys.path.remove(str(REPO / "scripts"))
    labels = np.repeat(np.arange(10), 30)
    first = make_builtin_fmnist.select(labels, 5, seed=0, split="train")
    again = make_builtin_fmnist.select(labels, 5, seed=0, split="train")
    other = make_builtin_fmnist.select(labels, 5, seed=1, split="train")
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert np.bincount(labels[first]).tolist() == [5] * 10
    assert np.all(np.diff(first) > 0)


def test_loader_reads_a_copy_in_another_place(tmp_path):
    copy = tmp_path / "fmnist_mini.npz"
    shutil.copyfile(builtin.FILE, copy)
    assert len(builtin.load_fmnist_mini(copy).x_test) == 2_000
