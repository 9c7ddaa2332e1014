"""Backend-neutral checkpoints in safetensors (format: docs/checkpoint-format.md).

Tensor names: weight/<layer>, owner/<layer>, bn/<task>/<layer>/<field>, stats/<task>/<name>
(routing statistics, mind_core.routing.TaskStats; absent in runs made before them); a resume
file adds
live_bn/..., teacher/weight/..., teacher/bn/... and trainer/<name>. Metadata (strings) carries
the format name and version, task counts and a JSON "state" with the loop position and the
metrics so far.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from mind_core.protocol import BNState, Weights
from mind_core.routing import RoutingError, TaskStats

FORMAT = "mind-checkpoint"
FORMAT_VERSION = 1
BN_FIELDS = ("gamma", "beta", "mean", "var")


class CheckpointError(Exception):
    """A checkpoint is missing, corrupt, truncated or not ours; the message says which."""


@attrs.define(kw_only=True)
class Checkpoint:
    weights: Weights
    owner: dict[str, np.ndarray]
    bn_snapshots: list[BNState]
    stats: list[TaskStats] = attrs.Factory(list)  # routing statistics of tasks 0..t
    live_bn: BNState | None = None
    teacher_weights: Weights | None = None
    teacher_bn: BNState | None = None
    trainer: dict[str, np.ndarray] | None = None
    tasks: int = 0
    classes_per_task: int = 0
    state: dict[str, Any] = attrs.Factory(dict)


def _put_bn(tensors: dict[str, np.ndarray], prefix: str, bn: BNState) -> None:
    for layer, fields in bn.items():
        for field in BN_FIELDS:
            tensors[f"{prefix}/{layer}/{field}"] = np.ascontiguousarray(fields[field], np.float32)


def _take_bn(tensors: dict[str, np.ndarray], prefix: str) -> BNState:
    bn: BNState = {}
    start = prefix + "/"
    for name, value in tensors.items():
        if name.startswith(start):
            layer, _, field = name[len(start):].rpartition("/")
            bn.setdefault(layer, {})[field] = value
    return bn


def _with_prefix(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    start = prefix + "/"
    return {k[len(start):]: v for k, v in tensors.items() if k.startswith(start)}


def to_tensors(ckpt: Checkpoint) -> dict[str, np.ndarray]:
    tensors: dict[str, np.ndarray] = {}
    for layer, w in ckpt.weights.items():
        tensors[f"weight/{layer}"] = np.ascontiguousarray(w, np.float32)
    for layer, o in ckpt.owner.items():
        tensors[f"owner/{layer}"] = np.ascontiguousarray(o)
    for task, bn in enumerate(ckpt.bn_snapshots):
        _put_bn(tensors, f"bn/{task}", bn)
    for task, stats in enumerate(ckpt.stats):
        for name, value in stats.arrays().items():
            tensors[f"stats/{task}/{name}"] = np.ascontiguousarray(value, np.float32)
    if ckpt.live_bn is not None:
        _put_bn(tensors, "live_bn", ckpt.live_bn)
    if ckpt.teacher_weights is not None:
        for layer, w in ckpt.teacher_weights.items():
            tensors[f"teacher/weight/{layer}"] = np.ascontiguousarray(w, np.float32)
    if ckpt.teacher_bn is not None:
        _put_bn(tensors, "teacher/bn", ckpt.teacher_bn)
    for name, value in (ckpt.trainer or {}).items():
        tensors[f"trainer/{name}"] = np.ascontiguousarray(value)
    return tensors


def from_tensors(tensors: dict[str, np.ndarray], meta: dict[str, str]) -> Checkpoint:
    snapshots = []
    while any(k.startswith(f"bn/{len(snapshots)}/") for k in tensors):
        snapshots.append(_take_bn(tensors, f"bn/{len(snapshots)}"))
    stats = []
    while any(k.startswith(f"stats/{len(stats)}/") for k in tensors):
        prefix = f"stats/{len(stats)}"
        stats.append(TaskStats.from_arrays(_with_prefix(tensors, prefix), where=prefix))
    teacher_weights = _with_prefix(tensors, "teacher/weight") or None
    return Checkpoint(
        weights=_with_prefix(tensors, "weight"),
        owner=_with_prefix(tensors, "owner"),
        bn_snapshots=snapshots,
        stats=stats,
        live_bn=_take_bn(tensors, "live_bn") or None,
        teacher_weights=teacher_weights,
        teacher_bn=_take_bn(tensors, "teacher/bn") or None,
        trainer=_with_prefix(tensors, "trainer") or None,
        tasks=int(meta.get("tasks", 0)),
        classes_per_task=int(meta.get("classes_per_task", 0)),
        state=json.loads(meta.get("state", "{}")),
    )


def save(path: Path, ckpt: Checkpoint) -> None:
    """Atomic: written to a temp file, then renamed over the target."""
    from safetensors.numpy import save_file

    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "tasks": str(ckpt.tasks),
            "classes_per_task": str(ckpt.classes_per_task), "state": json.dumps(ckpt.state)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(to_tensors(ckpt), str(tmp), metadata=meta)
    os.replace(tmp, path)


def load(path: Path) -> Checkpoint:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path} is a safetensors file but not a MIND checkpoint")
            version = int(meta.get("format_version", "0"))
            if version > FORMAT_VERSION:
                raise CheckpointError(f"{path} has checkpoint format {version}; this version "
                                      f"reads up to {FORMAT_VERSION}: upgrade mind-cl")
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is corrupt or truncated ({exc})") from None
    try:
        return from_tensors(tensors, meta)
    except RoutingError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} has malformed metadata ({exc})") from None
