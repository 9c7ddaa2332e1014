"""`mind report`: a run directory's results (mind_core/run_results.py) as CSV tables and
PNG plots (mind_core/report_plots.py).

Task numbers in the CSV files and the plots count from 1, as everything a person reads does
(docs/design.md, "Numbering"); events.jsonl and metrics.json keep 0-based indices. Plotting
needs matplotlib, the `report` extra; reading the run and writing the CSVs need nothing beyond
the core.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from mind_core.extras import require
from mind_core.outputs import output_dir
from mind_core.run_results import RunResults, load_results
from mind_core.rundir import EVENTS, RunDirError

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
