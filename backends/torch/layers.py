"""Conv and linear layers whose weight (and optional bias) is multiplied by a 0/1 gate.

Built-in models are bias-free; a user's network (convert.py) keeps its biases, each one its
own gated tensor. A gate is a buffer (it moves with the module and is saved in its state_dict);
None means dense and costs nothing. For inference the effective tensors can be computed once
and cached, so that a sub-network evaluated over many batches multiplies them only once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

GATED_TENSORS = ("weight", "bias")
"""The attributes of a gated layer that can carry a gate; "bias" only when the layer has one."""


class _Gated(nn.Module):
    weight: nn.Parameter
    bias: nn.Parameter | None
    gate: torch.Tensor | None
    bias_gate: torch.Tensor | None

    def _init_gated(self, shape: tuple[int, ...], fan_in: int, bias: bool) -> None:
        self.weight = nn.Parameter(torch.empty(shape))
        # Registered as None when absent, so a bias-free layer's state_dict has no bias key.
        self.register_parameter("bias", nn.Parameter(torch.zeros(shape[0])) if bias else None)
        self.register_buffer("gate", None)
        self.register_buffer("bias_gate", None)
        self._cached: dict[str, torch.Tensor] | None = None
        self.fan_in = fan_in

    def reset_parameters(self, generator: torch.Generator) -> None:
        """He-normal weight, std sqrt(2 / fan_in), drawn on the CPU so a seed means the same
        weights on every device; the bias starts at 0 (it draws nothing, so a bias-free and a
        biased layer consume the generator alike)."""
        std = math.sqrt(2.0 / self.fan_in)
        values = torch.randn(self.weight.shape, generator=generator, dtype=torch.float32) * std
        with torch.no_grad():
            self.weight.copy_(values)
            if self.bias is not None:
                self.bias.zero_()

    def gated_tensors(self) -> tuple[str, ...]:
        return GATED_TENSORS if self.bias is not None else GATED_TENSORS[:1]

    def set_gate(self, gate: torch.Tensor | None, tensor: str = "weight") -> None:
        target = self._param(tensor)
        if gate is not None and tuple(gate.shape) != tuple(target.shape):
            raise ValueError(f"gate shape {tuple(gate.shape)} != {tensor} shape "
                             f"{tuple(target.shape)}")
        value = None if gate is None else gate.to(target.device, target.dtype)
        setattr(self, "gate" if tensor == "weight" else "bias_gate", value)

    def _param(self, tensor: str) -> nn.Parameter:
        param = getattr(self, tensor) if tensor in GATED_TENSORS else None
        if param is None:
            raise ValueError(f"this layer has no gated tensor {tensor!r}")
        return param

    def effective_weight(self) -> torch.Tensor:
        if self._cached is not None:
            return self._cached["weight"]
        return self.weight if self.gate is None else self.weight * self.gate

    def effective_bias(self) -> torch.Tensor | None:
        if self.bias is None:
            return None
        if self._cached is not None:
            return self._cached["bias"]
        return self.bias if self.bias_gate is None else self.bias * self.bias_gate

    def cache_effective_weight(self) -> None:
        """Freeze weight * gate (and bias * bias gate) for the following forwards (inference
        only)."""
        self._cached = None
        cached = {"weight": self.effective_weight().detach()}
        if self.bias is not None:
            cached["bias"] = self.effective_bias().detach()
        self._cached = cached

    def clear_cache(self) -> None:
        self._cached = None


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class GatedConv2d(_Gated):
    """F.conv2d with zero padding; padding may also be "same"/"valid" as in nn.Conv2d
    (F.conv2d handles both). groups as in nn.Conv2d (groups == in_channels: depthwise): the
    weight is then [out, in / groups, kh, kw], each entry owned like any other, and its
    fan-in in / groups * kh * kw."""

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int | tuple[int, int] = 3, stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] | str = 1,
                 dilation: int | tuple[int, int] = 1, bias: bool = False,
                 groups: int = 1) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        kh, kw = _pair(kernel_size)
        per_group = in_channels // groups
        self._init_gated((out_channels, per_group, kh, kw), per_group * kh * kw, bias)
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.effective_weight(), self.effective_bias(), self.stride,
                        self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        out, per_group, kh, kw = self.weight.shape
        groups = f", groups={self.groups}" if self.groups != 1 else ""
        return (f"{per_group * self.groups}, {out}, kernel_size=({kh}, {kw}), "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}"
                f"{groups}, bias={self.bias is not None}")


class GatedLinear(_Gated):
    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__()
        self._init_gated((out_features, in_features), in_features, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.effective_bias())

    def extra_repr(self) -> str:
        out, inp = self.weight.shape
        return f"in_features={inp}, out_features={out}, bias={self.bias is not None}"


GATED_TYPES = (GatedConv2d, GatedLinear)
