"""What only the TF backend has to get right: Keras layouts and padding, its own BatchNorm and
AdamW, tf.function tracing, stateless augmentation, TF device names, intra-op threads, the
Fisher information and penalty of a user's Keras network with biases. The shared behaviour is
in test_conformance.py (run with MIND_TEST_BACKEND=tf)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import attrs
import numpy as np
import pytest

pytest.importorskip("tensorflow")

from backends.tf.augment import augment_batch  # noqa: E402
from backends.tf.backend import TFBackend, keras, predict_fn, resolve_device, tf  # noqa: E402
from backends.tf.ewc import fisher_fn  # noqa: E402
from backends.tf.layers import BatchNorm, GatedConv2D  # noqa: E402
from backends.tf.optim import MaskedAdamW  # noqa: E402
from mind_core.protocol import Augment, ModelSpec, Penalty, PhaseSpec, Subnet  # noqa: E402

SMALL = ModelSpec(arch="small_cnn", input_shape=(8, 8, 3), num_classes=4)


@pytest.fixture(scope="module")
def backend():
    return TFBackend(device="cpu")


def test_importing_the_package_does_not_import_tensorflow():
    code = "import sys, backends.tf; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


def test_versions_and_device_names(backend):
    assert set(backend.versions()) == {"tensorflow", "keras"}
    assert backend.device == "/CPU:0" and "deterministic" in backend.capabilities
    assert resolve_device("cpu") == "/CPU:0"
    gpus = len(tf.config.list_physical_devices("GPU"))
    assert resolve_device("auto") == ("/GPU:0" if gpus else "/CPU:0")
    with pytest.raises(ValueError, match=f"sees {gpus} GPU"):
        resolve_device(f"cuda:{gpus}")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")


def test_canonical_layout_is_the_transposed_keras_kernel(backend):
    model = backend.build_model(SMALL, seed=0)
    conv = np.arange(32 * 3 * 3 * 3, dtype=np.float32).reshape(32, 3, 3, 3)
    fc = np.arange(4 * 128, dtype=np.float32).reshape(4, 128)
    backend.set_weights(model, {"conv1": conv, "fc": fc})
    keras_conv = model.gated["conv1"].kernel.numpy()  # [kh, kw, in, out]
    assert keras_conv.shape == (3, 3, 3, 32)
    assert keras_conv[2, 1, 0, 5] == conv[5, 0, 2, 1]
    assert np.array_equal(model.gated["fc"].kernel.numpy(), fc.T)
    backend.set_gates(model, {"conv1": conv % 2 == 0})
    assert np.array_equal(model.gated["conv1"].gate.numpy(),
                          np.transpose(conv % 2 == 0, (2, 3, 1, 0)).astype(np.float32))


def conv_reference(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """Direct NHWC convolution, symmetric zero padding 1, canonical [out, in, 3, 3] weights."""
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h = (x.shape[1] + 2 - 3) // stride + 1
    wd = (x.shape[2] + 2 - 3) // stride + 1
    out = np.zeros((x.shape[0], h, wd, w.shape[0]), np.float64)
    for i in range(h):
        for j in range(wd):
            patch = xp[:, i * stride:i * stride + 3, j * stride:j * stride + 3, :]
            out[:, i, j, :] = np.einsum("nhwc,ochw->no", patch, w)
    return out


@pytest.mark.parametrize("size", [6, 7])
def test_stride_two_conv_pads_symmetrically_like_torch(size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, size, size, 3)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    layer = GatedConv2D(3, 4, 3, stride=2, padding=1)
    layer.kernel.assign(GatedConv2D.from_canonical(w))
    out = layer(tf.constant(x)).numpy()
    np.testing.assert_allclose(out, conv_reference(x, w, 2), rtol=1e-4, atol=1e-4)
    if size % 2 == 0:  # Keras "same" pads 0 before and 1 after here: a different result
        same = tf.nn.conv2d(x, GatedConv2D.from_canonical(w), 2, "SAME").numpy()
        assert not np.allclose(same, out, atol=1e-3)


def test_batchnorm_running_variance_is_unbiased_like_torch():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, (3, 2, 2, 5)).astype(np.float32)
    bn = BatchNorm(5)
    y = bn(tf.constant(x), training=True).numpy()
    flat = x.reshape(-1, 5).astype(np.float64)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.1 * flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.moving_var.numpy(), 0.9 + 0.1 * flat.var(0, ddof=1),
                               rtol=1e-5)
    # ...while the batch itself is normalised with the biased variance.
    expected = (x - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    before = bn.get_state()
    bn(tf.constant(x), training=False)
    assert all(np.array_equal(before[k], v) for k, v in bn.get_state().items())


def torch_adamw(p, grads, lr, wd, mask, b1=0.9, b2=0.999, eps=1e-8):
    """torch.optim.AdamW's update in float64, applied only where mask is True."""
    p, m, v = p.astype(np.float64), np.zeros_like(p, np.float64), np.zeros_like(p, np.float64)
    for step, g in enumerate(grads, start=1):
        new_p = p * (1 - lr * wd)
        new_m = b1 * m + (1 - b1) * g
        new_v = b2 * v + (1 - b2) * g * g
        denom = np.sqrt(new_v) / np.sqrt(1 - b2**step) + eps
        new_p = new_p - lr / (1 - b1**step) * new_m / denom
        p, m, v = (np.where(mask, new, old) for new, old in ((new_p, p), (new_m, m), (new_v, v)))
    return p


