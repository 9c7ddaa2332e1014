"""One training phase of one model: the compiled train step and the epoch loop around it.

The step is a tf.function with an input signature whose batch dimension is None, so neither
the last, smaller batch nor a new epoch retraces it. Exact freezing is MaskedAdamW's
(optim.py); an EWC penalty (ewc.py) is part of the loss.
"""

from __future__ import annotations

import os
import time

import numpy as np

from backends.tf import tf_import
from backends.tf.amp import as_float32, loss_scale
from backends.tf.augment import augment_batch, normalise
from backends.tf.ewc import make_penalty
from backends.tf.losses import (
    cross_entropy,
    distill_loss_fn,
    mask_logits,
    uniform_cross_entropy,
)
from backends.tf.optim import MaskedAdamW
from mind_core.backend_checks import (
    check_labelled,
    check_phase_fits,
    phase_teacher,
    trainable_masks,
)
from mind_core.precision import load_scaler_entries, scaler_entries, split_scaler_entries
from mind_core.protocol import (
    EpochResult,
    Masks,
    Penalty,
    PhaseSpec,
    ProgressFn,
    StopFn,
    outlier_count,
    outlier_turns,
)

tf, _ = tf_import()

# XLA on CPU: whole tf demos took 2.8x as long with it (docs/precision.md), so off
# by default; MIND_TF_JIT=1 turns it on (e.g. to try it on a GPU).
JIT_COMPILE = os.environ.get("MIND_TF_JIT", "0") == "1"


def image_spec(model):
    return tf.TensorSpec([None, *model.input_hwc], tf.uint8)


def _frozen_or_masked(layer, canonical: np.ndarray | None):
    """(train?, mask) for one gated layer from its checked canonical trainable mask (None:
    everything trains); mask None means every entry trains."""
    if canonical is None:
        return True, None
    if not canonical.any():
        return False, None
    if canonical.all():
        return True, None
    return True, tf.constant(layer.from_canonical(canonical))


