"""Named methods for comparisons and sweeps: each is a set of `mind run` settings, so every
method trains through the same command, writes the same run directory and resumes the same
way. `mind sweep --methods` and the benchmarks read this one table.

MIND and its variants run the MIND loop (mind_core/engine.py); the baselines (finetune,
joint, LwF, EWC) run the single-head loop of mind_core/baselines.py, selected by `method`.
"""

from __future__ import annotations

from typing import Any

# Outlier Exposure's weight for its auxiliary uniform-target loss (Hendrycks, Mazeika and
# Dietterich, ICLR 2019, lambda = 0.5); not tuned here.
OUTLIER_WEIGHT = 0.5

# MIND's ablations name the paper's variant: elsewhere than in the paper presets a run's
# default is this project's (config.DEFAULT_VARIANT), and an ablation of MIND must not
# silently become one of that.
_MIND = {"variant": "mind"}

METHODS: dict[str, dict[str, Any]] = {
    # MIND and the variants the paper compares with.
    "mind": {**_MIND},
    "packnet": {"variant": "packnet"},
    "self_distill": {"variant": "self_distill"},
    # Single-head baselines (mind_core/baselines.py; hyper-parameters in docs/baselines.md).
    "finetune": {"method": "finetune"},
    "joint": {"method": "joint"},
    "lwf": {"method": "lwf"},
    "ewc": {"method": "ewc"},
    # Ablations of MIND (the paper's and this project's).
    "no_distill": {**_MIND, "distillation.beta": 0.0},
    "shared_bn": {**_MIND, "bn": "shared"},
    "no_sharing": {**_MIND, "allocation.weight_sharing": False},
    "loss_true_js": {**_MIND, "distillation.loss": "true_js"},
    "loss_kl": {**_MIND, "distillation.loss": "kl"},
    "loss_cosine": {**_MIND, "distillation.loss": "cosine"},
    "loss_l2": {**_MIND, "distillation.loss": "l2"},
    # Students (beyond the paper): where newly owned weights start, routing-aware training.
    "init_teacher": {**_MIND, "allocation.init": "teacher"},
    "init_scaled_normal": {**_MIND, "allocation.init": "scaled_normal"},
    # PackNet's start (the teacher's largest free weights, at their values), then distillation.
    "magnitude_teacher": {**_MIND, "allocation.mode": "magnitude", "allocation.init": "teacher"},
    # The teacher trained inside the network from redrawn free weights (PackNet's teacher, so it
    # builds on earlier tasks' frozen weights), then distillation with per-task BN.
    "self_distill_redraw": {"variant": "self_distill", "allocation.redraw_free": True},
    # The teacher trained inside the network, then a student that leans on the labels more than
    # on that teacher (beta 1, or none at all: PackNet's fine-tuning with per-task BN). Beta 0
    # trains exactly what the variant teacher_slice, this project's default, trains; the name
    # stays so that the benchmark rows it was chosen by keep their meaning.
    "self_distill_beta1": {"variant": "self_distill", "distillation.beta": 1.0},
    "self_distill_beta0": {"variant": "self_distill", "distillation.beta": 0.0},
    "teacher_slice": {"variant": "teacher_slice"},
    # Self-supervised label augmentation (mind_core.views) on this project's default variant:
    # one quarter turn per image and epoch, all four at once, or colour-channel shifts.
    "rotation": {"variant": "teacher_slice", "label_aug.transform": "rotation"},
    "rotation_all": {"variant": "teacher_slice", "label_aug.transform": "rotation",
                     "label_aug.copies": "all"},
    "channels": {"variant": "teacher_slice", "label_aug.transform": "channels"},
    "outliers": {**_MIND, "distillation.outlier_weight": OUTLIER_WEIGHT},
    "teacher_outliers": {**_MIND, "allocation.init": "teacher",
                         "distillation.outlier_weight": OUTLIER_WEIGHT},
}
COMPARISON = ("mind", "finetune", "joint", "packnet", "lwf", "ewc")
"""The paper's kind of comparison: MIND against the baselines (`mind sweep --methods`)."""


class UnknownMethod(ValueError):
    pass


def method_settings(name: str) -> dict[str, Any]:
    """The settings a method name stands for; UnknownMethod names the choices."""
    if name not in METHODS:
        raise UnknownMethod(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return dict(METHODS[name])
