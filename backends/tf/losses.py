"""Distillation losses and logit masking in TensorFlow; mind_core.metrics holds the oracles.

Every loss takes teacher and student logits [batch, classes] and returns a scalar averaged
over the batch, equal to the numpy oracle of the same name.
"""

from __future__ import annotations

import math

from backends.tf import tf_import

tf, _ = tf_import()


def _kl_rows(log_p, log_q):
    return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)


def kl_loss(teacher, student):
    return tf.reduce_mean(_kl_rows(tf.nn.log_softmax(teacher), tf.nn.log_softmax(student)))


def sym_kl_loss(teacher, student):
    lt, ls = tf.nn.log_softmax(teacher), tf.nn.log_softmax(student)
    return tf.reduce_mean(0.5 * _kl_rows(lt, ls) + 0.5 * _kl_rows(ls, lt))


def true_js_loss(teacher, student):
    lt, ls = tf.nn.log_softmax(teacher), tf.nn.log_softmax(student)
    # log((p_T + p_S) / 2) via logsumexp: the same value, but finite where both p underflow.
    log_m = tf.reduce_logsumexp(tf.stack([lt, ls]), axis=0) - math.log(2.0)
    return tf.reduce_mean(0.5 * _kl_rows(lt, log_m) + 0.5 * _kl_rows(ls, log_m))


def cosine_loss(teacher, student, eps: float = 1e-8):
    num = tf.reduce_sum(teacher * student, axis=-1)
    den = tf.maximum(tf.norm(teacher, axis=-1) * tf.norm(student, axis=-1), eps)
    return tf.reduce_mean(1.0 - num / den)


def l2_loss(teacher, student):
    return tf.reduce_mean(tf.square(teacher - student))


DISTILL_LOSSES = {
    "sym_kl": sym_kl_loss,
    "true_js": true_js_loss,
    "kl": kl_loss,
    "cosine": cosine_loss,
    "l2": l2_loss,
}


def distill_loss_fn(name: str):
    try:
        return DISTILL_LOSSES[name]
    except KeyError:
        raise ValueError(
            f"unknown distillation loss {name!r}; choose one of {sorted(DISTILL_LOSSES)}"
        ) from None


def mask_logits(logits, labels, class_range: tuple[int, int], mode: str):
    """Restrict logits to the active task's classes [lo, hi).

    "zero": other logits are multiplied by 0 (kept, so softmax still sees them) and labels stay
    global; "slice": only columns lo..hi-1 are kept and labels become label - lo.
    Returns (logits, labels); labels may be None (teacher logits for distillation).
    """
    lo, hi = class_range
    if mode == "zero":
        num_classes = logits.shape[-1]
        keep = [1.0 if lo <= c < hi else 0.0 for c in range(num_classes)]
        return logits * tf.constant(keep, logits.dtype), labels
    if mode == "slice":
        return logits[:, lo:hi], (None if labels is None else labels - lo)
    raise ValueError(f"unknown logit masking {mode!r}; choose 'zero' or 'slice'")


def cross_entropy(logits, labels):
    return tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    )


def uniform_cross_entropy(logits):
    """Cross-entropy against the uniform distribution: low when no class stands out."""
    return -tf.reduce_mean(tf.nn.log_softmax(logits, axis=-1))
