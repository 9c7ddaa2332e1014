"""The methods the accuracy benchmark compares: the core's named methods
(mind_core/methods.py), each trained by its own loop (mind_core/baselines.py), so the
benchmark measures exactly what `mind run --set method=...` and `mind sweep` train."""

from __future__ import annotations

from typing import Any

from mind_core.baselines import engine_class
from mind_core.config import RunConfig
from mind_core.data.base import Dataset
from mind_core.methods import METHODS, UnknownMethod, method_settings
from mind_core.protocol import Backend

# The single-head baselines: no routing rule, one head (their rows have no rule columns).
DENSE_METHODS = tuple(name for name, settings in METHODS.items()
                      if settings.get("method", "mind") != "mind")

__all__ = ["DENSE_METHODS", "METHODS", "UnknownMethod", "method_overrides", "run_method"]


def method_overrides(method: str) -> list[str]:
    """A method's settings as `key=value` overrides."""
    return [f"{key}={value}" for key, value in method_settings(method).items()]


def run_method(method: str, cfg: RunConfig, backend: Backend, dataset: Dataset
               ) -> dict[str, Any]:
    """Run one method to the end in memory; returns metrics.json's shape. cfg must already
    include method_overrides(method)."""
    method_settings(method)  # validates the name
    return engine_class(cfg)(cfg, backend, dataset).run()
