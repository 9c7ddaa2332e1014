"""small_cnn and resnet32 as Keras models, exactly as docs/models.md describes them.

Tensors are NHWC inside. Every model exposes `gated` and `bn` as ordered {canonical name: layer}
dicts (the names and order every backend shares) and accepts an optional `kernels` dict
{canonical name: effective kernel} so inference can reuse kernel * gate computed once.
A user's own network, converted by backends.tf.convert, has the same interface.
"""

from __future__ import annotations

import numpy as np

from backends.tf import tf_import
from backends.tf.layers import BatchNorm, GatedConv2D, GatedDense
from mind_core.network import FoundLayer, choose_classifier

tf, keras = tf_import()


def _kernel(kernels, layer):
    return None if kernels is None else kernels[layer.name]


class GatedModel(keras.Model):
    """Base: collects gated and BN layers in construction order, which is the order a forward
    pass runs them (`found_layers`, from which the core picks the classifier)."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.input_hwc = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)
        self._gated_order: list = []
        self._bn_order: list = []
        self._found: list[FoundLayer] = []

    def _conv(self, name, cin, cout, stride=1):
        layer = GatedConv2D(cin, cout, 3, stride, 1, name=name)
        self._gated_order.append(layer)
        self._found.append(FoundLayer(name=name, kind="conv", out_width=cout))
        return layer

    def _bn(self, name, channels):
        layer = BatchNorm(channels, name=name)
        self._bn_order.append(layer)
        self._found.append(FoundLayer(name=name, kind="bn", out_width=channels))
        return layer

    def _fc(self, name, cin, cout):
        layer = GatedDense(cin, cout, name=name)
        self._gated_order.append(layer)
        self._found.append(FoundLayer(name=name, kind="linear", out_width=cout))
        return layer

    @property
    def found_layers(self) -> list[FoundLayer]:
        return list(self._found)

    @property
    def classifier_name(self) -> str:
        """The core's choice (mind_core.network.choose_classifier)."""
        return choose_classifier(self._found, self.num_classes)

    @property
    def classifier(self):
        return self.gated[self.classifier_name]

    def features(self, x, training=False, kernels=None):
        raise NotImplementedError

    def classify(self, hidden, kernels=None):
        """Logits over every class from penultimate features."""
        return self.fc(hidden, kernel=_kernel(kernels, self.fc))

    def call(self, x, training=False, kernels=None):
        return self.classify(self.features(x, training=training, kernels=kernels), kernels)

    @property
    def gated(self) -> dict:
        return {layer.name: layer for layer in self._gated_order}

    @property
    def bn(self) -> dict:
        return {layer.name: layer for layer in self._bn_order}


class SmallCNN(GatedModel):
    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, **kwargs):
        super().__init__(input_shape, num_classes, name="small_cnn", **kwargs)
        channels = input_shape[2]
        self.conv1 = self._conv("conv1", channels, 32)
        self.bn1 = self._bn("bn1", 32)
        self.conv2 = self._conv("conv2", 32, 64)
        self.bn2 = self._bn("bn2", 64)
        self.conv3 = self._conv("conv3", 64, 128)
        self.bn3 = self._bn("bn3", 128)
        self.fc = self._fc("fc", 128, num_classes)
        self.built = True

    def features(self, x, training=False, kernels=None):
        """The classifier's input (penultimate features), [batch, 128]."""
        for conv, bn, pool in ((self.conv1, self.bn1, True), (self.conv2, self.bn2, True),
                               (self.conv3, self.bn3, False)):
            x = bn(conv(x, kernel=_kernel(kernels, conv)), training=training)
            if pool:
                # VALID floors odd sizes, as torch's MaxPool2d(2) does. Pooling before the
                # ReLU computes exactly ReLU-then-pool on a quarter of the values.
                x = tf.nn.max_pool2d(x, 2, 2, "VALID")
            x = tf.nn.relu(x)
        return tf.reduce_mean(x, axis=(1, 2))


class BasicBlock(keras.layers.Layer):
    """conv-bn-relu-conv-bn + option-A shortcut, relu. Its sublayers carry full dotted names."""

    def __init__(self, owner: GatedModel, prefix: str, cin: int, cout: int, stride: int,
                 **kwargs):
        super().__init__(name=prefix, **kwargs)
        self.conv1 = owner._conv(f"{prefix}.conv1", cin, cout, stride)
        self.bn1 = owner._bn(f"{prefix}.bn1", cout)
        self.conv2 = owner._conv(f"{prefix}.conv2", cout, cout, 1)
        self.bn2 = owner._bn(f"{prefix}.bn2", cout)
        self.downsample = stride != 1 or cin != cout
        self.pad = cout // 4
        self.built = True

    def call(self, x, training=False, kernels=None):
        out = tf.nn.relu(self.bn1(self.conv1(x, kernel=_kernel(kernels, self.conv1)),
                                  training=training))
        out = self.bn2(self.conv2(out, kernel=_kernel(kernels, self.conv2)), training=training)
        shortcut = x
        if self.downsample:
            # Option A: rows/columns 0, 2, 4, ... and planes // 4 zero channels on each side.
            shortcut = tf.pad(x[:, ::2, ::2, :], [[0, 0], [0, 0], [0, 0], [self.pad, self.pad]])
        return tf.nn.relu(out + shortcut)


class ResNet32(GatedModel):
    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, **kwargs):
        super().__init__(input_shape, num_classes, name="resnet32", **kwargs)
        self.conv1 = self._conv("conv1", input_shape[2], 16)
        self.bn1 = self._bn("bn1", 16)
        blocks = []
        cin = 16
        for stage, width in enumerate((16, 32, 64), start=1):
            for b in range(5):
                stride = 2 if (b == 0 and stage > 1) else 1
                blocks.append(BasicBlock(self, f"layer{stage}.{b}", cin, width, stride))
                cin = width
        self.blocks = blocks
        self.fc = self._fc("fc", 64, num_classes)
        self.built = True

    def features(self, x, training=False, kernels=None):
        """The classifier's input (penultimate features), [batch, 64]."""
        x = tf.nn.relu(self.bn1(self.conv1(x, kernel=_kernel(kernels, self.conv1)),
                                training=training))
        for block in self.blocks:
            x = block(x, training=training, kernels=kernels)
        return tf.reduce_mean(x, axis=(1, 2))


ARCHITECTURES = {"small_cnn": SmallCNN, "resnet32": ResNet32}


def build_network(arch: str, input_shape: tuple[int, int, int], num_classes: int,
                  seed: int) -> GatedModel:
    """A fresh network: He-normal gated weights drawn with numpy (canonical layout, layers in
    order, from np.random.default_rng(seed)), so the same seed gives the same weights on every
    machine; BN gamma 1, beta 0, mean 0, var 1; gates 1."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    model = ARCHITECTURES[arch](tuple(input_shape), int(num_classes))
    initialise(model, seed)
    return model


def initialise(model: GatedModel, seed: int) -> None:
    """He-normal gated weights from np.random.default_rng(seed) in `model.gated` order; a 1-D
    gated tensor (a user's bias) is 0 and draws nothing; gates 1."""
    rng = np.random.default_rng(seed)
    for layer in model.gated.values():
        shape = layer.canonical_shape
        if len(shape) == 1:
            weight = np.zeros(shape, np.float32)
        else:
            std = np.sqrt(2.0 / int(np.prod(shape[1:])))
            weight = (rng.standard_normal(shape) * std).astype(np.float32)
        layer.kernel.assign(layer.from_canonical(weight))
        layer.gate.assign(np.ones(layer.gate.shape, np.float32))
