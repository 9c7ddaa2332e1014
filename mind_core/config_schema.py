"""The run configuration's schema: its frozen attrs records, their fields' defaults and range
checks, and the lists of choices the loop itself defines (variants, BatchNorm modes, method
loops). How a config is resolved from presets, files and overrides is mind_core.config."""

from __future__ import annotations

import attrs

from mind_core.masks import INITS, MODES
from mind_core.network import CUSTOM_ARCH
from mind_core.precision import DEFAULT_PRECISION, PRECISIONS
from mind_core.protocol import ARCHS, LOSSES, MASKINGS
from mind_core.registry import BACKENDS
from mind_core.routing import ROUTINGS
from mind_core.schedule import SCENARIOS
from mind_core.spaces import COVARIANCES, TRANSFORMS
from mind_core.views import LABEL_COPIES, LABEL_TRANSFORMS

# The loop's variants (what each sets: VARIANT_DEFAULTS, plan.Plan) and BatchNorm modes
# (plan.Plan.train_bn); the other lists of choices live with the code that implements them:
# BACKENDS, ARCHS, LOSSES, MASKINGS, MODES, INITS, ROUTINGS, SCENARIOS, COVARIANCES,
# TRANSFORMS, PRECISIONS, LABEL_TRANSFORMS, LABEL_COPIES.
VARIANTS = ("mind", "self_distill", "packnet", "teacher_slice")
# The variants the paper defines (docs/algorithm.md "Variants"); teacher_slice is this project's.
PAPER_VARIANTS = ("mind", "self_distill", "packnet")
# Beyond the paper, the variant a run gets unless a preset or the user names one: it beat MIND
# (with the same routing rule) on every CPU setting over 3 seeds (docs/algorithm.md); the paper
# presets set mind.
DEFAULT_VARIANT = "teacher_slice"
# The variants whose teacher is the MIND network itself, training only its free weights.
SELF_TEACHER_VARIANTS = ("self_distill", "packnet", "teacher_slice")
# The loop a run trains with: MIND's (engine.py) or a single-head baseline's (baselines.py).
METHOD_LOOPS = ("mind", "finetune", "joint", "lwf", "ewc")
BN_MODES = ("per_task", "shared", "frozen_after_first")


def _positive(inst, attribute, value):
    if not value > 0:  # written so that NaN fails too
        raise ValueError(f"must be > 0, got {value}")


def _non_negative(inst, attribute, value):
    if not value >= 0:
        raise ValueError(f"must be >= 0, got {value}")


def _one_of(*choices):
    def check(inst, attribute, value):
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(map(str, choices))}; got {value!r}")
    return check


def _unit_interval(inst, attribute, value):
    if not 0 <= value <= 1:
        raise ValueError(f"must be in [0, 1], got {value}")


def _milestones(inst, attribute, value):
    if any(m <= 0 for m in value) or list(value) != sorted(set(value)):
        raise ValueError(f"must be increasing positive epochs, got {list(value)}")


@attrs.frozen(kw_only=True)
class PhaseConfig:
    epochs: int = attrs.field(default=1, validator=_non_negative)
    lr: float = attrs.field(default=0.005, validator=_positive)
    milestones: tuple[int, ...] = attrs.field(default=(), converter=tuple, validator=_milestones)
    gamma: float = attrs.field(default=0.5, validator=_positive)
    weight_decay: float = attrs.field(default=0.0, validator=_non_negative)
    batch_size: int = attrs.field(default=256, validator=_positive)


@attrs.frozen(kw_only=True)
class AllocationConfig:
    mode: str = attrs.field(default="random", validator=_one_of(*MODES))
    weight_sharing: bool = True
    # Values of newly owned weights: see masks.INITS and docs/algorithm.md.
    init: str = attrs.field(default="zero", validator=_one_of(*INITS))
    # A teacher trained inside the network (SELF_TEACHER_VARIANTS) starts task t >= 1 with the
    # still-free weights re-drawn He-normal (PackNet) instead of at 0, where allocation left them.
    redraw_free: bool = False


@attrs.frozen(kw_only=True)
class DistillationConfig:
    beta: float = attrs.field(default=5.0, validator=_non_negative)
    loss: str = attrs.field(default="sym_kl", converter=lambda s: "sym_kl" if s == "js" else s,
                            validator=_one_of(*LOSSES))
    logit_masking: str = attrs.field(default="zero", validator=_one_of(*MASKINGS))
    # Routing-aware training: 0 = off (the paper). See protocol.outlier_turns.
    outlier_weight: float = attrs.field(default=0.0, validator=_non_negative)


