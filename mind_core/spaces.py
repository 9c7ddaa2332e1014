"""Statistics of every task in every frozen sub-network's feature space, and the `pairwise`
routing rule that reads them (docs/routing.md, "Statistics in every sub-network").

Sub-network j is frozen bit for bit after task j: its weights, its BN snapshot and so its
features never change again. At the end of task t, task t's training data seen through
sub-networks 0..t therefore gives statistics that stay exact for the rest of the run, without
keeping a single image. In sub-network j's space, tasks j..t are then all modelled by Gaussians
fitted in the same space, so "task s or task t?" can be decided by comparing two likelihoods
of one feature vector under two models of one space: no calibration across spaces is needed.

The spaces a task is fitted in: its own, and the first `stats.spaces` sub-networks' (all of
them while the run has no more tasks than that); a bounded number keeps storage and fitting
linear in the number of tasks for long sequences.
"""

from __future__ import annotations

import attrs
import numpy as np

from mind_core.gaussians import (
    as_stored,
    class_means,
    held_out_split,
    log_det_from_whitening,
    oas_covariance,
    squared_distances,
    whitening,
)

COVARIANCES = ("per_class", "tied")
"""One OAS-shrunk covariance per class, or one shared by the task's classes (stats.covariance)."""
TRANSFORMS = ("fecam", "none")
"""What features go through before they are modelled (stats.transform): FeCAM's power 0.5
(sign kept) and unit L2 norm (Goswami et al., NeurIPS 2023), which makes the heavy-tailed,
non-negative features of a ReLU network closer to Gaussian; or nothing."""


class SpaceStatsError(ValueError):
    """Statistics of a space are malformed (shapes, non-finite values)."""


def transform_features(features: np.ndarray, transform: str) -> np.ndarray:
    features = np.asarray(features, np.float64)
    if transform == "none":
        return features
    powered = np.sign(features) * np.sqrt(np.abs(features))
    return powered / np.maximum(np.linalg.norm(powered, axis=-1, keepdims=True), 1e-12)


@attrs.frozen(kw_only=True, eq=False)
class SpaceStats:
    """Task t's classes in one sub-network's feature space: an equal mixture of class
    Gaussians, each with its own OAS-shrunk covariance or all with one shared.

    means [c, d]; whiten [k, d, d] (k = c per class, or 1 shared) with W W^T = covariance^-1;
    log_det [k] of the covariances; calibration [2]: mean and std of the mixture
    log-likelihood on the task's held-out slice; transform [1]: the index in TRANSFORMS of
    what the features went through.
    """

    means: np.ndarray
    whiten: np.ndarray
    log_det: np.ndarray
    calibration: np.ndarray
    transform: np.ndarray

    ARRAYS = ("means", "whiten", "log_det", "calibration", "transform")

    @property
    def transform_name(self) -> str:
        return TRANSFORMS[int(self.transform[0])]

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.ARRAYS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], where: str) -> SpaceStats:
        missing = [name for name in cls.ARRAYS if name not in arrays]
        if missing:
            raise SpaceStatsError(f"{where}: missing tensor {missing[0]!r}")
        values = [np.asarray(arrays[n], np.float64) for n in cls.ARRAYS]
        means, whiten, log_det, calibration, transform = values
        c, d = means.shape if means.ndim == 2 else (0, 0)
        k = whiten.shape[0] if whiten.ndim == 3 else 0
        if not (c > 0 and k in (1, c) and whiten.shape[1:] == (d, d) and log_det.shape == (k,)
                and calibration.shape == (2,) and transform.shape == (1,)):
            raise SpaceStatsError(
                f"{where}: tensors of the wrong shape (means {means.shape}, whiten "
                f"{whiten.shape}, log_det {log_det.shape}, calibration {calibration.shape}, "
                f"transform {transform.shape}; expected [c, d], [k, d, d], [k], [2], [1] "
                "with k = 1 or c)")
        for name, value in zip(cls.ARRAYS, values, strict=True):
            if not np.all(np.isfinite(value)):
                raise SpaceStatsError(f"{where}: tensor {name!r} holds non-finite values")
        if calibration[1] <= 0:
            raise SpaceStatsError(f"{where}: tensor 'calibration' has a non-positive spread")
        if transform[0] not in range(len(TRANSFORMS)):
            raise SpaceStatsError(f"{where}: tensor 'transform' is {transform[0]:g}, not one "
                                  f"of 0..{len(TRANSFORMS) - 1}")
        return cls(means=means, whiten=whiten, log_det=log_det, calibration=calibration,
                   transform=transform)


