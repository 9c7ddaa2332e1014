"""A user's own Keras model trained by the TF backend (backends/tf/convert.py): what is
converted, how it is initialised, that the converted forward is Keras's own, that MIND's
freezing covers biases, what is refused, and a whole run through the engine."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from backends.tf.backend import TFBackend, keras, tf  # noqa: E402
from mind_core import checkpoint  # noqa: E402
from mind_core.config import resolve_config  # noqa: E402
from mind_core.engine import Engine  # noqa: E402
from mind_core.network import NO_NETWORK, NetworkError  # noqa: E402
from mind_core.protocol import ModelSpec, PhaseSpec, Subnet  # noqa: E402
from tests.fakes import tiny_dataset  # noqa: E402

L = keras.layers
KERAS_BN_EPSILON = 1e-3  # Keras's default; the reference models use MIND's 1e-5


def sequential_cnn(epsilon=KERAS_BN_EPSILON, with_input=True, classes=4):
    """8x8x1 images: same padding with a rectangular stride-2 kernel on an even size."""
    return keras.Sequential([
        *([keras.Input((8, 8, 1))] if with_input else []),
        L.Conv2D(6, 3, padding="same", activation="relu", name="conv1"),
        L.BatchNormalization(epsilon=epsilon, name="bn1"),
        L.MaxPooling2D(name="pool"),
        L.Conv2D(8, (3, 2), strides=2, padding="same", use_bias=False, name="conv2"),
        L.GlobalAveragePooling2D(name="gap"),
        L.Dropout(0.3, name="drop"),
        L.Dense(classes, name="fc"),
    ], name="user_cnn")


def residual_functional(epsilon=KERAS_BN_EPSILON):
    """7x7x1 images: valid padding, a dilated conv, a residual Add, stride 2 on an odd size."""
    inputs = keras.Input((7, 7, 1))
    stem = L.Conv2D(4, 3, padding="valid", name="stem")(inputs)
    branch = L.Conv2D(4, 3, padding="same", dilation_rate=2, name="branch")(stem)
    branch = L.ReLU(name="relu")(L.BatchNormalization(epsilon=epsilon, name="bn")(branch))
    x = L.Add(name="residual")([stem, branch])
    x = L.Conv2D(6, 3, strides=2, padding="same", name="down")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, L.Dense(3, name="head")(x), name="user_resnet")


def mlp(epsilon=KERAS_BN_EPSILON):
    inputs = keras.Input((6, 6, 1))
    x = L.Dense(16, name="hidden")(L.Flatten(name="flat")(inputs))
    x = L.Activation("relu", name="act")(L.BatchNormalization(epsilon=epsilon, name="bn")(x))
    return keras.Model(inputs, L.Dense(3, name="out")(x), name="user_mlp")


NETWORKS = {  # builder, image shape, classes, classifier
    "cnn": (sequential_cnn, (8, 8, 1), 4, "fc"),
    "residual": (residual_functional, (7, 7, 1), 3, "head"),
    "mlp": (mlp, (6, 6, 1), 3, "out"),
}


def adopted(kind: str, seed: int = 0):
    """(backend, user network, converted model built from `seed`)."""
    builder, shape, classes, _ = NETWORKS[kind]
    backend, network = TFBackend(device="cpu"), builder()
    backend.adopt_network(network, shape, classes)
    model = backend.build_model(ModelSpec(arch="custom", input_shape=shape,
                                          num_classes=classes), seed)
    return backend, network, model


def randomise(backend, model, seed: int) -> None:
    """Random weights, biases and BN state, so a comparison is not between zeros."""
    rng = np.random.default_rng(seed)
    backend.set_weights(model, {i.name: rng.normal(0, 0.5, i.shape).astype(np.float32)
                                for i in backend.layers(model)})
    backend.set_bn(model, {name: {
        "gamma": rng.uniform(0.5, 1.5, len(v["gamma"])).astype(np.float32),
        "beta": rng.normal(0, 0.5, len(v["gamma"])).astype(np.float32),
        "mean": rng.normal(0, 0.5, len(v["gamma"])).astype(np.float32),
        "var": rng.uniform(0.5, 2.0, len(v["gamma"])).astype(np.float32),
    } for name, v in backend.get_bn(model).items()})


def keras_reference(kind: str, backend, model):
    """The same architecture as plain Keras (BN epsilon 1e-5) holding the model's weights."""
    reference = NETWORKS[kind][0](epsilon=1e-5)
    weights, bn = backend.get_weights(model), backend.get_bn(model)
    for layer in reference.layers:
        if isinstance(layer, L.BatchNormalization):
            state = bn[layer.name]
            layer.set_weights([state["gamma"], state["beta"], state["mean"], state["var"]])
            continue
        if isinstance(layer, L.Conv2D):
            values = [np.transpose(weights[layer.name], (2, 3, 1, 0))]
        elif isinstance(layer, L.Dense):
            values = [weights[layer.name].T]
        else:
            continue
        if layer.use_bias:
            values.append(weights[f"{layer.name}.bias"])
        layer.set_weights(values)
    return reference


