"""The whole run's ETA from its events (mind_core.eta), on a made-up run whose epochs take a
known, constant time: once every kind of phase has been timed, the estimate is the truth."""

from __future__ import annotations

import io

import pytest

from mind_core.console import ConsoleReporter
from mind_core.eta import RunEta

EPOCHS = {"teacher": 3, "distill": 2}
SECONDS = {"teacher": 1.0, "distill": 2.0}  # per epoch
BATCHES = 4


def run_events(tasks: int = 3, first_task: int = 0):
    """What the engine emits for a run (from first_task on, as a resume does), with the
    progress events' eta_s computed as the engine does (constant time per batch)."""
    now = 0.0
    yield {"type": "run_started", "time": now, "tasks": tasks, "resumed": first_task > 0,
           "name": "made-up", "backend": "fake", "dataset": "synthetic", "model": "mlp",
           "variant": "mind"}
    for t in range(first_task, tasks):
        yield {"type": "task_started", "time": now, "task": t, "tasks": tasks,
               "class_range": [2 * t, 2 * t + 2]}
        for phase in ("teacher", "allocate", "distill", "evaluate"):
            epochs = EPOCHS.get(phase, 0)
            yield {"type": "phase_started", "time": now, "task": t, "phase": phase,
                   "epochs": epochs}
            per_batch = SECONDS.get(phase, 0.0) / BATCHES
            for epoch in range(epochs):
                for batch in range(1, BATCHES + 1):
                    now += per_batch
                    left = (BATCHES - batch) + (epochs - epoch - 1) * BATCHES
                    yield {"type": "progress", "time": now, "task": t, "phase": phase,
                           "epoch": epoch, "epochs": epochs, "batch": batch,
                           "batches": BATCHES, "loss": 0.5, "eta_s": per_batch * left}
                yield {"type": "epoch_ended", "time": now, "task": t, "phase": phase,
                       "epoch": epoch, "epochs": epochs, "seconds": SECONDS[phase],
                       "loss": 0.5, "ce": 0.5, "distill": 0.0, "accuracy": 0.9,
                       "images_per_s": 100.0}
    yield {"type": "run_finished", "time": now, "seconds": now}


@pytest.mark.parametrize("first_task", [0, 1])
def test_the_run_eta_is_the_time_left_once_every_phase_has_been_timed(first_task):
    events = list(run_events(first_task=first_task))
    end = events[-1]["time"]
    eta, estimates = RunEta(), []
    for event in events:
        eta(event)
        if event["type"] == "progress":
            estimates.append((event, eta.remaining()))
    unknown = [e for e, left in estimates if left is None]
    # Unknown exactly while the first teacher trains: its distillation has not been timed.
    assert unknown and all(e["task"] == first_task and e["phase"] == "teacher" for e in unknown)
    for event, left in estimates:
        if left is not None:
            assert left == pytest.approx(end - event["time"]), event
    assert estimates[-1][1] == pytest.approx(0.0)


def test_a_phase_without_epochs_adds_nothing():
    eta = RunEta()
    for event in ({"type": "run_started", "tasks": 2},
                  {"type": "phase_started", "task": 0, "phase": "teacher", "epochs": 0},
                  {"type": "phase_started", "task": 0, "phase": "distill", "epochs": 2},
                  {"type": "progress", "task": 0, "phase": "distill", "epoch": 0, "epochs": 2,
                   "batch": 1, "batches": 2, "eta_s": 3.0}):
        eta(event)
    assert eta.remaining() == pytest.approx(3.0 + 2 * 2.0)  # task 1: only its distillation


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_live_line_shows_the_phase_and_the_run_eta():
    stream = Terminal()
    reporter = ConsoleReporter(stream=stream)
    lines = []
    for event in run_events(tasks=2):
        reporter(event)
        if event["type"] == "progress":
            lines.append(stream.getvalue().rsplit("\r\033[K", 1)[-1])
    assert lines[0].endswith("ETA phase 0:02, run ?")  # 11 teacher batches of 0.25 s left
    # task 0, distill, epoch 1 of 2 half done: 3 s of it, then task 1 (3 + 4 s)
    assert "distill  epoch 1/2  batch 2/4" in lines[13] and lines[13].endswith(
        "ETA phase 0:03, run 0:10")
