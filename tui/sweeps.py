"""Sweeps under the runs directory (`mind sweep --out SWEEP`, docs/sweeps.md): a directory
holding sweep.json and one ordinary run directory per trial. The runs screen shows each as one
group row (trials done / running / failed / total, an ETA) that expands to its trials.

A trial's status is the sweep's own word for it (mind_core.sweep.trial.status_on_disk:
finished, failed, interrupted, pending). That word describes a trial at rest, so "running" is
taken from the runs list, by the rule every run's row follows (tui.rundir.status_from_events).
Pure Python, no Textual; like tui.rundir, it tolerates half-written and malformed files.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mind_core.sweep.grid import SWEEP_JSON, read_sweep
from mind_core.sweep.progress import clock, eta_seconds
from mind_core.sweep.trial import FAILED, FINISHED, error_line, status_on_disk, training_seconds
from tui.rundir import RunSummary, fingerprint

RUNNING = "running"
UNREADABLE = f"its {SWEEP_JSON} cannot be read (unreadable, not JSON, or not a table)"


@dataclasses.dataclass(frozen=True)
class SweepSummary:
    """One group row of the runs screen."""

    path: Path
    name: str
    trials: tuple[RunSummary, ...] = ()  # in the grid's order, status as the sweep says
    started: float | None = None  # sweep.json's "created", unix time
    eta_s: float | None = None
    problem: str = ""  # why the sweep's record cannot be used ("" when it can)

    def count(self, status: str) -> int:
        return sum(trial.status == status for trial in self.trials)

    def mean(self, key: str) -> float | None:
        """The mean final accuracy ("tag" or "taw") of the finished trials, as summary.md's
        mean over seeds but over the whole grid: a trial still going would pull it down."""
        values = [getattr(t, key) for t in self.trials
                  if t.status == FINISHED and getattr(t, key) is not None]
        return sum(values) / len(values) if values else None

    def progress(self) -> str:
        """"3/6 done, 1 running, 1 failed, ETA 4m10s, mean TAg 75.0 %": zero counts, an
        unknown ETA and a mean of no trials left out, so a finished sweep reads "6/6 done,
        mean TAg 75.0 %"."""
        parts = [f"{self.count(FINISHED)}/{len(self.trials)} done"]
        parts += [f"{n} {word}" for n, word in ((self.count(RUNNING), "running"),
                                                (self.count(FAILED), "failed")) if n]
        if self.eta_s is not None:
            parts.append(f"ETA {clock(self.eta_s)}")
        tag = self.mean("tag")
        if tag is not None:
            parts.append(f"mean TAg {100 * tag:.1f} % of the finished")
        return ", ".join(parts)

    @functools.cached_property  # every trial's row asks; not a field (eq ignores it)
    def shared_prefix(self) -> str:
        """The start every trial's name shares, up to a "-": what the grid held constant
        (preset, dataset, method...); "" for fewer than two trials."""
        names = [trial.name for trial in self.trials]
        prefix = os.path.commonprefix(names) if len(names) > 1 else ""
        prefix = prefix[:prefix.rfind("-") + 1]
        return "" if prefix in names else prefix

    def short_name(self, trial: RunSummary) -> str:
        """A trial's name under its sweep's row: "…seed1" for smoke-synthetic-mind-seed1
        when every trial starts smoke-synthetic-mind- (the names grow long with the grid,
        and would push the runs list's other columns off the screen)."""
        prefix = self.shared_prefix
        return "…" + trial.name[len(prefix):] if prefix else trial.name


def is_sweep_dir(path: Path) -> bool:
    """A sweep's directory, even when its sweep.json is unreadable (its row says so)."""
    return (path / SWEEP_JSON).is_file()


def list_sweep_dirs(runs_dir: Path) -> list[Path]:
    try:
        children = sorted(p for p in runs_dir.iterdir() if p.is_dir())
    except OSError:
        return []
    return [p for p in children if is_sweep_dir(p)]


def recorded_trials(record: dict[str, Any] | None) -> list[dict[str, Any]] | str:
    """The trial entries of a sweep.json (read_sweep's value), or why there are none to use:
    every entry needs a name that is a plain directory name inside the sweep."""
    if record is None:
        return UNREADABLE
    trials = record.get("trials")
    if not isinstance(trials, list):
        return f"its {SWEEP_JSON} is malformed: trials is {_short(trials)}, not a list"
    seen: set[str] = set()
    for number, entry in enumerate(trials, 1):
        name = entry.get("name") if isinstance(entry, dict) else None
        # A name that leaves the sweep directory would show some other run as a trial.
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
            return (f"its {SWEEP_JSON} is malformed: trial {number} has no usable name "
                    f"({_short(entry)})")
        if name in seen:  # one directory cannot be two trials (nor two rows)
            return f"its {SWEEP_JSON} is malformed: trial {number} repeats the name {name!r}"
        seen.add(name)
    return trials


