"""Run directories: start a run, resume one, re-evaluate one. Used by the CLI and benchmarks."""

from __future__ import annotations

import json
import platform
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from mind_core import __version__, checkpoint
from mind_core.config import (
    ALIASES,
    ConfigError,
    RunConfig,
    build_config,
    config_from_dict,
    config_to_dict,
    flatten,
)
from mind_core.engine import Engine
from mind_core.evaluation import History, evaluate_task
from mind_core.events import write_json_atomic
from mind_core.plan import Plan, derive_seed, model_spec
from mind_core.registry import get_backend
from mind_core.routing import check_rule
from mind_core.schedule import make_tasks


def load_dataset(name: str, data_dir: str | None = None):
    from mind_core.data import load_dataset as load

    return load(name, data_dir)


class RunDirError(Exception):
    """A run directory is missing, incomplete or in the wrong state for the command."""


def default_run_dir(cfg: RunConfig, root: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backend = re.sub(r"[^A-Za-z0-9_-]+", "_", cfg.backend.split(":")[-1])
    base = root / f"{cfg.name or 'run'}-{backend}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def prepare_run_dir(run_dir: Path, cfg: RunConfig, versions: dict[str, str]) -> None:
    if (run_dir / "config.json").exists():
        raise RunDirError(f"{run_dir} already holds a run; continue it with `mind resume "
                          f"{run_dir}` or choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "config.json", {
        "name": run_dir.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": config_to_dict(cfg),
        "versions": {"mind": __version__, "python": platform.python_version(),
                     "numpy": np.__version__, **versions}})


def read_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        raise RunDirError(f"no run directory at {run_dir}")
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a run directory (no config.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return config_from_dict(data["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RunDirError(f"{path} is unreadable ({exc})") from None
    except ConfigError as exc:
        raise RunDirError(f"{path} holds an invalid config: {exc}") from None


def start_run(cfg: RunConfig, run_dir: Path, observers: list[Callable] | None = None,
              should_stop: Callable[[], bool] | None = None,
              load: Callable = load_dataset) -> dict[str, Any]:
    run_dir = Path(run_dir)
    backend = get_backend(cfg.backend, cfg.device)
    dataset = load(cfg.dataset, cfg.data_dir or None)
    engine = Engine(cfg, backend, dataset, run_dir, observers, should_stop)  # validates first
    prepare_run_dir(run_dir, cfg, {"backend": backend.name, "device": backend.device,
                                   **backend.versions()})
    return engine.run()


def resume_run(run_dir: Path, observers: list[Callable] | None = None,
               should_stop: Callable[[], bool] | None = None,
               load: Callable = load_dataset) -> dict[str, Any]:
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    resume_path = run_dir / "checkpoint" / "resume.safetensors"
    if not resume_path.exists():
        raise RunDirError(f"{run_dir} has no resume checkpoint yet: start it again with "
                          "`mind run` (it stopped before its first epoch ended)")
    ckpt = checkpoint.load(resume_path)
    if ckpt.state.get("task", 0) >= cfg.tasks:
        raise RunDirError(f"{run_dir} has already finished all {cfg.tasks} tasks")
    stop_file = run_dir / "STOP"
    if stop_file.exists():
        stop_file.unlink()
    backend = get_backend(cfg.backend, cfg.device)
    engine = Engine(cfg, backend, load(cfg.dataset, cfg.data_dir or None), run_dir,
                    observers, should_stop)
    engine.restore(ckpt)
    return engine.run(resumed=True)


def task_checkpoints(run_dir: Path) -> list[Path]:
    found = sorted((run_dir / "checkpoint").glob("task-*.safetensors"),
                   key=lambda p: int(p.stem.split("-")[1]))
    return [p for i, p in enumerate(found) if p.stem == f"task-{i}"]


STATS_MISSING = ("this run's checkpoints hold no routing statistics (it was made before they "
                 "were recorded): only the score-only rules can route it; train it again to "
                 "use the statistics rules")


def eval_config(cfg: RunConfig, overrides: Mapping[str, str] | None) -> RunConfig:
    """The run's config with inference settings changed for a re-evaluation; training
    settings cannot change without retraining, so any other key is refused."""
    if not overrides:
        return cfg
    for key in overrides:
        if not ALIASES.get(key, key).startswith("inference."):
            raise ConfigError(key, "only inference.* settings can change when re-evaluating "
                              "a trained run")
    return build_config({**flatten(config_to_dict(cfg)), **overrides})


def evaluate_run(run_dir: Path, backend_name: str | None = None, device: str | None = None,
                 load: Callable = load_dataset,
                 overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Re-evaluate every finished task from its checkpoint; returns metrics.json's shape.
    overrides: inference settings (routing rule, temperature) to evaluate with instead."""
    run_dir = Path(run_dir)
    cfg = eval_config(read_run_config(run_dir), overrides)
    paths = task_checkpoints(run_dir)
    if not paths:
        raise RunDirError(f"{run_dir} has no finished task to evaluate yet")
    checkpoints = [checkpoint.load(path) for path in paths]
    has_stats = all(len(c.stats) == t + 1 for t, c in enumerate(checkpoints))
    if check_rule(cfg.inference.routing).needs_stats and not has_stats:
        raise RunDirError(f"inference.routing={cfg.inference.routing} is unavailable for "
                          f"{run_dir}: {STATS_MISSING}")
    backend = get_backend(backend_name or cfg.backend, device or cfg.device)
    dataset = load(cfg.dataset, cfg.data_dir or None)
    tasks = make_tasks(dataset, cfg.tasks, cfg.scenario, cfg.seed)
    model = backend.build_model(model_spec(cfg, dataset.image_shape, dataset.num_classes),
                                derive_seed(cfg.seed, "model"))
    expected = {layer.name: layer.shape for layer in backend.layers(model)}
    history = History()
    for t, (path, ckpt) in enumerate(zip(paths, checkpoints, strict=True)):
        shapes = {k: tuple(v.shape) for k, v in ckpt.weights.items()}
        if shapes != expected:
            raise checkpoint.CheckpointError(f"{path} does not fit a {cfg.model} model for "
                                             f"{dataset.name}")
        backend.set_weights(model, ckpt.weights)
        evaluation = evaluate_task(backend, model, tasks[:t + 1], ckpt.owner,
                                   ckpt.bn_snapshots, Plan.from_config(cfg), cfg, dataset,
                                   ckpt.stats if has_stats else None)
        teachers = ckpt.state.get("teacher_taw", [])  # absent in runs made before it
        history.add(attrs.evolve(evaluation,
                                 teacher_taw=teachers[t] if len(teachers) > t else None))
    return history.metrics()
