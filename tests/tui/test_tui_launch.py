"""The launch screen: values from the preset, validation by the core as you type, refusal."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button, Input, Select

from mind_core.config import resolve_config
from mind_core.precision import PRECISIONS
from mind_core.settings_docs import setting_doc
from tests.tui.tui_helpers import drive, plain, wait_for
from tui.app import MindApp
from tui.process import RunProcess
from tui.screens.launch import SETTINGS, LaunchScreen


async def ready(pilot, app: MindApp) -> LaunchScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen)
                   and bool(app.screen.preset_values))
    return app.screen


async def type_into(pilot, screen: LaunchScreen, field: str, text: str) -> None:
    widget = screen.query_one(f"#{field}", Input)
    widget.focus()
    widget.value = ""
    await pilot.press(*text)
    await pilot.pause()


def message(screen: LaunchScreen, key: str) -> str:
    return plain(screen.query_one(f"#m-{key.replace('.', '-')}"))


def assert_refused(app: MindApp, runs: Path) -> None:
    assert app.processes == {}
    assert not runs.exists() or not any(runs.iterdir())


def test_tasks_that_do_not_split_the_classes_are_refused(tmp_path: Path):
    runs = tmp_path / "runs"
    app = MindApp(backend="tests.fakes:FakeBackend", runs_dir=runs)

    async def scenario(pilot):
        screen = await ready(pilot, app)
        screen.query_one("#f-preset", Select).value = "smoke"
        await wait_for(pilot, lambda: screen.query_one("#f-teacher-epochs", Input).value == "1")
        await type_into(pilot, screen, "f-tasks", "3")
        await wait_for(pilot, lambda: not screen.validation.ok)
        assert "do not split into 3 equal tasks" in message(screen, "tasks")
        assert screen.query_one("#launch-button", Button).disabled
        await pilot.press("f5")
        await pilot.pause()
        assert_refused(app, runs)
        await type_into(pilot, screen, "f-tasks", "2")
        await wait_for(pilot, lambda: screen.validation.ok)
        assert "--set tasks=2" in plain(screen.query_one("#launch-command"))
        assert message(screen, "tasks") == "changed (preset: 5)"

    drive(app, scenario)


def test_a_negative_beta_is_refused_with_the_core_message(tmp_path: Path):
    runs = tmp_path / "runs"
    app = MindApp(backend="tests.fakes:FakeBackend", runs_dir=runs)

    async def scenario(pilot):
        screen = await ready(pilot, app)
        await type_into(pilot, screen, "f-distillation-beta", "-1")
        await wait_for(pilot, lambda: not screen.validation.ok)
        assert screen.validation.key == "distillation.beta"
        assert "must be >= 0" in message(screen, "distillation.beta")
        assert "distillation.beta: must be >= 0" in plain(screen.query_one("#launch-problem"))
        screen.action_launch()
        assert_refused(app, runs)

    drive(app, scenario)


def test_a_missing_dataset_is_refused_with_how_to_get_it(tmp_path: Path, catalog):
    runs = tmp_path / "runs"
    app = MindApp(runs_dir=runs, catalog=catalog)

    async def scenario(pilot):
        screen = await ready(pilot, app)
        screen.query_one("#f-dataset", Select).value = "cifar100"
        await wait_for(pilot, lambda: screen.validation.key == "dataset")
        assert "not available: download it with `mind datasets`" in message(screen, "dataset")
        screen.action_launch()
        assert_refused(app, runs)

    drive(app, scenario)


def test_choosing_a_preset_fills_the_fields(tmp_path: Path, catalog):
    app = MindApp(runs_dir=tmp_path / "runs", catalog=catalog)

    async def scenario(pilot):
        screen = await ready(pilot, app)
        assert screen.query_one("#f-teacher-epochs", Input).value == "6"  # demo
        screen.query_one("#f-preset", Select).value = "smoke"
        await wait_for(pilot, lambda: screen.query_one("#f-teacher-epochs", Input).value == "1")
        assert screen.query_one("#f-dataset", Select).value == "synthetic"
        assert screen.query_one("#f-backend", Select).value == "torch"
        assert message(screen, "preset") == "A few seconds on the synthetic set"
        assert screen.validation.ok

    drive(app, scenario)


def test_a_run_name_that_exists_is_refused(tmp_path: Path, catalog):
    runs = tmp_path / "runs"
    (runs / "taken").mkdir(parents=True)
    app = MindApp(runs_dir=runs, catalog=catalog)

    async def scenario(pilot):
        screen = await ready(pilot, app)
        await type_into(pilot, screen, "f-name", "taken")
        await wait_for(pilot, lambda: screen.validation.key == "name")
        assert "exists" in message(screen, "name")
        screen.action_launch()
        assert app.processes == {}

    drive(app, scenario)


def test_milestones_follow_the_epochs_until_typed_and_a_late_one_is_refused(tmp_path: Path):
    app = MindApp(backend="tests.fakes:FakeBackend", runs_dir=tmp_path / "runs")

    async def scenario(pilot):
        screen = await ready(pilot, app)
        field = screen.query_one("#f-teacher-milestones", Input)
        assert field.value == "4"  # the demo preset's, of 6 epochs
        await type_into(pilot, screen, "f-teacher-epochs", "12")  # scaled as the core scales
        await wait_for(pilot, lambda: field.value == "8" and screen.validation.ok)
        await type_into(pilot, screen, "f-teacher-epochs", "1")  # 1 of 1: dropped
        await wait_for(pilot, lambda: field.value == "" and screen.validation.ok)
        assert "--set teacher.milestones=" in plain(screen.query_one("#launch-command"))
        await type_into(pilot, screen, "f-teacher-milestones", "4")  # the user's own: kept
        await wait_for(pilot, lambda: screen.validation.key == "teacher.milestones")
        assert "past the last epoch" in message(screen, "teacher.milestones")
        await type_into(pilot, screen, "f-teacher-epochs", "6")
        await wait_for(pilot, lambda: screen.validation.ok and field.value == "4")

    drive(app, scenario)


def test_own_data_replaces_the_dataset_and_a_bad_path_is_refused(tmp_path: Path, catalog):
    runs = tmp_path / "runs"
    app = MindApp(runs_dir=runs, catalog=catalog)

    async def scenario(pilot):
        screen = await ready(pilot, app)
        await type_into(pilot, screen, "f-own_data", "npz:nope.npz")
        await wait_for(pilot, lambda: screen.validation.key == "own_data")
        assert "nope.npz does not exist" in message(screen, "own_data")
        screen.action_launch()
        assert_refused(app, runs)
        await type_into(pilot, screen, "f-own_data", "npz:mine.npz")
        await wait_for(pilot, lambda: screen.validation.ok)
        assert "10 classes · 8×8×3 (used instead of Dataset)" in message(screen, "own_data")
        assert "--dataset npz:mine.npz" in plain(screen.query_one("#launch-command"))

    drive(app, scenario)


def test_a_data_dir_lists_availability_there_and_goes_on_the_command_line(tmp_path: Path,
                                                                          catalog):
    app = MindApp(runs_dir=tmp_path / "runs", catalog=catalog)

    async def scenario(pilot):
        screen = await ready(pilot, app)
        screen.query_one("#f-dataset", Select).value = "cifar100"
        await wait_for(pilot, lambda: screen.validation.key == "dataset")  # not found
        await type_into(pilot, screen, "f-data_dir", "/data")
        await wait_for(pilot, lambda: screen.validation.ok)  # found under /data
        assert screen.query_one("#f-dataset", Select).value == "cifar100"
        assert "--dataset cifar100 --data-dir /data" in plain(
            screen.query_one("#launch-command"))

    drive(app, scenario)


def test_the_core_catalog_checks_own_data_and_its_class_split(tmp_path: Path):
    import numpy as np
    import pytest

    from tui.catalog import ConfigProblem, CoreCatalog

    path = tmp_path / "mine.npz"
    images = np.zeros((20, 6, 6, 3), dtype=np.uint8)
    np.savez(path, x_train=images, y_train=np.arange(20) % 10, x_test=images[:10],
             y_test=np.arange(10))
    catalog = CoreCatalog()
    choice = catalog.user_dataset(f"npz:{path}")
    assert (choice.classes, choice.shape, choice.available) == (10, (6, 6, 3), True)
    assert catalog.resolve("demo", ["tasks=5"], dataset=f"npz:{path}")["tasks"] == 5
    with pytest.raises(ConfigProblem) as refused:
        catalog.resolve("demo", ["tasks=3"], dataset=f"npz:{path}")
    assert refused.value.key == "tasks"
    with pytest.raises(ConfigProblem) as missing:
        catalog.user_dataset(f"npz:{tmp_path / 'other.npz'}")
    assert missing.value.key == "own_data" and "does not exist" in missing.value.message


def test_another_variant_shows_its_own_defaults_where_nothing_was_changed(tmp_path: Path):
    app = MindApp(backend="tests.fakes:FakeBackend", runs_dir=tmp_path / "runs")

    async def scenario(pilot):
        screen = await ready(pilot, app)  # the demo: teacher_slice, a student without beta
        beta = screen.query_one("#f-distillation-beta", Input)
        assert beta.value == "0"
        # The paper's MIND distils (beta 5): the form shows what the run will get.
        screen.query_one("#f-variant", Select).value = "mind"
        await wait_for(pilot, lambda: beta.value == "5")
        assert "--set variant=mind" in plain(screen.query_one("#launch-command"))
        screen.query_one("#f-variant", Select).value = "teacher_slice"
        await wait_for(pilot, lambda: beta.value == "0")
        assert "distillation.beta" not in plain(screen.query_one("#launch-command"))
        # A value the user typed stays as typed when the variant changes.
        await type_into(pilot, screen, "f-distillation-beta", "2")
        screen.query_one("#f-variant", Select).value = "mind"
        await wait_for(pilot, lambda: "--set variant=mind" in plain(
            screen.query_one("#launch-command")))
        assert beta.value == "2"

    drive(app, scenario)


def test_each_setting_field_shows_its_description_on_hover(tmp_path: Path):
    """The tooltip is the setting's line of docs/settings.md; a field of no setting has none."""
    app = MindApp(backend="tests.fakes:FakeBackend", runs_dir=tmp_path / "runs")

    async def scenario(pilot):
        screen = await ready(pilot, app)
        assert screen.query_one("#f-tasks", Input).tooltip == setting_doc("tasks")
        assert screen.query_one("#f-distillation-beta", Input).tooltip == setting_doc("beta")
        assert screen.query_one("#f-variant", Select).tooltip == setting_doc("variant")
        assert screen.query_one("#f-preset", Select).tooltip is None

    drive(app, scenario)


