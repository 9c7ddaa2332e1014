"""The decode-once cache: reuse, invalidation, and no half-written cache after a failure."""

from __future__ import annotations

import numpy as np
import pytest

from mind_core.data import DatasetError, locations
from mind_core.data.cache import cached, fingerprint


def build_counting(calls: list, values: np.ndarray):
    def build(writer):
        calls.append(1)
        writer.put("x", values)
        big = writer.create("big", (3, 4), np.uint8)
        big[:] = 7
        return {"note": "hello"}

    return build


def test_built_once_then_read_as_memmaps(tmp_path):
    calls = []
    build = build_counting(calls, np.arange(5))
    arrays, extra = cached(tmp_path / "c", "fp1", build)
    again, extra_again = cached(tmp_path / "c", "fp1", build)
    assert calls == [1]
    assert isinstance(again["x"], np.memmap) and again["x"].tolist() == [0, 1, 2, 3, 4]
    assert int(again["big"].sum()) == 7 * 12
    assert extra == extra_again == {"note": "hello"}
    assert not again["x"].flags.writeable


def test_a_new_fingerprint_rebuilds(tmp_path):
    calls = []
    cached(tmp_path / "c", "fp1", build_counting(calls, np.arange(5)))
    arrays, _ = cached(tmp_path / "c", "fp2", build_counting(calls, np.arange(3)))
    assert calls == [1, 1] and arrays["x"].tolist() == [0, 1, 2]


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    def failing(writer):
        writer.put("x", np.arange(3))
        raise DatasetError("image 7 is broken")

    with pytest.raises(DatasetError, match="image 7"):
        cached(tmp_path / "caches" / "c", "fp", failing)
    assert list((tmp_path / "caches").iterdir()) == []


def test_fingerprint_changes_when_a_file_changes(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"1")
    before = fingerprint([path])
    path.write_bytes(b"12")
    assert fingerprint([path]) != before
    assert fingerprint([path], salt="a") != fingerprint([path], salt="b")


def test_cache_goes_to_the_home_cache_when_the_data_root_is_not_writable(tmp_path,
                                                                       isolated_locations):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("a file where the data root's cache folder would go")
    folder = locations.cache_dir(not_a_folder, "x")
    assert folder == isolated_locations / ".cache" / "mind" / "data" / "cache" / "x"
    assert locations.cache_dir(tmp_path, "x") == tmp_path / "cache" / "x"
