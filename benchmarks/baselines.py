"""The methods the accuracy benchmark compares: the core's named methods
(mind_core/methods.py), trained by `mind sweep` like any run, so the benchmark measures
exactly what `mind run --set method=...` trains."""

from __future__ import annotations

from mind_core.methods import METHODS, UnknownMethod, method_settings

# The single-head baselines: no routing rule, one head (their rows have no rule columns).
DENSE_METHODS = tuple(name for name, settings in METHODS.items()
                      if settings.get("method", "mind") != "mind")

__all__ = ["DENSE_METHODS", "METHODS", "UnknownMethod", "method_overrides"]


def method_overrides(method: str) -> list[str]:
    """A method's settings as `key=value` overrides."""
    return [f"{key}={value}" for key, value in method_settings(method).items()]
