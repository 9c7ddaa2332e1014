"""The `mind` command's exit codes, MindError, how an error message quotes a value and
suggests a name, and where a failure's traceback is written. Low in the import order: the
modules whose errors mean "bad input" use it, and the list of those errors is kept above them
all, in mind_core/bad_input.py."""

from __future__ import annotations

from pathlib import Path

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130
"""The `mind` command's exit codes: the run failed, bad input, interrupted (checkpointed)."""


def did_you_mean(word: str, known, close: list[str] | None = None) -> str:
    """" (did you mean A or B?)" for a misspelt name: close if given, else the known names
    most like word (ties all shown, as neither is likelier), or "" when none is near."""
    import difflib

    if close is None:
        known = list(known)
        ratio = {k: difflib.SequenceMatcher(None, word, k).ratio() for k in known}
        best = max(ratio.values(), default=0.0)
        close = [k for k in known if ratio[k] == best] if best >= 0.6 else []
    return f" (did you mean {' or '.join(close[:3])}?)" if close else ""


def short_repr(value, limit: int = 60) -> str:
    """A value as an error line quotes it: its repr, cut to `limit` characters (a tampered
    file's value may be megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class MindError(Exception):
    """Bad input to the Python API (a config, data, network, run directory or checkpoint
    problem); the message is one line saying what and how to fix it. Nothing was written."""


OWNING_COMMANDS = ("run", "resume")
"""The `mind` commands that train in a run directory: only they write its error.log."""


def error_log_dir(command: str, run_dir: Path | None) -> Path | None:
    """The run directory a failing command may write error.log into: its own run's, unless
    another process holds it. A failing predict, eval or report would otherwise replace the
    traceback of the run's real failure."""
    from mind_core.rundir import is_locked

    if command not in OWNING_COMMANDS or run_dir is None or is_locked(run_dir):
        return None
    return Path(run_dir)


def write_error_log(text: str, run_dir: Path | None) -> str:
    """Write a failure's traceback where it can be written: the run's error.log, else
    ./mind-error.log, else a file in the temp folder; failing all three (an unwritable working
    directory and temp folder), print it on stderr. Returns where it went."""
    import os
    import sys
    import tempfile

    from mind_core.rundir import ERROR_LOG

    def candidates():
        if run_dir and Path(run_dir).is_dir():
            yield Path(run_dir) / ERROR_LOG
        yield Path("mind-error.log")
        yield Path(tempfile.gettempdir()) / f"mind-error-{os.getpid()}.log"

    try:
        for log in candidates():
            try:
                log.write_text(text, encoding="utf-8")
                return str(log)
            except OSError:
                continue
    except OSError:  # gettempdir() finds no usable folder
        pass
    sys.stderr.write(text)
    return "the lines above"
