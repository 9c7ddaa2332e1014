"""small_cnn and the CIFAR ResNet-32, exactly as docs/models.md names and builds them, and
what every model (built in or a user's converted network) is asked for: its gated tensors,
BatchNorm layers, classifier, initialisation and (logits, features).

Models take normalised float NCHW input and return logits over every class.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from backends.torch.layers import GATED_TYPES, GatedConv2d, GatedLinear
from mind_core.network import FoundLayer, choose_classifier
from mind_core.protocol import ModelSpec

BN_EPS = 1e-5
BN_MOMENTUM = 0.1


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = GatedConv2d(in_channels, 32)
        self.bn1 = _bn(32)
        self.conv2 = GatedConv2d(32, 64)
        self.bn2 = _bn(64)
        self.conv3 = GatedConv2d(64, 128)
        self.bn3 = _bn(128)
        self.fc = GatedLinear(128, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's input (penultimate features), [batch, 128]. Pooling before the
        ReLU computes exactly ReLU-then-pool (max and ReLU commute, gradients included) with
        the ReLU on a quarter of the values (docs/models.md)."""
        x = F.relu(F.max_pool2d(self.bn1(self.conv1(x)), 2))
        x = F.relu(F.max_pool2d(self.bn2(self.conv2(x)), 2))
        x = F.relu(self.bn3(self.conv3(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.features(x)
        return self.fc(hidden), hidden


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = GatedConv2d(in_planes, planes, stride=stride)
        self.bn1 = _bn(planes)
        self.conv2 = GatedConv2d(planes, planes)
        self.bn2 = _bn(planes)
        self.downsample = stride != 1 or in_planes != planes
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample:
            # Option A: parameter-free, subsample and zero-pad the channel axis on both sides.
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        else:
            shortcut = x
        return F.relu(out + shortcut)


class ResNet32(nn.Module):
    BLOCKS_PER_STAGE = 5

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = GatedConv2d(in_channels, 16)
        self.bn1 = _bn(16)
        self.layer1 = self._stage(16, 16, stride=1)
        self.layer2 = self._stage(16, 32, stride=2)
        self.layer3 = self._stage(32, 64, stride=2)
        self.fc = GatedLinear(64, num_classes)

    def _stage(self, in_planes: int, planes: int, stride: int) -> nn.Sequential:
        blocks = [BasicBlock(in_planes, planes, stride)]
        blocks += [BasicBlock(planes, planes, 1) for _ in range(self.BLOCKS_PER_STAGE - 1)]
        return nn.Sequential(*blocks)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's input (penultimate features), [batch, 64]."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    def logits_and_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.features(x)
        return self.fc(hidden), hidden


ARCHITECTURES = {"small_cnn": SmallCNN, "resnet32": ResNet32}

BatchNorm = nn.modules.batchnorm._BatchNorm
"""Any torch BatchNorm: the built-ins use BatchNorm2d, a user's network may add BatchNorm1d."""

CLASSIFIER_ATTR = "mind_classifier"
"""The attribute naming a model's classifier layer. A user's network picks it by forward order
(convert.py), which its registration order need not follow, so it is recorded, not re-derived."""


class GatedTensor(NamedTuple):
    """One gated tensor: the weight or the bias of a gated layer."""

    layer_name: str
    layer: GatedConv2d | GatedLinear
    attr: str  # "weight" | "bias"

    @property
    def param(self) -> nn.Parameter:
        return getattr(self.layer, self.attr)

    @property
    def param_name(self) -> str:
        """The parameter's dotted name in the model (as named_parameters() says it)."""
        return f"{self.layer_name}.{self.attr}"


def build(spec: ModelSpec, seed: int) -> nn.Module:
    """A fresh built-in model on the CPU (see initialise)."""
    model = ARCHITECTURES[spec.arch](spec.input_shape[2], spec.num_classes)
    found = [FoundLayer(name=name, kind="conv" if isinstance(layer, GatedConv2d) else "linear",
                        out_width=layer.weight.shape[0])
             for name, layer in gated_layers(model).items()]
    setattr(model, CLASSIFIER_ATTR, choose_classifier(found, spec.num_classes))
    initialise(model, seed)
    model.spec = spec
    return model


def initialise(model: nn.Module, seed: int) -> None:
    """He-normal gated weights drawn in module order from a local generator (the global torch
    seed is left alone), biases 0, BN gamma 1, beta 0, mean 0, var 1, every gate dense."""
    generator = torch.Generator().manual_seed(int(seed))
    for module in model.modules():
        if isinstance(module, GATED_TYPES):
            module.reset_parameters(generator)
            for attr in module.gated_tensors():
                module.set_gate(None, attr)
        elif isinstance(module, BatchNorm):
            module.reset_parameters()


def gated_layers(model: nn.Module) -> dict[str, GatedConv2d | GatedLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, GATED_TYPES)}


def gated_tensors(model: nn.Module) -> dict[str, GatedTensor]:
    """Every gated tensor by its canonical name, in module order: a layer's weight under the
    layer's name, then its bias (if any) under "<layer>.bias"."""
    out = {}
    for name, layer in gated_layers(model).items():
        for attr in layer.gated_tensors():
            out[name if attr == "weight" else f"{name}.{attr}"] = GatedTensor(name, layer, attr)
    return out


def bn_layers(model: nn.Module) -> dict[str, BatchNorm]:
    return {name: m for name, m in model.named_modules() if isinstance(m, BatchNorm)}


def classifier_name(model: nn.Module) -> str:
    name = getattr(model, CLASSIFIER_ATTR, None)
    if name is None:  # a model not made by build() or convert.py: its last linear layer
        name = [n for n, m in gated_layers(model).items() if isinstance(m, GatedLinear)][-1]
    return name


def is_builtin(model: nn.Module) -> bool:
    return isinstance(model, tuple(ARCHITECTURES.values()))


def logits_and_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, the classifier's input) from one forward pass. Built-ins split their forward
    themselves; a user's network is run whole and its classifier's input caught by a hook."""
    if is_builtin(model):
        return model.logits_and_features(x)
    caught: list[torch.Tensor] = []
    classifier = model.get_submodule(classifier_name(model))
    handle = classifier.register_forward_hook(lambda _m, args, _out: caught.append(args[0]))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return logits, caught[-1]
