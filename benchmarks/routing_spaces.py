"""Routing rules on statistics in every frozen sub-network, scored on finished runs: the
statistics are fitted again from each run's training data (mind_core.refit: exactly what the
engine fits at each task's end), then every variant below routes the same test features.

    python -m benchmarks.routing_spaces RUN [RUN ...] [--spaces 16] [--json OUT]

Variants (the project's rule is `pairwise`; the others are what it was chosen against, on the
synbols-selection rendering, never on a benchmark's test split):
  mahalanobis       own-space statistics only (the earlier default)
  pairwise          round robin; pair (s, t) decided in the latest shared space by
                    sigmoid(log p_t - log p_s), scores summed
  pairwise_hard     the same, counting matches won (ties to the lower task id)
  pairwise_zscore   each likelihood standardised by its task's held-out mean and std first
  pairwise_before   pair (s, t) decided in space s - 1 (neither trained there) where s > 0
  pairwise_allspace every shared space's log-likelihood difference summed
  chain             for j = 0..T-1 in turn: in space j, "task j" against "a later task"
                    (the best later task's likelihood); the first j that wins is chosen
each with the statistics the defaults fit (one shrunk covariance per class, FeCAM's
transform) and, with --densities, `pairwise` with the other models of DENSITIES:
  pairwise_tied     one covariance shared by a task's classes
  pairwise_raw      the features as they are, no power 0.5 and L2 norm
  pairwise_tied_raw both (the rule's first form)
Last, `pairwise_mixture`: no routing at all, the class with the highest
sum_t P(t|x) P(y|x,t), where P(t|x) is the task's share of the round robin's points.
A run with label augmentation (label_aug) also gets `pairwise_views`: `pairwise` with
statistics of every view (stats.views=all), the others reading the images as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mind_core.checkpoint_match import check_fit
from mind_core.evaluation import subnets_for
from mind_core.numerics import softmax
from mind_core.plan import Plan, derive_seed, model_spec
from mind_core.refit import LoadedRun, refit_stats
from mind_core.registry import get_backend
from mind_core.routing import RoutingInputs, route
from mind_core.run_checkpoints import finished_tasks
from mind_core.runner import load_dataset, read_run_config, trusted_backend
from mind_core.schedule import make_tasks, test_set
from mind_core.spaces import log_likelihood, pair_space, pairwise_scores
from mind_core.views import Views

# The density models of each (space, task) compared: stats.covariance and stats.transform.
DENSITIES = {"": ("per_class", "fecam"), "tied": ("tied", "fecam"),
             "raw": ("per_class", "none"), "tied_raw": ("tied", "none")}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def variant_scores(features: np.ndarray, stats) -> dict[str, np.ndarray]:
    """Routed task per sample [n] for every variant."""
    spaces = [s.spaces for s in stats]
    tasks, n = len(spaces), features.shape[1]
    ll = {(j, t): log_likelihood(features[j], spaces[t][j])
          for t in range(tasks) for j in spaces[t]}
    z = {(j, t): (v - spaces[t][j].calibration[0]) / spaces[t][j].calibration[1]
         for (j, t), v in ll.items()}
    soft, hard, zscore, before, allspace = (np.zeros((tasks, n)) for _ in range(5))
    for t in range(tasks):
        for s in range(t):
            a = pair_space(spaces[s], spaces[t])
            diff = ll[a, t] - ll[a, s]
            for board, value in ((soft, _sigmoid(diff)), (hard, (diff > 0).astype(float)),
                                 (zscore, _sigmoid(z[a, t] - z[a, s]))):
                board[t] += value
                board[s] += 1.0 - value
            b = s - 1 if s > 0 and (s - 1) in spaces[s] and (s - 1) in spaces[t] else a
            won = _sigmoid(ll[b, t] - ll[b, s])
            before[t] += won
            before[s] += 1.0 - won
            shared = set(spaces[s]) & set(spaces[t])
            won = _sigmoid(sum(ll[j, t] - ll[j, s] for j in shared))
            allspace[t] += won
            allspace[s] += 1.0 - won
    chain = np.full(n, tasks - 1)
    undecided = np.ones(n, bool)
    for j in range(tasks - 1):
        later = np.max([ll[j, t] for t in range(j + 1, tasks) if j in spaces[t]], axis=0)
        mine = undecided & (ll[j, j] > later)
        chain[mine] = j
        undecided &= ~mine
    return {"pairwise": soft.argmax(0), "pairwise_hard": hard.argmax(0),
            "pairwise_zscore": zscore.argmax(0), "pairwise_before": before.argmax(0),
            "pairwise_allspace": allspace.argmax(0), "chain": chain}


def load_run(run_dir: Path, backend_name: str | None = None, device: str = "cpu",
             load: Callable = load_dataset) -> LoadedRun:
    """backend_name: a module:Class backend must be named again (runner.trusted_backend);
    load: the dataset loader (tests pass their own data)."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    backend_name = trusted_backend(cfg, run_dir, backend_name, "eval")
    paths, (ckpt,) = finished_tasks(run_dir, cfg, "refit", last_only=True)
    backend = get_backend(backend_name, device)
    dataset = load(cfg.dataset, cfg.data_dir or None)
    tasks = make_tasks(dataset, cfg.tasks, cfg.scenario, cfg.seed)[:len(paths)]
    model = backend.build_model(model_spec(cfg, dataset.image_shape, dataset.num_classes),
                                derive_seed(cfg.seed, "model"))
    check_fit(ckpt, paths[-1], {layer.name: layer.shape for layer in backend.layers(model)},
              backend.get_bn(model), f"a {cfg.model} model")
    backend.set_weights(model, ckpt.weights)
    return LoadedRun(cfg=cfg, backend=backend, model=model, ckpt=ckpt, dataset=dataset,
                     tasks=tasks, plan=Plan.from_config(cfg))



