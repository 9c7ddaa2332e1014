"""A user's Keras model (Sequential or functional, channels_last) as a gated MIND model.

The model's layer graph is walked once, in the order Keras itself runs it, into a flat list
of Steps: every Conv2D / Dense becomes a gated step and every BatchNormalization a MIND
BatchNorm step, under the user's (dotted, for nested models) layer name; every parameter-free
layer or operation is kept as it is (backends.tf.converted runs them). `adopt` builds a first
model on a zeros batch, which finds every layer's input width and proves that the network
runs on its converted (gated) layers' weights only, then checks what the core asks of the
classifier. A setting of the user's layers that the converted ones would drop is refused.
The user's model object is only read.
"""

from __future__ import annotations

import re
import warnings

import attrs

from backends.tf import tf_import
from backends.tf.converted import Blueprint, ConvertedModel, Slot, Step
from backends.tf.models import initialise
from mind_core.network import FoundLayer, NetworkError, choose_classifier, unsupported

tf, keras = tf_import()

# Layers that hold weights MIND cannot gate. Exact Conv2D / Dense / BatchNormalization are
# converted before this check, so a subclass of them (whose call() may differ) lands here.
# Listed because an unbuilt layer has no weights yet to give it away.
WEIGHTED_LAYERS = tuple(getattr(keras.layers, name) for name in (
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D", "Dense",
    "EinsumDense", "BatchNormalization", "LayerNormalization", "GroupNormalization",
    "Normalization", "Embedding", "MultiHeadAttention", "GroupQueryAttention", "PReLU", "RNN",
    "LSTM", "GRU", "SimpleRNN", "Bidirectional", "ConvLSTM2D"))


# -- reading the user's model -----------------------------------------------------------------
class _Reader:
    """Flattens (nested) Sequential and functional models into Steps."""

    def __init__(self):
        self.steps: list[Step] = []
        self.slots = 0
        self.owners: dict[str, int] = {}  # layer name -> id of the layer object using it

    def new_slot(self) -> int:
        self.slots += 1
        return self.slots - 1

    def model(self, model, prefix: str, inputs: list[int]) -> list[int]:
        where = f"model {model.name!r}"
        if isinstance(model, keras.Sequential):
            if len(inputs) != 1:
                raise NetworkError(f"{where} is a Sequential given {len(inputs)} inputs")
            slot = inputs[0]
            for layer in model.layers:
                (slot,) = self.call(layer, prefix, (Slot(slot),), {}, 1)
            return [slot]
        if not hasattr(model, "_nodes_by_depth"):
            raise NetworkError(f"{where} is a subclassed {type(model).__name__}, whose call() "
                               "MIND cannot read: build it with keras.Sequential or the "
                               "functional API (keras.Model(inputs, outputs))")
        if len(model.inputs) != len(inputs):
            raise NetworkError(f"{where} takes {len(model.inputs)} inputs; MIND passes images "
                               "only (one input)")
        values = {id(t): slot for t, slot in zip(model.inputs, inputs, strict=True)}
        # The order Keras's Functional runs its nodes in (Function._run_through_graph).
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if not node.operation or node.is_input:
                    continue
                if any(id(t) not in values for t in node.input_tensors):
                    continue
                args, kwargs = keras.tree.map_structure(
                    lambda v: Slot(values[id(v)]) if isinstance(v, keras.KerasTensor) else v,
                    (node.arguments.args, node.arguments.kwargs))
                outputs = self.call(node.operation, prefix, args, kwargs, len(node.outputs))
                for tensor, slot in zip(node.outputs, outputs, strict=True):
                    values[id(tensor)] = slot
        missing = [t for t in model.outputs if id(t) not in values]
        if missing:
            raise NetworkError(f"{where}: an output is not connected to its input")
        return [values[id(t)] for t in model.outputs]

    def call(self, op, prefix: str, args, kwargs, n_outputs: int) -> list[int]:
        name = prefix + op.name
        if isinstance(op, keras.Model):  # a nested model: its layers become "<name>.<layer>"
            tensors = [v.index for v in keras.tree.flatten((args, kwargs))
                       if isinstance(v, Slot)]
            return self.model(op, f"{name}.", tensors)
        owner = self.owners.setdefault(name, id(op))
        if owner != id(op):
            raise NetworkError(f"two layers are named {name!r}: give them different names")
        kind, settings = layer_kind(op, name)
        outputs = tuple(self.new_slot() for _ in range(n_outputs))
        if kind != "op" and (n_outputs != 1 or len(args) != 1 or not isinstance(args[0], Slot)):
            raise NetworkError(f"layer {name!r} must be called on one tensor")
        if kind != "op":
            _check_call_arguments(name, kind, kwargs)
        if kind == "separable":  # two gated convs, "<name>.depthwise" then "<name>.pointwise"
            middle = self.new_slot()
            self.steps.append(Step(name=f"{name}.depthwise", kind="conv", args=tuple(args),
                                   kwargs={}, outputs=(middle,), settings=settings["depthwise"]))
            self.steps.append(Step(name=f"{name}.pointwise", kind="conv",
                                   args=(Slot(middle),), kwargs={}, outputs=outputs,
                                   settings=settings["pointwise"]))
            return list(outputs)
        self.steps.append(Step(name=name, kind=kind, args=tuple(args), kwargs=dict(kwargs),
                               outputs=outputs, op=op if kind == "op" else None,
                               settings=settings))
        return list(outputs)


