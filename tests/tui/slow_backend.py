"""The fake backend slowed down, so a run launched from the TUI can be stopped part-way."""

from __future__ import annotations

import time

from tests.fakes import FakeBackend

SECONDS_PER_BATCH = 0.08


class SlowBackend(FakeBackend):
    def train_epoch(self, trainer, x, y, epoch, seed, progress=None, should_stop=None):
        def slow_progress(batch, batches, loss):
            time.sleep(SECONDS_PER_BATCH)
            if progress is not None:
                progress(batch, batches, loss)

        return super().train_epoch(trainer, x, y, epoch, seed, progress=slow_progress,
                                   should_stop=should_stop)


class StallingBackend(SlowBackend):
    """Slow enough (about 20 s for the smoke run) that a run is still going after a few
    dialogs, even on a loaded machine; the tests that use it stop it long before its end."""

    def train_epoch(self, trainer, x, y, epoch, seed, progress=None, should_stop=None):
        def stall(batch, batches, loss):
            time.sleep(STALL_SECONDS_PER_BATCH - SECONDS_PER_BATCH)
            if progress is not None:
                progress(batch, batches, loss)

        return super().train_epoch(trainer, x, y, epoch, seed, progress=stall,
                                   should_stop=should_stop)


STALL_SECONDS_PER_BATCH = 0.5
