"""Configs: presets, overrides, variants, and one readable error per bad value."""

import json

import pytest

from mind_core.config import (
    DEFAULT_VARIANT,
    FIELD_TYPES,
    VARIANTS,
    ConfigError,
    beyond_paper,
    check_tasks_split,
    config_from_dict,
    config_to_dict,
    list_presets,
    resolve_config,
)

PAPER = {"cifar100": (50, 0.005, (35,), 50, 0.035, (40,), 6.5),
         "tinyimagenet": (100, 0.005, (70, 90), 120, 0.035, (80, 110), 12.0),
         "core50": (20, 0.005, (15,), 20, 0.035, (15,), 3.0),
         "synbols": (25, 0.005, (10, 20), 25, 0.035, (15,), 4.0)}


def test_every_preset_resolves_and_round_trips_through_json():
    names = [p.name for p in list_presets()]
    assert {"smoke", "demo", *PAPER, *(f"{p}-quick" for p in PAPER)} <= set(names)
    for name in names:
        cfg = resolve_config(name)
        assert config_from_dict(json.loads(json.dumps(config_to_dict(cfg)))) == cfg


@pytest.mark.parametrize("preset", sorted(PAPER))
def test_paper_presets_carry_the_papers_hyperparameters(preset):
    cfg = resolve_config(preset)
    te, tlr, tms, de, dlr, dms, temp = PAPER[preset]
    assert (cfg.teacher.epochs, cfg.teacher.lr, cfg.teacher.milestones) == (te, tlr, tms)
    assert (cfg.distill.epochs, cfg.distill.lr, cfg.distill.milestones) == (de, dlr, dms)
    assert cfg.inference.temperature == temp
    assert cfg.model == "resnet32" and cfg.tasks == 10 and cfg.teacher.batch_size == 256
    assert cfg.distillation.beta == 5 and cfg.teacher.weight_decay == 0
    assert cfg.variant == "mind" and cfg.allocation.init == "zero"


def test_overrides_use_dotted_field_names_and_aliases():
    cfg = resolve_config("demo", ["tasks=2", "distill.beta=0", "teacher.milestones=[1, 2]",
                                  "allocation.weight_sharing=false", "distillation.loss=js"])
    assert cfg.tasks == 2 and cfg.distillation.beta == 0.0
    assert cfg.teacher.milestones == (1, 2) and cfg.allocation.weight_sharing is False
    assert cfg.distillation.loss == "sym_kl"  # js is the paper's name for the default


def test_variant_defaults_apply_before_explicit_overrides():
    packnet = resolve_config("demo", ["variant=packnet"])
    assert (packnet.allocation.mode, packnet.distillation.beta, packnet.bn) == (
        "magnitude", 0.0, "frozen_after_first")
    assert resolve_config("demo", ["variant=self_distill"]).allocation.mode == "magnitude"
    assert resolve_config("demo", ["variant=packnet", "beta=2"]).distillation.beta == 2.0


def test_redraw_free_is_packnets_and_only_for_a_teacher_inside_the_network():
    from mind_core.plan import Plan

    assert Plan.from_config(resolve_config("demo", ["variant=packnet"])).reinit_free
    assert not Plan.from_config(resolve_config("demo", ["variant=self_distill"])).reinit_free
    assert Plan.from_config(resolve_config(
        "demo", ["variant=self_distill", "allocation.redraw_free=true"])).reinit_free
    # A fresh teacher never sees the network's free weights: the setting would do nothing.
    with pytest.raises(ConfigError, match="allocation.redraw_free: applies to a teacher"):
        resolve_config("demo", ["variant=mind", "allocation.redraw_free=true"])


@pytest.mark.parametrize("override, key", [
    ("foo=1", "foo"), ("tasks=-2", "tasks"), ("teacher.epochs=-1", "teacher.epochs"),
    ("distill.beta=-0.5", "distillation.beta"), ("backend=jax", "backend"),
    ("teacher.epochs=many", "teacher.epochs"), ("distillation.loss=huber", "distillation.loss"),
    ("teacher.milestones=[3,1]", "teacher.milestones"), ("variant=ewc", "variant"),
    ("distill.milestones=[99]", "distill.milestones"), ("inference.temperature=0", "inference.temperature"),
    ("novalue", "novalue"),
])
def test_bad_values_are_one_error_naming_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        resolve_config("demo", [override])
    assert err.value.key == key
    assert str(err.value).startswith(key) and "\n" not in str(err.value)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="demo") as err:
        resolve_config("nope")
    assert err.value.key == "preset"


