"""Whether a checkpoint that loaded (mind_core.checkpoint.load checked its own contents) belongs
to a run and fits its model: the run's task count, a resume file's loop position and the
settings it was trained as, and the layers and shapes of the model it is loaded into
(docs/checkpoint-format.md, "Against the run")."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mind_core.backend_checks import anchorable_shapes
from mind_core.checkpoint import Checkpoint, CheckpointError
from mind_core.protocol import BNState
from mind_core.rundir import CONFIG

# Settings a resume cannot change: they decide what the saved state holds (EWC's Fisher,
# LwF's old model, MIND's teacher), so an edited config.json would continue a hybrid run.
TRAINED_AS = ("method", "variant")


def trained_as(cfg: Any) -> dict[str, str]:
    """The TRAINED_AS settings of a RunConfig, as a resume file's state records them."""
    return {key: getattr(cfg, key) for key in TRAINED_AS}


def check_run(ckpt: Checkpoint, path: Path | str, tasks: int, resume: bool = False,
              epochs: Mapping[str, int] | None = None, cfg: Any = None) -> None:
    """What a checkpoint must hold to belong to a run of `tasks` tasks (config.json) and, for
    a resume file, a loop position the run's phases have (epochs: {phase: epochs}) and the
    method and variant of cfg (the run's config.json) where it recorded them."""
    if ckpt.tasks != tasks:
        raise CheckpointError(f"{path}: metadata 'tasks' is {ckpt.tasks} but the run has "
                              f"tasks={tasks} ({CONFIG})")
    if not resume:
        return
    state = ckpt.state
    for field in ("task", "phase", "next_epoch", "history"):
        if field not in state:
            raise CheckpointError(f"{path}: state field {field!r} is missing: not a resume "
                                  "checkpoint")
    for key, value in (trained_as(cfg) if cfg is not None else {}).items():
        if key in state and state[key] != value:  # absent in files made before it was kept
            raise CheckpointError(f"{path}: state field {key!r} is {state[key]!r} but {CONFIG} "
                                  f"says {key}={value!r}: a run resumes only as it was "
                                  f"started (set {key} back, or start a new run)")
    task, phase, next_epoch = state["task"], state["phase"], state["next_epoch"]
    limit = (epochs or {}).get(phase, 0) if phase in ("teacher", "distill") else 0
    if epochs is not None and next_epoch > limit:
        raise CheckpointError(f"{path}: state field 'next_epoch' is {next_epoch}, past the "
                              f"{phase} phase's {limit} epochs")
    done = task + (phase == "evaluate")
    if len(ckpt.bn_snapshots) != done:
        raise CheckpointError(f"{path}: {len(ckpt.bn_snapshots)} BN snapshots (bn/0..) but "
                              f"state field 'task' is {task} ({phase}): expected {done}")
    if len(state["history"]) != task:
        raise CheckpointError(f"{path}: state field 'history' has {len(state['history'])} "
                              f"evaluations but 'task' is {task}")
    from mind_core.metrics import Evaluation

    for index, row in enumerate(state["history"]):
        try:
            Evaluation(**row)
        except TypeError as exc:
            raise CheckpointError(f"{path}: state field 'history' row {index} is malformed "
                                  f"({exc})") from None


def check_fit(ckpt: Checkpoint, path: Path | str, shapes: Mapping[str, tuple[int, ...]],
              bn: BNState, model: str) -> None:
    """The checkpoint's weights, ownership and BN groups have the layers and shapes of the
    model they are to be loaded into (shapes: {layer: shape}; bn: that model's BN state)."""
    named = [("weight", ckpt.weights), ("owner", ckpt.owner)]
    if ckpt.teacher_weights is not None:
        named.append(("teacher/weight", ckpt.teacher_weights))
    for kind, tensors in named:
        if set(tensors) != set(shapes):
            odd = sorted(set(tensors) ^ set(shapes))[0]
            how = "extra" if odd in tensors else "missing"
            raise CheckpointError(f"{path}: tensor '{kind}/{odd}' is {how} for {model} "
                                  f"(layers {', '.join(shapes)})")
        for name, value in tensors.items():
            if tuple(value.shape) != tuple(shapes[name]):
                raise CheckpointError(f"{path}: tensor '{kind}/{name}' has shape "
                                      f"{tuple(value.shape)}; {model} needs {tuple(shapes[name])}")
    if ckpt.importance is not None:  # EWC's: a part of what a Penalty may anchor
        anchorable = anchorable_shapes(shapes, {layer: np.shape(fields["gamma"])[0]
                                                for layer, fields in bn.items()})
        for name, value in ckpt.importance.items():
            if anchorable.get(name) != tuple(value.shape):
                raise CheckpointError(f"{path}: tensor 'importance/{name}' of shape "
                                      f"{tuple(value.shape)} fits no tensor of {model}")
    expected = {(layer, field): tuple(np.shape(value))
                for layer, fields in bn.items() for field, value in fields.items()}
    groups = [(f"bn/{t}", snapshot) for t, snapshot in enumerate(ckpt.bn_snapshots)]
    groups += [(prefix, group) for prefix, group in (("live_bn", ckpt.live_bn),
                                                     ("teacher/bn", ckpt.teacher_bn)) if group]
    for prefix, group in groups:
        got = {(layer, field): tuple(np.shape(value))
               for layer, fields in group.items() for field, value in fields.items()}
        if got != expected:
            layer, field = sorted(set(got.items()) ^ set(expected.items()))[0][0]
            raise CheckpointError(f"{path}: tensor '{prefix}/{layer}/{field}' does not fit "
                                  f"the BatchNorm layers of {model}")
