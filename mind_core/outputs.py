"""Paths a user names for a command to write: the one rule for all of them (`mind predict
--out FILE`, `mind report --out DIR`, `mind sweep --out DIR`, `--tensorboard DIR`).

A run or sweep directory belongs to the process that writes it: its checkpoints, config.json,
events and lock are what every other command trusts, so no user-named output may land inside
one (a command's own place in one excepted: `mind report`'s RUN/report, a sweep's own
directory). Symbolic links are followed and the checks apply to the file actually written,
so a link cannot smuggle a write into a run directory; the link itself is left as it is.
docs/design.md, "What a run directory may do", states the rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mind_core.rundir import CONFIG, EVENTS, RunDirError, check_out_writable
from mind_core.sweep.grid import SWEEP_JSON

OWNED_MARKERS = (CONFIG, EVENTS, SWEEP_JSON)
"""A folder holding one of these is a run (or sweep) directory: only its own process writes
there."""


def owning_dir(path: Path) -> Path | None:
    """The run or sweep directory path is (or lies in), or None."""
    for folder in (path, *path.parents):
        if any((folder / marker).exists() for marker in OWNED_MARKERS):
            return folder
    return None


def _resolved(path: Path, flag: str) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise RunDirError(f"{flag} {path} cannot be used ({exc})") from None


def _not_owned(real: Path, path: Path, flag: str, own: Path | None = None,
               reuse: bool = False) -> None:
    """reuse: path itself may be a run or sweep directory (the command checks whose), but no
    folder above it may."""
    owner = owning_dir(real.parent if reuse else real)
    if owner is not None and (own is None or real != _resolved(own, flag)):
        raise RunDirError(f"{flag} {path} is inside {owner}, a run or sweep directory whose "
                          "files only its own run may write: choose a path outside it")


def output_file(path: Path, flag: str, inputs: Iterable[Path] = ()) -> Path:
    """The file to write for a user-named output file, checked before any work is done: a
    regular file or a new name (never a device, FIFO or folder), in an existing writable
    folder, outside every run and sweep directory, and neither one of the inputs nor inside
    an input folder. Returns the path with its symlinks resolved: write there."""
    real = _resolved(path, flag)
    if real.exists() and not real.is_file():
        raise RunDirError(f"{flag} {path} is not a regular file: give a file name to write")
    for given in inputs:
        source = _resolved(given, flag)
        if real == source or source in real.parents:
            raise RunDirError(f"{flag} {path} would overwrite the input {given}: choose "
                              "another file")
    _not_owned(real, Path(path), flag)
    if not real.parent.is_dir():
        raise RunDirError(f"{flag} {path}: the folder {real.parent} does not exist")
    check_out_writable(real.parent, flag)
    return real


def output_dir(path: Path, flag: str, own: Path | None = None, reuse: bool = False) -> Path:
    """A folder for a command's files, checked before any work is done: not a file,
    creatable, writable, and outside every run and sweep directory but for `own` (the
    command's own place in one, e.g. RUN/report) or, with reuse, the folder itself (a sweep
    continued in its own directory). Returns it with its symlinks resolved."""
    check_out_writable(Path(path), flag)  # first: its messages say what is wrong (a file...)
    real = _resolved(path, flag)
    _not_owned(real, Path(path), flag, own, reuse)
    return real
