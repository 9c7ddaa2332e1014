"""Run directories: start a run, resume one, re-evaluate one. Used by the CLI and benchmarks."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from mind_core import checkpoint
from mind_core.baselines import engine_class
from mind_core.checkpoint_match import check_fit, check_run
from mind_core.config import (
    ALIASES,
    FIELD_TYPES,
    ConfigError,
    RunConfig,
    build_config,
    config_from_dict,
    config_to_dict,
    flatten,
)
from mind_core.data.base import DatasetError
from mind_core.errors import short_repr
from mind_core.evaluation import History, evaluate_single_head, evaluate_task
from mind_core.events import write_json_atomic
from mind_core.network import CUSTOM_ARCH, NO_NETWORK, NetworkError
from mind_core.plan import Plan, derive_seed, model_spec
from mind_core.precision import backend_precision
from mind_core.protocol import Backend, thread_counts
from mind_core.refit import LoadedRun, refit_stats
from mind_core.registry import BACKENDS, BackendError, get_backend, vouched_backend
from mind_core.routing import check_rule, stats_support, why_unavailable
from mind_core.run_checkpoints import finished_tasks
from mind_core.run_data import check_same_data, data_facts
from mind_core.rundir import (
    CHECKPOINT_DIR,
    CONFIG,
    ERROR_LOG,
    EVENTS,
    LOCK_FILE,
    OUTPUT_LOG,
    RESUME_CHECKPOINT,
    STOP_FILE,
    TEMP_FILE,
    RunDirError,
    RunDirLock,
    in_use_message,
    is_locked,
    remove_stale_temp_files,
    remove_stop_file,
    run_dir_name,
    unused_run_dir,
)
from mind_core.schedule import make_tasks
from mind_core.version import __version__
from mind_core.views import Views


def load_dataset(name: str, data_dir: str | None = None):
    from mind_core.data import load_dataset as load

    return load(name, data_dir)


def default_run_dir(cfg: RunConfig, root: Path = Path("runs")) -> Path:
    """runs/<name>-<backend>-<time>, named as the TUI names the runs it starts."""
    return unused_run_dir(root, run_dir_name(cfg.name, cfg.backend))


# Files a new run may find in its --out: a launcher's log, a failed start's traceback, a stale
# STOP or lock (and temp files of a killed write, TEMP_FILE).
NEW_RUN_MAY_FIND = frozenset({OUTPUT_LOG, ERROR_LOG, STOP_FILE, LOCK_FILE})


def _saved_results(run_dir: Path) -> list[str]:
    """What a run has saved: its checkpoints, metrics and anything else of substance; empty
    for a run that stopped before its first checkpoint (config.json and events only)."""
    try:
        entries = sorted(p.name for p in run_dir.iterdir())
    except OSError:
        return []
    found = [n for n in entries if n not in NEW_RUN_MAY_FIND | {CONFIG, EVENTS, CHECKPOINT_DIR}
             and not TEMP_FILE.fullmatch(n)]
    ckpt = run_dir / CHECKPOINT_DIR
    if ckpt.is_dir():
        found += [f"{CHECKPOINT_DIR}/{p.name}" for p in sorted(ckpt.iterdir())
                  if not TEMP_FILE.fullmatch(p.name)]
    elif ckpt.exists():
        found.append(CHECKPOINT_DIR)
    return found


def _check_out_contents(run_dir: Path) -> None:
    """Refuse an --out that holds something other than this run's files: another run's
    results, or anything that is not a run's. A run that stopped before its first checkpoint
    (config.json, no checkpoint) may be started again in place."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise RunDirError(f"--out {run_dir} is a file, not a directory")
    saved = _saved_results(run_dir)
    if (run_dir / CONFIG).exists():
        if saved:
            raise RunDirError(f"{run_dir} already holds a run; continue it with `mind resume "
                              f"{run_dir}` or choose another --out")
        return
    if (run_dir / EVENTS).exists():
        saved.append(EVENTS)
    if saved:
        shown = ", ".join(sorted(saved)[:3]) + (", ..." if len(saved) > 3 else "")
        raise RunDirError(f"--out {run_dir} is not empty and holds no run ({shown}): choose a "
                          "new or empty directory")


def check_out_dir(run_dir: Path) -> None:
    """Whether a new run can use run_dir: refused when another process holds it, or it holds
    another run or other files. Creates nothing; run before loading data or a framework."""
    run_dir = Path(run_dir)
    if run_dir.is_dir() and is_locked(run_dir):
        raise RunDirError(in_use_message(run_dir))
    _check_out_contents(run_dir)