def trial_status(run_dir: Path, run: RunSummary) -> str:
    """The sweep's status of a trial, or "running" while its run is (and the sweep does not
    already call it finished or failed). run.tasks is 0 for a trial that never wrote its
    config or a run_started event: then it has no metrics.json either, and is not finished."""
    at_rest = status_on_disk(run_dir, run.tasks)
    return RUNNING if run.status == RUNNING and at_rest not in (FINISHED, FAILED) else at_rest


def trial_summary(run_dir: Path, run: RunSummary, entry: dict[str, Any]) -> RunSummary:
    """A trial as a row of the runs list: its run's summary with the sweep's status, the
    error line of a failed trial, and the dataset sweep.json names before the run does."""
    status = trial_status(run_dir, run)
    if status == FAILED:
        message = error_line(run_dir) or run.message
    else:  # the run's message explains its own status, when the two agree
        message = run.message if status == run.status else ""
    dataset = run.dataset if run.dataset != "?" else str(entry.get("dataset") or "?")
    return dataclasses.replace(run, status=status, message=message, dataset=dataset)


def sweep_eta(trials: tuple[RunSummary, ...],
              seconds: Callable[[Path], float | None]) -> float | None:
    """Seconds left, by the sweep's own estimate (mind_core.sweep.progress.eta_seconds) from
    the training seconds of its finished trials; None while no trial runs (a stopped sweep
    has no ETA) or none has finished. While trials wait, the driver keeps every slot busy, so
    the trials running now are as many as it runs at once. Trials left: those neither
    finished, failed nor running (a rerun may retry the failed ones: not counted)."""
    running = [t for t in trials if t.status == RUNNING]
    if not running:
        return None
    durations = [s for s in (seconds(t.path) for t in trials if t.status == FINISHED)
                 if s is not None]
    waiting = sum(t.status not in (FINISHED, FAILED, RUNNING) for t in trials)
    elapsed = [seconds(t.path) or 0.0 for t in running]
    return eta_seconds(durations, waiting, elapsed, slots=len(running))


class SweepReader:
    """Reads sweeps for the runs screen's scans. run_summary: the screen's (cached) summary of
    a run directory. A trial's training seconds (the ETA's) are kept until its files change:
    a rescan every few seconds then costs a stat per file of a finished trial, not a read of
    its events."""

    def __init__(self, run_summary: Callable[[Path], RunSummary]) -> None:
        self.run_summary = run_summary
        self._seconds: dict[Path, tuple[tuple[tuple[int, int], ...], float | None]] = {}

    def read(self, sweep_dir: Path) -> SweepSummary:
        """The sweep's group row; one that names the problem, never an exception, for a
        sweep whose files cannot be used."""
        try:
            return self._read(sweep_dir)
        except Exception as exc:  # noqa: BLE001 - a bad sweep must never stop the runs list
            return SweepSummary(sweep_dir, sweep_dir.name, started=_dir_time(sweep_dir),
                                problem=f"its files cannot be read ({type(exc).__name__}: {exc})")

    def _read(self, sweep_dir: Path) -> SweepSummary:
        record = read_sweep(sweep_dir)
        entries = recorded_trials(record)
        if isinstance(entries, str):
            return SweepSummary(sweep_dir, sweep_dir.name, started=_dir_time(sweep_dir),
                                problem=entries)
        assert record is not None  # recorded_trials said why otherwise
        trials = tuple(self._trial(sweep_dir / entry["name"], entry) for entry in entries)
        return SweepSummary(sweep_dir, sweep_dir.name, trials,
                            started=_created(record.get("created")) or _dir_time(sweep_dir),
                            eta_s=sweep_eta(trials, self.seconds))

    def _trial(self, run_dir: Path, entry: dict[str, Any]) -> RunSummary:
        return trial_summary(run_dir, self.run_summary(run_dir), entry)

    def seconds(self, run_dir: Path) -> float | None:
        stamp = fingerprint(run_dir)
        cached = self._seconds.get(run_dir)
        if cached is None or cached[0] != stamp:
            cached = (stamp, training_seconds(run_dir))
            self._seconds[run_dir] = cached
        return cached[1]


def _created(value: Any) -> float | None:
    """sweep.json's "created" (sweep_record: %Y-%m-%dT%H:%M:%S%z) as unix time."""
    try:
        return datetime.datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def _dir_time(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
