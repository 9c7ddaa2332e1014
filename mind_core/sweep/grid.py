"""A sweep's grid: presets x datasets x methods x `--set` values x seeds, expanded into trials
whose configs are all resolved before any trial starts, and sweep.json, which records it.

Every problem is a ConfigError (one line, exit 2) naming the flag, key and value."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from mind_core.config import (
    ALIASES,
    FIELD_TYPES,
    ConfigError,
    RunConfig,
    _parse_value,
    resolve_config,
)

SWEEP_JSON = "sweep.json"
SWEEP_FORMAT = 1
# Settings a trial takes from the grid's own flags, never from --set.
OWN_FLAGS = {"seed": "--seeds", "dataset": "--datasets", "backend": "--backend",
             "device": "--device", "data_dir": "--data-dir", "name": "(the trial's name)"}
NAME_LIMIT = 160  # characters of a trial's directory name before it is shortened with a hash


@attrs.frozen(kw_only=True)
class Grid:
    """What `mind sweep` was asked for. datasets and seeds left empty take each preset's own;
    sets: (key, values) in the order given."""

    presets: tuple[str, ...] = ("demo",)
    datasets: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("mind",)
    seeds: tuple[int, ...] = ()
    sets: tuple[tuple[str, tuple[str, ...]], ...] = ()
    backend: str | None = None
    device: str | None = None
    data_dir: str | None = None

    def to_json(self, methods: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """The grid as sweep.json records it, with each method's settings spelled out (so a
        method whose meaning changed is a different sweep)."""
        return {"presets": list(self.presets), "datasets": list(self.datasets),
                "methods": {name: dict(methods[name]) for name in self.methods},
                "seeds": list(self.seeds), "sets": {k: list(v) for k, v in self.sets},
                "backend": self.backend, "device": self.device, "data_dir": self.data_dir}


@attrs.frozen(kw_only=True)
class Trial:
    name: str
    preset: str
    dataset: str
    method: str
    seed: int
    sets: tuple[tuple[str, str], ...]
    config: RunConfig

    @property
    def configuration(self) -> tuple:
        """What a trial's seeds share: summary.md averages over trials with the same one."""
        return (self.preset, self.dataset, self.method, self.sets)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "preset": self.preset, "dataset": self.dataset,
                "method": self.method, "seed": self.seed, "sets": dict(self.sets)}


def split_values(text: str) -> list[str]:
    """v1,v2,... split at the commas outside brackets: `[2,4],[3]` is two lists."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if char == "," and depth <= 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def _unique(flag: str, values: Iterable[str], parse: Callable[[str], Any] = str
            ) -> tuple[str, ...]:
    """values, each once as the config will read it (parse): seeds `1,01` or a setting's
    `10,1_0` would be one trial twice, in one directory and two summary rows."""
    values = tuple(values)
    seen: dict[Any, str] = {}
    for value in values:
        if value == "":
            raise ConfigError(flag, f"an empty value in {','.join(values)!r}")
        same = seen.setdefault(parse(value), value)
        if same != value or values.count(value) > 1:
            raise ConfigError(flag, f"{value!r} is given twice" if same == value else
                              f"{same!r} and {value!r} are the same value")
    return values


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError("--seeds", f"expected whole numbers, got {text!r}") from None


def _setting(key: str) -> Callable[[str], Any]:
    """How the config reads a value of key; a value it cannot read stays text here, and
    expand() names it with its flag."""
    def parse(text: str) -> Any:
        try:
            return _parse_value(key, text)
        except ConfigError:
            return text
    return parse if key in FIELD_TYPES else str


def parse_grid(presets: str | None = None, datasets: str | None = None,
               methods: str | None = None, seeds: str | None = None,
               sets: Iterable[str] = (), backend: str | None = None,
               device: str | None = None, data_dir: str | None = None) -> Grid:
    """The grid from `mind sweep`'s flags (comma-separated lists; --set KEY=V1,V2 repeated)."""
    seed_values = _unique("--seeds", split_values(seeds), _seed) if seeds else ()
    seed_numbers = tuple(map(_seed, seed_values))
    grid_sets: dict[str, tuple[str, ...]] = {}
    for item in sets:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item}", "expected KEY=V1,V2,... (e.g. distill.beta=1,5)")
        real = ALIASES.get(key, key)
        if real in OWN_FLAGS:
            raise ConfigError(f"--set {key}", f"a sweep sets {real} with {OWN_FLAGS[real]}")
        if real in {ALIASES.get(k, k) for k in grid_sets}:
            raise ConfigError(f"--set {key}", "is given twice; list its values once, "
                              "comma-separated")
        grid_sets[key] = _unique(f"--set {key}", split_values(values), _setting(real))
    return Grid(presets=_unique("--presets", split_values(presets)) if presets else ("demo",),
                datasets=_unique("--datasets", split_values(datasets)) if datasets else (),
                methods=_unique("--methods", split_values(methods)) if methods else ("mind",),
                seeds=seed_numbers, sets=tuple(grid_sets.items()), backend=backend,
                device=device, data_dir=data_dir)


def method_table() -> dict[str, dict[str, Any]]:
    from mind_core.methods import METHODS

    return {name: dict(settings) for name, settings in METHODS.items()}


