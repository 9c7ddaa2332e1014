"""The arithmetic a backend trains and predicts in (the `precision` setting, docs/precision.md).

The choice is the core's; the tensor work is the backend's (torch autocast, Keras mixed
precision policies). Whatever the choice, weights, optimiser state, BatchNorm statistics and
checkpoints stay float32, and logits and features reach the core as float32.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

# fp32: everything in float32 (the paper presets). bf16 / fp16: matrix products and
# convolutions in that type, with float32 master weights. auto: bf16 where the device runs it
# natively and the backend gains from it there (each backend's amp.resolve), else fp32.
# FP32 is also what a backend without the setting runs, and what evaluation after the fact
# (`mind eval`, `mind predict`, the Python API) computes in.
FP32, AUTO = "fp32", "auto"
PRECISIONS = (FP32, "bf16", "fp16", AUTO)
# The default outside the paper presets: bf16 matched fp32 over 3 seeds on every CPU
# benchmark setting (docs/precision.md), at 0.61x the training time where it pays.
DEFAULT_PRECISION = AUTO
# CPU flags of native bfloat16 arithmetic (AVX512_BF16, or AMX's bf16 tiles): without them a
# CPU emulates bf16 and runs slower than fp32.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where the file is not there."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_runs_bf16(flags: frozenset[str] | None = None) -> bool:
    return bool(set(BF16_CPU_FLAGS) & (cpu_flags() if flags is None else flags))


def device_runs_bf16(gpu: bool, gpu_runs_bf16: Callable[[], bool]) -> bool:
    """"Natively" for `auto`: on a GPU the backend's own answer (asked only there), on a CPU
    its flags, the same rule for every backend."""
    return gpu_runs_bf16() if gpu else cpu_runs_bf16()


def resolve_precision(requested: str, *, gpu: bool, bf16_native: bool) -> str:
    """The precision a run gets on its device: `auto` becomes bf16 or fp32; fp16 (which needs
    loss scaling, and which CPUs run slower than fp32) only on a GPU. ValueError, one line
    naming the key, for a choice the device cannot run."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision: must be one of {', '.join(PRECISIONS)}; got {requested!r}")
    if requested == AUTO:
        return "bf16" if bf16_native else "fp32"
    if requested == "fp16" and not gpu:
        raise ValueError("precision: fp16 runs on a GPU only; on a CPU use bf16 or fp32")
    if requested == "bf16" and gpu and not bf16_native:
        raise ValueError("precision: this GPU has no bfloat16 support; use fp16 or fp32")
    return requested


# The trainer-state entries of fp16's loss scaler (beside AdamW's "adamw.<param>.<field>"),
# named alike by both backends: "loss_scaler.scale", "loss_scaler.growth_tracker".
LOSS_SCALER = "loss_scaler"


def scaler_entries(state: dict[str, float]) -> dict[str, np.ndarray]:
    """A loss scaler's state as trainer-state arrays."""
    return {f"{LOSS_SCALER}.{key}": np.asarray(value, np.float64) for key, value in state.items()}


def split_scaler_entries(state: dict[str, np.ndarray]
                         ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """(the loss scaler's state, the rest) of a trainer state."""
    prefix = f"{LOSS_SCALER}."
    scaler = {key[len(prefix):]: float(np.asarray(value).reshape(-1)[0])
              for key, value in state.items() if key.startswith(prefix)}
    return scaler, {key: value for key, value in state.items() if not key.startswith(prefix)}


def load_scaler_entries(scaler, scaler_state: dict[str, float], precision: str) -> None:
    """Restores a loss scaler (None outside fp16) from split_scaler_entries' first part."""
    if not scaler_state:
        return
    if scaler is None:
        raise ValueError(f"loss-scaler state was given, but this phase trains in {precision}: "
                         "resume with the precision it was saved in")
    scaler.load_state(scaler_state)


def backend_precision(backend) -> str:
    """The precision a backend resolved; fp32 for one that has no such setting."""
    return str(getattr(backend, "precision", FP32))
