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

from mind_core.gaussians import (  # noqa: F401  (oas_covariance, whitening re-exported)
    CALIBRATION_FRACTION,
    as_stored,
    class_means,
    held_out_split,
    min_distance,
    oas_covariance,
    whitening,
)
from mind_core.numerics import log_softmax
from mind_core.spaces import (
    SpaceStats,
    SpaceStatsError,
    fit_space_stats,
    has_spaces,
    pairwise_scores,
    space_ids,
)

CALIBRATION_SAMPLES = 25
"""Fewest held-out distances the calibration numbers are estimated from. The standard
deviation s of k log distances has a relative standard error of about 1/sqrt(2(k - 1)): 14 %
at 25. A task whose held-out slice is smaller (under 123 samples) is cross-fitted
instead, so that every one of its samples gives a held-out distance (docs/routing.md)."""

MIN_SAMPLES = 10
"""Fewest training samples of a task that routing statistics are fitted from: cross-fitted,
10 samples give 10 held-out distances, a spread within about 24 % (one standard error) where
a 2-sample held-out slice could be off a hundredfold."""


class RoutingError(ValueError):
    """A routing rule cannot run: unknown name, or statistics missing or malformed."""


@attrs.frozen(kw_only=True, eq=False)
class TaskStats:
    """Feature statistics of sub-network t on task t's training data (docs/routing.md).

    means: [c, d] class means; whiten: [d, d] W with W W^T = inverse of the shrunk tied
    covariance, so a squared Mahalanobis distance is a squared Euclidean one after x @ W;
    calibration: [4] mean and std of the minimum squared distance, and of its logarithm, on
    the held-out slice of the task's training data (cross-fitted where the slice is small,
    fit_task_stats); spaces: the task's statistics in other
    sub-networks' feature spaces too, by sub-network (mind_core.spaces; empty where the run
    fits none); views: with label augmentation (mind_core.views) and stats.views=all, the
    same spaces' statistics of the task's images in views 1..K-1, one dict per view (spaces
    holds view 0's, the images as they are).
    """

    means: np.ndarray
    whiten: np.ndarray
    calibration: np.ndarray
    spaces: dict[int, SpaceStats] = attrs.field(factory=dict)
    views: tuple[dict[int, SpaceStats], ...] = attrs.field(default=(), converter=tuple)

    ARRAYS = ("means", "whiten", "calibration")
    SPACE = "space"  # tensors of a space: space/<sub-network>/<name>
    VIEW = "view"  # tensors of another view's space: view/<k>/space/<sub-network>/<name>

    def arrays(self) -> dict[str, np.ndarray]:
        out = {name: getattr(self, name) for name in self.ARRAYS}
        for k, spaces in enumerate((self.spaces, *self.views)):
            prefix = "" if k == 0 else f"{self.VIEW}/{k}/"
            for space, stats in sorted(spaces.items()):
                out.update({f"{prefix}{self.SPACE}/{space}/{name}": v
                            for name, v in stats.arrays().items()})
        return out

    @property
    def view_spaces(self) -> list[dict[int, SpaceStats]]:
        """Every view's spaces, view 0 (the images as they are) first."""
        return [self.spaces, *self.views]

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], where: str = "statistics") -> TaskStats:
        """Checked: shapes that fit together and finite values; errors name the tensor."""
        own = {k: v for k, v in arrays.items()
               if not k.startswith((cls.SPACE + "/", cls.VIEW + "/"))}
        spaces = _spaces_from_arrays(arrays, where, cls.SPACE)
        views = _views_from_arrays(arrays, where, cls.VIEW, cls.SPACE)
        missing = [name for name in cls.ARRAYS if name not in arrays]
        if missing:
            raise RoutingError(f"{where}: missing tensor {missing[0]!r}")
        means, whiten, calibration = (np.asarray(own[n], np.float64) for n in cls.ARRAYS)
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
        if any(space.means.shape[1] != means.shape[1]
               for view in (spaces, *views) for space in view.values()):
            raise RoutingError(f"{where}: its spaces' features are not {means.shape[1]}-wide")
        for k, view in enumerate(views, start=1):
            if sorted(view) != sorted(spaces):
                raise RoutingError(f"{where}: view {k} has spaces {sorted(view)} but view 0 "
                                   f"has {sorted(spaces)}")
        return cls(means=means, whiten=whiten, calibration=calibration, spaces=spaces,
                   views=views)

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])