def _take_over(lock: RunDirLock) -> RunDirLock:
    """With the lock held (no other run can start, resume or write here): clear what a stopped
    or killed process left that would disturb this one."""
    remove_stale_temp_files(lock.run_dir)
    remove_stop_file(lock.run_dir)
    return lock


def prepare_run_dir(run_dir: Path, cfg: RunConfig, versions: dict[str, str],
                    data: dict[str, Any] | None = None, network: str | None = None,
                    threads: dict[str, int] | None = None) -> RunDirLock:
    """Create the run directory, lock it and write config.json; returns the held lock, which
    the caller keeps for the whole run. Checked again under the lock: two `mind run --out`
    started together cannot both pass. data: the dataset's facts (run_data.data_facts), so a run's
    predictions need only its directory; network: a user's network, described; threads: the
    backend's thread_counts (results on CPU depend on them)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunDirLock(run_dir).acquire()
    try:
        _check_out_contents(run_dir)
        _take_over(lock)
        write_json_atomic(run_dir / CONFIG, {
            "name": run_dir.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": config_to_dict(cfg),
            "versions": {"mind": __version__, "python": platform.python_version(),
                         "numpy": np.__version__, **versions},
            **({"threads": threads} if threads else {}),
            **({"data": data} if data else {}), **({"network": network} if network else {})})
    except BaseException:
        lock.release()
        raise
    return lock


def trusted_backend(cfg: RunConfig, run_dir: Path, given: str | None, command: str) -> str:
    """The backend to load for a saved run. A `module:Class` named only in the run's
    config.json is never imported (a run directory may come from anyone): the user names it
    again with --backend. A resumed run keeps the backend that wrote its optimiser state."""
    if command == "resume" and given and given != cfg.backend:
        advice = f"pass --backend {cfg.backend}" if cfg.backend not in BACKENDS \
            else "leave out --backend"
        raise BackendError(f"{run_dir} was trained with the backend {cfg.backend!r} and resumes "
                           f"only with it: {advice}")
    return given or vouched_backend(cfg.backend, None, f"{run_dir / CONFIG}",
                                    f"pass --backend {cfg.backend} to `mind {command}`")


def read_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / CONFIG
    if not Path(run_dir).is_dir():
        raise RunDirError(f"no run directory at {run_dir}")
    if not path.is_file():
        raise RunDirError(f"{run_dir} is not a run directory (no {CONFIG})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: not JSON, not UTF-8
        raise RunDirError(f"{path} is unreadable ({exc})") from None
    saved = data.get("config") if isinstance(data, dict) else None
    if not isinstance(saved, dict):
        raise RunDirError(f'{path} is unreadable (no "config" table of settings)')
    try:
        _check_saved_types(saved)
        return config_from_dict(saved)
    except (ConfigError, TypeError, ValueError, KeyError, AttributeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunDirError(f"{path} holds an invalid config: {message}") from None


# Settings every config.json has held since the first release: a default standing in for a
# missing one would silently describe another run than the checkpoints hold. Newer settings
# may be absent (runs made before them) and take their defaults.
SAVED_REQUIRED = ("backend", "dataset", "model", "seed", "tasks", "variant")


def _check_saved_types(saved: dict[str, Any]) -> None:
    """ConfigError for a missing SAVED_REQUIRED setting, a section that is not a table, or a
    text setting that is not a string (the validators check numbers, and names against their
    choices, but take any value for free text such as dataset or device)."""
    missing = [key for key in SAVED_REQUIRED if key not in saved]
    if missing:
        raise ConfigError(missing[0], "missing: a saved run's config names it")
    sections = {key.split(".")[0] for key in FIELD_TYPES if "." in key}
    for key, value in saved.items():
        if key in sections and not isinstance(value, dict):
            raise ConfigError(key, f"expected a table of settings, got {short_repr(value)}")
        if key not in sections and isinstance(value, dict):
            raise ConfigError(key, f"expected one value, got the table {short_repr(value)}")
    for key, value in flatten(saved).items():
        if FIELD_TYPES.get(key) is str and not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {short_repr(value)}")


def adopt(backend: Backend, network: Any, cfg: RunConfig, image_shape: tuple[int, int, int],
          num_classes: int) -> str | None:
    """Give the backend a user's network to build (model=custom); None without one."""
    if network is None:
        return None
    if cfg.model != CUSTOM_ARCH:
        raise ConfigError("model", f"a network was passed, so model must be {CUSTOM_ARCH!r}, "
                          f"not {cfg.model!r}")
    views = Views.from_config(cfg)  # label augmentation: a row per (class, view)
    try:
        return backend.adopt_network(network, tuple(image_shape),
                                     views.head_width(int(num_classes)))
    except NetworkError as exc:
        if views.count == 1:
            raise
        raise NetworkError(f"{exc} (label_aug.transform={views.transform} needs "
                           f"{views.count} outputs a class, one per view: {num_classes} "
                           f"classes x {views.count})") from None


