"""Backend-neutral checkpoints in safetensors (format: docs/checkpoint-format.md).

Tensor names: weight/<layer>, owner/<layer>, bn/<task>/<layer>/<field>, stats/<task>/<name>
(routing statistics, mind_core.task_stats.TaskStats; absent in runs made before them); a resume
file adds
live_bn/..., teacher/weight/..., teacher/bn/..., importance/<layer> (EWC's Fisher, method=ewc)
and trainer/<name>. Metadata (strings) carries
the format name and version, task counts and a JSON "state" with the loop position and the
metrics so far. Whether a file belongs to a run and fits its model: mind_core.checkpoint_match.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from mind_core.protocol import BNState, Weights
from mind_core.task_stats import RoutingError, TaskStats

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
    importance: Weights | None = None  # EWC: merged Fisher, of backend_checks.anchorable_shapes
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
    for layer, value in (ckpt.importance or {}).items():
        tensors[f"importance/{layer}"] = np.ascontiguousarray(value, np.float32)
    for name, value in (ckpt.trainer or {}).items():
        tensors[f"trainer/{name}"] = np.ascontiguousarray(value)
    return tensors


# ----------------------------------------------------------------------------- content checks
LOOP_PHASES = ("teacher", "allocate", "distill", "evaluate")  # loop_state.PHASES
# A resume file's state key [task, count]: the routing statistics of its first `count` tasks
# are task-<task>'s, not repeated in the resume file (run_checkpoints.stats_before).
STATS_IN_TASK_FILE = "stats_in_task_file"
CHECKSUM = "crc32"


def tensor_checksum(value: np.ndarray) -> str:
    """CRC-32 of a tensor's data bytes as safetensors stores them (row-major, little-endian),
    8 hex digits: a flipped bit in the file is a different checksum."""
    array = np.ascontiguousarray(value)
    array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return f"{zlib.crc32(array.reshape(-1).view(np.uint8)):08x}"


def checksums(tensors: Mapping[str, np.ndarray]) -> dict[str, str]:
    return {name: tensor_checksum(value) for name, value in sorted(tensors.items())}


def _verify_checksums(tensors: Mapping[str, np.ndarray], meta: Mapping[str, str]) -> None:
    if "checksums" not in meta:
        return  # written before checksums existed
    try:
        stored = json.loads(meta["checksums"])
    except json.JSONDecodeError:
        stored = None
    if not isinstance(stored, dict) or not all(isinstance(v, str) for v in stored.values()):
        raise CheckpointError("metadata 'checksums' is not a JSON object of tensor checksums")
    for name in sorted(set(stored) - set(tensors)):
        raise CheckpointError(f"tensor {name!r} is listed in the checksums but missing")
    for name in sorted(set(tensors) - set(stored)):
        raise CheckpointError(f"tensor {name!r} has no checksum")
    for name, value in sorted(tensors.items()):
        computed = tensor_checksum(value)
        if stored[name] != computed:
            raise CheckpointError(f"tensor {name!r} fails its {CHECKSUM} checksum (stored "
                                  f"{stored[name]}, computed {computed}): the file is corrupt")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _meta_count(meta: Mapping[str, str], key: str, minimum: int) -> int:
    raw = meta.get(key, "0")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = None
    if value is None or value < minimum:
        raise CheckpointError(f"metadata {key!r} must be a whole number >= {minimum}, "
                              f"got {raw!r}")
    return value


def _check_finite(prefix: str, tensors: Mapping[str, np.ndarray] | None) -> None:
    for name, value in (tensors or {}).items():
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            raise CheckpointError(f"tensor '{prefix}/{name}' holds non-finite values")


def _check_bn(prefix: str, bn: BNState | None) -> None:
    for layer, fields in (bn or {}).items():
        if set(fields) != set(BN_FIELDS):
            missing = sorted(set(BN_FIELDS) - set(fields)) or sorted(set(fields))
            raise CheckpointError(f"tensor group {prefix}/{layer} must hold exactly "
                                  f"{', '.join(BN_FIELDS)} (check {missing[0]!r})")
        shapes = {tuple(value.shape) for value in fields.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise CheckpointError(f"tensor group {prefix}/{layer} must hold four vectors of "
                                  f"one length, got shapes {sorted(shapes)}")
        _check_finite(f"{prefix}/{layer}", fields)


def _numbered(tensors: Mapping[str, np.ndarray], kind: str) -> int:
    """How many groups kind/0, kind/1, ... there are; a gap or a bad index is an error."""
    found = set()
    for name in tensors:
        if name.startswith(kind + "/"):
            index = name.split("/")[1]
            if not re.fullmatch(r"0|[1-9][0-9]*", index):
                raise CheckpointError(f"tensor {name!r} has no task number after {kind}/")
            found.add(int(index))
    if found != set(range(len(found))):
        gap = min(set(range(max(found) + 1)) - found)
        raise CheckpointError(f"tensors {kind}/{gap}/... are missing (up to {kind}/"
                              f"{max(found)} present)")
    return len(found)


def _check_state(state: Any, tasks: int) -> None:
    """The loop position, where the state has one (resume files); task files hold
    tasks_done. Bounds that need the config (epochs) are checkpoint_match.check_run's."""
    if not isinstance(state, dict):
        raise CheckpointError("metadata 'state' is not a JSON object")
    if "phase" in state and state["phase"] not in LOOP_PHASES:
        raise CheckpointError(f"state field 'phase' is {state['phase']!r}; expected one of "
                              f"{', '.join(LOOP_PHASES)}")
    if "task" in state and not (_whole(state["task"]) and 0 <= state["task"] <= tasks):
        raise CheckpointError(f"state field 'task' is {state['task']!r}; expected a whole "
                              f"number in 0..{tasks}")
    if "next_epoch" in state and not (_whole(state["next_epoch"]) and state["next_epoch"] >= 0):
        raise CheckpointError(f"state field 'next_epoch' is {state['next_epoch']!r}; expected "
                              "a whole number >= 0")
    if "tasks_done" in state and not (_whole(state["tasks_done"])
                                      and 0 <= state["tasks_done"] <= tasks):
        raise CheckpointError(f"state field 'tasks_done' is {state['tasks_done']!r}; expected "
                              f"a whole number in 0..{tasks}")
    held = state.get(STATS_IN_TASK_FILE)
    if held is not None and not (isinstance(held, list) and len(held) == 2
                                 and all(_whole(v) for v in held)
                                 and 0 <= held[0] < tasks and 1 <= held[1] <= held[0] + 1):
        raise CheckpointError(f"state field {STATS_IN_TASK_FILE!r} is {held!r}; expected "
                              f"[task in 0..{tasks - 1}, a count of 1..task + 1]")
    if "history" in state and not (isinstance(state["history"], list)
                                   and all(isinstance(r, dict) for r in state["history"])):
        raise CheckpointError("state field 'history' is not a list of evaluations")


