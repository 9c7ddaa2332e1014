"""Backend name -> "module:Class", imported lazily on first use (frameworks cost seconds)."""

from __future__ import annotations

import importlib
import inspect

from mind_core.extras import install_hint
from mind_core.precision import AUTO, FP32
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
        found = getattr(module, class_name)
    except AttributeError:
        raise BackendError(f"backend module {module_name!r} has no class {class_name!r}") from None
    if not isinstance(found, type):  # os:system is a function: calling it is no backend
        raise BackendError(f"backend {name!r} is a {type(found).__name__}, not a backend class")
    return found


def _takes_precision(cls: type) -> bool:
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the call itself decide
        return True
    return any(p.name == "precision" or p.kind is p.VAR_KEYWORD for p in params)


def get_backend(name: str, device: str = "auto", threads: int | None = None,
                precision: str = FP32) -> Backend:
    """threads: the framework's intra-op threads (None: its default); precision: one of
    mind_core.precision.PRECISIONS, passed only when it is not fp32, so a `module:Class`
    backend written before the setting existed still loads for fp32, and for auto, which
    such a backend resolves to fp32."""
    cls = resolve_backend_class(name)
    kwargs: dict = {"device": device}
    if threads is not None:
        kwargs["threads"] = threads
    if precision != FP32:
        if _takes_precision(cls):
            kwargs["precision"] = precision
        elif precision != AUTO:  # auto: such a backend runs fp32, which auto allows
            raise BackendError(f"precision: the backend {name!r} takes no precision setting; "
                               f"use precision={FP32} or auto")
    try:
        return cls(**kwargs)
    except ValueError as exc:  # e.g. a CUDA device asked for where there is none
        raise BackendError(str(exc)) from None


def vouched_backend(name: str, vouched: str | None, named_by: str, how: str) -> str:
    """The one trust rule for backends (docs/design.md, "What a run directory may do"): a
    built-in backend, or a `module:Class` the user named in this very call (vouched: --backend,
    backend=). One that only a file names (a run's config.json, a TOML config: anyone may have
    written it) is never imported, since importing a module runs its code. named_by: the file,
    for the message; how: how to vouch for it."""
    if name in BACKENDS or name == vouched:
        return name
    raise BackendError(f"{named_by} names the backend {name!r}, which mind does not import on "
                       f"its own: if you trust that module, {how}")
