"""Bias-free conv and linear layers whose weight is multiplied by a 0/1 gate.

The gate is a buffer (it moves with the module and is saved in its state_dict); None means
dense and costs nothing. For inference the effective weight can be computed once and cached,
so that a sub-network evaluated over many batches multiplies its weights only once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _Gated(nn.Module):
    weight: nn.Parameter
    gate: torch.Tensor | None

    def _init_gated(self, shape: tuple[int, ...], fan_in: int) -> None:
        self.weight = nn.Parameter(torch.empty(shape))
        self.register_buffer("gate", None)
        self._cached: torch.Tensor | None = None
        self.fan_in = fan_in

    def reset_parameters(self, generator: torch.Generator) -> None:
        """He-normal, std sqrt(2 / fan_in), drawn on the CPU so a seed means the same weights
        on every device."""
        std = math.sqrt(2.0 / self.fan_in)
        values = torch.randn(self.weight.shape, generator=generator, dtype=torch.float32) * std
        with torch.no_grad():
            self.weight.copy_(values)

    def set_gate(self, gate: torch.Tensor | None) -> None:
        if gate is not None and tuple(gate.shape) != tuple(self.weight.shape):
            raise ValueError(f"gate shape {tuple(gate.shape)} != weight shape "
                             f"{tuple(self.weight.shape)}")
        self.gate = None if gate is None else gate.to(self.weight.device, self.weight.dtype)

    def effective_weight(self) -> torch.Tensor:
        if self._cached is not None:
            return self._cached
        return self.weight if self.gate is None else self.weight * self.gate

    def cache_effective_weight(self) -> None:
        """Freeze weight * gate for the following forwards (inference only)."""
        self._cached = None
        self._cached = self.effective_weight().detach()

    def clear_cache(self) -> None:
        self._cached = None


class GatedConv2d(_Gated):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self._init_gated((out_channels, in_channels, kernel_size, kernel_size),
                         in_channels * kernel_size * kernel_size)
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), None, self.stride, self.padding)

    def extra_repr(self) -> str:
        out, inp, kh, _ = self.weight.shape
        return f"{inp}, {out}, kernel_size={kh}, stride={self.stride}, padding={self.padding}"


class GatedLinear(_Gated):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self._init_gated((out_features, in_features), in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight())

    def extra_repr(self) -> str:
        out, inp = self.weight.shape
        return f"in_features={inp}, out_features={out}"


GATED_TYPES = (GatedConv2d, GatedLinear)
