"""Config files: TOML in a preset's place, TOML written back out that reads back the same, and
one rule for unknown setting names (with did-you-mean) wherever they are written."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mind_core.config import ConfigError, config_to_dict, list_presets, resolve_config
from mind_core.config_files import config_to_toml, read_config_file, run_config

PRESETS = [p.name for p in list_presets()]


def write(tmp_path, text: str, name: str = "my.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_round_trips_through_toml(tmp_path, preset):
    cfg = resolve_config(preset)
    path = write(tmp_path, config_to_toml(cfg))
    assert resolve_config(base=read_config_file(path)) == cfg
    assert run_config(config_file=path) == cfg  # the name in the file beats the file's stem


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_file_passes_the_file_checks(preset):
    """The presets are config files too: what --config refuses, no preset may hold."""
    from importlib.resources import files

    read_config_file(files("mind_core.presets") / f"{preset}.toml")


@pytest.mark.parametrize("overrides", [
    ["variant=packnet", "allocation.init=zero", "distillation.beta=0.25"],
    ["variant=self_distill", "allocation.mode=random", "description=tab\there \"quoted\" \\ é"],
    ["teacher.milestones=[1,2,3]", "teacher.epochs=9", "allocation.weight_sharing=false",
     "distill.lr=1e-09", "inference.temperature=0.1", "data_dir=C:\\data\x7f\x01"],
])
def test_a_configs_own_settings_win_over_its_variants_defaults(overrides):
    """A saved packnet config with allocation.init=zero must come back with zero, not with
    packnet's default (teacher): a rerun reproduces what ran."""
    cfg = resolve_config("smoke", overrides)
    assert resolve_config(base=tomllib.loads(config_to_toml(cfg))) == cfg
    assert resolve_config(base=config_to_dict(cfg)) == cfg


def test_changing_the_variant_on_top_of_a_base_applies_its_defaults():
    base = config_to_dict(resolve_config("smoke"))
    packnet = resolve_config(base=base, overrides=["variant=packnet"])
    assert (packnet.allocation.mode, packnet.allocation.init, packnet.distillation.beta,
            packnet.bn) == ("magnitude", "teacher", 0.0, "frozen_after_first")
    # the same variant as the base's: its own settings stay
    same = resolve_config(base={**base, "distillation": {"beta": 2.0}}, overrides=["variant=mind"])
    assert same.distillation.beta == 2.0


@given(st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False))
def test_floats_are_written_so_they_read_back_exactly(value):
    cfg = resolve_config("smoke", {"teacher.lr": repr(value), "distillation.beta": repr(value)})
    back = resolve_config(base=tomllib.loads(config_to_toml(cfg)))
    assert back.teacher.lr == value and back.distillation.beta == value


def test_a_partial_file_takes_defaults_and_overrides_apply_on_top(tmp_path):
    path = write(tmp_path, 'dataset = "synthetic"\ntasks = 5\n[distill]\nbeta = 2\n'
                 'epochs = 3\n[teacher]\nepochs = 2\n', name="tiny.toml")
    assert read_config_file(path) == {"dataset": "synthetic", "tasks": 5,
                                      "distillation.beta": 2, "distill.epochs": 3,
                                      "teacher.epochs": 2}
    cfg = run_config(config_file=path, overrides=["teacher.epochs=4", "beta=1"], seed=7)
    assert cfg.name == "tiny"  # the file's stem
    assert (cfg.teacher.epochs, cfg.distill.epochs, cfg.distillation.beta, cfg.seed) == \
        (4, 3, 1.0, 7)
    assert cfg.distill.lr == 0.035 and cfg.model == "small_cnn"  # the field defaults


