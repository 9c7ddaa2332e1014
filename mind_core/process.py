"""What a `mind` process knows of itself: the stop flag its Ctrl-C and SIGTERM set, and the
CPUs it may run on. Below the command line (cli.py) and the sweeps (sweep/), which both use
them, so neither imports the other for them."""

from __future__ import annotations

import os
import signal
import sys

RUN_STOPPING = ("\nStopping after the current batch and saving a checkpoint (Ctrl-C again to "
                "abort at once)...")


class StopFlag:
    """First Ctrl-C / SIGTERM asks the run (or a sweep's runs) to stop after the current batch
    and checkpoint, saying so with `message` (None: silently); a second Ctrl-C aborts at
    once."""

    def __init__(self, message: str | None = RUN_STOPPING):
        self.requested = False
        self.message = message

    def __call__(self) -> bool:
        return self.requested

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        if self.message:
            print(self.message, file=sys.stderr, flush=True)


def usable_cpus() -> int:
    """The number of CPUs this process may run on (its affinity), the default of --threads."""
    return len(usable_cpu_ids())


def usable_cpu_ids() -> set[int]:
    """The CPUs this process may run on: its affinity, or every CPU where that is unknown."""
    try:
        return os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))
