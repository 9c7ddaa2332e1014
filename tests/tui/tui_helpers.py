"""Helpers for the TUI tests: recorded run directories, a fixed catalog, Pilot utilities."""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.content import Content

from tui.catalog import ConfigProblem, DatasetChoice

DATA = Path(__file__).parent / "data"
RECORDED = ("finished-3tasks", "interrupted-4tasks", "failed-3tasks", "crashed-3tasks")


PRESETS = {
    "smoke": {"description": "A few seconds on the synthetic set", "dataset": "synthetic",
              "tasks": 5, "teacher.epochs": 1, "teacher.lr": 0.01, "teacher.milestones": [],
              "distill.epochs": 1, "distill.lr": 0.01, "distill.milestones": []},
    "demo": {"description": "The built-in Fashion-MNIST subset, 5 tasks", "dataset": "fmnist-mini",
             "tasks": 5, "teacher.epochs": 6, "teacher.lr": 0.005, "teacher.milestones": [4],
             "distill.epochs": 8, "distill.lr": 0.01, "distill.milestones": [6]},
}
COMMON = {"model": "small_cnn", "variant": "mind", "distillation.beta": 5.0,
          "inference.temperature": 1.0, "allocation.weight_sharing": True, "seed": 0,
          "device": "auto", "precision": "fp32", "label_aug.transform": "none",
          "backend": "torch"}
DATASETS = (
    DatasetChoice("fmnist-mini", 10, (28, 28, 1), True),
    DatasetChoice("synthetic", 10, (16, 16, 3), True),
    DatasetChoice("cifar100", 100, (32, 32, 3), False, "download it with `mind datasets`"),
)


class FixedCatalog:
    """Presets and datasets that never change, so the launch screen renders the same anywhere.
    Its checks are a small stand-in for the core's (the core's own are tested live)."""

    def presets(self) -> list[tuple[str, str]]:
        return [(name, p["description"]) for name, p in PRESETS.items()]

    def datasets(self, data_dir: str | None = None) -> list[DatasetChoice]:
        # Under the data dir "/data" cifar100 is there too.
        return [DatasetChoice(d.name, d.classes, d.shape, True)
                if data_dir == "/data" and d.name == "cifar100" else d for d in DATASETS]

    def user_dataset(self, name: str) -> DatasetChoice:
        if name != "npz:mine.npz":
            raise ConfigProblem("own_data", f"the dataset file {name[4:]} does not exist")
        return DatasetChoice(name, 10, (8, 8, 3), True)

    def resolve(self, preset: str, overrides: list[str], **fields: Any) -> dict[str, Any]:
        config = {**COMMON, **{k: v for k, v in PRESETS[preset].items() if k != "description"}}
        config.update(fields)
        for item in overrides:
            key, _, text = item.partition("=")
            config[key] = _parse(key, text)
        classes = {d.name: d.classes for d in DATASETS}.get(config["dataset"], 10)
        if config["tasks"] < 1 or classes % config["tasks"]:
            raise ConfigProblem("tasks", f"{config['tasks']} tasks do not divide {classes} classes")
        if config["distillation.beta"] < 0:
            raise ConfigProblem("distillation.beta", "beta must be >= 0")
        return config


