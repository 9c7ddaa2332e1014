"""Proof, from convert.py's one trace forward, that every converted layer runs through its gate.

A gated layer isolates tasks only if the forward reads its weight as weight * gate. A user's
forward can read it some other way (`F.linear(x, self.fc.weight)`, `self.fc.weight.t()`) or
run a layer the module tree does not hold (one kept in a plain Python list): such a layer is
converted, owned and allocated, but its gate never applies, so later tasks' training leaks
into earlier sub-networks with no error. A TorchFunctionMode sees every torch call of the
trace and the tensors it is given, which tells each of these apart exactly:

- during the trace every gate is ones, so a gated layer's own forward reads its weight (and
  bias) only in the product with its own gate; any other call on it is a bypass;
- a gated tensor never multiplied by its gate belongs to a layer that never ran;
- a BatchNorm's tensors are read by its own forward only (its per-task statistics live there);
- an nn.Parameter outside the module's parameters is one the network does not register.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from backends.torch.layers import GATED_TYPES
from backends.torch.models import BatchNorm
from mind_core.network import NetworkError

# Calls that read only the dtype, device or shape of some tensor arguments, so a weight there
# passes no values on: torch.zeros_like(w) and w.new_zeros(...) (the first argument),
# x.to(w) and x.type_as(w) (every argument after the first).
_LIKE = {"zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like",
         "randint_like", "new_zeros", "new_ones", "new_empty", "new_full", "new_tensor"}
_CAST = {"to", "type_as"}


class _Watch(TorchFunctionMode):
    """Records, by layer name, which gated tensors met their gate and which were read some
    other way, and the first unregistered parameter the forward used."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.gates: dict[int, tuple[str, int]] = {}  # id(gated tensor) -> (layer, id(gate))
        self.bn: dict[int, tuple[str, nn.Module]] = {}  # id(BN tensor) -> (layer, module)
        for name, module in model.named_modules():
            if isinstance(module, GATED_TYPES):
                for attr in module.gated_tensors():
                    self.gates[id(getattr(module, attr))] = (name, id(_gate(module, attr)))
            elif isinstance(module, BatchNorm):
                for tensor in (*module.parameters(recurse=False),
                               *module.buffers(recurse=False)):
                    self.bn[id(tensor)] = (name, module)
        self.registered = {id(p) for p in model.parameters()}
        self.running: list[nn.Module] = []  # the BatchNorms whose forward is running
        self.gated_ran: set[str] = set()
        self.bypassed: dict[str, str] = {}  # layer -> the torch call that read it
        self.unregistered: nn.Parameter | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        # Reading metadata (.shape, .size(), .dtype) passes no values on: only a call that
        # makes a tensor can carry a weight into the output.
        if any(isinstance(v, torch.Tensor) for v in tree_flatten(result)[0]):
            self._seen(func, args, kwargs)
        return result

    def _seen(self, func, args: tuple, kwargs: dict) -> None:
        ids = {id(t) for t in _tensors((args, kwargs))}
        name = _call_name(func)
        if name in _LIKE:
            args = args[1:]
        elif name in _CAST:
            args, kwargs = args[:1], {}
        for tensor in _tensors((args, kwargs)):
            key = id(tensor)
            if key in self.gates:
                layer, gate = self.gates[key]
                if gate in ids:
                    self.gated_ran.add(layer)
                else:
                    self.bypassed.setdefault(layer, _label(func))
            elif key in self.bn:
                layer, module = self.bn[key]
                if not self.running or self.running[-1] is not module:
                    self.bypassed.setdefault(layer, _label(func))
            elif (isinstance(tensor, nn.Parameter) and key not in self.registered
                  and self.unregistered is None):
                self.unregistered = tensor


def _tensors(structure: object) -> list[torch.Tensor]:
    return [v for v in tree_flatten(structure)[0] if isinstance(v, torch.Tensor)]


def _gate(module: nn.Module, attr: str) -> torch.Tensor:
    return module.gate if attr == "weight" else module.bias_gate


def _call_name(func) -> str:
    return getattr(func, "__name__", None) or str(func)


def _label(func) -> str:
    """How the error shows the call: "linear()", or ".data" for an attribute read."""
    name = _call_name(func)
    if name == "__get__":
        return "." + _call_name(getattr(func, "__self__", None))
    return name + "()"


@contextlib.contextmanager
def watching(model: nn.Module) -> Iterator[_Watch]:
    """Runs the body with every gate set to ones and every torch call watched; gates go back
    to dense (None) afterwards, as convert.py's template keeps them."""
    gated = [m for m in model.modules() if isinstance(m, GATED_TYPES)]
    for module in gated:
        for attr in module.gated_tensors():
            module.set_gate(torch.ones_like(getattr(module, attr)), attr)
    watch = _Watch(model)

    def enter(module: nn.Module, _args: tuple) -> None:
        watch.running.append(module)

    def leave(_module: nn.Module, _args: tuple, _output: object) -> None:
        watch.running.pop()  # a hook's return value would replace the output: return None

    handles = []
    for module in model.modules():
        if isinstance(module, BatchNorm):
            handles += [module.register_forward_pre_hook(enter),
                        module.register_forward_hook(leave)]
    try:
        with watch:
            yield watch
    finally:
        for handle in handles:
            handle.remove()
        for module in gated:
            for attr in module.gated_tensors():
                module.set_gate(None, attr)


def check_gates_applied(model: nn.Module, watch: _Watch) -> None:
    """The one-line NetworkError for the first layer the trace found not running through its
    gate (or its own BatchNorm forward), if any."""
    if watch.unregistered is not None:
        where = _container_path(model, watch.unregistered)
        raise NetworkError(
            f"layer {where} holds parameters that the network does not register (a plain "
            "Python list, tuple or dict hides them from torch): MIND could neither gate nor "
            "train them, so hold it in nn.ModuleList or nn.ModuleDict")
    for name, call in watch.bypassed.items():
        raise NetworkError(
            f"forward uses the tensors of layer {name!r} directly (in {call}), not by "
            f"calling the layer: MIND gates and snapshots a layer only inside its own call, "
            f"so call it as a module (self.{name}(x)) instead of reading its weight")
    idle = [name for name, _ in watch.gates.values() if name not in watch.gated_ran]
    if idle:
        raise NetworkError(
            f"layer {idle[0]!r} never runs in a forward pass: MIND would allocate weights to "
            "it that no task uses; call it in forward, or remove it")


def _container_path(model: nn.Module, param: nn.Parameter) -> str:
    """Where the module tree keeps the layer holding `param` outside its registered children,
    e.g. 'blocks[1]' for `self.blocks = [nn.Linear(...), ...]`."""
    for prefix, module in model.named_modules():
        for attr, value in vars(module).items():
            for path, held in _held(f"{prefix}.{attr}" if prefix else attr, value):
                tensors = list(held.parameters()) if isinstance(held, nn.Module) else [held]
                if any(t is param for t in tensors):
                    return repr(path)
    return f"(unnamed) with a parameter of shape {tuple(param.shape)}"


def _held(path: str, value: object) -> Iterator[tuple[str, nn.Module | nn.Parameter]]:
    if isinstance(value, (nn.Module, nn.Parameter)):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _held(f"{path}[{index}]", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _held(f"{path}[{key!r}]", item)