def images(shape, n=5, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def test_layers_follow_the_forward_order_with_biases_and_the_core_classifier():
    backend = TFBackend(device="cpu")
    text = backend.adopt_network(residual_functional(), (7, 7, 1), 3)
    assert text == "Functional: 3 conv, 1 linear, 1 BatchNorm layers"
    model = backend.build_model(ModelSpec(arch="custom", input_shape=(7, 7, 1),
                                          num_classes=3), 0)
    infos = backend.layers(model)
    assert [(i.name, i.kind, i.shape) for i in infos] == [
        ("stem", "conv", (4, 1, 3, 3)), ("stem.bias", "bias", (4,)),
        ("branch", "conv", (4, 4, 3, 3)), ("branch.bias", "bias", (4,)),
        ("down", "conv", (6, 4, 3, 3)), ("down.bias", "bias", (6,)),
        ("head", "linear", (3, 6)), ("head.bias", "bias", (3,))]
    assert [i.name for i in infos if i.classifier] == ["head", "head.bias"]
    assert backend.bn_layers(model) == ["bn"]
    cnn_backend, _, cnn = adopted("cnn")
    assert [i.name for i in cnn_backend.layers(cnn)] == ["conv1", "conv1.bias", "conv2", "fc",
                                                         "fc.bias"]


def test_built_in_models_keep_their_classifier():
    backend = TFBackend(device="cpu")
    model = backend.build_model(ModelSpec(arch="small_cnn", input_shape=(8, 8, 1),
                                          num_classes=4), 0)
    assert [(i.name, i.classifier) for i in backend.layers(model)] == [
        ("conv1", False), ("conv2", False), ("conv3", False), ("fc", True)]


def test_same_seed_same_weights_biases_zero_and_bn_fresh():
    backend, _, first = adopted("cnn", seed=3)
    again = backend.build_model(ModelSpec(arch="custom", input_shape=(8, 8, 1),
                                          num_classes=4), 3)
    other = backend.build_model(ModelSpec(arch="custom", input_shape=(8, 8, 1),
                                          num_classes=4), 4)
    weights, weights_again = backend.get_weights(first), backend.get_weights(again)
    assert all(np.array_equal(weights[k], weights_again[k]) for k in weights)
    assert not np.array_equal(weights["conv1"], backend.get_weights(other)["conv1"])
    assert not np.any(weights["conv1.bias"]) and not np.any(weights["fc.bias"])
    # He-normal from the seed's generator, drawn in layer order (biases draw nothing).
    rng = np.random.default_rng(3)
    expected = rng.standard_normal((6, 1, 3, 3)) * np.sqrt(2.0 / 9)
    assert np.array_equal(weights["conv1"], expected.astype(np.float32))
    expected = rng.standard_normal((8, 6, 3, 2)) * np.sqrt(2.0 / 36)
    assert np.array_equal(weights["conv2"], expected.astype(np.float32))
    state = backend.get_bn(first)["bn1"]
    assert np.all(state["gamma"] == 1) and np.all(state["var"] == 1)
    assert not np.any(state["beta"]) and not np.any(state["mean"])


def test_get_set_round_trip():
    backend, _, model = adopted("mlp")
    randomise(backend, model, seed=1)
    weights, bn = backend.get_weights(model), backend.get_bn(model)
    copy = backend.build_model(ModelSpec(arch="custom", input_shape=(6, 6, 1),
                                         num_classes=3), 9)
    backend.set_weights(copy, weights)
    backend.set_bn(copy, bn)
    assert all(np.array_equal(weights[k], v) for k, v in backend.get_weights(copy).items())
    assert all(np.array_equal(bn[k][f], v[f]) for k, v in backend.get_bn(copy).items()
               for f in v)
    x = tf.constant(images((6, 6, 1)), tf.float32) / 255.0
    assert np.array_equal(model(x).numpy(), copy(x).numpy())


@pytest.mark.parametrize("kind", sorted(NETWORKS))
def test_converted_forward_is_keras_forward(kind):
    backend, _, model = adopted(kind)
    randomise(backend, model, seed=2)
    reference = keras_reference(kind, backend, model)
    x = tf.constant(images(NETWORKS[kind][1]), tf.float32) / 255.0
    np.testing.assert_allclose(model(x, training=False).numpy(),
                               reference(x, training=False).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["cnn", "residual"])
def test_predict_logits_and_features_are_the_forward_and_the_classifier_input(kind):
    backend, _, model = adopted(kind)
    randomise(backend, model, seed=3)
    _, shape, classes, head = NETWORKS[kind]
    reference = keras_reference(kind, backend, model)
    rng = np.random.default_rng(4)
    gates = {i.name: rng.random(i.shape) < 0.7 for i in backend.layers(model)}
    bn = backend.get_bn(model)
    x = images(shape, n=7)
    logits, features = backend.predict(model, x, [Subnet(gates=gates, bn=bn,
                                                         class_range=(0, classes))],
                                       3, (0.5,), (0.25,), features=True)
    backend.set_gates(model, gates)
    normalised = (tf.constant(x, tf.float32) / 255.0 - 0.5) / 0.25
    np.testing.assert_allclose(logits[0], model(normalised).numpy(), rtol=1e-5, atol=1e-5)
    # Dense gates: the features are what Keras's classifier gets as input.
    logits, features = backend.predict(model, x, [Subnet(gates={}, bn=bn,
                                                         class_range=(0, classes))],
                                       4, (0.5,), (0.25,), features=True)
    classifier_input = keras.Model(reference.inputs, reference.get_layer(head).input)
    np.testing.assert_allclose(features[0], classifier_input(normalised).numpy(),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits[0], reference(normalised).numpy(), rtol=1e-4, atol=1e-5)


def distill_phase(classes: int) -> PhaseSpec:
    return PhaseSpec(kind="distill", epochs=2, lr=0.05, milestones=(), gamma=1.0,
                     weight_decay=0.01, batch_size=8, class_range=(0, classes), beta=1.0)


def test_distill_with_a_trainable_mask_keeps_every_frozen_entry_bit_identical():
    backend, _, model = adopted("residual", seed=1)
    teacher = backend.build_model(ModelSpec(arch="custom", input_shape=(7, 7, 1),
                                            num_classes=3), 2)
    rng = np.random.default_rng(5)
    trainable = {i.name: rng.random(i.shape) < 0.5 for i in backend.layers(model)}
    before = backend.get_weights(model)
    trainer = backend.start_phase(model, distill_phase(3), trainable, teacher=teacher)
    x, y = images((7, 7, 1), n=20, seed=6), rng.integers(0, 3, 20)
    for epoch in range(2):
        backend.train_epoch(trainer, x, y, epoch=epoch, seed=epoch)
    after = backend.get_weights(model)
    for name, mask in trainable.items():
        assert np.array_equal(after[name][~mask], before[name][~mask]), name
    assert not np.array_equal(after["head.bias"], before["head.bias"])
    assert not np.array_equal(after["stem.bias"], before["stem.bias"])
    assert {key.split(".exp_avg")[0] for key in backend.trainer_state(trainer)
            if key.endswith(".exp_avg")} >= {"adamw.head.bias", "adamw.head.weight"}


def test_dropout_training_is_repeatable_and_the_users_model_is_untouched():
    network = sequential_cnn(with_input=False)  # unbuilt: its Conv2D/Dense/BN have no weights
    built = [layer.built for layer in network.layers]
    functional = residual_functional()
    snapshot = [w.numpy().copy() for w in functional.weights]
    nodes = [len(layer._inbound_nodes) for layer in functional.layers]
    backend = TFBackend(device="cpu")
    results = []
    for _ in range(2):
        backend.adopt_network(network, (8, 8, 1), 4)
        model = backend.build_model(ModelSpec(arch="custom", input_shape=(8, 8, 1),
                                              num_classes=4), 7)
        phase = PhaseSpec(kind="teacher", epochs=1, lr=0.05, milestones=(), gamma=1.0,
                          weight_decay=0.0, batch_size=4, class_range=(0, 4))
        trainer = backend.start_phase(model, phase, None)
        backend.train_epoch(trainer, images((8, 8, 1), n=12), np.arange(12) % 4, 0, seed=1)
        results.append(backend.get_weights(model))
    assert all(np.array_equal(results[0][k], results[1][k]) for k in results[0])
    assert not network.built and not network.weights
    assert [layer.built for layer in network.layers] == built and not built[0]
    backend.adopt_network(functional, (7, 7, 1), 3)
    backend.build_model(ModelSpec(arch="custom", input_shape=(7, 7, 1), num_classes=3), 0)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(snapshot, functional.weights,
                                                            strict=True))
    assert [len(layer._inbound_nodes) for layer in functional.layers] == nodes


