"""Fake backends for the sweep's tests, imported by Ray's worker processes by name
(`--backend tests.sweep.sweep_fakes:...`): what each does must not depend on the test process's
state, only on files (MARKERS, set before Ray starts)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import attrs

from tests.fakes import FakeBackend

MARKERS = "MIND_SWEEP_TEST_MARKERS"  # a folder shared by the test and Ray's workers


class ThreadsBackend(FakeBackend):
    """Records the threads it was given in config.json's versions."""

    def versions(self):
        return {**super().versions(), "threads": str(self.threads)}


class StopOnceBackend(ThreadsBackend):
    """The first trial of a sweep to reach task 1's distillation stops there (as a STOP file
    would stop it): one trial in the sweep is left interrupted with a resume checkpoint."""

    def train_epoch(self, trainer, x, y, epoch, seed, progress=None, should_stop=None):
        phase = trainer.phase
        if phase.kind == "distill" and phase.class_range[0] > 0 and _first(MARKERS, "stopped"):
            return attrs.evolve(super().train_epoch(trainer, x, y, epoch, seed, progress,
                                                    lambda: True), stopped=True)
        return super().train_epoch(trainer, x, y, epoch, seed, progress, should_stop)


class FailOnBetaBackend(ThreadsBackend):
    """Fails in the distillation of every trial with distillation.beta == 5."""

    def start_phase(self, model, phase, trainable, teacher=None):
        if phase.kind == "distill" and phase.beta == 5:
            raise RuntimeError("simulated failure at beta 5")
        return super().start_phase(model, phase, trainable, teacher)


class SlowBackend(ThreadsBackend):
    """Sleeps 0.1 s a batch (about 4 s a smoke trial): long enough to be stopped mid-run."""

    def train_epoch(self, trainer, x, y, epoch, seed, progress=None, should_stop=None):
        def slow(batch, batches, loss):
            time.sleep(0.1)
            if progress:
                progress(batch, batches, loss)
        return super().train_epoch(trainer, x, y, epoch, seed, slow, should_stop)


def _first(env: str, name: str) -> bool:
    """True for the one caller that creates the marker file `name` (O_EXCL)."""
    folder = os.environ.get(env)
    if not folder:
        return False
    try:
        os.close(os.open(Path(folder) / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