@attrs.frozen(kw_only=True)
class InferenceConfig:
    temperature: float = attrs.field(default=1.0, validator=_positive)
    # Beyond the paper: it routed better than mahalanobis and max_prob on every CPU setting
    # (3 seeds; docs/routing.md); the paper presets set max_prob.
    routing: str = attrs.field(default="pairwise", validator=_one_of(*ROUTINGS))
    batch_size: int = attrs.field(default=512, validator=_positive)


@attrs.frozen(kw_only=True)
class StatsConfig:
    """Routing statistics fitted at the end of each task (docs/routing.md)."""

    # Beyond the paper: besides its own, the first `spaces` sub-networks' feature spaces a
    # task's statistics are fitted in (mind_core.spaces; the rule `pairwise` reads them). 0:
    # its own space only (the paper presets: no extra forward passes). 16 covers every task of
    # the paper's sequences and bounds storage and fitting for longer ones.
    spaces: int = attrs.field(default=16, validator=_non_negative)
    # How each (space, task) is modelled: chosen on the synbols-selection rendering
    # (docs/routing.md), where each beat its alternative.
    covariance: str = attrs.field(default="per_class", validator=_one_of(*COVARIANCES))
    transform: str = attrs.field(default="fecam", validator=_one_of(*TRANSFORMS))


@attrs.frozen(kw_only=True)
class LabelAugConfig:
    """Self-supervised label augmentation (mind_core.views, docs/routing.md): each (class,
    view) pair a label of its own, so each sub-network learns what its task's images look
    like. Beyond the paper; off unless set."""

    transform: str = attrs.field(default="none", validator=_one_of(*LABEL_TRANSFORMS))
    # "one" keeps an epoch's work as it is; "all" multiplies it by the number of views.
    copies: str = attrs.field(default="one", validator=_one_of(*LABEL_COPIES))


@attrs.frozen(kw_only=True)
class LwfConfig:
    """Learning without Forgetting (method=lwf): weight and temperature of its distillation
    of the old classes' logits (docs/baselines.md: Li and Hoiem 2016, lambda 1, T 2)."""

    weight: float = attrs.field(default=1.0, validator=_non_negative)
    temperature: float = attrs.field(default=2.0, validator=_positive)


@attrs.frozen(kw_only=True)
class EwcConfig:
    """Elastic Weight Consolidation (method=ewc): the penalty's weight and how the Fisher of
    a new task is merged with the old, alpha * old + (1 - alpha) * new (docs/baselines.md)."""

    weight: float = attrs.field(default=5000.0, validator=_non_negative)
    alpha: float = attrs.field(default=0.5, validator=_unit_interval)


def _backend_name(inst, attribute, value):
    if value not in BACKENDS and (":" not in value or value.startswith(":")):
        raise ValueError(f"unknown backend {value!r}: use {', '.join(BACKENDS)}, or "
                         "module:Class")


@attrs.frozen(kw_only=True)
class RunConfig:
    name: str = ""
    description: str = ""
    backend: str = attrs.field(default="torch", validator=_backend_name)
    device: str = "auto"
    # The arithmetic of training and inference (mind_core.precision); `auto` is resolved by
    # the backend on its device and recorded in config.json's versions.
    precision: str = attrs.field(default=DEFAULT_PRECISION, validator=_one_of(*PRECISIONS))
    dataset: str = "fmnist-mini"
    data_dir: str = ""
    scenario: str = attrs.field(default="class", validator=_one_of(*SCENARIOS))
    tasks: int = attrs.field(default=5, validator=_positive)
    seed: int = attrs.field(default=0, validator=_non_negative)
    model: str = attrs.field(default="small_cnn", validator=_one_of(*ARCHS, CUSTOM_ARCH))
    method: str = attrs.field(default="mind", validator=_one_of(*METHOD_LOOPS))
    variant: str = attrs.field(default=DEFAULT_VARIANT, validator=_one_of(*VARIANTS))
    bn: str = attrs.field(default="per_task", validator=_one_of(*BN_MODES))
    teacher: PhaseConfig = PhaseConfig()
    distill: PhaseConfig = PhaseConfig(lr=0.035)
    allocation: AllocationConfig = AllocationConfig()
    distillation: DistillationConfig = DistillationConfig()
    inference: InferenceConfig = InferenceConfig()
    stats: StatsConfig = StatsConfig()
    label_aug: LabelAugConfig = LabelAugConfig()
    lwf: LwfConfig = LwfConfig()
    ewc: EwcConfig = EwcConfig()


for _cls in (PhaseConfig, AllocationConfig, DistillationConfig, InferenceConfig, StatsConfig,
             LabelAugConfig, LwfConfig, EwcConfig, RunConfig):
    attrs.resolve_types(_cls)
