"""The single-head baselines against what their sources define (FACIL's exemplar-free
class-incremental protocol, Masana et al. 2022; docs/baselines.md), with the numpy fake
backend: which classes the cross-entropy covers, which classifier rows train, how EWC merges
its Fisher and which tensors it anchors."""

import numpy as np

from mind_core.baselines import BaselineEngine
from mind_core.config import resolve_config
from mind_core.methods import method_settings
from tests.fakes import FakeBackend, tiny_dataset

SETTINGS = {"tasks": 3, "teacher.epochs": 1, "teacher.batch_size": 16,
            "backend": "tests.fakes:FakeBackend"}



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
        self.phases, self.fisher_calls = [], []

    def start_phase(self, model, phase, trainable, teacher=None, penalty=None):
        self.phases.append((phase, trainable, penalty))
        return super().start_phase(model, phase, trainable, teacher, penalty)

    def fisher(self, model, x, y, class_range, batch_size, mean, std):
        self.fisher_calls.append(class_range)
        k = len(self.fisher_calls)
        return {name: np.full_like(w, k) for name, w in model.weights.items()}


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