class Trainer:
    """Optimiser state and the compiled step for one phase of one model."""

    def __init__(self, model, phase: PhaseSpec, trainable: Masks | None, teacher, device: str,
                 penalty: Penalty | None = None, precision: str = "fp32"):
        check_phase_fits(phase, model.num_classes)
        self.model, self.phase, self.device = model, phase, device
        self.precision = precision  # resolved (amp.resolve)
        self.loss_scale = loss_scale(precision)
        self.teacher = phase_teacher(phase, model, teacher)
        canonical = trainable_masks(trainable, {name: tuple(layer.canonical_shape)
                                                for name, layer in model.gated.items()})
        # Device constants made once here, captured by the compiled step.
        self.penalty = make_penalty(model, penalty)
        variables, masks, keys, layouts = [], [], [], []
        for name, layer in model.gated.items():
            train, mask = _frozen_or_masked(layer, None if canonical is None else canonical[name])
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
        scaling = self.loss_scale
        use_teacher = teacher is not None
        loss_fn = distill_loss_fn(phase.loss)
        distill_logits = _distill_logits(phase)
        penalty = self.penalty
        lo, hi = phase.class_range
        channels = model.input_hwc[2]
        mean = tf.constant(np.broadcast_to(np.asarray(phase.mean, np.float32), (channels,)))
        std = tf.constant(np.broadcast_to(np.asarray(phase.std, np.float32), (channels,)))
        aug = phase.augment
        augmenting = aug.crop_pad > 0 or aug.hflip or aug.brightness > 0
        outliers = phase.outlier_weight > 0

        def outlier_loss(x, outlier_plan):
            """Routing-aware training: task logits on turned copies of part of the batch
            pushed towards uniform; BN in inference mode keeps its statistics the task's.
            outlier_plan: (quarter turns, how many images), protocol.outlier_turns/_count."""
            turned = tf.image.rot90(x[:outlier_plan[1]], k=outlier_plan[0])
            return uniform_cross_entropy(as_float32(model(turned, training=False))[:, lo:hi])

        @tf.function(
            input_signature=[image_spec(model), tf.TensorSpec([None], tf.int64),
                             tf.TensorSpec([None], tf.int32), tf.TensorSpec([2], tf.int64),
                             tf.TensorSpec([2], tf.int32)],
            jit_compile=JIT_COMPILE, autograph=False,
        )
        def step(x_all, y_all, index, seed, outlier_plan):
            x = tf.gather(x_all, index)
            y = tf.gather(y_all, index)
            x = augment_batch(x, mean, std, aug, seed) if augmenting else normalise(x, mean, std)
            if use_teacher:
                raw = as_float32(teacher(x, training=False))
                masked, _ = mask_logits(raw, None, (lo, hi), phase.logit_masking)
                target = tf.stop_gradient(distill_logits(raw, masked))
            with tf.GradientTape() as tape:
                logits = as_float32(model(x, training=phase.train_bn))
                student, labels = mask_logits(logits, y, (lo, hi), phase.logit_masking)
                ce = cross_entropy(student, labels)
                if use_teacher:
                    # No T^2 factor: Li and Hoiem's L_old weighs it by lambda alone.
                    distill = loss_fn(target, distill_logits(logits, student))
                    total = ce + phase.beta * distill
                else:
                    distill, total = tf.constant(0.0), ce
                if outliers:
                    total += phase.outlier_weight * outlier_loss(x, outlier_plan)
                if penalty is not None:
                    total += penalty()
                if scaling is not None:
                    scaled = scaling.scaled(total)
            if scaling is None:
                optimizer.apply(tape.gradient(total, optimizer.variables))
            else:
                scaling.apply(optimizer, tape.gradient(scaled, optimizer.variables))
            hits = tf.equal(tf.argmax(logits[:, lo:hi], axis=-1), y - lo)
            correct = tf.reduce_sum(tf.cast(hits, tf.float32))
            return tf.stack([total, ce, distill, correct])

        return step


    def state(self) -> dict[str, np.ndarray]:
        """MaskedAdamW's state, and fp16's loss scale."""
        out = self.optimizer.state()
        if self.loss_scale is not None:
            out.update(scaler_entries(self.loss_scale.state()))
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        scaler, state = split_scaler_entries(state)
        load_scaler_entries(self.loss_scale, scaler, self.precision)
        self.optimizer.load_state(state)

    def train_epoch(self, x: np.ndarray, y: np.ndarray, epoch: int, seed: int,
                    progress: ProgressFn | None, should_stop: StopFn | None) -> EpochResult:
        start_time = time.perf_counter()
        check_labelled(x, y, self.phase.class_range)
        n = len(x)
        batch_size = self.phase.batch_size
        batches = -(-n // batch_size)
        order = np.random.default_rng(seed).permutation(n).astype(np.int32)
        self.optimizer.lr.assign(self.phase.lr_at(epoch))
        seed64 = int(seed) % (2**63)
        # Reading the loss back stalls a GPU's queue, so there it happens every 16 batches.
        sync_every = 16 if self.device.startswith("/GPU") else 1
        totals = np.zeros(4)
        pending: list = []
        seen = 0
        stopped = False
        with tf.device(self.device):
            # The epoch's data goes to the device once; batches are gathered there.
            x_dev = tf.convert_to_tensor(np.ascontiguousarray(x, dtype=np.uint8))
            y_dev = tf.convert_to_tensor(np.asarray(y, dtype=np.int64))
            order_dev = tf.convert_to_tensor(order)
            for b in range(batches):
                if should_stop is not None and should_stop():
                    stopped = True
                    break
                lo = b * batch_size
                count = min(batch_size, n - lo)
                outliers = [outlier_turns(b, *self.model.input_hwc[:2]), outlier_count(count)]
                pending.append((self.step(x_dev, y_dev, order_dev[lo:lo + count],
                                          tf.constant([seed64, b], tf.int64),
                                          tf.constant(outliers, tf.int32)), count))
                seen += count
                if b == 0 or (b + 1) % sync_every == 0 or b + 1 == batches:
                    totals += _drain(pending)
                if progress is not None:
                    progress(b + 1, batches, float(totals[0] / max(seen - _count(pending), 1)))
        totals += _drain(pending)
        mean = totals / max(seen, 1)
        return EpochResult(loss=float(mean[0]), ce=float(mean[1]), distill=float(mean[2]),
                           accuracy=float(mean[3]), images=seen,
                           seconds=time.perf_counter() - start_time, stopped=stopped)


def _drain(pending: list) -> np.ndarray:
    """Sum of (loss, ce, distill) weighted by batch size, and correct counts; empties pending."""
    totals = np.zeros(4)
    for stats, count in pending:
        values = stats.numpy()
        totals[:3] += values[:3] * count
        totals[3] += values[3]
    pending.clear()
    return totals


def _count(pending: list) -> int:
    return sum(count for _, count in pending)


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
