"""Input normalisation and train-time augmentation on device tensors (NHWC).

Augmentation is drawn with stateless random ops from a [2]-int seed (run seed, batch index),
so an epoch is repeatable and independent of how many batches ran before it.
"""

from __future__ import annotations

from backends.tf import tf_import
from mind_core.protocol import Augment

tf, _ = tf_import()


def normalise(x_uint8, mean, std):
    """(x / 255 - mean[c]) / std[c] as float32."""
    return (tf.cast(x_uint8, tf.float32) / 255.0 - mean) / std


def augment_batch(x_uint8, mean, std, augment: Augment, seed):
    """Random crop after zero padding (black pixels), horizontal flip, then normalisation
    and per-image brightness U(-b, b) added to the normalised pixels."""
    crop_seed, flip_seed, bright_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=3))
    x = tf.cast(x_uint8, tf.float32) / 255.0
    batch, height, width = tf.shape(x)[0], x.shape[1], x.shape[2]
    pad = augment.crop_pad
    if pad > 0 or augment.hflip:
        x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        offsets = tf.random.stateless_uniform(
            [batch, 2], crop_seed, minval=0, maxval=2 * pad + 1, dtype=tf.int32)
        rows = offsets[:, :1] + tf.range(height)[None, :]
        cols = tf.range(width)[None, :]
        if augment.hflip:
            flip = tf.random.stateless_uniform([batch, 1], flip_seed) < 0.5
            cols = tf.where(flip, width - 1 - cols, cols)
        cols = offsets[:, 1:] + cols
        # One gather per axis crops (and flips) every image at its own offset.
        x = tf.gather(x, rows, axis=1, batch_dims=1)
        x = tf.gather(x, cols, axis=2, batch_dims=1)
    x = (x - mean) / std
    if augment.brightness > 0:
        b = augment.brightness
        x = x + tf.random.stateless_uniform([batch, 1, 1, 1], bright_seed, minval=-b, maxval=b)
    return x
