"""TorchBackend: the MIND Backend protocol (mind_core/protocol.py) on PyTorch."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from backends.torch.amp import autocast, resolve
from backends.torch.augment import Normaliser
from backends.torch.convert import convert_network
from backends.torch.ewc import fisher
from backends.torch.losses import get_loss
from backends.torch.models import (
    ARCHITECTURES,
    bn_layers,
    build,
    classifier_name,
    gated_layers,
    gated_tensors,
    initialise,
    is_builtin,
    logits_and_features,
)
from backends.torch.trainer import Trainer
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

BN_KEYS = {"gamma": "weight", "beta": "bias", "mean": "running_mean", "var": "running_var"}


def resolve_device(device: str | None) -> str:
    """A device string (mind_core.backend_checks.parse_device) -> a torch device string."""
    request = parse_device(device)
    if request.kind == "cpu" or (request.kind == "auto" and not torch.cuda.is_available()):
        return "cpu"
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    check_gpu_visible(device, request, f"PyTorch {torch.__version__}", visible,
                      " (a CPU-only build or no driver)")
    return f"cuda:{request.index}"


def set_threads(threads: int | None) -> None:
    """torch's intra-op thread count for the whole process (None: leave torch's default).
    Checked before anything is set, so a bad value changes nothing."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive whole number or None, got {threads!r}")
    torch.set_num_threads(int(threads))


def _kind(attr: str, param: torch.Tensor) -> str:
    if attr == "bias":
        return "bias"
    return "conv" if param.dim() == 4 else "linear"


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32, copy=True).numpy()


