"""Configuration files: a TOML file with the presets' schema in a preset's place (`mind run
--config`), a run's own config again (`mind run --from`), and any config written back out as
TOML (`mind presets --show`) that reads back to the same RunConfig.

Every problem is one ConfigError line naming the file, then the key where there is one.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from mind_core.config import (
    ALIASES,
    FIELD_TYPES,
    ConfigError,
    RunConfig,
    _check_keys,
    _unalias,
    config_to_dict,
    flatten,
    parse_overrides,
    resolve_config,
)
from mind_core.config_schema import field_doc
from mind_core.errors import short_repr

__all__ = ["config_to_toml", "read_config_file", "resolve_config", "run_config",
           "trusted_file_backend"]


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings of a TOML file as one flat dict of dotted keys (aliases spelled out:
    `[distill] beta` comes back as distillation.beta). Unknown keys, a table where one value
    belongs (or one value where a table belongs) and values of the wrong TOML type are
    ConfigErrors naming the file; ranges are checked when the config is built."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError("", "no such file", source) from None
    except IsADirectoryError:
        raise ConfigError("", "is a directory, not a TOML file", source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"not TOML: not UTF-8 text (byte {exc.start})", source) from None
    except OSError as exc:
        raise ConfigError("", f"cannot be read ({exc.strerror or exc})", source) from None
    try:
        data = tomllib.loads(text)
        _check_empty_tables(data, source)
        written = flatten(data)
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
        raise ConfigError("", f"not TOML: {exc}", source) from None
    except RecursionError:  # arrays or tables nested thousands deep: no settings file is
        raise ConfigError("", "nested too deeply to be a settings file", source) from None
    flat = _unalias(written)
    if len(flat) < len(written):
        seen: dict[str, str] = {}
        for key in written:
            real = ALIASES.get(key, key)
            if real in seen:
                raise ConfigError(real, f"given twice (as {seen[real]} and {key})", source)
            seen[real] = key
    _check_keys(flat, source)
    for key, value in flat.items():
        _check_type(key, value, source)
    return flat


def _check_empty_tables(data: Mapping[str, Any], source: str, prefix: str = "") -> None:
    # flatten() drops an empty table, so `tasks = {}` would pass unseen: it is refused here.
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if not value and dotted in FIELD_TYPES:
                raise ConfigError(dotted, "expected one value, got a table", source)
            _check_empty_tables(value, source, dotted + ".")


_EXPECTED = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def _check_type(key: str, value: Any, source: str) -> None:
    """A file's values have TOML types, so they must be the setting's own: `tasks = "5"` is
    refused here although `--set tasks=5` (always text) is read as a number."""
    kind = FIELD_TYPES[key]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = number and isinstance(value, int)
    elif kind is float:
        ok = number
    elif kind is str:
        ok = isinstance(value, str)
    else:  # the milestones: a list of whole numbers
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                             for v in value)
    if not ok:
        expected = _EXPECTED.get(kind, "a list of whole numbers, e.g. [10, 20]")
        raise ConfigError(key, f"expected {expected}, got {short_repr(value)}", source)


def config_to_toml(cfg: RunConfig) -> str:
    """Every setting of cfg as TOML that `mind run --config` (or resolve_config(base=
    read_config_file(...))) reads back to cfg itself: the top-level settings, then one table
    per section, each under its one-line description as a comment. Floats are written with
    repr(), which reads back to the same float."""
    lines = ["# A MIND run configuration: `mind run --config FILE.toml`; --set applies on top.",
             "# Every setting is listed under what it does; docs/settings.md has each one's "
             "choices and default.", ""]
    tables: list[str] = []
    for field in attrs.fields(RunConfig):
        value = getattr(cfg, field.name)
        if attrs.has(type(value)):
            tables += ["", *_comment(field), f"[{field.name}]"]
            for sub in attrs.fields(type(value)):
                key = f"{field.name}.{sub.name}"
                tables += [*_comment(sub),
                           f"{sub.name} = {_toml_value(key, getattr(value, sub.name))}"]
        else:
            lines += [*_comment(field), f"{field.name} = {_toml_value(field.name, value)}"]
    return "\n".join(lines + tables) + "\n"


def _comment(field: attrs.Attribute) -> list[str]:
    doc = " ".join(field_doc(field).split())  # one comment line, whatever the text holds
    return [f"# {doc}"] if doc else []


def _toml_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):  # a RunConfig refuses these; a hand-made one may not
            raise ConfigError(key, f"must be a finite number, got {value}")
        return repr(value)  # "0.005", "1e-09", "5.0": all TOML floats, read back exactly
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(key, v) for v in value) + "]"
    if isinstance(value, str):
        return _toml_string(key, value)
    raise ConfigError(key, f"cannot be written as TOML: {value!r}")


# TOML's short escapes; every other control character (and DEL) is written as \uXXXX.
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def _toml_string(key: str, text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:  # a lone surrogate (undecodable bytes in an argument)
            raise ConfigError(key, f"cannot be written as TOML (not valid Unicode): {text!r}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def run_config(preset: str | None = None, config_file: str | Path | None = None,
               from_run: str | Path | None = None, overrides: Iterable[str] = (),
               **fields: Any) -> RunConfig:
    """`mind run`'s config: a preset (default demo), a TOML file (--config; the run's name
    defaults to the file's stem) or a run directory's config (--from), then the overrides and
    fields on top. At most one of the three sources."""
    chosen = [flag for flag, value in (("--preset", preset), ("--config", config_file),
                                       ("--from", from_run)) if value is not None]
    if len(chosen) > 1:
        raise ConfigError("", f"{' and '.join(chosen)} cannot be used together: "
                          "each one is the whole configuration (add --set on top)")
    if config_file is None and from_run is None:
        return resolve_config(preset or "demo", overrides, **fields)
    given = _unalias({**parse_overrides(overrides),
                      **{k: v for k, v in fields.items() if v is not None}})
    if from_run is not None:
        from mind_core.rundir import CONFIG
        from mind_core.runner import read_run_config  # its checks: a run directory, readable

        base, source = config_to_dict(read_run_config(Path(from_run))), Path(from_run) / CONFIG
        cfg = resolve_config(overrides=overrides, base=base, **fields)
    else:
        base, source = read_config_file(config_file), Path(config_file)
        base.setdefault("name", source.stem)
        cfg = _resolve_file(base, given, str(config_file), overrides, fields)
    return trusted_file_backend(cfg, given.get("backend"), source, "pass --backend "
                                f"{cfg.backend} (or --set backend={cfg.backend})")


def trusted_file_backend(cfg: RunConfig, vouched: str | None, source: str | Path,
                         how: str) -> RunConfig:
    """cfg, unless its backend is a `module:Class` that only the file `source` names (a
    TOML config or another run's config.json): registry.vouched_backend's rule, for every
    way a config is read from a file (`mind run --from/--config`, `mind.fit(config=)`)."""
    from mind_core.registry import vouched_backend

    vouched_backend(cfg.backend, None if vouched is None else str(vouched), str(source), how)
    return cfg


def _resolve_file(base: dict[str, Any], given: Mapping[str, Any], source: str,
                  overrides: Iterable[str], fields: Mapping[str, Any]) -> RunConfig:
    try:
        return resolve_config(overrides=overrides, base=base, **fields)
    except ConfigError as exc:
        # A bad value the file wrote (and nothing on the command line replaced) names the file.
        if exc.key in base and exc.key not in given and not exc.source:
            raise ConfigError(exc.key, exc.message, source) from None
        raise
