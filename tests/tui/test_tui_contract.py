"""The TUI reads the run directory's contract from the core instead of restating it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mind_core.config import VARIANTS
from mind_core.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from mind_core.events import EVENT_FIELDS
from mind_core.protocol import ARCHS
from mind_core.registry import BACKENDS
from tests.tui.tui_helpers import drive
from tui.app import MindApp
from tui.fields import FIELDS, REQUIRED
from tui.process import _child_env, exit_meaning
from tui.screens.launch import SETTINGS, LaunchScreen, field_id


def test_what_the_tui_needs_of_an_event_is_in_the_core_schema():
    for kind, needed in REQUIRED.items():
        assert set(needed) <= set(EVENT_FIELDS[kind]), kind
    written = {name for fields in EVENT_FIELDS.values() for name in fields} | {"time"}
    assert set(FIELDS) <= written  # every field whose kind the TUI checks is one a run writes


def test_the_launch_screens_choices_are_the_cores(tmp_path: Path, catalog):
    choices = {s.key: s.choices for s in SETTINGS if s.choices}
    assert choices["model"] == ARCHS and choices["variant"] == VARIANTS
    app = MindApp(backend="my.module:Backend", runs_dir=tmp_path / "runs", catalog=catalog)

    async def scenario(pilot):
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LaunchScreen)
        backend = screen.query_one(f"#{field_id('backend')}")
        offered = [value for _, value in backend._options]  # Select lists them nowhere public
        assert offered == [*BACKENDS, "my.module:Backend"]

    drive(app, scenario)


def test_a_child_gets_our_environment_without_import_paths_of_its_own(monkeypatch,
                                                                       tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    assert _child_env()["PYTHONPATH"] == "/elsewhere"
    monkeypatch.delenv("PYTHONPATH")
    env = _child_env()
    assert "PYTHONPATH" not in env and env["PYTHONUNBUFFERED"] == os.environ.get(
        "PYTHONUNBUFFERED", "1")


@pytest.mark.parametrize("code, meaning", [(0, "finished"), (EXIT_INTERRUPTED, "interrupted"),
                                           (EXIT_BAD_INPUT, "bad input (config, usage or data)"),
                                           (1, "error")])
def test_exit_codes_mean_what_the_cli_says(code, meaning):
    assert exit_meaning(code) == meaning
