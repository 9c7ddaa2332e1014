"""The compiled train step (one per phase) and the compiled inference forward (one per model).

Both are tf.functions with an input signature whose batch dimension is None, so neither the
last, smaller batch nor a new epoch retraces them.
"""

from __future__ import annotations

import math
import os

import numpy as np

from backends.tf import tf_import
from backends.tf.augment import augment_batch, normalise
from backends.tf.losses import (
    cross_entropy,
    distill_loss_fn,
    mask_logits,
    uniform_cross_entropy,
)
from backends.tf.optim import MaskedAdamW
from backends.tf.penalty import penalty_term
from mind_core.protocol import MASKINGS, Masks, Penalty, PhaseSpec

tf, _ = tf_import()

# XLA on CPU: measured slower than TF's graph executor with oneDNN for these models, so off
# by default; MIND_TF_JIT=1 turns it on (e.g. to try it on a GPU).
JIT_COMPILE = os.environ.get("MIND_TF_JIT", "0") == "1"


def _image_spec(model):
    return tf.TensorSpec([None, *model.input_hwc], tf.uint8)


def _frozen_or_masked(layer, trainable: Masks | None, name: str):
    """(train?, mask) for one gated layer: mask None means every entry trains."""
    if trainable is None:
        return True, None
    if name not in trainable:
        return False, None
    canonical = np.asarray(trainable[name], dtype=bool)
    if canonical.shape != tuple(layer.canonical_shape):
        raise ValueError(f"trainable[{name!r}]: expected shape {tuple(layer.canonical_shape)}, "
                         f"got {canonical.shape}")
    if not canonical.any():
        return False, None
    if canonical.all():
        return True, None
    return True, tf.constant(layer.from_canonical(canonical))


class Trainer:
    """Optimiser state and the compiled step for one phase of one model."""

    def __init__(self, model, phase: PhaseSpec, trainable: Masks | None, teacher, device: str,
                 penalty: Penalty | None = None):
        if phase.kind not in ("teacher", "distill"):
            raise ValueError(f"unknown phase kind {phase.kind!r}: use 'teacher' or 'distill'")
        if phase.kind == "distill" and phase.beta > 0 and teacher is None:
            raise ValueError("a distill phase with beta > 0 needs a teacher model")
        _check_distill_options(phase, model.num_classes)
        self.model, self.phase, self.device = model, phase, device
        self.teacher = teacher if phase.kind == "distill" and phase.beta > 0 else None
        # Device constants made once here, captured by the compiled step.
        self.penalty = penalty_term(model, penalty)
        variables, masks, keys, layouts = [], [], [], []
        for name, layer in model.gated.items():
            train, mask = _frozen_or_masked(layer, trainable, name)
            if train:
                variables.append(layer.kernel)
                masks.append(mask)
                # a user's bias is named "<layer>.bias" already, as torch names it
                keys.append(name if layer.kind == "bias" else f"{name}.weight")
                layouts.append((layer.to_canonical, layer.from_canonical))
        if phase.train_bn:
            for name, layer in model.bn.items():
                # torch's names for BN gamma and beta, so optimiser states are interchangeable
                for key, var in (("weight", layer.gamma), ("bias", layer.beta)):
                    variables.append(var)
                    masks.append(None)
                    keys.append(f"{name}.{key}")
                    layouts.append(None)
        self.optimizer = MaskedAdamW(variables, masks, keys, phase.weight_decay, layouts)
        self.step = self._compile()

    def _compile(self):
        model, teacher, phase, optimizer = self.model, self.teacher, self.phase, self.optimizer
        use_teacher = teacher is not None
        loss_fn = distill_loss_fn(phase.loss)
        distill_logits = _distill_logits(phase)
        temperature = float(phase.distill_temperature)
        penalty = self.penalty
        lo, hi = phase.class_range
        channels = model.input_hwc[2]
        mean = tf.constant(np.broadcast_to(np.asarray(phase.mean, np.float32), (channels,)))
        std = tf.constant(np.broadcast_to(np.asarray(phase.std, np.float32), (channels,)))
        aug = phase.augment
        augmenting = aug.crop_pad > 0 or aug.hflip or aug.brightness > 0
        if phase.logit_masking not in MASKINGS:
            raise ValueError(f"unknown logit masking {phase.logit_masking!r}; use {MASKINGS}")
        outliers = phase.outlier_weight > 0

        def outlier_loss(x, outlier_plan):
            """Routing-aware training: task logits on turned copies of part of the batch
            pushed towards uniform; BN in inference mode keeps its statistics the task's.
            outlier_plan: (quarter turns, how many images), protocol.outlier_turns/_count."""
            turned = tf.image.rot90(x[:outlier_plan[1]], k=outlier_plan[0])
            return uniform_cross_entropy(model(turned, training=False)[:, lo:hi])

        @tf.function(
            input_signature=[_image_spec(model), tf.TensorSpec([None], tf.int64),
                             tf.TensorSpec([None], tf.int32), tf.TensorSpec([2], tf.int64),
                             tf.TensorSpec([2], tf.int32)],
            jit_compile=JIT_COMPILE, autograph=False,
        )
        def step(x_all, y_all, index, seed, outlier_plan):
            x = tf.gather(x_all, index)
            y = tf.gather(y_all, index)
            x = augment_batch(x, mean, std, aug, seed) if augmenting else normalise(x, mean, std)
            if use_teacher:
                raw = teacher(x, training=False)
                masked, _ = mask_logits(raw, None, (lo, hi), phase.logit_masking)
                target = tf.stop_gradient(distill_logits(raw, masked))
            with tf.GradientTape() as tape:
                logits = model(x, training=phase.train_bn)
                student, labels = mask_logits(logits, y, (lo, hi), phase.logit_masking)
                ce = cross_entropy(student, labels)
                if use_teacher:
                    distill = loss_fn(target, distill_logits(logits, student))
                    if temperature != 1.0:  # T^2 keeps the soft targets' gradients in scale
                        distill = distill * (temperature * temperature)
                    total = ce + phase.beta * distill
                else:
                    distill, total = tf.constant(0.0), ce
                if outliers:
                    total += phase.outlier_weight * outlier_loss(x, outlier_plan)
                if penalty is not None:
                    total += penalty()
            optimizer.apply(tape.gradient(total, optimizer.variables))
            hits = tf.equal(tf.argmax(logits[:, lo:hi], axis=-1), y - lo)
            correct = tf.reduce_sum(tf.cast(hits, tf.float32))
            return tf.stack([total, ce, distill, correct])

        return step


