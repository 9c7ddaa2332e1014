"""Mixed precision for the tf backend (mind_core/precision.py says what each choice means).

A Keras mixed policy on the gated layers the backend builds: their kernels stay float32
variables (the master copy MaskedAdamW updates, with exact freezing), the convolution or
matrix product runs on a bf16 copy, and the gradient comes back float32. BatchNorm layers keep
the float32 policy, so they normalise and fit their running statistics in float32 (Keras casts
their bf16 input up). Logits and features are cast to float32 where they leave the model.
fp16 (GPUs only) adds dynamic loss scaling (LossScale) around MaskedAdamW: Keras'
LossScaleOptimizer wraps only Keras optimizers, and exact freezing needs MaskedAdamW.
"""

from __future__ import annotations

from backends.tf import tf_import
from mind_core.precision import device_runs_bf16, resolve_precision

tf, _ = tf_import()

POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
# Ampere and later run bf16 natively.
BF16_COMPUTE_CAPABILITY = (8, 0)


def _gpu_runs_bf16(device: str) -> bool:
    gpus = tf.config.list_physical_devices("GPU")
    index = int(device.rsplit(":", 1)[1])
    details = tf.config.experimental.get_device_details(gpus[index]) if index < len(gpus) else {}
    return tuple(details.get("compute_capability", (0, 0))) >= BF16_COMPUTE_CAPABILITY


def resolve(requested: str, device: str) -> str:
    """The precision a run gets on this TF device (`auto` resolved); ValueError for one the
    device, or this backend, cannot run. `auto` is bf16 on a CPU with bf16 instructions, as
    with torch: TF's bf16 steps there take 0.80x the fp32 ones (torch's 0.61x), a whole demo
    0.85x, and its bf16 accuracy matched fp32's on every CPU setting (docs/precision.md)."""
    gpu = device.startswith("/GPU")
    native = device_runs_bf16(gpu, lambda: _gpu_runs_bf16(device))
    return resolve_precision(requested, gpu=gpu, bf16_native=native)


def apply_policy(model, precision: str) -> None:
    """Sets the precision's policy on every gated layer of a built-in model."""
    if precision == "fp32":
        return  # the layers' own float32 policy: fp32 runs exactly what it ran before
    for layer in model.gated.values():
        layer.dtype_policy = POLICIES[precision]


def as_float32(tensor):
    """Logits or features as the losses and the core take them (a no-op on float32)."""
    return tf.cast(tensor, tf.float32)


# torch.amp.GradScaler's defaults, so both backends scale alike.
INITIAL_SCALE, GROWTH_INTERVAL = 2.0**16, 2000


class LossScale:
    """fp16's dynamic loss scaling, for use inside the compiled train step: the loss is
    multiplied by the scale before the gradient; a step whose unscaled gradients are all
    finite is applied and, after GROWTH_INTERVAL such steps in a row, the scale doubles; any
    other step is skipped whole (MaskedAdamW's moments, step count and weight decay
    included) and the scale halves."""

    def __init__(self) -> None:
        self.scale = tf.Variable(INITIAL_SCALE, dtype=tf.float32, trainable=False,
                                 name="loss_scale")
        self.growth_tracker = tf.Variable(0, dtype=tf.int64, trainable=False,
                                          name="loss_scale_growth")

    def scaled(self, loss):
        return loss * self.scale

    def apply(self, optimizer, grads) -> None:
        grads = [None if g is None else g / self.scale for g in grads]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g))
                                for g in grads if g is not None])

        def take():
            optimizer.apply(grads)
            grown = self.growth_tracker + 1
            grow = grown >= GROWTH_INTERVAL
            self.scale.assign(tf.where(grow, self.scale * 2.0, self.scale))
            self.growth_tracker.assign(tf.where(grow, tf.zeros_like(grown), grown))
            return tf.constant(True)

        def skip():
            self.scale.assign(self.scale * 0.5)
            self.growth_tracker.assign(0)
            return tf.constant(False)

        tf.cond(finite, take, skip)

    def state(self) -> dict[str, float]:
        return {"scale": float(self.scale.numpy()),
                "growth_tracker": float(self.growth_tracker.numpy())}

    def load_state(self, state: dict[str, float]) -> None:
        self.scale.assign(float(state["scale"]))
        self.growth_tracker.assign(int(state["growth_tracker"]))


def loss_scale(precision: str) -> LossScale | None:
    return LossScale() if precision == "fp16" else None