def test_tasks_must_split_the_classes():
    cfg = resolve_config("demo", ["tasks=3"])
    with pytest.raises(ConfigError, match=r"10 classes .* 3 equal tasks.*\[1, 2, 5, 10\]"):
        check_tasks_split(cfg, 10)
    check_tasks_split(resolve_config("demo", ["tasks=5"]), 10)
    with pytest.raises(ConfigError, match="no domains"):
        check_tasks_split(resolve_config("demo", ["scenario=domain"]), 10)


def test_paper_presets_keep_the_papers_recipe_and_presets_say_what_departs():
    infos = {p.name: p for p in list_presets()}
    for name in [*PAPER, *(f"{p}-quick" for p in PAPER), "core50-domain"]:
        assert infos[name].beyond_paper == {} and infos[name].routing == "max_prob", name
    paper_rule = "inference.routing=max_prob"
    assert beyond_paper(resolve_config("smoke", ["variant=packnet", paper_rule])) == {}
    assert beyond_paper(resolve_config("smoke", ["inference.routing=mahalanobis",
                                                 "allocation.init=teacher"])) == \
        {"inference.routing": "mahalanobis", "allocation.init": "teacher"}
    assert beyond_paper(resolve_config("smoke", ["variant=packnet", "allocation.init=zero",
                                                 paper_rule])) == {"allocation.init": "zero"}
    assert beyond_paper(resolve_config("demo")) == {"variant": DEFAULT_VARIANT,
                                                    "inference.routing": "pairwise",
                                                    "precision": "auto"}


FLOAT_KEYS = sorted(key for key, kind in FIELD_TYPES.items() if kind is float)


def test_every_float_setting_is_covered_by_the_finite_rule():
    assert {"distillation.beta", "distillation.outlier_weight", "teacher.lr", "distill.gamma",
            "teacher.weight_decay", "inference.temperature"} <= set(FLOAT_KEYS)


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN", "1e999"])
def test_non_finite_floats_are_one_error_naming_the_key(key, text):
    with pytest.raises(ConfigError) as err:
        resolve_config("demo", [f"{key}={text}"])
    assert err.value.key == key and "finite" in str(err.value)
    assert str(err.value).startswith(key) and "\n" not in str(err.value)


@pytest.mark.parametrize("override, key", [("beta=nan", "distillation.beta"),
                                           ("temperature=nan", "inference.temperature"),
                                           ("distill.beta=inf", "distillation.beta")])
def test_non_finite_values_through_aliases_name_the_real_key(override, key):
    with pytest.raises(ConfigError) as err:
        resolve_config("demo", [override])
    assert err.value.key == key


def test_non_finite_floats_in_a_saved_config_are_refused():
    """config.json and TOML presets carry real floats, not strings (TOML has nan and inf)."""
    data = config_to_dict(resolve_config("demo"))
    data["teacher"]["lr"] = float("inf")
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert err.value.key == "teacher.lr"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("beta", ["5", "0"])
def test_distill_epochs_zero_is_refused_for_every_variant_with_or_without_distillation(
        variant, beta):
    # Issue 24: teacher_slice and packnet (beta 0) were accepted and then evaluated every
    # sub-network with BatchNorm statistics the skipped distill phase never estimated.
    with pytest.raises(ConfigError) as err:
        resolve_config("demo", [f"variant={variant}", f"beta={beta}", "distill.epochs=0"])
    assert err.value.key == "distill.epochs" and "\n" not in str(err.value)


def test_distill_epochs_zero_is_accepted_by_the_baselines_that_have_no_distill_phase():
    assert resolve_config("demo", ["method=finetune", "distill.epochs=0"]).distill.epochs == 0


@pytest.mark.parametrize("overrides, teacher, distill", [
    (["distill.epochs=4"], (4,), (3,)),  # the README's example: demo's 6 of 8 -> 3 of 4
    (["distill.epochs=16", "teacher.epochs=3"], (2,), (12,)),
    (["distill.epochs=2"], (4,), ()),  # 1.5 rounds to 2, on the last epoch: dropped
    (["distill.epochs=4", "distill.milestones=[2]"], (4,), (2,)),  # set: kept as written
    (["distill.epochs=8"], (4,), (6,)),
])
def test_milestones_not_set_follow_the_epochs(overrides, teacher, distill):
    cfg = resolve_config("demo", overrides)
    assert (cfg.teacher.milestones, cfg.distill.milestones) == (teacher, distill)


def test_milestones_follow_the_epochs_of_a_file_or_a_saved_run():
    base = {"distill": {"epochs": 10, "milestones": [5, 8]}}
    assert resolve_config(overrides={"distill.epochs": 5}, base=base).distill.milestones == (2, 4)
    saved = config_to_dict(resolve_config("demo"))
    assert resolve_config(overrides=["distill.epochs=4"], base=saved).distill.milestones == (3,)
