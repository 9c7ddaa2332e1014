"""Task routing: which sub-network answers a sample when its task is not known (TAg).

Every rule turns what the sub-networks computed for a batch (their logits over their own
classes and, for the statistics rules, their penultimate features) into one routed task per
sample. Rules that need per-task feature statistics read them from `TaskStats`, fitted by
`fit_task_stats` at the end of each task while its training data is at hand (replay-free:
class means, one whitening matrix and four calibration numbers per task, no samples).
The formulas are in docs/routing.md; this module is their one implementation.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import numpy as np

from mind_core.numerics import log_softmax

CALIBRATION_FRACTION = 0.2
"""Share of a task's training samples held out of the statistics fit to calibrate its scores
(the rest fits the class means and covariance)."""


MIN_SAMPLES = 10
"""Fewest training samples of a task that routing statistics are fitted from (the held-out
slice needs at least two)."""


class RoutingError(ValueError):
    """A routing rule cannot run: unknown name, or statistics missing or malformed."""


@attrs.frozen(kw_only=True, eq=False)
class TaskStats:
    """Feature statistics of sub-network t on task t's training data (docs/routing.md).

    means: [c, d] class means; whiten: [d, d] W with W W^T = inverse of the shrunk tied
    covariance, so a squared Mahalanobis distance is a squared Euclidean one after x @ W;
    calibration: [4] mean and std of the minimum squared distance, and of its logarithm, on
    the held-out slice of the task's training data.
    """

    means: np.ndarray
    whiten: np.ndarray
    calibration: np.ndarray

    ARRAYS = ("means", "whiten", "calibration")

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.ARRAYS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], where: str = "statistics") -> TaskStats:
        """Checked: shapes that fit together and finite values; errors name the tensor."""
        missing = [name for name in cls.ARRAYS if name not in arrays]
        if missing:
            raise RoutingError(f"{where}: missing tensor {missing[0]!r}")
        means, whiten, calibration = (np.asarray(arrays[n], np.float64) for n in cls.ARRAYS)
        shapes_ok = (means.ndim == 2 and whiten.shape == (means.shape[1],) * 2
                     and calibration.shape == (4,) and means.shape[0] > 0)
        if not shapes_ok:
            raise RoutingError(
                f"{where}: tensors of the wrong shape (means {means.shape}, whiten "
                f"{whiten.shape}, calibration {calibration.shape}; expected [c, d], [d, d], [4])")
        for name, value in zip(cls.ARRAYS, (means, whiten, calibration), strict=True):
            if not np.all(np.isfinite(value)):
                raise RoutingError(f"{where}: tensor {name!r} holds non-finite values")
        if calibration[1] <= 0 or calibration[3] <= 0:
            raise RoutingError(f"{where}: tensor 'calibration' has a non-positive spread")
        return cls(means=means, whiten=whiten, calibration=calibration)

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])


# --------------------------------------------------------------------------- fitting
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


def fit_task_stats(features: np.ndarray, labels: np.ndarray, class_range: tuple[int, int],
                   seed: int) -> TaskStats:
    """Statistics of one sub-network's features [n, d] on its own task's training data.

    A seeded CALIBRATION_FRACTION of the samples is held out of the fit: the network was
    trained on all of them, but distances of the samples that fitted the means and covariance
    are smaller still, so the calibration numbers come from the held-out slice."""
    features = np.asarray(features, np.float64)
    lo, hi = class_range
    local = np.asarray(labels, np.int64) - lo
    if len(features) != len(local) or features.ndim != 2:
        raise ValueError(f"features {features.shape} and labels {local.shape} do not match")
    order = np.random.default_rng(seed).permutation(len(features))
    calib_count = int(round(len(order) * CALIBRATION_FRACTION))
    calib, fit = order[:calib_count], order[calib_count:]
    classes = hi - lo
    if len(features) < MIN_SAMPLES:
        raise ValueError(f"{len(features)} samples are too few to fit routing statistics "
                         f"(at least {MIN_SAMPLES})")
    means = np.zeros((classes, features.shape[1]))
    present = np.zeros(classes, bool)
    for c in range(classes):
        rows = features[fit][local[fit] == c]
        if len(rows):
            means[c], present[c] = rows.mean(axis=0), True
    if not present.all():  # a class with no fit sample: use the overall mean for it
        means[~present] = features[fit].mean(axis=0)
    centered = features[fit] - means[local[fit]]
    whiten = whitening(oas_covariance(centered))
    distance = min_distance(features[calib], means, whiten)
    log_distance = np.log(distance + 1e-12)
    calibration = np.array([distance.mean(), max(distance.std(), 1e-12),
                            log_distance.mean(), max(log_distance.std(), 1e-12)])
    return TaskStats(means=means, whiten=whiten, calibration=calibration)


def min_distance(features: np.ndarray, means: np.ndarray, whiten: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of each row to its nearest class mean, [n]."""
    z = np.asarray(features, np.float64) @ whiten
    m = means @ whiten
    squared = (z ** 2).sum(1)[:, None] - 2.0 * z @ m.T + (m ** 2).sum(1)[None, :]
    return np.maximum(squared.min(axis=1), 0.0)