class TorchBackend:
    name = "torch"

    def __init__(self, device: str = "auto", threads: int | None = None,
                 precision: str = "fp32") -> None:
        self.device = resolve_device(device)
        self._device = torch.device(self.device)
        self.precision = resolve(precision, self._device)  # before set_threads changes anything
        set_threads(threads)
        if self._device.type == "cuda":
            self.capabilities = frozenset({"gpu"})
            # Fixed shapes every step: let cuDNN pick the fastest kernels once.
            torch.backends.cudnn.benchmark = True
        else:
            self.capabilities = frozenset({"deterministic"})
        # The last adopted user network (CPU, gated, the user's values) and what it was
        # adopted for: CUSTOM_ARCH builds copies of it.
        self._template: nn.Module | None = None
        self._template_for: tuple[tuple[int, int, int], int] | None = None

    def thread_counts(self) -> dict[str, int]:
        return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}

    def versions(self) -> dict[str, str]:
        out = {"torch": torch.__version__}
        if self._device.type == "cuda":
            out["cuda"] = str(torch.version.cuda)
            out["gpu"] = torch.cuda.get_device_name(self._device)
        return out

    # -- models ---------------------------------------------------------------------------
    def build_model(self, spec: ModelSpec, seed: int) -> nn.Module:
        if spec.arch == CUSTOM_ARCH:
            return self._build_adopted(spec, seed).to(self._device)
        if spec.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {spec.arch!r}")
        return build(spec, seed).to(self._device)

    def adopt_network(self, network: nn.Module, input_shape: tuple[int, int, int],
                      num_classes: int) -> str:
        shape = tuple(int(v) for v in input_shape)
        template, found = convert_network(network, shape, int(num_classes))
        self._template, self._template_for = template, (shape, int(num_classes))
        return describe(type(network).__name__, found)

    def _build_adopted(self, spec: ModelSpec, seed: int) -> nn.Module:
        if self._template is None:
            raise NetworkError(NO_NETWORK)
        wanted = (tuple(int(v) for v in spec.input_shape), int(spec.num_classes))
        if wanted != self._template_for:
            (h, w, c), classes = self._template_for
            raise NetworkError(f"the network was adopted for {h}x{w}x{c} images and {classes} "
                               f"classes, not {'x'.join(map(str, wanted[0]))} and {wanted[1]}: "
                               "adopt it again for this data")
        model = copy.deepcopy(self._template)
        initialise(model, seed)  # same draws, in module order, as the built-ins
        model.spec = spec
        return model

    def layers(self, model: nn.Module) -> list[LayerInfo]:
        classifier = classifier_name(model)
        return [LayerInfo(name=name, shape=tuple(tensor.param.shape),
                          kind=_kind(tensor.attr, tensor.param),
                          classifier=tensor.layer_name == classifier)
                for name, tensor in gated_tensors(model).items()]

    def bn_layers(self, model: nn.Module) -> list[str]:
        return list(bn_layers(model))

    def get_weights(self, model: nn.Module) -> Weights:
        return {name: _to_numpy(tensor.param) for name, tensor in gated_tensors(model).items()}

    def set_weights(self, model: nn.Module, weights: Weights) -> None:
        tensors = gated_tensors(model)
        with torch.no_grad():
            check_known(weights, tensors, "weights")
            for name, array in weights.items():
                param = tensors[name].param
                param.copy_(self._tensor(array, tuple(param.shape), f"weights of {name}"))

    def get_bn(self, model: nn.Module) -> BNState:
        return {name: {key: _to_numpy(getattr(bn, attr)) for key, attr in BN_KEYS.items()}
                for name, bn in bn_layers(model).items()}

    def set_bn(self, model: nn.Module, state: BNState) -> None:
        layers = bn_layers(model)
        with torch.no_grad():
            check_known(state, layers, "BN state")
            for name, values in state.items():
                bn = layers[name]
                checked = check_bn_values(name, values, bn.num_features)
                for key, attr in BN_KEYS.items():
                    target = getattr(bn, attr)
                    target.copy_(self._tensor(checked[key], tuple(target.shape),
                                              f"BN {key} of {name}"))

    def set_gates(self, model: nn.Module, gates: Masks | None) -> None:
        tensors = gated_tensors(model)
        gates = gates or {}
        check_known(gates, tensors, "gates")
        with torch.no_grad():
            for name, tensor in tensors.items():
                gate = gates.get(name)
                if gate is not None:
                    gate = check_shape(gate, tuple(tensor.param.shape), f"gate of {name}")
                if gate is None or np.all(gate):
                    tensor.layer.set_gate(None, tensor.attr)  # all ones: skip the multiply
                else:
                    tensor.layer.set_gate(self._tensor(gate, tuple(tensor.param.shape),
                                                       f"gate of {name}"), tensor.attr)

    # -- training -------------------------------------------------------------------------
    def start_phase(self, model: nn.Module, phase: PhaseSpec, trainable: Masks | None,
                    teacher: nn.Module | None = None, penalty: Penalty | None = None
                    ) -> Trainer:
        return Trainer(model, phase, trainable, teacher, self._device, penalty, self.precision)

    def train_epoch(self, trainer: Trainer, x: np.ndarray, y: np.ndarray, epoch: int,
                    seed: int, progress: ProgressFn | None = None,
                    should_stop: StopFn | None = None) -> EpochResult:
        return trainer.train_epoch(x, y, epoch, seed, progress, should_stop)

    def trainer_state(self, trainer: Trainer) -> dict[str, np.ndarray]:
        return trainer.state()

    def load_trainer_state(self, trainer: Trainer, state: dict[str, np.ndarray]) -> None:
        trainer.load_state(state)

    # -- inference ------------------------------------------------------------------------
    def predict(self, model: nn.Module, x: np.ndarray, subnets: list[Subnet], batch_size: int,
                mean: tuple[float, ...], std: tuple[float, ...], features: bool = False
                ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        n = len(x)
        batch_size = check_batch_size(batch_size)
        width = subnet_width([s.class_range for s in subnets])
        gated = list(gated_layers(model).values())
        feature_width = gated_layers(model)[classifier_name(model)].weight.shape[1]
        normalise = Normaliser(mean, std, self._device, channels_last=is_builtin(model))
        model.eval()
        x_dev = torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)).to(self._device)
        # zeros, not empty: whatever happens, no uninitialised memory is ever returned.
        out = torch.zeros((len(subnets), n, width), dtype=torch.float32, device=self._device)
        feats = (torch.zeros((len(subnets), n, feature_width), dtype=torch.float32,
                             device=self._device) if features else None)
        try:
            for j, subnet in enumerate(subnets):
                # Gates and BN are set outside inference mode: they stay usable for training.
                self.set_gates(model, subnet.gates)
                self.set_bn(model, subnet.bn)
                lo, hi = subnet.class_range
                with torch.inference_mode():
                    for layer in gated:
                        layer.cache_effective_weight()  # weight * gate once per sub-network
                    for start in range(0, n, batch_size):
                        with autocast(self._device, self.precision):
                            logits, hidden = logits_and_features(
                                model, normalise(x_dev[start:start + batch_size]))
                        # Stored as float32 (out and feats are): the core fits its
                        # routing statistics on them in float64.
                        out[j, start:start + batch_size] = logits[:, lo:hi].float()
                        if feats is not None:
                            feats[j, start:start + batch_size] = hidden.float()
        finally:
            for layer in gated:
                layer.clear_cache()
        if feats is None:
            return out.cpu().numpy()
        return out.cpu().numpy(), feats.cpu().numpy()

    def fisher(self, model: nn.Module, x: np.ndarray, y: np.ndarray | None,
               class_range: tuple[int, int], batch_size: int, mean: tuple[float, ...],
               std: tuple[float, ...]) -> Weights:
        return fisher(model, x, y, class_range, batch_size, mean, std, self._device)

    # -- conformance hook -----------------------------------------------------------------
    def distill_loss(self, name: str, teacher_logits: np.ndarray,
                     student_logits: np.ndarray) -> float:
        """The training distillation loss on numpy logits (tested against the numpy oracles)."""
        teacher = torch.from_numpy(np.asarray(teacher_logits)).to(self._device)
        student = torch.from_numpy(np.asarray(student_logits)).to(self._device)
        with torch.no_grad():
            return float(get_loss(name)(teacher, student))

    # -- helpers --------------------------------------------------------------------------
    def _tensor(self, array: np.ndarray, shape: tuple[int, ...], what: str) -> torch.Tensor:
        array = check_shape(array, shape, what)
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self._device)
