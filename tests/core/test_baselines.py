"""The single-head baselines (method = finetune | joint | lwf | ewc) with the numpy fake
backend: run directories like MIND's, their own losses, resume, eval and predict."""

import json

import numpy as np
import pytest

from mind_core import checkpoint
from mind_core.baselines import BaselineEngine
from mind_core.config import ConfigError, resolve_config
from mind_core.engine import Interrupted
from mind_core.events import read_events
from mind_core.inference import Predictor
from mind_core.methods import COMPARISON, METHODS, method_settings
from mind_core.runner import evaluate_run, resume_run, start_run
from mind_core.schedule import make_tasks
from tests.fakes import FakeBackend, StopAfter, tiny_dataset

FAKE = "tests.fakes:FakeBackend"
SETTINGS = {"tasks": 3, "teacher.epochs": 3, "teacher.batch_size": 16, "backend": FAKE}
BASELINES = ("finetune", "joint", "lwf", "ewc")


def load_tiny(*_):
    return tiny_dataset(classes=6, per_class=30)


def config(method, **extra):
    if method == "ewc":
        # The fake's plain SGD (20x the lr) swings past the anchor once lr * weight *
        # importance > 2, which BN gamma's importance reaches at the default 5000.
        extra = {"ewc.weight": 1000.0, **extra}
    return resolve_config("smoke", {**SETTINGS, **method_settings(method), **extra})


def epochs(run_dir):
    return [e for e in read_events(run_dir / "events.jsonl") if e["type"] == "epoch_ended"]


@pytest.mark.parametrize("method", BASELINES)
def test_a_baseline_run_writes_a_run_directory_like_minds(tmp_path, method):
    metrics = start_run(config(method), tmp_path, load=load_tiny)
    assert metrics["tasks_done"] == 3 and metrics["routing_rule"] == "single_head"
    assert json.loads((tmp_path / "metrics.json").read_text())["final"]["tag"] == \
        pytest.approx(metrics["final"]["tag"])
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == [
        "resume.safetensors", "task-0.safetensors", "task-1.safetensors", "task-2.safetensors"]
    trained = epochs(tmp_path)
    assert len(trained) == 3 * 3 and {e["phase"] for e in trained} == {"teacher"}
    assert metrics["final"]["taw"] > 0.6  # chance is 0.5 with two classes a task
    # Re-evaluated from its checkpoints, and predicted, it gives its own numbers.
    assert evaluate_run(tmp_path, FAKE, load=load_tiny)["final"] == metrics["final"]
    data = load_tiny()
    predicted = Predictor(tmp_path, FAKE, load=load_tiny).predict(data.x_test)
    assert np.mean(predicted.classes == data.y_test) == pytest.approx(metrics["final"]["tag"])


def test_lwf_distils_the_old_classes_from_task_1_on(tmp_path):
    start_run(config("lwf"), tmp_path, load=load_tiny)
    by_task = {t: [e for e in epochs(tmp_path) if e["task"] == t] for t in range(3)}
    assert all(e["distill"] is None for e in by_task[0])  # no old classes: no such term
    assert all(e["distill"] > 0 for e in by_task[1] + by_task[2])
    assert all(e["loss"] == pytest.approx(e["ce"] + e["distill"]) for e in by_task[2])


def test_lwf_weight_zero_is_finetune(tmp_path):
    lwf = start_run(config("lwf", **{"lwf.weight": 0.0}), tmp_path / "lwf", load=load_tiny)
    finetune = start_run(config("finetune"), tmp_path / "ft", load=load_tiny)
    assert lwf["final"] == finetune["final"]


def test_ewc_adds_its_penalty_and_keeps_the_importance(tmp_path):
    start_run(config("ewc"), tmp_path, load=load_tiny)
    later = [e for e in epochs(tmp_path) if e["task"] > 0]
    assert all(e["loss"] > e["ce"] for e in later[1:])  # the pull once weights have moved
    assert all(e["loss"] == e["ce"] for e in epochs(tmp_path) if e["task"] == 0)
    resume = checkpoint.load(tmp_path / "checkpoint" / "resume.safetensors")
    assert resume.importance is not None
    # FACIL's: every parameter but the classifier's, BN gamma and beta included
    assert set(resume.importance) == {"fc1", "bn1.gamma", "bn1.beta"}
    assert all((v >= 0).all() and np.isfinite(v).all() for v in resume.importance.values())
    assert any(v.max() > 0 for v in resume.importance.values())