# --------------------------------------------------------------------------- rules
@attrs.frozen(kw_only=True)
class RoutingInputs:
    """What the rules read: logits [T, n, c] (each sub-network over its own classes),
    optionally features [T, n, d] and one TaskStats per sub-network."""

    logits: np.ndarray
    temperature: float
    features: np.ndarray | None = None
    stats: list[TaskStats] | None = None


@attrs.frozen(kw_only=True)
class Rule:
    name: str
    needs_stats: bool
    summary: str
    route: Callable[[RoutingInputs], np.ndarray]  # -> routed task per sample, int [n]


def _argmax(scores: np.ndarray) -> np.ndarray:
    """Highest score over tasks (axis 0); ties go to the lower task id."""
    return scores.argmax(axis=0)


def _confidence(inputs: RoutingInputs) -> np.ndarray:
    return log_softmax(inputs.logits / inputs.temperature).max(axis=-1)


def _route_entropy(inputs: RoutingInputs) -> np.ndarray:
    """Of the two most confident tasks per sample, the one with lower entropy."""
    confidence = _confidence(inputs)
    if confidence.shape[0] == 1:
        return np.zeros(confidence.shape[1], dtype=np.int64)
    log_p = log_softmax(inputs.logits / inputs.temperature)
    entropy = -(np.exp(log_p) * log_p).sum(axis=-1)
    ranked = np.argsort(-confidence, axis=0, kind="stable")
    first, second = ranked[0], ranked[1]
    samples = np.arange(confidence.shape[1])
    # Strictly lower: at equal entropy the more confident task keeps the sample.
    take_second = entropy[second, samples] < entropy[first, samples]
    return np.where(take_second, second, first)


def _energy(inputs: RoutingInputs) -> np.ndarray:
    scaled = inputs.logits / inputs.temperature
    top = scaled.max(axis=-1)
    return inputs.temperature * (top + np.log(np.exp(scaled - top[..., None]).sum(axis=-1)))


def standardised_distances(inputs: RoutingInputs) -> np.ndarray:
    """z_j = (log d_j - m_j) / s_j per task and sample [T, n]: how far beyond its own task's
    typical distance a sample lies, comparable across sub-networks."""
    if inputs.features is None or inputs.stats is None:
        raise RoutingError("this rule needs features and per-task statistics")
    out = np.empty(inputs.features.shape[:2])
    for j, stats in enumerate(inputs.stats):
        distance = min_distance(inputs.features[j], stats.means, stats.whiten)
        out[j] = (np.log(distance + 1e-12) - stats.calibration[2]) / stats.calibration[3]
    return out


RULES: dict[str, Rule] = {rule.name: rule for rule in (
    Rule(name="max_prob", needs_stats=False,
         summary="highest max softmax(logits / T) (the paper's rule)",
         route=lambda i: _argmax(_confidence(i))),
    Rule(name="entropy", needs_stats=False,
         summary="of the two most confident tasks, the lower entropy (the paper's alternative)",
         route=_route_entropy),
    Rule(name="max_logit", needs_stats=False, summary="highest maximum logit",
         route=lambda i: _argmax(i.logits.max(axis=-1))),
    Rule(name="energy", needs_stats=False, summary="highest T * logsumexp(logits / T)",
         route=lambda i: _argmax(_energy(i))),
    Rule(name="mahalanobis", needs_stats=True,
         summary="lowest standardised distance to the nearest class mean (feature statistics)",
         route=lambda i: _argmax(-standardised_distances(i))),
)}
ROUTINGS = tuple(RULES)
# The paper's rule, and so the one a run routed with when its files name none (runs made
# before the rule was recorded).
PAPER_RULE = "max_prob"
SCORE_ONLY = tuple(name for name, rule in RULES.items() if not rule.needs_stats)


def check_rule(name: str) -> Rule:
    if name not in RULES:
        raise RoutingError(f"inference.routing must be one of {', '.join(ROUTINGS)}; "
                           f"got {name!r}")
    return RULES[name]


def route(name: str, inputs: RoutingInputs) -> np.ndarray:
    rule = check_rule(name)
    if rule.needs_stats and (inputs.stats is None or inputs.features is None):
        raise RoutingError(f"routing rule {name!r} needs per-task feature statistics, "
                           "which this run's checkpoints do not hold")
    return np.asarray(rule.route(inputs), dtype=np.int64)


def available(has_stats: bool) -> tuple[str, ...]:
    return ROUTINGS if has_stats else SCORE_ONLY


def unavailable_rules(scored: dict) -> list[str]:
    """The rules an evaluation could not score (it had no statistics), in registry order."""
    return [name for name in ROUTINGS if name not in scored]


def check_enough_samples(rule: str, samples_per_task: list[int]) -> None:
    """A rule that needs statistics cannot route a run with a task too small to fit them."""
    smallest = min(samples_per_task, default=MIN_SAMPLES)
    if check_rule(rule).needs_stats and smallest < MIN_SAMPLES:
        task = samples_per_task.index(smallest)
        raise RoutingError(f"{rule} needs at least {MIN_SAMPLES} training "
                           f"samples per task to fit its statistics, task {task} has "
                           f"{smallest}: choose one of {', '.join(SCORE_ONLY)}")