def start_run(cfg: RunConfig, run_dir: Path, observers: list[Callable] | None = None,
              should_stop: Callable[[], bool] | None = None,
              load: Callable = load_dataset, network: Any = None,
              threads: int | None = None) -> dict[str, Any]:
    """Train a new run in run_dir. network: a user's own network (cfg.model == "custom");
    threads: the framework's intra-op threads (None: its default)."""
    run_dir = Path(run_dir)
    check_out_dir(run_dir)  # before the framework and the data: a wrong --out fails fast
    backend = get_backend(cfg.backend, cfg.device, threads, cfg.precision)
    dataset = load(cfg.dataset, cfg.data_dir or None)
    described = adopt(backend, network, cfg, dataset.image_shape, dataset.num_classes)
    engine = engine_class(cfg)(cfg, backend, dataset, run_dir, observers,
                               should_stop)  # validates first
    with prepare_run_dir(run_dir, cfg, {"backend": backend.name, "device": backend.device,
                                        "precision": backend_precision(backend),
                                        **backend.versions()}, data_facts(dataset), described,
                         thread_counts(backend)):
        return engine.run()


def resume_run(run_dir: Path, observers: list[Callable] | None = None,
               should_stop: Callable[[], bool] | None = None,
               load: Callable = load_dataset, backend: str | None = None,
               network: Any = None, threads: int | None = None) -> dict[str, Any]:
    """Continue a run from its resume checkpoint. backend: the name the user gave again
    (needed for a `module:Class` backend; see trusted_backend); network: the user's network
    of a model=custom run, given again; threads: as start_run's."""
    run_dir = Path(run_dir)
    read_run_config(run_dir)  # a run directory, before anything is created in it
    with RunDirLock(run_dir) as lock:  # held for the whole resumed run
        cfg = read_run_config(run_dir)
        backend_name = trusted_backend(cfg, run_dir, backend, "resume")
        resume_path = run_dir / CHECKPOINT_DIR / RESUME_CHECKPOINT
        if not resume_path.exists():
            raise RunDirError(_no_resume_message(run_dir))
        ckpt = checkpoint.load(resume_path)
        check_run(ckpt, resume_path, cfg.tasks, resume=True,
                  epochs={"teacher": cfg.teacher.epochs, "distill": cfg.distill.epochs},
                  cfg=cfg)
        if ckpt.state.get("task", 0) >= cfg.tasks:
            raise RunDirError(f"{run_dir} has already finished all {cfg.tasks} tasks")
        backend_obj = get_backend(backend_name, cfg.device, threads, cfg.precision)
        dataset = load(cfg.dataset, cfg.data_dir or None)
        check_same_data(run_dir, dataset)
        adopt(backend_obj, network, cfg, dataset.image_shape, dataset.num_classes)
        _take_over(lock)
        engine = engine_class(cfg)(cfg, backend_obj, dataset, run_dir, observers, should_stop)
        engine.restore(ckpt, resume_path)
        return engine.run(resumed=True)


def _no_resume_message(run_dir: Path) -> str:
    saved = _saved_results(run_dir)
    if saved:
        return (f"{run_dir} has no resume checkpoint but holds other results "
                f"({', '.join(saved[:3])}): it cannot be resumed; start a new run with another "
                "--out")
    return (f"{run_dir} has no resume checkpoint (it stopped before its first one was "
            f"written): start it again in place with `mind run --out {run_dir}` and the "
            f"settings you want (its {CONFIG} is replaced)")


def check_rule_available(cfg: RunConfig, stats: list | None, run_dir: Path) -> None:
    """A MIND run's own rule must be one its checkpoints' statistics can score."""
    rule = check_rule(cfg.inference.routing)
    if cfg.method == "mind" and not stats_support(stats, rule.needs):
        raise RunDirError(f"inference.routing={rule.name} is unavailable for {run_dir}: "
                          f"{why_unavailable([rule.name]).split(': ', 1)[1]}")


