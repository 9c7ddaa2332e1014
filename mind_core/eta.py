"""The whole run's remaining time, estimated from its events alone (no clock of its own), so
the CLI's live line can say when the run ends, not only the phase.

Every task trains the same phases with the same epochs (engine: teacher, then distill), so
what is left is the current phase's own ETA (the progress event's eta_s) plus, for each phase
still to come, its epochs times the measured seconds per epoch of that kind of phase. A kind of
phase not yet timed (the distillation, while the first teacher trains) cannot be guessed from
another, so until then the estimate is None rather than a number that is wrong. Allocation and
evaluation are not counted: they take seconds where the epochs take minutes.
"""

from __future__ import annotations

from typing import Any

TRAINING_PHASES = ("teacher", "distill")  # each task's training phases, in the engine's order


class RunEta:
    """Feed it every event of a run (it is an observer); `remaining()` after a progress event."""

    def __init__(self) -> None:
        self.tasks = 0
        self.epochs: dict[str, int] = {}  # phase -> epochs a task trains it
        self.epoch_seconds: dict[str, list[float]] = {p: [] for p in TRAINING_PHASES}
        self.progress: dict[str, Any] | None = None  # the latest progress event

    def __call__(self, event: dict[str, Any]) -> None:
        kind, phase = event.get("type"), event.get("phase")
        if kind in ("run_started", "task_started") and event.get("tasks"):
            self.tasks = int(event["tasks"])
        if phase not in TRAINING_PHASES:
            return
        if kind in ("phase_started", "progress", "epoch_ended") and "epochs" in event:
            self.epochs[phase] = int(event["epochs"])
        if kind == "epoch_ended" and event.get("seconds") is not None:
            self.epoch_seconds[phase].append(float(event["seconds"]))
        if kind == "progress":
            self.progress = event

    def per_epoch(self, phase: str) -> float | None:
        """Mean seconds of the phase's finished epochs; before its first one ends, what the
        current phase's own ETA implies (eta_s covers the batches left in it)."""
        done = self.epoch_seconds[phase]
        if done:
            return sum(done) / len(done)
        e = self.progress
        if e is None or e.get("phase") != phase or e.get("eta_s") is None:
            return None
        batches = max(int(e["batches"]), 1)
        left = (batches - int(e["batch"])) + (int(e["epochs"]) - int(e["epoch"]) - 1) * batches
        return float(e["eta_s"]) / left * batches if left > 0 else None

    def remaining(self) -> float | None:
        """Seconds until the last task's last epoch ends; None while unknown."""
        e = self.progress
        if e is None or e.get("eta_s") is None or not self.tasks:
            return None
        here = TRAINING_PHASES.index(e["phase"])
        later_here = TRAINING_PHASES[here + 1:]
        tasks_after = max(self.tasks - int(e["task"]) - 1, 0)
        total = float(e["eta_s"])
        for phase in TRAINING_PHASES:
            count = tasks_after + (phase in later_here)
            if count == 0:
                continue
            epochs = self.epochs.get(phase)
            if epochs is None:
                return None
            if epochs == 0:
                continue
            seconds = self.per_epoch(phase)
            if seconds is None:
                return None
            total += count * epochs * seconds
        return total
