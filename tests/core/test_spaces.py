"""Statistics in every frozen sub-network (mind_core.spaces) and the `pairwise` rule: the
densities follow their formulas, fitting rounds as a checkpoint stores, checkpoints carry
them, the engine fits them where stats.spaces says, and a finished run refits them exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.routing_spaces import load_run
from mind_core import checkpoint
from mind_core.config import ConfigError, config_to_dict, resolve_config
from mind_core.engine import Engine
from mind_core.refit import refit_stats
from mind_core.routing import RoutingInputs, available, route
from mind_core.run_checkpoints import task_checkpoints
from mind_core.spaces import (
    SpaceStats,
    SpaceStatsError,
    fit_space_stats,
    log_likelihood,
    pair_space,
    pairwise_scores,
    space_ids,
    transform_features,
)
from mind_core.task_stats import TaskStats
from tests.core.test_routing import make_tasks_features
from tests.fakes import FakeBackend, tiny_dataset


def direct_mixture(x, means, covariances):
    """log (1/c) sum_c N(x; mu_c, Sigma_c) + d/2 log 2 pi, straight from the definition."""
    d = x.shape[1]
    parts = []
    for mu, cov in zip(means, covariances, strict=True):
        diff = x - mu
        quad = np.einsum("nd,de,ne->n", diff, np.linalg.inv(cov), diff)
        parts.append(np.exp(-0.5 * quad) / np.sqrt(np.linalg.det(cov)))
    return np.log(np.mean(parts, axis=0)) + 0.0 * d


@pytest.mark.parametrize("per_class", [True, False])
def test_log_likelihood_is_the_mixture_density(per_class):
    rng = np.random.default_rng(0)
    d, c = 4, 3
    means = rng.normal(0, 2, (c, d))
    covs = [a @ a.T + np.eye(d) for a in rng.normal(0, 1, (c if per_class else 1, d, d))]
    whiten = np.stack([np.linalg.cholesky(np.linalg.inv(cov)) for cov in covs])
    stats = SpaceStats(means=means, whiten=whiten,
                       log_det=np.array([np.linalg.slogdet(cov)[1] for cov in covs]),
                       calibration=np.array([0.0, 1.0]), transform=np.array([1.0]))  # none
    x = rng.normal(0, 2, (20, d))
    expected = direct_mixture(x, means, covs if per_class else covs * c)
    np.testing.assert_allclose(log_likelihood(x, stats), expected, rtol=1e-10, atol=1e-10)


def test_fecam_transform_keeps_signs_and_gives_unit_norms():
    x = np.array([[4.0, -9.0, 0.0], [0.0, 0.0, 0.0]])
    out = transform_features(x, "fecam")
    np.testing.assert_allclose(out[0], np.array([2.0, -3.0, 0.0]) / np.sqrt(13.0))
    assert np.all(out[1] == 0.0)  # an all-zero feature vector stays finite
    assert np.array_equal(transform_features(x, "none"), x)


@pytest.mark.parametrize("covariance,transform,k", [("per_class", "fecam", 3),
                                                    ("tied", "none", 1)])
def test_fitted_statistics_are_stored_values_and_checked_on_load(covariance, transform, k):
    rng = np.random.default_rng(1)
    x, y = rng.normal(0, 1, (90, 5)), rng.integers(3, 6, 90)
    stats = fit_space_stats(x, y, (3, 6), seed=4, covariance=covariance, transform=transform)
    assert stats.whiten.shape == (k, 5, 5) and stats.log_det.shape == (k,)
    assert stats.transform_name == transform
    for name, value in stats.arrays().items():  # rounded when fitted: float32 loses nothing
        assert np.array_equal(value.astype(np.float32).astype(np.float64), value), name
    again = SpaceStats.from_arrays({n: v.astype(np.float32) for n, v in stats.arrays().items()},
                                   "stats/0/space/0")
    assert all(np.array_equal(getattr(again, n), getattr(stats, n)) for n in SpaceStats.ARRAYS)
    broken = {**stats.arrays(), "log_det": np.zeros(k + 1)}
    with pytest.raises(SpaceStatsError, match="stats/0/space/0: tensors of the wrong shape"):
        SpaceStats.from_arrays(broken, "stats/0/space/0")
    with pytest.raises(SpaceStatsError, match="'transform' is 7"):
        SpaceStats.from_arrays({**stats.arrays(), "transform": np.array([7.0])}, "s")


def test_spaces_are_the_first_ones_and_the_own_and_pairs_meet_in_the_latest_shared():
    assert space_ids(0, 16) == [0] and space_ids(5, 16) == [0, 1, 2, 3, 4, 5]
    assert space_ids(5, 2) == [0, 1, 5] and space_ids(1, 2) == [0, 1]
    assert space_ids(4, 0) == []
    spaces = [dict.fromkeys(space_ids(t, 2)) for t in range(6)]
    assert pair_space(spaces[1], spaces[4]) == 1  # task 1's own space is an anchor
    assert pair_space(spaces[3], spaces[5]) == 1  # past the anchors: the last anchor
    assert pair_space(spaces[0], spaces[2]) == 0


@pytest.mark.parametrize("spaces", [16, 1])
def test_pairwise_routes_tasks_that_separate_in_the_spaces_they_share(spaces):
    stats, features, true_tasks = make_tasks_features(tasks=4, spaces=spaces)
    logits = np.zeros(features.shape[:2] + (2,))
    inputs = RoutingInputs(logits=logits, temperature=1.0, features=features, stats=stats)
    assert np.mean(route("pairwise", inputs) == true_tasks) > 0.95
    scores = pairwise_scores(features, [s.spaces for s in stats])
    np.testing.assert_allclose(scores.sum(0), 4 * 3 / 2)  # every match hands out one point


def test_pairwise_needs_spaces_and_says_which_setting_gives_them():
    stats, features, _ = make_tasks_features(tasks=2, spaces=0)
    inputs = RoutingInputs(logits=np.zeros(features.shape[:2] + (2,)), temperature=1.0,
                           features=features, stats=stats)
    assert "pairwise" not in available(stats)
    with pytest.raises(ValueError, match=r"pairwise.*stats\.spaces"):
        route("pairwise", inputs)
    with pytest.raises(ConfigError, match=r"inference\.routing: pairwise .*stats\.spaces >= 1"):
        resolve_config("smoke", ["inference.routing=pairwise", "stats.spaces=0"])


def test_checkpoints_carry_the_spaces_and_name_a_broken_tensor(tmp_path):
    stats, _, _ = make_tasks_features(tasks=2, spaces=4)
    ckpt = checkpoint.Checkpoint(weights={"w": np.zeros(2, np.float32)},
                                 owner={"w": np.full(2, -1, np.int16)},
                                 bn_snapshots=[{}, {}], stats=stats, tasks=2)
    checkpoint.save(tmp_path / "c.safetensors", ckpt)
    loaded = checkpoint.load(tmp_path / "c.safetensors").stats
    assert [sorted(s.spaces) for s in loaded] == [[0], [0, 1]]
    for before, after in zip(stats, loaded, strict=True):
        assert before.arrays().keys() == after.arrays().keys()
        for name, value in before.arrays().items():
            assert np.array_equal(value, after[name] if isinstance(after, dict)
                                  else after.arrays()[name]), name
    tensors = checkpoint.to_tensors(ckpt)
    tensors["stats/1/space/0/means"] = tensors["stats/1/space/0/means"][:, :3]
    with pytest.raises((checkpoint.CheckpointError, ValueError), match="stats/1/space/0"):
        checkpoint.from_tensors(tensors, {})


def test_the_engine_fits_the_spaces_and_a_finished_run_refits_them_exactly(tmp_path):
    cfg = resolve_config("smoke", ["tasks=3", "stats.spaces=1", "teacher.batch_size=16",
                                   "distill.batch_size=16", "backend=tests.fakes:FakeBackend"])
    data = tiny_dataset(classes=6)
    metrics = Engine(cfg, FakeBackend(), data, tmp_path).run()
    (tmp_path / "config.json").write_text(json.dumps({"config": config_to_dict(cfg)}))
    assert "pairwise" in metrics["final"]["rules"]
    saved = checkpoint.load(task_checkpoints(tmp_path)[-1]).stats
    assert [sorted(s.spaces) for s in saved] == [[0], [0, 1], [0, 2]]
    run = load_run(tmp_path, "tests.fakes:FakeBackend", load=lambda *_: data)
    refitted = refit_stats(run, 1, cfg.stats.covariance, cfg.stats.transform)
    for t, (fitted, again) in enumerate(zip(saved, refitted, strict=True)):
        assert isinstance(again, TaskStats)
        for name, value in fitted.arrays().items():
            assert np.array_equal(value, again.arrays()[name]), (t, name)
