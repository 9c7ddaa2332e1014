"""Choose backend, dataset, preset and the settings that matter; validate as you type; launch.

Every change asks the core to resolve the config (preset + overrides); the core's error is
shown next to the field it names. Only settings that differ from the preset become --set
overrides, so the command line (shown below the form) says what was changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from mind_core.config import VARIANTS
from mind_core.precision import PRECISIONS
from mind_core.protocol import ARCHS
from mind_core.registry import BACKENDS
from mind_core.rundir import run_dir_name
from mind_core.settings_docs import setting_doc
from mind_core.views import LABEL_TRANSFORMS
from tui.catalog import ConfigProblem, DatasetChoice, format_value, lookup
from tui.process import RunProcess, display_command, new_run_dir, run_command


@dataclass(frozen=True)
class Setting:
    key: str  # dotted config key, as in --set key=value
    label: str
    choices: tuple[str, ...] = ()  # a drop-down instead of a text field
    optional: bool = False  # may be left empty (an empty list)


SETTINGS = (
    Setting("model", "Model", ARCHS),  # the built-in ones: a network of one's own needs Python
    Setting("variant", "Variant", VARIANTS),
    Setting("tasks", "Tasks"),
    Setting("teacher.epochs", "Teacher epochs"),
    Setting("teacher.lr", "Teacher LR"),
    Setting("teacher.milestones", "Teacher milestones", optional=True),
    Setting("distill.epochs", "Distill epochs"),
    Setting("distill.lr", "Distill LR"),
    Setting("distill.milestones", "Distill milestones", optional=True),
    Setting("distillation.beta", "Beta (distillation)"),
    Setting("inference.temperature", "Temperature"),
    Setting("label_aug.transform", "Label views", LABEL_TRANSFORMS),
    Setting("allocation.weight_sharing", "Weight sharing", ("true", "false")),
    Setting("seed", "Seed"),
    Setting("device", "Device"),
    Setting("precision", "Precision", PRECISIONS),  # auto: bf16 where it runs natively and pays
)
TOP_KEYS = ("preset", "backend", "dataset", "own_data", "data_dir", "name")


def field_id(key: str) -> str:
    return "f-" + key.replace(".", "-")


def message_id(key: str) -> str:
    return "m-" + key.replace(".", "-")


@dataclass(frozen=True)
class Validation:
    key: str | None = None  # the field the problem belongs to (None: none, or no field)
    message: str = ""  # empty: valid
    args: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.message


class LaunchScreen(Screen):
    BINDINGS = [Binding("f5", "launch", "Launch"),
                Binding("ctrl+g", "launch", "Launch", show=False)]

    validation: reactive[Validation] = reactive(Validation())

    def __init__(self) -> None:
        super().__init__()
        self.preset_values: dict[str, str] = {}
        # What the screen filled in (the preset, the variant's defaults, milestones following
        # their phase's epochs): a field still showing it follows the next such change.
        self.variant_values: dict[str, str] = {}
        self.datasets: dict[str, DatasetChoice] = {}
        self.presets: dict[str, str] = {}
        self.listed_for: str = ""  # the data dir self.datasets was listed for
        self.own_choice: DatasetChoice | None = None

    @property
    def catalog(self) -> Any:
        return self.app.catalog  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        app: Any = self.app
        self.presets = dict(self.catalog.presets())
        self.datasets = {d.name: d for d in self.catalog.datasets()}
        backends = [*BACKENDS] + ([app.backend] if app.backend not in BACKENDS else [])
        preset = "demo" if "demo" in self.presets else next(iter(self.presets), "")
        yield Header()
        yield Static("New run: pick a preset, then change what you need.", id="launch-intro")
        with VerticalScroll(id="launch-body"), Grid(id="launch-form"):
            yield from self._row("preset", "Preset", Select(
                [(p, p) for p in self.presets], value=preset, allow_blank=False,
                compact=True, id=field_id("preset")))
            yield from self._row("backend", "Backend", Select(
                [(b, b) for b in backends], value=app.backend, allow_blank=False,
                compact=True, id=field_id("backend")))
            yield from self._row("dataset", "Dataset", Select(
                self._dataset_options(), allow_blank=False, compact=True,
                id=field_id("dataset")))
            yield from self._row("own_data", "Own data", Input(
                placeholder="npz:PATH or folder:PATH", compact=True, id=field_id("own_data")))
            yield from self._row("data_dir", "Data dir", Input(
                placeholder="default search path", compact=True, id=field_id("data_dir")))
            for setting in SETTINGS:
                if setting.choices:
                    widget: Select[str] | Input = Select(
                        [(c, c) for c in setting.choices], allow_blank=False, compact=True,
                        id=field_id(setting.key))
                else:
                    widget = Input(compact=True, id=field_id(setting.key))
                yield from self._row(setting.key, setting.label, widget)
            yield from self._row("name", "Run name", Input(
                placeholder="automatic", compact=True, id=field_id("name")))
        yield Static("", id="launch-command")
        with Horizontal(id="launch-actions"):
            yield Button("Launch", variant="primary", compact=True, id="launch-button")
            yield Static("", id="launch-problem")
        yield Footer()

    def _dataset_options(self) -> list[tuple[str, str]]:
        return [(d.name if d.available else f"{d.name} ✗", d.name)
                for d in self.datasets.values()]

    def _refresh_datasets(self, data_dir: str) -> None:
        """Availability depends on where data is looked for: list again for a new data dir."""
        if data_dir == self.listed_for:
            return
        self.listed_for = data_dir
        self.datasets = {d.name: d for d in self.catalog.datasets(data_dir or None)}
        select = self.query_one(f"#{field_id('dataset')}", Select)
        current = select.value
        with self.prevent(Select.Changed):
            select.set_options(self._dataset_options())
            if current in self.datasets:
                select.value = current

    def _row(self, key: str, label: str, widget: Any) -> ComposeResult:
        widget.tooltip = setting_doc(key) or None  # the line of docs/settings.md, on hover
        yield Label(label, classes="field-label")
        yield widget
        yield Static("", id=message_id(key), classes="field-message")

    def on_mount(self) -> None:
        self.sub_title = "New run"
        self._load_preset(self.query_one(f"#{field_id('preset')}", Select).value)

    def _load_preset(self, preset: Any) -> None:
        """Fill every field with the preset's values (the core resolves the preset)."""
        try:
            config = self.catalog.resolve(str(preset), [])
        except ConfigProblem as problem:
            self.validation = Validation("preset", problem.message)
            return
        self.preset_values = {s.key: format_value(lookup(config, s.key)) for s in SETTINGS}
        self.variant_values = dict(self.preset_values)
        for setting in SETTINGS:
            self._show(setting, self.preset_values[setting.key])
        dataset = lookup(config, "dataset")
        if dataset in self.datasets:
            self.query_one(f"#{field_id('dataset')}", Select).value = dataset
        self._validate()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == field_id("preset"):
            self._load_preset(event.value)
        elif event.select.id == field_id("variant"):
            self._apply_variant(event.value)
        else:
            self._validate()

    def _apply_variant(self, variant: Any) -> None:
        """A variant brings its own defaults (beta, allocation) over the preset's: show the
        values the run will get, in every field the user has not changed."""
        try:
            config = self.catalog.resolve(self._value("preset"), [f"variant={variant}"])
        except ConfigProblem:
            self._validate()
            return
        for setting in SETTINGS:
            if setting.key == "variant" or \
                    self._value(setting.key) != self.variant_values.get(setting.key):
                continue
            value = format_value(lookup(config, setting.key))
            self.variant_values[setting.key] = value
            self._show(setting, value)
        self._validate()

    def _show(self, setting: Setting, value: str) -> None:
        widget = self.query_one(f"#{field_id(setting.key)}")
        if isinstance(widget, Select):
            if value in setting.choices:
                widget.value = value
        elif isinstance(widget, Input):
            widget.value = value

    def on_input_changed(self, event: Input.Changed) -> None:
        for phase in ("teacher", "distill"):
            if event.input.id == field_id(f"{phase}.epochs"):
                self._follow_epochs(phase)
        self._validate()

    def _follow_epochs(self, phase: str) -> None:
        """Show the milestones the run will get when the user changes a phase's epochs (the
        core scales those not set: config.resolve_config), unless the user typed their own."""
        key = f"{phase}.milestones"
        if self._value(key) != self.variant_values.get(key):
            return
        try:
            config = self.catalog.resolve(self._value("preset"),
                                          [f"{phase}.epochs={self._value(f'{phase}.epochs')}"])
        except ConfigProblem:
            return  # the epochs field's own problem is shown by _validate
        value = format_value(lookup(config, key))
        self.variant_values[key] = value
        self._show(next(s for s in SETTINGS if s.key == key), value)

    def _value(self, key: str) -> str:
        widget = self.query_one(f"#{field_id(key)}")
        value = widget.value if isinstance(widget, (Input, Select)) else ""
        return "" if value is Select.BLANK or value is None else str(value).strip()

    def _validate(self) -> None:
        if not self.preset_values:
            return
        preset, backend, data_dir = (self._value(k) for k in ("preset", "backend", "data_dir"))
        self._refresh_datasets(data_dir)
        own = self._value("own_data")
        dataset = own or self._value("dataset")
        overrides, missing = [], None
        for setting in SETTINGS:
            text = self._value(setting.key)
            if not text and not setting.optional:
                missing = missing or setting.key
            elif text != self.preset_values.get(setting.key) or \
                    text != self.variant_values.get(setting.key):
                # Changed from the preset, or typed over what the screen filled in (the
                # preset's value typed back over a variant's or a scaled one is meant).
                overrides.append(f"{setting.key}={text}")
        name = self._value("name")
        runs_dir = self.app.runs_dir  # type: ignore[attr-defined]
        args = tuple(run_command(preset=preset, backend=backend, dataset=dataset,
                                 overrides=overrides, out=runs_dir / (name or "NAME"),
                                 data_dir=data_dir))
        choice = self.datasets.get(dataset)
        self.own_choice = None
        if own:
            try:
                self.own_choice = self.catalog.user_dataset(own)
            except ConfigProblem as problem:
                self.validation = Validation("own_data", problem.message, args)
                return
        if missing:
            self.validation = Validation(missing, "enter a value", args)
        elif choice is not None and not choice.available:
            self.validation = Validation("dataset", f"not available: {choice.how_to_get}", args)
        elif name and (runs_dir / name).exists():
            self.validation = Validation("name", "a run with this name exists", args)
        else:
            try:
                self.catalog.resolve(preset, overrides, backend=backend, dataset=dataset)
            except ConfigProblem as problem:
                self.validation = Validation(problem.key, problem.message, args)
            else:
                self.validation = Validation(None, "", args)

    def watch_validation(self, validation: Validation) -> None:
        keys = set(TOP_KEYS) | {s.key for s in SETTINGS}
        for key in keys:
            self._show_message(key, validation)
        problem = self.query_one("#launch-problem", Static)
        problem.set_class(validation.ok, "-ok")
        problem.set_class(not validation.ok, "-error")
        where = f"{validation.key}: " if validation.key else ""
        problem.update(Text("✓ valid" if validation.ok else f"✗ {where}{validation.message}"))
        self.query_one("#launch-command", Static).update(
            Text(display_command(list(validation.args)) if validation.args else ""))
        self.query_one("#launch-button", Button).disabled = not validation.ok

    def _show_message(self, key: str, validation: Validation) -> None:
        widget = self.query_one(f"#{message_id(key)}", Static)
        if validation.key == key and validation.message:
            widget.set_class(True, "-error")
            widget.update(Text(f"✗ {validation.message}"))
            return
        widget.set_class(False, "-error")
        widget.update(Text(self._hint(key)))

    def _hint(self, key: str) -> str:
        value = self._value(key)
        if key == "preset":
            return self.presets.get(value, "")
        if key == "dataset":
            choice = self.datasets.get(value)
            return choice.describe() if choice else ""
        if key == "own_data":
            if self.own_choice is not None:
                return f"{self.own_choice.describe()} (used instead of Dataset)"
            return "your own data instead of the dataset above"
        if key == "data_dir":
            return "" if value else "empty: $MIND_DATA_DIR, else ~/.cache/mind/data"
        default = self.preset_values.get(key)
        if default is not None and value and value != default:
            return f"changed (preset: {default})"
        return ""

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch-button":
            self.action_launch()

    def action_launch(self) -> None:
        from tui.screens.monitor import MonitorScreen

        self._validate()
        validation = self.validation
        if not validation.ok:
            self.notify(f"Not launched: {validation.message}", severity="error")
            return
        app: Any = self.app
        preset, backend = self._value("preset"), self._value("backend")
        args = list(validation.args)
        try:
            run_dir = new_run_dir(app.runs_dir,
                                  self._value("name") or run_dir_name(preset, backend))
            args[-1] = str(run_dir)  # --out: the directory actually created
            app.processes[run_dir.resolve()] = RunProcess.start(run_dir, args)
        except OSError as exc:
            self.notify(f"Could not start the run: {exc}", severity="error")
            return
        self.query_one(f"#{field_id('name')}", Input).value = ""
        app.push_screen(MonitorScreen(run_dir))
