"""AdamW with PyTorch's update rule and exact, element-wise freezing.

Keras' AdamW cannot leave chosen entries of a tensor untouched (its weight decay and moments
move everything), so the update is written out: torch.optim.AdamW's formula, then every entry
whose mask is False gets its old parameter and moment values back via tf.where, which selects
the stored bits rather than recomputing them, so frozen weights are bit-for-bit unchanged.
"""

from __future__ import annotations

import numpy as np

from backends.tf import tf_import

tf, _ = tf_import()

BETAS = (0.9, 0.999)
EPS = 1e-8


class MaskedAdamW:
    """Optimiser state for a list of variables; `mask[i]` is None (all entries train) or a
    bool tensor of the variable's shape; `keys[i]` names the variable in the state dict.

    The update runs on one flat vector holding every variable (concatenated, then split back),
    so a step is a dozen element-wise ops instead of a dozen per variable: a ResNet-32 has 94
    trainable tensors, and per-variable updates dominated both trace time and small-batch
    step time.
    """

    def __init__(self, variables, masks, keys, weight_decay: float, layouts=None):
        self.variables = list(variables)
        self.keys = list(keys)
        # (to_canonical, from_canonical) per variable, or None where the layouts agree.
        self.layouts = list(layouts) if layouts is not None else [None] * len(self.variables)
        self.shapes = [tuple(v.shape) for v in self.variables]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.weight_decay = float(weight_decay)
        total = sum(self.sizes)
        self.mask = None
        if any(m is not None for m in masks):
            self.mask = tf.concat(
                [tf.ones([n], tf.bool) if m is None else tf.reshape(m, [-1])
                 for m, n in zip(masks, self.sizes, strict=True)], axis=0)
        self.lr = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="lr")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.m = tf.Variable(tf.zeros([total]), trainable=False, name="exp_avg")
        self.v = tf.Variable(tf.zeros([total]), trainable=False, name="exp_avg_sq")

    def apply(self, grads) -> None:
        """One update; call inside the compiled train step."""
        if not self.variables:
            return
        b1, b2 = BETAS
        self.step.assign_add(1)
        t = tf.cast(self.step, tf.float64)
        # Bias corrections in float64, as torch computes them in Python floats.
        step_size = tf.cast(tf.cast(self.lr, tf.float64) / (1.0 - b1**t), tf.float32)
        bc2_sqrt = tf.cast(tf.sqrt(1.0 - b2**t), tf.float32)
        grad = tf.concat([tf.reshape(tf.zeros(s) if g is None else g, [-1])
                          for g, s in zip(grads, self.shapes, strict=True)], axis=0)
        old = tf.concat([tf.reshape(v, [-1]) for v in self.variables], axis=0)
        m, v = self.m.read_value(), self.v.read_value()
        m_new = m + (1.0 - b1) * (grad - m)
        v_new = v * b2 + (1.0 - b2) * grad * grad
        p = old * (1.0 - self.lr * self.weight_decay) if self.weight_decay else old
        p = p - step_size * m_new / (tf.sqrt(v_new) / bc2_sqrt + EPS)
        if self.mask is not None:
            p = tf.where(self.mask, p, old)
            m_new = tf.where(self.mask, m_new, m)
            v_new = tf.where(self.mask, v_new, v)
        self.m.assign(m_new)
        self.v.assign(v_new)
        for var, piece, shape in zip(self.variables, tf.split(p, self.sizes), self.shapes,
                                     strict=True):
            var.assign(tf.reshape(piece, shape))

    def _per_key(self, flat: np.ndarray) -> list[np.ndarray]:
        pieces = np.split(flat, np.cumsum(self.sizes)[:-1]) if self.sizes else []
        return [p.reshape(s) for p, s in zip(pieces, self.shapes, strict=True)]

    def state(self) -> dict[str, np.ndarray]:
        """torch.optim.AdamW's state_dict entries, flattened the way the torch backend names
        them (adamw.<param>.exp_avg / exp_avg_sq / step, canonical layout), so a phase can be
        resumed by either backend."""
        step = np.asarray([self.step.numpy()], np.float32)
        if not step[0]:
            return {}  # like torch: no state before the first step
        out = {}
        for key, layout, m, v in zip(self.keys, self.layouts, self._per_key(self.m.numpy()),
                                     self._per_key(self.v.numpy()), strict=True):
            out[f"adamw.{key}.exp_avg"] = layout[0](m) if layout else m
            out[f"adamw.{key}.exp_avg_sq"] = layout[0](v) if layout else v
            out[f"adamw.{key}.step"] = step.copy()
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        expected = {f"adamw.{key}.{field}" for key in self.keys
                    for field in ("exp_avg", "exp_avg_sq", "step")}
        unknown = sorted(set(state) - expected)
        if unknown:
            raise ValueError(f"optimiser state {unknown[0]!r} does not belong to this phase")
        missing = sorted(expected - set(state)) if state else []
        if missing:
            raise ValueError(f"optimiser state lacks {len(missing)} entries, e.g. {missing[0]!r}")
        if not state:
            self.step.assign(0)
            self.m.assign(tf.zeros_like(self.m))
            self.v.assign(tf.zeros_like(self.v))
            return
        steps = {int(np.asarray(state[f"adamw.{key}.step"]).reshape(-1)[0]) for key in self.keys}
        if len(steps) != 1:
            raise ValueError(f"optimiser state has different step counts {sorted(steps)}")
        self.step.assign(steps.pop())
        for slot, field in ((self.m, "exp_avg"), (self.v, "exp_avg_sq")):
            parts = []
            for key, layout, shape in zip(self.keys, self.layouts, self.shapes, strict=True):
                array = np.asarray(state[f"adamw.{key}.{field}"], np.float32)
                parts.append((layout[1](array) if layout else array).reshape(shape).reshape(-1))
            slot.assign(np.concatenate(parts))
