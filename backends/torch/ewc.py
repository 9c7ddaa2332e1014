"""What the EWC baseline asks of the backend: the quadratic pull towards anchor values added
to every training batch (DevicePenalty), and the diagonal empirical Fisher information that
the core turns into the next task's importance (fisher)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backends.torch.augment import Normaliser
from backends.torch.models import gated_tensors, is_builtin
from mind_core.backend_checks import check_fisher_inputs, check_penalty
from mind_core.protocol import Penalty, Weights


class DevicePenalty:
    """weight / 2 * sum of importance * (w - anchor) ** 2 over the anchored gated tensors.

    Anchors and importances are moved to the device once, when the phase starts, so a batch
    costs a few elementwise kernels and no host transfer. The term goes through autograd like
    the rest of the loss: the trainer's gradient masks then apply to it too, so it can never
    move a frozen entry.
    """

    def __init__(self, model: nn.Module, penalty: Penalty, device: torch.device) -> None:
        tensors = gated_tensors(model)
        anchored = check_penalty(penalty, {name: tuple(tensor.param.shape)
                                           for name, tensor in tensors.items()})
        self.half_weight = 0.5 * float(penalty.weight)
        self.params = [tensors[name].param for name in anchored]  # model order
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
    lo, hi = check_fisher_inputs(x, y, class_range, batch_size, model.spec.num_classes)
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
