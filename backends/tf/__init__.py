"""TensorFlow / Keras 3 backend. `TFBackend` lives in backends.tf.backend.

Importing this package does not import TensorFlow; `tf_import()` does, quietly, once.
"""

from __future__ import annotations

import os


def tf_import():
    """(tensorflow, keras) with Keras 3 on the TensorFlow backend and TF's C++ logs muted."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"Keras is configured for the {keras.backend.backend()!r} backend; the tf backend "
            "needs KERAS_BACKEND=tensorflow (set it before anything imports keras)."
        )
    return tf, keras
