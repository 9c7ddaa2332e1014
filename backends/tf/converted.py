"""A user's converted Keras network at run time: steps over MIND's gated layers.

backends.tf.convert reads the user's model into a Blueprint (its layer calls as Steps, in the
order Keras runs them); ConvertedModel runs those steps with the interface of
backends.tf.models.GatedModel, so the backend trains, gates and evaluates it like a built-in
model.
"""

from __future__ import annotations

import copy
from typing import Any

import attrs
import numpy as np

from backends.tf import tf_import
from backends.tf.layers import BatchNorm, GatedBias, GatedConv2D, GatedDense
from backends.tf.models import GatedModel
from mind_core.network import FoundLayer, unsupported

tf, keras = tf_import()


class Slot:
    """A tensor inside the network: the index of its value during one forward pass."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


@attrs.frozen(eq=False)
class Step:
    """One layer call, in the order the network runs them."""

    name: str  # the user's dotted layer name
    kind: str  # "conv" | "linear" | "bn" (replaced by MIND's) | "op" (kept as it is)
    args: tuple  # the call's positional arguments, tensors as Slots
    kwargs: dict
    outputs: tuple[int, ...]  # slots of the call's (flattened) outputs
    op: Any = None  # "op": the user's parameter-free layer or operation
    settings: dict = attrs.field(factory=dict)  # what the user's conv/linear/bn does


@attrs.frozen(eq=False)
class Blueprint:
    """Everything needed to build converted copies; kept on the backend by adopt_network."""

    model_name: str
    steps: tuple[Step, ...]
    input_slot: int
    output_slot: int
    input_hwc: tuple[int, int, int]
    num_classes: int
    in_widths: dict = attrs.field(factory=dict)  # layer name -> input channels / features


def _fill(structure, values: dict):
    return keras.tree.map_structure(
        lambda v: values[v.index] if isinstance(v, Slot) else v, structure)


def _kernel(kernels, layer):
    return None if kernels is None else kernels[layer.name]


class ConvertedModel(GatedModel):
    """A user's network as steps over MIND's gated layers. Built from a blueprint whose
    in_widths are known, every layer exists at once; without them (adopt's template) each is
    created when the first, eager, forward pass reaches it, in the order the network runs."""

    def __init__(self, blueprint: Blueprint, op_seed: int = 0):
        super().__init__(blueprint.input_hwc, blueprint.num_classes, name=blueprint.model_name)
        self._steps = tuple(blueprint.steps)
        self._input_slot = blueprint.input_slot
        self._weighted: dict = {}
        self._biases: dict = {}
        self.in_widths: dict = {}
        # Own copies of the parameter-free layers: a Dropout's random state then belongs to
        # this model (seeded from op_seed), and the user's layers are never called.
        self._ops = [_own_copy(step.op, op_seed, i) if step.kind == "op" else None
                     for i, step in enumerate(self._steps)]
        for step in self._steps:
            if step.kind != "op" and step.name in blueprint.in_widths:
                self._create(step, blueprint.in_widths[step.name])
        self.built = True

    def _create(self, step: Step, width: int) -> None:
        if step.name in self._weighted:  # a layer the network calls more than once
            return
        settings = step.settings
        if step.kind == "conv":
            # A depthwise conv's groups and filters follow from its input's channels.
            multiplier = settings.get("depth_multiplier")
            groups = width if multiplier else settings["groups"]
            out_width = width * multiplier if multiplier else settings["filters"]
            layer = GatedConv2D(width, out_width, settings["kernel_size"], settings["strides"],
                                settings["padding"], settings["dilation"], groups=groups,
                                name=step.name)
        elif step.kind == "linear":
            layer = GatedDense(width, settings["units"], name=step.name)
            out_width = settings["units"]
        else:
            layer = BatchNorm(width, name=step.name)
            out_width = width
        (self._bn_order if step.kind == "bn" else self._gated_order).append(layer)
        self._weighted[step.name] = layer
        if settings.get("bias"):
            bias = GatedBias(out_width, name=f"{step.name}.bias")
            self._gated_order.append(bias)  # right after its layer, as torch lists them
            self._biases[step.name] = bias
        self._found.append(FoundLayer(name=step.name, kind=step.kind, out_width=out_width))
        self.in_widths[step.name] = width

    def _apply(self, step: Step, x, training, kernels):
        if step.name not in self._weighted:
            if not tf.executing_eagerly():
                raise RuntimeError(f"layer {step.name!r} was not built before tracing")
            self._check_rank(step, x)
            self._create(step, int(x.shape[-1]))
        layer = self._weighted[step.name]
        if step.kind == "bn":
            return layer(x, training=training)
        y = layer(x, kernel=_kernel(kernels, layer))
        bias = self._biases.get(step.name)
        if bias is not None:
            y = bias(y, kernel=_kernel(kernels, bias))
        return tf.nn.relu(y) if step.settings["relu"] else y

    @staticmethod
    def _check_rank(step: Step, x) -> None:
        rank = x.shape.rank
        if step.kind == "bn" and step.settings["axis"] % rank != rank - 1:
            raise unsupported(step.name, f"BatchNormalization on axis {step.settings['axis']} "
                              f"of a {rank}-D input (only the last axis)", "tf")

    def run_steps(self, x, training, kernels, steps) -> dict:
        """Every value the given steps compute, by slot."""
        values = {self._input_slot: x}
        for step, op in zip(steps, self._ops, strict=False):
            if step.kind != "op":
                values[step.outputs[0]] = self._apply(step, values[step.args[0].index],
                                                      training, kernels)
                continue
            args, kwargs = _fill((step.args, step.kwargs), values)
            if getattr(op, "_call_has_training_arg", False):
                kwargs = {**kwargs, "training": training}
            outputs = keras.tree.flatten(op(*args, **kwargs))
            for slot, value in zip(step.outputs, outputs, strict=True):
                values[slot] = value
        return values

    @property
    def own_ops(self) -> list:
        """Per step: this model's copy of a parameter-free layer, or None."""
        return list(self._ops)

    def features(self, x, training=False, kernels=None):
        """The classifier's input: adopt checked that the classifier runs last."""
        values = self.run_steps(x, training, kernels, self._steps[:-1])
        return values[self._steps[-1].args[0].index]

    def classify(self, hidden, kernels=None):
        return self._apply(self._steps[-1], hidden, False, kernels)


def _own_copy(op, seed: int, index: int):
    """A fresh instance of a parameter-free Keras layer (from its config, with a seed drawn
    from `seed` where the user left it random, so training repeats), else a deep copy, else
    the user's layer itself, which holds no parameters to share (always for a Lambda).
    Stateless operations (keras.ops calls in a functional model) are used as they are."""
    if not isinstance(op, keras.layers.Layer):
        return op
    if isinstance(op, keras.layers.Lambda):
        # Rebuilt from its config (as deepcopy does too), a lambda closing over a layer gets
        # that layer's config, a dict, and fails obscurely; the user's own Lambda (stateless)
        # runs the function as written, so convert.py can name the weights it reads.
        return op
    try:
        config = op.get_config()
        if "seed" in config and config["seed"] is None:
            config["seed"] = int(np.random.default_rng([seed, index]).integers(2**31 - 1))
        return type(op).from_config(config)
    except Exception:  # noqa: BLE001 - a layer that cannot rebuild itself from its config
        try:
            return copy.deepcopy(op)
        except Exception:  # noqa: BLE001
            return op
