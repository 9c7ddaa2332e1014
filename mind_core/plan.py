"""What a config means for the loop: variants as engine settings, phase specs, derived seeds.

Variants (mind / self_distill / packnet) are configurations of the one loop, not copies of it.
Every random choice draws from a seed derived from (run seed, task, step, epoch), so a run
resumed at any epoch boundary repeats exactly what an uninterrupted run would have done.
"""

from __future__ import annotations

import attrs
import numpy as np

from mind_core.config import SELF_TEACHER_VARIANTS, ConfigError, PhaseConfig, RunConfig
from mind_core.protocol import MIN_IMAGE_SIDE, Augment, ModelSpec, PhaseSpec
from mind_core.views import Views, unfit_reason

_STEP_CODES = {"model": 1, "teacher_init": 2, "allocate": 3, "teacher": 4, "distill": 5,
               "reinit": 6, "stats": 7, "fisher": 8,
               "teacher_views": 9, "distill_views": 10}


def derive_seed(seed: int, step: str, task: int = 0, epoch: int = 0) -> int:
    state = np.random.SeedSequence([seed, _STEP_CODES[step], task, epoch]).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)


@attrs.frozen(kw_only=True)
class Plan:
    self_teacher: bool  # teacher = copy of the MIND model training only free weights
    reinit_free: bool  # free weights re-drawn before each task's teacher phase (PackNet)
    bn_mode: str  # per_task | shared | frozen_after_first
    weight_sharing: bool
    allocation: str  # random | magnitude
    init: str  # values of newly owned weights, masks.INITS

    @classmethod
    def from_config(cls, cfg: RunConfig) -> Plan:
        return cls(self_teacher=cfg.variant in SELF_TEACHER_VARIANTS,
                   reinit_free=cfg.allocation.redraw_free,
                   bn_mode=cfg.bn,
                   weight_sharing=cfg.allocation.weight_sharing,
                   allocation=cfg.allocation.mode, init=cfg.allocation.init)

    def train_bn(self, task: int) -> bool:
        return not (self.bn_mode == "frozen_after_first" and task > 0)

    def bn_for_inference(self, task: int, latest: int) -> int:
        """Which BN snapshot sub-network `task` runs with."""
        return latest if self.bn_mode == "shared" else task

    @property
    def subnets_final_once_learned(self) -> bool:
        """Whether a sub-network answers every image the same from the end of its task on:
        its weights are frozen then, and so is its BN snapshot unless all share the newest."""
        return self.bn_mode != "shared"


def model_spec(cfg: RunConfig, image_shape: tuple[int, int, int], num_classes: int) -> ModelSpec:
    """What to build for the data; a ConfigError when its images are too small for the model."""
    side = MIN_IMAGE_SIDE.get(cfg.model, 1)
    height, width = image_shape[:2]
    if min(height, width) < side:
        reason = " (it halves them twice)" if cfg.model == "small_cnn" else ""
        raise ConfigError("model", f"{cfg.model} needs images of at least {side}x{side} pixels"
                          f"{reason}, but {cfg.dataset}'s are {height}x{width}; use larger "
                          "images or another model")
    reason = unfit_reason(cfg.label_aug.transform, image_shape)
    if reason:
        raise ConfigError("label_aug.transform", f"{reason} ({cfg.dataset})")
    # With label augmentation, one output row per (class, view) pair (mind_core.views).
    return ModelSpec(arch=cfg.model, input_shape=image_shape,
                     num_classes=Views.from_config(cfg).head_width(num_classes))


def phase_spec(cfg: RunConfig, kind: str, class_range: tuple[int, int], train_bn: bool,
               mean: tuple[float, ...], std: tuple[float, ...], augment: Augment,
               with_teacher: bool) -> PhaseSpec:
    pc: PhaseConfig = cfg.teacher if kind == "teacher" else cfg.distill
    return PhaseSpec(kind=kind, epochs=pc.epochs, lr=pc.lr, milestones=pc.milestones,
                     gamma=pc.gamma, weight_decay=pc.weight_decay, batch_size=pc.batch_size,
                     class_range=class_range, logit_masking=cfg.distillation.logit_masking,
                     beta=cfg.distillation.beta if with_teacher else 0.0,
                     loss=cfg.distillation.loss, train_bn=train_bn, mean=mean, std=std,
                     augment=augment,
                     outlier_weight=cfg.distillation.outlier_weight if kind == "distill"
                     else 0.0)
