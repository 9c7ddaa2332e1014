"""Routing rules and their statistics (mind_core.routing, mind_core.task_stats), and how
checkpoints carry them."""

from pathlib import Path

import attrs
import numpy as np
import pytest

from mind_core import checkpoint
from mind_core.config import ConfigError, resolve_config
from mind_core.gaussians import held_out_split, min_distance, oas_covariance, whitening
from mind_core.metrics import evaluate_logits
from mind_core.routing import (
    ROUTINGS,
    RULES,
    SCORE_ONLY,
    RoutingError,
    RoutingInputs,
    available,
    route,
)
from mind_core.spaces import space_ids
from mind_core.task_stats import CALIBRATION_SAMPLES, TaskStats, fit_stats, fit_task_stats


def clusters(rng, centre: np.ndarray, n: int, classes: int, lo: int):
    """Features of one task: `classes` Gaussian blobs around a task centre."""
    offsets = rng.normal(0, 1.0, (classes, centre.size))
    y = rng.integers(0, classes, n)
    x = centre + offsets[y] + rng.normal(0, 0.5, (n, centre.size))
    return x, y + lo


def test_oas_is_a_well_conditioned_blend_even_with_a_dead_feature():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (40, 6))
    x[:, 2] = 0.0  # a dead channel: no variance at all
    centred = x - x.mean(0)
    shrunk = oas_covariance(centred)
    sample = centred.T @ centred / len(x)
    assert np.allclose(shrunk, shrunk.T)
    assert np.linalg.eigvalsh(shrunk).min() > 0  # invertible although `sample` is not
    assert np.isclose(np.trace(shrunk), np.trace(sample))  # shrinks towards the mean variance
    off = ~np.eye(6, dtype=bool)
    assert np.all(np.abs(shrunk[off]) <= np.abs(sample[off]) + 1e-12)


def test_whitening_turns_mahalanobis_into_euclidean():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, (5, 5))
    cov = a @ a.T + np.eye(5)
    w = whitening(cov)
    np.testing.assert_allclose(w @ w.T, np.linalg.inv(cov), rtol=1e-8, atol=1e-10)
    x, means = rng.normal(0, 1, (7, 5)), rng.normal(0, 1, (3, 5))
    precision = np.linalg.inv(cov)
    direct = np.array([min((v - m) @ precision @ (v - m) for m in means) for v in x])
    np.testing.assert_allclose(min_distance(x, means, w), direct, rtol=1e-8)


