"""The single-head baselines against what their sources define (FACIL's exemplar-free
class-incremental protocol, Masana et al. 2022; docs/baselines.md), with the numpy fake
backend: which classes the cross-entropy covers, which classifier rows train, how EWC merges
its Fisher and which tensors it anchors."""

import numpy as np
import pytest

from mind_core.baselines import BaselineEngine
from mind_core.config import resolve_config
from mind_core.methods import method_settings
from tests.fakes import FakeBackend, tiny_dataset

SETTINGS = {"tasks": 3, "teacher.epochs": 1, "teacher.batch_size": 16,
            "backend": "tests.fakes:FakeBackend"}
RANGES = [(0, 2), (2, 4), (4, 6)]


def run(method, backend, **extra):
    cfg = resolve_config("smoke", {**SETTINGS, **method_settings(method), **extra})
    engine = BaselineEngine(cfg, backend, tiny_dataset(classes=6, per_class=20))
    engine.run()
    return engine


class RecordingBackend(FakeBackend):
    """Records every phase's spec, trainable masks and penalty; its Fisher of the k-th call
    is k + 1 everywhere, so the merged importance is known exactly."""

    def __init__(self, device="auto"):
        super().__init__(device)
        self.phases, self.fisher_calls, self.fisher_inputs = [], [], []

    def start_phase(self, model, phase, trainable, teacher=None, penalty=None):
        self.phases.append((phase, trainable, penalty))
        return super().start_phase(model, phase, trainable, teacher, penalty)

    def fisher(self, model, x, y, class_range, batch_size, mean, std):
        self.fisher_calls.append(class_range)
        self.fisher_inputs.append((x, y))
        k = len(self.fisher_calls)
        real = super().fisher(model, x, y, class_range, batch_size, mean, std)
        return {name: np.full_like(f, k) for name, f in real.items()}


@pytest.mark.parametrize("method", ["finetune", "lwf", "ewc"])
def test_cross_entropy_is_the_current_heads_and_old_rows_are_frozen(method):
    backend = RecordingBackend()
    run(method, backend)
    assert [phase.class_range for phase, _, _ in backend.phases] == RANGES
    assert backend.phases[0][1] is None  # task 0: no old rows
    for (lo, _), (_, trainable, _) in zip(RANGES[1:], backend.phases[1:], strict=True):
        assert not trainable["fc"][:lo].any() and trainable["fc"][lo:].all()
        assert trainable["fc1"].all()  # only the classifier has per-class rows


def test_joint_trains_every_class_seen_and_every_row():
    backend = RecordingBackend()
    run("joint", backend)
    assert [phase.class_range for phase, _, _ in backend.phases] == [(0, 2), (0, 4), (0, 6)]
    assert all(trainable is None for _, trainable, _ in backend.phases)


def test_old_classifier_rows_keep_their_values():
    # No step and no weight decay reaches a frozen row (FACIL leaves old heads out of its
    # optimiser), even with the distillation term's gradient on it.
    rows = []

    class Watch(FakeBackend):
        def start_phase(self, model, phase, trainable, teacher=None, penalty=None):
            rows.append(model.weights["fc"][:2].copy())
            return super().start_phase(model, phase, trainable, teacher, penalty)

    engine = run("lwf", Watch(), **{"teacher.weight_decay": 0.1})
    np.testing.assert_array_equal(engine.model.weights["fc"][:2], rows[1])
    np.testing.assert_array_equal(rows[2], rows[1])


def test_lwf_distils_the_old_classes():
    backend = RecordingBackend()
    run("lwf", backend)
    assert [phase.distill_range for phase, _, _ in backend.phases] == [None, (0, 2), (0, 4)]
    assert all(phase.distill_temperature == 2.0 for phase, _, _ in backend.phases[1:])


def test_ewc_importance_starts_at_zero_and_merges_with_alpha():
    # FACIL: importance_0 = 0, importance_t = alpha importance_{t-1} + (1 - alpha) F_t.
    backend = RecordingBackend()
    engine = run("ewc", backend, **{"ewc.alpha": 0.25})
    assert backend.fisher_calls == [(0, 2), (0, 4), (0, 6)]  # every class seen, as FACIL
    expected, merged = [], 0.0
    for k in (1, 2, 3):
        merged = 0.25 * merged + 0.75 * k
        expected.append(merged)
    pulled = [penalty.importance["fc1"] for _, _, penalty in backend.phases[1:]]
    np.testing.assert_allclose([p.flat[0] for p in pulled], expected[:2], rtol=1e-6)
    np.testing.assert_allclose(engine.importance["fc1"], expected[2], rtol=1e-6)


def test_ewc_anchors_every_parameter_but_the_classifier():
    # FACIL keeps importance for the feature extractor's parameters (BN gamma and beta
    # included), none for the heads; the anchor is the previous task's network.
    backend = RecordingBackend()
    engine = run("ewc", backend)
    assert set(engine.importance) == {"fc1", "bn1.gamma", "bn1.beta"}
    _, _, penalty = backend.phases[1]
    assert set(penalty.anchor) == set(engine.importance)
    assert penalty.anchor["bn1.gamma"].shape == (32,)


def test_ewc_fisher_uses_the_models_predictions_on_shuffled_data():
    backend = RecordingBackend()
    engine = run("ewc", backend)
    for task, (x, y) in zip(engine.task_data, backend.fisher_inputs, strict=True):
        assert y is None  # FACIL's max_pred: the model's own argmax
        assert not np.array_equal(x, task.x_train)  # FACIL's loader shuffles
        assert np.array_equal(np.sort(x, axis=0), np.sort(task.x_train, axis=0))


def test_a_checkpoints_importance_must_name_anchorable_tensors():
    from mind_core.checkpoint import Checkpoint, CheckpointError
    from mind_core.checkpoint_match import check_fit

    shapes = {"fc1": (4, 3), "fc": (2, 4)}
    bn = {"bn1": {key: np.zeros(4, np.float32) for key in ("gamma", "beta", "mean", "var")}}
    weights = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}

    def fit(importance):
        ckpt = Checkpoint(weights=weights, owner={k: v.astype(np.int16) for k, v in
                                                  weights.items()},
                          bn_snapshots=[], importance=importance)
        check_fit(ckpt, "ckpt", shapes, bn, "a model")

    fit({"fc1": np.ones((4, 3), np.float32), "bn1.gamma": np.ones(4, np.float32)})
    for bad in ({"bn1.mean": np.ones(4, np.float32)}, {"fc1": np.ones((3, 4), np.float32)},
                {"nope": np.ones(4, np.float32)}):
        with pytest.raises(CheckpointError, match="importance"):
            fit(bad)


@pytest.mark.parametrize("n, batch, expected", [
    (10, 4, [(0, 4), (4, 8)]),  # FACIL's n // batch full batches: the last 2 are left out
    (8, 4, [(0, 4), (4, 8)]),
    (3, 4, [(0, 3)]),  # no full batch (FACIL would divide by 0): one batch of all
])
def test_fisher_batches_are_facils(n, batch, expected):
    from mind_core.backend_checks import fisher_batches

    assert fisher_batches(n, batch) == expected
