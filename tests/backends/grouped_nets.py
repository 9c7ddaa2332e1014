"""A small MobileNet-style network of grouped, depthwise and separable convolutions, written
once for each framework with the same layer names, so that a checkpoint of one loads in the
other: stem -> bn0 -> dw (depthwise, multiplier 2) -> grouped (4 groups) -> sep (depthwise
then 1x1) -> pooled -> fc. Stride 1 and 3x3 kernels: Keras's "same" padding is then torch's
padding=1. Each framework is imported only by its own builder."""

from __future__ import annotations

CHANNELS = 8


def torch_mobilenet(in_channels: int = 1, classes: int = 4):
    from torch import nn
    from torch.nn import functional as F

    class Separable(nn.Module):
        def __init__(self, channels: int, out: int) -> None:
            super().__init__()
            self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels,
                                       bias=False)
            self.pointwise = nn.Conv2d(channels, out, 1)

        def forward(self, x):
            return F.relu(self.pointwise(self.depthwise(x)))

    class MobileNetLike(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(in_channels, CHANNELS, 3, padding=1, bias=False)
            self.bn0 = nn.BatchNorm2d(CHANNELS)
            self.dw = nn.Conv2d(CHANNELS, 2 * CHANNELS, 3, padding=1, groups=CHANNELS)
            self.grouped = nn.Conv2d(2 * CHANNELS, CHANNELS, 3, padding=1, groups=4)
            self.sep = Separable(CHANNELS, 12)
            self.fc = nn.Linear(12, classes)

        def forward(self, x):
            x = F.relu(self.bn0(self.stem(x)))
            x = self.sep(F.relu(self.grouped(F.relu(self.dw(x)))))
            return self.fc(x.mean(dim=(2, 3)))

    return MobileNetLike()


def keras_mobilenet(shape: tuple[int, int, int] = (6, 6, 1), classes: int = 4,
                    epsilon: float = 1e-3):
    """epsilon: the BatchNormalization's (MIND runs every BN with 1e-5; a reference model
    holding MIND's weights needs 1e-5 too)."""
    import keras

    layers = keras.layers
    inputs = keras.Input(shape)
    x = layers.Conv2D(CHANNELS, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.ReLU()(layers.BatchNormalization(epsilon=epsilon, name="bn0")(x))
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu",
                               name="dw")(x)
    x = layers.Conv2D(CHANNELS, 3, padding="same", groups=4, activation="relu",
                      name="grouped")(x)
    x = layers.SeparableConv2D(12, 3, padding="same", activation="relu", name="sep")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(classes, name="fc")(x), name="mobilenet_like")


# Canonical shapes of the gated tensors, in the order both backends list them.
LAYERS = [("stem", (8, 1, 3, 3)), ("dw", (16, 1, 3, 3)), ("dw.bias", (16,)),
          ("grouped", (8, 4, 3, 3)), ("grouped.bias", (8,)), ("sep.depthwise", (8, 1, 3, 3)),
          ("sep.pointwise", (12, 8, 1, 1)), ("sep.pointwise.bias", (12,)), ("fc", (4, 12)),
          ("fc.bias", (4,))]
