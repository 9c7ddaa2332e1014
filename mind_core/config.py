"""Run configuration: TOML presets, `key=value` overrides, validation, resolution (the records
themselves are mind_core.config_schema's; setting names and reading one value,
mind_core.config_keys').

A config is resolved in one order: preset -> variant defaults -> overrides. Every problem is a
`ConfigError` naming the dotted key, so the CLI and the TUI can show one readable line.
"""

from __future__ import annotations

import importlib.resources
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from mind_core.config_keys import (  # noqa: F401  (ALIASES, FIELD_TYPES re-exported)
    _SECTIONS,
    ALIASES,
    FIELD_TYPES,
    ConfigError,
    _check_keys,
    _parse_value,
    _unalias,
    flatten,
)
from mind_core.config_schema import (  # noqa: F401  (the schema, re-exported for its users)
    BN_MODES,
    DEFAULT_VARIANT,
    METHOD_LOOPS,
    PAPER_VARIANTS,
    SELF_TEACHER_VARIANTS,
    VARIANTS,
    AllocationConfig,
    DistillationConfig,
    EwcConfig,
    InferenceConfig,
    LabelAugConfig,
    LwfConfig,
    PhaseConfig,
    RunConfig,
    StatsConfig,
)
from mind_core.precision import FP32
from mind_core.routing import PAPER_RULE, RULES

# What each variant means, applied before the user's own overrides (docs/algorithm.md "Variants").
# A teacher trained inside the network hands over its own largest weights, at their values.
_SELF_TEACHER_START = {"allocation.mode": "magnitude", "allocation.init": "teacher"}
VARIANT_DEFAULTS: dict[str, dict[str, Any]] = {
    "mind": {},
    "self_distill": {**_SELF_TEACHER_START},
    "packnet": {**_SELF_TEACHER_START, "allocation.redraw_free": True,
                "distillation.beta": 0.0, "bn": "frozen_after_first"},
    # The self-distillation teacher's largest weights become the task's slice and are
    # fine-tuned on the labels alone, with per-task BN: PackNet's student without its redraw
    # or its frozen BN (the benchmarks' method self_distill_beta0).
    "teacher_slice": {**_SELF_TEACHER_START, "distillation.beta": 0.0},
}

_DEFAULT = RunConfig()


def build_config(flat: Mapping[str, Any]) -> RunConfig:
    """A validated RunConfig from dotted keys; unknown keys and bad values raise ConfigError."""
    flat = _unalias(flat)
    _check_keys(flat)
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    top: dict[str, Any] = {}
    for key, raw in flat.items():
        value = _parse_value(key, raw)
        if "." in key:
            section, field = key.split(".", 1)
            sections[section][field] = value
        else:
            top[key] = value
    # A section's unset fields take RunConfig's defaults (distill.lr is 0.035, not 0.005).
    defaults = {name: attrs.asdict(getattr(_DEFAULT, name)) for name in _SECTIONS}
    built = {name: _build(cls, {**defaults[name], **sections[name]}, name)
             for name, cls in _SECTIONS.items()}
    cfg = _build(RunConfig, {**top, **built}, "")
    _check_consistency(cfg)
    return cfg


def _build(cls, values: dict[str, Any], prefix: str):
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        field = _failing_field(cls, values)
        key = f"{prefix}.{field}" if prefix and field else (field or prefix)
        raise ConfigError(key, str(exc)) from None


def _failing_field(cls, values: dict[str, Any]) -> str:
    for f in attrs.fields(cls):
        if f.name in values and f.validator is not None and not attrs.has(f.type):
            value = f.converter(values[f.name]) if f.converter else values[f.name]
            try:
                f.validator(None, f, value)
            except (ValueError, TypeError):
                return f.name
    return ""


