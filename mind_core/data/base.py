"""The in-memory dataset every loader returns: numpy uint8 images and int64 labels."""

from __future__ import annotations

import attrs
import numpy as np

from mind_core.protocol import Augment


class DatasetError(Exception):
    """A dataset is missing, unreadable or malformed; the message says what and how to fix it."""


@attrs.frozen(kw_only=True)
class Dataset:
    name: str
    x_train: np.ndarray  # uint8 [n, h, w, c]
    y_train: np.ndarray  # int64 [n], original class ids 0..num_classes-1
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: tuple[str, ...] = ()
    mean: tuple[float, ...] = (0.5,)  # per channel, of x / 255
    std: tuple[float, ...] = (0.25,)
    augment: Augment = Augment()
    # Domain id per sample (CORe50 sessions) for domain-incremental scenarios; None otherwise.
    domains_train: np.ndarray | None = None
    domains_test: np.ndarray | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.x_train.shape[1:4])  # type: ignore[return-value]

    def facts(self) -> dict:
        """What predicting on new images needs to know of the data, as JSON (config.json's
        "data"): the image shape, the classes and the normalisation."""
        return {"name": self.name, "image_shape": list(self.image_shape),
                "num_classes": int(self.num_classes), "class_names": list(self.class_names),
                "mean": list(self.mean), "std": list(self.std)}
