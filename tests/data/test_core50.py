"""CORe50 folders: 64x64 resize, session split, frame split, domains and the shared cache."""

from __future__ import annotations

import numpy as np
import pytest

from mind_core.data import DatasetError, images, load_dataset
from mind_core.data.core50 import class_name
from tests.data.builders import core50_folder


@pytest.fixture
def core50_dir(tmp_path):
    core50_folder(tmp_path, sessions=11, objects=2, frames=5)
    return tmp_path


def session_and_object(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undo the builder's pixel code 10 * session + object (1-based)."""
    value = x[:, 0, 0, 0].astype(int)
    return value // 10, value % 10


def test_session_split_tests_on_sessions_3_7_10(core50_dir):
    data = load_dataset("core50", data_dir=core50_dir)
    assert data.x_train.shape == (8 * 2 * 5, 64, 64, 3)
    assert data.x_test.shape == (3 * 2 * 5, 64, 64, 3)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert sorted(set((data.domains_test + 1).tolist())) == [3, 7, 10]
    assert set((data.domains_train + 1).tolist()) == {1, 2, 4, 5, 6, 8, 9, 11}
    for x, y, d in ((data.x_train, data.y_train, data.domains_train),
                    (data.x_test, data.y_test, data.domains_test)):
        session, obj = session_and_object(x)
        assert np.array_equal(session, d + 1) and np.array_equal(obj, y + 1)


def test_class_names_follow_the_core50_categories(core50_dir):
    data = load_dataset("core50", data_dir=core50_dir)
    assert data.num_classes == 2
    assert data.class_names == ("plug_adapter1", "plug_adapter2")
    assert class_name(33) == "ball3" and class_name(50) == "remote_control5"


def test_frame_split_gives_every_session_and_object_test_frames(core50_dir):
    data = load_dataset("core50-frames", data_dir=core50_dir)
    assert len(data.y_train) == 11 * 2 * 4 and len(data.y_test) == 11 * 2 * 1
    pairs = set(zip(data.domains_test.tolist(), data.y_test.tolist(), strict=True))
    assert pairs == {(s, o) for s in range(11) for o in range(2)}
    session, obj = session_and_object(data.x_test)
    assert np.array_equal(session, data.domains_test + 1)
    assert np.array_equal(obj, data.y_test + 1)


def test_frame_split_is_fixed_across_loads(core50_dir):
    first = load_dataset("core50-frames", data_dir=core50_dir)
    second = load_dataset("core50-frames", data_dir=core50_dir)
    assert np.array_equal(first.x_test, second.x_test)
    assert np.array_equal(first.domains_test, second.domains_test)


def test_both_splits_share_one_decoded_cache(core50_dir, monkeypatch):
    load_dataset("core50", data_dir=core50_dir)
    assert (core50_dir / "cache" / "core50" / "x.npy").is_file()

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images, "read_image", no_decoding)
    data = load_dataset("core50-frames", data_dir=core50_dir)
    assert data.x_train.shape[1:] == (64, 64, 3)


def test_normalisation_of_each_split_matches_its_train_set(core50_dir):
    for name in ("core50", "core50-frames"):
        data = load_dataset(name, data_dir=core50_dir)
        expected = np.asarray(data.x_train, dtype=np.float64).mean(axis=(0, 1, 2)) / 255
        assert data.mean == pytest.approx(expected, abs=1e-5)


def test_session_split_without_test_sessions_is_an_error(tmp_path):
    core50_folder(tmp_path, sessions=2, objects=2, frames=2)
    with pytest.raises(DatasetError, match="s3, s7, s10"):
        load_dataset("core50", data_dir=tmp_path)
    assert len(load_dataset("core50-frames", data_dir=tmp_path).y_test) == 2 * 2


def test_a_gap_in_object_folders_is_an_error(tmp_path):
    folder = core50_folder(tmp_path, sessions=3, objects=1, frames=2)
    for s in (1, 2, 3):
        (folder / f"s{s}" / "o1").rename(folder / f"s{s}" / "o3")
    with pytest.raises(DatasetError, match=r"'o1', 'o2'"):
        load_dataset("core50-frames", data_dir=tmp_path)


def test_session_folders_without_frames_are_an_error(tmp_path):
    (tmp_path / "core50_128x128" / "s1" / "o1").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no s<N>/o<N>/"):
        load_dataset("core50", data_dir=tmp_path)