def expand(grid: Grid, methods: Mapping[str, Mapping[str, Any]] | None = None) -> list[Trial]:
    """Every trial of the grid, its config resolved; the first problem is a ConfigError
    naming the grid value that causes it. Seeds vary fastest."""
    methods = method_table() if methods is None else methods
    for name in grid.methods:
        if name not in methods:
            raise ConfigError(f"--methods {name}", f"unknown method; choose from "
                              f"{', '.join(methods)}")
    keys = [k for k, _ in grid.sets]
    combos = list(itertools.product(*(values for _, values in grid.sets)))
    trials = []
    for preset in grid.presets:
        base = _resolve(grid, preset)
        for dataset in grid.datasets or (base.dataset,):
            for method in grid.methods:
                for combo in combos:
                    chosen = tuple(zip(keys, combo, strict=True))
                    for seed in grid.seeds or (base.seed,):
                        cfg = _resolve(grid, preset, dataset, seed, method, methods[method],
                                       chosen)
                        trials.append(Trial(name="", preset=preset, dataset=dataset,
                                            method=method, seed=seed, sets=chosen, config=cfg))
    return _named(trials)


def _resolve(grid: Grid, preset: str, dataset: str | None = None, seed: int | None = None,
             method: str | None = None, method_settings: Mapping[str, Any] | None = None,
             chosen: tuple[tuple[str, str], ...] = ()) -> RunConfig:
    """One trial's config: preset -> the method's settings -> the --set values -> the grid's
    own flags; a ConfigError names the grid value it comes from, then the problem."""
    try:
        return resolve_config(preset, {**(method_settings or {}), **dict(chosen)},
                              backend=grid.backend, device=grid.device,
                              data_dir=grid.data_dir, dataset=dataset, seed=seed)
    except ConfigError as exc:
        culprit = _culprit(exc.key, grid, preset, dataset, seed, method, method_settings or {},
                           chosen)
        raise ConfigError(culprit, str(exc)) from None


def _culprit(key: str, grid: Grid, preset: str, dataset: str | None, seed: int | None,
             method: str | None, method_settings: Mapping[str, Any],
             chosen: tuple[tuple[str, str], ...]) -> str:
    """The grid value a ConfigError about `key` comes from."""
    failing = ALIASES.get(key, key)
    for name, value in chosen:
        if ALIASES.get(name, name) == failing:
            return f"--set {name}={value}"
    flags = {"seed": ("--seeds", seed), "dataset": ("--datasets", dataset),
             "backend": ("--backend", grid.backend), "device": ("--device", grid.device),
             "data_dir": ("--data-dir", grid.data_dir)}
    if failing in flags and flags[failing][1] is not None:
        flag, value = flags[failing]
        return f"{flag} {value}"
    if method is not None and any(ALIASES.get(k, k) == failing for k in method_settings):
        return f"--methods {method}"
    shown = [f"--presets {preset}"] + ([f"--methods {method}"] if method else []) + \
        [f"--set {k}={v}" for k, v in chosen]
    return " ".join(shown)


def _label(value: str) -> str:
    """A dataset as a name part: npz:/data/x.npz -> npz-x.npz."""
    kind, sep, rest = value.partition(":")
    return f"{kind}-{Path(rest.rstrip('/')).name}" if sep else value


def safe_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text).strip("_.") or "x"


def trial_name(trial: Trial) -> str:
    """preset-dataset-method-seedN-key=value...: readable, filesystem-safe."""
    parts = [trial.preset, _label(trial.dataset), trial.method, f"seed{trial.seed}",
             *(f"{k}={v}" for k, v in trial.sets)]
    return "-".join(safe_part(p) for p in parts)


def _digest(trial: Trial) -> str:
    return hashlib.sha1(json.dumps(trial.to_json(), sort_keys=True).encode()).hexdigest()[:8]


def _named(trials: list[Trial]) -> list[Trial]:
    """Each trial named; a name too long, or shared by two trials once made safe, gets a short
    hash of the trial's settings."""
    names = [trial_name(t) for t in trials]
    out = []
    for trial, name in zip(trials, names, strict=True):
        if len(name) > NAME_LIMIT or names.count(name) > 1:
            name = f"{name[:NAME_LIMIT - 9]}-{_digest(trial)}"
        cfg = attrs.evolve(trial.config, name=name)
        out.append(attrs.evolve(trial, name=name, config=cfg))
    return out


# ----------------------------------------------------------------------------- sweep.json
def sweep_record(grid: Grid, trials: list[Trial], methods: Mapping[str, Mapping[str, Any]],
                 resources: Mapping[str, Any], command: str,
                 earlier: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """sweep.json's content. earlier: the record a rerun found (its id and creation time
    stay)."""
    return {"format": SWEEP_FORMAT,
            "id": (earlier or {}).get("id") or uuid.uuid4().hex,
            "created": (earlier or {}).get("created") or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": command, "grid": grid.to_json(methods), "resources": dict(resources),
            "trials": [t.to_json() for t in trials]}


def read_sweep(sweep_dir: Path) -> dict[str, Any] | None:
    """The sweep.json of a sweep directory; None where there is none or it is unreadable."""
    try:
        data = json.loads((Path(sweep_dir) / SWEEP_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # ValueError: not JSON or not UTF-8
        return None
    return data if isinstance(data, dict) else None


def grid_difference(recorded: Mapping[str, Any], grid: Mapping[str, Any]) -> list[str]:
    """The grid entries (presets, methods, ...) in which two grids differ. More seeds are no
    difference: the recorded trials stay what they were and the new seeds only add trials
    beside them (each seed is its own run), so a grown sweep is the same sweep."""
    keys = sorted(set(recorded) | set(grid))
    return [k for k in keys if not (k == "seeds" and seeds_grown(recorded.get(k), grid.get(k)))
            and json.dumps(recorded.get(k), sort_keys=True)
            != json.dumps(grid.get(k), sort_keys=True)]


def seeds_grown(recorded: Any, seeds: Any) -> bool:
    """Whether seeds keeps every recorded seed (and may add some). An empty list means each
    preset's own seed, which is no list to grow."""
    return (isinstance(recorded, list) and isinstance(seeds, list) and bool(recorded)
            and set(recorded) <= set(seeds))
