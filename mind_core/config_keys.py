"""A config's flat form: dotted setting names (`distill.lr`), their types and aliases, and one
value read from text or from a file's or a saved run's settings (mind_core.config resolves
them into a RunConfig). Every problem is a `ConfigError` naming the dotted key."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import attrs

from mind_core.config_schema import RunConfig
from mind_core.errors import did_you_mean


class ConfigError(ValueError):
    """source: where the setting was written (a file, "preset NAME"), named first in the line."""

    def __init__(self, key: str, message: str, source: str = ""):
        text = f"{key}: {message}" if key else message
        super().__init__(f"{source}: {text}" if source else text)
        self.key, self.message, self.source = key, message, source


_SECTIONS = {f.name: f.type for f in attrs.fields(RunConfig) if attrs.has(f.type)}


def _field_types() -> dict[str, type]:
    types: dict[str, type] = {}
    for f in attrs.fields(RunConfig):
        if attrs.has(f.type):
            for sub in attrs.fields(f.type):
                types[f"{f.name}.{sub.name}"] = sub.type
        else:
            types[f.name] = f.type
    return types


FIELD_TYPES = _field_types()


def _parse_value(key: str, raw: Any) -> Any:
    kind = FIELD_TYPES[key]
    kind_name = getattr(kind, "__name__", str(kind))
    if not isinstance(raw, str):
        if kind is bool and not isinstance(raw, bool):
            raise ConfigError(key, f"expected true or false, got {raw!r}")
        # numbers.Real: numpy's integer and floating scalars are numbers too (np.int64(2)).
        if kind in (int, float) and (isinstance(raw, bool) or not isinstance(raw, numbers.Real)):
            raise ConfigError(key, f"expected a number, got {raw!r}")
        if kind is int and not isinstance(raw, numbers.Integral) \
                and not float(raw).is_integer():
            raise ConfigError(key, f"expected a whole number, got {raw!r}")
        return _finite(key, int(raw) if kind is int else float(raw) if kind is float else raw)
    text = raw.strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            return int(text)
        if kind is float:
            return _finite(key, float(text))
        if "tuple" in str(kind):
            text = text.strip("[]() ")
            return tuple(int(p) for p in text.replace(",", " ").split()) if text else ()
    except ConfigError:
        raise
    except ValueError:
        raise ConfigError(key, f"cannot read {raw!r} as {kind_name if kind_name != 'tuple' else 'a list of ints'}") from None
    return text


def _finite(key: str, value: Any) -> Any:
    """The one rule for every float setting: NaN and infinities are refused, whatever the
    field's own range check (NaN would slip through `value <= 0`)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, got {value}")
    return value


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


# Short spellings users reach for first; each maps to one real field.
ALIASES = {"distill.beta": "distillation.beta", "distill.loss": "distillation.loss",
           "distill.logit_masking": "distillation.logit_masking", "beta": "distillation.beta",
           "temperature": "inference.temperature", "weight_sharing": "allocation.weight_sharing"}


def _unalias(flat: Mapping[str, Any]) -> dict[str, Any]:
    return {ALIASES.get(k, k): val for k, val in flat.items()}


def _check_keys(flat: Mapping[str, Any], source: str = "") -> None:
    """The one rule for setting names, wherever they come from (--set, a file, a preset, a
    saved config): an unknown one is refused with the nearest known spellings."""
    for key in flat:
        if key in FIELD_TYPES:
            continue
        parts = key.split(".")
        owners = [p for p in (".".join(parts[:i]) for i in range(1, len(parts)))
                  if p in FIELD_TYPES]
        if key in _SECTIONS:
            message = f"expected a table of settings ({key}.*), got one value"
        elif owners:  # `tasks.x=1`, or `[tasks]` in a file: a table where one value belongs
            message = f"unknown setting ({owners[0]} is one value, not a table)"
        else:
            message = f"unknown setting{_did_you_mean(key)}"
        raise ConfigError(key, message, source)


def _did_you_mean(key: str) -> str:
    # The same last part first (`lr` -> teacher.lr or distill.lr: the section was left out),
    # else the closest spellings; ties are all shown, as neither is likelier.
    close = [k for k in FIELD_TYPES if k.split(".")[-1] == key.split(".")[-1]]
    return did_you_mean(key, [*FIELD_TYPES, *ALIASES], close or None)
