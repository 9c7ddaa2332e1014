"""A user's nn.Module in MIND's gated form (TorchBackend.adopt_network).

The user's module is deep-copied, never modified. In the copy every nn.Conv2d becomes a
GatedConv2d and every nn.Linear a GatedLinear at the same place, so layer names stay the
user's dotted names and the user's forward (residual additions, functional calls) runs as
written. BatchNorm1d/2d are kept: they become per-task BN like the built-ins'. Anything else
that holds parameters or buffers of its own cannot be gated and is refused, before a run
starts, with a one-line NetworkError naming the layer.

A forward pass on a zeros batch then finds the order in which the layers run: the core picks
the classifier from it (mind_core.network.choose_classifier), and the model's output must be
that classifier's output as it is, since MIND slices and routes its logits. The same pass
proves that every converted layer runs through its gate (convert_watch.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from backends.torch.convert_watch import check_gates_applied, watching
from backends.torch.layers import GatedConv2d, GatedLinear
from backends.torch.models import CLASSIFIER_ATTR, BatchNorm
from mind_core.network import FoundLayer, NetworkError, choose_classifier, unsupported

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
TRACE_BATCH = 2  # two images: BatchNorm1d in train mode refuses one, and eval needs no more


def convert_network(network: nn.Module, input_shape: tuple[int, int, int],
                    num_classes: int) -> tuple[nn.Module, list[FoundLayer]]:
    """(gated copy of the network on the CPU with the user's values, its parameterised layers
    in forward order). The copy records its classifier's name (models.CLASSIFIER_ATTR)."""
    if not isinstance(network, nn.Module):
        raise NetworkError(f"the network must be a torch nn.Module, not "
                           f"{type(network).__name__}")
    root = type(network).__name__
    if type(network) in (nn.Conv2d, nn.Linear, *BATCHNORMS):
        raise NetworkError(f"the network is a single {root} layer: put it in an nn.Module or "
                           "nn.Sequential so that it has a name")
    _check_own_tensors(root, network)
    _check_materialised(network)
    try:
        converted = copy.deepcopy(network)
    except Exception as exc:  # noqa: BLE001 - whatever the user's object raises, say it once
        raise NetworkError(f"the network cannot be copied: {_first_line(exc)}") from exc
    converted = converted.to("cpu", torch.float32)
    _replace_children(converted, "", {})
    found, classifier = _trace(converted, input_shape, num_classes)
    setattr(converted, CLASSIFIER_ATTR, classifier)
    return converted, found


def _replace_children(module: nn.Module, prefix: str, done: dict[int, nn.Module]) -> None:
    """Converts module's children in place, depth first, in registration order. `done` maps a
    converted child's id to its replacement, so a module used at two places stays shared."""
    for child_name, child in list(module.named_children()):
        if id(child) in done:
            setattr(module, child_name, done[id(child)])
            continue
        name = prefix + child_name
        replacement = _convert_leaf(name, child)
        done[id(child)] = replacement if replacement is not None else child
        if replacement is not None:
            setattr(module, child_name, replacement)
        else:
            _replace_children(child, name + ".", done)


def _convert_leaf(name: str, module: nn.Module) -> nn.Module | None:
    """The replacement of a parameterised layer (a kept BatchNorm is its own replacement), or
    None for a parameter-free container whose children are to be converted."""
    # Exact types: a subclass may compute something else in its forward, which the gated
    # layer would silently drop; it falls through to "parameters of its own" below.
    kind = type(module)
    if kind in (nn.Conv2d, nn.Linear, *BATCHNORMS):
        _check_trainable(name, module)
    if kind is nn.Conv2d:
        return _gated_conv(name, module)
    if kind is nn.Linear:
        return _gated_linear(name, module)
    if kind in BATCHNORMS:
        _check_batchnorm(name, module)
        return module
    _check_own_tensors(name, module)
    return None


def _check_own_tensors(name: str, module: nn.Module) -> None:
    own = [n for n, _ in module.named_parameters(recurse=False)]
    own += [n for n, _ in module.named_buffers(recurse=False)]
    if isinstance(module, BatchNorm):
        raise unsupported(name, type(module).__name__, "torch")
    if own:
        what = type(module).__name__
        if module.__module__.split(".")[0] != "torch":  # a user's class: name its tensors
            what += f" with tensors of its own: {', '.join(own)}"
        raise unsupported(name, what, "torch")


def _check_materialised(network: nn.Module) -> None:
    """A network built on the meta device has shapes but no values to copy (torch would raise
    "Cannot copy out of meta tensor" from deep inside the conversion)."""
    tensors = [*network.named_parameters(), *network.named_buffers()]
    meta = [name for name, tensor in tensors if tensor.is_meta]
    if meta:
        raise NetworkError(f"the network's tensors are on the meta device, without values "
                           f"({', '.join(meta[:3])}{', ...' if len(meta) > 3 else ''}): build "
                           "it on the CPU, or materialise it with .to_empty(device='cpu') and "
                           "load its weights")


