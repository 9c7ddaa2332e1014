"""MIND from Python: train on arrays or a named dataset, with a built-in network or your own,
then predict on new images. Re-exported by `mind_core`:

    import mind_core as mind
    run = mind.fit(model, mind.arrays(x_train, y_train, x_test, y_test), tasks=5)
    run.metrics                # metrics.json as a dict
    classes, tasks = run.predict(x)
    mind.load("runs/mine")     # a Run from its directory

Every bad input (settings, data, network, run directory, checkpoint) raises MindError with
a one-line message before anything is written. docs/python-api.md documents it all.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mind_core.bad_input import bad_input_errors
from mind_core.config import RunConfig, resolve_config
from mind_core.data.base import Dataset
from mind_core.errors import MindError, short_repr
from mind_core.events import Observer
from mind_core.inference import Predictions, Predictor
from mind_core.network import CUSTOM_ARCH, NetworkError
from mind_core.outputs import output_dir
from mind_core.rundir import METRICS
from mind_core.runner import default_run_dir, evaluate_run, load_dataset, read_run_config

__all__ = ["MindError", "Run", "arrays", "fit", "load", "resume"]

FRAMEWORK_OF_MODULE = {"torch": "torch", "keras": "tf", "tensorflow": "tf", "tf_keras": "tf"}
"""Top-level module of a network's class (or a base class) -> the backend that trains it."""


def arrays(x_train, y_train, x_test, y_test, *, name: str = "arrays",
           class_names=None) -> Dataset:
    """A dataset from numpy arrays: uint8 images [n, h, w] or [n, h, w, c] (c = 1 or 3),
    integer labels 0..K-1 with every class in the train split. Normalisation statistics come
    from the train split."""
    from mind_core.data.registry import loads_by_name
    from mind_core.data.user import dataset_from_arrays

    if not isinstance(name, str) or not name or loads_by_name(name):
        raise MindError(f"name={name!r} cannot name arrays: it is empty, not a string, or "
                        "loads a dataset of its own (a registered dataset, npz:PATH or "
                        "folder:PATH), which a later eval or resume would load instead; "
                        "choose another name")
    given = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    if class_names is not None:
        given["class_names"] = class_names
    with _as_mind_errors():
        return dataset_from_arrays(name, given, name)


def backend_for(network: Any) -> str:
    """The backend that trains a network object: from the framework its class comes from,
    or the object's `__mind_backend__` (a backend name or module:Class of a third backend)."""
    named = getattr(network, "__mind_backend__", None)
    if isinstance(named, str):
        return named
    for cls in type(network).__mro__:
        backend = FRAMEWORK_OF_MODULE.get(cls.__module__.split(".")[0])
        if backend:
            return backend
    raise NetworkError(f"model must be a torch nn.Module or a Keras model, got "
                       f"{type(network).__module__}.{type(network).__qualname__}")


def fit(model: Any = None, data: Dataset | str | None = None, *, tasks: int | None = None,
        backend: str | None = None, preset: str = "demo", config: str | Path | None = None,
        settings: Mapping[str, Any] | None = None, seed: int | None = None,
        device: str | None = None, out: str | Path | None = None,
        on_event: Observer | None = None, tensorboard: str | Path | None = None,
        quiet: bool = False) -> Run:
    """Train MIND task by task and return the finished Run.

    model: None (the preset's network), a torch nn.Module or a Keras model (converted to
    gated layers with per-task BatchNorm; its last linear layer is the classifier and must be
    as wide as the data has classes, times label_aug's views). backend: "torch" or "tf"; inferred from model.
    data: mind.arrays(...), or a dataset name as `mind run --dataset` takes (None: the
    preset's). preset / config: the settings to start from (a preset name, or a TOML file
    with the presets' schema); settings: dotted keys on top, e.g. {"distill.epochs": 4}.
    out: the run directory (default runs/<name>-<backend>-<time>). on_event: called with
    every event dict as it happens (events.jsonl's lines). tensorboard: a folder for
    TensorBoard scalars (needs the tensorboard extra). quiet: print nothing (by default the
    progress lines and the final summary line of `mind run`).
    """
    from mind_core.runner import start_run

    with _as_mind_errors():
        _check_arguments(data=data, settings=settings, preset=preset, config=config, out=out,
                         tensorboard=tensorboard, on_event=on_event, backend=backend,
                         device=device)
        if model is not None:
            backend = _backend_of(model, backend)
        cfg = _config(preset, config, settings, model=CUSTOM_ARCH if model is not None else None,
                      tasks=tasks, backend=backend, seed=seed, device=device,
                      dataset=data.name if isinstance(data, Dataset) else data)
        run_dir = Path(out) if out is not None else default_run_dir(cfg)
        output_dir(run_dir, "out", reuse=True)  # as `mind run --out`
        with _observers(on_event, tensorboard, quiet) as observers:
            metrics = start_run(cfg, run_dir, observers, load=_loader(data), network=model)
        _summary(metrics, run_dir, quiet)
    # The backend the user named (or the model implies) stays trusted for this Run.
    return Run(run_dir, model=model, backend=cfg.backend, device=device,
               data=data if isinstance(data, Dataset) else None)


