"""Gaussian class models of features, the numerics both kinds of routing statistics share
(mind_core.task_stats' per-task statistics, mind_core.spaces' statistics in every frozen
sub-network): a seeded held-out split, class means, a shrunk covariance and its whitening.

Everything is float64 while fitting; `as_stored` rounds a fitted array to the float32 a
checkpoint keeps, so that a run routes with the same numbers before and after a resume."""

from __future__ import annotations

import numpy as np

CALIBRATION_FRACTION = 0.2
"""Share of a task's training samples held out of the statistics fit to calibrate its scores
(the rest fits the class means and covariance)."""


def as_stored(value: np.ndarray) -> np.ndarray:
    """A fitted array as a checkpoint stores it (float32), back in float64: statistics are
    rounded when fitted, so a run, its resume and `mind eval` all route with identical numbers."""
    return np.asarray(value, np.float64).astype(np.float32).astype(np.float64)


def held_out_split(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration rows, fit rows): a seeded CALIBRATION_FRACTION of range(count) and the
    rest. The network saw every sample in training, but statistics scored on the samples that
    fitted them look better than on any other, so scores are calibrated on the held-out rows."""
    order = np.random.default_rng(seed).permutation(count)
    calib_count = int(round(count * CALIBRATION_FRACTION))
    return order[:calib_count], order[calib_count:]


def class_means(features: np.ndarray, local: np.ndarray, classes: int) -> np.ndarray:
    """Mean feature of each class 0..classes-1 [c, d]; a class without a sample gets the mean
    of all samples (it then neither attracts nor repels anything in particular)."""
    means = np.zeros((classes, features.shape[1]))
    present = np.zeros(classes, bool)
    for c in range(classes):
        rows = features[local == c]
        if len(rows):
            means[c], present[c] = rows.mean(axis=0), True
    if not present.all():
        means[~present] = features.mean(axis=0)
    return means


def oas_covariance(centered: np.ndarray) -> np.ndarray:
    """Oracle Approximating Shrinkage (Chen, Wiesel, Eldar, Hero 2010) of the covariance of
    rows already centred: a closed-form blend of the sample covariance with a scaled identity,
    well conditioned even with dead (constant) features or fewer samples than dimensions."""
    n, d = centered.shape
    sample = centered.T @ centered / max(n, 1)
    mu = np.trace(sample) / d
    alpha = np.mean(sample ** 2)
    denominator = (n + 1.0) * (alpha - mu ** 2 / d)
    shrinkage = 1.0 if denominator <= 0 else min(1.0, (alpha + mu ** 2) / denominator)
    shrunk = (1.0 - shrinkage) * sample
    shrunk[np.diag_indices(d)] += shrinkage * mu
    if mu <= 0:  # every feature constant: any positive scale keeps distances finite
        shrunk[np.diag_indices(d)] += 1.0
    return shrunk


def whitening(covariance: np.ndarray) -> np.ndarray:
    """W with W W^T = covariance^-1 (from the eigendecomposition; robust to near-singular)."""
    values, vectors = np.linalg.eigh(covariance)
    floor = max(values.max(), 1e-12) * 1e-9
    return vectors / np.sqrt(np.maximum(values, floor))


def log_det_from_whitening(whiten: np.ndarray) -> float:
    """log det of the covariance W stands for (W W^T = covariance^-1)."""
    return -2.0 * float(np.linalg.slogdet(whiten)[1])


def squared_distances(features: np.ndarray, means: np.ndarray, whiten: np.ndarray
                      ) -> np.ndarray:
    """Squared Mahalanobis distance of each row to each class mean, [n, c]."""
    z = np.asarray(features, np.float64) @ whiten
    m = means @ whiten
    squared = (z ** 2).sum(1)[:, None] - 2.0 * z @ m.T + (m ** 2).sum(1)[None, :]
    return np.maximum(squared, 0.0)


def min_distance(features: np.ndarray, means: np.ndarray, whiten: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of each row to its nearest class mean, [n]."""
    return squared_distances(features, means, whiten).min(axis=1)
