"""A run directory's results as `mind report` shows them (RunResults), read and checked.

The numbers come from metrics.json (written after every task, so a partly finished run has
one too) or, where it is missing, from the `evaluated` events of events.jsonl. The per-task
routing accuracy is only in the events; it is used for the rows whose accuracies match
metrics.json's, so that a metrics.json and an events.jsonl from different runs are never
mixed. How much of each layer every task owns comes from the last `allocated` event, else from
the newest checkpoint. Below the report's tables (report.py) and plots (report_plots.py),
which both read RunResults; it needs nothing beyond the core.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import attrs

from mind_core.errors import short_repr
from mind_core.events import read_events
from mind_core.routing import PAPER_RULE
from mind_core.rundir import (
    CHECKPOINT_DIR,
    CONFIG,
    EVENTS,
    METRICS,
    RESUME_CHECKPOINT,
    TASK_CHECKPOINTS,
    RunDirError,
    task_checkpoint_number,
)

Row = list[float | None]  # an accuracy per task; None where a task had no test samples


@attrs.frozen(kw_only=True)
class RunResults:
    """What a report shows: one entry per finished task, in order."""

    title: str
    source: str  # the file the accuracies were read from
    acc_matrix_tag: list[Row]  # row t: after task t, tasks 0..t
    acc_matrix_taw: list[Row]
    per_task_routing: list[Row | None]  # None for a row the events do not give
    tag: Row
    taw: Row
    routing: Row
    tag_entropy: Row
    routing_rule: str
    ownership: dict[str, dict[str, Any]] | None = None  # masks.ownership_counts' shape
    ownership_task: int | None = None  # the last task allocated in `ownership`
    ownership_source: str | None = None

    @property
    def tasks_done(self) -> int:
        return len(self.tag)

    @property
    def has_routing_rows(self) -> bool:
        return any(row is not None for row in self.per_task_routing)


# ------------------------------------------------------------------ reading a run


def load_results(run_dir: Path) -> RunResults:
    """A run directory's results; RunDirError when it is not one or has no finished task."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"no run directory at {run_dir}")
    metrics_path, events_path = run_dir / METRICS, run_dir / EVENTS
    if not (metrics_path.is_file() or events_path.is_file()):
        raise RunDirError(f"{run_dir} is not a run directory (no {METRICS} or {EVENTS})")
    evaluated, allocated = _read_events(events_path)
    metrics = _read_json(metrics_path) if metrics_path.is_file() else None
    if metrics and metrics.get("tasks_done"):
        results = _from_metrics(metrics, evaluated)
        source = METRICS
    elif evaluated:
        results = _from_events(evaluated)
        source = EVENTS
    else:
        raise RunDirError(f"{run_dir} has no finished task to report yet")
    check_results(results, run_dir / source)
    ownership, task, where = _ownership(run_dir, allocated)
    if ownership is not None:
        check_ownership(ownership, run_dir / where)
    return RunResults(title=_title(run_dir), source=source, ownership=ownership,
                      ownership_task=task, ownership_source=where, **results)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise RunDirError(f"{path} is unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path} is unreadable (not a JSON object)")
    return data


def _read_events(path: Path) -> tuple[list[dict], dict | None]:
    """The last `evaluated` event of each task 0, 1, ... (a resumed run may repeat one), and
    the last `allocated` event."""
    if not path.is_file():
        return [], None
    by_task: dict[int, dict] = {}
    allocated = None
    try:
        for event in read_events(path, ("evaluated", "allocated")):
            if event["type"] == "evaluated" and isinstance(event.get("task"), int):
                by_task[event["task"]] = event
            elif event["type"] == "allocated" and isinstance(event.get("layers"), dict):
                allocated = event
    except OSError as exc:
        raise RunDirError(f"{path} is unreadable ({exc})") from None
    evaluated = []
    while len(evaluated) in by_task:
        evaluated.append(by_task[len(evaluated)])
    return evaluated, allocated


def _from_metrics(metrics: dict[str, Any], evaluated: list[dict]) -> dict[str, Any]:
    done = metrics["tasks_done"]
    if not _whole(done):
        raise RunDirError(f"{METRICS}: tasks_done is {short_repr(done)}; expected a whole "
                          "number")
    try:
        fields = {key: [list(row) for row in metrics[key][:done]]
                  for key in ("acc_matrix_tag", "acc_matrix_taw")}
        fields.update({key: list(metrics[key][:done])
                       for key in ("tag", "taw", "routing", "tag_entropy")})
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDirError(f"{METRICS} lacks the accuracies of its {metrics.get('tasks_done')} "
                          f"tasks ({type(exc).__name__}: {exc})") from None
    for key, values in fields.items():
        if len(values) != done:
            raise RunDirError(f"{METRICS}: {key} has {len(values)} entries for its {done} "
                              "finished tasks (tasks_done)")
    routing_rows: list[Row | None] = []
    for t in range(done):
        event = evaluated[t] if t < len(evaluated) else None
        same_run = event is not None and \
            event.get("per_task_tag") == fields["acc_matrix_tag"][t] and \
            event.get("per_task_taw") == fields["acc_matrix_taw"][t]
        routing_rows.append(list(event["per_task_routing"]) if same_run and
                            isinstance(event.get("per_task_routing"), list) else None)
    return {**fields, "per_task_routing": routing_rows,
            "routing_rule": str(metrics.get("routing_rule", PAPER_RULE))}