def _check_call_arguments(name: str, kind: str, kwargs: dict) -> None:
    """MIND calls its own conv, linear and BatchNorm with the input alone, so an argument the
    user's call passes (BatchNormalization(...)(x, training=False), a mask) would be dropped
    silently. A Conv2D or Dense ignores `training` itself."""
    for key, value in kwargs.items():
        if value is None or (key == "training" and kind != "bn"):
            continue
        if key == "training":
            raise NetworkError(
                f"layer {name!r} is called with training={value!r}, which MIND would ignore: "
                "it runs every BatchNormalization in training mode while it trains (keeping "
                "per-task statistics) and in inference mode to evaluate; call it without "
                "training=")
        raise NetworkError(f"layer {name!r} is called with {key}=, which MIND would ignore: "
                           "call it on its input alone")


def _check_settings(name: str, config: dict) -> None:
    """Refuses what MIND would otherwise ignore on a layer it replaces by its own: a frozen
    layer (MIND trains every task's slice), a regularizer (its only penalty is the phases'
    weight_decay) and a constraint (its optimiser applies none)."""
    if not config.get("trainable", True):
        raise NetworkError(f"layer {name!r} is frozen (trainable=False), which MIND would "
                           "ignore: it trains every conv, Dense and BatchNormalization "
                           "itself, so leave the layer trainable")
    for key, value in config.items():
        if value is None or not key.endswith(("_regularizer", "_constraint")):
            continue
        if key.endswith("_regularizer"):
            fix = ("its only weight penalty is the phases' weight_decay (teacher.weight_decay, "
                   "distill.weight_decay), so remove it")
        else:
            fix = "its optimiser applies no constraint, so remove it"
        raise NetworkError(f"layer {name!r} sets {key}, which MIND would ignore: {fix}")


CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def layer_kind(op, name: str) -> tuple[str, dict]:
    """("conv" | "linear" | "bn" | "op", settings), or ("separable", {"depthwise": settings,
    "pointwise": settings}): two gated convs, or the NetworkError MIND gives for it."""
    cls = type(op)
    if cls in (*CONVS, keras.layers.Dense, keras.layers.BatchNormalization):
        _check_settings(name, op.get_config())
    if cls in CONVS:
        return _conv_kind(op, name, op.get_config())
    if cls is keras.layers.Dense:
        config = op.get_config()
        return "linear", {"units": int(config["units"]), "bias": bool(config["use_bias"]),
                          **_activation(op, name, config)}
    if cls is keras.layers.BatchNormalization:
        config = op.get_config()
        if not (config["center"] and config["scale"]):
            raise unsupported(name, "BatchNormalization without center or scale", "tf")
        if config.get("renorm"):
            raise unsupported(name, "BatchNormalization with renorm", "tf")
        return "bn", {"axis": int(config["axis"])}
    if isinstance(op, WEIGHTED_LAYERS) or getattr(op, "weights", None):
        raise unsupported(name, cls.__name__, "tf")
    return "op", {}


def _conv_kind(op, name: str, config: dict) -> tuple[str, dict]:
    """A Conv2D (groups too), a DepthwiseConv2D (groups = its input channels, known once it
    runs: `depth_multiplier` marks it) or a SeparableConv2D (a depthwise conv, then a 1x1
    conv with the bias and activation). Ownership is per weight entry, so a grouped kernel
    is gated like any other."""
    what = type(op).__name__
    if config["data_format"] != "channels_last":
        raise unsupported(name, f"{what} with data_format={config['data_format']!r}", "tf")
    spatial = {"kernel_size": tuple(config["kernel_size"]),
               "strides": tuple(config["strides"]), "padding": config["padding"],
               "dilation": tuple(config["dilation_rate"])}
    output = {"bias": bool(config["use_bias"]), **_activation(op, name, config)}
    if type(op) is keras.layers.Conv2D:
        return "conv", {"filters": int(config["filters"]), "groups": int(config["groups"]),
                        **spatial, **output}
    depthwise = {"depth_multiplier": int(config["depth_multiplier"]), **spatial}
    if type(op) is keras.layers.DepthwiseConv2D:
        return "conv", {**depthwise, **output}
    return "separable", {
        "depthwise": {**depthwise, "bias": False, "relu": False, "softmax": False},
        "pointwise": {"filters": int(config["filters"]), "groups": 1, "kernel_size": (1, 1),
                      "strides": (1, 1), "padding": "valid", "dilation": (1, 1), **output}}


