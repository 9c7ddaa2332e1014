"""The MIND loop with the numpy fake backend: files, events, resume, variants."""

import json

import numpy as np
import pytest

from mind_core import checkpoint, masks
from mind_core.config import ConfigError, resolve_config
from mind_core.engine import Interrupted
from mind_core.events import read_events
from mind_core.routing import ROUTINGS
from mind_core.runner import evaluate_run, resume_run, start_run
from tests.core.engine_helpers import FAKE, SETTINGS, load_tiny, make_engine
from tests.fakes import StopAfter


def test_three_task_run_writes_documented_files(tmp_path):
    metrics = make_engine(tmp_path).run()
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert on_disk["tasks_done"] == 3
    assert set(on_disk["final"]) == {"tag", "taw", "routing", "tag_entropy", "rules"}
    assert set(on_disk["final"]["rules"]) == set(ROUTINGS)  # statistics were fitted
    assert on_disk["routing_rule"] == "pairwise"  # the default outside the paper presets
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
    resumed = resume_run(run_dir, load=load_tiny, backend=FAKE)
    assert resumed == reference
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads(
        (tmp_path / "straight" / "metrics.json").read_text())


def test_a_run_routes_with_the_statistics_its_checkpoints_store(tmp_path):
    """What makes a resumed run and `mind eval` route exactly as the uninterrupted run did:
    the statistics held in memory are, bit for bit, what the checkpoints give back."""
    engine = make_engine(tmp_path)
    engine.run()
    stored = checkpoint.load(tmp_path / "checkpoint" / "task-2.safetensors").stats
    assert len(stored) == len(engine.stats) == 3
    for t, (held, saved) in enumerate(zip(engine.stats, stored, strict=True)):
        arrays = saved.arrays()
        assert held.arrays().keys() == arrays.keys()
        for name, value in held.arrays().items():
            assert np.array_equal(value, arrays[name]), (t, name)


def test_the_resume_file_leaves_fitted_statistics_to_the_last_task_file(tmp_path):
    """Statistics never change once fitted: the resume file, rewritten every epoch, names the
    task file that holds them instead of copying them, and a restore takes them from there
    (or says which file it could not read)."""
    engine = make_engine(tmp_path)
    engine.run()
    folder = tmp_path / "checkpoint"
    resume = checkpoint.load(folder / "resume.safetensors")
    assert resume.stats == [] and resume.state[checkpoint.STATS_IN_TASK_FILE] == [2, 3]
    restored = make_engine(tmp_path / "elsewhere")  # the files beside the resume file count
    restored.restore(resume, folder / "resume.safetensors")
    assert len(restored.stats) == 3
    for held, back in zip(engine.stats, restored.stats, strict=True):
        assert all(np.array_equal(v, back.arrays()[k]) for k, v in held.arrays().items())
    (folder / "task-2.safetensors").rename(folder / "moved")
    with pytest.raises(checkpoint.CheckpointError,
                       match=r"resume.safetensors: .* first 3 tasks are kept in task-2"):
        make_engine(tmp_path / "again").restore(resume, folder / "resume.safetensors")


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


@pytest.mark.parametrize("redraw", [False, True])
def test_a_self_teacher_starts_its_free_weights_at_zero_or_redrawn(tmp_path, redraw):
    """self_distill's teacher trains the network's free weights: at 0 after task 0 (where
    allocation left them, the paper), or re-drawn as PackNet does (allocation.redraw_free).
    Either way the entries earlier tasks own stay bit-identical."""
    engine = make_engine(tmp_path, ["variant=self_distill",
                                    f"allocation.redraw_free={str(redraw).lower()}"])
    starts = {}
    original = engine._new_teacher

    def spy(t):
        teacher = original(t)
        starts[t] = (engine.backend.get_weights(teacher), masks.free(engine.owner))
        return teacher
    engine._new_teacher = spy
    engine.run()
    for t in (1, 2):
        weights, free = starts[t]
        values = np.concatenate([weights[name][free[name]] for name in free])
        assert values.size and (np.any(values != 0) if redraw else np.all(values == 0))
    saved = [checkpoint.load(tmp_path / "checkpoint" / f"task-{t}.safetensors")
             for t in range(3)]
    for name, owner in saved[0].owner.items():
        mine = owner == 0
        assert np.array_equal(saved[0].weights[name][mine], saved[-1].weights[name][mine])


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
    again = evaluate_run(tmp_path / "run", FAKE, load=load_tiny)
    reference.pop("threads"), reference.pop("precision")  # the training process's
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
    assert evaluate_run(run_dir, FAKE, load=load_tiny)["teacher_taw"] == teachers


def test_a_student_that_keeps_up_with_its_teacher_is_not_reported(tmp_path):
    metrics = make_engine(tmp_path, ["teacher.epochs=1", "distill.epochs=6"]).run()
    assert all(s >= t - 0.10 for s, t in zip(metrics["student_taw"], metrics["teacher_taw"],
                                              strict=True))
    assert metrics["students_behind"] == []