def _check_consistency(cfg: RunConfig) -> None:
    if cfg.precision == "fp16" and cfg.device == "cpu":  # else the backend refuses it
        raise ConfigError("precision", "fp16 runs on a GPU only; on a CPU use bf16 or fp32")
    if RULES[cfg.inference.routing].needs == "spaces" and cfg.stats.spaces == 0:
        raise ConfigError("inference.routing", f"{cfg.inference.routing} needs statistics in "
                          "other sub-networks' spaces: set stats.spaces >= 1")
    if cfg.allocation.redraw_free and cfg.variant not in SELF_TEACHER_VARIANTS:
        raise ConfigError("allocation.redraw_free", "applies to a teacher trained inside the "
                          f"network: variant {' or '.join(SELF_TEACHER_VARIANTS)}")
    if cfg.teacher.epochs == 0 and cfg.variant == "mind" and cfg.distillation.beta > 0:
        raise ConfigError("teacher.epochs", "must be > 0 when distilling from a fresh teacher")
    # The distill phase trains each task's slice and estimates its BatchNorm statistics,
    # with distillation or without (beta 0: teacher_slice, packnet); skipped, every sub-network
    # would be evaluated with BN statistics it never had. The baselines have no such phase.
    if cfg.distill.epochs == 0 and cfg.method == "mind":
        raise ConfigError("distill.epochs", "must be > 0: the distill phase trains each task's "
                          "weights and BatchNorm statistics, also with distillation.beta=0")
    if cfg.label_aug.transform != "none" and cfg.method != "mind":
        raise ConfigError("label_aug.transform", "applies to MIND's sub-networks (method=mind); "
                          f"method={cfg.method} has one head")
    if cfg.label_aug.transform == "rotation" and cfg.distillation.outlier_weight > 0:
        raise ConfigError("label_aug.transform", "rotation labels turned images as classes of "
                          "their own, which distillation.outlier_weight pushes towards uniform: "
                          "set one of them only")
    for phase in ("teacher", "distill"):
        pc: PhaseConfig = getattr(cfg, phase)
        if pc.milestones and pc.epochs and pc.milestones[-1] > pc.epochs:
            raise ConfigError(f"{phase}.milestones",
                              f"milestone {pc.milestones[-1]} is past the last epoch ({pc.epochs})")


def check_tasks_split(cfg: RunConfig, num_classes: int, num_domains: int | None = None) -> None:
    """The dataset-dependent check: classes must split evenly into the tasks."""
    if cfg.scenario == "domain":
        if num_domains is None:
            raise ConfigError("scenario", f"dataset {cfg.dataset} has no domains; "
                              "use scenario=class")
        if cfg.tasks > num_domains:
            raise ConfigError("tasks", f"{cfg.tasks} tasks but {cfg.dataset} has only "
                              f"{num_domains} domains")
    elif num_classes % cfg.tasks:
        divisors = [d for d in range(1, num_classes + 1) if num_classes % d == 0]
        raise ConfigError("tasks", f"{num_classes} classes of {cfg.dataset} do not split into "
                          f"{cfg.tasks} equal tasks; try one of {divisors}")


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    return attrs.asdict(cfg, value_serializer=lambda _i, _f, val: list(val)
                        if isinstance(val, tuple) else val)


# A saved config without a variant was written before variants existed: it trained the
# paper's MIND, whatever the default is now. Likewise one without a precision trained in fp32.
SAVED_VARIANT = "mind"
SAVED_PRECISION = FP32


def config_from_dict(data: Mapping[str, Any]) -> RunConfig:
    """A saved config; a key it lacks (written by an older version) takes its variant's
    default before the field default, so a run resumes as it started."""
    flat = {"variant": SAVED_VARIANT, "precision": SAVED_PRECISION, **flatten(data)}
    variant = str(flat["variant"])
    return build_config(follow_variant(flat, variant, variant))


# ----------------------------------------------------------------------------- presets
def _preset_files() -> dict[str, Any]:
    root = importlib.resources.files("mind_core.presets")
    return {p.name[:-5]: p for p in root.iterdir() if p.name.endswith(".toml")}


# Settings that go beyond the paper, with the paper's own value: a preset that changes none
# reproduces the paper. allocation.init's paper value depends on the variant (VARIANT_DEFAULTS).
PAPER_VALUES: dict[str, Any] = {"inference.routing": PAPER_RULE, "allocation.init": "zero",
                                "allocation.redraw_free": False,
                                "distillation.outlier_weight": 0.0, "precision": FP32,
                                "label_aug.transform": "none"}


def beyond_paper(cfg: RunConfig) -> dict[str, Any]:
    """The settings of cfg that depart from the paper's recipe, {dotted key: value}; a variant
    of this project's counts as one departure, not as one per setting it implies."""
    flat = flatten(config_to_dict(cfg))
    paper = {**PAPER_VALUES, **{k: v for k, v in VARIANT_DEFAULTS[cfg.variant].items()
                                if k in PAPER_VALUES}}
    own_variant = {} if cfg.variant in PAPER_VARIANTS else {"variant": cfg.variant}
    return {**own_variant, **{key: flat[key] for key, value in paper.items()
                              if flat[key] != value}}


@attrs.frozen(kw_only=True)
class PresetInfo:
    name: str
    description: str
    routing: str
    beyond_paper: dict[str, Any]


