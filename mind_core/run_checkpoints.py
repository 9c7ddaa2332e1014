"""A run directory's task checkpoints (task-0, task-1, ...): found in task order, checked to be
all there, loaded, and checked to belong to the run. Used by `mind eval`, predictions and the
refit of routing statistics."""

from __future__ import annotations

from pathlib import Path

from mind_core import checkpoint
from mind_core.checkpoint_match import check_run
from mind_core.config import RunConfig
from mind_core.rundir import (
    CHECKPOINT_DIR,
    RESUME_CHECKPOINT,
    TASK_CHECKPOINTS,
    RunDirError,
    task_checkpoint,
    task_checkpoint_number,
)
from mind_core.task_stats import TaskStats


def _task_number(path: Path) -> int | None:
    return task_checkpoint_number(path.name)


def task_checkpoints(run_dir: Path) -> list[Path]:
    found = sorted((p for p in (run_dir / CHECKPOINT_DIR).glob(TASK_CHECKPOINTS)
                    if _task_number(p) is not None), key=_task_number)
    return [p for i, p in enumerate(found) if p.name == task_checkpoint(i)]


def check_task_files(run_dir: Path, paths: list[Path]) -> None:
    """task-0..task-t all present: a gap, or fewer files than the tasks the resume checkpoint
    says are finished, is a CheckpointError naming the missing file."""
    folder = run_dir / CHECKPOINT_DIR
    numbers = [n for n in map(_task_number, folder.glob(TASK_CHECKPOINTS)) if n is not None]
    resume = folder / RESUME_CHECKPOINT
    state = checkpoint.read_state(resume) if resume.is_file() else None
    finished = state.get("task") if state else None
    finished = finished if isinstance(finished, int) and not isinstance(finished, bool) else 0
    last = max([*numbers, finished - 1])
    if last >= len(paths):
        why = (f"{task_checkpoint(last)} exists" if last in numbers
               else f"{RESUME_CHECKPOINT} says {finished} tasks are finished")
        raise checkpoint.CheckpointError(f"{folder / task_checkpoint(len(paths))} is "
                                         f"missing ({why})")


def finished_tasks(run_dir: Path, cfg: RunConfig, purpose: str, last_only: bool = False
                   ) -> tuple[list[Path], list[checkpoint.Checkpoint]]:
    """The task checkpoints of a run (all, or only the last one's, loaded), each checked to
    belong to the run and to hold its task's BN snapshots: a RunDirError when none is finished
    yet, a CheckpointError naming the file otherwise."""
    paths = task_checkpoints(run_dir)
    check_task_files(run_dir, paths)
    if not paths:
        raise RunDirError(f"{run_dir} has no finished task to {purpose} yet")
    first = len(paths) - 1 if last_only else 0
    checkpoints = [checkpoint.load(path) for path in paths[first:]]
    for t, (path, ckpt) in enumerate(zip(paths[first:], checkpoints, strict=True), first):
        check_run(ckpt, path, cfg.tasks)
        done = ckpt.state.get("tasks_done", t + 1)
        if len(ckpt.bn_snapshots) != t + 1 or done != t + 1:
            raise checkpoint.CheckpointError(
                f"{path}: holds {len(ckpt.bn_snapshots)} BN snapshots and state field "
                f"'tasks_done' {done}; task {t}'s checkpoint needs {t + 1}")
    return paths, checkpoints


def stats_before(ckpt: checkpoint.Checkpoint, path: Path | str) -> list[TaskStats]:
    """The routing statistics that the resume file at `path` leaves to the last task
    checkpoint beside it (it names that file's task and how many of its statistics are
    meant); [] where it holds all its own. A CheckpointError naming both files when that task
    file cannot give them."""
    ref = ckpt.state.get(checkpoint.STATS_IN_TASK_FILE)
    if not ref:
        return []
    task, count = ref
    source = Path(path).parent / task_checkpoint(task)
    try:
        held = checkpoint.load(source).stats
    except checkpoint.CheckpointError as exc:
        raise checkpoint.CheckpointError(
            f"{path}: the routing statistics of its first {count} tasks are kept in "
            f"{source.name}, which cannot be read ({exc})") from None
    if len(held) < count:
        raise checkpoint.CheckpointError(
            f"{path}: the routing statistics of its first {count} tasks are kept in "
            f"{source.name}, which holds {len(held)}")
    return held[:count]
