"""Synbols: the numpy-only loader, the missing-extra message and (with the extra) generation."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mind_core.data import DatasetError, load_dataset, prepare_synbols
from mind_core.data.synbols_gen import SYMBOL_POOL
from tests.data.builders import pixels


def write_synbols(path, classes=3, per_class_train=4, per_class_test=2):
    y_train = np.repeat(np.arange(classes), per_class_train)
    y_test = np.repeat(np.arange(classes), per_class_test)
    np.savez_compressed(path, x_train=pixels(len(y_train), 32, 32, 3, seed=1), y_train=y_train,
                        x_test=pixels(len(y_test), 32, 32, 3, seed=2), y_test=y_test,
                        class_names=np.array(["a", "b", "c"][:classes]))


def test_loads_the_npz_from_the_data_dir(tmp_path):
    write_synbols(tmp_path / "synbols.npz")
    data = load_dataset("synbols", data_dir=tmp_path)
    assert data.x_train.shape == (12, 32, 32, 3) and data.x_test.shape == (6, 32, 32, 3)
    assert data.y_train.dtype == np.int64 and data.num_classes == 3
    assert data.class_names == ("a", "b", "c")
    assert not data.augment.hflip  # mirrored symbols are other symbols


def test_a_file_with_missing_arrays_is_an_error(tmp_path):
    np.savez(tmp_path / "synbols.npz", x_train=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"lacks the arrays \['y_train', 'x_test', 'y_test'\]"):
        load_dataset("synbols", data_dir=tmp_path)


def test_generation_without_the_extra_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "synbols", None)
    monkeypatch.setitem(sys.modules, "synbols.drawing", None)
    with pytest.raises(DatasetError) as err:
        prepare_synbols(tmp_path / "synbols.npz", classes=2, per_class_train=1,
                        per_class_test=1)
    assert "pip install -e '.[synbols]'" in str(err.value)
    assert "libcairo2-dev" in str(err.value)
    assert not (tmp_path / "synbols.npz").exists()


def test_too_many_classes_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match=f"1..{len(SYMBOL_POOL)}"):
        prepare_synbols(tmp_path / "s.npz", classes=len(SYMBOL_POOL) + 1)


def test_symbol_pool_has_200_distinct_symbols():
    assert len(set(SYMBOL_POOL)) == len(SYMBOL_POOL) >= 200


def test_generated_file_loads_as_the_synbols_dataset(tmp_path):
    pytest.importorskip("synbols.drawing", reason="needs the optional synbols extra")
    out = prepare_synbols(tmp_path / "synbols.npz", classes=3, per_class_train=4,
                          per_class_test=2, seed=5, size=16)
    data = load_dataset("synbols", data_dir=tmp_path)
    assert out == tmp_path / "synbols.npz"
    assert data.x_train.shape == (12, 16, 16, 3) and data.x_test.shape == (6, 16, 16, 3)
    assert np.bincount(data.y_train).tolist() == [4, 4, 4]
    assert data.class_names == ("a U+0061", "b U+0062", "c U+0063")
    assert data.x_train.std() > 10  # rendered content, not a blank image
    again = prepare_synbols(tmp_path / "again.npz", classes=3, per_class_train=4,
                            per_class_test=2, seed=5, size=16)
    assert np.array_equal(np.load(again)["x_train"], np.asarray(data.x_train))