def _activation(op, name: str, config: dict) -> dict:
    """{"relu": bool, "softmax": bool}; an activation other than linear, relu or softmax is an
    error. A softmax is kept only as a flag: the converted layer outputs logits, and adopt
    allows it on the classifier alone (MIND applies its own softmax to the logits)."""
    what = type(op).__name__
    if getattr(op, "lora_enabled", False):
        raise unsupported(name, f"{what} with LoRA", "tf")
    activation = config.get("activation")
    if activation in ("linear", None, "relu", "softmax"):
        return {"relu": activation == "relu", "softmax": activation == "softmax"}
    shown = activation if isinstance(activation, str) else "a custom function"
    raise unsupported(name, f"{what} with activation {shown!r}", "tf")


def _is_softmax(op) -> bool:
    """A parameter-free layer that only applies softmax over the classes."""
    if isinstance(op, keras.layers.Softmax):
        return op.get_config().get("axis", -1) in (-1, [-1])
    return isinstance(op, keras.layers.Activation) and \
        op.get_config().get("activation") == "softmax"


def _strip_softmax(blueprint: Blueprint, classifier: str) -> tuple[Blueprint, str | None]:
    """The blueprint with the classifier's softmax removed (its activation, or a Softmax
    layer right after it that ends the network), and what was removed, for adopt's one
    warning once the network is accepted: a Keras
    classifier usually ends in softmax for a probability loss, while MIND trains and routes
    on logits. A softmax anywhere else is an error: removing it would change the network."""
    steps = list(blueprint.steps)
    output, stripped = blueprint.output_slot, None
    last = steps[-1]
    if (last.kind == "op" and _is_softmax(last.op) and output in last.outputs
            and len(steps) > 1 and steps[-2].name == classifier
            and last.args[0].index in steps[-2].outputs):
        steps.pop()
        output, stripped = last.args[0].index, f"layer {last.name!r}"
    for i, step in enumerate(steps):
        if not step.settings.get("softmax"):
            continue
        if step.name != classifier:
            raise NetworkError(f"layer {step.name!r} applies softmax: only the classifier "
                               f"({classifier!r}) may, and MIND then uses its logits")
        steps[i] = attrs.evolve(step, settings={**step.settings, "softmax": False})
        stripped = f"the activation of {classifier!r}"
    return attrs.evolve(blueprint, steps=tuple(steps), output_slot=output), stripped


# -- adopting and building --------------------------------------------------------------------
def adopt(network, input_shape: tuple[int, int, int],
          num_classes: int) -> tuple[Blueprint, list[FoundLayer]]:
    """The blueprint of a user's network and its parameterised layers in forward order, or a
    one-line NetworkError. Runs the network once on a zeros batch of two images."""
    if not isinstance(network, keras.Model):
        raise NetworkError(f"the tf backend converts a Keras model (keras.Sequential or "
                           f"keras.Model(inputs, outputs)); got a {type(network).__name__}")
    hwc = tuple(int(s) for s in input_shape)
    _check_declared_input(network, hwc)
    reader = _Reader()
    input_slot = reader.new_slot()
    outputs = reader.model(network, "", [input_slot])
    if len(outputs) != 1:
        raise NetworkError(f"the network has {len(outputs)} outputs; MIND needs one: the "
                           "classifier's logits")
    blueprint = Blueprint(model_name=network.name, steps=tuple(reader.steps),
                          input_slot=input_slot, output_slot=outputs[0], input_hwc=hwc,
                          num_classes=int(num_classes))
    template, values = _first_forward(blueprint)
    found = template.found_layers
    classifier = choose_classifier(found, num_classes)
    blueprint, stripped = _strip_softmax(blueprint, classifier)
    _check_classifier(blueprint, classifier, values)
    if stripped:
        warnings.warn(f"MIND removed the softmax ({stripped}): it trains and routes on the "
                      f"logits of {classifier!r} and applies its own softmax", UserWarning,
                      stacklevel=3)
    return attrs.evolve(blueprint, in_widths=dict(template.in_widths)), found


