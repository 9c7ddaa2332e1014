"""TFBackend: the mind_core Backend protocol on TensorFlow / Keras 3.

Models are Keras models (backends.tf.models) whose gated layers hold kernel and gate
variables; everything crossing the boundary is numpy in the canonical layout.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from backends.tf import tf_import
from backends.tf.convert import adopt, build_converted
from backends.tf.losses import distill_loss_fn
from backends.tf.models import build_network
from backends.tf.penalty import fisher
from backends.tf.training import Trainer, make_predict_fn
from mind_core.network import CUSTOM_ARCH, NO_NETWORK, NetworkError, describe
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
    outlier_count,
    outlier_turns,
)

tf, keras = tf_import()


def resolve_device(device: str) -> str:
    """"auto" | "cpu" | "cuda" | "cuda:i" | "gpu" | "gpu:i" | "/GPU:i" -> a TF device string."""
    gpus = tf.config.list_physical_devices("GPU")
    text = str(device).strip().lower().lstrip("/")
    if text == "auto":
        return "/GPU:0" if gpus else "/CPU:0"
    if text in ("cpu", "cpu:0"):
        return "/CPU:0"
    kind, _, index = text.partition(":")
    if kind in ("cuda", "gpu") and (index == "" or index.isdigit()):
        i = int(index or 0)
        if i >= len(gpus):
            raise ValueError(
                f"device {device!r} is not available: TensorFlow sees {len(gpus)} GPU(s)"
                + (" (is tensorflow-cpu installed instead of tensorflow[and-cuda]?)"
                   if not gpus else "")
                + "; use device='cpu' or 'auto'"
            )
        return f"/GPU:{i}"
    raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'gpu'")


def set_threads(threads: int | None) -> None:
    """TensorFlow's intra-op threads for this process (None: leave TF's default, every core).

    TF fixes them when its runtime starts (the first op or tensor), for the whole process.
    Asked for before that, they are set. Asked for again with the value in force (a sweep's
    trials that share a worker process all ask for the same), nothing happens. Asked for
    afterwards with another value (e.g. a user's Keras model built before the backend, which
    starts TF), TF cannot change them: a one-line RuntimeWarning says so and the process keeps
    the threads it has.
    """
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1:
        raise ValueError(f"threads must be a positive whole number or None, got {threads!r}")
    threads = int(threads)
    current = tf.config.threading.get_intra_op_parallelism_threads()
    if current == threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # "cannot be modified after initialization"
        kept = f"{current} intra-op threads" if current else "its default intra-op threads"
        warnings.warn(f"threads={threads} ignored: TensorFlow already started in this process "
                      f"with {kept}, which it keeps until the process ends",
                      RuntimeWarning, stacklevel=3)


class TFBackend:
    """The MIND backend for TensorFlow 2 / Keras 3."""

    name = "tf"

    def __init__(self, device: str = "auto", threads: int | None = None):
        set_threads(threads)  # first: resolving the device must not be what starts TF
        self.device = resolve_device(device)
        on_gpu = self.device.startswith("/GPU")
        # On CPU every op TF runs here is deterministic already (checked by the conformance
        # suite), so the process-wide enable_op_determinism switch is not needed.
        self.capabilities = frozenset({"gpu"} if on_gpu else {"deterministic"})
        self._adopted = None  # the blueprint of the user's network adopted last


    def versions(self) -> dict[str, str]:
        return {"tensorflow": tf.__version__, "keras": keras.__version__}

    # -- models and their state -------------------------------------------------------------
    def build_model(self, spec: ModelSpec, seed: int):
        with tf.device(self.device):
            if spec.arch != CUSTOM_ARCH:
                return build_network(spec.arch, spec.input_shape, spec.num_classes, seed)
            if self._adopted is None:
                raise NetworkError(NO_NETWORK)
            return build_converted(self._adopted, spec.input_shape, spec.num_classes, seed)

    def adopt_network(self, network, input_shape: tuple[int, int, int],
                      num_classes: int) -> str:
        with tf.device(self.device):
            blueprint, found = adopt(network, input_shape, num_classes)
        self._adopted = blueprint
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
        for name, value in weights.items():
            layer = _lookup(gated, name, "gated layer")
            value = _canonical(value, layer.canonical_shape, name, np.float32)
            layer.kernel.assign(layer.from_canonical(value))

    def get_bn(self, model) -> BNState:
        return {name: layer.get_state() for name, layer in model.bn.items()}

    def set_bn(self, model, state: BNState) -> None:
        bn = model.bn
        for name, values in state.items():
            _lookup(bn, name, "BatchNorm layer").set_state(values)

    def set_gates(self, model, gates: Masks | None) -> None:
        """None or a missing layer = dense (all ones)."""
        gates = gates or {}
        for name in gates:
            _lookup(model.gated, name, "gated layer")
        for name, layer in model.gated.items():
            if name in gates:
                g = _canonical(gates[name], layer.canonical_shape, name, np.float32)
                layer.gate.assign(layer.from_canonical(g))
            else:
                layer.gate.assign(tf.ones(layer.gate.shape))

    # -- training ------------------------------------------------------------------------------
    def start_phase(self, model, phase: PhaseSpec, trainable: Masks | None,
                    teacher=None, penalty: Penalty | None = None) -> Trainer:
        if trainable is not None:
            for name in trainable:
                _lookup(model.gated, name, "gated layer")
        with tf.device(self.device):
            return Trainer(model, phase, trainable, teacher, self.device, penalty)

    def train_epoch(self, trainer: Trainer, x: np.ndarray, y: np.ndarray, epoch: int,
                    seed: int, progress: ProgressFn | None = None,
                    should_stop: StopFn | None = None) -> EpochResult:
        start_time = time.perf_counter()
        n = len(x)
        batch_size = trainer.phase.batch_size
        batches = -(-n // batch_size)
        order = np.random.default_rng(seed).permutation(n).astype(np.int32)
        trainer.optimizer.lr.assign(trainer.phase.lr_at(epoch))
        seed64 = int(seed) % (2**63)
        # Reading the loss back stalls a GPU's queue, so there it happens every 16 batches.
        sync_every = 16 if self.device.startswith("/GPU") else 1
        totals = np.zeros(4)
        pending: list = []
        seen = 0
        stopped = False
        with tf.device(self.device):
            # The epoch's data goes to the device once; batches are gathered there.
            x_dev = tf.convert_to_tensor(np.ascontiguousarray(x, dtype=np.uint8))
            y_dev = tf.convert_to_tensor(np.asarray(y, dtype=np.int64))
            order_dev = tf.convert_to_tensor(order)
            for b in range(batches):
                if should_stop is not None and should_stop():
                    stopped = True
                    break
                lo = b * batch_size
                count = min(batch_size, n - lo)
                outliers = [outlier_turns(b, *trainer.model.input_hwc[:2]),
                            outlier_count(count)]
                pending.append((trainer.step(x_dev, y_dev, order_dev[lo:lo + count],
                                             tf.constant([seed64, b], tf.int64),
                                             tf.constant(outliers, tf.int32)), count))
                seen += count
                if b == 0 or (b + 1) % sync_every == 0 or b + 1 == batches:
                    totals += _drain(pending)
                if progress is not None:
                    progress(b + 1, batches, float(totals[0] / max(seen - _count(pending), 1)))
        totals += _drain(pending)
        mean = totals / max(seen, 1)
        return EpochResult(loss=float(mean[0]), ce=float(mean[1]), distill=float(mean[2]),
                           accuracy=float(mean[3]), images=seen,
                           seconds=time.perf_counter() - start_time, stopped=stopped)

    def trainer_state(self, trainer: Trainer) -> dict[str, np.ndarray]:
        return trainer.optimizer.state()

    def load_trainer_state(self, trainer: Trainer, state: dict[str, np.ndarray]) -> None:
        trainer.optimizer.load_state(state)

    # -- inference -----------------------------------------------------------------------------
    def predict(self, model, x: np.ndarray, subnets: list[Subnet], batch_size: int,
                mean: tuple[float, ...], std: tuple[float, ...], features: bool = False
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        widths = {hi - lo for lo, hi in (s.class_range for s in subnets)}
        if len(widths) > 1:
            raise ValueError(f"sub-networks have different class counts {sorted(widths)}")
        n = len(x)
        out = np.zeros((len(subnets), n, widths.pop() if widths else 0), np.float32)
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

    def fisher(self, model, x: np.ndarray, y: np.ndarray, class_range: tuple[int, int],
               batch_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Weights:
        """Diagonal empirical Fisher of every gated tensor (backends.tf.penalty.fisher)."""
        with tf.device(self.device):
            return fisher(model, x, y, class_range, batch_size, mean, std)

    # -- extras used by tests and tools ----------------------------------------------------------
    def distill_loss(self, name: str, teacher_logits: np.ndarray,
                     student_logits: np.ndarray) -> float:
        fn = distill_loss_fn(name)
        t = tf.constant(np.asarray(teacher_logits, np.float32))
        s = tf.constant(np.asarray(student_logits, np.float32))
        return float(fn(t, s).numpy())


def predict_fn(model):
    """The model's compiled inference forward, built on first use and kept on the model (a
    cache keyed by model elsewhere would keep every model alive through the function)."""
    fn = getattr(model, "_mind_predict_fn", None)
    if fn is None:
        fn = make_predict_fn(model)
        object.__setattr__(model, "_mind_predict_fn", fn)  # not a Keras-tracked attribute
    return fn


def _drain(pending: list) -> np.ndarray:
    """Sum of (loss, ce, distill) weighted by batch size, and correct counts; empties pending."""
    totals = np.zeros(4)
    for stats, count in pending:
        values = stats.numpy()
        totals[:3] += values[:3] * count
        totals[3] += values[3]
    pending.clear()
    return totals


def _count(pending: list) -> int:
    return sum(count for _, count in pending)


def _lookup(layers: dict, name: str, what: str):
    try:
        return layers[name]
    except KeyError:
        raise ValueError(f"no {what} named {name!r}; known: {', '.join(layers)}") from None


def _canonical(value, shape, name: str, dtype) -> np.ndarray:
    array = np.asarray(value, dtype=dtype)
    if array.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {array.shape}")
    return array
