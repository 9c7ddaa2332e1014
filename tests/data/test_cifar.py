"""CIFAR-100 python-format archive and folder, the decode cache, and the download helper."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest

from mind_core.data import DatasetError, cifar, download, load_dataset
from mind_core.data.download import SOURCES
from tests.data.builders import cifar_archive, cifar_parts


def test_two_class_archive_loads_with_hwc_images_labels_and_names(tmp_path):
    parts = cifar_parts()
    cifar_archive(tmp_path / "cifar-100-python.tar.gz", parts)
    data = load_dataset("cifar100", data_dir=tmp_path)
    assert data.x_train.shape == (6, 32, 32, 3) and data.x_test.shape == (4, 32, 32, 3)
    assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    assert data.y_train.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.class_names == ("apple", "bicycle") and data.num_classes == 2
    # Row layout is R plane, G plane, B plane (1024 each), row-major within a plane.
    row = parts["train"][b"data"][4]
    assert data.x_train[4, 2, 5, 1] == row[1024 + 2 * 32 + 5]
    assert data.augment == cifar.AUGMENT


def test_normalisation_is_computed_from_the_train_split(tmp_path):
    cifar_archive(tmp_path / "cifar-100-python.tar.gz")
    data = load_dataset("cifar100", data_dir=tmp_path)
    x = np.asarray(data.x_train, dtype=np.float64) / 255
    assert data.mean == pytest.approx(x.mean(axis=(0, 1, 2)), abs=1e-5)
    assert data.std == pytest.approx(x.std(axis=(0, 1, 2)), abs=1e-5)


def test_extracted_folder_loads_the_same_arrays(tmp_path):
    parts = cifar_parts()
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, content in parts.items():
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))
    from_folder = load_dataset("cifar100", data_dir=tmp_path)
    cifar_archive(tmp_path / "other" / "cifar-100-python.tar.gz", parts)
    from_archive = load_dataset("cifar100", data_dir=tmp_path / "other")
    assert np.array_equal(from_folder.x_test, from_archive.x_test)


def test_archive_is_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
    cifar_archive(tmp_path / "cifar-100-python.tar.gz")
    first = load_dataset("cifar100", data_dir=tmp_path)
    assert (tmp_path / "cache" / "cifar100" / "x_train.npy").is_file()

    def no_decoding(*_args):
        raise AssertionError("the archive was decoded again")

    monkeypatch.setattr(cifar, "_read_parts", no_decoding)
    second = load_dataset("cifar100", data_dir=tmp_path)
    assert isinstance(second.x_train, np.memmap)
    assert np.array_equal(first.x_train, second.x_train)


def test_a_changed_archive_invalidates_the_cache(tmp_path):
    path = cifar_archive(tmp_path / "cifar-100-python.tar.gz")
    load_dataset("cifar100", data_dir=tmp_path)
    parts = cifar_parts(per_class_train=4)
    cifar_archive(path, parts)
    assert len(load_dataset("cifar100", data_dir=tmp_path).y_train) == 8


def test_archive_missing_a_part_is_a_dataset_error(tmp_path):
    parts = cifar_parts()
    del parts["test"]
    cifar_archive(tmp_path / "cifar-100-python.tar.gz", parts)
    with pytest.raises(DatasetError, match=r"lacks \['test'\]"):
        load_dataset("cifar100", data_dir=tmp_path)


def test_wrong_row_length_is_a_dataset_error(tmp_path):
    parts = cifar_parts()
    parts["train"][b"data"] = parts["train"][b"data"][:, :100]
    cifar_archive(tmp_path / "cifar-100-python.tar.gz", parts)
    with pytest.raises(DatasetError, match=r"uint8 \[n, 3072\]"):
        load_dataset("cifar100", data_dir=tmp_path)


def test_pickle_that_would_run_code_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    parts = cifar_parts()
    parts["meta"] = pickle.dumps({b"fine_label_names": Exploit()}, protocol=2)
    cifar_archive(tmp_path / "cifar-100-python.tar.gz", parts)
    with pytest.raises(DatasetError, match=r"refusing to load \w+\.print"):
        load_dataset("cifar100", data_dir=tmp_path)


def test_a_damaged_archive_is_a_dataset_error(tmp_path):
    (tmp_path / "cifar-100-python.tar.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DatasetError, match="cannot read the archive"):
        load_dataset("cifar100", data_dir=tmp_path)


def _served_archive(tmp_path):
    source = cifar_archive(tmp_path / "server" / "cifar-100-python.tar.gz")
    return source.as_uri(), hashlib.md5(source.read_bytes()).hexdigest()


def test_download_verifies_the_checksum_and_the_loader_finds_the_file(tmp_path):
    url, md5 = _served_archive(tmp_path)
    dest = tmp_path / "data"
    path = download("cifar100", dest, url=url, md5=md5)
    assert path == dest / "cifar-100-python.tar.gz" and path.is_file()
    assert load_dataset("cifar100", data_dir=dest).num_classes == 2


def test_download_checksum_mismatch_is_an_error_and_leaves_no_file(tmp_path):
    url, _ = _served_archive(tmp_path)
    dest = tmp_path / "data"
    with pytest.raises(DatasetError, match="checksum mismatch"):
        download("cifar100", dest, url=url, md5="0" * 32)
    assert list(dest.iterdir()) == []


def test_default_source_is_the_official_url_and_checksum():
    source = SOURCES["cifar100"]
    assert source.url == "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    assert source.md5 == "eb9058c3a382ffc7106e4002c42a8d85"


def test_download_of_a_missing_url_is_an_error_and_leaves_no_file(tmp_path):
    dest = tmp_path / "data"
    with pytest.raises(DatasetError, match="failed"):
        download("cifar100", dest, url=(tmp_path / "absent.tar.gz").as_uri(), md5="0" * 32)
    assert list(dest.iterdir()) == []


def test_download_of_an_unknown_dataset_names_the_downloadable_ones(tmp_path):
    with pytest.raises(DatasetError,
                       match="downloadable: cifar100, core50, core50-frames, tinyimagenet"):
        download("fmnist", tmp_path)
