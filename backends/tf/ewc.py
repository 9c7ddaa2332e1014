"""EWC's two pieces on the TF side: the quadratic penalty a phase adds to every batch's loss,
and the diagonal empirical Fisher information that weighs it.

Both work on the gated layers' raw `kernel` variables (what get_weights returns), in Keras
layout inside and canonical layout at the boundary.
"""

from __future__ import annotations

import numpy as np

from backends.tf import tf_import
from backends.tf.amp import as_float32
from backends.tf.augment import normalise
from backends.tf.losses import cross_entropy
from mind_core.backend_checks import check_fisher_inputs, check_penalty
from mind_core.protocol import Penalty, Weights

tf, _ = tf_import()


def _keras_constant(layer, canonical):
    """A checked canonical array (backend_checks.check_penalty) as a Keras-layout constant."""
    return tf.constant(layer.from_canonical(np.asarray(canonical, np.float32)))


class PenaltyTerm:
    """weight / 2 * sum over the anchored tensors of importance * (w - anchor) ** 2.

    Anchor and importance become device constants once, here (create it under the phase's
    tf.device), so the compiled step captures them and never retraces for them.
    """

    def __init__(self, model, penalty: Penalty):
        anchored = check_penalty(penalty, {name: tuple(layer.canonical_shape)
                                           for name, layer in model.gated.items()})
        self.half_weight = 0.5 * float(penalty.weight)
        # (kernel variable, anchor, importance) in Keras layout, model order
        self.items = [(model.gated[name].kernel,
                       _keras_constant(model.gated[name], penalty.anchor[name]),
                       _keras_constant(model.gated[name], penalty.importance[name]))
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
    """Per batch: n_b * g_b ** 2 for every gated kernel, g_b the gradient of the batch's mean
    cross-entropy over the logits of [lo, hi), BN in inference mode."""
    layers = list(model.gated.values())
    variables = [layer.kernel for layer in layers]

    @tf.function(
        input_signature=[tf.TensorSpec([None, *model.input_hwc], tf.uint8),
                         tf.TensorSpec([None], tf.int64), tf.TensorSpec([2], tf.int64),
                         tf.TensorSpec([model.input_hwc[2]], tf.float32),
                         tf.TensorSpec([model.input_hwc[2]], tf.float32)],
        autograph=False,
    )
    def batch_fisher(x, y, class_range, mean, std):
        x = normalise(x, mean, std)
        with tf.GradientTape() as tape:
            logits = as_float32(model(x, training=False))[:, class_range[0]:class_range[1]]
            loss = cross_entropy(logits, y - class_range[0])
        grads = tape.gradient(loss, variables)
        n = tf.cast(tf.shape(x)[0], tf.float32)
        # A tensor the loss does not reach (none today) has no gradient: its Fisher is 0.
        return [tf.zeros_like(v) if g is None else n * tf.square(g)
                for g, v in zip(grads, variables, strict=True)]

    return batch_fisher


def fisher_fn(model):
    """The model's compiled Fisher step, kept on the model like its predict function."""
    fn = getattr(model, "_mind_fisher_fn", None)
    if fn is None:
        fn = _make_fisher_fn(model)
        object.__setattr__(model, "_mind_fisher_fn", fn)  # not a Keras-tracked attribute
    return fn


def fisher(model, x: np.ndarray, y: np.ndarray, class_range: tuple[int, int],
           batch_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Weights:
    """Backend.fisher: F = sum_b n_b * g_b ** 2 / len(x), canonical float32 per gated tensor.
    Only gradients are taken: weights, BN statistics and any optimiser are untouched."""
    lo, hi = check_fisher_inputs(x, y, class_range, batch_size, model.num_classes)
    y = np.asarray(y, np.int64)
    layers = list(model.gated.items())
    n = len(x)
    channels = model.input_hwc[2]
    mean_t = tf.constant(np.broadcast_to(np.asarray(mean, np.float32), (channels,)))
    std_t = tf.constant(np.broadcast_to(np.asarray(std, np.float32), (channels,)))
    fn = fisher_fn(model)
    x_dev = tf.convert_to_tensor(np.ascontiguousarray(x, dtype=np.uint8))
    y_dev = tf.convert_to_tensor(y)
    bounds = tf.constant([lo, hi], tf.int64)
    totals = None
    for start in range(0, n, batch_size):
        stop = start + batch_size
        parts = fn(x_dev[start:stop], y_dev[start:stop], bounds, mean_t, std_t)
        totals = parts if totals is None else [t + p for t, p in zip(totals, parts, strict=True)]
    return {name: layer.to_canonical((total / n).numpy()).astype(np.float32, copy=False)
            for (name, layer), total in zip(layers, totals, strict=True)}