def resume(run_dir: str | Path, model: Any = None, data: Dataset | None = None, *,
           backend: str | None = None, on_event: Observer | None = None,
           tensorboard: str | Path | None = None, quiet: bool = False) -> Run:
    """Finish an interrupted run from its last checkpoint, with exactly the numbers an
    uninterrupted run gives on CPU. model and data: the network and the arrays it was
    started with, when it was (a named dataset is loaded again by name). quiet: as fit's."""
    from mind_core.runner import resume_run

    with _as_mind_errors():
        _check_arguments(data=data, run_dir=run_dir, tensorboard=tensorboard,
                         on_event=on_event, backend=backend, named_data=False)
        if model is not None:
            backend = _backend_of(model, backend)
        with _observers(on_event, tensorboard, quiet) as observers:
            metrics = resume_run(Path(run_dir), observers, load=_loader(data), backend=backend,
                                 network=model)
        _summary(metrics, Path(run_dir), quiet)
    return Run(Path(run_dir), model=model, backend=backend, data=data)


def load(run_dir: str | Path, model: Any = None, *, backend: str | None = None,
         device: str | None = None, data: Dataset | None = None) -> Run:
    """A Run from its directory. model: the network a model=custom run trained (the same
    architecture; for the other backend, built in that framework with the same layer names).
    backend: evaluate/predict with this backend instead of the run's (checkpoints are
    backend-neutral). data: the arrays a run trained on, for Run.evaluate()."""
    with _as_mind_errors():
        _check_arguments(data=data, run_dir=run_dir, backend=backend, device=device,
                         named_data=False)
        read_run_config(Path(run_dir))  # a run directory, or one line saying why not
        if model is not None:
            backend = _backend_of(model, backend)
    return Run(Path(run_dir), model=model, backend=backend, device=device, data=data)


class Run:
    """A run directory: its settings, its metrics, and predictions with its sub-networks."""

    def __init__(self, path: Path, model: Any = None, backend: str | None = None,
                 device: str | None = None, data: Dataset | None = None):
        self.path = Path(path)
        self._model, self._backend, self._device, self._data = model, backend, device, data
        self._predictor: Predictor | None = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def config(self) -> RunConfig:
        with _as_mind_errors():
            return read_run_config(self.path)

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json (TAg, TAw, routing accuracy per task and final); {} before the first
        task has finished."""
        path = self.path / METRICS
        if not path.is_file():
            return {}
        return json.loads(path.read_text(encoding="utf-8"))

    def predict(self, x: np.ndarray, batch_size: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Task-agnostic predictions for uint8 images of the run's shape: (class ids in the
        dataset's own labels, the task each image was routed to), both int64 [n]."""
        found = self.predictions(x, batch_size)
        return found.classes, found.tasks

    def predictions(self, x: np.ndarray, batch_size: int | None = None) -> Predictions:
        """As predict, with each prediction's score and the class names."""
        if batch_size is not None:
            _whole(batch_size, "batch_size")
        with _as_mind_errors():
            if self._predictor is None:
                self._predictor = Predictor(self.path, self._backend, self._device,
                                            network=self._model, load=_loader(self._data))
            return self._predictor.predict(x, batch_size)

    def evaluate(self, routing: str | None = None, temperature: float | None = None
                 ) -> dict[str, Any]:
        """Evaluate every finished task again from its checkpoint (metrics.json's shape),
        optionally with another routing rule or temperature. A run trained on arrays needs
        them again: mind.load(RUN, data=mind.arrays(...))."""
        overrides = {key: str(value) for key, value in (("inference.routing", routing),
                     ("inference.temperature", temperature)) if value is not None}
        with _as_mind_errors():
            return evaluate_run(self.path, self._backend, self._device, load=_loader(self._data),
                                overrides=overrides, network=self._model)


