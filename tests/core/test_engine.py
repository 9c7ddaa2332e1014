"""The MIND loop with the numpy fake backend: files, events, resume, variants."""

import json

import numpy as np
import pytest

from mind_core import checkpoint, masks
from mind_core.config import ConfigError, resolve_config
from mind_core.engine import Engine, Interrupted
from mind_core.events import read_events
from mind_core.routing import ROUTINGS
from mind_core.runner import evaluate_run, resume_run, start_run
from tests.fakes import FakeBackend, StopAfter, tiny_dataset


def load_tiny(*_):
    return tiny_dataset()

SETTINGS = ["tasks=3", "teacher.epochs=2", "distill.epochs=2", "teacher.batch_size=16",
            "distill.batch_size=16", "backend=tests.fakes:FakeBackend"]


def make_engine(run_dir, extra=(), should_stop=None, dataset=None):
    cfg = resolve_config("smoke", [*SETTINGS, *extra])
    return Engine(cfg, FakeBackend(), dataset or tiny_dataset(), run_dir,
                  should_stop=should_stop)


def test_three_task_run_writes_documented_files(tmp_path):
    metrics = make_engine(tmp_path).run()
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert on_disk["tasks_done"] == 3
    assert set(on_disk["final"]) == {"tag", "taw", "routing", "tag_entropy", "rules"}
    assert set(on_disk["final"]["rules"]) == set(ROUTINGS)  # statistics were fitted
    assert on_disk["routing_rule"] == "max_prob"
    assert [len(row) for row in on_disk["acc_matrix_tag"]] == [1, 2, 3]
    assert [len(row) for row in on_disk["acc_matrix_taw"]] == [1, 2, 3]
    assert len(on_disk["tag"]) == len(on_disk["taw"]) == len(on_disk["routing"]) == 3
    assert len(on_disk["forgetting"]["tag"]["per_task"]) == 2
    assert on_disk["final"]["tag"] <= on_disk["final"]["taw"]
    events = list(read_events(tmp_path / "events.jsonl"))
    types = [e["type"] for e in events]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert types.count("task_started") == 3 and types.count("evaluated") == 3
    assert types.count("allocated") == 3 and types.count("checkpoint_saved") == 3
    assert types.count("epoch_ended") == 3 * (2 + 2)
    assert all(isinstance(e["time"], float) for e in events)
    allocated = [e for e in events if e["type"] == "allocated"][-1]
    fc1 = allocated["layers"]["fc1"]
    assert sum(fc1["owned"]) + fc1["free"] == fc1["total"]
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == [
        "resume.safetensors", "task-0.safetensors", "task-1.safetensors", "task-2.safetensors"]


def test_checkpoint_holds_disjoint_ownership_and_zero_free_weights(tmp_path):
    make_engine(tmp_path).run()
    ckpt = checkpoint.load(tmp_path / "checkpoint" / "task-2.safetensors")
    assert len(ckpt.bn_snapshots) == 3 and ckpt.tasks == 3 and ckpt.classes_per_task == 2
    for name, owner in ckpt.owner.items():
        assert np.all(ckpt.weights[name][owner == -1] == 0)
        assert set(np.unique(owner)) <= {-1, 0, 1, 2}
    fc = ckpt.owner["fc"]  # the classifier: each task owns exactly its two rows
    for t in range(3):
        rows = np.flatnonzero((fc == t).all(axis=1))
        assert len(rows) == 2 and np.count_nonzero(fc == t) == 2 * fc.shape[1]


@pytest.mark.parametrize("polls", [2, 9, 20, 33, 45])
def test_interrupted_run_resumes_to_identical_metrics(tmp_path, polls):
    cfg = resolve_config("smoke", SETTINGS)
    reference = start_run(cfg, tmp_path / "straight", load=load_tiny)
    run_dir = tmp_path / "interrupted"
    with pytest.raises(Interrupted):
        start_run(cfg, run_dir, should_stop=StopAfter(polls), load=load_tiny)
    events = list(read_events(run_dir / "events.jsonl"))
    assert events[-1]["type"] == "run_failed" and events[-1]["reason"] == "interrupted"
    resumed = resume_run(run_dir, load=load_tiny)
    assert resumed == reference
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads(
        (tmp_path / "straight" / "metrics.json").read_text())


def test_stop_file_interrupts_between_steps(tmp_path):
    engine = make_engine(tmp_path)
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "STOP").touch()
    with pytest.raises(Interrupted):
        engine.run()


@pytest.mark.parametrize("variant", ["self_distill", "packnet"])
def test_variants_run_through_the_same_loop(tmp_path, variant):
    metrics = make_engine(tmp_path, [f"variant={variant}"]).run()
    assert metrics["tasks_done"] == 3
    ckpt = checkpoint.load(tmp_path / "checkpoint" / "task-2.safetensors")
    if variant == "packnet":  # BN frozen after task 0: every later snapshot equals the first
        for later in ckpt.bn_snapshots[1:]:
            for layer, fields in later.items():
                for key in fields:
                    assert np.array_equal(fields[key], ckpt.bn_snapshots[0][layer][key])


def test_earlier_tasks_weights_survive_later_tasks(tmp_path):
    make_engine(tmp_path).run()
    first = checkpoint.load(tmp_path / "checkpoint" / "task-0.safetensors")
    last = checkpoint.load(tmp_path / "checkpoint" / "task-2.safetensors")
    for name, owner in first.owner.items():
        mine = owner == 0
        assert np.array_equal(first.weights[name][mine], last.weights[name][mine])
    for layer, fields in first.bn_snapshots[0].items():
        for key, value in fields.items():
            assert np.array_equal(value, last.bn_snapshots[0][layer][key])


def test_eval_from_checkpoints_reproduces_the_runs_metrics(tmp_path):
    reference = start_run(resolve_config("smoke", SETTINGS), tmp_path / "run", load=load_tiny)
    again = evaluate_run(tmp_path / "run", load=load_tiny)
    assert again == reference


def test_tasks_that_do_not_split_the_classes_are_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        make_engine(tmp_path, ["tasks=4"])
    assert err.value.key == "tasks"
    assert not (tmp_path / "events.jsonl").exists()


def test_same_seed_same_run_different_seed_different_allocation(tmp_path):
    a = make_engine(tmp_path / "a").run()
    b = make_engine(tmp_path / "b").run()
    assert a == b
    make_engine(tmp_path / "c", ["seed=1"]).run()
    owner_a = checkpoint.load(tmp_path / "a" / "checkpoint" / "task-0.safetensors").owner
    owner_c = checkpoint.load(tmp_path / "c" / "checkpoint" / "task-0.safetensors").owner
    assert not np.array_equal(owner_a["fc1"], owner_c["fc1"])
    assert masks.ownership_counts(owner_a, 3) == masks.ownership_counts(owner_c, 3)
