"""Per-task feature statistics, what the statistics routing rules read (mind_core.routing;
the formulas: docs/routing.md).

`TaskStats` holds a task's statistics as a checkpoint stores them (read back checked,
`TaskStats.from_arrays`); `fit_task_stats` and `fit_stats` fit them at the end of each task
while its training data is at hand (replay-free: class means, one whitening matrix and four
calibration numbers per task, no samples; with stats.spaces, the task's statistics in other
sub-networks' spaces too, mind_core.spaces).
"""

from __future__ import annotations

import attrs
import numpy as np

from mind_core.gaussians import (
    CALIBRATION_FRACTION,
    as_stored,
    class_means,
    held_out_split,
    min_distance,
    oas_covariance,
    whitening,
)
from mind_core.spaces import SpaceStats, SpaceStatsError, fit_space_stats, space_ids

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
