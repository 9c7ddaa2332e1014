"""Which exceptions mean "bad input": the CLI prints their one-line message and exits 2, the
Python API raises them as MindError. The one list of them, above every module that raises one
(so those modules may import mind_core/errors.py, below them), and imported lazily: the CLI's
own startup must not pay for every module."""

from __future__ import annotations

from mind_core.errors import MindError


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
