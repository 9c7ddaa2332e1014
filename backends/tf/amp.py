"""Mixed precision for the tf backend (mind_core/precision.py says what each choice means).

A Keras mixed policy on the gated layers the backend builds: their kernels stay float32
variables (the master copy MaskedAdamW updates, with exact freezing), the convolution or
matrix product runs on a bf16 copy, and the gradient comes back float32. BatchNorm layers keep
the float32 policy, so they normalise and fit their running statistics in float32 (Keras casts
their bf16 input up). Logits and features are cast to float32 where they leave the model.
"""

from __future__ import annotations

from backends.tf import tf_import
from mind_core.precision import cpu_runs_bf16, resolve_precision

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
    device, or this backend, cannot run."""
    gpu = device.startswith("/GPU")
    precision = resolve_precision(requested, gpu=gpu,
                                  bf16_native=_gpu_runs_bf16(device) if gpu else cpu_runs_bf16())
    if precision == "fp16":
        # Keras' LossScaleOptimizer wraps a Keras optimizer, and exact freezing needs our own
        # MaskedAdamW: fp16 waits for loss scaling written into it (docs/precision.md).
        raise ValueError("precision: fp16 is not available with the tf backend yet (no loss "
                         "scaling in its masked AdamW); use bf16 or fp32")
    return precision


def apply_policy(model, precision: str) -> None:
    """Sets the precision's policy on every gated layer of a built-in model."""
    if precision == "fp32":
        return  # the layers' own float32 policy: fp32 runs exactly what it ran before
    for layer in model.gated.values():
        layer.dtype_policy = POLICIES[precision]


def as_float32(tensor):
    """Logits or features as the losses and the core take them (a no-op on float32)."""
    return tf.cast(tensor, tf.float32)