def _check_contents(ckpt: Checkpoint) -> None:
    """What a file must hold whatever the run: weights and ownership that fit each other,
    owner ids within -1..tasks-1 (one owner per entry, so ownership is disjoint by
    construction), finite weights and BN values, complete BN groups, a sane loop state."""
    if set(ckpt.owner) != set(ckpt.weights):
        name = sorted(set(ckpt.owner) ^ set(ckpt.weights))[0]
        kind = "owner" if name in ckpt.owner else "weight"
        other = "weight" if kind == "owner" else "owner"
        raise CheckpointError(f"tensor '{kind}/{name}' has no matching '{other}/{name}'")
    for name, owner in ckpt.owner.items():
        if not np.issubdtype(owner.dtype, np.integer):
            raise CheckpointError(f"tensor 'owner/{name}' has dtype {owner.dtype}; owner ids "
                                  "are integers")
        if owner.shape != ckpt.weights[name].shape:
            raise CheckpointError(f"tensor 'owner/{name}' has shape {owner.shape} but "
                                  f"'weight/{name}' has {ckpt.weights[name].shape}")
        if owner.size and (owner.min() < -1 or owner.max() > ckpt.tasks - 1):
            bad = owner.min() if owner.min() < -1 else owner.max()
            raise CheckpointError(f"tensor 'owner/{name}' holds owner id {bad}, outside "
                                  f"-1..{ckpt.tasks - 1} for {ckpt.tasks} tasks")
    for prefix, weights in (("weight", ckpt.weights), ("teacher/weight", ckpt.teacher_weights),
                            ("importance", ckpt.importance), ("trainer", ckpt.trainer)):
        _check_finite(prefix, weights)
    for t, bn in enumerate(ckpt.bn_snapshots):
        _check_bn(f"bn/{t}", bn)
    _check_bn("live_bn", ckpt.live_bn)
    _check_bn("teacher/bn", ckpt.teacher_bn)
    if len(ckpt.bn_snapshots) > ckpt.tasks:
        raise CheckpointError(f"{len(ckpt.bn_snapshots)} BN snapshots (bn/0..) for "
                              f"{ckpt.tasks} tasks")
    _check_state(ckpt.state, ckpt.tasks)


