"""TFBackend: the mind_core Backend protocol on TensorFlow / Keras 3.

Models are Keras models (backends.tf.models) whose gated layers hold kernel and gate
variables; everything crossing the boundary is numpy in the canonical layout.
"""

from __future__ import annotations

import numpy as np

from backends.tf import tf_import
from backends.tf.amp import apply_policy, as_float32, resolve
from backends.tf.augment import normalise
from backends.tf.convert import adopt, build_converted
from backends.tf.ewc import fisher
from backends.tf.losses import distill_loss_fn
from backends.tf.models import build_network
from backends.tf.runtime import enable_memory_growth, set_threads, thread_counts
from backends.tf.trainer import JIT_COMPILE, Trainer, image_spec
from mind_core.backend_checks import (
    check_batch_size,
    check_bn_values,
    check_gpu_visible,
    check_known,
    check_shape,
    parse_device,
    subnet_width,
)
from mind_core.network import CUSTOM_ARCH, NO_NETWORK, NetworkError, describe
from mind_core.precision import AUTO, FP32
from mind_core.protocol import (
    BNState,
    EpochResult,
    LayerInfo,
    Masks,
    ModelSpec,
    Penalty,
    PhaseSpec,
    ProgressFn,
    StopFn,
    Subnet,
    Weights,
)

tf, keras = tf_import()


def resolve_device(device: str | None) -> str:
    """A device string (mind_core.backend_checks.parse_device) -> a TF device string."""
    request = parse_device(device)
    if request.kind == "cpu":
        return "/CPU:0"
    gpus = tf.config.list_physical_devices("GPU")
    if request.kind == "auto":
        return "/GPU:0" if gpus else "/CPU:0"
    check_gpu_visible(device, request, f"TensorFlow {tf.__version__}", len(gpus),
                      " (is tensorflow-cpu installed instead of tensorflow[and-cuda]?)")
    return f"/GPU:{request.index}"