def build_converted(blueprint: Blueprint, input_shape, num_classes: int,
                    seed: int) -> ConvertedModel:
    """A fresh copy of an adopted network, initialised from the seed like a built-in model."""
    hwc = tuple(int(s) for s in input_shape)
    if hwc != blueprint.input_hwc or int(num_classes) != blueprint.num_classes:
        raise NetworkError(
            f"the network was adopted for {_shape(blueprint.input_hwc)} images and "
            f"{blueprint.num_classes} classes, but this run has {_shape(hwc)} images and "
            f"{num_classes} classes: pass it again for this data")
    model = ConvertedModel(blueprint, op_seed=seed)
    initialise(model, seed)
    return model


def _first_forward(blueprint: Blueprint) -> tuple[ConvertedModel, dict]:
    """The template model, its layers created by an eager forward on zeros, and the values of
    that forward; then one training-mode forward, so Dropout & co. are proven to run too."""
    zeros = tf.zeros((2, *blueprint.input_hwc), tf.float32)
    try:
        template = ConvertedModel(blueprint)
        with tf.GradientTape() as tape:  # records every trainable variable the forward reads
            values = template.run_steps(zeros, False, None, blueprint.steps)
        template.run_steps(zeros, True, None, blueprint.steps)
    except NetworkError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the user's layers raise
        raise NetworkError(f"the network fails on a batch of {_shape(blueprint.input_hwc)} "
                           f"images: {_first_line(exc)}") from None
    for step, op in zip(blueprint.steps, template.own_ops, strict=True):
        # A layer unbuilt in the user's model shows its weights only once it has run.
        if op is not None and getattr(op, "weights", None):
            raise unsupported(step.name, type(op).__name__, "tf")
        if op is not None and getattr(op, "losses", None):  # MIND's trainer adds none
            raise NetworkError(f"layer {step.name!r} adds a loss (an activity regularizer), "
                               "which MIND would ignore: it trains with its own losses only, "
                               "so remove it")
    _check_reads_own_weights(template, tape.watched_variables())
    return template, values


def _check_reads_own_weights(template: ConvertedModel, read) -> None:
    """A weighted layer that the graph does not show (called inside a Lambda's function, or
    a variable passed to a keras.ops call) runs the user's own weights: ungated, so later
    tasks would leak into earlier sub-networks, and never trained. Its variables are then
    read by the forward but are not the converted model's."""
    own = {id(v.value) for v in template.trainable_variables}
    foreign = [v for v in read if id(v) not in own]
    if foreign:
        path = foreign[0].name.removesuffix(":0")
        raise NetworkError(
            f"the network runs weights that are not its layers' own (variable {path!r}, e.g. "
            "a layer called inside a Lambda or a custom layer's call()): MIND could neither "
            "gate nor train them, so call that layer in the model itself (x = layer(x))")


def _check_classifier(blueprint: Blueprint, classifier: str, values: dict) -> None:
    last = blueprint.steps[-1]
    if blueprint.output_slot not in last.outputs or last.name != classifier:
        producer = next(s for s in blueprint.steps if blueprint.output_slot in s.outputs)
        raise NetworkError(f"the network's output comes from layer {producer.name!r}, not from "
                           f"the classifier {classifier!r} (its last Dense): MIND needs the "
                           "classifier's logits as the output, so remove what follows it")
    if last.settings["relu"]:
        raise NetworkError(f"the classifier {classifier!r} applies relu: the network must "
                           "output logits, so give it no activation")
    hidden = values[last.args[0].index]
    if hidden.shape.rank != 2:
        raise NetworkError(f"the classifier {classifier!r} gets a {hidden.shape.rank}-D input "
                           f"{tuple(hidden.shape)}: flatten or pool it to [batch, features]")


def _check_declared_input(network, hwc: tuple[int, int, int]) -> None:
    try:
        declared = tuple(network.inputs[0].shape[1:])
    except (AttributeError, IndexError, TypeError, ValueError):
        return  # an unbuilt Sequential declares nothing
    if len(declared) != 3 or any(d is not None and d != s
                                 for d, s in zip(declared, hwc, strict=True)):
        raise NetworkError(f"the network's input is {declared} but the data's images are "
                           f"{_shape(hwc)}: start it with keras.Input(shape={hwc})")


def _first_line(exc: Exception) -> str:
    """The error's first line; for Keras's wrapper ("Exception encountered when calling
    Reshape.call()."), the wrapped error's first line after the layer's class."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(exc).__name__
    wrapper = re.match(r"Exception encountered when calling (.+)\.$", lines[0])
    if wrapper and len(lines) > 1:
        return f"{wrapper.group(1)}: {lines[1]}"
    return lines[0]


def _shape(hwc) -> str:
    return "x".join(str(s) for s in hwc)