def make_tasks_features(seed=0, tasks=3, classes=2, dim=8, n=300, spaces=0):
    """Per-task statistics and test features of sub-networks whose feature spaces differ:
    task j's data sits at centre j in sub-network j's space and elsewhere in the others.
    spaces: stats.spaces, the earlier sub-networks' spaces each task is also fitted in."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (tasks, tasks, dim))  # [network, data task, dim]
    stats = []
    for t in range(tasks):
        ids = sorted({*space_ids(t, spaces), t})
        labels = rng.integers(0, classes, n)
        noise = rng.normal(0, 0.5, (len(ids), n, dim))
        x = np.stack([centres[j, t] + np.eye(classes, dim)[labels] + noise[i]
                      for i, j in enumerate(ids)])
        stats.append(fit_stats(x, ids, t, labels + t * classes,
                               (t * classes, (t + 1) * classes), seed=t, fit_spaces=spaces))
    test_tasks = [np.full(50, t) for t in range(tasks)]
    features = np.stack([
        np.concatenate([clusters(np.random.default_rng(100 + 10 * j + t), centres[j, t], 50,
                                 classes, 0)[0] for t in range(tasks)])
        for j in range(tasks)])
    return stats, features, np.concatenate(test_tasks)


def test_mahalanobis_routes_separated_feature_spaces_that_logits_cannot():
    stats, features, true_tasks = make_tasks_features()
    logits = np.zeros(features.shape[:2] + (2,))  # uninformative: every subnet equally sure
    inputs = RoutingInputs(logits=logits, temperature=1.0, features=features, stats=stats)
    assert np.mean(route("mahalanobis", inputs) == true_tasks) > 0.95
    assert np.mean(route("max_prob", inputs) == true_tasks) < 0.5  # ties -> task 0


def test_score_rules_follow_their_formulas():
    # Task 0: one huge logit; task 1: two large equal logits (higher logsumexp, lower max p).
    logits = np.array([[[9.0, 0.0]], [[8.5, 8.5]]])
    inputs = RoutingInputs(logits=logits, temperature=1.0)
    assert route("max_prob", inputs)[0] == 0
    assert route("max_logit", inputs)[0] == 0
    assert route("energy", inputs)[0] == 1  # log(2 e^8.5) > log(e^9 + 1)
    # Entropy: of the two most confident, the lower entropy (task 0 here, confident too).
    assert route("entropy", inputs)[0] == 0


def test_unknown_rule_and_missing_statistics_are_refused_with_the_reason():
    inputs = RoutingInputs(logits=np.zeros((2, 3, 2)), temperature=1.0)
    with pytest.raises(RoutingError, match="inference.routing must be one of .*mahalanobis"):
        route("nearest", inputs)
    with pytest.raises(RoutingError, match="needs per-task feature statistics"):
        route("mahalanobis", inputs)
    with pytest.raises(ConfigError, match="inference.routing.*max_prob, entropy"):
        resolve_config("smoke", ["inference.routing=nearest"])


def test_evaluation_scores_every_available_rule():
    stats, features, true_tasks = make_tasks_features(tasks=2, spaces=1)
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 1, features.shape[:2] + (2,))
    labels = true_tasks * 2 + logits[true_tasks, np.arange(len(true_tasks))].argmax(-1)
    with_stats = evaluate_logits(logits, labels, true_tasks, [(0, 2), (2, 4)], 1.0,
                                 "mahalanobis", features, stats)
    assert set(with_stats.rules) == set(ROUTINGS)
    own_only = [attrs.evolve(s, spaces={}) for s in stats]  # stats.spaces = 0
    assert available(own_only) == tuple(r for r in ROUTINGS if r != "pairwise")
    scored = evaluate_logits(logits, labels, true_tasks, [(0, 2), (2, 4)], 1.0,
                             "mahalanobis", features, own_only)
    assert set(scored.rules) == set(available(own_only))
    assert with_stats.routing == with_stats.rules["mahalanobis"]["routing"] > 0.95
    assert with_stats.taw == 1.0 and with_stats.tag == with_stats.rules["mahalanobis"]["tag"]
    without = evaluate_logits(logits, labels, true_tasks, [(0, 2), (2, 4)], 1.0)
    assert set(without.rules) == set(SCORE_ONLY) and "mahalanobis" not in without.rules
    for name in SCORE_ONLY:
        assert without.rules[name] == with_stats.rules[name]  # statistics change no other rule
    with pytest.raises(RoutingError):
        evaluate_logits(logits, labels, true_tasks, [(0, 2), (2, 4)], 1.0, "mahalanobis")


def test_every_rule_is_documented():
    text = (Path(__file__).resolve().parents[2] / "docs" / "routing.md").read_text()
    for name in RULES:
        assert f"| `{name}` |" in text, name


@pytest.mark.parametrize("name, value, message", [
    ("means", np.full((2, 4), np.nan), "tensor 'means' holds non-finite values"),
    ("whiten", np.ones((3, 3)), "wrong shape"),
    ("calibration", np.array([1.0, 0.0, 1.0, 1.0]), "non-positive spread"),
])
def test_bad_statistics_in_a_checkpoint_name_the_file_and_tensor(tmp_path, name, value,
                                                                 message):
    stats = make_tasks_features(tasks=1, dim=4)[0][0]
    good = checkpoint.Checkpoint(weights={"fc": np.ones((2, 4), np.float32)},
                                 owner={"fc": np.zeros((2, 4), np.int8)}, bn_snapshots=[],
                                 stats=[stats], tasks=1, classes_per_task=2)
    path = tmp_path / "task-0.safetensors"
    checkpoint.save(path, good)
    loaded = checkpoint.load(path).stats[0]
    for key, array in stats.arrays().items():
        np.testing.assert_allclose(loaded.arrays()[key], array, rtol=1e-6, atol=1e-6)
    bad = TaskStats(**{**stats.arrays(), name: value})
    checkpoint.save(path, attrs.evolve(good, stats=[bad]))
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load(path)
    assert str(path) in str(info.value) and "stats/0" in str(info.value)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_statistics_rule_on_tasks_too_small_to_fit_is_a_config_error(tmp_path):
    from mind_core.engine import Engine
    from tests.fakes import FakeBackend, tiny_dataset

    tiny = tiny_dataset(classes=6, per_class=2)  # 4 training samples per 2-class task
    cfg = resolve_config("smoke", ["tasks=3", "inference.routing=mahalanobis"])
    with pytest.raises(ConfigError) as err:
        Engine(cfg, FakeBackend(), tiny, tmp_path)
    assert err.value.key == "inference.routing"
    assert "needs at least 10 training samples per task" in str(err.value)
    assert "task 0 has 4" in str(err.value) and "max_prob" in str(err.value)
    # The score-only rules still run; the statistics are simply not fitted.
    cfg = resolve_config("smoke", ["tasks=3", "inference.routing=max_prob"])
    metrics = Engine(cfg, FakeBackend(), tiny, tmp_path).run()
    assert set(metrics["final"]["rules"]) == set(SCORE_ONLY)


def test_a_ten_sample_task_is_calibrated_like_a_large_sample_of_its_distribution():
    """With 10 samples the held-out slice was 2, and a task's spread could be a hundredth of
    the truth; cross-fitted, it stays within a small factor of the spread of 1,000 fresh
    samples' log distances under the same statistics, in every draw."""
    d = 16
    for seed in range(20):
        rng = np.random.default_rng(seed)
        centre = rng.normal(0, 1, d)
        x, y = clusters(np.random.default_rng([seed, 1]), centre, 1010, 2, 0)
        stats = fit_task_stats(x[:10], y[:10], (0, 2), seed)
        fresh = np.log(min_distance(x[10:], stats.means, stats.whiten) + 1e-12)
        assert 1 / 3 < stats.calibration[3] / fresh.std() < 3, seed
        assert abs(stats.calibration[2] - fresh.mean()) < 2 * fresh.std(), seed


def test_a_large_task_is_calibrated_on_its_held_out_slice_alone():
    rng = np.random.default_rng(0)
    x, y = clusters(rng, rng.normal(0, 1, 8), 1000, 3, 0)
    calib, _ = held_out_split(1000, 7)
    assert len(calib) >= CALIBRATION_SAMPLES
    stats = fit_task_stats(x, y, (0, 3), 7)
    log_distance = np.log(min_distance(x[calib], stats.means, stats.whiten) + 1e-12)
    np.testing.assert_allclose(stats.calibration[2:], [log_distance.mean(), log_distance.std()],
                               rtol=1e-6)
