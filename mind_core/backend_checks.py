"""The input rules every backend applies, written once (numpy only, no framework).

Each backend used to check its inputs itself, and the two drifted apart: the TF backend took
labels outside a phase's classes, x and y of different lengths and a teacher that was the
student itself without a word. Both now call these functions, so they refuse the same inputs
with the same messages (tests/backends/test_conformance_errors.py holds every backend to it).
A backend passes what it knows about its model as plain data: tensor names with their
canonical shapes, the number of classes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from mind_core.protocol import Masks, Penalty, PhaseSpec

Shapes = Mapping[str, tuple[int, ...]]
"""Gated tensor name -> canonical shape, in the model's order."""

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N, gpu or gpu:N"


@attrs.frozen
class DeviceRequest:
    """A parsed device string: kind "auto" | "cpu" | "gpu"; index the GPU asked for (0 when
    none was named). Each backend maps it to its own device names and availability."""

    kind: str
    index: int = 0


def parse_device(device: str | None) -> DeviceRequest:
    """"auto" | "cpu" | "cuda[:N]" | "gpu[:N]", any case; None or "" is "auto". A leading "/"
    and "cpu:0" are accepted too, so TF's own names ("/GPU:0", "/CPU:0") read back as
    themselves."""
    text = (str(device or "auto")).strip().lower().lstrip("/")
    if text in ("auto", "cpu", "cpu:0"):
        return DeviceRequest("auto" if text == "auto" else "cpu")
    kind, colon, index = text.partition(":")
    if kind not in ("cuda", "gpu") or (colon and not index.isdigit()):
        raise ValueError(f"unknown device {device!r}: use {DEVICE_CHOICES}")
    return DeviceRequest("gpu", int(index or 0))


def check_gpu_visible(device: str | None, request: DeviceRequest, framework: str,
                      visible: int, hint: str = "") -> None:
    """A GPU request the framework cannot serve; hint says why a GPU may be missing and is
    shown only when the framework sees none."""
    if request.index < visible:
        return
    seen = f" (gpu:0 .. gpu:{visible - 1})" if visible else hint
    raise ValueError(f"device {device!r} asked for, but {framework} sees {visible} GPU(s)"
                     f"{seen}: use device cpu or auto")


def check_class_range(class_range: tuple[int, int], num_classes: int,
                      what: str = "class range") -> tuple[int, int]:
    """(lo, hi) as ints, a non-empty range of the model's classes."""
    lo, hi = (int(v) for v in class_range)
    if not 0 <= lo < hi <= num_classes:
        raise ValueError(f"{what} [{lo}, {hi}) is not a non-empty range within the model's "
                         f"{num_classes} classes")
    return lo, hi


def check_phase_fits(phase: PhaseSpec, num_classes: int) -> None:
    """What a PhaseSpec cannot check alone: its ranges against the model's classes."""
    check_class_range(phase.class_range, num_classes)
    if phase.distill_range is not None:
        check_class_range(phase.distill_range, num_classes, "distill_range")


def check_labelled(x: np.ndarray, y: np.ndarray, class_range: tuple[int, int]) -> None:
    """As many labels as images, every label within [lo, hi)."""
    if len(y) != len(x):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    lo, hi = (int(v) for v in class_range)
    labels = np.asarray(y)
    if len(labels) and (labels.min() < lo or labels.max() >= hi):
        raise ValueError(f"labels span [{labels.min()}, {labels.max()}], outside the "
                         f"classes [{lo}, {hi})")


def check_whole(value: Any, name: str, minimum: int = 1) -> int:
    """The one check of a whole-number argument (batch sizes, counts) at a boundary: an int
    (numpy's too), never a bool, float or text, and >= minimum. A loop over
    range(0, n, batch_size) runs no batch at all for batch_size <= 0, so unchecked it would
    hand back whatever memory the output array started with."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_batch_size(batch_size: int) -> int:
    return check_whole(batch_size, "batch_size")


def check_fisher_inputs(x: np.ndarray, y: np.ndarray | None, class_range: tuple[int, int],
                        batch_size: int, num_classes: int) -> tuple[int, int]:
    """Backend.fisher's inputs (y None: the model's own predictions); returns the class
    range as ints."""
    lo, hi = check_class_range(class_range, num_classes)
    check_batch_size(batch_size)
    if y is not None:
        check_labelled(x, y, (lo, hi))
    if len(x) == 0:
        raise ValueError("the Fisher information needs at least one sample")
    return lo, hi


def fisher_batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Backend.fisher's batches, (start, stop): FACIL's, the n // batch_size full batches
    (a last, smaller one is left out), or one batch of all n when there is no full one
    (where FACIL would divide by zero)."""
    full = n // batch_size
    if full == 0:
        return [(0, n)]
    return [(b * batch_size, (b + 1) * batch_size) for b in range(full)]


