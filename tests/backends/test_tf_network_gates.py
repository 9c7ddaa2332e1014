"""A user's Keras model that would run weights outside MIND's gates, or carries a setting MIND
would silently drop, is refused at conversion (backends/tf/convert.py);
test_torch_network_gates.py is the PyTorch mirror.

Such a model used to convert silently: a Dense called inside a Lambda ran the user's own
weights, ungated and untrained, and a regularizer, a constraint, a frozen layer or a
BatchNormalization called with training=False were ignored."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")

from backends.tf.backend import TFBackend, keras  # noqa: E402
from mind_core.network import NetworkError  # noqa: E402

L = keras.layers
SHAPE = (6, 6, 1)
CLASSES = 4


def net(middle=None, *, hidden=None, head=None, bn_call=None):
    """flatten -> `middle` (a function of the tensor) -> hidden Dense -> BN -> head."""
    inputs = keras.Input(SHAPE)
    x = L.Flatten(name="flat")(inputs)
    if middle is not None:
        x = middle(x)
    x = (hidden or L.Dense(16, activation="relu", name="hidden"))(x)
    x = L.BatchNormalization(name="bn")(x, **(bn_call or {}))
    return keras.Model(inputs, (head or L.Dense(CLASSES, name="out"))(x))


def apply_closure(x):
    """A Lambda's function that calls a layer the model's graph does not show: Keras rebuilds
    a named function from its config, so the user's layer itself runs."""
    return CLOSURE_DENSE(x)


CLOSURE_DENSE = None


def lambda_over_a_dense():
    global CLOSURE_DENSE
    CLOSURE_DENSE = L.Dense(36, name="inner")
    return net(L.Lambda(apply_closure, name="lam"))


def lambda_closing_over_a_dense():
    inner = L.Dense(36, name="inner")
    return net(L.Lambda(lambda x: inner(x), name="lam"))


def matmul_on_a_kernel():
    inner = L.Dense(36, name="inner")
    inner.build((None, 36))
    return net(lambda x: keras.ops.matmul(x, inner.kernel))


REFUSED = {
    "Dense inside a Lambda": (lambda_over_a_dense,
                              r"runs weights that are not its layers' own \(variable "
                              r"'(lam|inner)/kernel'.*call that layer in the model itself"),
    "Dense in a lambda's closure": (lambda_closing_over_a_dense,
                                    r"runs weights that are not its layers' own"),
    "keras.ops on a kernel": (matmul_on_a_kernel, r"variable 'inner/kernel'"),
    "BatchNormalization training=False": (lambda: net(bn_call={"training": False}),
                                          r"layer 'bn' is called with training=False, which "
                                          r"MIND would ignore"),
    "kernel_regularizer": (lambda: net(hidden=L.Dense(16, kernel_regularizer="l2",
                                                      name="hidden")),
                           r"layer 'hidden' sets kernel_regularizer, which MIND would ignore"),
    "bias_regularizer on the classifier": (
        lambda: net(head=L.Dense(CLASSES, bias_regularizer="l1", name="out")),
        r"layer 'out' sets bias_regularizer.*weight_decay"),
    "kernel_constraint": (lambda: net(hidden=L.Dense(16, kernel_constraint="non_neg",
                                                     name="hidden")),
                          r"layer 'hidden' sets kernel_constraint, which MIND would ignore"),
    "ActivityRegularization": (lambda: net(L.ActivityRegularization(l2=0.1, name="reg")),
                               r"layer 'reg' adds a loss \(an activity regularizer\)"),
    "activity_regularizer": (lambda: net(hidden=L.Dense(16, activity_regularizer="l2",
                                                        name="hidden")),
                             r"layer 'hidden' sets activity_regularizer"),
    "frozen layer": (lambda: net(hidden=L.Dense(16, trainable=False, name="hidden")),
                     r"layer 'hidden' is frozen \(trainable=False\)"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_weights_outside_the_gates_or_a_dropped_setting_is_one_network_error(case):
    make, message = REFUSED[case]
    backend = TFBackend(device="cpu")
    with pytest.raises(NetworkError, match=message) as caught:
        backend.adopt_network(make(), SHAPE, CLASSES)
    assert "\n" not in str(caught.value)
    assert backend._adopted is None


def test_parameter_free_lambdas_and_training_none_are_accepted():
    scale = 2.0
    network = net(L.Lambda(lambda x: scale * x, name="double"), bn_call={"training": None})
    assert TFBackend(device="cpu").adopt_network(network, SHAPE, CLASSES) == \
        "Functional: 0 conv, 2 linear, 1 BatchNorm layers"
