"""Which exceptions mean "bad input": the CLI prints their one-line message and exits 2, the
Python API raises them as MindError. The one list of them (imported lazily: the CLI's own
startup must not pay for every module)."""

from __future__ import annotations

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130
"""The `mind` command's exit codes: the run failed, bad input, interrupted (checkpointed)."""


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
