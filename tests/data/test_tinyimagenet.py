"""TinyImageNet official folder layout, JPEG decoding once into a cache, and its errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mind_core.data import DatasetError, images, load_dataset
from tests.data.builders import save_image, tinyimagenet_folder


def test_official_layout_loads_with_val_as_test_split(tmp_path):
    tinyimagenet_folder(tmp_path, per_class_train=3, per_class_val=2)
    data = load_dataset("tinyimagenet", data_dir=tmp_path)
    assert data.x_train.shape == (6, 64, 64, 3) and data.x_test.shape == (4, 64, 64, 3)
    assert data.x_train.dtype == np.uint8 and data.y_test.dtype == np.int64
    # Classes are the sorted wnids: n01 (goldfish) is 0 although wnids.txt lists n02 first.
    assert data.class_names == ("goldfish", "cat")
    assert np.bincount(data.y_train).tolist() == [3, 3]
    assert np.bincount(data.y_test).tolist() == [2, 2]
    # The builder paints n02 (k=0) at 40 and n01 (k=1) at 140; JPEG is lossy, so approx.
    assert abs(float(data.x_train[data.y_train == 0].mean()) - 140) < 3
    assert abs(float(data.x_test[data.y_test == 1].mean()) - 40) < 3


def test_jpegs_are_decoded_once_and_then_read_from_the_cache(tmp_path, monkeypatch):
    tinyimagenet_folder(tmp_path)
    first = load_dataset("tinyimagenet", data_dir=tmp_path)
    assert (tmp_path / "cache" / "tinyimagenet" / "x_train.npy").is_file()

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images, "read_image", no_decoding)
    monkeypatch.setitem(sys.modules, "PIL", None)  # a cached set needs no decoder at all
    second = load_dataset("tinyimagenet", data_dir=tmp_path)
    assert isinstance(second.x_train, np.memmap)
    assert np.array_equal(first.x_train, second.x_train)


def test_missing_pillow_is_named_in_the_error(tmp_path, monkeypatch):
    tinyimagenet_folder(tmp_path)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DatasetError, match="pip install pillow"):
        load_dataset("tinyimagenet", data_dir=tmp_path)
    assert not (tmp_path / "cache" / "tinyimagenet").exists()


def test_other_image_sizes_are_resized_to_64(tmp_path):
    folder = tinyimagenet_folder(tmp_path)
    save_image(folder / "train" / "n01" / "images" / "n01_0.JPEG",
               np.zeros((80, 70, 3), dtype=np.uint8))
    assert load_dataset("tinyimagenet", data_dir=tmp_path).image_shape == (64, 64, 3)


def test_a_class_without_images_is_an_error(tmp_path):
    folder = tinyimagenet_folder(tmp_path)
    (folder / "wnids.txt").write_text("n01\nn02\nn03\n")
    with pytest.raises(DatasetError, match="class n03 has no images"):
        load_dataset("tinyimagenet", data_dir=tmp_path)


def test_val_annotation_with_unknown_wnid_is_an_error(tmp_path):
    folder = tinyimagenet_folder(tmp_path)
    with open(folder / "val" / "val_annotations.txt", "a") as handle:
        handle.write("val_x.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(DatasetError, match="bad line"):
        load_dataset("tinyimagenet", data_dir=tmp_path)


def test_missing_val_annotations_is_an_error(tmp_path):
    folder = tinyimagenet_folder(tmp_path)
    (folder / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DatasetError, match="val_annotations.txt is missing"):
        load_dataset("tinyimagenet", data_dir=tmp_path)


def test_an_undecodable_jpeg_is_an_error_naming_the_file(tmp_path):
    folder = tinyimagenet_folder(tmp_path)
    bad = folder / "train" / "n02" / "images" / "n02_1.JPEG"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="n02_1.JPEG"):
        load_dataset("tinyimagenet", data_dir=tmp_path)
    assert not (tmp_path / "cache" / "tinyimagenet").exists()
