"""The Backend protocol and the value types that cross the core/backend boundary.

Only numpy arrays, Python scalars/strings and the attrs objects below cross it. Models,
teachers and trainers are opaque handles: the core stores them and passes them back, never
opens them. Weight arrays are always in the canonical layout: conv [out, in, kh, kw],
linear [out, in], float32. BatchNorm state is {layer: {"gamma", "beta", "mean", "var"}}.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import attrs
import numpy as np

from mind_core.network import CUSTOM_ARCH

Weights = dict[str, np.ndarray]
"""Gated layer name (stable dotted path) -> canonical float32 weight."""
Masks = dict[str, np.ndarray]
"""Gated layer name -> bool array of the layer's canonical shape."""
BNState = dict[str, dict[str, np.ndarray]]
"""BatchNorm layer name -> {"gamma", "beta", "mean", "var"} float32 vectors."""

ProgressFn = Callable[[int, int, float], None]
"""progress(batch_done, batch_total, running_loss): called by a backend during an epoch."""
StopFn = Callable[[], bool]
"""should_stop(): polled by a backend between batches; True abandons the epoch."""

ARCHS = ("small_cnn", "resnet32")  # built in; CUSTOM_ARCH is a user's network (network.py)
# The smallest image side each architecture can take: small_cnn halves its input twice (two
# 2x2 max-pools), so a side under 4 pixels pools away to nothing; resnet32's strided
# convolutions are padded and take any size.
MIN_IMAGE_SIDE = {"small_cnn": 4, "resnet32": 1}
LOSSES = ("sym_kl", "true_js", "kl", "cosine", "l2")
MASKINGS = ("zero", "slice")
PHASE_KINDS = ("teacher", "distill")


@attrs.frozen(kw_only=True)
class ModelSpec:
    """What to build. Every conv/linear layer is bias-free and gated; BN layers are not."""

    arch: str = attrs.field(validator=attrs.validators.in_((*ARCHS, CUSTOM_ARCH)))
    input_shape: tuple[int, int, int]  # (height, width, channels)
    num_classes: int


@attrs.frozen(kw_only=True)
class LayerInfo:
    name: str  # stable dotted path, identical in every backend
    shape: tuple[int, ...]  # canonical shape
    kind: str  # "conv" | "linear" | "bias" (a user's conv/linear bias, [out], owned like weights)
    classifier: bool = False  # the output layer: allocated by class rows


@attrs.frozen(kw_only=True)
class Augment:
    """Train-time augmentation, applied by the backend on device tensors."""

    crop_pad: int = 0  # random crop back to the input size after zero padding by this many px
    hflip: bool = False
    brightness: float = 0.0  # add U(-b, b) to normalised pixels, per image


def _one_of(choices: tuple[str, ...]):
    def check(inst, attribute, value):
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {', '.join(choices)}; "
                             f"got {value!r}")
    return check


def _whole(minimum: int):
    def check(inst, attribute, value):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) \
                or value < minimum:
            raise ValueError(f"{attribute.name} must be a whole number >= {minimum}, "
                             f"got {value!r}")
    return check


def _number(minimum: float, inclusive: bool = True):
    """A finite real number >= minimum (> minimum when not inclusive); NaN always fails."""
    def check(inst, attribute, value):
        ok = (not isinstance(value, bool) and isinstance(value, int | float | np.number)
              and math.isfinite(value) and (value >= minimum if inclusive else value > minimum))
        if not ok:
            raise ValueError(f"{attribute.name} must be a finite number "
                             f"{'>=' if inclusive else '>'} {minimum}, got {value!r}")
    return check


def _class_range(inst, attribute, value):
    if value is None and attribute.name == "distill_range":
        return
    try:
        lo, hi = value
        ok = all(not isinstance(v, bool) and isinstance(v, int | np.integer) for v in value)
    except (TypeError, ValueError):
        ok = False
    if not ok or not 0 <= lo < hi:
        raise ValueError(f"{attribute.name} must be a class range (lo, hi) with "
                         f"0 <= lo < hi, got {value!r}")


