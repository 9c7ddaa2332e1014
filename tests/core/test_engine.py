"""The MIND loop with the numpy fake backend: files, events, resume, variants."""

import contextlib
import json
import signal

import attrs
import numpy as np
import pytest

from mind_core import checkpoint, masks
from mind_core.config import ConfigError, resolve_config
from mind_core.engine import Diverged, Engine, Interrupted
from mind_core.events import read_events
from mind_core.routing import ROUTINGS
from mind_core.runner import evaluate_run, resume_run, start_run
from tests.fakes import DivergingBackend, FakeBackend, StopAfter, tiny_dataset


def load_tiny(*_):
    return tiny_dataset()

FAKE = "tests.fakes:FakeBackend"  # a module:Class: resume and eval must be given it again
SETTINGS = ["tasks=3", "teacher.epochs=2", "distill.epochs=2", "teacher.batch_size=16",
            "distill.batch_size=16", f"backend={FAKE}"]


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


# ----------------------------------------------------------------------------- trust
@contextlib.contextmanager
def deadline(seconds: int):
    """Fail, rather than hang, when the code under test loops for ever."""
    def fail(*_):
        raise TimeoutError(f"still running after {seconds} s: the loop spins")
    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def strict_lines(path):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token} in {path.name}")
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_a_diverged_loss_stops_the_run_with_an_event_that_says_so(tmp_path):
    cfg = resolve_config("smoke", SETTINGS)
    engine = Engine(cfg, DivergingBackend(), tiny_dataset(), tmp_path)
    with pytest.raises(Diverged) as err:
        engine.run()
    assert (err.value.task, err.value.phase, err.value.epoch) == (1, "distill", 1)
    assert "distill.lr" in str(err.value) and "task 1" in str(err.value)
    events = strict_lines(tmp_path / "events.jsonl")
    failed = events[-1]
    assert failed["type"] == "run_failed" and failed["reason"] == "diverged"
    assert (failed["task"], failed["phase"], failed["epoch"]) == (1, "distill", 1)
    assert not [e for e in events if e["type"] == "epoch_ended" and e["task"] == 1
                and e["phase"] == "distill" and e["epoch"] == 1]  # the NaN epoch is not kept
    assert [e["type"] for e in events].count("run_failed") == 1
    resume = checkpoint.load(tmp_path / "checkpoint" / "resume.safetensors")  # still finite
    assert (resume.state["task"], resume.state["phase"], resume.state["next_epoch"]) == \
        (1, "distill", 1)


def test_a_learning_rate_that_blows_up_is_reported_as_divergence(tmp_path):
    with np.errstate(all="ignore"), pytest.raises(Diverged) as err:
        make_engine(tmp_path, ["distill.lr=1e30"]).run()
    assert (err.value.task, err.value.phase, err.value.epoch) == (0, "distill", 0)
    assert strict_lines(tmp_path / "events.jsonl")[-1]["reason"] == "diverged"


def test_an_unknown_loop_phase_raises_instead_of_looping_for_ever(tmp_path):
    engine = make_engine(tmp_path)
    engine.state.phase = "bogus"
    with deadline(30), pytest.raises(ValueError, match="unknown loop phase 'bogus'"):
        engine.run(resumed=True)


def interrupted_run(tmp_path, polls=20):
    run_dir = tmp_path / "run"
    with pytest.raises(Interrupted):
        start_run(resolve_config("smoke", SETTINGS), run_dir, should_stop=StopAfter(polls),
                  load=load_tiny)
    return run_dir, run_dir / "checkpoint" / "resume.safetensors"


def rewrite(path, **fields):
    ckpt = checkpoint.load(path)
    fields = {k: (v(ckpt) if callable(v) else v) for k, v in fields.items()}
    checkpoint.save(path, attrs.evolve(ckpt, **fields))


def test_a_resume_state_with_an_unknown_phase_is_a_checkpoint_error(tmp_path):
    run_dir, resume = interrupted_run(tmp_path)
    rewrite(resume, state=lambda c: {**c.state, "phase": "bogus"})
    with deadline(30), pytest.raises(checkpoint.CheckpointError) as err:
        resume_run(run_dir, load=load_tiny, backend=FAKE)
    assert str(resume) in str(err.value) and "'phase' is 'bogus'" in str(err.value)


def _wider(arrays, layer):
    return {k: (np.zeros((v.shape[0], v.shape[1] + 1), v.dtype) if k == layer else v)
            for k, v in arrays.items()}


def _bn_width(bn, width):
    return {layer: {f: np.ones(width, np.float32) for f in fields} for layer, fields in bn.items()}