def score_run(run: LoadedRun, spaces: int, densities: bool = False
              ) -> dict[str, dict[str, float]]:
    x, y, true_task = test_set(run.tasks)
    ranges = [task.class_range for task in run.tasks]
    subnets = subnets_for(run.ckpt.owner, run.ckpt.bn_snapshots, run.plan, ranges)
    logits, every_view = Views.from_config(run.cfg).predict(
        run.backend, run.model, x, subnets, run.cfg.inference.batch_size, run.dataset.mean,
        run.dataset.std, features=True)
    features = every_view[0]  # the variants read the images as they are
    logits = np.asarray(logits, np.float64)
    lows = np.array([lo for lo, _ in ranges])
    predicted = logits.argmax(-1) + lows[:, None]
    samples = np.arange(len(y))
    temperature = run.cfg.inference.temperature
    routes, tag_of = {}, {}
    for suffix, (covariance, transform) in DENSITIES.items():
        if suffix and not densities:
            continue
        stats = refit_stats(run, spaces, covariance, transform, views="image")
        name = "pairwise" + (f"_{suffix}" if suffix else "")
        routes[name] = route("pairwise", RoutingInputs(
            logits=logits, temperature=temperature, features=features, stats=stats))
        if not suffix:
            variants = variant_scores(features, stats)
            # The script's own round robin is the core rule's definition, checked here.
            assert np.array_equal(variants.pop("pairwise"), routes["pairwise"])
            routes.update(variants)
            routes["mahalanobis"] = route("mahalanobis", RoutingInputs(
                logits=logits, temperature=temperature, features=features, stats=stats))
            tag_of["pairwise_mixture"] = mixture_prediction(logits, features, stats, lows)
    if len(every_view) > 1:  # label augmentation: statistics of every view (stats.views=all)
        routes["pairwise_views"] = route("pairwise", RoutingInputs.of_views(
            logits, temperature, every_view, refit_stats(run, spaces, views="all")))
    routes["max_prob"] = route("max_prob", RoutingInputs(logits=logits,
                                                         temperature=temperature))
    out = {name: {"routing": float((routed == true_task).mean()),
                  "tag": float((predicted[routed, samples] == y).mean())}
           for name, routed in routes.items()}
    out.update({name: {"routing": float("nan"), "tag": float((guess == y).mean())}
                for name, guess in tag_of.items()})
    out["taw"] = {"routing": 1.0, "tag": float((predicted[true_task, samples] == y).mean())}
    return out


def mixture_prediction(logits, features, stats, lows) -> np.ndarray:
    """argmax over every class seen of sum_t P(t|x) softmax(z_t)_y."""
    scores = pairwise_scores(features, [s.spaces for s in stats])
    share = scores / np.maximum(scores.sum(0), 1e-12)  # [T, n], each column sums to 1
    probs = softmax(logits) * share[..., None]  # [T, n, c]
    flat = np.transpose(probs, (1, 0, 2)).reshape(logits.shape[1], -1)
    best = flat.argmax(1)
    return lows[best // logits.shape[2]] + best % logits.shape[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--spaces", type=int, default=16)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--densities", action="store_true",
                        help="also pairwise with the other density models (slower)")
    args = parser.parse_args(argv)
    results = {}
    for run_dir in args.runs:
        results[str(run_dir)] = score_run(load_run(run_dir), args.spaces,
                                             args.densities)
        print(f"{run_dir}: " + ", ".join(f"{k} {v['routing']:.3f}/{v['tag']:.3f}"
                                         for k, v in results[str(run_dir)].items()),
              file=sys.stderr)
    names = list(next(iter(results.values())))
    print("| rule | routing | TAg |\n|---|---|---|")
    for name in names:
        r = [v[name]["routing"] * 100 for v in results.values()]
        t = [v[name]["tag"] * 100 for v in results.values()]
        print(f"| {name} | {np.mean(r):.1f} | {np.mean(t):.1f} ± {np.std(t):.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"spaces": args.spaces, "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