BN_AFFINE = ("gamma", "beta")


def bn_affine_name(layer: str, key: str) -> str:
    """The name a BN layer's gamma or beta has among the tensors EWC anchors."""
    return f"{layer}.{key}"


def anchorable_shapes(gated: Shapes, bn_channels: Mapping[str, int]) -> dict[str, tuple]:
    """What a Penalty may anchor and Backend.fisher measures, in model order: every gated
    tensor, then every BN layer's gamma and beta ("<bn>.gamma", "<bn>.beta"), since FACIL's
    EWC takes every parameter of the feature extractor, BN's affine ones included."""
    shapes = dict(gated)
    for layer, channels in bn_channels.items():
        for key in BN_AFFINE:
            shapes[bn_affine_name(layer, key)] = (int(channels),)
    return shapes


def anchorable_values(weights: Mapping[str, np.ndarray],
                      bn: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A model's current values of what anchorable_shapes names (get_weights, get_bn)."""
    values = dict(weights)
    for layer, state in bn.items():
        for key in BN_AFFINE:
            values[bn_affine_name(layer, key)] = np.asarray(state[key], np.float32)
    return values


def subnet_width(class_ranges: list[tuple[int, int]]) -> int:
    """The class count every sub-network of one predict call covers (0 for none)."""
    widths = {int(hi) - int(lo) for lo, hi in class_ranges}
    if len(widths) > 1:
        raise ValueError(f"sub-networks have different class counts {sorted(widths)}: "
                         "their logits cannot be stacked")
    return widths.pop() if widths else 0


def phase_teacher(phase: PhaseSpec, model: Any, teacher: Any) -> Any:
    """The teacher a phase runs with: None unless it distils (PhaseSpec.distils); then one is
    required, and it must be another model (the teacher runs in inference mode, so sharing
    the student would put the student there too)."""
    if not phase.distils:
        return None
    if teacher is None:
        raise ValueError("a distill phase with beta > 0 needs a teacher model")
    if teacher is model:
        raise ValueError("the teacher must be a separate model, not the student itself")
    return teacher


def check_known(names: Any, known: Mapping[str, Any], what: str) -> None:
    """Every name is one of the model's (gated tensors, BN layers)."""
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"{what} for unknown layers {unknown}; the model has {list(known)}")


def check_shape(array: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != tuple(shape):
        raise ValueError(f"{what} has shape {array.shape}, expected {tuple(shape)}")
    return array


BN_KEYS = ("gamma", "beta", "mean", "var")


def check_bn_values(name: str, values: Mapping[str, Any], width: int) -> dict[str, np.ndarray]:
    """One BN layer's state as set_bn takes it: all four vectors, each [width] (a partial
    state would leave the layer half from another snapshot). Returns them as float32."""
    missing = [key for key in BN_KEYS if key not in values]
    if missing:
        raise ValueError(f"BN state of {name} lacks {missing}")
    return {key: check_shape(values[key], (width,), f"BN {key} of {name}")
            .astype(np.float32, copy=False) for key in BN_KEYS}


def trainable_masks(trainable: Masks | None, shapes: Shapes) -> dict[str, np.ndarray] | None:
    """Protocol rules of start_phase's trainable: None (everything trains) stays None;
    otherwise a bool mask for every gated tensor in model order, where a tensor missing from
    the dict is frozen (all False). Names must be gated tensors and shapes canonical."""
    if trainable is None:
        return None
    check_known(trainable, shapes, "trainable masks")
    masks = {}
    for name, shape in shapes.items():
        if name in trainable:
            masks[name] = check_shape(trainable[name], shape,
                                      f"trainable mask of {name}").astype(bool, copy=False)
        else:
            masks[name] = np.zeros(shape, dtype=bool)
    return masks


def check_penalty(penalty: Penalty, shapes: Shapes) -> list[str]:
    """A Penalty against the model: a finite weight >= 0, anchor and importance naming
    anchorable tensors (shapes: anchorable_shapes), an importance for every anchor,
    canonical shapes. Returns the anchored names in model order."""
    weight = float(penalty.weight)
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"the penalty weight must be a finite number >= 0, got {weight}")
    check_known(set(penalty.anchor) | set(penalty.importance), shapes, "penalty")
    missing = sorted(set(penalty.anchor) - set(penalty.importance))
    if missing:
        raise ValueError(f"penalty anchors without an importance: {missing}")
    anchored = [name for name in shapes if name in penalty.anchor]
    for name in anchored:
        check_shape(penalty.anchor[name], shapes[name], f"anchor of {name}")
        check_shape(penalty.importance[name], shapes[name], f"importance of {name}")
    return anchored