def test_ewc_weight_zero_is_finetune(tmp_path):
    ewc = start_run(config("ewc", **{"ewc.weight": 0.0}), tmp_path / "ewc", load=load_tiny)
    finetune = start_run(config("finetune"), tmp_path / "ft", load=load_tiny)
    assert ewc["final"] == finetune["final"]


class CountingBackend(FakeBackend):
    """Records how many images each epoch trained on."""

    def __init__(self, device="auto"):
        super().__init__(device)
        self.images = []

    def train_epoch(self, trainer, x, y, epoch, seed, progress=None, should_stop=None):
        self.images.append(len(x))
        return super().train_epoch(trainer, x, y, epoch, seed, progress, should_stop)


@pytest.mark.parametrize("method, factor", [("joint", [1, 2, 3]), ("finetune", [1, 1, 1])])
def test_joint_retrains_on_every_task_so_far(method, factor):
    backend = CountingBackend()
    BaselineEngine(config(method), backend, load_tiny()).run()
    per_task = len(make_tasks(load_tiny(), 3, "class", 0)[0].x_train)
    assert backend.images == [per_task * f for f in factor for _ in range(3)]


@pytest.mark.parametrize("method", ["lwf", "ewc", "joint"])
def test_an_interrupted_baseline_resumes_to_the_uninterrupted_numbers(tmp_path, method):
    whole = start_run(config(method), tmp_path / "whole", load=load_tiny)
    with pytest.raises(Interrupted):
        start_run(config(method), tmp_path / "cut", should_stop=StopAfter(calls=5),
                  load=load_tiny)
    with pytest.raises(Interrupted):  # stopped again, mid-way through task 1
        resume_run(tmp_path / "cut", should_stop=StopAfter(calls=4), load=load_tiny,
                   backend=FAKE)
    resumed = resume_run(tmp_path / "cut", load=load_tiny, backend=FAKE)
    assert resumed["final"] == whole["final"]
    assert resumed["acc_matrix_tag"] == whole["acc_matrix_tag"]


def test_method_settings_are_checked():
    with pytest.raises(ConfigError, match="method"):
        resolve_config("smoke", {"method": "icarl"})
    with pytest.raises(ConfigError, match="lwf.temperature"):
        resolve_config("smoke", {"method": "lwf", "lwf.temperature": 0})
    with pytest.raises(ConfigError, match="ewc.alpha"):
        resolve_config("smoke", {"method": "ewc", "ewc.alpha": 1.5})
    assert set(COMPARISON) <= set(METHODS)
    for name in METHODS:  # every named method is a valid configuration
        resolve_config("smoke", method_settings(name))


def test_single_head_tag_takes_the_argmax_over_all_slices():
    from mind_core.evaluation import single_head_choice, single_head_tag

    # 2 tasks x 2 classes; sample 0 (class 1, task 0): its own slice wins -> correct;
    # sample 1 (class 2, task 1): task 0's slice holds the largest logit -> wrong, routed to 0.
    logits = np.array([[[0.0, 5.0], [9.0, 1.0]],  # task 0's slice for samples 0 and 1
                       [[0.0, 4.0], [3.0, 0.0]]], dtype=np.float32)  # task 1's slice
    out = single_head_tag(logits, np.array([1, 2]), np.array([0, 1]), [(0, 2), (2, 4)])
    assert out["tag"] == 0.5 and out["routing"] == 0.5
    assert out["per_task_tag"] == [1.0, 0.0]
    assert out["confusion"] == [[1, 0], [1, 0]]
    assert out["tag_entropy"] == out["tag"]
    tasks, classes, scores = single_head_choice(logits, [(0, 2), (2, 4)])
    assert tasks.tolist() == [0, 0] and classes.tolist() == [1, 0]
    flat = np.array([0.0, 5.0, 0.0, 4.0])
    assert scores[0] == pytest.approx(np.exp(5) / np.exp(flat).sum())
