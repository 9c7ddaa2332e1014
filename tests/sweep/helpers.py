"""Reading a sweep directory back in the tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from mind_core.events import read_events

FAKES = "tests.sweep.sweep_fakes"


def summary_rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", encoding="utf-8", newline="") as handle:
        return {row["trial"]: row for row in csv.DictReader(handle)}


def metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def resumed_flags(run_dir: Path) -> list[bool]:
    """The resumed flag of every run_started event, in order: one per attempt."""
    return [e["resumed"] for e in read_events(run_dir / "events.jsonl", {"run_started"})]


def assert_summary_matches_metrics(out: Path) -> dict[str, dict[str, str]]:
    """Every finished row of summary.csv holds its trial's own metrics.json numbers."""
    rows = summary_rows(out)
    for name, row in rows.items():
        if row["status"] != "finished":
            continue
        m = metrics(out / name)
        assert int(row["tasks_done"]) == m["tasks_done"]
        for column, value in (("tag", m["final"]["tag"]), ("taw", m["final"]["taw"]),
                              ("routing", m["final"]["routing"]),
                              ("forgetting_tag", m["forgetting"]["tag"]["average"]),
                              ("forgetting_taw", m["forgetting"]["taw"]["average"])):
            assert float(row[column]) == value, (name, column)
        assert float(row["seconds"]) > 0
    return rows
