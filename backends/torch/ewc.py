"""What the EWC baseline asks of the backend: the quadratic pull towards anchor values added
to every training batch (DevicePenalty), and the diagonal Fisher information that the core
turns into the next task's importance (fisher). Both cover every gated tensor and every BN
layer's gamma and beta (backend_checks.anchorable_shapes)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backends.torch.augment import Normaliser
from backends.torch.models import bn_layers, gated_tensors, is_builtin
from mind_core.backend_checks import (
    bn_affine_name,
    check_fisher_inputs,
    check_penalty,
    fisher_batches,
)
from mind_core.protocol import Penalty, Weights


def anchorable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters anchorable_shapes names, in its order."""
    params = {name: tensor.param for name, tensor in gated_tensors(model).items()}
    for layer, bn in bn_layers(model).items():
        if bn.affine:  # a user's BN without gamma and beta has nothing to anchor
            params[bn_affine_name(layer, "gamma")] = bn.weight
            params[bn_affine_name(layer, "beta")] = bn.bias
    return params


class DevicePenalty:
    """weight / 2 * sum of importance * (w - anchor) ** 2 over the anchored tensors.

    Anchors and importances are moved to the device once, when the phase starts, so a batch
    costs a few elementwise kernels and no host transfer. The term goes through autograd like
    the rest of the loss: the trainer's gradient masks then apply to it too, so it can never
    move a frozen entry.
    """

    def __init__(self, model: nn.Module, penalty: Penalty, device: torch.device) -> None:
        params = anchorable(model)
        anchored = check_penalty(penalty, {name: tuple(param.shape)
                                           for name, param in params.items()})
        self.half_weight = 0.5 * float(penalty.weight)
        self.params = [params[name] for name in anchored]  # model order
        self.anchors = [_on_device(penalty.anchor[name], device) for name in anchored]
        self.importances = [_on_device(penalty.importance[name], device) for name in anchored]

    def __call__(self) -> torch.Tensor:
        total = sum((imp * (param - anchor).square()).sum()
                    for param, anchor, imp in zip(self.params, self.anchors, self.importances,
                                                  strict=True))
        return self.half_weight * total


def _on_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
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


def fisher(model: nn.Module, x: np.ndarray, y: np.ndarray | None,
           class_range: tuple[int, int], batch_size: int, mean: tuple[float, ...],
           std: tuple[float, ...], device: torch.device) -> Weights:
    """The protocol's Backend.fisher, as FACIL computes it: BN in training mode (batch
    statistics), labels the model's own argmax over class_range when y is None, and per batch
    b (backend_checks.fisher_batches) the gradient g_b of the batch's mean cross-entropy;
    F = mean over batches of g_b ** 2.

    torch.autograd.grad returns the gradients instead of accumulating them in .grad, so no
    gradient is left behind for a later optimiser step to pick up; requires_grad flags (which
    a trainer sets per phase), train/eval modes and the BN running statistics (which training
    mode's forward moves) are put back as they were.
    """
    lo, hi = check_fisher_inputs(x, y, class_range, batch_size, model.spec.num_classes)
    named = anchorable(model)
    params = list(named.values())
    requires = [param.requires_grad for param in params]
    modes = [(module, module.training) for module in model.modules()]
    running = [(buffer, buffer.clone()) for bn in bn_layers(model).values()
               for buffer in (bn.running_mean, bn.running_var, bn.num_batches_tracked)
               if buffer is not None]
    normalise = Normaliser(mean, std, device, channels_last=is_builtin(model))
    x_dev = torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)).to(device)
    y_dev = None if y is None else torch.from_numpy(np.asarray(y, dtype=np.int64) - lo).to(device)
    sums = [torch.zeros_like(param, memory_format=torch.contiguous_format)
            for param in params]
    batches = fisher_batches(len(x), int(batch_size))
    try:
        model.train()
        for param in params:
            param.requires_grad_(True)
        for start, stop in batches:
            z = model(normalise(x_dev[start:stop]))[:, lo:hi]
            target = z.detach().argmax(dim=1) if y_dev is None else y_dev[start:stop]
            grads = torch.autograd.grad(F.cross_entropy(z, target), params, allow_unused=True)
            for total, grad in zip(sums, grads, strict=True):
                if grad is not None:  # a tensor the forward never used has no information
                    total.addcmul_(grad, grad)
    finally:
        with torch.no_grad():
            for buffer, saved in running:
                buffer.copy_(saved)
        for param, flag in zip(params, requires, strict=True):
            param.requires_grad_(flag)
        for module, training in modes:
            module.train(training)
    return {name: (total / len(batches)).to("cpu", torch.float32).numpy()
            for name, total in zip(named, sums, strict=True)}
