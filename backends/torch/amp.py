"""Mixed precision for the torch backend (mind_core/precision.py says what each choice means).

Parameters, gradients and AdamW's moments stay float32 (autocast casts a copy of a weight for
each convolution or matrix product, and the cast's gradient flows back in float32), so the
trainer's gradient masks freeze entries exactly as in fp32. BatchNorm keeps float32 weights
and running statistics, which it accumulates in float32. fp16's narrow range needs loss
scaling (GradScaler); bf16 has float32's range and needs none.
"""

from __future__ import annotations

import contextlib

import torch

from mind_core.precision import device_runs_bf16, resolve_precision

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve(requested: str, device: torch.device) -> str:
    """The precision a run gets on this device (`auto` resolved); ValueError for one the
    device cannot run."""
    gpu = device.type == "cuda"
    native = device_runs_bf16(gpu, torch.cuda.is_bf16_supported)
    return resolve_precision(requested, gpu=gpu, bf16_native=native)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """A fresh context for one forward pass: nothing at all in fp32, so fp32 runs exactly the
    code it ran before precisions existed."""
    if precision not in DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


class LossScaler:
    """fp16's dynamic loss scaling around one optimiser step (torch.amp.GradScaler): a step
    whose gradients overflowed is skipped and the scale halved."""

    def __init__(self, device: torch.device) -> None:
        self.scaler = torch.amp.GradScaler(device.type)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizer) -> bool:  # the trainer's FusedAdamW (optim.py)
        """Unscales, steps unless a gradient is inf or NaN, updates the scale; True when the
        step was taken. A skip is seen as the scale going down (update's only way down)."""
        before = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        return self.scaler.get_scale() >= before

    def state(self) -> dict[str, float]:
        saved = self.scaler.state_dict()
        return {"scale": float(saved["scale"]), "growth_tracker": float(saved["_growth_tracker"])}

    def load_state(self, state: dict[str, float]) -> None:
        saved = self.scaler.state_dict()
        saved["scale"] = float(state["scale"])
        saved["_growth_tracker"] = int(state["growth_tracker"])
        self.scaler.load_state_dict(saved)


def loss_scaler(device: torch.device, precision: str) -> LossScaler | None:
    return LossScaler(device) if precision == "fp16" else None