def with_head(*body, classes=4, head=None):
    inputs = keras.Input((8, 8, 1))
    x = inputs
    for layer in body:
        x = layer(x)
    return keras.Model(inputs, (head or L.Dense(classes, name="fc"))(x))


REFUSED = {
    "layer norm": (lambda: with_head(L.LayerNormalization(name="ln"), L.Flatten()),
                   "'ln' (LayerNormalization) is not supported"),
    "unbuilt layer norm": (lambda: keras.Sequential([L.LayerNormalization(name="ln"),
                                                     L.Flatten(), L.Dense(4)]),
                           "'ln' (LayerNormalization) is not supported"),
    "depthwise subclass": (lambda: with_head(type("MyDepthwise", (L.DepthwiseConv2D,), {})(
        3, name="dw"), L.Flatten()), "'dw' (MyDepthwise) is not supported"),
    "tanh": (lambda: with_head(L.Conv2D(2, 3, activation="tanh", name="c"), L.Flatten()),
             "Conv2D with activation 'tanh'"),
    "softmax hidden": (lambda: with_head(L.Flatten(), L.Dense(5, activation="softmax",
                                                              name="h")),
                       "layer 'h' applies softmax: only the classifier ('fc') may"),
    "softmax after a softmax": (lambda: keras.Sequential([
        keras.Input((8, 8, 1)), L.Flatten(), L.Dense(4, activation="softmax", name="fc"),
        L.Softmax(name="probs"), L.Softmax(name="again")]), "output comes from layer 'again'"),
    "width": (lambda: with_head(L.Flatten(), classes=3), "has 3 outputs but the data has 4"),
    "4-D classifier input": (lambda: with_head(), "gets a 4-D input"),
    "fails": (lambda: keras.Sequential([L.Reshape((5, 5, 1)), L.Flatten(), L.Dense(4)]),
              "fails on a batch of 8x8x1 images: "),
    "declared input": (lambda: keras.Sequential([keras.Input((9, 9, 1)), L.Flatten(),
                                                 L.Dense(4)]),
                       "input is (9, 9, 1) but the data's images are 8x8x1"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_cannot_be_converted_is_a_one_line_network_error(case):
    builder, message = REFUSED[case]
    backend = TFBackend(device="cpu")
    with pytest.raises(NetworkError) as info:
        backend.adopt_network(builder(), (8, 8, 1), 4)
    assert message in str(info.value) and "\n" not in str(info.value)


SOFTMAX_ENDINGS = {  # a Keras classifier's usual softmax, and the warning's words for it
    "activation": ([L.Dense(4, activation="softmax", name="fc")], "the activation of 'fc'"),
    "layer": ([L.Dense(4, name="fc"), L.Softmax(name="probs")], "layer 'probs'"),
    "activation layer": ([L.Dense(4, name="fc"), L.Activation("softmax", name="act")],
                         "layer 'act'"),
}


@pytest.mark.parametrize("ending", sorted(SOFTMAX_ENDINGS))
def test_the_classifiers_softmax_is_stripped_with_a_warning_and_logits_used(ending):
    layers, words = SOFTMAX_ENDINGS[ending]
    network = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(name="flat"), *layers])
    backend = TFBackend(device="cpu")
    with pytest.warns(UserWarning, match="MIND removed the softmax") as caught:
        backend.adopt_network(network, (8, 8, 1), 4)
    assert len(caught) == 1 and words in str(caught[0].message)
    assert "\n" not in str(caught[0].message)
    model = backend.build_model(ModelSpec(arch="custom", input_shape=(8, 8, 1),
                                          num_classes=4), 0)
    randomise(backend, model, seed=5)
    weights = backend.get_weights(model)
    network.get_layer("fc").set_weights([weights["fc"].T, weights["fc.bias"]])
    x = tf.constant(images((8, 8, 1)), tf.float32) / 255.0
    logits = model(x, training=False).numpy()
    assert not np.allclose(logits.sum(axis=1), 1.0)  # logits, not probabilities
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), network(x).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_custom_without_an_adopted_network_is_a_network_error():
    with pytest.raises(NetworkError) as info:
        TFBackend(device="cpu").build_model(ModelSpec(arch="custom", input_shape=(8, 8, 1),
                                                      num_classes=4), 0)
    assert str(info.value) == NO_NETWORK


