"""Gated, bias-free Conv2D/Dense layers, gated biases and a PyTorch-compatible BatchNorm, as
Keras 3 layers.

Every gated layer holds a trainable `kernel` and a non-trainable 0/1 `gate` of the same shape;
the forward pass uses kernel * gate. Keras keeps conv kernels as [kh, kw, in, out] and dense
kernels as [in, out]; `to_canonical`/`from_canonical` convert to the project's canonical
[out, in, kh, kw] / [out, in] layout at the boundary.
"""

from __future__ import annotations

import numpy as np

from backends.tf import tf_import

tf, keras = tf_import()

BN_EPSILON = 1e-5
# PyTorch's momentum 0.1 is the weight of the new batch statistic (Keras momentum 0.9).
BN_BATCH_WEIGHT = 0.1


class GatedConv2D(keras.layers.Layer):
    """Bias-free convolution. `padding` is an int (symmetric zero padding, as PyTorch pads:
    the built-in models) or "same"/"valid" (Keras's own semantics: a user's Conv2D).

    groups as in Keras's Conv2D and torch's Conv2d: the kernel is [kh, kw, in / groups,
    filters] (canonically [filters, in / groups, kh, kw]), group g's filters are the g-th
    block of outputs and see the g-th block of inputs. groups == in_channels is a depthwise
    conv (a user's DepthwiseConv2D, output channel c * multiplier + m from input c)."""

    kind = "conv"

    def __init__(self, in_channels: int, filters: int, kernel_size=3, stride=1, padding=1,
                 dilation=1, groups: int = 1, **kwargs):
        super().__init__(**kwargs)
        if in_channels % groups or filters % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and "
                             f"filters={filters}")
        kh, kw = _pair(kernel_size)
        self.stride = stride if isinstance(stride, int) else tuple(stride)
        self.dilation = dilation if isinstance(dilation, int) else tuple(dilation)
        self.groups, self.in_channels = groups, in_channels
        shape = (kh, kw, in_channels // groups, filters)
        self.kernel = self.add_weight(shape=shape, initializer="zeros", trainable=True,
                                      name="kernel")
        self.gate = self.add_weight(shape=shape, initializer="ones", trainable=False, name="gate")
        if isinstance(padding, str):
            self.padding = padding.upper()
        else:
            same = stride == 1 and kh == kw and 2 * padding == kh - 1
            # Stride-1 "SAME" equals symmetric padding and takes the fastest kernel; for
            # stride 2 "SAME" would pad asymmetrically on even sizes, so it is spelled out.
            self.padding = ("SAME" if same
                            else [[0, 0], [padding, padding], [padding, padding], [0, 0]])
        self.canonical_shape = (filters, in_channels // groups, kh, kw)
        self.built = True

    def effective_kernel(self):
        return self.kernel * self.gate

    def call(self, x, kernel=None):
        k = _compute(self.effective_kernel() if kernel is None else kernel, x)
        if self.groups == 1:
            return self._convolve(x, k)
        strides = _pair(self.stride)
        if self.groups == self.in_channels and strides[0] == strides[1]:
            # Depthwise: TF's own kernel, its [kh, kw, in, multiplier] being this kernel's
            # outputs split per input channel.
            kh, kw = k.shape[0], k.shape[1]
            return tf.nn.depthwise_conv2d(
                x, tf.reshape(k, (kh, kw, self.in_channels, -1)), (1, *strides, 1),
                self.padding, dilations=_pair(self.dilation))
        # Other groups: one conv per group (TF's grouped Conv2D runs on GPUs only).
        parts = zip(tf.split(x, self.groups, axis=-1), tf.split(k, self.groups, axis=-1),
                    strict=True)
        return tf.concat([self._convolve(xg, kg) for xg, kg in parts], axis=-1)

    def _convolve(self, x, k):
        padding = self.padding
        if not isinstance(padding, str):
            # Zero padding spelled out, then a VALID conv: the same numbers, but TF's CPU
            # Conv2D with explicit padding leaves oneDNN (ResNet-32's stride-2 convs took 3x
            # longer in fp32 than padded + VALID, 12-14x longer in bf16).
            x, padding = tf.pad(x, padding), "VALID"
        if self.dilation != 1 and self.dilation != (1, 1):
            # As Keras runs it: TF's CPU Conv2D has no gradient for dilation rates over 1,
            # tf.nn.convolution computes those through space_to_batch.
            return tf.nn.convolution(x, k, strides=self.stride, padding=padding,
                                     dilations=self.dilation)
        return tf.nn.conv2d(x, k, strides=self.stride, padding=padding)

    @staticmethod
    def to_canonical(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(array, (3, 2, 0, 1)))

    @staticmethod
    def from_canonical(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(array, (2, 3, 1, 0)))


class GatedDense(keras.layers.Layer):
    """Bias-free linear layer over the last axis (like Keras's Dense on any rank)."""

    kind = "linear"

    def __init__(self, in_features: int, units: int, **kwargs):
        super().__init__(**kwargs)
        shape = (in_features, units)
        self.kernel = self.add_weight(shape=shape, initializer="zeros", trainable=True,
                                      name="kernel")
        self.gate = self.add_weight(shape=shape, initializer="ones", trainable=False, name="gate")
        self.canonical_shape = (units, in_features)
        self.built = True

    def effective_kernel(self):
        return self.kernel * self.gate

    def call(self, x, kernel=None):
        k = _compute(self.effective_kernel() if kernel is None else kernel, x)
        if x.shape.rank == 2:
            return tf.matmul(x, k)
        return tf.tensordot(x, k, axes=1)

    @staticmethod
    def to_canonical(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array.T)

    @staticmethod
    def from_canonical(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array.T)


class GatedBias(keras.layers.Layer):
    """A user's conv/linear bias: its own gated [out] tensor, so MIND owns and freezes its
    entries like weight entries. Canonical and Keras layouts agree."""

    kind = "bias"

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.kernel = self.add_weight(shape=(units,), initializer="zeros", trainable=True,
                                      name="kernel")
        self.gate = self.add_weight(shape=(units,), initializer="ones", trainable=False,
                                    name="gate")
        self.canonical_shape = (units,)
        self.built = True

    def effective_kernel(self):
        return self.kernel * self.gate

    def call(self, x, kernel=None):
        return tf.nn.bias_add(x, _compute(self.effective_kernel() if kernel is None else kernel, x))

    @staticmethod
    def to_canonical(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array)

    @staticmethod
    def from_canonical(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(array)


def _compute(kernel, x):
    """A kernel in its input's type: under a mixed policy Keras casts the input and the
    layer's own variables, but not a kernel computed outside the layer (predict's)."""
    return tf.cast(kernel, x.dtype)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class BatchNorm(keras.layers.Layer):
    """BatchNorm over NHWC channels with PyTorch's semantics.

    Training mode normalises with the biased batch variance but folds the *unbiased* one into
    the running variance, as torch does (Keras' own layer uses the biased one, so running
    statistics would drift apart across backends). TF's fused kernel does exactly this when
    given an exponential averaging factor, and is the fastest CPU path.
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.gamma = self.add_weight(shape=(channels,), initializer="ones", trainable=True,
                                     name="gamma")
        self.beta = self.add_weight(shape=(channels,), initializer="zeros", trainable=True,
                                    name="beta")
        self.moving_mean = self.add_weight(shape=(channels,), initializer="zeros",
                                           trainable=False, name="moving_mean")
        self.moving_var = self.add_weight(shape=(channels,), initializer="ones",
                                          trainable=False, name="moving_var")
        self.built = True

    def call(self, x, training=False):
        if x.shape.rank == 4:
            return self._normalise(x, training)
        # The fused kernel takes NHWC only: any other rank (a user's BatchNormalization after
        # a Dense) is seen as [batch, 1, positions, channels], which keeps the same statistics.
        flat = tf.reshape(x, [tf.shape(x)[0], 1, -1, x.shape[-1]])
        return tf.reshape(self._normalise(flat, training), tf.shape(x))

    def _normalise(self, x, training):
        if training:
            y, mean, var, *_ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=self.gamma, offset=self.beta, mean=self.moving_mean,
                variance=self.moving_var, epsilon=BN_EPSILON,
                exponential_avg_factor=BN_BATCH_WEIGHT, data_format="NHWC", is_training=True)
            self.moving_mean.assign(mean)
            self.moving_var.assign(var)
            return y
        y, *_ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=self.gamma, offset=self.beta, mean=self.moving_mean,
            variance=self.moving_var, epsilon=BN_EPSILON, data_format="NHWC", is_training=False)
        return y

    def get_state(self) -> dict[str, np.ndarray]:
        return {
            "gamma": np.asarray(self.gamma.numpy(), np.float32),
            "beta": np.asarray(self.beta.numpy(), np.float32),
            "mean": np.asarray(self.moving_mean.numpy(), np.float32),
            "var": np.asarray(self.moving_var.numpy(), np.float32),
        }

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        for key, var in (("gamma", self.gamma), ("beta", self.beta),
                         ("mean", self.moving_mean), ("var", self.moving_var)):
            if key in state:
                var.assign(np.asarray(state[key], np.float32).reshape(var.shape))
