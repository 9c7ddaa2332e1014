"""Routing statistics of a finished run fitted again from its training data, exactly as the
engine fits them at the end of each task.

Sub-network j is frozen bit for bit after task j (weights, ownership, BN snapshot), so task
t's training data seen through sub-networks 0..t of the *last* checkpoint gives the features
the engine saw at the end of task t, and the same seeded fit gives the same statistics. This
lets a run made with fewer statistics (`stats.spaces = 0`, or before statistics in every
sub-network existed) be scored by every rule without retraining
(`mind eval --refit-stats`, `benchmarks/routing_spaces.py`)."""

from __future__ import annotations

from typing import Any

import attrs

from mind_core import checkpoint
from mind_core.evaluation import subnets_for
from mind_core.plan import Plan, derive_seed
from mind_core.spaces import space_ids
from mind_core.task_stats import MIN_SAMPLES, TaskStats, fit_stats
from mind_core.views import Views


@attrs.define(kw_only=True)
class LoadedRun:
    """A finished run's last checkpoint in a model, with its data and its finished tasks."""

    cfg: Any
    backend: Any
    model: Any
    ckpt: checkpoint.Checkpoint
    dataset: Any
    tasks: list
    plan: Plan
    features: dict = attrs.Factory(dict)  # (task, spaces) -> training_features' result


def training_features(run: LoadedRun, t: int, spaces: list[int], views: str = "image"):
    """Task t's training data through sub-networks `spaces` (each <= t) as they were at the
    end of task t, [len(spaces), n, d]: BN snapshots 0..t only, so bn=shared uses the newest
    snapshot it had then."""
    key = (t, tuple(spaces), views)
    if key in run.features:
        return run.features[key]
    task = run.tasks[t]
    ranges = [task.class_range for task in run.tasks[:t + 1]]
    at_end = subnets_for(run.ckpt.owner, run.ckpt.bn_snapshots[:t + 1], run.plan, ranges)
    features = Views.from_config(run.cfg).features(
        run.backend, run.model, task.x_train, [at_end[j] for j in spaces],
        run.cfg.inference.batch_size, run.dataset.mean, run.dataset.std, views)
    run.features[key] = features
    return features


def refit_stats(run: LoadedRun, spaces: int | None = None, covariance: str | None = None,
                transform: str | None = None, views: str | None = None) -> list[TaskStats]:
    """Every finished task's statistics, in its own space and in space_ids(t, spaces), from
    the last checkpoint: what a run with these stats.* settings (the run's own where None)
    fitted at each task's end."""
    own = run.cfg.stats
    spaces = own.spaces if spaces is None else spaces
    covariance, transform = covariance or own.covariance, transform or own.transform
    views = views or own.views
    out = []
    for t, task in enumerate(run.tasks):
        if len(task.x_train) < MIN_SAMPLES:
            raise ValueError(f"task {t} has too few training samples to fit statistics")
        ids = sorted({*space_ids(t, spaces), t})
        out.append(fit_stats(training_features(run, t, ids, views), ids, t, task.y_train,
                             task.class_range, derive_seed(run.cfg.seed, "stats", t), spaces,
                             covariance, transform))
    return out
