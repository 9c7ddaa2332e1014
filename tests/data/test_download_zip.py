"""Zip downloads (TinyImageNet, CORe50): checksum, unpacking in one step, refusal of odd
archives, progress, and the `mind datasets download` command around it."""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile

import pytest

from mind_core.cli import main
from mind_core.console import DownloadProgress
from mind_core.data import DatasetError, download, load_dataset
from mind_core.data.download import SOURCES
from tests.data.builders import tinyimagenet_folder


def _served_zip(tmp_path, extra: dict[str, bytes] | None = None):
    """A tiny tiny-imagenet-200.zip behind a file:// URL, and its md5."""
    tinyimagenet_folder(tmp_path / "src")
    path = tmp_path / "server" / "tiny-imagenet-200.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted((tmp_path / "src").rglob("*")):
            zf.write(file, file.relative_to(tmp_path / "src").as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path.as_uri(), hashlib.md5(path.read_bytes()).hexdigest()


def test_zip_is_verified_unpacked_and_found_by_the_loader(tmp_path):
    url, md5 = _served_zip(tmp_path, extra={"__MACOSX/._junk": b"x"})
    dest = tmp_path / "data"
    seen = []
    folder = download("tinyimagenet", dest, url=url, md5=md5,
                      progress=lambda done, total: seen.append((done, total)))
    assert folder == dest / "tiny-imagenet-200" and (folder / "wnids.txt").is_file()
    assert not (dest / "__MACOSX").exists()  # only the dataset's folder is unpacked
    assert sorted(p.name for p in dest.iterdir()) == ["tiny-imagenet-200",
                                                      "tiny-imagenet-200.zip"]
    size = (tmp_path / "server" / "tiny-imagenet-200.zip").stat().st_size
    assert seen[-1] == (size, size)
    assert load_dataset("tinyimagenet", data_dir=dest).num_classes == 2
    # Once unpacked, asking again downloads nothing (the server copy may be gone).
    shutil.rmtree(tmp_path / "server")
    assert download("tinyimagenet", dest, url=url, md5=md5) == folder


def test_a_member_escaping_the_folder_is_refused_and_nothing_is_left(tmp_path):
    url, md5 = _served_zip(tmp_path, extra={"tiny-imagenet-200/../evil.txt": b"x"})
    dest = tmp_path / "data"
    with pytest.raises(DatasetError, match="points outside"):
        download("tinyimagenet", dest, url=url, md5=md5)
    assert sorted(p.name for p in dest.iterdir()) == ["tiny-imagenet-200.zip"]


def test_an_archive_without_the_expected_folder_is_a_dataset_error(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("something-else/file.txt", b"x")
    path = tmp_path / "other.zip"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(DatasetError, match="no tiny-imagenet-200/ folder"):
        download("tinyimagenet", tmp_path / "data", url=path.as_uri(),
                 md5=hashlib.md5(buffer.getvalue()).hexdigest())


def test_official_zip_sources():
    assert SOURCES["tinyimagenet"].md5 == "90528d7ca1a48142e341f4ef8d21d0de"
    assert SOURCES["core50"].md5 == "745f3373fed08d69343f1058ee559e13"
    assert SOURCES["core50-frames"] == SOURCES["core50"]  # the same files, another split


def test_cli_download_reports_progress_and_where_the_data_is(tmp_path, monkeypatch, capsys):
    url, md5 = _served_zip(tmp_path)
    monkeypatch.setitem(SOURCES, "tinyimagenet",
                        SOURCES["tinyimagenet"].__class__(url=url, md5=md5,
                                                          filename="tiny-imagenet-200.zip",
                                                          unpacks_to="tiny-imagenet-200"))
    assert main(["datasets", "download", "tinyimagenet", "--data-dir",
                 str(tmp_path / "data")]) == 0
    out, err = capsys.readouterr()
    assert f"is ready (md5 verified): {tmp_path / 'data' / 'tiny-imagenet-200'}" in out
    assert "tinyimagenet:" in err and "(100%)" in err


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_is_one_throttled_line_closed_at_the_end():
    stream, now = _Tty(), [0.0]
    progress = DownloadProgress("x", stream, clock=lambda: now[0])
    for step in range(1, 11):
        now[0] = step * 0.1  # 10 calls within a second: about two updates, then the last
        progress(step * 2**20, 10 * 2**20)
    progress.close()
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.endswith("(100%)\n")


def test_progress_to_a_file_is_a_line_per_tenth():
    stream = io.StringIO()
    progress = DownloadProgress("x", stream)
    for step in range(1, 101):
        progress(step, 100)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11 and lines[0].endswith("(1%)") and lines[-1].endswith("(100%)")