@pytest.mark.parametrize("fields, message", [
    ({"tasks": 4}, "metadata 'tasks' is 4 but the run has tasks=3"),
    ({"state": lambda c: {**c.state, "phase": "teacher", "next_epoch": 5}},
     "'next_epoch' is 5, past the teacher phase's 2 epochs"),
    ({"weights": lambda c: _wider(c.weights, "fc1"), "owner": lambda c: _wider(c.owner, "fc1")},
     "tensor 'weight/fc1' has shape"),
    ({"live_bn": lambda c: _bn_width(c.live_bn, 7)}, "tensor 'live_bn/bn1/"),
    ({"classes_per_task": 3}, "metadata 'classes_per_task' is 3"),
    ({"state": lambda c: {**c.state, "task": c.state["task"] + 1}}, "BN snapshots"),
])
def test_resume_refuses_a_checkpoint_that_does_not_fit_the_run(tmp_path, fields, message):
    run_dir, resume = interrupted_run(tmp_path, polls=45)  # in task 1: one BN snapshot
    rewrite(resume, **fields)
    events = (run_dir / "events.jsonl").read_text()
    with pytest.raises(checkpoint.CheckpointError) as err:
        resume_run(run_dir, load=load_tiny, backend=FAKE)
    assert str(err.value).startswith(f"{resume}: ") and message in str(err.value)
    assert "\n" not in str(err.value)
    assert (run_dir / "events.jsonl").read_text() == events  # nothing was started


def test_engine_restore_checks_the_checkpoint_against_its_own_model(tmp_path):
    run_dir, resume = interrupted_run(tmp_path, polls=45)
    ckpt = checkpoint.load(resume)
    engine = make_engine(tmp_path / "other")
    bad = attrs.evolve(ckpt, bn_snapshots=[_bn_width(b, 5) for b in ckpt.bn_snapshots])
    with pytest.raises(checkpoint.CheckpointError, match="tensor 'bn/0/bn1/"):
        engine.restore(bad, resume)
    engine.restore(ckpt, resume)  # the real one fits
    assert engine.state.task == ckpt.state["task"]


def test_eval_needs_every_task_checkpoint_from_0_to_t(tmp_path):
    run_dir = tmp_path / "run"
    start_run(resolve_config("smoke", SETTINGS), run_dir, load=load_tiny)
    folder = run_dir / "checkpoint"
    middle = (folder / "task-1.safetensors").read_bytes()
    (folder / "task-1.safetensors").unlink()
    with pytest.raises(checkpoint.CheckpointError) as err:
        evaluate_run(run_dir, FAKE, load=load_tiny)
    assert str(err.value) == (f"{folder / 'task-1.safetensors'} is missing "
                              "(task-2.safetensors exists)")
    (folder / "task-1.safetensors").write_bytes(middle)
    (folder / "task-2.safetensors").unlink()
    with pytest.raises(checkpoint.CheckpointError, match="task-2.safetensors is missing "
                       r"\(resume.safetensors says 3 tasks are finished\)"):
        evaluate_run(run_dir, FAKE, load=load_tiny)


@pytest.mark.parametrize("fields, message", [
    ({"tasks": 5}, "metadata 'tasks' is 5 but the run has tasks=3"),
    ({"bn_snapshots": lambda c: c.bn_snapshots[:1]}, "holds 1 BN snapshots"),
    ({"bn_snapshots": lambda c: [_bn_width(b, 9) for b in c.bn_snapshots]}, "'bn/0/bn1/"),
])
def test_eval_refuses_a_task_checkpoint_that_does_not_fit_the_run(tmp_path, fields, message):
    run_dir = tmp_path / "run"
    start_run(resolve_config("smoke", SETTINGS), run_dir, load=load_tiny)
    path = run_dir / "checkpoint" / "task-1.safetensors"
    rewrite(path, **fields)
    with pytest.raises(checkpoint.CheckpointError) as err:
        evaluate_run(run_dir, FAKE, load=load_tiny)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_a_task_without_test_samples_is_null_in_metrics_and_events(tmp_path):
    from mind_core.events import json_safe

    dataset = tiny_dataset()
    keep = dataset.y_test < 4  # two classes, so at least one task, have no test samples
    dataset = attrs.evolve(dataset, x_test=dataset.x_test[keep], y_test=dataset.y_test[keep])
    metrics = make_engine(tmp_path, dataset=dataset).run()
    assert any(np.isnan(a) for row in metrics["acc_matrix_tag"] for a in row)
    on_disk = json.loads((tmp_path / "metrics.json").read_text(),
                         parse_constant=lambda token: pytest.fail(f"{token} in metrics.json"))
    assert on_disk == json_safe(metrics)
    assert any(a is None for row in on_disk["acc_matrix_tag"] for a in row)
    evaluated = [e for e in strict_lines(tmp_path / "events.jsonl") if e["type"] == "evaluated"]
    assert any(a is None for a in evaluated[-1]["per_task_tag"])