def space_ids(task: int, spaces: int) -> list[int]:
    """The sub-networks whose feature spaces task `task`'s statistics are fitted in: the first
    `spaces` of those that exist when it ends, and its own."""
    return sorted({*range(min(task, spaces)), task}) if spaces > 0 else []


def fit_space_stats(features: np.ndarray, labels: np.ndarray, class_range: tuple[int, int],
                    seed: int, covariance: str = "per_class", transform: str = "fecam"
                    ) -> SpaceStats:
    """Task statistics in one space from its training features [n, d] in that space (the
    same seeded held-out slice as the task's own-space statistics), rounded as stored."""
    features = transform_features(features, transform)
    local = np.asarray(labels, np.int64) - class_range[0]
    calib, fit = held_out_split(len(features), seed)
    x, y = features[fit], local[fit]
    means = as_stored(class_means(x, y, class_range[1] - class_range[0]))
    groups = [x - means[y]] if covariance == "tied" else \
        [x[y == c] - means[c] for c in range(len(means))]
    whiten = as_stored(np.stack([whitening(oas_covariance(rows)) for rows in groups]))
    log_det = as_stored(np.array([log_det_from_whitening(w) for w in whiten]))
    code = np.array([float(TRANSFORMS.index(transform))])
    provisional = SpaceStats(means=means, whiten=whiten, log_det=log_det,
                             calibration=np.array([0.0, 1.0]), transform=code)
    scores = log_likelihood(features[calib], provisional, transformed=True)
    calibration = as_stored(np.array([scores.mean(), max(scores.std(), 1e-6)]))
    return attrs.evolve(provisional, calibration=calibration)


def log_likelihood(features: np.ndarray, stats: SpaceStats, transformed: bool = False
                   ) -> np.ndarray:
    """log p(h) under the task's equal mixture of class Gaussians, up to the constant
    -d/2 log 2 pi that every model of one space shares [n]. transformed: the features have
    been through the statistics' transform already."""
    if not transformed:
        features = transform_features(features, stats.transform_name)
    if len(stats.whiten) == 1:
        half = -0.5 * squared_distances(features, stats.means, stats.whiten[0]) \
            - 0.5 * stats.log_det[0]
    else:
        half = np.stack([-0.5 * squared_distances(features, mean[None], whiten)[:, 0]
                         - 0.5 * log_det for mean, whiten, log_det
                         in zip(stats.means, stats.whiten, stats.log_det, strict=True)], axis=1)
    top = half.max(axis=1)
    return top + np.log(np.exp(half - top[:, None]).sum(axis=1)) - np.log(len(stats.means))


def pair_space(spaces_s: dict, spaces_t: dict) -> int | None:
    """Where tasks s and t are compared: the latest space both are modelled in."""
    shared = set(spaces_s) & set(spaces_t)
    return max(shared) if shared else None


def has_spaces(task_spaces: list[dict]) -> bool:
    """Whether every pair of tasks shares a space (what `pairwise` needs)."""
    return all(pair_space(task_spaces[s], task_spaces[t]) is not None
               for t in range(len(task_spaces)) for s in range(t))


def pairwise_scores(features: np.ndarray, task_spaces: list[dict[int, SpaceStats]],
                    more_views: list[tuple[np.ndarray, list[dict[int, SpaceStats]]]] = ()
                    ) -> np.ndarray:
    """A round robin of tasks [T, n]: every pair (s, t) is decided in the latest space both
    are modelled in, by the probability that a two-model Bayes classifier with equal priors
    gives t, sigmoid(log p_t(h) - log p_s(h)); a task's score is the sum over its T - 1
    matches. Where likelihoods differ by a few nats this is the count of matches won, and
    close matches break the ties. features [T, n, d]: sub-network j's features of each sample
    at features[j]. more_views: (features, task_spaces) of the samples' other views (label
    augmentation), each modelled by statistics of that view; a task's log-likelihood is then
    the mean over the views of each view's, one number of the same space still."""
    tasks, n = len(task_spaces), features.shape[1]
    views = [(features, task_spaces), *more_views]
    cache: dict[tuple[int, int], np.ndarray] = {}

    def ll(space: int, task: int) -> np.ndarray:
        if (space, task) not in cache:
            cache[space, task] = np.mean([log_likelihood(f[space], spaces[task][space])
                                          for f, spaces in views], axis=0)
        return cache[space, task]

    scores = np.zeros((tasks, n))
    for t in range(tasks):
        for s in range(t):
            space = pair_space(task_spaces[s], task_spaces[t])
            if space is None:
                raise SpaceStatsError(f"tasks {s} and {t} share no feature space")
            won = 0.5 * (1.0 + np.tanh(0.5 * (ll(space, t) - ll(space, s))))
            scores[t] += won
            scores[s] += 1.0 - won
    return scores