def test_engine_trains_a_keras_cnn_over_two_tasks(tmp_path):
    dataset = tiny_dataset()  # 6 classes of 6x6x1 images
    network = keras.Sequential([
        keras.Input((6, 6, 1)),
        L.Conv2D(8, 3, padding="same", name="features.conv"),
        L.BatchNormalization(name="features.bn"), L.ReLU(),
        L.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="features.down"),
        L.GlobalAveragePooling2D(), L.Dense(6, name="classifier"),
    ])
    backend = TFBackend(device="cpu")
    backend.adopt_network(network, dataset.image_shape, dataset.num_classes)
    cfg = resolve_config("smoke", {"model": "custom", "tasks": 2, "backend": "tf",
                                   "device": "cpu", "teacher.epochs": 8, "distill.epochs": 6,
                                   "teacher.batch_size": 16, "distill.batch_size": 16})
    metrics = Engine(cfg, backend, dataset, tmp_path).run()
    assert metrics["tasks_done"] == 2
    assert metrics["final"]["taw"] > 0.75  # 3 classes per task: chance is 1/3
    saved = checkpoint.load(tmp_path / "checkpoint" / "task-1.safetensors")
    assert set(saved.weights) == {"features.conv", "features.conv.bias", "features.down",
                                  "features.down.bias", "classifier", "classifier.bias"}
    assert set(saved.bn_snapshots[0]) == {"features.bn"}
