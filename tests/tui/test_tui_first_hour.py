"""A newcomer's first minutes with `mind-tui` (issue 15): q quits and the footer says so, the
compare screen fits 100 columns whatever the run names, and a run launched here is named as
`mind run` names its runs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from textual.widgets import Input, Select
from textual.widgets._footer import FooterKey

from mind_core.config import resolve_config
from mind_core.runner import default_run_dir
from tests.tui.tui_helpers import drive, rendered, wait_for
from tui.app import MindApp
from tui.screens.compare import CompareScreen, load_report, results_table
from tui.screens.launch import LaunchScreen
from tui.screens.monitor import MonitorScreen

# Names as `mind run` gives them, and longer: what made the last column fall off the screen.
LONG = ("demo-fmnist-mini-20261127-101500", "cifar100-resnet32-torch-20261127-103000")


def footer_keys(app: MindApp) -> dict[str, str]:
    return {key.key: key.description for key in app.screen.query(FooterKey)}


@pytest.mark.parametrize("start_on", ["launch", "runs"])
def test_q_quits_and_the_footer_shows_it(runs_dir: Path, catalog, start_on):
    app = MindApp(runs_dir=runs_dir, catalog=catalog)

    async def scenario(pilot):
        if start_on == "runs":
            await pilot.press("f2")
        await wait_for(pilot, lambda: footer_keys(app).get("q") == "Quit")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)

    drive(app, scenario)
    assert app.return_code == 0


def test_q_typed_into_a_field_is_text_not_quit(runs_dir: Path, catalog):
    app = MindApp(runs_dir=runs_dir, catalog=catalog)

    async def scenario(pilot):
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen)
                       and bool(app.screen.preset_values))
        field = app.screen.query_one("#f-name", Input)
        field.focus()
        await pilot.press("q")
        await pilot.pause()
        assert field.value == "q" and app.is_running

    drive(app, scenario)


def test_the_compare_screen_fits_100_columns_with_long_run_names(runs_dir: Path, catalog):
    first, second = (runs_dir / name for name in LONG)
    shutil.copytree(runs_dir / "finished-3tasks", first)
    shutil.copytree(runs_dir / "interrupted-4tasks", second)
    app = MindApp(runs_dir=runs_dir, catalog=catalog)

    async def scenario(pilot):
        app.push_screen(CompareScreen(first, second))
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen)
                       and app.screen.query("#compare-table"))
        await pilot.pause(0.2)
        for widget_id in ("#compare-table", "#compare-settings"):
            widget = app.screen.query_one(widget_id)
            assert widget.region.right <= app.size.width, widget_id
        width = app.screen.query_one("#compare-table").content_region.width
        text = rendered(results_table(load_report(first), load_report(second)), width)
        assert max(len(line.rstrip()) for line in text.splitlines()) <= width
        assert "2nd − 1st" in text
        tag = next(line for line in text.splitlines() if line.startswith("TAg %"))
        # The difference of the numbers on screen (82.5 and 87.2), not of the unrounded ones.
        assert tag.split()[-1] == "+4.7"

    drive(app, scenario, size=(100, 30))


def without_time(name: str) -> str:
    return re.sub(r"-\d{8}-\d{6}$", "", name)


def test_a_run_launched_here_is_named_as_mind_run_names_it(tmp_path: Path):
    backend = "tests.fakes:FakeBackend"
    app = MindApp(backend=backend, runs_dir=tmp_path / "runs")

    async def scenario(pilot):
        await wait_for(pilot, lambda: bool(app.screen.query("#f-preset")))
        app.screen.query_one("#f-preset", Select).value = "smoke"
        await wait_for(pilot, lambda: app.screen.query_one("#f-teacher-epochs").value == "1"
                       and app.screen.validation.ok)
        await pilot.press("f5")
        await wait_for(pilot, lambda: isinstance(app.screen, MonitorScreen))
        await wait_for(pilot, lambda: app.screen.state.status == "finished", timeout=60)

    drive(app, scenario)
    (launched,) = (tmp_path / "runs").iterdir()
    cli = default_run_dir(resolve_config("smoke", backend=backend, dataset="synthetic"))
    assert re.fullmatch(r"smoke-FakeBackend-\d{8}-\d{6}", launched.name), launched.name
    assert without_time(launched.name) == without_time(cli.name)