def _check_trainable(name: str, module: nn.Module) -> None:
    """A frozen parameter would be trained anyway (a gated copy's are new parameters; MIND
    trains every task's slice), so freezing is refused rather than silently dropped."""
    frozen = [n for n, p in module.named_parameters(recurse=False) if not p.requires_grad]
    if frozen:
        raise NetworkError(f"layer {name!r} is frozen (requires_grad=False on "
                           f"{', '.join(frozen)}), which MIND would ignore: it trains every "
                           "Conv2d, Linear and BatchNorm itself, so leave it trainable")


def _check_standard_tensors(name: str, module: nn.Module) -> None:
    """Refuses a Conv2d/Linear carrying more than weight and bias, e.g. the weight_g/weight_v
    of torch.nn.utils.weight_norm, which a gated layer would not reproduce."""
    params = {n for n, _ in module.named_parameters(recurse=False)}
    buffers = [n for n, _ in module.named_buffers(recurse=False)]
    extra = sorted(params - {"weight", "bias"}) + buffers
    if extra or "weight" not in params:
        what = f"{type(module).__name__} with tensors {', '.join(extra) or 'but no weight'}"
        raise unsupported(name, what, "torch")


def _gated_conv(name: str, conv: nn.Conv2d) -> GatedConv2d:
    # Grouped and depthwise convs too: ownership is per weight entry, whatever the layout.
    if conv.padding_mode != "zeros":
        raise unsupported(name, f"Conv2d with padding_mode={conv.padding_mode!r}", "torch")
    _check_standard_tensors(name, conv)
    gated = GatedConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                        conv.padding, conv.dilation, bias=conv.bias is not None,
                        groups=conv.groups)
    _copy_values(conv, gated)
    return gated


def _gated_linear(name: str, linear: nn.Linear) -> GatedLinear:
    _check_standard_tensors(name, linear)
    gated = GatedLinear(linear.in_features, linear.out_features, bias=linear.bias is not None)
    _copy_values(linear, gated)
    return gated


def _copy_values(source: nn.Module, target: nn.Module) -> None:
    """The user's values, so the template computes the user's function until a build
    re-initialises it (and tests can compare the two)."""
    with torch.no_grad():
        target.weight.copy_(source.weight)
        if source.bias is not None:
            target.bias.copy_(source.bias)


def _check_batchnorm(name: str, bn: nn.Module) -> None:
    kind = type(bn).__name__
    if not bn.affine:
        raise unsupported(name, f"{kind} with affine=False", "torch")
    if not bn.track_running_stats:
        raise unsupported(name, f"{kind} without running statistics "
                                "(track_running_stats=False)", "torch")
    if bn.momentum is None:
        # A cumulative average counts batches in num_batches_tracked, which a per-task BN
        # snapshot does not hold: every later task would barely move its statistics.
        raise unsupported(name, f"{kind} with momentum=None", "torch")


def _trace(model: nn.Module, input_shape: tuple[int, int, int],
           num_classes: int) -> tuple[list[FoundLayer], str]:
    """Runs a zeros batch in eval mode; returns the parameterised layers in the order they
    first ran and the classifier, after checking that every layer ran through its gate
    (convert_watch) and that the output is the classifier's."""
    height, width, channels = input_shape
    layers = {name: m for name, m in model.named_modules()
              if isinstance(m, (GatedConv2d, GatedLinear, BatchNorm))}
    order: list[str] = []
    inputs: dict[str, object] = {}
    outputs: dict[str, object] = {}

    def recorder(name: str) -> Callable:
        def record(_module: nn.Module, args: tuple, output: object) -> None:
            if name not in inputs:
                order.append(name)
            inputs[name] = args[0] if args else None
            outputs[name] = output
        return record

    handles = [m.register_forward_hook(recorder(name)) for name, m in layers.items()]
    model.eval()
    try:
        with torch.no_grad(), watching(model) as watch:
            result = model(torch.zeros(TRACE_BATCH, channels, height, width))
    except Exception as exc:  # noqa: BLE001 - any failure of the user's forward is theirs
        raise NetworkError(f"the network fails on a batch of {height}x{width}x{channels} "
                           f"images: {_first_line(exc)}") from exc
    finally:
        for handle in handles:
            handle.remove()
    check_gates_applied(model, watch)
    found = [_found(name, layers[name]) for name in order]
    classifier = choose_classifier(found, num_classes)
    features = inputs[classifier]
    if not isinstance(features, torch.Tensor) or features.dim() != 2:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else None
        raise NetworkError(f"the classifier {classifier!r} takes input of shape {shape}: it "
                           "must take [batch, features] (pool or flatten before it)")
    if result is not outputs[classifier]:
        raise NetworkError(f"the network's output is not the classifier's ({classifier!r}): "
                           "return its logits as they are, with no softmax or other operation "
                           "after it")
    return found, classifier


def _found(name: str, module: nn.Module) -> FoundLayer:
    if isinstance(module, GatedConv2d):
        return FoundLayer(name=name, kind="conv", out_width=module.weight.shape[0])
    if isinstance(module, GatedLinear):
        return FoundLayer(name=name, kind="linear", out_width=module.weight.shape[0])
    return FoundLayer(name=name, kind="bn", out_width=module.num_features)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__
