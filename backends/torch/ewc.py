"""What the EWC baseline asks of the backend: the quadratic pull towards anchor values added
to every training batch (DevicePenalty), and the diagonal empirical Fisher information that
the core turns into the next task's importance (fisher)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backends.torch.augment import Normaliser
from backends.torch.models import gated_tensors, is_builtin
from mind_core.protocol import Penalty, Weights


class DevicePenalty:
    """weight / 2 * sum of importance * (w - anchor) ** 2 over the anchored gated tensors.

    Anchors and importances are moved to the device once, when the phase starts, so a batch
    costs a few elementwise kernels and no host transfer. The term goes through autograd like
    the rest of the loss: the trainer's gradient masks then apply to it too, so it can never
    move a frozen entry.
    """

    def __init__(self, model: nn.Module, penalty: Penalty, device: torch.device) -> None:
        weight = float(penalty.weight)
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"the penalty weight must be a finite number >= 0, got {weight}")
        tensors = gated_tensors(model)
        unknown = sorted((set(penalty.anchor) | set(penalty.importance)) - set(tensors))
        if unknown:
            raise ValueError(f"penalty for unknown tensors {unknown}; the model has "
                             f"{list(tensors)}")
        missing = sorted(set(penalty.anchor) - set(penalty.importance))
        if missing:
            raise ValueError(f"penalty anchors without an importance: {missing}")
        self.half_weight = 0.5 * weight
        self.params: list[nn.Parameter] = []
        self.anchors: list[torch.Tensor] = []
        self.importances: list[torch.Tensor] = []
        for name, tensor in tensors.items():  # model order, whatever the dict's order
            if name not in penalty.anchor:
                continue
            param = tensor.param
            self.params.append(param)
            self.anchors.append(_on_device(penalty.anchor[name], param, f"anchor of {name}",
                                           device))
            self.importances.append(_on_device(penalty.importance[name], param,
                                               f"importance of {name}", device))

    def __call__(self) -> torch.Tensor:
        total = sum((imp * (param - anchor).square()).sum()
                    for param, anchor, imp in zip(self.params, self.anchors, self.importances,
                                                  strict=True))
        return self.half_weight * total


def _on_device(array: np.ndarray, param: nn.Parameter, what: str,
               device: torch.device) -> torch.Tensor:
    array = np.asarray(array)
    if array.shape != tuple(param.shape):
        raise ValueError(f"{what} has shape {array.shape}, the tensor has {tuple(param.shape)}")
    # A copy even on the CPU (where from_numpy would share memory): the phase must not
    # change if the caller later reuses its arrays.
    return torch.tensor(np.asarray(array, dtype=np.float32), device=device)


def make_penalty(model: nn.Module, penalty: Penalty | None,
                 device: torch.device) -> DevicePenalty | None:
    """None when there is nothing to add (no penalty, weight 0 or no anchors): such a phase
    then runs exactly the code it ran before penalties existed."""
    if penalty is None:
        return None
    term = DevicePenalty(model, penalty, device)
    return term if term.params and term.half_weight > 0 else None


def fisher(model: nn.Module, x: np.ndarray, y: np.ndarray, class_range: tuple[int, int],
           batch_size: int, mean: tuple[float, ...], std: tuple[float, ...],
           device: torch.device) -> Weights:
    """The protocol's Backend.fisher: F = sum over batches b of n_b * g_b ** 2 / len(x), g_b
    the gradient of batch b's mean cross-entropy over the class_range logits, with BN in
    inference mode and the model's current gates.

    torch.autograd.grad returns the gradients instead of accumulating them in .grad, so no
    gradient is left behind for a later optimiser step to pick up; requires_grad flags (which
    a trainer sets per phase) and train/eval modes are put back as they were.
    """
    n = len(x)
    lo, hi = (int(v) for v in class_range)
    classes = model.spec.num_classes
    if not 0 <= lo < hi <= classes:
        raise ValueError(f"class range [{lo}, {hi}) outside the model's {classes} classes")
    if len(y) != n:
        raise ValueError(f"{n} images but {len(y)} labels")
    if n == 0:
        raise ValueError("the Fisher information needs at least one sample")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if np.min(y) < lo or np.max(y) >= hi:
        raise ValueError(f"labels span [{np.min(y)}, {np.max(y)}], outside the classes "
                         f"[{lo}, {hi})")
    tensors = gated_tensors(model)
    params = [tensor.param for tensor in tensors.values()]
    requires = [param.requires_grad for param in params]
    modes = [(module, module.training) for module in model.modules()]
    normalise = Normaliser(mean, std, device, channels_last=is_builtin(model))
    x_dev = torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)).to(device)
    y_dev = torch.from_numpy(np.asarray(y, dtype=np.int64) - lo).to(device)
    sums = [torch.zeros_like(param, memory_format=torch.contiguous_format)
            for param in params]
    try:
        model.eval()
        for param in params:
            param.requires_grad_(True)
        for start in range(0, n, int(batch_size)):
            xb = normalise(x_dev[start:start + int(batch_size)])
            loss = F.cross_entropy(model(xb)[:, lo:hi], y_dev[start:start + int(batch_size)])
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            for total, grad in zip(sums, grads, strict=True):
                if grad is not None:  # a tensor the forward never used has no information
                    total.addcmul_(grad, grad, value=float(xb.shape[0]))
    finally:
        for param, flag in zip(params, requires, strict=True):
            param.requires_grad_(flag)
        for module, training in modes:
            module.train(training)
    return {name: (total / n).to("cpu", torch.float32).numpy()
            for name, total in zip(tensors, sums, strict=True)}