def test_masked_adamw_follows_torch_and_leaves_frozen_bits_alone():
    rng = np.random.default_rng(2)
    start = rng.normal(size=(4, 5)).astype(np.float32)
    mask = rng.random((4, 5)) < 0.5
    dense_start = rng.normal(size=(3,)).astype(np.float32)
    grads = [rng.normal(size=(4, 5)).astype(np.float32) for _ in range(3)]
    dense_grads = [rng.normal(size=(3,)).astype(np.float32) for _ in range(3)]
    var, dense = tf.Variable(start), tf.Variable(dense_start)
    opt = MaskedAdamW([var, dense], [tf.constant(mask), None], ["w", "b"], weight_decay=0.1)
    opt.lr.assign(0.01)
    step = tf.function(opt.apply, autograph=False)
    for g, d in zip(grads, dense_grads, strict=True):
        step([tf.constant(g), tf.constant(d)])
    got = var.numpy()
    assert np.array_equal(got[~mask], start[~mask])
    np.testing.assert_allclose(got, torch_adamw(start, grads, 0.01, 0.1, mask), rtol=1e-5)
    np.testing.assert_allclose(dense.numpy(), torch_adamw(dense_start, dense_grads, 0.01, 0.1,
                                                          np.ones(3, bool)), rtol=1e-5)
    state = opt.state()
    assert state["adamw.w.step"].tolist() == [3] and state["adamw.w.exp_avg"].shape == (4, 5)
    assert np.all(state["adamw.w.exp_avg"][~mask] == 0)
    assert np.all(state["adamw.w.exp_avg_sq"][mask] > 0)


def test_train_step_and_predict_are_traced_once(backend):
    model = backend.build_model(SMALL, seed=0)
    phase = PhaseSpec(kind="teacher", epochs=3, lr=0.01, milestones=(1,), gamma=0.5,
                      weight_decay=0.0, batch_size=8, class_range=(0, 4),
                      augment=Augment(crop_pad=1, hflip=True))
    trainer = backend.start_phase(model, phase, None)
    rng = np.random.default_rng(0)
    for epoch in range(3):  # 13 images: a short last batch, a new lr at epoch 1
        x = rng.integers(0, 256, (13, 8, 8, 3), dtype=np.uint8)
        backend.train_epoch(trainer, x, rng.integers(0, 4, 13), epoch=epoch, seed=epoch)
    assert trainer.step.experimental_get_tracing_count() == 1
    dense = {i.name: np.ones(i.shape, bool) for i in backend.layers(model)}
    for n, batch_size in ((5, 2), (9, 4)):
        subnets = [Subnet(gates=dense, bn=backend.get_bn(model), class_range=(0, 2)),
                   Subnet(gates=dense, bn={}, class_range=(2, 4))]
        backend.predict(model, np.zeros((n, 8, 8, 3), np.uint8), subnets, batch_size,
                        (0.5,), (0.5,))
    assert predict_fn(model).experimental_get_tracing_count() == 1


