"""What the launch screen asks the core: presets, datasets, and whether a config is valid.

`CoreCatalog` calls mind_core (numpy + attrs only, never a framework). Tests hand the app any
object with the same three methods to keep the screen's rendering independent of the disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class DatasetChoice:
    name: str
    classes: int
    shape: tuple[int, ...]
    available: bool
    how_to_get: str = ""

    def describe(self) -> str:
        shape = "×".join(str(s) for s in self.shape)
        return f"{self.classes} classes · {shape}" if shape else f"{self.classes} classes"


class ConfigProblem(Exception):
    """A setting the core refuses; key is the dotted config key it names (None: no field)."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


class Catalog(Protocol):
    def presets(self) -> list[tuple[str, str]]: ...

    def datasets(self, data_dir: str | None = None) -> list[DatasetChoice]: ...

    def user_dataset(self, name: str) -> DatasetChoice:
        """"npz:PATH" / "folder:PATH" looked at cheaply, or raise ConfigProblem("own_data")."""

    def resolve(self, preset: str, overrides: list[str], **fields: Any) -> dict[str, Any]:
        """The resolved config as a dict, or raise ConfigProblem."""


class CoreCatalog:
    def __init__(self) -> None:
        self._classes: dict[str, int] = {}  # dataset -> number of classes, from datasets()

    def presets(self) -> list[tuple[str, str]]:
        from mind_core.config import list_presets

        return [(p.name, p.description) for p in list_presets()]

    def datasets(self, data_dir: str | None = None) -> list[DatasetChoice]:
        from mind_core.data import list_datasets

        choices = [_choice(info) for info in list_datasets(data_dir or None)]
        self._classes.update({c.name: c.classes for c in choices if c.classes})
        return choices

    def user_dataset(self, name: str) -> DatasetChoice:
        from mind_core.data import DatasetError, describe_user_data

        try:
            choice = _choice(describe_user_data(name))
        except DatasetError as exc:
            raise ConfigProblem("own_data", _message(exc)) from exc
        if choice.classes:
            self._classes[choice.name] = choice.classes
        return choice

    def resolve(self, preset: str, overrides: list[str], **fields: Any) -> dict[str, Any]:
        from mind_core.config import ConfigError, check_tasks_split, config_to_dict, resolve_config

        try:
            cfg = resolve_config(preset, list(overrides), **fields)
            # Domain-incremental splits need the dataset's domains, known only once it loads.
            if cfg.scenario == "class" and cfg.dataset in self._classes:
                check_tasks_split(cfg, self._classes[cfg.dataset])
            return config_to_dict(cfg)
        except ConfigError as exc:
            raise ConfigProblem(getattr(exc, "key", None), _message(exc)) from exc
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigProblem(None, _message(exc)) from exc


def _choice(info: Any) -> DatasetChoice:
    return DatasetChoice(name=str(info.name), classes=int(info.classes or 0),
                         shape=tuple(int(s) for s in info.image_shape or ()),
                         available=bool(info.available), how_to_get=str(info.how_to_get or ""))


def _message(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


def lookup(config: dict[str, Any], key: str) -> Any:
    """config["teacher"]["epochs"] for "teacher.epochs" (also accepts flat dotted keys)."""
    if key in config:
        return config[key]
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def format_value(value: Any) -> str:
    """A config value as the user would type it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)
