"""Backend name -> "module:Class", imported lazily on first use (frameworks cost seconds)."""

from __future__ import annotations

import importlib

from mind_core.extras import install_hint
from mind_core.protocol import Backend

# name -> (module:Class, the framework it needs, the pyproject extra that installs it, and
# every top-level module whose absence means that extra is missing: the tf backend imports
# keras before tensorflow, so without the extra the first error names keras).
BACKENDS = {
    "torch": ("backends.torch.backend:TorchBackend", "torch", "torch", ("torch",)),
    "tf": ("backends.tf.backend:TFBackend", "tensorflow", "tf", ("tensorflow", "keras")),
}


class BackendError(RuntimeError):
    """A backend cannot be loaded or started; the message says how to fix it."""


def resolve_backend_class(name: str) -> type:
    if name in BACKENDS:
        target, framework, extra, needs = BACKENDS[name]
    elif ":" in name:
        target, framework, extra, needs = name, None, None, ()
    else:
        raise BackendError(f"unknown backend {name!r}: use one of {', '.join(BACKENDS)} "
                           "or module:Class")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if extra and exc.name and exc.name.split(".")[0] in needs:
            raise BackendError(f"the {name} backend needs {framework}, which is not installed: "
                               f"{install_hint(extra)}") from None
        raise BackendError(f"cannot import backend module {module_name!r}: {exc}") from None
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise BackendError(f"backend module {module_name!r} has no class {class_name!r}") from None


def get_backend(name: str, device: str = "auto", threads: int | None = None) -> Backend:
    """threads: the framework's intra-op threads (None: its default)."""
    cls = resolve_backend_class(name)
    try:
        return cls(device=device) if threads is None else cls(device=device, threads=threads)
    except ValueError as exc:  # e.g. a CUDA device asked for where there is none
        raise BackendError(str(exc)) from None