PATHS = ("config", "out", "tensorboard", "run_dir")
TEXTS = ("preset", "backend", "device")


def _check_arguments(data: Any = None, settings: Any = None, named_data: bool = True,
                     on_event: Any = None, **named: Any) -> None:
    """The types of the API's arguments, before any is used: a wrong one is a MindError
    saying what it must be, never a TypeError from deep inside. named: paths (PATHS) and
    names (TEXTS), None where not given."""
    for name, value in named.items():
        if value is None:
            continue
        if name in PATHS and not isinstance(value, str | os.PathLike):
            raise MindError(f"{name} must be a path (str or pathlib.Path), not "
                            f"{_kind(value)}")
        if name in TEXTS and not isinstance(value, str):
            raise MindError(f"{name} must be a string, not {_kind(value)}")
    if settings is not None and not (isinstance(settings, Mapping)
                                     and all(isinstance(k, str) for k in settings)):
        raise MindError("settings must be a dict of dotted setting names to values, e.g. "
                        f'{{"distill.epochs": 4}}, not {_kind(settings)}')
    if on_event is not None and not callable(on_event):
        raise MindError(f"on_event must be a function of one event dict, not {_kind(on_event)}")
    if data is None or isinstance(data, Dataset) or (named_data and isinstance(data, str)):
        return
    given = f"a {type(data).__name__} of {len(data)}" if isinstance(data, tuple | list) \
        else _kind(data)
    named_too = " or a dataset name" if named_data else ""
    raise MindError(f"data must be mind.arrays(x_train, y_train, x_test, y_test){named_too}, "
                    f"not {given}")


def _kind(value: Any) -> str:
    """A wrong argument as an error line names it: its type and (the start of) its value."""
    return f"{type(value).__name__} {short_repr(value, 40)}"


def _whole(value: Any, name: str) -> int:
    """A whole-number argument, checked at the API's boundary by the backends' own rule
    (backend_checks.check_whole), as a MindError."""
    from mind_core.backend_checks import check_whole

    try:
        return check_whole(value, name)
    except ValueError as exc:
        raise MindError(str(exc)) from None


def _backend_of(model: Any, asked: str | None) -> str:
    inferred = backend_for(model)
    if asked is not None and asked != inferred:
        raise NetworkError(f"the model is a {inferred} network but backend={asked!r} was "
                           "asked for: leave backend out, or pass a matching model")
    return inferred


def _config(preset: str, config: str | Path | None, settings: Mapping[str, Any] | None,
            **fields: Any) -> RunConfig:
    given = {key: value for key, value in fields.items() if value is not None}
    if config is None:
        return resolve_config(preset, {**(settings or {}), **given})
    from mind_core.config_files import read_config_file, trusted_file_backend

    base = read_config_file(Path(config))
    base.setdefault("name", Path(config).stem)  # as `mind run --config FILE` names its runs
    chosen = {**(settings or {}), **given}
    cfg = resolve_config(preset, chosen, base=base)
    return trusted_file_backend(cfg, chosen.get("backend"), config,
                                f"pass backend={cfg.backend!r} to mind.fit")


def _loader(data: Dataset | str | None) -> Callable:
    if isinstance(data, Dataset):
        return lambda name, data_dir=None: data
    return load_dataset


def _summary(metrics: dict[str, Any], run_dir: Path, quiet: bool) -> None:
    if not quiet:
        from mind_core.console import run_summary

        print(run_summary(metrics, run_dir, quiet=True))


@contextlib.contextmanager
def _observers(on_event: Observer | None, tensorboard: str | Path | None, quiet: bool
               ) -> Iterator[list[Callable]]:
    """The run's observers: `mind run`'s progress lines unless quiet (a long fit in a
    notebook otherwise shows nothing for minutes), the user's callback and a TensorBoard
    logger, closed afterwards whether the run finished or raised."""
    from mind_core.console import ConsoleReporter

    observers: list[Callable] = [] if quiet else [ConsoleReporter()]
    observers += [on_event] if on_event is not None else []
    logger = None
    if tensorboard is not None:
        from mind_core.tensorboard import TensorBoardLogger

        logger = TensorBoardLogger(tensorboard)
        observers.append(logger)
    try:
        yield observers
    finally:
        if logger is not None:
            logger.close()


class _as_mind_errors:
    """Re-raise every bad-input exception as MindError with the same one-line message."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is not None and not isinstance(exc, MindError) \
                and isinstance(exc, bad_input_errors()):
            raise MindError(str(exc)) from None
        return False
