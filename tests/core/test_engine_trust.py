"""The MIND loop refusing what it cannot trust: divergence, unknown loop phases, checkpoints
that do not fit the run, missing task checkpoints, tasks without test samples."""

import contextlib
import json
import signal

import attrs
import numpy as np
import pytest

from mind_core import checkpoint
from mind_core.config import resolve_config
from mind_core.engine import Diverged, Engine, Interrupted
from mind_core.runner import evaluate_run, resume_run, start_run
from tests.core.engine_helpers import FAKE, SETTINGS, load_tiny, make_engine
from tests.fakes import DivergingBackend, StopAfter, tiny_dataset


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
