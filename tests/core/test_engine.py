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


@pytest.mark.parametrize("init", masks.INITS)
@pytest.mark.parametrize("sharing", [True, False])
def test_earlier_tasks_weights_survive_later_tasks(tmp_path, init, sharing):
    make_engine(tmp_path, [f"allocation.init={init}",
                           f"allocation.weight_sharing={sharing}"]).run()
    saved = [checkpoint.load(tmp_path / "checkpoint" / f"task-{t}.safetensors")
             for t in range(3)]
    for t, ckpt in enumerate(saved):
        for later in saved[t + 1:]:
            for name, owner in ckpt.owner.items():
                mine = (owner >= 0) & (owner <= t)
                assert np.array_equal(ckpt.weights[name][mine], later.weights[name][mine])
    for layer, fields in saved[0].bn_snapshots[0].items():
        for key, value in fields.items():
            assert np.array_equal(value, saved[-1].bn_snapshots[0][layer][key])


@pytest.mark.parametrize("init, starts_at_zero", [("zero", True), ("teacher", False),
                                                  ("scaled_normal", False)])
def test_newly_owned_weights_start_from_the_chosen_init(tmp_path, init, starts_at_zero):
    """The values a task's slice has when its distillation starts (resume checkpoint)."""
    engine = make_engine(tmp_path, [f"allocation.init={init}"],
                         should_stop=StopAfter(10**9))
    allocated = {}
    original = engine._allocate

    def spy(t):
        original(t)
        allocated[t] = (engine.backend.get_weights(engine.model), engine.owner,
                        engine.backend.get_weights(engine.teacher))
    engine._allocate = spy
    engine.run()
    weights, owner, teacher = allocated[1]
    for name, w in weights.items():
        mine = owner[name] == 1
        assert np.all(w[mine] == 0) == starts_at_zero, name
        if init == "teacher":
            assert np.array_equal(w[mine], teacher[name][mine])
        if init == "scaled_normal":
            scale = np.abs(w[mine]).mean() / np.abs(allocated[0][0][name][owner[name] == 0]).mean()
            assert 0.02 < scale < 0.5  # small, not zero


def test_dead_rows_counts_channels_a_subnet_sees_as_all_zero():
    weights = {"conv": np.arange(24, dtype=np.float32).reshape(3, 2, 2, 2) + 1}
    gates = {"conv": np.ones((3, 2, 2, 2), bool)}
    assert masks.dead_rows(weights, gates) == {"conv": 0}
    gates["conv"][1] = False  # a row the sub-network has no weight in: not dead, not its own
    weights["conv"][2] = 0  # weights it uses, all zero: dead
    assert masks.dead_rows(weights, gates) == {"conv": 1}


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


def test_teacher_accuracy_is_recorded_and_a_student_far_below_it_is_reported(tmp_path):
    # A student that cannot learn (lr ~ 0) under a teacher that does.
    run_dir = tmp_path / "run"
    metrics = start_run(resolve_config("smoke", [*SETTINGS, "distill.lr=1e-9",
                                                 "teacher.epochs=4"]), run_dir, load=load_tiny)
    teachers, students = metrics["teacher_taw"], metrics["student_taw"]
    assert len(teachers) == len(students) == 3 and all(0 <= a <= 1 for a in teachers)
    assert students == [metrics["acc_matrix_taw"][t][t] for t in range(3)]
    behind = metrics["students_behind"]
    assert behind and all(b["teacher"] - b["student"] > 0.10 for b in behind)
    assert [b["task"] for b in behind] == [t for t in range(3)
                                           if students[t] < teachers[t] - 0.10]
    warned = [e for e in read_events(run_dir / "events.jsonl") if e["type"] == "student_behind"]
    assert [e["task"] for e in warned] == [b["task"] for b in behind]
    # Re-evaluation from the checkpoints keeps the teachers' accuracies.
    assert evaluate_run(run_dir, load=load_tiny)["teacher_taw"] == teachers


def test_a_student_that_keeps_up_with_its_teacher_is_not_reported(tmp_path):
    metrics = make_engine(tmp_path, ["teacher.epochs=1", "distill.epochs=6"]).run()
    assert all(s >= t - 0.10 for s, t in zip(metrics["student_taw"], metrics["teacher_taw"],
                                              strict=True))
    assert metrics["students_behind"] == []