def _check_distill_options(phase: PhaseSpec, num_classes: int) -> None:
    try:
        temperature = float(phase.distill_temperature)
    except (TypeError, ValueError):
        temperature = math.nan
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError("distill_temperature must be a finite number > 0, got "
                         f"{phase.distill_temperature!r}")
    if phase.distill_range is not None:
        lo, hi = phase.distill_range
        if not 0 <= lo < hi <= num_classes:
            raise ValueError(f"distill_range {tuple(phase.distill_range)} is not a non-empty "
                             f"range within the model's {num_classes} classes")


def _distill_logits(phase: PhaseSpec):
    """(logits, masked logits) -> what the distillation loss compares, the same function for
    teacher and student.

    Without distill_range: the masked logits over class_range, as before these options
    existed (the same graph at T = 1, so built-ins train bit-identically). With it: exactly
    the raw logits of those classes, whatever the masking, which only shapes the
    cross-entropy. Then divided by T.
    """
    temperature = float(phase.distill_temperature)
    if phase.distill_range is None:
        def select(logits, masked):
            return masked
    else:
        lo, hi = (int(c) for c in phase.distill_range)

        def select(logits, masked):
            return logits[:, lo:hi]
    if temperature == 1.0:
        return select
    return lambda logits, masked: select(logits, masked) / temperature


def make_predict_fn(model):
    """Inference forward on uint8 images with precomputed effective kernels: (logits over
    every class, penultimate features)."""
    kernel_specs = {name: tf.TensorSpec(layer.kernel.shape, tf.float32)
                    for name, layer in model.gated.items()}
    channels = model.input_hwc[2]

    @tf.function(
        input_signature=[_image_spec(model), kernel_specs, tf.TensorSpec([channels], tf.float32),
                         tf.TensorSpec([channels], tf.float32)],
        jit_compile=JIT_COMPILE, autograph=False,
    )
    def forward(x, kernels, mean, std):
        hidden = model.features(normalise(x, mean, std), training=False, kernels=kernels)
        return model.classify(hidden, kernels), hidden

    return forward