def test_augmentation_crops_flips_and_brightens_per_image():
    rng = np.random.default_rng(3)
    x = rng.integers(1, 256, (16, 5, 5, 1), dtype=np.uint8)
    aug = Augment(crop_pad=2, hflip=True, brightness=0.3)
    seed = tf.constant([4, 0], tf.int64)
    out = augment_batch(tf.constant(x), 0.0, 1.0, aug, seed).numpy()
    assert np.array_equal(out, augment_batch(tf.constant(x), 0.0, 1.0, aug, seed).numpy())
    other = augment_batch(tf.constant(x), 0.0, 1.0, aug, tf.constant([4, 1], tf.int64))
    assert not np.allclose(out, other.numpy())
    flips = shifts = 0
    for image, result in zip(x / 255.0, out, strict=True):
        # The output must equal one window of the zero-padded (maybe mirrored) image plus
        # one constant: that constant is the image's brightness shift.
        padded = np.pad(image, ((2, 2), (2, 2), (0, 0)))
        found = None
        for flip in (False, True):
            source = padded[:, ::-1] if flip else padded
            for i in range(5):
                for j in range(5):
                    delta = result - source[i:i + 5, j:j + 5]
                    if np.allclose(delta, delta.flat[0], atol=1e-5):
                        found = (flip, delta.flat[0])
        assert found is not None and abs(found[1]) <= 0.3 + 1e-6
        flips += found[0]
        shifts += abs(found[1]) > 1e-3
    assert 0 < flips < 16 and shifts > 12


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_threads_must_be_a_positive_whole_number(bad):
    with pytest.raises(ValueError, match="threads must be a positive whole number") as info:
        TFBackend(device="cpu", threads=bad)
    assert "\n" not in str(info.value)


def test_threads_are_set_before_tf_starts_and_a_late_change_is_one_warning():
    code = "\n".join([
        "import warnings",
        "from backends.tf.backend import TFBackend, tf",
        "TFBackend(device='cpu', threads=2)",
        "print(tf.config.threading.get_intra_op_parallelism_threads())",
        "tf.constant(1.0) + 1  # TF's runtime runs from here on",
        "with warnings.catch_warnings(record=True) as caught:",
        "    warnings.simplefilter('always')",
        "    for threads in (2, None, 3):",  # same value / default: nothing to say
        "        TFBackend(device='cpu', threads=threads)",
        "print(len(caught), caught[-1].category.__name__)",
        "print(caught[-1].message)",
        "print(tf.config.threading.get_intra_op_parallelism_threads())",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "2" and lines[1] == "1 RuntimeWarning" and lines[3] == "2"
    assert "threads=3 ignored" in lines[2] and "2 intra-op threads and 2 inter-op" in lines[2]


L = keras.layers


def keras_cnn():
    """A user's network with conv and dense biases (BN epsilon as MIND's, 1e-5)."""
    return keras.Sequential([
        keras.Input((6, 6, 1)),
        L.Conv2D(5, 3, padding="same", activation="relu", name="conv1"),
        L.BatchNormalization(epsilon=1e-5, name="bn1"),
        L.GlobalAveragePooling2D(name="gap"),
        L.Dense(4, name="fc"),
    ])


def adopted_cnn(backend):
    """(MIND's converted model with random weights, gates and BN, its gates, and the same
    network as plain Keras holding weight * gate)."""
    backend.adopt_network(keras_cnn(), (6, 6, 1), 4)
    model = backend.build_model(ModelSpec(arch="custom", input_shape=(6, 6, 1),
                                          num_classes=4), 0)
    rng = np.random.default_rng(5)
    weights = {i.name: rng.normal(0, 0.5, i.shape).astype(np.float32)
               for i in backend.layers(model)}
    gates = {name: rng.random(w.shape) < 0.7 for name, w in weights.items()}
    bn = {"bn1": {"gamma": rng.uniform(0.5, 1.5, 5), "beta": rng.normal(0, 0.5, 5),
                  "mean": rng.normal(0, 0.5, 5), "var": rng.uniform(0.5, 2.0, 5)}}
    bn = {"bn1": {k: v.astype(np.float32) for k, v in bn["bn1"].items()}}
    backend.set_weights(model, weights)
    backend.set_gates(model, gates)
    backend.set_bn(model, bn)
    reference = keras_cnn()
    effective = {name: w * gates[name] for name, w in weights.items()}
    reference.get_layer("conv1").set_weights([np.transpose(effective["conv1"], (2, 3, 1, 0)),
                                             effective["conv1.bias"]])
    reference.get_layer("fc").set_weights([effective["fc"].T, effective["fc.bias"]])
    reference.get_layer("bn1").set_weights([bn["bn1"][k] for k in ("gamma", "beta", "mean",
                                                                   "var")])
    return model, gates, reference


def test_fisher_of_a_keras_network_with_biases_is_its_squared_keras_gradient():
    backend = TFBackend(device="cpu")
    model, gates, reference = adopted_cnn(backend)
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, (11, 6, 6, 1), dtype=np.uint8)
    y = rng.integers(1, 3, 11)
    weights, bn = backend.get_weights(model), backend.get_bn(model)
    got = backend.fisher(model, x, y, (1, 3), 4, (0.4,), (0.3,))
    assert list(got) == ["conv1", "conv1.bias", "fc", "fc.bias", "bn1.gamma", "bn1.beta"]
    # Plain Keras, BN in training mode (FACIL's): the gradient with respect to weight * gate,
    # times the gate, is the gradient with respect to the weight; the two full batches of 4.
    bn1 = reference.get_layer("bn1")
    variables = [reference.get_layer("conv1").kernel, reference.get_layer("conv1").bias,
                 reference.get_layer("fc").kernel, reference.get_layer("fc").bias,
                 bn1.gamma, bn1.beta]
    expected = [np.zeros(v.shape, np.float64) for v in variables]
    for start in (0, 4):
        xb = (x[start:start + 4].astype(np.float32) / 255.0 - 0.4) / 0.3
        with tf.GradientTape() as tape:
            logits = reference(xb, training=True)[:, 1:3]
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                y[start:start + 4] - 1, logits))
        for total, g in zip(expected, tape.gradient(loss, variables), strict=True):
            total += g.numpy().astype(np.float64) ** 2 / 2
    layouts = {"conv1": (3, 2, 0, 1), "fc": (1, 0)}
    for (name, value), reference_value in zip(got.items(), expected, strict=True):
        if name in layouts:
            reference_value = np.transpose(reference_value, layouts[name])
        gate = gates.get(name, np.ones(value.shape, bool))  # BN has no gate
        assert value.dtype == np.float32 and value.shape == reference_value.shape
        assert np.all(value[~gate] == 0), name
        np.testing.assert_allclose(value, reference_value * gate, rtol=1e-4,
                                   atol=1e-6 * reference_value.max(), err_msg=name)
    assert np.all(got["fc"][[0, 3]] == 0) and np.all(got["fc.bias"][[0, 3]] == 0)
    assert_same_state(backend, model, weights, bn)


