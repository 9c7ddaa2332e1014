"""Backend name -> "module:Class", imported lazily on first use (frameworks cost seconds)."""

from __future__ import annotations

import importlib

from mind_core.protocol import Backend

BACKENDS = {
    "torch": ("backends.torch.backend:TorchBackend", "torch", "torch"),
    "tf": ("backends.tf.backend:TFBackend", "tensorflow", "tf"),
}


class BackendError(RuntimeError):
    """A backend cannot be loaded or started; the message says how to fix it."""


def resolve_backend_class(name: str) -> type:
    if name in BACKENDS:
        target, framework, extra = BACKENDS[name]
    elif ":" in name:
        target, framework, extra = name, None, None
    else:
        raise BackendError(f"unknown backend {name!r}: use one of {', '.join(BACKENDS)} "
                           "or module:Class")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if framework and exc.name and exc.name.split(".")[0] == framework:
            raise BackendError(f"the {name} backend needs {framework}: install the {extra} "
                               f"extra (pip install 'mind-cl[{extra}]')") from None
        raise BackendError(f"cannot import backend module {module_name!r}: {exc}") from None
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise BackendError(f"backend module {module_name!r} has no class {class_name!r}") from None


def get_backend(name: str, device: str = "auto") -> Backend:
    cls = resolve_backend_class(name)
    try:
        return cls(device=device)
    except ValueError as exc:  # e.g. a CUDA device asked for where there is none
        raise BackendError(str(exc)) from None