def eval_config(cfg: RunConfig, overrides: Mapping[str, str] | None,
                refit: bool = False) -> RunConfig:
    """The run's config with inference settings changed for a re-evaluation (and the routing
    statistics' stats.* when they are fitted again); training settings cannot change without
    retraining, so any other key is refused."""
    if not overrides:
        return cfg
    for key in overrides:
        key = ALIASES.get(key, key)
        if not (key.startswith("inference.") or refit and key.startswith("stats.")):
            raise ConfigError(key, "only inference.* settings (and stats.* with "
                              "--refit-stats) can change when re-evaluating a trained run")
    return build_config({**flatten(config_to_dict(cfg)), **overrides})


def check_rebuildable(run_dir: Path, cfg: RunConfig, network: Any) -> None:
    """Before loading anything: a run whose network or arrays came from Python cannot be
    evaluated by name, said as `mind predict` says it (not as "unknown dataset 'arrays'")."""
    from mind_core.data import SPECS
    from mind_core.data.registry import user_data

    if cfg.model == CUSTOM_ARCH and network is None:
        raise NetworkError(NO_NETWORK)
    if cfg.dataset not in SPECS and user_data(cfg.dataset) is None:
        raise DatasetError(f"{run_dir} trained on arrays passed from Python (mind.arrays, "
                           f"named {cfg.dataset!r}), which only Python can pass again: "
                           "mind.load(RUN, data=mind.arrays(...)).evaluate() (see "
                           "docs/python-api.md)")


def evaluate_run(run_dir: Path, backend_name: str | None = None, device: str | None = None,
                 load: Callable = load_dataset,
                 overrides: Mapping[str, str] | None = None, network: Any = None,
                 refit: bool = False) -> dict[str, Any]:
    """Re-evaluate every finished task from its checkpoint; returns metrics.json's shape.
    overrides: inference settings (routing rule, temperature) to evaluate with instead;
    network: the user's network a model=custom run was trained with; refit: fit the routing
    statistics again from the training data (with the stats.* settings) instead of reading
    them (mind_core.refit: exactly what a run with those settings fits)."""
    run_dir = Path(run_dir)
    cfg = eval_config(read_run_config(run_dir), overrides, refit)
    backend_name = trusted_backend(cfg, run_dir, backend_name, "eval")
    paths, checkpoints = finished_tasks(run_dir, cfg, "evaluate")
    has_stats = all(len(c.stats) == t + 1 for t, c in enumerate(checkpoints))
    if not refit:
        check_rule_available(cfg, checkpoints[-1].stats if has_stats else None, run_dir)
    if load is load_dataset:
        check_rebuildable(run_dir, cfg, network)
    backend = get_backend(backend_name, device or cfg.device)
    dataset = load(cfg.dataset, cfg.data_dir or None)
    check_same_data(run_dir, dataset)
    adopt(backend, network, cfg, dataset.image_shape, dataset.num_classes)
    tasks = make_tasks(dataset, cfg.tasks, cfg.scenario, cfg.seed)
    model = backend.build_model(model_spec(cfg, dataset.image_shape, dataset.num_classes),
                                derive_seed(cfg.seed, "model"))
    expected = {layer.name: layer.shape for layer in backend.layers(model)}
    model_bn = backend.get_bn(model)
    if refit and cfg.method == "mind":
        check_fit(checkpoints[-1], paths[-1], expected, model_bn, f"a {cfg.model} model")
        backend.set_weights(model, checkpoints[-1].weights)
        fitted = refit_stats(LoadedRun(cfg=cfg, backend=backend, model=model,
                                       ckpt=checkpoints[-1], dataset=dataset,
                                       tasks=tasks[:len(paths)], plan=Plan.from_config(cfg)))
        check_rule_available(cfg, fitted, run_dir)
        checkpoints = [attrs.evolve(c, stats=fitted[:t + 1]) for t, c in enumerate(checkpoints)]
        has_stats = True
    history = History()
    for t, (path, ckpt) in enumerate(zip(paths, checkpoints, strict=True)):
        check_fit(ckpt, path, expected, model_bn, f"a {cfg.model} model for {dataset.name}")
        backend.set_weights(model, ckpt.weights)
        if cfg.method != "mind":  # a single-head baseline (mind_core/baselines.py)
            evaluation = evaluate_single_head(backend, model, tasks[:t + 1],
                                              ckpt.bn_snapshots[-1], cfg, dataset)
        else:
            evaluation = evaluate_task(backend, model, tasks[:t + 1], ckpt.owner,
                                       ckpt.bn_snapshots, Plan.from_config(cfg), cfg, dataset,
                                       ckpt.stats if has_stats else None)
        teachers = ckpt.state.get("teacher_taw", [])  # absent in runs made before it
        history.add(attrs.evolve(evaluation,
                                 teacher_taw=teachers[t] if len(teachers) > t else None))
    return history.metrics()
