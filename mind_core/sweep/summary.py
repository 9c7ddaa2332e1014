"""A sweep's results: summary.csv (one row per trial, its numbers read from the trial's own
metrics.json), summary.md (mean +- std over seeds for each configuration) and plots (TAg after
each task, one line per method; matplotlib is the `report` extra)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mind_core.events import write_text_atomic
from mind_core.sweep.grid import Trial, safe_part
from mind_core.sweep.trial import (
    FAILED,
    FINISHED,
    PENDING,
    error_line,
    read_metrics,
    status_on_disk,
    training_seconds,
)

SUMMARY_CSV, SUMMARY_MD, PLOTS_DIR = "summary.csv", "summary.md", "plots"
NUMBERS = ("tag", "taw", "routing", "forgetting_tag", "forgetting_taw")


def trial_row(trial: Trial, sweep_dir: Path, outcome: Mapping[str, Any] | None = None
              ) -> dict[str, Any]:
    """One trial's row: its settings, status and (finished or not) the numbers its
    metrics.json holds. outcome: what this invocation's attempt returned, if it ran."""
    run_dir = Path(sweep_dir) / trial.name
    status = status_on_disk(run_dir, trial.config.tasks)
    if outcome and status != FINISHED and outcome["status"] != PENDING:
        status = outcome["status"]  # this attempt's word (a trial not started keeps its own)
    metrics = read_metrics(run_dir) or {}
    final = metrics.get("final") or {}
    forgetting = metrics.get("forgetting") or {}
    error = None
    if status == FAILED:
        error = (outcome or {}).get("error") or error_line(run_dir)
    return {"trial": trial.name, "preset": trial.preset, "dataset": trial.dataset,
            "method": trial.method, "seed": trial.seed, **dict(trial.sets), "status": status,
            "tasks_done": metrics.get("tasks_done", 0),
            "tag": final.get("tag"), "taw": final.get("taw"), "routing": final.get("routing"),
            "forgetting_tag": (forgetting.get("tag") or {}).get("average"),
            "forgetting_taw": (forgetting.get("taw") or {}).get("average"),
            "seconds": training_seconds(run_dir), "error": error,
            "curve_tag": metrics.get("tag") if status == FINISHED else None}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    return str(value)


def summary_csv(rows: Sequence[Mapping[str, Any]], set_keys: Sequence[str]) -> str:
    columns = ["trial", "preset", "dataset", "method", "seed", *set_keys, "status",
               "tasks_done", *NUMBERS, "seconds", "error"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def _pm(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "-"
    mean, std = mean_std([v * scale for v in values])
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def configurations(rows: Sequence[Mapping[str, Any]], set_keys: Sequence[str]
                   ) -> dict[tuple, list[Mapping[str, Any]]]:
    """Rows grouped by everything but the seed, in the grid's order."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        key = (row["preset"], row["dataset"], row["method"], *(row[k] for k in set_keys))
        groups.setdefault(key, []).append(row)
    return groups


def summary_md(rows: Sequence[Mapping[str, Any]], set_keys: Sequence[str],
               record: Mapping[str, Any]) -> str:
    counts = {s: sum(r["status"] == s for r in rows) for s in (FINISHED, FAILED)}
    lines = [f"# Sweep {record.get('id', '')[:8]}", "",
             f"`{record.get('command', 'mind sweep')}`", "",
             f"{len(rows)} trials: {counts[FINISHED]} finished, {counts[FAILED]} failed, "
             f"{len(rows) - counts[FINISHED] - counts[FAILED]} not finished. Accuracies in %, "
             "mean ± sample standard deviation over the finished seeds of each configuration; "
             "forgetting is the average forgetting of TAg (percentage points).", ""]
    head = ["preset", "dataset", "method", *set_keys, "seeds", "TAg", "TAw", "routing",
            "forgetting (TAg)", "seconds"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, group in configurations(rows, set_keys).items():
        done = [r for r in group if r["status"] == FINISHED]
        seeds = f"{len(done)}/{len(group)}"
        numbers = [_pm([r[n] for r in done]) for n in ("tag", "taw", "routing",
                                                       "forgetting_tag")]
        seconds = _pm([r["seconds"] for r in done if r["seconds"] is not None], 1.0)
        lines.append("| " + " | ".join([*map(str, key), seeds, *numbers, seconds]) + " |")
    failed = [r for r in rows if r["status"] == FAILED]
    if failed:
        lines += ["", "## Failed trials", ""]
        lines += [f"- `{r['trial']}`: {r['error'] or 'see its error.log'}" for r in failed]
    return "\n".join(lines) + "\n"


def write_summary(sweep_dir: Path, trials: Sequence[Trial], record: Mapping[str, Any],
                  outcomes: Mapping[str, Mapping[str, Any]] | None = None
                  ) -> list[dict[str, Any]]:
    """summary.csv and summary.md from the trials' directories; returns the rows."""
    outcomes = outcomes or {}
    set_keys = [k for k, _ in trials[0].sets] if trials else []
    rows = [trial_row(t, sweep_dir, outcomes.get(t.name)) for t in trials]
    write_text_atomic(Path(sweep_dir) / SUMMARY_CSV, summary_csv(rows, set_keys))
    write_text_atomic(Path(sweep_dir) / SUMMARY_MD, summary_md(rows, set_keys, record))
    return rows


def write_plots(sweep_dir: Path, rows: Sequence[Mapping[str, Any]],
                set_keys: Sequence[str]) -> tuple[list[Path], list[str]]:
    """One PNG per preset, dataset and --set values: TAg after each task, one line per method
    (mean over the finished seeds, the band one standard deviation). Without matplotlib, no
    plots and one note."""
    from mind_core.extras import MissingExtra, require

    try:
        require("matplotlib", "report", "the sweep's plots")
    except MissingExtra as exc:
        return [], [f"plots skipped: {exc}"]
    from mind_core.sweep.plots import tag_curves

    groups: dict[tuple, dict[str, list[list[float]]]] = {}
    for row in rows:
        if row["status"] != FINISHED or not row.get("curve_tag"):
            continue
        key = (row["preset"], row["dataset"], *(f"{k}={row[k]}" for k in set_keys))
        groups.setdefault(key, {}).setdefault(row["method"], []).append(row["curve_tag"])
    folder = Path(sweep_dir) / PLOTS_DIR
    written = []
    for key, methods in groups.items():
        folder.mkdir(exist_ok=True)
        name = "tag-" + "-".join(safe_part(str(part)) for part in key) + ".png"
        written.append(tag_curves(methods, " ".join(map(str, key)), folder / name))
    return written, []
