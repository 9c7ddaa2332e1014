"""Metrics of a MIND run, and numpy reference versions (oracles) of every distillation loss.

The oracles define the losses exactly; the backends' implementations are tested against them.
All losses take teacher and student logits [batch, classes] and return a float averaged over
the batch.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _kl_rows(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """KL(p || q) per row, from log-probabilities."""
    return (np.exp(log_p) * (log_p - log_q)).sum(axis=-1)


def kl_loss(teacher: np.ndarray, student: np.ndarray) -> float:
    """KL(p_T || p_S)."""
    return float(_kl_rows(log_softmax(teacher), log_softmax(student)).mean())


def sym_kl_loss(teacher: np.ndarray, student: np.ndarray) -> float:
    """1/2 KL(p_T || p_S) + 1/2 KL(p_S || p_T): the paper's 'Jensen-Shannon' (the default)."""
    lt, ls = log_softmax(teacher), log_softmax(student)
    return float((0.5 * _kl_rows(lt, ls) + 0.5 * _kl_rows(ls, lt)).mean())


def true_js_loss(teacher: np.ndarray, student: np.ndarray) -> float:
    """Jensen-Shannon divergence with the mixture M = (p_T + p_S) / 2."""
    pt, ps = softmax(teacher), softmax(student)
    log_m = np.log((pt + ps) / 2.0)
    lt, ls = log_softmax(teacher), log_softmax(student)
    return float((0.5 * _kl_rows(lt, log_m) + 0.5 * _kl_rows(ls, log_m)).mean())


def cosine_loss(teacher: np.ndarray, student: np.ndarray, eps: float = 1e-8) -> float:
    """1 - cosine similarity of the logit vectors."""
    num = (teacher * student).sum(axis=-1)
    den = np.maximum(np.linalg.norm(teacher, axis=-1) * np.linalg.norm(student, axis=-1), eps)
    return float((1.0 - num / den).mean())


def l2_loss(teacher: np.ndarray, student: np.ndarray) -> float:
    """Mean squared difference of the logits (over batch and classes)."""
    return float(((teacher - student) ** 2).mean())


LOSS_ORACLES = {
    "sym_kl": sym_kl_loss,
    "true_js": true_js_loss,
    "kl": kl_loss,
    "cosine": cosine_loss,
    "l2": l2_loss,
}
