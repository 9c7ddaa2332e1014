"""TensorBoard scalars of a run, fed from its event stream (so every backend gets them).

`TensorBoardLogger(log_dir)` is an observer like console.ConsoleReporter: give it to the
engine (start_run, resume_run, `mind run --tensorboard DIR`) and close() it after the run. It
writes with tensorboardX, the `tensorboard` extra.

Scalars (task numbers in tags count from 1, as everything a person reads does; docs/design.md,
"Numbering"):

    task<t>/<phase>/loss, ce, accuracy, lr      phase teacher or distill, after every epoch
    task<t>/distill/distill                      the distillation term (distill phase only)
    eval/tag, eval/taw, eval/routing, eval/tag_entropy          after every task
    eval_per_task/task<j>/tag, .../taw, .../routing             task j's accuracy after every task

The step is a count of what is done: for task<t>/<phase>/* the epochs of that phase done
(1 after its first epoch), for eval* the tasks learned (1 after the first task). Both come
from the events themselves, so a resumed run writing into the same directory continues the
same curves. The wall time of every point is its event's time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mind_core.extras import require
from mind_core.rundir import check_out_writable

EPOCH_FIELDS = ("loss", "ce", "accuracy", "lr")
EVAL_FIELDS = ("tag", "taw", "routing", "tag_entropy")
PER_TASK_FIELDS = {"tag": "per_task_tag", "taw": "per_task_taw", "routing": "per_task_routing"}


class TensorBoardLogger:
    """An event observer writing TensorBoard scalars into log_dir. tensorboardX is imported
    here (MissingExtra without it), but the log directory and its event file are created at
    the first scalar: a run that fails its checks before training writes nothing."""

    def __init__(self, log_dir: Path | str, flush_secs: int = 30):
        # Checked now, not at the first scalar (after training started). Anywhere writable
        # will do, a run directory included: TensorBoard only adds files of its own names.
        check_out_writable(Path(log_dir), "--tensorboard")
        self._tensorboardx = require("tensorboardX", "tensorboard", "TensorBoard logging")
        self.log_dir = Path(log_dir)
        self.flush_secs = flush_secs
        self._writer: Any = None

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "epoch_ended":
            self._epoch_ended(event)
        elif kind == "evaluated":
            self._evaluated(event)
        else:
            return
        self._writer_flush()  # an epoch takes seconds to hours: show it in TensorBoard now

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> TensorBoardLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ events
    def _epoch_ended(self, e: dict[str, Any]) -> None:
        prefix = f"task{e['task'] + 1}/{e['phase']}"
        step = e["epoch"] + 1
        for field in EPOCH_FIELDS:
            self._scalar(f"{prefix}/{field}", e.get(field), step, e.get("time"))
        if e["phase"] == "distill":  # the teacher phase has no distillation term
            self._scalar(f"{prefix}/distill", e.get("distill"), step, e.get("time"))

    def _evaluated(self, e: dict[str, Any]) -> None:
        step = e["task"] + 1
        for field in EVAL_FIELDS:
            self._scalar(f"eval/{field}", e.get(field), step, e.get("time"))
        for name, field in PER_TASK_FIELDS.items():
            for j, value in enumerate(e.get(field) or []):
                self._scalar(f"eval_per_task/task{j + 1}/{name}", value, step, e.get("time"))

    # ------------------------------------------------------------------ writing
    def _scalar(self, tag: str, value: Any, step: int, walltime: float | None) -> None:
        """One point; a missing number (None, NaN: a task without test samples) is left out
        rather than drawn as a gap-filling NaN."""
        if not isinstance(value, (int, float)) or isinstance(value, bool) \
                or not math.isfinite(value):
            return
        if self._writer is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._writer = self._tensorboardx.SummaryWriter(logdir=str(self.log_dir),
                                                           flush_secs=self.flush_secs)
        self._writer.add_scalar(tag, float(value), global_step=step, walltime=walltime)

    def _writer_flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()


@contextmanager
def tensorboard_observers(log_dir: Path | str | None) -> Iterator[list[TensorBoardLogger]]:
    """[a TensorBoardLogger] for log_dir, closed on exit; [] when log_dir is None."""
    if log_dir is None:
        yield []
        return
    with TensorBoardLogger(log_dir) as logger:
        yield [logger]