def test_choosing_bf16_puts_precision_in_the_launched_command(tmp_path: Path, monkeypatch):
    """The precision field offers the core's choices; bf16 chosen there is a --set of the
    command the launch starts, and the config that command resolves to trains in bf16."""
    launched: list[list[str]] = []

    def record(run_dir: Path, args: list[str]):
        launched.append(args)
        raise OSError("not started in this test")  # the screen reports it and stays

    monkeypatch.setattr(RunProcess, "start", staticmethod(record))
    app = MindApp(backend="tests.fakes:FakeBackend", runs_dir=tmp_path / "runs")

    async def scenario(pilot):
        screen = await ready(pilot, app)
        field = screen.query_one("#f-precision", Select)
        assert field.value == "auto"  # the demo's, the default
        assert next(s for s in SETTINGS if s.key == "precision").choices is PRECISIONS
        screen.query_one("#f-preset", Select).value = "smoke"
        await wait_for(pilot, lambda: screen.query_one("#f-teacher-epochs", Input).value == "1")
        assert field.value == "fp32"  # the smoke preset's own
        field.value = "bf16"
        await wait_for(pilot, lambda: "--set precision=bf16" in plain(
            screen.query_one("#launch-command")) and screen.validation.ok)
        assert message(screen, "precision") == "changed (preset: fp32)"
        await pilot.press("f5")
        await wait_for(pilot, lambda: bool(launched))

    drive(app, scenario)
    (args,) = launched
    overrides = [args[i + 1] for i, arg in enumerate(args) if arg == "--set"]
    assert "precision=bf16" in overrides
    assert resolve_config(args[args.index("--preset") + 1], overrides).precision == "bf16"
