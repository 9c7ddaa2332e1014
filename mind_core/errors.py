"""Which exceptions mean "bad input": the CLI prints their one-line message and exits 2, the
Python API raises them as MindError. The one list of them (imported lazily: the CLI's own
startup must not pay for every module)."""

from __future__ import annotations

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


class MindError(Exception):
    """Bad input to the Python API (a config, data, network, run directory or checkpoint
    problem); the message is one line saying what and how to fix it. Nothing was written."""


def bad_input_errors() -> tuple[type[Exception], ...]:
    from mind_core.checkpoint import CheckpointError
    from mind_core.config import ConfigError
    from mind_core.data.base import DatasetError
    from mind_core.extras import MissingExtra
    from mind_core.network import NetworkError
    from mind_core.registry import BackendError
    from mind_core.routing import RoutingError
    from mind_core.rundir import RunDirError
    from mind_core.schedule import ScheduleError

    return (ConfigError, DatasetError, CheckpointError, BackendError, RunDirError,
            ScheduleError, NetworkError, RoutingError, MissingExtra, MindError)
