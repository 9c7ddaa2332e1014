"""Every data test runs with the search locations pointed into its own tmp_path: no real
~/.cache/mind/data, $MIND_DATA_DIR or Debian Fashion-MNIST files can leak into a result."""

from __future__ import annotations

import pytest

from mind_core.data import locations


@pytest.fixture(autouse=True)
def isolated_locations(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(locations.ENV_VAR, raising=False)
    monkeypatch.setattr(locations, "SYSTEM_FMNIST_DIRS", ())
    return home
