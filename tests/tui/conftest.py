"""Fixtures for the TUI tests: recorded run directories and a fixed catalog."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.tui.tui_helpers import DATA, RECORDED, FixedCatalog

OLD = 1_700_000_500  # mtime given to recorded files: long quiet, so "no pid" means dead
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def children_import_the_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs the app launches are `mind` child processes whose backends live in tests/
    (tests.fakes:FakeBackend): they find them through PYTHONPATH, as any user's module:Class
    backend would, whatever the working directory."""
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [existing])]))


@pytest.fixture
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the recorded runs in ./runs of a fresh working directory (relative paths
    keep absolute paths out of the rendering); dates render in UTC."""
    runs = tmp_path / "runs"
    for name in RECORDED:
        shutil.copytree(DATA / name, runs / name)
        for f in (runs / name).iterdir():
            os.utime(f, (OLD, OLD))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield Path("runs")
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def catalog() -> FixedCatalog:
    return FixedCatalog()