def list_presets() -> list[PresetInfo]:
    """Every preset, sorted by name, with its routing rule and what departs from the paper."""
    out = []
    for name in sorted(_preset_files()):
        cfg = resolve_config(name)
        out.append(PresetInfo(name=name, description=cfg.description,
                              routing=cfg.inference.routing, beyond_paper=beyond_paper(cfg)))
    return out


def load_preset(name: str) -> dict[str, Any]:
    files = _preset_files()
    if name not in files:
        raise ConfigError("preset", f"unknown preset {name!r}; choose one of "
                          f"{', '.join(sorted(files))}")
    return tomllib.loads(files[name].read_text(encoding="utf-8"))


def parse_overrides(overrides: Iterable[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(item, "expected key=value (e.g. tasks=5 or distill.beta=0)")
        parsed[key] = value
    return parsed


def resolve_config(preset: str = "demo", overrides: Iterable[str] | Mapping[str, Any] = (),
                   *, base: Mapping[str, Any] | None = None, **fields: Any) -> RunConfig:
    """preset (or base in its place: a flat or nested dict, e.g. a file's or a run's) ->
    variant defaults -> overrides (strings "key=value" or a mapping) -> fields. The variant's
    defaults fill what the source leaves out; when the overrides change the variant, they
    also replace what the old variant implied (follow_variant), so a saved config with its
    own variant comes back exactly as it was."""
    flat = _unalias(flatten(load_preset(preset) if base is None else base))
    if base is None:
        flat.setdefault("name", preset)
    _check_keys(flat, f"preset {preset}" if base is None else "")
    given = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides)
    given.update({k: val for k, val in fields.items() if val is not None})
    given = _unalias(given)
    _check_keys(given)
    own = str(flat.get("variant", DEFAULT_VARIANT)).strip()
    variant = str(given.get("variant", own)).strip()
    if variant not in VARIANTS:
        raise ConfigError("variant", f"must be one of {', '.join(VARIANTS)}; "
                          f"got {variant!r}")
    flat = follow_variant(flat, own, variant)
    flat.update(_follow_epochs(flat, given))
    return build_config({**flat, **given})


def implied_settings(variant: str) -> dict[str, Any]:
    """Every setting some variant implies, at this variant's value (the field's default where
    it implies nothing for it, as mind does for all of them)."""
    keys = dict.fromkeys(key for implied in VARIANT_DEFAULTS.values() for key in implied)
    default = flatten(attrs.asdict(_DEFAULT))
    return {key: VARIANT_DEFAULTS.get(variant, {}).get(key, default[key]) for key in keys}


def follow_variant(flat: Mapping[str, Any], old: str, new: str) -> dict[str, Any]:
    """flat (a preset's, a file's or a saved run's settings, variant old) as variant new: a
    setting it leaves out, or holds at what old implies, takes what new implies; any other
    value was chosen, and stays. A full saved config carries every implied setting, so only
    their values can tell what the old variant chose (docs/algorithm.md "Variants")."""
    before, after = implied_settings(old), implied_settings(new)
    chosen = {key: value for key, value in flat.items()
              if key not in before or _parse_value(key, value) != before[key]}
    return {**after, **chosen, "variant": new}



def scaled_milestones(milestones: Iterable[int], scale: float, epochs: int) -> list[int]:
    """Milestones of a phase whose length is multiplied by scale: each rounded (at least 1),
    those on or past the new last epoch dropped, as a schedule cut short has no use for them."""
    return sorted({v for m in milestones if (v := max(1, round(m * scale))) < epochs})


def _follow_epochs(flat: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The milestones of each phase whose epochs the overrides change and whose milestones
    they leave alone, scaled to the new length: a user shortening a preset's phase should not
    need to know where its lr steps were (docs/algorithm.md "Both phases")."""
    out: dict[str, Any] = {}
    for phase in ("teacher", "distill"):
        epochs_key, miles_key = f"{phase}.epochs", f"{phase}.milestones"
        if epochs_key not in given or miles_key in given:
            continue
        default = getattr(_DEFAULT, phase)
        old = _parse_value(epochs_key, flat.get(epochs_key, default.epochs))
        new = _parse_value(epochs_key, given[epochs_key])
        miles = _parse_value(miles_key, flat.get(miles_key, default.milestones))
        try:
            if old > 0 and new != old and miles:
                out[miles_key] = tuple(scaled_milestones(miles, new / old, new))
        except TypeError:  # not a list of numbers: build_config names the bad value
            pass
    return out
