"""The run directory as a typed contract (issue 15): its file names, the event schema checked
on every emit, and one list for every set of choices. The literals here are on purpose: they
are what other programs (and older runs) rely on."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mind_core import rundir
from mind_core.config import BN_MODES, VARIANT_DEFAULTS, VARIANTS, ConfigError, build_config
from mind_core.engine import Diverged, Engine, Interrupted
from mind_core.events import EVENT_FIELDS, EVENT_TYPES, EventError, EventLog, read_events
from mind_core.masks import INITS, MODES
from mind_core.network import CUSTOM_ARCH
from mind_core.protocol import ARCHS, LOSSES, MASKINGS
from mind_core.registry import BACKENDS
from mind_core.routing import ROUTINGS
from mind_core.schedule import SCENARIOS
from tests.fakes import DivergingBackend, FakeBackend, StopAfter, event_fields, tiny_dataset

ROOT = Path(__file__).resolve().parents[2]


def test_the_file_names_of_a_run_directory():
    assert (rundir.CONFIG, rundir.EVENTS, rundir.METRICS, rundir.CHECKPOINT_DIR) == (
        "config.json", "events.jsonl", "metrics.json", "checkpoint")
    assert (rundir.STOP_FILE, rundir.LOCK_FILE, rundir.OUTPUT_LOG, rundir.ERROR_LOG) == (
        "STOP", "run.lock", "output.log", "error.log")
    assert rundir.RESUME_CHECKPOINT == "resume.safetensors"
    assert [rundir.task_checkpoint(t) for t in (0, 12)] == ["task-0.safetensors",
                                                            "task-12.safetensors"]
    assert Path(rundir.task_checkpoint(3)).match(rundir.TASK_CHECKPOINTS)
    numbers = {name: rundir.task_checkpoint_number(name) for name in (
        "task-0.safetensors", "task-12.safetensors", "task-01.safetensors", "task-x.safetensors",
        "task-1.safetensors.tmp", "resume.safetensors")}
    assert numbers == {"task-0.safetensors": 0, "task-12.safetensors": 12,
                       "task-01.safetensors": None, "task-x.safetensors": None,
                       "task-1.safetensors.tmp": None, "resume.safetensors": None}


def _file_name_literals(path: Path) -> list[str]:
    names = {rundir.CONFIG, rundir.EVENTS, rundir.METRICS, rundir.CHECKPOINT_DIR,
             rundir.RESUME_CHECKPOINT, rundir.TASK_CHECKPOINTS, rundir.STOP_FILE,
             rundir.LOCK_FILE, rundir.OUTPUT_LOG, rundir.ERROR_LOG, "task-"}
    return [f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and node.value in names]


def test_only_rundir_spells_the_file_names():
    """Everything else imports them (text that mentions a file in a sentence is fine)."""
    found = [hit for folder in ("mind_core", "tui", "benchmarks")
             for path in sorted((ROOT / folder).rglob("*.py"))
             if path != ROOT / "mind_core" / "rundir.py"
             for hit in _file_name_literals(path)]
    assert found == []


# ----------------------------------------------------------------------------- event schema
def test_emit_refuses_an_unknown_type_or_a_missing_field_and_writes_nothing(tmp_path):
    seen: list[dict] = []
    log = EventLog(tmp_path / "events.jsonl", [seen.append])
    with pytest.raises(EventError, match="unknown event type 'nonsense'"):
        log.emit("nonsense")
    fields = event_fields("epoch_ended")
    del fields["lr"], fields["images_per_s"]
    with pytest.raises(EventError, match="epoch_ended event without lr, images_per_s"):
        log.emit("epoch_ended", **fields)
    assert seen == [] and not (tmp_path / "events.jsonl").exists()
    log.emit("run_failed", **event_fields("run_failed", reason="diverged"), task=0, epoch=3)
    log.close()
    assert [e["epoch"] for e in read_events(tmp_path / "events.jsonl")] == [3]  # extras kept


def test_every_event_a_run_writes_has_its_schema_fields(tmp_path):
    """A whole run, one stopped and one diverged: every type the engine writes, each with
    at least the fields EVENT_FIELDS lists for it (EventLog checks it as it writes)."""
    from mind_core.config import resolve_config

    settings = ["tasks=3", "teacher.epochs=2", "distill.epochs=2", "teacher.batch_size=16",
                "distill.batch_size=16", "backend=tests.fakes:FakeBackend"]
    cfg = resolve_config("smoke", settings)
    Engine(cfg, FakeBackend(), tiny_dataset(), tmp_path / "done").run()
    with pytest.raises(Interrupted):
        Engine(cfg, FakeBackend(), tiny_dataset(), tmp_path / "stopped",
               should_stop=StopAfter(3)).run()
    with pytest.raises(Diverged):
        Engine(cfg, DivergingBackend(), tiny_dataset(), tmp_path / "diverged").run()
    events = [e for run in ("done", "stopped", "diverged")
              for e in read_events(tmp_path / run / rundir.EVENTS)]
    for event in events:
        assert set(EVENT_FIELDS[event["type"]]) | {"type", "time"} <= set(event), event
    missing = set(EVENT_TYPES) - {e["type"] for e in events}
    assert missing <= {"student_behind"}  # needs a student far behind (test_engine has one)


# ----------------------------------------------------------------------------- choices
CHOICES = [("backend", tuple(BACKENDS)), ("model", (*ARCHS, CUSTOM_ARCH)),
           ("variant", VARIANTS), ("bn", BN_MODES), ("scenario", SCENARIOS),
           ("allocation.mode", MODES), ("allocation.init", INITS),
           ("distillation.loss", LOSSES), ("distillation.logit_masking", MASKINGS),
           ("inference.routing", ROUTINGS)]


@pytest.mark.parametrize("key, choices", CHOICES, ids=[key for key, _ in CHOICES])
def test_a_setting_takes_exactly_the_choices_of_its_one_list(key, choices):
    for choice in choices:
        build_config({key: choice})
    with pytest.raises(ConfigError) as refused:
        build_config({key: "nosuch"})
    assert refused.value.key == key
    assert all(choice in refused.value.message for choice in choices)


def test_every_variant_has_its_defaults():
    assert tuple(VARIANT_DEFAULTS) == VARIANTS
