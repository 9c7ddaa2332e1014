"""Routing statistics of a finished run fitted again from its training data, exactly as the
engine fits them at the end of each task.

Sub-network j is frozen bit for bit after task j (weights, ownership, BN snapshot), so task
t's training data seen through sub-networks 0..t of the *last* checkpoint gives the features
the engine saw at the end of task t, and the same seeded fit gives the same statistics. This
lets a run made with fewer statistics (`stats.spaces = 0`, or before statistics in every
sub-network existed) be scored by every rule without retraining
(`benchmarks/routing_spaces.py`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from mind_core import checkpoint
from mind_core.evaluation import evaluate_task, subnets_for
from mind_core.metrics import Evaluation
from mind_core.plan import Plan, derive_seed, model_spec
from mind_core.registry import get_backend
from mind_core.routing import MIN_SAMPLES, TaskStats, fit_stats
from mind_core.runner import finished_tasks, load_dataset, read_run_config, trusted_backend
from mind_core.schedule import make_tasks
from mind_core.spaces import space_ids


@attrs.define(kw_only=True)
class LoadedRun:
    """A finished run's last checkpoint in a model, with its data and tasks."""

    cfg: Any
    backend: Any
    model: Any
    ckpt: checkpoint.Checkpoint
    dataset: Any
    tasks: list
    plan: Plan
    features: dict = attrs.Factory(dict)  # (task, spaces) -> training_features' result


def load_run(run_dir: Path, backend_name: str | None = None, device: str = "cpu",
             load: Callable = load_dataset) -> LoadedRun:
    """backend_name: a module:Class backend must be named again (runner.trusted_backend);
    load: the dataset loader (tests pass their own data)."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    backend_name = trusted_backend(cfg, run_dir, backend_name, "eval")
    paths, (ckpt,) = finished_tasks(run_dir, cfg, "refit", last_only=True)
    backend = get_backend(backend_name, device)
    dataset = load(cfg.dataset, cfg.data_dir or None)
    tasks = make_tasks(dataset, cfg.tasks, cfg.scenario, cfg.seed)[:len(paths)]
    model = backend.build_model(model_spec(cfg, dataset.image_shape, dataset.num_classes),
                                derive_seed(cfg.seed, "model"))
    checkpoint.check_fit(ckpt, paths[-1], {layer.name: layer.shape
                                           for layer in backend.layers(model)},
                         backend.get_bn(model), f"a {cfg.model} model")
    backend.set_weights(model, ckpt.weights)
    return LoadedRun(cfg=cfg, backend=backend, model=model, ckpt=ckpt, dataset=dataset,
                     tasks=tasks, plan=Plan.from_config(cfg))


def training_features(run: LoadedRun, t: int, spaces: list[int]):
    """Task t's training data through sub-networks `spaces` (each <= t) as they were at the
    end of task t, [len(spaces), n, d]: BN snapshots 0..t only, so bn=shared uses the newest
    snapshot it had then."""
    key = (t, tuple(spaces))
    if key in run.features:
        return run.features[key]
    task = run.tasks[t]
    ranges = [task.class_range for task in run.tasks[:t + 1]]
    at_end = subnets_for(run.ckpt.owner, run.ckpt.bn_snapshots[:t + 1], run.plan, ranges)
    _, features = run.backend.predict(run.model, task.x_train, [at_end[j] for j in spaces],
                                      run.cfg.inference.batch_size, run.dataset.mean,
                                      run.dataset.std, features=True)
    run.features[key] = features
    return features


def refit_stats(run: LoadedRun, spaces: int, covariance: str = "per_class",
                transform: str = "fecam") -> list[TaskStats]:
    """Every finished task's statistics, in its own space and in space_ids(t, spaces), from
    the last checkpoint: what a run with `stats.spaces = spaces` fitted at each task's end."""
    out = []
    for t, task in enumerate(run.tasks):
        if len(task.x_train) < MIN_SAMPLES:
            raise ValueError(f"task {t} has too few training samples to fit statistics")
        ids = sorted({*space_ids(t, spaces), t})
        out.append(fit_stats(training_features(run, t, ids), ids, t, task.y_train,
                             task.class_range, derive_seed(run.cfg.seed, "stats", t), spaces,
                             covariance, transform))
    return out


def evaluate_final(run: LoadedRun, stats: list[TaskStats]) -> Evaluation:
    """The last task's evaluation (every rule the statistics allow) with these statistics."""
    return evaluate_task(run.backend, run.model, run.tasks, run.ckpt.owner,
                         run.ckpt.bn_snapshots, run.plan, run.cfg, run.dataset, stats)
