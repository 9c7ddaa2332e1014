"""The run directory's file names, and the lock that makes a run directory one process's.

Standard library only: the TUI imports these names without loading numpy or a framework.
Contract: docs/design.md, "The run directory".
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

CONFIG = "config.json"
EVENTS = "events.jsonl"
METRICS = "metrics.json"
CHECKPOINT_DIR = "checkpoint"
RESUME_CHECKPOINT = "resume.safetensors"  # in CHECKPOINT_DIR: the loop's latest state
TASK_CHECKPOINTS = "task-*.safetensors"  # in CHECKPOINT_DIR, a glob of task_checkpoint's names
OUTPUT_LOG = "output.log"  # a launcher's (the TUI's) log of the `mind` child process
ERROR_LOG = "error.log"
STOP_FILE = "STOP"  # anyone may create it: the run stops after the current batch
LOCK_FILE = "run.lock"  # held (flock) by the process training in the directory
# Temp names of an atomic write (events.write_json_atomic, checkpoint.save): .<name>.<pid>.tmp
TEMP_FILE = re.compile(r"\..+\.\d+\.tmp")

_TASK_CHECKPOINT = re.compile(r"task-(0|[1-9][0-9]*)\.safetensors")


def task_checkpoint(task: int) -> str:
    """The name of task `task`'s checkpoint in CHECKPOINT_DIR, written once it is evaluated."""
    return f"task-{task}.safetensors"


def task_checkpoint_number(name: str) -> int | None:
    """The task of a checkpoint file name; None for a name task_checkpoint never gives."""
    match = _TASK_CHECKPOINT.fullmatch(name)
    return int(match.group(1)) if match else None


class RunDirError(Exception):
    """A run directory is missing, incomplete, in use or in the wrong state for the command."""


def in_use_message(run_dir: Path) -> str:
    return (f"{run_dir} is in use by another mind process (it holds {LOCK_FILE}): wait for it "
            f"to end, or stop it (Ctrl-C, or create {Path(run_dir) / STOP_FILE})")


def _try_lock(handle: IO[bytes]) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


class RunDirLock:
    """An exclusive OS lock on <run>/run.lock, held for as long as a process trains in the
    directory (`mind run`, `mind resume`). The OS drops it when the process ends, however it
    ends, so a crashed run never leaves a stale lock. The file itself stays: deleting it would
    let two processes lock two different files."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._handle: IO[bytes] | None = None

    def acquire(self) -> RunDirLock:
        try:
            handle = open(self.path, "a+b")  # held until release
        except OSError as exc:
            raise RunDirError(f"cannot write in {self.run_dir}: {exc.strerror or exc}") from None
        if not _try_lock(handle):
            handle.close()
            raise RunDirError(in_use_message(self.run_dir))
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the last descriptor releases the lock
            self._handle = None

    def __enter__(self) -> RunDirLock:
        return self if self._handle is not None else self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


def is_locked(run_dir: Path) -> bool:
    """Whether a process holds the run directory's lock now (creates nothing)."""
    try:
        handle = open(Path(run_dir) / LOCK_FILE, "rb")
    except OSError:
        return False
    with handle:
        return not _try_lock(handle)  # closing drops the probe lock at once


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temp files of atomic writes a killed process left behind (in the run
    directory and checkpoint/). Call only while holding the lock: then none is being written."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / CHECKPOINT_DIR):
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for path in entries:
            if TEMP_FILE.fullmatch(path.name) and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def remove_stop_file(run_dir: Path) -> None:
    """A STOP file left by an earlier stop would end the next run at once. Call only while
    holding the lock, so a STOP meant for a live run is never taken away from it."""
    (Path(run_dir) / STOP_FILE).unlink(missing_ok=True)


def check_out_writable(out: Path, flag: str = "--out") -> None:
    """A RunDirError (one line) for an --out the run could not write: a file, a path under a
    file, a read-only or unwritable file system, a working directory that is gone. Creates
    nothing: the probe file lives in the nearest existing folder and vanishes at once. flag:
    the option that named out, for the message (every folder a command writes in)."""
    import tempfile

    try:
        path = Path(out).absolute()
    except OSError as exc:  # os.getcwd() fails once the working directory is deleted
        raise RunDirError(f"{flag} {out}: the working directory is gone "
                          f"({exc.strerror or exc})") from None
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{flag} {out} is a file, not a directory")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RunDirError(f"{flag} {out} cannot be created: {existing} is a file")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise RunDirError(f"{flag} {out} is not writable: cannot create files in {existing} "
                          f"({exc.strerror or exc})") from None


def safe_dir_name(name: str) -> str:
    """name with every run of characters a directory name should not hold made one '-'."""
    return re.sub(r"[^\w.-]+", "-", name).strip("-.") or "run"


def run_dir_name(name: str | None, backend: str, now: float | None = None) -> str:
    """A run's directory name when none is given, one rule for `mind run`, the Python API and
    the TUI: <name>-<backend>-<YYYYmmdd-HHMMSS> (local time), e.g. demo-torch-20261127-101500;
    a module:Class backend is named by its class."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return safe_dir_name(f"{name or 'run'}-{backend.split(':')[-1]}-{stamp}")


def unused_run_dir(root: Path, name: str) -> Path:
    """root/name, or root/name-2, -3... when it is taken. Creates nothing: two runs that pick
    the same one are told apart by the run's lock."""
    path, n = Path(root) / name, 1
    while path.exists():
        n += 1
        path = Path(root) / f"{name}-{n}"
    return path
