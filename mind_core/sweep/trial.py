"""One trial of a sweep, as a Ray task runs it: an ordinary run directory, trained by
runner.start_run or continued by runner.resume_run, in the sweep directory every node sees at
the same path (docs/sweeps.md). Also what the driver and the summary read back from a trial's
directory: its state, its training seconds, its error line."""

from __future__ import annotations

import json
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from mind_core.rundir import (
    CHECKPOINT_DIR,
    ERROR_LOG,
    EVENTS,
    METRICS,
    RESUME_CHECKPOINT,
    STOP_FILE,
    is_locked,
    task_checkpoint,
)

# A trial's status: finished (metrics.json and a checkpoint for every task), interrupted (stopped with a
# resume checkpoint: a rerun resumes it), failed (error.log holds why), pending (not started).
FINISHED, INTERRUPTED, FAILED, PENDING = "finished", "interrupted", "failed", "pending"


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(run_dir) / METRICS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_finished(run_dir: Path, tasks: int) -> bool:
    """metrics.json holds every task of the run and the last task's checkpoint is there: a
    run killed between the two is not finished (a rerun resumes it)."""
    metrics = read_metrics(run_dir)
    done = metrics.get("tasks_done") if metrics else None
    return isinstance(done, int) and done >= tasks and \
        (Path(run_dir) / CHECKPOINT_DIR / task_checkpoint(tasks - 1)).is_file()


def can_resume(run_dir: Path) -> bool:
    return (Path(run_dir) / CHECKPOINT_DIR / RESUME_CHECKPOINT).is_file()


def error_line(run_dir: Path) -> str | None:
    """The last line of the trial's error.log (the exception, after its traceback)."""
    try:
        lines = (Path(run_dir) / ERROR_LOG).read_text(encoding="utf-8").strip().splitlines()
    except OSError:
        return None
    return lines[-1].strip() if lines else None


def status_on_disk(run_dir: Path, tasks: int) -> str:
    """What a trial's directory says of it, for a trial this invocation did not run."""
    if is_finished(run_dir, tasks):
        return FINISHED
    if (Path(run_dir) / ERROR_LOG).is_file():
        return FAILED
    return INTERRUPTED if can_resume(run_dir) else PENDING


def training_seconds(run_dir: Path) -> float | None:
    """Seconds the trial has trained, over every attempt: from each run_started event to the
    last event of that attempt (events.jsonl). None without events."""
    from mind_core.events import read_events

    path = Path(run_dir) / EVENTS
    if not path.is_file():
        return None
    total, start, last = 0.0, None, None
    for event in read_events(path):
        moment = event.get("time")
        if not isinstance(moment, (int, float)):
            continue
        if event["type"] == "run_started":
            if start is not None and last is not None:
                total += last - start
            start = moment
        last = moment
    if start is not None and last is not None:
        total += last - start
    return round(total, 3)


def write_error(run_dir: Path, text: str) -> None:
    try:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / ERROR_LOG).write_text(text, encoding="utf-8")
    except OSError:
        pass


def same_sweep(sweep_dir: Path, sweep_id: str) -> bool:
    from mind_core.sweep.grid import read_sweep

    record = read_sweep(sweep_dir)
    return bool(record) and record.get("id") == sweep_id


def run_trial(job: dict[str, Any]) -> dict[str, Any]:
    """Run (or resume, or skip) one trial; never raises for the trial's own failure.

    job: name, run_dir and sweep_dir (absolute paths), sweep_id, config (config_to_dict),
    backend (the name the user gave, trusted again on resume), threads. Returns name,
    status, seconds (this attempt), error (one line or None), resumed, host."""
    from mind_core.config import config_from_dict
    from mind_core.engine import Diverged, Interrupted
    from mind_core.runner import resume_run, start_run

    started = time.time()
    run_dir, sweep_dir = Path(job["run_dir"]), Path(job["sweep_dir"])
    result: dict[str, Any] = {"name": job["name"], "status": FAILED, "seconds": 0.0,
                              "error": None, "resumed": False, "host": socket.gethostname()}

    def done(status: str, error: str | None = None) -> dict[str, Any]:
        result.update(status=status, error=error, seconds=round(time.time() - started, 3))
        return result

    if not same_sweep(sweep_dir, job["sweep_id"]):
        # Not written to the trial's directory: on this node it is not the sweep's.
        return done(FAILED, f"the sweep directory {sweep_dir} is not visible on "
                            f"{result['host']}: every node must mount it at the same path "
                            "(docs/sweeps.md)")
    stop_file = sweep_dir / STOP_FILE
    if stop_file.exists():
        return done(PENDING)
    cfg = config_from_dict(job["config"])
    if is_finished(run_dir, cfg.tasks):
        return done(FINISHED)
    if run_dir.is_dir() and not is_locked(run_dir):
        (run_dir / ERROR_LOG).unlink(missing_ok=True)  # an earlier attempt's
    try:
        if can_resume(run_dir):
            result["resumed"] = True
            resume_run(run_dir, [], stop_file.exists, backend=job["backend"],
                       threads=job["threads"])
        else:
            start_run(cfg, run_dir, [], stop_file.exists, threads=job["threads"])
    except (Interrupted, KeyboardInterrupt):
        return done(INTERRUPTED)
    except Diverged as exc:
        line = f"run failed: {exc}"
        write_error(run_dir, line + "\n")
        return done(FAILED, line)
    except Exception as exc:  # the trial's failure is recorded; the sweep goes on
        line = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        text = traceback.format_exc()
        if text.strip().splitlines()[-1] != line.rstrip():  # error_line reads the last line
            text += line.rstrip() + "\n"
        write_error(run_dir, text)
        return done(FAILED, line.rstrip())
    return done(FINISHED)

