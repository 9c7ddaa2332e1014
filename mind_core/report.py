"""`mind report`: a run directory's results as CSV tables and PNG plots.

The numbers come from metrics.json (written after every task, so a partly finished run has
one too) or, where it is missing, from the `evaluated` events of events.jsonl. The per-task
routing accuracy is only in the events; it is used for the rows whose accuracies match
metrics.json's, so that a metrics.json and an events.jsonl from different runs are never
mixed. How much of each layer every task owns comes from the last `allocated` event, else from
the newest checkpoint.

Task numbers in the CSV files and the plots count from 1, as everything a person reads does
(docs/design.md, "Numbering"); events.jsonl and metrics.json keep 0-based indices. Plotting (mind_core.report_plots) needs matplotlib,
the `report` extra; reading the run and writing the CSVs need nothing beyond the core.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import attrs

from mind_core.errors import short_repr
from mind_core.events import read_events
from mind_core.extras import require
from mind_core.outputs import output_dir
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


# ------------------------------------------------------------------ CSV tables


def _cell(value: Any) -> Any:
    """A CSV cell: a missing accuracy (None or NaN) is empty; floats keep full precision."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([[_cell(v) for v in row] for row in rows])
    return path


def write_tables(results: RunResults, out: Path) -> list[Path]:
    """per_task_accuracy.csv (long: one row per task evaluated after each task), summary.csv
    (one row per task learned) and, when known, ownership.csv (weights per layer and owner)."""
    with_routing = results.has_routing_rows
    long_rows = []
    for t in range(results.tasks_done):
        routing_row = results.per_task_routing[t]
        for j in range(t + 1):
            row = [t + 1, j + 1, results.acc_matrix_taw[t][j], results.acc_matrix_tag[t][j]]
            if with_routing:
                row.append(routing_row[j] if routing_row is not None else None)
            long_rows.append(row)
    written = [
        _write_csv(out / "per_task_accuracy.csv",
                   ["after_task", "task", "taw", "tag"] + (["routing"] if with_routing else []),
                   long_rows),
        _write_csv(out / "summary.csv", ["after_task", "tag", "taw", "routing", "tag_entropy"],
                   [[t + 1, results.tag[t], results.taw[t], results.routing[t],
                     results.tag_entropy[t]] for t in range(results.tasks_done)]),
    ]
    if results.ownership:
        tasks = len(next(iter(results.ownership.values()))["owned"])
        written.append(_write_csv(
            out / "ownership.csv",
            ["layer", "total", "free"] + [f"task{t + 1}" for t in range(tasks)],
            [[name, layer["total"], layer["free"], *layer["owned"]]
             for name, layer in results.ownership.items()]))
    return written


# ------------------------------------------------------------------ the command


def write_report(run_dir: Path, out: Path | None = None) -> tuple[list[Path], list[str]]:
    """Write the report of run_dir into out (default run_dir/report); returns the files
    written and notes on what could not be shown. Without matplotlib: MissingExtra before
    anything is read or written."""
    require("matplotlib", "report", "mind report")
    from mind_core.report_plots import write_plots

    results = load_results(run_dir)
    own = Path(run_dir) / "report"  # the one place in a run directory a report may go
    out = output_dir(Path(out) if out is not None else own, "--out", own=own)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot write the report to {out} ({exc.strerror or exc})") from None
    if not out.is_dir():
        raise RunDirError(f"cannot write the report to {out}: it is a file")
    notes = []
    if results.ownership is None:
        notes.append("no allocation recorded (no allocated event or readable checkpoint): "
                     "no ownership plot")
    if not results.has_routing_rows:
        notes.append(f"per-task routing accuracy not recorded in {EVENTS}: left out of "
                     "per_task_accuracy.csv")
    return write_plots(results, out) + write_tables(results, out), notes
