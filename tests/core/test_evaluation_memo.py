"""Evaluation remembers the test-set outputs of finished sub-networks (evaluation.predict_blocks):
the same metrics as computing every block again, fewer forward passes, and no memo where a
sub-network's answers can still change (BN shared by all)."""

from __future__ import annotations

import json

from mind_core.config import resolve_config
from mind_core.engine import Engine
from mind_core.plan import Plan
from tests.fakes import FakeBackend, tiny_dataset

SETTINGS = ["tasks=3", "teacher.epochs=1", "distill.epochs=1", "teacher.batch_size=16",
            "distill.batch_size=16", "backend=tests.fakes:FakeBackend"]


class CountingBackend(FakeBackend):
    """Counts the images each predict call sends through each sub-network."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.images = 0

    def predict(self, model, x, subnets, *args, **kwargs):
        self.images += len(x) * len(subnets)
        return super().predict(model, x, subnets, *args, **kwargs)


def run(run_dir, extra=()) -> tuple[dict, Engine]:
    cfg = resolve_config("smoke", [*SETTINGS, *extra])
    engine = Engine(cfg, CountingBackend(), tiny_dataset(), run_dir)
    return json.loads(json.dumps(engine.run())), engine


def test_remembered_blocks_give_the_same_metrics_with_fewer_forward_passes(tmp_path,
                                                                        monkeypatch):
    remembered, engine = run(tmp_path / "memo")
    assert sorted(engine.eval_memo) == [(j, i) for j in range(3) for i in range(3)]
    monkeypatch.setattr(Plan, "subnets_final_once_learned", property(lambda self: False))
    computed, again = run(tmp_path / "all")
    assert again.eval_memo == {}
    remembered.pop("threads"), computed.pop("threads")
    assert remembered == computed
    # Test images of tasks 0..t through t + 1 sub-networks after each task t: with the memo
    # only sub-network t on every task and every earlier one on task t are computed again.
    sizes = [len(task.x_test) for task in engine.task_data]
    saved = sum(sizes[i] for t in range(3) for j in range(t) for i in range(t))
    assert again.backend.images - engine.backend.images == saved > 0


def test_no_memo_while_sub_networks_share_the_newest_bn(tmp_path):
    _, engine = run(tmp_path, ["bn=shared"])
    assert engine.eval_memo == {}