def _spaces_from_arrays(arrays: dict[str, np.ndarray], where: str, prefix: str
                        ) -> dict[int, SpaceStats]:
    grouped: dict[int, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        if key.startswith(prefix + "/"):
            index, _, name = key[len(prefix) + 1:].partition("/")
            if not index.isdigit() or str(int(index)) != index:
                raise RoutingError(f"{where}: tensor {key!r} has no sub-network number")
            grouped.setdefault(int(index), {})[name] = value
    try:
        return {space: SpaceStats.from_arrays(group, f"{where}/{prefix}/{space}")
                for space, group in sorted(grouped.items())}
    except SpaceStatsError as exc:
        raise RoutingError(str(exc)) from None


def _views_from_arrays(arrays: dict[str, np.ndarray], where: str, prefix: str, space: str
                       ) -> list[dict[int, SpaceStats]]:
    """Views 1..K-1 of view/<k>/space/<j>/<name>, numbered without gaps."""
    grouped: dict[int, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        if key.startswith(prefix + "/"):
            index, _, rest = key[len(prefix) + 1:].partition("/")
            if not index.isdigit() or str(int(index)) != index or int(index) == 0:
                raise RoutingError(f"{where}: tensor {key!r} has no view number >= 1")
            grouped.setdefault(int(index), {})[rest] = value
    if sorted(grouped) != list(range(1, len(grouped) + 1)):
        raise RoutingError(f"{where}: views {sorted(grouped)} are not numbered 1..{len(grouped)}")
    return [_spaces_from_arrays(grouped[k], f"{where}/{prefix}/{k}", space)
            for k in sorted(grouped)]


# --------------------------------------------------------------------------- fitting
def fit_task_stats(features: np.ndarray, labels: np.ndarray, class_range: tuple[int, int],
                   seed: int) -> TaskStats:
    """Statistics of one sub-network's features [n, d] on its own task's training data.

    A seeded CALIBRATION_FRACTION of the samples is held out of the fit: the network was
    trained on all of them, but distances of the samples that fitted the means and covariance
    are smaller still, so the calibration numbers come from the held-out slice, or, where it
    holds fewer than CALIBRATION_SAMPLES, from cross-fitted distances of every sample."""
    features = np.asarray(features, np.float64)
    lo, hi = class_range
    local = np.asarray(labels, np.int64) - lo
    if len(features) != len(local) or features.ndim != 2:
        raise ValueError(f"features {features.shape} and labels {local.shape} do not match")
    if len(features) < MIN_SAMPLES:
        raise ValueError(f"{len(features)} samples are too few to fit routing statistics "
                         f"(at least {MIN_SAMPLES})")
    calib, fit = held_out_split(len(features), seed)
    means = as_stored(class_means(features[fit], local[fit], hi - lo))
    whiten = as_stored(whitening(oas_covariance(features[fit] - means[local[fit]])))
    if len(calib) >= CALIBRATION_SAMPLES:
        distance = min_distance(features[calib], means, whiten)
    else:
        distance = cross_fitted_distances(features, local, hi - lo, np.concatenate([calib, fit]))
    log_distance = np.log(distance + 1e-12)
    calibration = as_stored(np.array([distance.mean(), max(distance.std(), 1e-12),
                                      log_distance.mean(), max(log_distance.std(), 1e-12)]))
    return TaskStats(means=means, whiten=whiten, calibration=calibration)


def cross_fitted_distances(features: np.ndarray, local: np.ndarray, classes: int,
                           order: np.ndarray) -> np.ndarray:
    """Held-out distance of every sample [n]: `order` (the held-out split's permutation) cut
    into 1 / CALIBRATION_FRACTION folds, each scored by means and covariance fitted on the
    others. For tasks too small for a held-out slice of CALIBRATION_SAMPLES: each fold's fit
    has the size of the stored one, so its distances are distributed as the stored fit's
    distances of unseen samples are."""
    out = np.empty(len(features))
    for held in np.array_split(order, round(1 / CALIBRATION_FRACTION)):
        rest = np.setdiff1d(order, held)
        means = class_means(features[rest], local[rest], classes)
        whiten = whitening(oas_covariance(features[rest] - means[local[rest]]))
        out[held] = min_distance(features[held], means, whiten)
    return out


def fit_stats(features: np.ndarray, spaces: list[int], task: int, labels: np.ndarray,
              class_range: tuple[int, int], seed: int, fit_spaces: int,
              covariance: str = "per_class", transform: str = "fecam") -> TaskStats:
    """A task's statistics from its training features in several sub-networks' spaces
    ([len(spaces), n, d], in the order of `spaces`, which holds the task's own; or
    [views, len(spaces), n, d] with the images as they are first): its own-space TaskStats
    (of view 0), with SpaceStats (covariance, transform: the settings stats.*) in each space
    of space_ids(task, fit_spaces), for each view."""
    features = np.asarray(features)
    by_view = features if features.ndim == 4 else features[None]
    own = fit_task_stats(dict(zip(spaces, by_view[0], strict=True))[task], labels,
                         class_range, seed)
    fitted = []
    for view in by_view:
        by_space = dict(zip(spaces, view, strict=True))
        fitted.append({j: fit_space_stats(by_space[j], labels, class_range, seed, covariance,
                                          transform)
                       for j in space_ids(task, fit_spaces)})
    return attrs.evolve(own, spaces=fitted[0], views=fitted[1:])


# --------------------------------------------------------------------------- rules
@attrs.frozen(kw_only=True)
class RoutingInputs:
    """What the rules read: logits [T, n, c] (each sub-network over its own classes),
    optionally features [T, n, d] and one TaskStats per sub-network."""

    logits: np.ndarray
    temperature: float
    features: np.ndarray | None = None
    stats: list[TaskStats] | None = None
    # The features of the samples' other views [K-1, T, n, d] (label augmentation, view 1 on):
    # `pairwise` reads those the statistics model too (TaskStats.views).
    more_views: np.ndarray | None = None

    @classmethod
    def of_views(cls, logits: np.ndarray, temperature: float, features: np.ndarray | None,
                 stats: list[TaskStats] | None) -> RoutingInputs:
        """features [T, n, d], or [views, T, n, d] with the images as they are first."""
        if features is not None and np.ndim(features) == 4:
            more = features[1:] if len(features) > 1 else None
            return cls(logits=logits, temperature=temperature, features=features[0],
                       stats=stats, more_views=more)
        return cls(logits=logits, temperature=temperature, features=features, stats=stats)


NEEDS = ("logits", "stats", "spaces")
"""What a rule reads: the logits alone; also features and each task's statistics in its own
sub-network; also each task's statistics in other sub-networks' spaces (mind_core.spaces)."""


@attrs.frozen(kw_only=True)
class Rule:
    name: str
    needs: str  # one of NEEDS
    summary: str
    route: Callable[[RoutingInputs], np.ndarray]  # -> routed task per sample, int [n]

    @property
    def needs_stats(self) -> bool:
        return self.needs != "logits"


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


def _route_pairwise(inputs: RoutingInputs) -> np.ndarray:
    if inputs.features is None or not inputs.stats or not stats_support(inputs.stats, "spaces"):
        raise RoutingError("this rule needs every task's statistics in the spaces it shares "
                           "with the others")
    modelled = min(len(s.views) for s in inputs.stats)
    given = 0 if inputs.more_views is None else len(inputs.more_views)
    more = [(inputs.more_views[k], [s.views[k] for s in inputs.stats])
            for k in range(min(modelled, given))]
    return _argmax(pairwise_scores(inputs.features, [s.spaces for s in inputs.stats], more))


RULES: dict[str, Rule] = {rule.name: rule for rule in (
    Rule(name="max_prob", needs="logits",
         summary="highest max softmax(logits / T) (the paper's rule)",
         route=lambda i: _argmax(_confidence(i))),
    Rule(name="entropy", needs="logits",
         summary="of the two most confident tasks, the lower entropy (the paper's alternative)",
         route=_route_entropy),
    Rule(name="max_logit", needs="logits", summary="highest maximum logit",
         route=lambda i: _argmax(i.logits.max(axis=-1))),
    Rule(name="energy", needs="logits", summary="highest T * logsumexp(logits / T)",
         route=lambda i: _argmax(_energy(i))),
    Rule(name="mahalanobis", needs="stats",
         summary="lowest standardised distance to the nearest class mean (feature statistics)",
         route=lambda i: _argmax(-standardised_distances(i))),
    Rule(name="pairwise", needs="spaces",
         summary="round robin of task pairs, each decided by likelihoods in a space both share",
         route=_route_pairwise),
)}
ROUTINGS = tuple(RULES)
# The paper's rule, and so the one a run routed with when its files name none (runs made
# before the rule was recorded).
PAPER_RULE = "max_prob"
SCORE_ONLY = tuple(name for name, rule in RULES.items() if rule.needs == "logits")


def stats_support(stats: list[TaskStats] | None, needs: str) -> bool:
    """Whether a run's statistics (one TaskStats per task, or None) give a rule what it needs."""
    if needs == "logits":
        return True
    if not stats:
        return False
    return needs == "stats" or has_spaces([s.spaces for s in stats])


def check_rule(name: str) -> Rule:
    if name not in RULES:
        raise RoutingError(f"inference.routing must be one of {', '.join(ROUTINGS)}; "
                           f"got {name!r}")
    return RULES[name]


def route(name: str, inputs: RoutingInputs) -> np.ndarray:
    rule = check_rule(name)
    if rule.needs_stats and (inputs.features is None
                             or not stats_support(inputs.stats, rule.needs)):
        raise RoutingError(f"routing rule {name!r} needs {MISSING[rule.needs]}, "
                           "which this run's checkpoints do not hold")
    return np.asarray(rule.route(inputs), dtype=np.int64)


MISSING = {"stats": "per-task feature statistics",
           "spaces": "every task's statistics in every sub-network's feature space (stats.spaces)"}
"""What a rule lacks when a run's checkpoints do not give it what it needs."""

WHY_MISSING = {
    "logits": "the run did not score it (it was made before the rule existed)",
    "stats": "the run's checkpoints hold no routing statistics (it was made before they were "
             "recorded; `mind eval RUN --refit-stats` fits them from its training data)",
    "spaces": "the run's checkpoints hold each task's statistics in its own sub-network only "
              "(stats.spaces was 0, or it was made before statistics in every sub-network; "
              "`mind eval RUN --refit-stats --set stats.spaces=16` fits them from its "
              "training data)"}
"""Why a finished run cannot score a rule, by what the rule needs: one line for the user."""


def why_unavailable(names: list[str]) -> str:
    """One line naming the rules a run cannot score and why, e.g. for `mind eval`."""
    # Without own-space statistics a run has none at all, whatever else a rule needs.
    none_at_all = any(RULES[name].needs == "stats" for name in names)
    groups: dict[str, list[str]] = {}
    for name in names:
        needs = "stats" if none_at_all and RULES[name].needs_stats else RULES[name].needs
        groups.setdefault(needs, []).append(name)
    return "; ".join(f"{', '.join(rules)} unavailable: {WHY_MISSING[needs]}"
                     for needs, rules in groups.items())


def available(stats: list[TaskStats] | None) -> tuple[str, ...]:
    """The rules a run's statistics (one TaskStats per task, or None) let it score."""
    return tuple(name for name, rule in RULES.items() if stats_support(stats, rule.needs))


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
