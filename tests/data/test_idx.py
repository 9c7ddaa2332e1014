"""Fashion-MNIST from gzipped IDX files: layout, validation of magic numbers and shapes."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from mind_core.data import DatasetError, load_dataset, locations
from mind_core.data.idx import CLASS_NAMES, read_idx
from tests.data.builders import fmnist_folder, write_idx


def test_loads_gzipped_idx_files_with_shapes_labels_and_names(tmp_path):
    written = fmnist_folder(tmp_path / "fashion-mnist")
    data = load_dataset("fmnist", data_dir=tmp_path)
    assert data.x_train.shape == (30, 28, 28, 1) and data.x_test.shape == (20, 28, 28, 1)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert np.array_equal(data.x_train[..., 0], written["x_train"])
    assert np.array_equal(data.y_test, written["y_test"])
    assert data.class_names == CLASS_NAMES and data.num_classes == 10


def test_files_directly_in_the_data_dir_and_uncompressed_files_work(tmp_path):
    fmnist_folder(tmp_path)
    for path in tmp_path.glob("*.gz"):
        path.with_suffix("").write_bytes(gzip.decompress(path.read_bytes()))
        path.unlink()
    assert len(load_dataset("fmnist", data_dir=tmp_path).y_train) == 30


def test_system_location_is_searched_last(tmp_path, monkeypatch):
    fmnist_folder(tmp_path / "debian")
    monkeypatch.setattr(locations, "SYSTEM_FMNIST_DIRS", (tmp_path / "debian",))
    assert len(load_dataset("fmnist").y_train) == 30
    fmnist_folder(tmp_path / "mine" / "fashion-mnist", per_class_train=1)
    assert len(load_dataset("fmnist", data_dir=tmp_path / "mine").y_train) == 10


def test_bad_magic_number_is_rejected(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"\x01\x02\x08\x03" + b"\0" * 20))
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(path, 3)


def test_wrong_dimension_count_is_rejected(tmp_path):
    path = write_idx(tmp_path / "labels.gz", np.zeros(4, dtype=np.uint8))
    with pytest.raises(DatasetError, match="3 dimensions"):
        read_idx(path, 3)


def test_non_byte_element_type_is_rejected(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.zeros((2, 2, 2), dtype=np.uint8), magic_type=0x0D)
    with pytest.raises(DatasetError, match="unsigned bytes"):
        read_idx(path, 3)


def test_truncated_data_is_rejected(tmp_path):
    path = write_idx(tmp_path / "x.gz", np.zeros((4, 28, 28), dtype=np.uint8))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DatasetError, match=r"header says shape \(4, 28, 28\)"):
        read_idx(path, 3)


def test_image_and_label_counts_must_agree(tmp_path):
    fmnist_folder(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8).repeat(3))
    with pytest.raises(DatasetError, match="test has 20 images but 30 labels"):
        load_dataset("fmnist", data_dir=tmp_path)


def test_labels_outside_the_ten_classes_are_rejected(tmp_path):
    fmnist_folder(tmp_path)
    labels = np.tile(np.arange(10, dtype=np.uint8), 3)
    labels[0] = 12
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DatasetError, match="label 12"):
        load_dataset("fmnist", data_dir=tmp_path)


def test_corrupt_gzip_is_a_dataset_error(tmp_path):
    fmnist_folder(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="cannot read IDX file"):
        load_dataset("fmnist", data_dir=tmp_path)
