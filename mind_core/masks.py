"""Ownership arrays, allocation and gates (docs/algorithm.md, steps 2 to 4 of one task).

An ownership array has the canonical shape of its gated weight: -1 = free, t >= 0 = owned by
task t. Every function here returns new arrays and never modifies its inputs, so the engine can
keep the previous state (checkpoints, resume) and tests can compare before with after.
"""

from __future__ import annotations

import math

import numpy as np

from mind_core.protocol import LayerInfo

FREE = -1
MODES = ("random", "magnitude")
INITS = ("zero", "teacher", "scaled_normal")
"""Values newly owned weights start from (allocation.init):
zero          keep the model's values: its random init at task 0, 0 afterwards (the paper);
teacher       the trained teacher's values at those positions (self-distillation, PackNet);
scaled_normal after task 0, He-normal x SCALED_NORMAL_FACTOR (small, but not 0: a channel
              whose row no earlier task owns is not dead from the start)."""
SCALED_NORMAL_FACTOR = 0.1

Ownership = dict[str, np.ndarray]
"""Gated layer name -> int8/int16 array of the layer's canonical shape."""


def owner_dtype(num_tasks: int) -> np.dtype:
    """The smallest signed integer type that holds -1 and every task id."""
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be at least 1, got {num_tasks}")
    if num_tasks <= np.iinfo(np.int8).max:
        return np.dtype(np.int8)
    if num_tasks <= np.iinfo(np.int16).max:
        return np.dtype(np.int16)
    raise ValueError(f"num_tasks={num_tasks} is more than an int16 ownership array can hold")


def new_ownership(layers: list[LayerInfo], num_tasks: int) -> Ownership:
    """Every entry of every gated layer free."""
    dtype = owner_dtype(num_tasks)
    return {layer.name: np.full(layer.shape, FREE, dtype=dtype) for layer in layers}


def quota(numel: int, num_tasks: int) -> int:
    """How many weights of a layer with numel entries each task is given: floor(numel / N)."""
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be at least 1, got {num_tasks}")
    if numel < 0:
        raise ValueError(f"numel must be non-negative, got {numel}")
    return numel // num_tasks


def allocate(
    owner: Ownership,
    task: int,
    *,
    layers: list[LayerInfo],
    num_tasks: int,
    mode: str = "random",
    rng: np.random.Generator,
    teacher_weights: dict[str, np.ndarray] | None = None,
    class_range: tuple[int, int] | None = None,
) -> Ownership:
    """Give task `task` its share of the free weights of every layer; returns a new dict.

    Per layer, k = min(quota, free) free entries: uniformly at random from rng ("random"), or
    those with the largest |teacher weight| ("magnitude"; equal magnitudes go to the lower flat
    index). The classifier layer with class_range (lo, hi) instead gets exactly rows lo..hi-1;
    with class_range None (domain-incremental) it is allocated like any other layer. Layers are
    visited in the given order, so one seed always gives the same result.
    """
    _check_task(task, num_tasks)
    if mode not in MODES:
        raise ValueError(f"allocation mode must be one of {MODES}, got {mode!r}")
    if mode == "magnitude" and teacher_weights is None:
        raise ValueError("magnitude allocation needs teacher_weights (the trained teacher's)")
    for layer in layers:
        current = _layer_owner(owner, layer)
        if (current == task).any():
            raise ValueError(
                f"task {task} already owns weights of layer {layer.name!r}; "
                "allocation happens once per task")

    result = {name: arr.copy() for name, arr in owner.items()}
    for layer in layers:
        current = owner[layer.name]
        if layer.classifier and class_range is not None:
            result[layer.name] = _allocate_rows(current, task, class_range, layer.name)
            continue
        free_idx = np.flatnonzero(current.reshape(-1) == FREE)
        k = min(quota(current.size, num_tasks), free_idx.size)
        if k == 0:
            continue
        if mode == "random":
            chosen = rng.choice(free_idx, size=k, replace=False)
        else:
            chosen = _largest_free(free_idx, k, _teacher_weight(teacher_weights, layer))
        result[layer.name].reshape(-1)[chosen] = task
    return result


def gates(owner: Ownership, task: int, weight_sharing: bool = True) -> dict[str, np.ndarray]:
    """Which weights sub-network `task` uses: with sharing its own and every earlier task's."""
    if weight_sharing:
        return {name: (o >= 0) & (o <= task) for name, o in owner.items()}
    return {name: o == task for name, o in owner.items()}


def trainable(owner: Ownership, task: int) -> dict[str, np.ndarray]:
    """The only weights allowed to change while task `task` distils."""
    return {name: o == task for name, o in owner.items()}


def free(owner: Ownership) -> dict[str, np.ndarray]:
    return {name: o == FREE for name, o in owner.items()}


def ownership_counts(owner: Ownership, num_tasks: int) -> dict[str, dict]:
    """Per layer {"owned": [count per task], "free": n, "total": n} as plain ints (for JSON)."""
    counts = {}
    for name, o in owner.items():
        owned = o[o >= 0].astype(np.int64)
        if owned.size and owned.max() >= num_tasks:
            raise ValueError(f"layer {name!r} has owner {owned.max()} >= num_tasks={num_tasks}")
        per_task = np.bincount(owned, minlength=num_tasks)
        counts[name] = {
            "owned": [int(c) for c in per_task],
            "free": int((o == FREE).sum()),
            "total": int(o.size),
        }
    return counts