@pytest.mark.parametrize("text, message", [
    ("[distillation]\nbetta = 2\n",
     "distillation.betta: unknown setting (did you mean distillation.beta?)"),
    ("epochs = 3\n", "epochs: unknown setting (did you mean teacher.epochs or distill.epochs?)"),
    ("tasks = \n", "not TOML: Invalid value (at line 1, column 9)"),
    ("tasks = 5\ntasks = 6\n", "not TOML:"),
    ('tasks = "5"\n', "tasks: expected a whole number, got '5'"),
    ("tasks = {}\n", "tasks: expected one value, got a table"),
    ("[tasks]\nx = 1\n", "tasks.x: unknown setting (tasks is one value, not a table)"),
    ("teacher = 3\n", "teacher: expected a table of settings (teacher.*), got one value"),
    ("[teacher]\nmilestones = [1.5]\n", "teacher.milestones: expected a list of whole numbers"),
    ("[allocation]\nweight_sharing = 1\n", "allocation.weight_sharing: expected true or false"),
    ("[distill]\nbeta = 1\n[distillation]\nbeta = 2\n",
     "distillation.beta: given twice (as distill.beta and distillation.beta)"),
    ("tasks = -1\n", "tasks: must be > 0, got -1"),
    ('variant = "ewc"\n', "variant: must be one of mind, self_distill, packnet"),
    ("[teacher]\nepochs = 3\nmilestones = [5]\n", "teacher.milestones: milestone 5 is past"),
])
def test_a_bad_file_is_one_error_naming_the_file_and_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        run_config(config_file=path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_bad_value_the_command_line_gave_does_not_blame_the_file(tmp_path):
    path = write(tmp_path, "tasks = 5\n")
    with pytest.raises(ConfigError) as err:
        run_config(config_file=path, overrides=["tasks=-1"])
    assert str(err.value) == "tasks: must be > 0, got -1"


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing.toml", "no such file"),
    (lambda tmp: tmp, "is a directory, not a TOML file"),
    (lambda tmp: (tmp / "latin1.toml", (tmp / "latin1.toml").write_bytes(b"name = '\xe9'"))[0],
     "not TOML: not UTF-8 text"),
])
def test_an_unreadable_file_is_one_error_with_its_path(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ConfigError) as err:
        read_config_file(path)
    assert str(err.value) == f"{path}: {message}" or str(err.value).startswith(
        f"{path}: {message}")


@pytest.mark.parametrize("override, hint", [
    ("distill.betta=1", "did you mean distill.beta?"),
    ("distillation.betta=1", "did you mean distillation.beta?"),
    ("lr=0.1", "did you mean teacher.lr or distill.lr?"),
    ("temprature=2", "did you mean temperature?"),
    ("seeds=1", "did you mean seed?"),
])
def test_unknown_settings_on_the_command_line_get_a_did_you_mean(override, hint):
    with pytest.raises(ConfigError) as err:
        resolve_config("demo", [override])
    assert err.value.key == override.split("=")[0] and f"unknown setting ({hint})" in str(err.value)


def test_nothing_close_gets_no_guess():
    with pytest.raises(ConfigError) as err:
        resolve_config("demo", ["zzzz=1"])
    assert str(err.value) == "zzzz: unknown setting"


def test_an_unknown_key_in_a_preset_names_the_preset(monkeypatch):
    from mind_core import config

    monkeypatch.setattr(config, "load_preset", lambda name: {"tasks": 5, "taks": 5})
    with pytest.raises(ConfigError) as err:
        resolve_config("demo")
    assert str(err.value) == "preset demo: taks: unknown setting (did you mean tasks?)"


@pytest.mark.parametrize("kwargs, message", [
    ({"preset": "demo", "config_file": "x.toml"}, "--preset and --config cannot be used"),
    ({"config_file": "x.toml", "from_run": "runs/x"}, "--config and --from cannot be used"),
])
def test_two_sources_of_the_whole_config_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        run_config(**kwargs)


def test_strings_are_escaped_as_toml_wants():
    cfg = resolve_config("smoke", {"description": 'a "b" \\ c\nd\te\x00\x7f é'})
    text = config_to_toml(cfg)
    assert '"a \\"b\\" \\\\ c\\nd\\te\\u0000\\u007F é"' in text
    assert tomllib.loads(text)["description"] == cfg.description
    with pytest.raises(ConfigError, match="description: cannot be written as TOML"):
        config_to_toml(resolve_config("smoke", {"description": "bad \udcff byte"}))