def read_state(path: Path) -> dict[str, Any] | None:
    """The JSON state of a checkpoint, from its header only; None if it cannot be read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
        state = json.loads(meta.get("state", "{}")) if meta.get("format") == FORMAT else None
    except Exception:  # noqa: BLE001 - unreadable is None; load() says why
        return None
    return state if isinstance(state, dict) else None


def from_tensors(tensors: dict[str, np.ndarray], meta: dict[str, str]) -> Checkpoint:
    """A Checkpoint from a file's tensors and metadata, checked (checksums, then contents):
    every problem is a CheckpointError naming the tensor or field (load adds the file)."""
    _verify_checksums(tensors, meta)
    _numbered(tensors, "bn")
    _numbered(tensors, "stats")
    snapshots = []
    while any(k.startswith(f"bn/{len(snapshots)}/") for k in tensors):
        snapshots.append(_take_bn(tensors, f"bn/{len(snapshots)}"))
    stats = []
    while any(k.startswith(f"stats/{len(stats)}/") for k in tensors):
        prefix = f"stats/{len(stats)}"
        stats.append(TaskStats.from_arrays(_with_prefix(tensors, prefix), where=prefix))
    teacher_weights = _with_prefix(tensors, "teacher/weight") or None
    ckpt = Checkpoint(
        weights=_with_prefix(tensors, "weight"),
        owner=_with_prefix(tensors, "owner"),
        bn_snapshots=snapshots,
        stats=stats,
        live_bn=_take_bn(tensors, "live_bn") or None,
        teacher_weights=teacher_weights,
        teacher_bn=_take_bn(tensors, "teacher/bn") or None,
        importance=_with_prefix(tensors, "importance") or None,
        trainer=_with_prefix(tensors, "trainer") or None,
        tasks=_meta_count(meta, "tasks", 1),
        classes_per_task=_meta_count(meta, "classes_per_task", 0),
        state=json.loads(meta.get("state", "{}")),
    )
    _check_contents(ckpt)
    return ckpt


def save(path: Path, ckpt: Checkpoint) -> None:
    """Atomic and durable: written to a temp file, fsynced, then renamed over the target. A
    temp file a killed save leaves is removed when its run next starts or resumes."""
    from safetensors.numpy import save_file

    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "tasks": str(ckpt.tasks),
            "classes_per_task": str(ckpt.classes_per_task), "state": json.dumps(ckpt.state),
            "checksum": CHECKSUM, "checksums": json.dumps(checksums(to_tensors(ckpt)))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(to_tensors(ckpt), str(tmp), metadata=meta)
        with open(tmp, "r+b") as handle:
            os.fsync(handle.fileno())  # on disk before the rename makes it the checkpoint
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in folder durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    except (RoutingError, CheckpointError) as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} has malformed metadata ({exc})") from None
