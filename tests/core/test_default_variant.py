"""The default variant outside the paper presets (teacher_slice), and the paper's MIND wherever
a paper preset or the user names it."""

import pytest

from mind_core.config import (
    DEFAULT_VARIANT,
    PAPER_VARIANTS,
    config_to_dict,
    list_presets,
    resolve_config,
)
from mind_core.methods import METHODS, method_settings
from mind_core.plan import Plan

PAPER_PRESETS = [p.name for p in list_presets() if p.beyond_paper == {}]
# The presets a user starts from (the demo is `mind run`'s and the Python API's default).
OWN_PRESETS = ["demo", "fmnist", "fmnist-quick"]


def test_the_default_is_this_projects_variant_and_the_paper_presets_name_the_papers():
    assert DEFAULT_VARIANT not in PAPER_VARIANTS
    assert len(PAPER_PRESETS) >= 9
    for name in PAPER_PRESETS:
        cfg = resolve_config(name)
        assert (cfg.variant, cfg.distillation.beta, cfg.allocation.mode,
                cfg.allocation.init) == ("mind", 5.0, "random", "zero"), name


@pytest.mark.parametrize("preset", OWN_PRESETS)
def test_presets_beyond_the_paper_train_a_ce_student_on_the_teachers_slice(preset):
    cfg = resolve_config(preset)
    assert (cfg.variant, cfg.distillation.beta, cfg.allocation.mode, cfg.allocation.init,
            cfg.bn) == (DEFAULT_VARIANT, 0.0, "magnitude", "teacher", "per_task")
    plan = Plan.from_config(cfg)
    assert plan.self_teacher and not plan.reinit_free


def test_a_settings_file_that_names_no_variant_gets_the_default():
    cfg = resolve_config(base={"dataset": "synthetic", "tasks": 2})
    assert cfg.variant == DEFAULT_VARIANT and cfg.distillation.beta == 0.0


@pytest.mark.parametrize("preset", OWN_PRESETS)
def test_naming_mind_on_such_a_preset_gives_the_papers_mind_with_its_distillation(preset):
    # The variant's beta 0 must not stay behind: MIND without distillation is an ablation.
    cfg = resolve_config(preset, ["variant=mind"])
    assert (cfg.distillation.beta, cfg.allocation.mode, cfg.allocation.init) == (
        5.0, "random", "zero")
    assert resolve_config(preset, method_settings("no_distill")).distillation.beta == 0.0


def test_teacher_slice_trains_exactly_what_self_distill_beta0_measured():
    def training(method):
        cfg = resolve_config("demo", method_settings(method))
        flat = config_to_dict(cfg)
        flat.pop("variant")
        return flat, Plan.from_config(cfg)

    assert training("teacher_slice") == training("self_distill_beta0")
    assert training("teacher_slice") != training("self_distill")


def test_every_method_of_the_mind_loop_names_its_variant():
    # Else it would train whichever variant the preset defaults to: an ablation of MIND run
    # on the demo would silently become an ablation of teacher_slice.
    loop = {name: s for name, s in METHODS.items() if "method" not in s}
    assert {"mind", "no_distill", "init_teacher", "teacher_slice"} <= set(loop)
    assert [name for name, s in loop.items() if "variant" not in s] == []
    for preset in ["demo", "synbols-quick"]:
        assert resolve_config(preset, method_settings("shared_bn")).variant == "mind"
