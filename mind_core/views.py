"""Sub-networks that know their task: self-supervised label augmentation (the `label_aug`
settings; docs/routing.md "Label augmentation").

With a transformation of K views (four quarter turns; three cyclic shifts of the colour
channels), every (class, view) pair is a label of its own: class c's view k is output row
c * K + k, so a task's rows stay contiguous ([lo * K, hi * K)) and allocation, ownership and
checkpoints handle the wider head as any other. Training shows each image in its views with
those labels; at test time a sub-network's score for class c is the sum, over the K views of
the image, of its logit for (c, k). A sub-network so trained has learned what its own task's
images look like the right way up, which is what picking a sub-network needs (Lee et al.,
ICML 2020; CSI, NeurIPS 2020).

Everything here is numpy on the core's side of the protocol: a backend trains and predicts
over the widened class ranges without knowing about views.
"""

from __future__ import annotations

import attrs
import numpy as np

from mind_core.protocol import Augment, Backend, Subnet

# none: the paper. rotation: 0, 90, 180 and 270 degrees (square images). channels: the
# colour channels shifted cyclically, (R, G, B) -> (G, B, R) -> (B, R, G), for data where
# a turned image means something else (colour images only).
LABEL_TRANSFORMS = ("none", "rotation", "channels")
# all: every training image in all K views each epoch (K times the work of an epoch);
# one: each image in one view drawn at random each epoch (an epoch's work unchanged).
LABEL_COPIES = ("all", "one")
VIEW_COUNTS = {"none": 1, "rotation": 4, "channels": 3}
# The views routing statistics model (stats.views): all of label_aug's views, each by
# statistics of its own (a task's log-likelihood is their mean), or only the image as it is.
STATS_VIEWS = ("all", "image")


def apply_view(x: np.ndarray, transform: str, k: int) -> np.ndarray:
    """Images [n, h, w, c] (or [n, h, w]) in view k of the transformation; view 0 is the
    image itself. Quarter turns are counter-clockwise in the image plane."""
    if k == 0 or transform == "none":
        return x
    if transform == "rotation":
        return np.ascontiguousarray(np.rot90(x, k, axes=(1, 2)))
    if transform == "channels":
        return np.ascontiguousarray(np.roll(x, -k, axis=-1))
    raise ValueError(f"label_aug.transform must be one of {', '.join(LABEL_TRANSFORMS)}; "
                     f"got {transform!r}")


def unfit_reason(transform: str, image_shape: tuple[int, ...]) -> str | None:
    """Why the transformation cannot apply to images of this shape (h, w, c), or None."""
    height, width = image_shape[:2]
    channels = image_shape[2] if len(image_shape) > 2 else 1
    if transform == "rotation" and height != width:
        return (f"rotation needs square images (a quarter turn changes a {height}x{width} "
                "image's shape); use label_aug.transform=channels or none")
    if transform == "channels" and channels < 2:
        return ("channels needs colour images, but these have one channel; use "
                "label_aug.transform=rotation or none")
    return None


@attrs.frozen
class Views:
    transform: str = "none"
    copies: str = "all"

    @classmethod
    def from_config(cls, cfg) -> Views:
        return cls(cfg.label_aug.transform, cfg.label_aug.copies)

    @property
    def count(self) -> int:
        return VIEW_COUNTS[self.transform]

    def head_width(self, num_classes: int) -> int:
        """Output rows of a model for num_classes classes: one per (class, view)."""
        return num_classes * self.count

    def widen(self, class_range: tuple[int, int]) -> tuple[int, int]:
        """The output rows of a class range: (class, view) pairs, class-major."""
        lo, hi = class_range
        return lo * self.count, hi * self.count

    def backend_augment(self, augment: Augment) -> Augment:
        """The augmentation a backend applies after the views: horizontal flips move to the
        core (training_set), before the views, because a flipped quarter turn is the opposite
        quarter turn of the flipped image and would carry the wrong label."""
        return attrs.evolve(augment, hflip=False) if self.count > 1 else augment

    def training_set(self, x: np.ndarray, y: np.ndarray, seed: int, hflip: bool
                     ) -> tuple[np.ndarray, np.ndarray]:
        """One epoch's images and labels (class * K + view), all drawn from `seed`."""
        if self.count == 1:
            return x, y
        rng = np.random.default_rng(seed)
        if hflip:
            flip = rng.random(len(x)) < 0.5
            x = np.where(flip.reshape(-1, *[1] * (x.ndim - 1)), x[:, :, ::-1], x)
        labels = np.asarray(y, dtype=np.int64) * self.count
        if self.copies == "all":
            return (np.concatenate([apply_view(x, self.transform, k) for k in range(self.count)]),
                    np.concatenate([labels + k for k in range(self.count)]))
        chosen = rng.integers(self.count, size=len(x))
        out = np.empty_like(x)
        for k in range(self.count):
            where = chosen == k
            out[where] = apply_view(x[where], self.transform, k)
        return out, labels + chosen

    def predict(self, backend: Backend, model, x: np.ndarray, subnets: list[Subnet],
                batch_size: int, mean, std, features: bool = False):
        """backend.predict with class scores summed over the views: logits [s, n, classes]
        per sub-network's class range; with features, also every view's features
        [views, s, n, d] (the image as it is first), from the same passes."""
        if self.count == 1:
            out = backend.predict(model, x, subnets, batch_size, mean, std, features=features)
            return (out[0], np.asarray(out[1])[None]) if features else out
        wide = [attrs.evolve(s, class_range=self.widen(s.class_range)) for s in subnets]
        total, kept = None, []
        for k in range(self.count):
            out = backend.predict(model, apply_view(x, self.transform, k), wide, batch_size,
                                  mean, std, features=features)
            logits, view_features = out if features else (out, None)
            kept.append(view_features)
            logits = np.asarray(logits, dtype=np.float32)
            scores = logits.reshape(*logits.shape[:2], -1, self.count)[..., k]
            total = scores if total is None else total + scores
        return (total, np.stack(kept)) if features else total

    def features(self, backend: Backend, model, x: np.ndarray, subnets: list[Subnet],
                 batch_size: int, mean, std, stats_views: str = "image") -> np.ndarray:
        """The sub-networks' features [views, s, n, d] of the images as they are, and with
        stats_views="all" of every other view too: one forward pass a view."""
        wide = [attrs.evolve(s, class_range=self.widen(s.class_range)) for s in subnets]
        count = self.count if stats_views == "all" else 1
        return np.stack([backend.predict(model, apply_view(x, self.transform, k), wide,
                                         batch_size, mean, std, features=True)[1]
                         for k in range(count)])
