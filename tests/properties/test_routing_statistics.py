"""Sub-network j is frozen after task j, so its routing statistics must be too: every later
task checkpoint carries exactly the statistics task j's checkpoint first wrote."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mind_core import checkpoint
from mind_core.config import resolve_config
from mind_core.engine import Engine
from mind_core.run_checkpoints import task_checkpoints
from tests.fakes import FakeBackend, tiny_dataset


@settings(max_examples=6)  # each example trains a whole (tiny) run
@given(seed=st.integers(0, 2**16), tasks=st.sampled_from([2, 3]),
       variant=st.sampled_from(["mind", "packnet"]), sharing=st.booleans())
def test_statistics_of_a_task_never_change_after_it(tmp_path_factory, seed, tasks, variant,
                                                    sharing):
    run_dir = tmp_path_factory.mktemp("run")
    cfg = resolve_config("smoke", [f"tasks={tasks}", f"seed={seed}", f"variant={variant}",
                                   f"allocation.weight_sharing={sharing}",
                                   "teacher.batch_size=16", "distill.batch_size=16",
                                   "backend=tests.fakes:FakeBackend"])
    Engine(cfg, FakeBackend(), tiny_dataset(classes=6), run_dir).run()
    saved = [checkpoint.load(p).stats for p in task_checkpoints(run_dir)]
    assert [len(s) for s in saved] == list(range(1, tasks + 1))
    for t, stats in enumerate(saved):
        for j in range(t + 1):
            first = saved[j][j].arrays()
            for name, array in stats[j].arrays().items():
                assert np.array_equal(array, first[name]), (t, j, name)