class TFBackend:
    """The MIND backend for TensorFlow 2 / Keras 3."""

    name = "tf"

    def __init__(self, device: str = "auto", threads: int | None = None,
                 precision: str = "fp32"):
        # First: both are refused once TF has started, and resolving the device does not
        # start it (listing devices does not).
        set_threads(threads)
        enable_memory_growth()
        self.device = resolve_device(device)
        self.requested_precision = precision
        self.precision = resolve(precision, self.device)
        on_gpu = self.device.startswith("/GPU")
        # On CPU every op TF runs here is deterministic already (checked by the conformance
        # suite), so the process-wide enable_op_determinism switch is not needed.
        self.capabilities = frozenset({"gpu"} if on_gpu else {"deterministic"})
        self._adopted = None  # the blueprint of the user's network adopted last


    def thread_counts(self) -> dict[str, int]:
        return thread_counts()

    def versions(self) -> dict[str, str]:
        return {"tensorflow": tf.__version__, "keras": keras.__version__}

    # -- models and their state -------------------------------------------------------------
    def build_model(self, spec: ModelSpec, seed: int):
        with tf.device(self.device):
            if spec.arch != CUSTOM_ARCH:
                model = build_network(spec.arch, spec.input_shape, spec.num_classes, seed)
                apply_policy(model, self.precision)
                return model
            if self.precision != FP32:
                # A user's network may mix its own ops with our layers' bf16 outputs; only
                # the built-in models are checked in bf16 so far.
                raise NetworkError(f"precision: {self.precision} covers the built-in models "
                                   "in the tf backend; train your own network with "
                                   "precision=fp32")
            if self._adopted is None:
                raise NetworkError(NO_NETWORK)
            return build_converted(self._adopted, spec.input_shape, spec.num_classes, seed)

    def adopt_network(self, network, input_shape: tuple[int, int, int],
                      num_classes: int) -> str:
        with tf.device(self.device):
            blueprint, found = adopt(network, input_shape, num_classes)
        self._adopted = blueprint
        if self.requested_precision == AUTO:
            # auto means the best choice that is covered, and a user's network is covered in
            # fp32 only (build_model); an explicit bf16 is still refused there. The run
            # records the precision after this, so config.json says fp32.
            self.precision = FP32
        return describe(type(network).__name__, found)

    def layers(self, model) -> list[LayerInfo]:
        classifier = model.classifier_name
        # A classifier's bias is allocated by class rows like its weight.
        return [
            LayerInfo(name=name, shape=tuple(layer.canonical_shape), kind=layer.kind,
                      classifier=name == classifier
                      or (layer.kind == "bias" and name == f"{classifier}.bias"))
            for name, layer in model.gated.items()
        ]

    def bn_layers(self, model) -> list[str]:
        return list(model.bn)

    def get_weights(self, model) -> Weights:
        return {name: layer.to_canonical(layer.kernel.numpy())
                for name, layer in model.gated.items()}

    def set_weights(self, model, weights: Weights) -> None:
        gated = model.gated
        check_known(weights, gated, "weights")
        for name, value in weights.items():
            layer = gated[name]
            value = _canonical(value, layer.canonical_shape, f"weights of {name}")
            layer.kernel.assign(layer.from_canonical(value))

    def get_bn(self, model) -> BNState:
        return {name: layer.get_state() for name, layer in model.bn.items()}

    def set_bn(self, model, state: BNState) -> None:
        bn = model.bn
        check_known(state, bn, "BN state")
        for name, values in state.items():
            layer = bn[name]
            layer.set_state(check_bn_values(name, values, int(layer.gamma.shape[0])))

    def set_gates(self, model, gates: Masks | None) -> None:
        """None or a missing layer = dense (all ones)."""
        gates = gates or {}
        check_known(gates, model.gated, "gates")
        for name, layer in model.gated.items():
            if name in gates:
                g = _canonical(gates[name], layer.canonical_shape, f"gate of {name}")
                layer.gate.assign(layer.from_canonical(g))
            else:
                layer.gate.assign(tf.ones(layer.gate.shape))

    # -- training ------------------------------------------------------------------------------
    def start_phase(self, model, phase: PhaseSpec, trainable: Masks | None,
                    teacher=None, penalty: Penalty | None = None) -> Trainer:
        with tf.device(self.device):
            return Trainer(model, phase, trainable, teacher, self.device, penalty, self.precision)

    def train_epoch(self, trainer: Trainer, x: np.ndarray, y: np.ndarray, epoch: int,
                    seed: int, progress: ProgressFn | None = None,
                    should_stop: StopFn | None = None) -> EpochResult:
        return trainer.train_epoch(x, y, epoch, seed, progress, should_stop)

    def trainer_state(self, trainer: Trainer) -> dict[str, np.ndarray]:
        return trainer.state()

    def load_trainer_state(self, trainer: Trainer, state: dict[str, np.ndarray]) -> None:
        trainer.load_state(state)

    # -- inference -----------------------------------------------------------------------------
    def predict(self, model, x: np.ndarray, subnets: list[Subnet], batch_size: int,
                mean: tuple[float, ...], std: tuple[float, ...], features: bool = False
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        batch_size = check_batch_size(batch_size)
        width = subnet_width([s.class_range for s in subnets])
        n = len(x)
        out = np.zeros((len(subnets), n, width), np.float32)
        feats = (np.zeros((len(subnets), n, model.classifier.canonical_shape[1]), np.float32)
                 if features else None)
        fn = predict_fn(model)
        with tf.device(self.device):
            x_dev = tf.convert_to_tensor(np.ascontiguousarray(x, dtype=np.uint8))
            channels = x.shape[-1]
            mean_t = tf.constant(np.broadcast_to(np.asarray(mean, np.float32), (channels,)))
            std_t = tf.constant(np.broadcast_to(np.asarray(std, np.float32), (channels,)))
            for j, subnet in enumerate(subnets):
                self.set_gates(model, subnet.gates)
                self.set_bn(model, subnet.bn)
                # kernel * gate once per sub-network, not once per batch.
                kernels = {name: layer.effective_kernel() for name, layer in model.gated.items()}
                lo, hi = subnet.class_range
                for start in range(0, n, batch_size):
                    logits, hidden = fn(x_dev[start:start + batch_size], kernels, mean_t, std_t)
                    out[j, start:start + batch_size] = logits.numpy()[:, lo:hi]
                    if feats is not None:
                        feats[j, start:start + batch_size] = hidden.numpy()
        return out if feats is None else (out, feats)

    def fisher(self, model, x: np.ndarray, y: np.ndarray | None,
               class_range: tuple[int, int], batch_size: int, mean: tuple[float, ...],
               std: tuple[float, ...]) -> Weights:
        """Diagonal Fisher of every anchorable tensor (backends.tf.ewc.fisher)."""
        with tf.device(self.device):
            return fisher(model, x, y, class_range, batch_size, mean, std)

    # -- extras used by tests and tools ----------------------------------------------------------
    def distill_loss(self, name: str, teacher_logits: np.ndarray,
                     student_logits: np.ndarray) -> float:
        fn = distill_loss_fn(name)
        t = tf.constant(np.asarray(teacher_logits, np.float32))
        s = tf.constant(np.asarray(student_logits, np.float32))
        return float(fn(t, s).numpy())


def make_predict_fn(model):
    """Inference forward on uint8 images with precomputed effective kernels: (logits over
    every class, penultimate features). Its input signature's batch dimension is None, so
    the last, smaller batch does not retrace it."""
    kernel_specs = {name: tf.TensorSpec(layer.kernel.shape, tf.float32)
                    for name, layer in model.gated.items()}
    channels = model.input_hwc[2]

    @tf.function(
        input_signature=[image_spec(model), kernel_specs, tf.TensorSpec([channels], tf.float32),
                         tf.TensorSpec([channels], tf.float32)],
        jit_compile=JIT_COMPILE, autograph=False,
    )
    def forward(x, kernels, mean, std):
        hidden = model.features(normalise(x, mean, std), training=False, kernels=kernels)
        return as_float32(model.classify(hidden, kernels)), as_float32(hidden)

    return forward


def predict_fn(model):
    """The model's compiled inference forward, built on first use and kept on the model (a
    cache keyed by model elsewhere would keep every model alive through the function)."""
    fn = getattr(model, "_mind_predict_fn", None)
    if fn is None:
        fn = make_predict_fn(model)
        object.__setattr__(model, "_mind_predict_fn", fn)  # not a Keras-tracked attribute
    return fn


def _canonical(value, shape, what: str) -> np.ndarray:
    return check_shape(value, shape, what).astype(np.float32, copy=False)