def _milestones(inst, attribute, value):
    if any(isinstance(m, bool) or not isinstance(m, int | np.integer) or m <= 0
           for m in value) or list(value) != sorted(set(value)):
        raise ValueError(f"milestones must be increasing positive epochs, got {value!r}")


def _std(inst, attribute, value):
    if len(value) != len(inst.mean):
        raise ValueError(f"mean {inst.mean!r} and std {value!r} must have the same length "
                         "(one value per channel, or one for all)")
    if not all(math.isfinite(s) and s > 0 for s in value):
        raise ValueError(f"std must be finite numbers > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class PhaseSpec:
    """One training phase (teacher or distill) of one task, as the backend must run it.

    It checks its values when built (a ValueError naming the field), with the config's bounds
    where the config has the same setting, so every backend receives a valid spec; only what
    depends on the model (the ranges against its classes) is left to
    mind_core.backend_checks.check_phase_fits. lr may be 0 (tests measure losses at lr 0).
    """

    kind: str = attrs.field(validator=_one_of(PHASE_KINDS))
    epochs: int = attrs.field(validator=_whole(0))
    lr: float = attrs.field(validator=_number(0))
    # MultiStep: lr * gamma ** (number of milestones <= epoch)
    milestones: tuple[int, ...] = attrs.field(validator=_milestones)
    gamma: float = attrs.field(validator=_number(0, inclusive=False))
    weight_decay: float = attrs.field(validator=_number(0))
    batch_size: int = attrs.field(validator=_whole(1))
    # [lo, hi): the active task's classes
    class_range: tuple[int, int] = attrs.field(validator=_class_range)
    # "zero": multiply other logits by 0; "slice": keep [lo, hi) only
    logit_masking: str = attrs.field(default="zero", validator=_one_of(MASKINGS))
    # distillation weight (a distill phase with a teacher only, see distils)
    beta: float = attrs.field(default=0.0, validator=_number(0))
    loss: str = attrs.field(default="sym_kl", validator=_one_of(LOSSES))
    train_bn: bool = True  # False: BN parameters and running statistics stay as they are
    # Routing-aware training (distill phase): weight of a loss pushing the student's task
    # logits towards uniform on rotated copies of the batch (see outlier_turns).
    outlier_weight: float = attrs.field(default=0.0, validator=_number(0))
    # Which classes' logits the distillation term compares (None: class_range) and the
    # temperature both sides' logits are divided by first (no T^2 factor: LwF's L_old, Li and
    # Hoiem 2016, is weighted by beta alone). LwF distils the old classes (0, lo) at T = 2.
    distill_range: tuple[int, int] | None = attrs.field(default=None, validator=_class_range)
    distill_temperature: float = attrs.field(default=1.0,
                                             validator=_number(0, inclusive=False))
    mean: tuple[float, ...] = (0.0,)  # per-channel normalisation of x/255
    std: tuple[float, ...] = attrs.field(default=(1.0,), validator=_std)
    augment: Augment = Augment()

    @property
    def distils(self) -> bool:
        """Whether the phase has a distillation term, hence needs a teacher: the one rule
        the engine, the baselines and every backend go by."""
        return self.kind == "distill" and self.beta > 0

    def lr_at(self, epoch: int) -> float:
        return self.lr * self.gamma ** sum(1 for m in self.milestones if m <= epoch)


def thread_counts(backend: Any) -> dict[str, int]:
    """backend.thread_counts(), or {} from a `module:Class` backend written before it existed."""
    counts = getattr(backend, "thread_counts", None)
    return {name: int(n) for name, n in counts().items()} if counts else {}


def outlier_turns(batch_index: int, height: int, width: int) -> int:
    """Quarter turns applied to the "not my task" copies of batch `batch_index`: 1, 2, 3 in
    turn for square images, always 2 (half a turn keeps the shape) for the others. The first
    half of each batch (at least one image) is turned, counter-clockwise in the image plane,
    and run with BN in inference mode so the task's BN statistics never see it."""
    return 1 + batch_index % 3 if height == width else 2


def outlier_count(batch_size: int) -> int:
    return max(1, batch_size // 2)


@attrs.frozen(kw_only=True)
class Penalty:
    """A quadratic pull towards anchor values (EWC): the training loss gets
    weight / 2 * sum of importance * (w - anchor) ** 2, on the tensors named in anchor (a
    weight, a "<layer>.bias", a BN layer's "<bn>.gamma" or "<bn>.beta":
    backend_checks.anchorable_shapes). Its value is part of EpochResult.loss, not of ce or
    distill."""

    weight: float
    anchor: Weights
    importance: Weights


@attrs.frozen(kw_only=True)
class EpochResult:
    loss: float  # mean total loss over the epoch's samples
    ce: float
    distill: float  # 0.0 when there is no teacher
    accuracy: float  # training accuracy within the active task's classes
    images: int
    seconds: float
    stopped: bool = False  # should_stop() was True: the epoch was abandoned part-way


@attrs.frozen(kw_only=True)
class Subnet:
    """One sub-network for inference: its gates, its BN snapshot and its classes."""

    gates: Masks
    bn: BNState
    class_range: tuple[int, int]


@runtime_checkable
class Backend(Protocol):
    """What the engine needs from a framework. Implementations: backends/torch, backends/tf."""

    name: str
    capabilities: frozenset[str]  # e.g. {"deterministic", "gpu"}
    device: str  # resolved device, e.g. "cpu", "cuda:0", "/GPU:0"

    def versions(self) -> dict[str, str]:
        """Framework versions, recorded in config.json."""

    def thread_counts(self) -> dict[str, int]:
        """The framework's thread pools as it now runs them, e.g. {"intra_op": 4,
        "inter_op": 4} (0: the framework's own choice), recorded in config.json and
        metrics.json because results on CPU depend on them. Optional: see thread_counts()."""

    # Constructor: Backend(device="auto", threads=None, precision="fp32"). threads: the
    # intra-op threads the framework may use (None: its own default, every core); a sweep
    # gives each trial its share so that trials side by side do not oversubscribe the cores.
    # precision: one of mind_core.precision.PRECISIONS, resolved on the device and kept as
    # the attribute `precision` (docs/precision.md); passed only when it is not fp32, so a
    # backend without mixed precision may leave it out and have no such attribute.

    def build_model(self, spec: ModelSpec, seed: int) -> Any:
        """A fresh randomly initialised model (He-normal convs/linears, biases 0, BN gamma 1
        beta 0), all gates 1, deterministic for a seed on CPU. spec.arch == CUSTOM_ARCH builds
        a copy of the network adopted last (adopt_network); without one, a NetworkError."""

    def adopt_network(self, network: Any, input_shape: tuple[int, int, int],
                      num_classes: int) -> str:
        """Convert a user's network (this framework's model object) into the backend's gated
        form with per-task BN, and keep it as the template CUSTOM_ARCH builds from; the
        user's object is not modified. Layer names are the user's dotted names; a conv or
        linear bias is its own gated tensor "<layer>.bias" (LayerInfo kind "bias"). The
        classifier is mind_core.network.choose_classifier's choice. Any problem (an
        unsupported layer, a classifier of the wrong width, a network that fails on an
        input_shape batch) is a mind_core.network.NetworkError with a one-line message.
        Returns a one-line description (mind_core.network.describe)."""

    def layers(self, model: Any) -> list[LayerInfo]:
        """Every gated layer in a stable order (same names and order in every backend)."""

    def bn_layers(self, model: Any) -> list[str]:
        """Every BatchNorm layer name in a stable order."""

    def get_weights(self, model: Any) -> Weights: ...

    def set_weights(self, model: Any, weights: Weights) -> None:
        """Set the given layers (a subset is allowed) from canonical arrays."""

    def get_bn(self, model: Any) -> BNState: ...

    def set_bn(self, model: Any, state: BNState) -> None: ...

    def set_gates(self, model: Any, gates: Masks | None) -> None:
        """Gates for every following forward; None = dense (all ones). A layer missing from
        the dict runs dense."""

    def start_phase(self, model: Any, phase: PhaseSpec, trainable: Masks | None,
                    teacher: Any | None = None, penalty: Penalty | None = None) -> Any:
        """Prepare a trainer (optimiser, data placement happens per epoch). Only entries where
        trainable is True may change; every other entry of a gated weight must be bit-for-bit
        unchanged after any number of epochs (weight decay and momentum included). None =
        everything trains; a layer missing from the dict is frozen. teacher: a model run in
        eval mode without gradient for the distillation term (used only when phase.distils;
        then required, and not the student itself). Inputs are checked by
        mind_core.backend_checks, the same rules and messages in every backend.
        penalty: an EWC-style quadratic term added to every batch's loss (None: none)."""

    def train_epoch(self, trainer: Any, x: np.ndarray, y: np.ndarray, epoch: int, seed: int,
                    progress: ProgressFn | None = None,
                    should_stop: StopFn | None = None) -> EpochResult:
        """One epoch over x (uint8 NHWC) and y (int64 global class ids) at lr phase.lr_at(epoch).
        Batch order: np.random.default_rng(seed).permutation(len(x)); augmentation seeded from
        seed too, so an epoch is repeatable on CPU."""

    def trainer_state(self, trainer: Any) -> dict[str, np.ndarray]:
        """Optimiser state as arrays (for resume within a phase; same backend only)."""

    def load_trainer_state(self, trainer: Any, state: dict[str, np.ndarray]) -> None: ...

    def predict(self, model: Any, x: np.ndarray, subnets: list[Subnet], batch_size: int,
                mean: tuple[float, ...], std: tuple[float, ...], features: bool = False
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Logits of every sub-network over its own classes: float32 [len(subnets), n, c]
        (every sub-network covers the same number of classes c). With features=True, the
        pair (logits, features): features float32 [len(subnets), n, d] are each sub-network's
        penultimate features (the classifier's input), taken from the same forward pass.
        Must not copy the model; leaves the model's gates/BN in an unspecified state (the
        engine sets them again before training)."""

    def fisher(self, model: Any, x: np.ndarray, y: np.ndarray | None,
               class_range: tuple[int, int], batch_size: int, mean: tuple[float, ...],
               std: tuple[float, ...]) -> Weights:
        """The diagonal Fisher information as FACIL's EWC computes it, canonical layout,
        float32, for every tensor backend_checks.anchorable_shapes names (gated tensors, then
        BN gamma and beta as "<bn>.gamma", "<bn>.beta"). With BN in training mode (batch
        statistics), the current gates, and the cross-entropy over the logits of class_range
        of y, or where y is None of the model's own argmax there (FACIL's max_pred): for
        each batch b of backend_checks.fisher_batches (in the given order, no augmentation)
        the gradient g_b of the batch's mean loss; F = mean over batches of g_b ** 2. That
        is a mean of squared batch-mean gradients, not the empirical Fisher's mean of
        per-sample squared gradients: per entry it estimates mean(g) ** 2 + var(g) / B where
        the empirical Fisher is mean(g) ** 2 + var(g) (B the batch size), so it is smaller,
        by up to a factor B. The model's weights and BN (running statistics included) are
        left unchanged."""

    def distill_loss(self, name: str, teacher_logits: np.ndarray,
                     student_logits: np.ndarray) -> float:
        """The backend's own implementation of a distillation loss on numpy logits (tested
        against mind_core.metrics.LOSS_ORACLES by the conformance suite)."""