def he_normal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """He-normal init of a canonical weight ([out, in, ...]): std sqrt(2 / fan_in). A 1-D
    tensor is a bias (a user's network, mind_core.network): it starts at 0."""
    if len(shape) == 1:
        return np.zeros(shape, np.float32)
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
    std = math.sqrt(2.0 / max(fan_in, 1))
    return (rng.standard_normal(shape) * std).astype(np.float32)


def initial_values(init: str, task: int, weights: dict[str, np.ndarray],
                   teacher: dict[str, np.ndarray] | None, weight_sharing: bool,
                   rng: np.random.Generator) -> dict[str, np.ndarray] | None:
    """Where the entries a task has just been given take their values from (None: keep the
    model's own). Without weight sharing the spec re-draws them He-normal unless they come
    from the teacher."""
    if init not in INITS:
        raise ValueError(f"allocation init must be one of {INITS}, got {init!r}")
    if init == "teacher":
        if teacher is None:
            raise ValueError("allocation.init=teacher needs the trained teacher's weights")
        return teacher
    if not weight_sharing:
        return {name: he_normal(w.shape, rng) for name, w in weights.items()}
    if init == "scaled_normal" and task > 0:
        return {name: he_normal(w.shape, rng) * np.float32(SCALED_NORMAL_FACTOR)
                for name, w in weights.items()}
    return None


def dead_rows(weights: dict[str, np.ndarray], gates: dict[str, np.ndarray]) -> dict[str, int]:
    """Per layer, how many output rows (channels, units) a sub-network uses weights of but
    sees as all zero: with BN beta 0 and ReLU such a channel outputs 0 on every input and gets
    no gradient, so its weights are wasted. (A row the sub-network has no weight in at all is
    not counted: it was never its to use.)"""
    out = {}
    for name, w in weights.items():
        if w.ndim == 1:  # a bias has no rows of its own
            continue
        gate = gates[name].reshape(w.shape[0], -1)
        effective = (w * gates[name]).reshape(w.shape[0], -1)
        out[name] = int((gate.any(axis=1) & ~effective.any(axis=1)).sum())
    return out


def zero_free(weights: dict[str, np.ndarray], owner: Ownership) -> dict[str, np.ndarray]:
    """Copies of the weights with every still-free entry set to 0 (the step after allocation)."""
    result = {}
    for name, w in weights.items():
        result[name] = np.where(owner[name] == FREE, 0, w).astype(w.dtype) if name in owner \
            else w.copy()
    return result


def fill_owned(weights: dict[str, np.ndarray], source: dict[str, np.ndarray],
               owner: Ownership, task: int) -> dict[str, np.ndarray]:
    """Copies of the weights whose entries owned by `task` come from source (the teacher's
    values for self-distillation, fresh He-normal ones without weight sharing)."""
    result = {}
    for name, w in weights.items():
        if name in owner and name in source:
            result[name] = np.where(owner[name] == task, source[name], w).astype(w.dtype)
        else:
            result[name] = w.copy()
    return result


def _check_task(task: int, num_tasks: int) -> None:
    owner_dtype(num_tasks)
    if not 0 <= task < num_tasks:
        raise ValueError(f"task must be in 0..{num_tasks - 1}, got {task}")


def _layer_owner(owner: Ownership, layer: LayerInfo) -> np.ndarray:
    if layer.name not in owner:
        raise ValueError(f"no ownership array for layer {layer.name!r}")
    current = owner[layer.name]
    if current.shape != tuple(layer.shape):
        raise ValueError(f"ownership of {layer.name!r} has shape {current.shape}, "
                         f"the layer {tuple(layer.shape)}")
    return current


def _teacher_weight(teacher_weights: dict[str, np.ndarray], layer: LayerInfo) -> np.ndarray:
    if layer.name not in teacher_weights:
        raise ValueError(f"teacher_weights has no layer {layer.name!r}")
    w = np.asarray(teacher_weights[layer.name])
    if w.shape != tuple(layer.shape):
        raise ValueError(f"teacher weight of {layer.name!r} has shape {w.shape}, "
                         f"the layer {tuple(layer.shape)}")
    return w


def _largest_free(free_idx: np.ndarray, k: int, weight: np.ndarray) -> np.ndarray:
    magnitude = np.abs(weight.reshape(-1)[free_idx])
    # Stable sort on -|w|: equal magnitudes keep flat-index order, so ties are deterministic.
    order = np.argsort(-magnitude, kind="stable")
    return free_idx[order[:k]]


def _allocate_rows(current: np.ndarray, task: int, class_range: tuple[int, int],
                   name: str) -> np.ndarray:
    lo, hi = (int(v) for v in class_range)
    rows = current.shape[0]
    if not 0 <= lo < hi <= rows:
        raise ValueError(f"class_range ({lo}, {hi}) does not fit the {rows} rows of {name!r}")
    taken = current[lo:hi]
    if (taken != FREE).any():
        owners = sorted(int(v) for v in np.unique(taken[taken != FREE]))
        raise ValueError(f"rows {lo}..{hi - 1} of classifier {name!r} are already owned "
                         f"(by tasks {owners}); cannot give them to task {task}")
    result = current.copy()
    result[lo:hi] = task
    return result