def assert_same_state(backend, model, weights, bn):
    for name, w in backend.get_weights(model).items():
        assert np.array_equal(w, weights[name]), name
    for name, values in backend.get_bn(model).items():
        assert all(np.array_equal(v, bn[name][k]) for k, v in values.items()), name


def test_penalty_on_a_users_biases_counts_in_the_loss_and_spares_frozen_entries():
    backend = TFBackend(device="cpu")
    model, gates, _ = adopted_cnn(backend)
    weights = backend.get_weights(model)
    rng = np.random.default_rng(7)
    # Anchors at least 1 away: AdamW's steps (about lr each) cannot overshoot them.
    anchor = {name: w + (rng.choice([-1, 1], w.shape) * rng.uniform(1, 2, w.shape)).astype(
        np.float32) for name, w in weights.items() if name.endswith(".bias")}
    importance = {name: rng.uniform(0, 2, w.shape).astype(np.float32)
                  for name, w in weights.items()}
    penalty = Penalty(weight=3.0, anchor=anchor, importance=importance)
    x = rng.integers(0, 256, (12, 6, 6, 1), dtype=np.uint8)
    y = rng.integers(0, 4, 12)
    ph = PhaseSpec(kind="teacher", epochs=1, lr=0.0, milestones=(), gamma=0.5,
                   weight_decay=0.0, batch_size=5, class_range=(0, 4), train_bn=False)
    still = backend.train_epoch(backend.start_phase(model, ph, None, penalty=penalty), x, y,
                                epoch=0, seed=0)
    value = 1.5 * sum(float((importance[k] * (weights[k] - a).astype(np.float64) ** 2).sum())
                      for k, a in anchor.items())
    assert still.loss - still.ce == pytest.approx(value, rel=1e-5)
    # A strong pull moves every trainable bias entry towards its anchor, no frozen one.
    trainable = {name: g & (rng.random(g.shape) < 0.5) for name, g in gates.items()}
    trainer = backend.start_phase(model, attrs.evolve(ph, lr=0.05, epochs=3),
                                  trainable, penalty=Penalty(weight=100.0, anchor=anchor,
                                                             importance=importance))
    for epoch in range(3):
        backend.train_epoch(trainer, x, y, epoch=epoch, seed=epoch)
    after = backend.get_weights(model)
    for name in weights:
        frozen = ~trainable[name]
        assert np.array_equal(after[name][frozen], weights[name][frozen]), name
    for name, a in anchor.items():
        moved = trainable[name]
        assert np.all(np.abs(after[name] - a)[moved] < np.abs(weights[name] - a)[moved]), name