def _parse(key: str, text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if key in ("tasks", "seed", "teacher.epochs", "distill.epochs"):
        raise ConfigProblem(key, f"{key} must be an integer")
    return text


def recorded_variant(name: str, dest: Path, edit: Callable[[dict], dict | None],
                     routing: str | None = None) -> Path:
    """A copy of a recorded run at dest whose events went through edit, in order (None drops
    an event), and whose config routes with `routing` when given: runs of other versions, or
    malformed ones."""
    shutil.copytree(DATA / name, dest)
    lines = (dest / "events.jsonl").read_text().splitlines()
    edited = (edit(json.loads(line)) for line in lines if line.strip())
    events = [e for e in edited if e is not None]
    (dest / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if routing is not None:
        config = json.loads((dest / "config.json").read_text())
        config["config"]["inference"]["routing"] = routing
        (dest / "config.json").write_text(json.dumps(config))
    (dest / "metrics.json").unlink(missing_ok=True)  # it would tell the old story
    return dest


def without_statistics() -> Callable[[dict], dict]:
    """An edit for recorded_variant: the events of a run that fitted no routing statistics,
    so scored only the score-only rules and routed with max_prob."""
    from mind_core.routing import SCORE_ONLY

    last: dict = {}

    def edit(event: dict) -> dict:
        if event["type"] == "evaluated":
            rules = {k: v for k, v in event["rules"].items() if k in SCORE_ONLY}
            last.update(rules["max_prob"])
            return {**event, "routing_rule": "max_prob", "rules": rules, **rules["max_prob"]}
        return {**event, **last} if event["type"] == "run_finished" else event
    return edit


def before_teachers(event: dict) -> dict | None:
    """An edit for recorded_variant: the events of a run made before teachers were scored
    (no teacher_taw, no student_behind)."""
    if event["type"] == "student_behind":
        return None
    return {k: v for k, v in event.items() if k != "teacher_taw"}


def plain(widget: Any) -> str:
    """The text a Static widget shows, without styles."""
    content = widget.content
    if isinstance(content, str):
        return Content.from_markup(content).plain
    console = Console(width=160, record=True, file=io.StringIO(), color_system=None)
    console.print(content)
    return console.export_text().rstrip()


async def wait_for(pilot: Any, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Let the app run until predicate() holds (fails the test after timeout seconds)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        await pilot.pause(0.05)


def drive(app: Any, scenario: Callable[[Any], Any], size: tuple[int, int] = (100, 30)) -> None:
    """Run the app headless at a terminal size and play scenario(pilot) against it."""
    import asyncio

    async def main() -> None:
        try:
            async with app.run_test(size=size) as pilot:
                await scenario(pilot)
        finally:  # never leave a child process behind a failed test
            for proc in getattr(app, "processes", {}).values():
                if proc.alive:
                    proc.popen.kill()
                proc.popen.wait()

    asyncio.run(main())


def replay(run: Path, config_rule: str | None = None):
    """The RunState a monitor builds from a run directory's events."""
    from tui.rundir import run_events
    from tui.runstate import RunState

    state = RunState(config_rule=config_rule)
    for event in run_events(run):
        state.apply(event)
    return state


def rendered(renderable: Any, width: int = 80) -> str:
    """A Rich renderable as plain text at a terminal width."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def write_sweep(dest: Path, seeds: str = "0,1,2,3", sets: tuple[str, ...] = (),
                created: str = "2023-11-15T09:00:00+0000") -> tuple[list, dict]:
    """A sweep directory as `mind sweep --out dest` starts it, before any trial has run: its
    sweep.json written by mind_core.sweep's own functions (the smoke preset on the fake
    backend, a fixed id and creation time). Returns the trials and the record."""
    from mind_core.events import write_json_atomic
    from mind_core.sweep.grid import SWEEP_JSON, expand, method_table, parse_grid, sweep_record

    grid = parse_grid("smoke", seeds=seeds, sets=sets, backend="tests.fakes:FakeBackend",
                      device="cpu")
    methods = method_table()
    trials = expand(grid, methods)
    record = sweep_record(grid, trials, methods, {"cpus_per_trial": 1.0}, "mind sweep",
                          earlier={"id": "5" * 32, "created": created})
    dest.mkdir(parents=True)
    write_json_atomic(dest / SWEEP_JSON, record)
    return trials, record


def run_sweep_trial(sweep: Path, trial: Any, record: dict) -> dict:
    """One trial run in this process as a sweep's Ray task runs it (mind_core.sweep.trial)."""
    from mind_core.config import config_to_dict
    from mind_core.sweep.trial import run_trial

    return run_trial({"name": trial.name, "run_dir": str(sweep / trial.name),
                      "sweep_dir": str(sweep), "sweep_id": record["id"],
                      "config": config_to_dict(trial.config), "backend": trial.config.backend,
                      "threads": 1})


def start_running(run_dir: Path, tasks: int, started: float, trained: float) -> None:
    """A run that is training now: its run_started names this (live) process, and its last
    event came `trained` seconds after it."""
    import os

    from mind_core.events import EventLog
    from tests.fakes import event_fields

    times = iter([started, started + trained])
    log = EventLog(run_dir / "events.jsonl", clock=lambda: next(times))
    log.emit("run_started", **event_fields("run_started", tasks=tasks, pid=os.getpid(),
                                            backend="fake", dataset="synthetic"))
    log.emit("task_started", **event_fields("task_started", task=0, tasks=tasks))
    log.close()
