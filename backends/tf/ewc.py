"""EWC's two pieces on the TF side: the quadratic penalty a phase adds to every batch's loss,
and the diagonal Fisher information that weighs it.

Both work on every gated layer's raw `kernel` variable (what get_weights returns) and every
BN layer's gamma and beta (backend_checks.anchorable_shapes), in Keras layout inside and
canonical layout at the boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from backends.tf import tf_import
from backends.tf.amp import as_float32
from backends.tf.augment import normalise
from backends.tf.losses import cross_entropy
from mind_core.backend_checks import (
    bn_affine_name,
    check_fisher_inputs,
    check_penalty,
    fisher_batches,
)
from mind_core.protocol import Penalty, Weights

tf, _ = tf_import()


class Anchorable(NamedTuple):
    variable: Any
    shape: tuple[int, ...]  # canonical
    to_keras: Callable[[np.ndarray], np.ndarray]
    to_canonical: Callable[[np.ndarray], np.ndarray]


def _same(array):
    return array


def anchorable(model) -> dict[str, Anchorable]:
    """The tensors backend_checks.anchorable_shapes names, in its order."""
    out = {name: Anchorable(layer.kernel, tuple(layer.canonical_shape), layer.from_canonical,
                            layer.to_canonical)
           for name, layer in model.gated.items()}
    for layer_name, layer in model.bn.items():  # BN vectors have one layout
        for key, var in (("gamma", layer.gamma), ("beta", layer.beta)):
            out[bn_affine_name(layer_name, key)] = Anchorable(var, tuple(var.shape), _same,
                                                              _same)
    return out


def _constant(tensor: Anchorable, canonical):
    """A checked canonical array (backend_checks.check_penalty) as a Keras-layout constant."""
    return tf.constant(tensor.to_keras(np.asarray(canonical, np.float32)))


class PenaltyTerm:
    """weight / 2 * sum over the anchored tensors of importance * (w - anchor) ** 2.

    Anchor and importance become device constants once, here (create it under the phase's
    tf.device), so the compiled step captures them and never retraces for them.
    """

    def __init__(self, model, penalty: Penalty):
        tensors = anchorable(model)
        anchored = check_penalty(penalty, {name: t.shape for name, t in tensors.items()})
        self.half_weight = 0.5 * float(penalty.weight)
        # (variable, anchor, importance) in Keras layout, model order
        self.items = [(tensors[name].variable,
                       _constant(tensors[name], penalty.anchor[name]),
                       _constant(tensors[name], penalty.importance[name]))
                      for name in anchored]

    def __call__(self):
        """The term's value; call inside the step's GradientTape so its gradient flows."""
        terms = [tf.reduce_sum(importance * tf.square(var - anchor))
                 for var, anchor, importance in self.items]
        return self.half_weight * tf.add_n(terms)


def make_penalty(model, penalty: Penalty | None) -> PenaltyTerm | None:
    """The phase's penalty, or None when it adds nothing (no penalty, weight 0, nothing
    anchored), so such a phase compiles exactly the step it compiled before penalties existed.
    """
    if penalty is None:
        return None
    term = PenaltyTerm(model, penalty)
    return term if term.items and term.half_weight > 0 else None


def _make_fisher_fn(model):
    """Per batch: g_b ** 2 for every anchorable variable, g_b the gradient of the batch's mean
    cross-entropy over the logits of [lo, hi), BN in training mode (batch statistics), the
    labels y or, where predicted is true, the model's own argmax."""
    variables = [tensor.variable for tensor in anchorable(model).values()]

    @tf.function(
        input_signature=[tf.TensorSpec([None, *model.input_hwc], tf.uint8),
                         tf.TensorSpec([None], tf.int64), tf.TensorSpec([], tf.bool),
                         tf.TensorSpec([2], tf.int64),
                         tf.TensorSpec([model.input_hwc[2]], tf.float32),
                         tf.TensorSpec([model.input_hwc[2]], tf.float32)],
        autograph=False,
    )
    def batch_fisher(x, y, predicted, class_range, mean, std):
        x = normalise(x, mean, std)
        with tf.GradientTape() as tape:
            logits = as_float32(model(x, training=True))[:, class_range[0]:class_range[1]]
            own = tf.stop_gradient(tf.argmax(logits, axis=-1, output_type=tf.int64))
            loss = cross_entropy(logits, tf.where(predicted, own, y - class_range[0]))
        grads = tape.gradient(loss, variables)
        # A tensor the loss does not reach (none today) has no gradient: its Fisher is 0.
        return [tf.zeros_like(v) if g is None else tf.square(g)
                for g, v in zip(grads, variables, strict=True)]

    return batch_fisher


def fisher_fn(model):
    """The model's compiled Fisher step, kept on the model like its predict function."""
    fn = getattr(model, "_mind_fisher_fn", None)
    if fn is None:
        fn = _make_fisher_fn(model)
        object.__setattr__(model, "_mind_fisher_fn", fn)  # not a Keras-tracked attribute
    return fn


def fisher(model, x: np.ndarray, y: np.ndarray | None, class_range: tuple[int, int],
           batch_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Weights:
    """Backend.fisher, as FACIL computes it: F = mean over backend_checks.fisher_batches of
    g_b ** 2, canonical float32 per anchorable tensor. Only gradients are taken: weights and
    any optimiser are untouched, and the BN moving statistics the training-mode forward
    moves are put back."""
    lo, hi = check_fisher_inputs(x, y, class_range, batch_size, model.num_classes)
    tensors = anchorable(model)
    channels = model.input_hwc[2]
    mean_t = tf.constant(np.broadcast_to(np.asarray(mean, np.float32), (channels,)))
    std_t = tf.constant(np.broadcast_to(np.asarray(std, np.float32), (channels,)))
    fn = fisher_fn(model)
    x_dev = tf.convert_to_tensor(np.ascontiguousarray(x, dtype=np.uint8))
    labels = np.full(len(x), lo, np.int64) if y is None else np.asarray(y, np.int64)
    y_dev = tf.convert_to_tensor(labels)
    predicted = tf.constant(y is None)
    bounds = tf.constant([lo, hi], tf.int64)
    batches = fisher_batches(len(x), int(batch_size))
    moving = [(var, var.numpy()) for layer in model.bn.values()
              for var in (layer.moving_mean, layer.moving_var)]
    totals = None
    try:
        for start, stop in batches:
            parts = fn(x_dev[start:stop], y_dev[start:stop], predicted, bounds, mean_t, std_t)
            totals = parts if totals is None else [t + p for t, p in zip(totals, parts,
                                                                         strict=True)]
    finally:
        for var, saved in moving:
            var.assign(saved)
    return {name: tensor.to_canonical((total / len(batches)).numpy()).astype(np.float32,
                                                                             copy=False)
            for (name, tensor), total in zip(tensors.items(), totals, strict=True)}
