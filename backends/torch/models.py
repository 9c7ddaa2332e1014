"""small_cnn and the CIFAR ResNet-32, exactly as docs/models.md names and builds them.

Models take normalised float NCHW input and return logits over every class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backends.torch.layers import GATED_TYPES, GatedConv2d, GatedLinear
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
        """The classifier's input (penultimate features), [batch, 128]."""
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.bn3(self.conv3(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


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


ARCHITECTURES = {"small_cnn": SmallCNN, "resnet32": ResNet32}


def build(spec: ModelSpec, seed: int) -> nn.Module:
    """A fresh model on the CPU: He-normal gated weights from a local generator (the global
    torch seed is left alone), BN gamma 1, beta 0, mean 0, var 1."""
    model = ARCHITECTURES[spec.arch](spec.input_shape[2], spec.num_classes)
    generator = torch.Generator().manual_seed(int(seed))
    for module in model.modules():
        if isinstance(module, GATED_TYPES):
            module.reset_parameters(generator)
    model.spec = spec
    return model


def gated_layers(model: nn.Module) -> dict[str, GatedConv2d | GatedLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, GATED_TYPES)}


def bn_layers(model: nn.Module) -> dict[str, nn.BatchNorm2d]:
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
