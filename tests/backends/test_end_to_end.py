"""A real backend through the whole loop: the `mind` command, interrupt + resume, eval."""

import json
import os

import numpy as np
import pytest

from mind_core.cli import main
from mind_core.config import resolve_config
from mind_core.engine import Interrupted
from mind_core.masks import INITS
from mind_core.runner import evaluate_run, resume_run, start_run
from tests.fakes import StopAfter

NAME = os.environ.get("MIND_TEST_BACKEND", "torch")
SMOKE = ["tasks=5", f"backend={NAME}", "device=cpu", "teacher.epochs=4", "distill.epochs=4",
         "teacher.batch_size=32", "distill.batch_size=32"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, backend):
    run_dir = tmp_path_factory.mktemp("e2e") / "run"
    metrics = start_run(resolve_config("smoke", SMOKE), run_dir)
    return run_dir, metrics


def test_smoke_run_through_the_cli_writes_the_documented_files(tmp_path, capsys, backend):
    out = tmp_path / "run"
    code = main(["run", "--preset", "smoke", "--backend", NAME, "--device", "cpu",
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "Accuracy matrix (TAg)" in printed and f"Run directory: {out}" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tasks_done"] == 5
    assert 0.0 <= metrics["final"]["tag"] <= metrics["final"]["taw"] <= 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["versions"]["backend"] == backend.name
    # The framework's pools as it ran them (0: TF's own choice, where TF started before).
    assert set(config["threads"]) == {"intra_op", "inter_op"}
    assert metrics["threads"] == config["threads"]
    assert metrics["precision"] == config["versions"]["precision"]
    assert (f"on {backend.device} in {config['versions']['precision']}, threads "
            f"{config['threads']['intra_op']} intra-op / ") in printed
    assert len(list((out / "checkpoint").glob("task-*.safetensors"))) == 5


def test_learns_the_synthetic_tasks_better_than_chance(finished_run):
    _, metrics = finished_run
    assert metrics["final"]["taw"] > 0.75  # 2 classes per task: chance is 0.5


def test_eval_reproduces_the_runs_own_metrics(finished_run):
    run_dir, metrics = finished_run
    again = evaluate_run(run_dir)
    assert again["acc_matrix_taw"] == metrics["acc_matrix_taw"]
    assert again["acc_matrix_tag"] == metrics["acc_matrix_tag"]
    assert again["final"] == metrics["final"]


ROUTING_KEYS = ("rules", "confusion", "routing", "routing_rule")


def saved_routing(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {key: metrics[key] for key in ROUTING_KEYS} | {"final": metrics["final"]["rules"]}


def evaluated_routing(run_dir, capsys):
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    return {key: metrics[key] for key in ROUTING_KEYS} | {"final": metrics["final"]["rules"]}


@pytest.mark.parametrize("polls", [7, 40])
def test_resume_after_interrupt_gives_identical_metrics(tmp_path, finished_run, backend, polls,
                                                        capsys):
    """Bit-identical resume, routing statistics included: every rule's routing accuracy and
    TAg after each task, and the last routing decisions (confusion), are the same numbers in
    an uninterrupted run, a resumed one and `mind eval` of either (statistics are rounded to
    what a checkpoint stores when fitted, so a resume routes with the same numbers)."""
    if "deterministic" not in backend.capabilities:
        pytest.skip("bit-identical resume is promised on deterministic (CPU) backends only")
    reference_dir, reference = finished_run
    run_dir = tmp_path / "run"
    with pytest.raises(Interrupted):
        start_run(resolve_config("smoke", SMOKE), run_dir, should_stop=StopAfter(polls))
    assert resume_run(run_dir) == reference
    routing = saved_routing(reference_dir)
    assert {"mahalanobis", "pairwise"} <= set(routing["rules"])  # the statistics rules too
    assert saved_routing(run_dir) == routing
    assert evaluated_routing(run_dir, capsys) == routing
    assert evaluated_routing(reference_dir, capsys) == routing


def seed_with_an_orphan_conv1_row(backend) -> int:
    """A run seed whose task-0 allocation leaves some conv1 channel without a task-0 weight
    (the case that makes a zero-initialised channel dead for every later task)."""
    from mind_core import masks
    from mind_core.data.synthetic import IMAGE_SHAPE, NUM_CLASSES
    from mind_core.plan import derive_seed
    from mind_core.protocol import ModelSpec

    model = backend.build_model(ModelSpec(arch="small_cnn", input_shape=IMAGE_SHAPE,
                                          num_classes=NUM_CLASSES), seed=0)
    layers = backend.layers(model)
    for seed in range(100):
        owner = masks.allocate(masks.new_ownership(layers, 5), 0, layers=layers, num_tasks=5,
                               rng=np.random.default_rng(derive_seed(seed, "allocate", 0)),
                               class_range=(0, 2))
        if not (owner["conv1"] == 0).reshape(owner["conv1"].shape[0], -1).any(axis=1).all():
            return seed
    raise AssertionError("no seed in 0..99 leaves a conv1 row without a task-0 weight")


@pytest.mark.parametrize("init", INITS)
def test_only_the_zero_init_leaves_dead_channels(tmp_path, backend, init):
    """Dead channels of sub-networks 1..4 after the run, counted twice: structurally (rows
    whose used weights are all zero) and on data (used conv channels that are exactly 0 after
    BN and ReLU on every pixel of every test image)."""
    from mind_core import checkpoint, masks
    from mind_core.evaluation import subnets_for
    from mind_core.plan import Plan, derive_seed, model_spec
    from mind_core.runner import load_dataset
    from mind_core.schedule import make_tasks, test_set
    from tests.backends.activations import CONVS, dead_channels

    seed = seed_with_an_orphan_conv1_row(backend)
    cfg = resolve_config("smoke", [*SMOKE[:2], "device=cpu", f"seed={seed}",
                                   f"allocation.init={init}"])
    start_run(cfg, tmp_path / "run")
    final = checkpoint.load(tmp_path / "run" / "checkpoint" / "task-4.safetensors")
    structural = [masks.dead_rows(final.weights, masks.gates(final.owner, t))
                  for t in range(1, 5)]
    dead = [sum(rows.values()) for rows in structural]
    if init == "zero":
        assert min(dead) >= 1  # the orphan row: zero weights, zero output, zero gradient
    else:
        assert dead == [0, 0, 0, 0]

    # The same sub-networks on data, set up as evaluation sets them (mind_core/runner.py),
    # each on the images evaluation runs it on: every task's test set (task t's own among
    # them). On task t's images alone, a trained channel can be silent because it responds to
    # other tasks' classes (torch, init=teacher: two conv3 channels of sub-network 3 with
    # hundreds of weights); that is not a dead channel.
    dataset = load_dataset(cfg.dataset, cfg.data_dir or None)
    tasks = make_tasks(dataset, cfg.tasks, cfg.scenario, cfg.seed)
    model = backend.build_model(model_spec(cfg, dataset.image_shape, dataset.num_classes),
                                derive_seed(cfg.seed, "model"))
    backend.set_weights(model, final.weights)
    subnets = subnets_for(final.owner, final.bn_snapshots, Plan.from_config(cfg),
                          [task.class_range for task in tasks])
    images = test_set(tasks)[0]
    on_data = [dead_channels(backend, model, subnets[t], images, dataset.mean, dataset.std)
               for t in range(1, 5)]
    for rows, seen in zip(structural, on_data, strict=True):
        # A structurally dead row is dead on any data (its BN beta never moves off 0).
        assert all(seen[conv] >= rows[conv] for conv in CONVS), (structural, on_data)
    if init == "zero":
        assert max(seen["conv1"] for seen in on_data) >= 1, on_data  # the orphan conv1 row
    else:
        assert all(sum(seen.values()) == 0 for seen in on_data), on_data


@pytest.mark.parametrize("method", ["lwf", "ewc"])
def test_lwf_and_ewc_train_end_to_end_and_resume_exactly(tmp_path, backend, method):
    """The baselines through this backend: their own loss terms (LwF's distillation of the
    old classes, EWC's penalty) from task 1 on, and a stop in task 1 resumed to the numbers of
    an uninterrupted run."""
    settings = [*SMOKE, "tasks=2", f"method={method}", "teacher.epochs=2"]
    whole = start_run(resolve_config("smoke", settings), tmp_path / "whole")
    assert whole["tasks_done"] == 2 and whole["routing_rule"] == "single_head"
    assert whole["final"]["taw"] > 0.6  # 2 classes per task: chance is 0.5
    events = [json.loads(line) for line in (tmp_path / "whole" / "events.jsonl").open()]
    task1 = [e for e in events if e["type"] == "epoch_ended" and e["task"] == 1]
    if method == "lwf":
        assert all(e["distill"] > 0 for e in task1)
    else:
        assert task1[-1]["loss"] > task1[-1]["ce"]  # the penalty, once weights have moved
    if "deterministic" not in backend.capabilities:
        return
    with pytest.raises(Interrupted):
        start_run(resolve_config("smoke", settings), tmp_path / "cut",
                  should_stop=StopAfter(calls=12))
    resumed = resume_run(tmp_path / "cut")
    assert resumed["final"] == whole["final"]


def test_a_label_augmented_run_trains_evaluates_and_resumes_exactly(tmp_path, backend):
    """label_aug.transform=rotation through this backend: a head four times wider, trained on
    turned images with (class, view) labels, scored by summing each class over the views."""
    settings = [*SMOKE, "tasks=2", "teacher.epochs=2", "distill.epochs=2",
                "label_aug.transform=rotation"]
    whole = start_run(resolve_config("smoke", settings), tmp_path / "whole")
    assert whole["final"]["taw"] > 0.6  # 2 classes per task: chance is 0.5
    assert evaluate_run(tmp_path / "whole")["final"] == whole["final"]
    if "deterministic" not in backend.capabilities:
        return
    with pytest.raises(Interrupted):
        start_run(resolve_config("smoke", settings), tmp_path / "cut",
                  should_stop=StopAfter(calls=12))
    assert resume_run(tmp_path / "cut")["final"] == whole["final"]
