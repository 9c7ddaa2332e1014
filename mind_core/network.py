"""Users' own networks: what the core decides about them, whatever the framework.

A backend converts a user's network (a torch nn.Module, a Keras model) into its gated form
(`Backend.adopt_network`) and reports the parameterised layers it found, in the order a forward
pass runs them. The rules below are the core's, so both backends apply the same ones:
which layer is the classifier, what a layer may be, and the one exception type every problem
raises (its message is one line, shown as is by the API and the CLI).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

CUSTOM_ARCH = "custom"
"""ModelSpec.arch / RunConfig.model of a run that trains a user's own network."""

SUPPORTED_LAYERS = {
    "torch": "Conv2d (grouped and depthwise too, zero padding), Linear, "
             "BatchNorm1d/BatchNorm2d (affine, with running statistics) and parameter-free "
             "modules or functional calls",
    "tf": "Conv2D (grouped too), DepthwiseConv2D, SeparableConv2D (channels_last) and Dense "
          "with a linear or relu activation, BatchNormalization (center and scale, axis -1) "
          "and parameter-free layers",
}
"""What each backend converts, as printed in errors; docs/models.md ("Your own network")
says the same for users."""


NO_NETWORK = (f"model={CUSTOM_ARCH} trains your own network, which only Python can pass: "
              "mind.fit(model=...), mind.load(RUN, model=...) or mind.resume(RUN, model=...) "
              "(see docs/python-api.md)")


class NetworkError(ValueError):
    """A user's network cannot be used; the message is one line naming the layer and the fix."""


@attrs.frozen(kw_only=True)
class FoundLayer:
    """A parameterised layer of a user's network, as the backend found it."""

    name: str  # the user's dotted name, kept in checkpoints
    kind: str  # "conv" | "linear" | "bn"
    out_width: int  # output channels / units / BN features


def choose_classifier(found: Sequence[FoundLayer], num_classes: int) -> str:
    """The classifier: the last linear layer a forward pass runs. Its width must equal the
    number of classes (the model's output is the classifier's, logits over every class)."""
    linears = [layer for layer in found if layer.kind == "linear"]
    if not linears:
        raise NetworkError("the network has no linear layer: its last one must be the "
                           f"classifier with {num_classes} outputs (one per class)")
    last = linears[-1]
    if last.out_width != num_classes:
        raise NetworkError(f"the classifier (the last linear layer, {last.name!r}) has "
                           f"{last.out_width} outputs but the data has {num_classes} classes: "
                           f"make it {num_classes} wide")
    return last.name


def unsupported(name: str, what: str, backend: str) -> NetworkError:
    """The error for a parameterised layer that MIND cannot gate."""
    return NetworkError(f"layer {name!r} ({what}) is not supported: MIND converts only "
                        f"{SUPPORTED_LAYERS[backend]}")


def describe(class_name: str, found: Sequence[FoundLayer]) -> str:
    kinds = [layer.kind for layer in found]
    return (f"{class_name}: {kinds.count('conv')} conv, {kinds.count('linear')} linear, "
            f"{kinds.count('bn')} BatchNorm layers")
