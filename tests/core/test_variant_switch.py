"""Switching variant (issue 24): the settings a variant implies (config.VARIANT_DEFAULTS) follow
it wherever the config came from, a preset, a saved run's config.json or the TOML that `mind
presets --show` prints, while a value someone chose stays (docs/algorithm.md "Variants")."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from mind_core import config as config_module
from mind_core.config import (
    DEFAULT_VARIANT,
    VARIANTS,
    config_from_dict,
    config_to_dict,
    resolve_config,
)
from mind_core.config_files import config_to_toml, run_config

PAIRS = list(itertools.product(VARIANTS, repeat=2))
DEMO = Path(config_module.__file__).parent / "presets" / "demo.toml"


def settings(cfg) -> dict:
    flat = config_to_dict(cfg)
    flat.pop("name")  # each source names its runs its own way
    return flat


def from_preset(tmp_path, monkeypatch, old, new):
    """The demo preset with `variant = old` written in it, switched with --set variant=new."""
    path = tmp_path / "mine.toml"
    path.write_text(f'variant = "{old}"\n' + DEMO.read_text(encoding="utf-8"), encoding="utf-8")
    presets = config_module._preset_files()
    monkeypatch.setattr(config_module, "_preset_files", lambda: {**presets, "mine": path})
    return resolve_config("mine", [f"variant={new}"])


def from_saved_run(tmp_path, monkeypatch, old, new):
    """`mind run --from RUN --set variant=new` on a run of the demo with variant old."""
    run = tmp_path / "run"
    run.mkdir()
    saved = config_to_dict(resolve_config("demo", [f"variant={old}"]))
    (run / "config.json").write_text(json.dumps({"config": saved}), encoding="utf-8")
    return run_config(from_run=run, overrides=[f"variant={new}"])


def from_shown_toml(tmp_path, monkeypatch, old, new):
    """`mind presets --show` of the demo as variant old, then `--config FILE --set variant=new`."""
    path = tmp_path / "shown.toml"
    path.write_text(config_to_toml(resolve_config("demo", [f"variant={old}"])), encoding="utf-8")
    return run_config(config_file=path, overrides=[f"variant={new}"])


@pytest.mark.parametrize("source", [from_preset, from_saved_run, from_shown_toml])
@pytest.mark.parametrize("old, new", PAIRS)
def test_a_variant_switch_gives_what_the_new_variant_gives_on_the_demo(tmp_path, monkeypatch,
                                                                       source, old, new):
    switched = source(tmp_path, monkeypatch, old, new)
    assert settings(switched) == settings(resolve_config("demo", [f"variant={new}"]))


def test_the_issues_cases_teacher_slice_to_mind_and_self_distill(tmp_path, monkeypatch):
    for new, expected in [("mind", (5.0, "random", "zero")),
                          ("self_distill", (5.0, "magnitude", "teacher"))]:
        for source in (from_saved_run, from_shown_toml):
            where = tmp_path / f"{new}-{source.__name__}"
            where.mkdir()
            cfg = source(where, monkeypatch, "teacher_slice", new)
            assert (cfg.variant, cfg.distillation.beta, cfg.allocation.mode,
                    cfg.allocation.init) == (new, *expected)


@pytest.mark.parametrize("old, new", [(o, n) for o, n in PAIRS if o != n])
def test_a_chosen_value_stays_across_a_switch(tmp_path, old, new):
    # A value that is no variant's implied one was chosen by someone: it stays.
    chosen = {"distillation.beta": 2.5, "allocation.init": "scaled_normal"}
    run = tmp_path / "run"
    run.mkdir()
    saved = config_to_dict(resolve_config("demo", {"variant": old, **chosen}))
    (run / "config.json").write_text(json.dumps({"config": saved}), encoding="utf-8")
    cfg = run_config(from_run=run, overrides=[f"variant={new}"])
    assert (cfg.distillation.beta, cfg.allocation.init) == (2.5, "scaled_normal")
    assert cfg.allocation.mode == resolve_config("demo", [f"variant={new}"]).allocation.mode


def test_a_value_another_variant_implies_is_a_choice_too():
    # bn=per_task on packnet is not what packnet implies: it stays when switching to mind,
    # and bn=shared on mind stays when switching to packnet.
    packnet = config_to_dict(resolve_config("demo", ["variant=packnet", "bn=per_task"]))
    assert resolve_config(base=packnet, overrides=["variant=mind"]).bn == "per_task"
    mind = config_to_dict(resolve_config("demo", ["variant=mind", "bn=shared"]))
    assert resolve_config(base=mind, overrides=["variant=packnet"]).bn == "shared"


def test_set_on_the_same_command_line_wins_over_the_new_variant(tmp_path, monkeypatch):
    saved = config_to_dict(resolve_config("demo", ["variant=teacher_slice"]))
    cfg = resolve_config(base=saved, overrides=["variant=mind", "distillation.beta=0"])
    assert (cfg.distillation.beta, cfg.allocation.mode) == (0.0, "random")


def test_a_saved_config_without_a_variant_is_the_papers_mind():
    # Written before variants existed, when every run trained the paper's MIND: it must not
    # become the current default (teacher_slice) on resume, eval or --from.
    saved = config_to_dict(resolve_config("demo", ["variant=mind"]))
    saved.pop("variant")
    cfg = config_from_dict(saved)
    assert cfg.variant == "mind" and cfg == resolve_config("demo", ["variant=mind"])
    assert DEFAULT_VARIANT != "mind"
