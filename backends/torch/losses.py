"""The distillation losses (same definitions as mind_core.metrics.LOSS_ORACLES) and the
logit masking applied to teacher and student alike during training."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mind_core.protocol import MASKINGS

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _kl_rows(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row, from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def kl_loss(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    return _kl_rows(F.log_softmax(teacher, -1), F.log_softmax(student, -1)).mean()


def sym_kl_loss(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    lt, ls = F.log_softmax(teacher, -1), F.log_softmax(student, -1)
    return (0.5 * _kl_rows(lt, ls) + 0.5 * _kl_rows(ls, lt)).mean()


def true_js_loss(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    lt, ls = F.log_softmax(teacher, -1), F.log_softmax(student, -1)
    # log((p_T + p_S) / 2) computed in log space so tiny probabilities do not underflow.
    log_m = torch.logaddexp(lt, ls) - math.log(2.0)
    return (0.5 * _kl_rows(lt, log_m) + 0.5 * _kl_rows(ls, log_m)).mean()


def cosine_loss(teacher: torch.Tensor, student: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    # By hand: F.cosine_similarity clamps each norm separately, the oracle clamps the product.
    num = (teacher * student).sum(dim=-1)
    den = (teacher.norm(dim=-1) * student.norm(dim=-1)).clamp_min(eps)
    return (1.0 - num / den).mean()


def l2_loss(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    return ((teacher - student) ** 2).mean()


LOSSES: dict[str, LossFn] = {
    "sym_kl": sym_kl_loss,
    "true_js": true_js_loss,
    "kl": kl_loss,
    "cosine": cosine_loss,
    "l2": l2_loss,
}


def get_loss(name: str) -> LossFn:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown distillation loss {name!r}: use one of "
                         f"{', '.join(LOSSES)}") from None


class LogitMask:
    """Restricts logits to the active classes [lo, hi) before any loss.

    "zero": logits outside [lo, hi) are multiplied by 0 (kept, so CE runs over every output
    with global labels); "slice": only [lo, hi) is kept and labels become y - lo.
    """

    def __init__(self, mode: str, class_range: tuple[int, int], num_classes: int,
                 device: torch.device | str) -> None:
        lo, hi = int(class_range[0]), int(class_range[1])
        if not 0 <= lo < hi <= num_classes:
            raise ValueError(f"class range [{lo}, {hi}) outside the model's {num_classes} classes")
        if mode not in MASKINGS:
            raise ValueError(f"unknown logit masking {mode!r}: use one of {', '.join(MASKINGS)}")
        self.mode, self.lo, self.hi = mode, lo, hi
        self._keep = None
        if mode == "zero":
            keep = torch.zeros(num_classes, dtype=torch.float32)
            keep[lo:hi] = 1.0
            self._keep = keep.to(device)

    def logits(self, logits: torch.Tensor) -> torch.Tensor:
        if self.mode == "slice":
            return logits[:, self.lo:self.hi]
        return logits * self._keep

    def labels(self, y: torch.Tensor) -> torch.Tensor:
        return y - self.lo if self.mode == "slice" else y

    def task_predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """Argmax within the active classes, as a global class id (for training accuracy)."""
        return logits[:, self.lo:self.hi].argmax(dim=1) + self.lo


def uniform_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the uniform distribution: low when no class stands out."""
    return -F.log_softmax(logits, dim=-1).mean()