def test_new_phase_options_compile_once_and_fisher_leaves_training_alone(backend):
    """Penalty, distill_range and temperature are fixed per phase: one trace for the phase.
    A Fisher computation between two epochs changes nothing the second epoch does."""
    rng = np.random.default_rng(8)
    x = rng.integers(0, 256, (21, 8, 8, 3), dtype=np.uint8)
    y = rng.integers(0, 4, 21)
    ph = PhaseSpec(kind="distill", epochs=3, lr=0.01, milestones=(1,), gamma=0.5,
                   weight_decay=0.01, batch_size=8, class_range=(0, 4), beta=1.0, loss="kl",
                   distill_range=(0, 2), distill_temperature=2.0)
    teacher = backend.build_model(SMALL, seed=1)
    runs = []
    for with_fisher in (False, True):
        model = backend.build_model(SMALL, seed=0)
        weights = backend.get_weights(model)
        penalty = Penalty(weight=2.0, anchor=weights,
                          importance={k: np.ones_like(w) for k, w in weights.items()})
        trainer = backend.start_phase(model, ph, None, teacher, penalty)
        for epoch in range(3):
            result = backend.train_epoch(trainer, x, y, epoch=epoch, seed=epoch)
            if with_fisher:
                for class_range, batch_size, n in (((0, 2), 4, 9), ((2, 4), 8, 21)):
                    keep = (y >= class_range[0]) & (y < class_range[1])
                    backend.fisher(model, x[keep][:n], y[keep][:n], class_range, batch_size,
                                   (0.5,), (0.5,))
        assert trainer.step.experimental_get_tracing_count() == 1
        runs.append((backend.get_weights(model), backend.get_bn(model),
                     backend.trainer_state(trainer), result.loss))
    assert fisher_fn(model).experimental_get_tracing_count() == 1
    for a, b in zip(runs[0][:3], runs[1][:3], strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], dict):
                assert all(np.array_equal(a[key][f], b[key][f]) for f in a[key]), key
            else:
                assert np.array_equal(a[key], b[key]), key
    assert runs[0][3] == runs[1][3]


def test_small_cnn_pools_before_its_relu_with_the_same_values_and_gradients(backend):
    """As in torch: max-pool then ReLU equals ReLU then max-pool, gradients included."""
    model = backend.build_model(SMALL, seed=0)
    for bn in (model.bn1, model.bn2, model.bn3):
        bn.gamma.assign(np.linspace(-1.5, 1.5, bn.gamma.shape[0]).astype(np.float32))
    x = tf.constant(np.random.default_rng(0).normal(size=(6, 9, 9, 3)).astype(np.float32))

    def relu_then_pool(x, training):
        for conv, bn, pool in ((model.conv1, model.bn1, True), (model.conv2, model.bn2, True),
                               (model.conv3, model.bn3, False)):
            x = tf.nn.relu(bn(conv(x), training=training))
            if pool:
                x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        return tf.reduce_mean(x, axis=(1, 2))

    results = []
    for features in (model.features, relu_then_pool):
        with tf.GradientTape() as tape:
            out = features(x, training=True)
            loss = tf.reduce_sum(out * tf.range(out.shape[1], dtype=out.dtype))
        grads = tape.gradient(loss, model.trainable_variables)
        results.append([out.numpy()] + [g.numpy() for g in grads if g is not None])
    assert len(results[0]) == len(results[1]) > 1
    for got, expected in zip(*results, strict=True):
        np.testing.assert_array_equal(got, expected)