def check_results(fields: dict[str, Any], source: Path) -> None:
    """Every number the report shows, checked before any is written (a results file may come
    from anyone): one accuracy per finished task in each list, t + 1 of them in row t of a
    matrix, each None (no test samples) or a finite number in 0..1 (tag_entropy: >= 0).
    Each list already has an entry per finished task (_from_metrics, _from_events)."""
    for key in ("tag", "taw", "routing", "tag_entropy"):
        for t, value in enumerate(fields[key]):
            _check_accuracy(value, f"{key}[{t}]", source, key == "tag_entropy")
    for key in ("acc_matrix_tag", "acc_matrix_taw", "per_task_routing"):
        for t, row in enumerate(fields[key]):
            if row is None and key == "per_task_routing":  # not in the events: left out
                continue
            if len(row) < t + 1:
                raise RunDirError(f"{source}: {key} row {t} has {len(row)} accuracies; after "
                                  f"task {t} it has {t + 1}")
            for j, value in enumerate(row[:t + 1]):
                _check_accuracy(value, f"{key}[{t}][{j}]", source)


def _check_accuracy(value: Any, where: str, source: Path, unbounded: bool = False) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if value is None or (number and math.isfinite(value)
                         and 0 <= value <= (math.inf if unbounded else 1)):
        return
    raise RunDirError(f"{source}: {where} is {short_repr(value)}; expected "
                      f"{'a number >= 0' if unbounded else 'an accuracy in 0..1'} or null")


def check_ownership(layers: Any, source: Path) -> None:
    """Each layer's weight counts: whole numbers >= 0, one owned count per task (the same
    number of tasks in every layer)."""
    widths = set()
    for name, layer in layers.items() if isinstance(layers, dict) else [("", layers)]:
        owned = layer.get("owned") if isinstance(layer, dict) else None
        if not (isinstance(owned, list) and all(map(_whole, owned))
                and all(_whole(layer.get(k)) for k in ("free", "total"))):
            raise RunDirError(f"{source}: the weight counts of layer {name!r} are "
                              f"{short_repr(layer)}; expected owned (a count per task), free "
                              "and total, whole numbers >= 0")
        widths.add(len(owned))
    if len(widths) > 1:
        raise RunDirError(f"{source}: layers count owned weights for {sorted(widths)} tasks")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _from_events(evaluated: list[dict]) -> dict[str, Any]:
    try:
        return {
            "acc_matrix_tag": [list(e["per_task_tag"]) for e in evaluated],
            "acc_matrix_taw": [list(e["per_task_taw"]) for e in evaluated],
            "per_task_routing": [list(e["per_task_routing"]) if "per_task_routing" in e
                                 else None for e in evaluated],
            "tag": [e["tag"] for e in evaluated],
            "taw": [e["taw"] for e in evaluated],
            "routing": [e["routing"] for e in evaluated],
            "tag_entropy": [e.get("tag_entropy") for e in evaluated],
            "routing_rule": str(evaluated[-1].get("routing_rule", PAPER_RULE)),
        }
    except (KeyError, TypeError) as exc:
        raise RunDirError(f"an evaluated event of {EVENTS} lacks {exc}") from None


def _ownership(run_dir: Path, allocated: dict | None
               ) -> tuple[dict[str, dict] | None, int | None, str | None]:
    """Each layer's owned/free weight counts after the last allocation: the event's, else the
    newest checkpoint's (the resume checkpoint is written right after every allocation)."""
    if allocated is not None:
        return allocated["layers"], allocated.get("task"), EVENTS
    from mind_core import checkpoint, masks

    folder = run_dir / CHECKPOINT_DIR
    numbered = {task_checkpoint_number(p.name): p for p in folder.glob(TASK_CHECKPOINTS)}
    tasks = [numbered[t] for t in sorted(t for t in numbered if t is not None)]
    for path in [folder / RESUME_CHECKPOINT, *reversed(tasks)]:
        if not path.is_file():
            continue
        try:
            ckpt = checkpoint.load(path)
            counts = masks.ownership_counts(ckpt.owner, ckpt.tasks)
        except (checkpoint.CheckpointError, ValueError):
            continue  # an unreadable checkpoint: try the next older one
        owners = [t for layer in counts.values() for t, n in enumerate(layer["owned"]) if n]
        return counts, max(owners, default=None), f"{CHECKPOINT_DIR}/{path.name}"
    return None, None, None


def _title(run_dir: Path) -> str:
    """The run's name and settings from config.json; the folder's name without one."""
    try:
        data = json.loads((run_dir / CONFIG).read_text(encoding="utf-8"))
        cfg = data["config"]
        preset = f" ({cfg['name']})" if cfg.get("name") else ""
        return (f"{data.get('name') or run_dir.name}{preset}: {cfg['dataset']}, {cfg['tasks']} "
                f"tasks, {cfg['variant']}, {cfg['backend']}")
    except (OSError, ValueError, RecursionError, KeyError, TypeError):
        return run_dir.name
