"""Where the MIND loop is, and the two ways a run ends before its last task.

`LoopState` is the loop's position (task, next step of PHASES, next epoch) and the results so
far: what a resume checkpoint's state records, so a resumed run continues where it stopped.
`Interrupted` (a stop was requested) and `Diverged` (a non-finite loss) are what the engine
raises; the CLI, the Python API and sweeps tell them apart from a failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from mind_core import checkpoint
from mind_core.evaluation import History


class Interrupted(Exception):
    """A stop was requested; the last epoch-boundary checkpoint is on disk. The message says
    how to continue: mind.fit raises it to the user as it is."""

    @classmethod
    def of_run(cls, run_dir: Path | None) -> Interrupted:
        if run_dir is None:
            return cls("stopped on request")
        return cls(f"stopped on request; the last checkpoint is saved and `mind resume "
                   f"{run_dir}` (or mind.resume) continues it")


class Diverged(Exception):
    """An epoch ended with a non-finite loss: the run stops rather than train on NaN. The last
    checkpoint on disk is the one before that epoch."""

    def __init__(self, task: int, phase: str, epoch: int, loss: float, lr: float):
        self.task, self.phase, self.epoch, self.loss, self.lr = task, phase, epoch, loss, lr
        super().__init__(
            f"the loss diverged ({loss}) in the {phase} phase of task {task}, epoch {epoch}: "
            f"lower {phase}.lr (now {lr:g}) and start the run again")


PHASES = checkpoint.LOOP_PHASES  # the loop's steps, in order: teacher, allocate, ...


@attrs.define(kw_only=True)
class LoopState:
    task: int = 0
    phase: str = "teacher"  # next step: one of PHASES
    next_epoch: int = 0
    history: History = attrs.Factory(History)
    teacher_taw: float | None = None  # the current task's teacher on its test data

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "phase": self.phase, "next_epoch": self.next_epoch,
                "history": self.history.to_json(), "teacher_taw": self.teacher_taw}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoopState:
        return cls(task=data["task"], phase=data["phase"], next_epoch=data["next_epoch"],
                   history=History.from_json(data["history"]),
                   teacher_taw=data.get("teacher_taw"))
