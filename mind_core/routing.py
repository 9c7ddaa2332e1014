"""Task routing: which sub-network answers a sample when its task is not known (TAg).

Every rule turns what the sub-networks computed for a batch (their logits over their own
classes and, for the statistics rules, their penultimate features) into one routed task per
sample. Rules that need per-task feature statistics read them from `TaskStats`, fitted at the
end of each task while its training data is at hand (mind_core.task_stats). The formulas are
in docs/routing.md; this module (the rules) and mind_core.task_stats (the statistics) are
their one implementation.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import numpy as np

from mind_core.gaussians import min_distance
from mind_core.numerics import log_softmax
from mind_core.spaces import has_spaces, pairwise_scores
from mind_core.task_stats import MIN_SAMPLES, RoutingError, TaskStats


# --------------------------------------------------------------------------- rules
@attrs.frozen(kw_only=True)
class RoutingInputs:
    """What the rules read: logits [T, n, c] (each sub-network over its own classes),
    optionally features [T, n, d] and one TaskStats per sub-network."""

    logits: np.ndarray
    temperature: float
    features: np.ndarray | None = None
    stats: list[TaskStats] | None = None
    # The features of the samples' other views [K-1, T, n, d] (label augmentation, view 1 on):
    # `pairwise` reads those the statistics model too (TaskStats.views).
    more_views: np.ndarray | None = None

    @classmethod
    def of_views(cls, logits: np.ndarray, temperature: float, features: np.ndarray | None,
                 stats: list[TaskStats] | None) -> RoutingInputs:
        """features [T, n, d], or [views, T, n, d] with the images as they are first."""
        if features is not None and np.ndim(features) == 4:
            more = features[1:] if len(features) > 1 else None
            return cls(logits=logits, temperature=temperature, features=features[0],
                       stats=stats, more_views=more)
        return cls(logits=logits, temperature=temperature, features=features, stats=stats)


NEEDS = ("logits", "stats", "spaces")
"""What a rule reads: the logits alone; also features and each task's statistics in its own
sub-network; also each task's statistics in other sub-networks' spaces (mind_core.spaces)."""


@attrs.frozen(kw_only=True)
class Rule:
    name: str
    needs: str  # one of NEEDS
    summary: str
    route: Callable[[RoutingInputs], np.ndarray]  # -> routed task per sample, int [n]

    @property
    def needs_stats(self) -> bool:
        return self.needs != "logits"


def _argmax(scores: np.ndarray) -> np.ndarray:
    """Highest score over tasks (axis 0); ties go to the lower task id."""
    return scores.argmax(axis=0)


def _confidence(inputs: RoutingInputs) -> np.ndarray:
    return log_softmax(inputs.logits / inputs.temperature).max(axis=-1)


def _route_entropy(inputs: RoutingInputs) -> np.ndarray:
    """Of the two most confident tasks per sample, the one with lower entropy."""
    confidence = _confidence(inputs)
    if confidence.shape[0] == 1:
        return np.zeros(confidence.shape[1], dtype=np.int64)
    log_p = log_softmax(inputs.logits / inputs.temperature)
    entropy = -(np.exp(log_p) * log_p).sum(axis=-1)
    ranked = np.argsort(-confidence, axis=0, kind="stable")
    first, second = ranked[0], ranked[1]
    samples = np.arange(confidence.shape[1])
    # Strictly lower: at equal entropy the more confident task keeps the sample.
    take_second = entropy[second, samples] < entropy[first, samples]
    return np.where(take_second, second, first)


def _energy(inputs: RoutingInputs) -> np.ndarray:
    scaled = inputs.logits / inputs.temperature
    top = scaled.max(axis=-1)
    return inputs.temperature * (top + np.log(np.exp(scaled - top[..., None]).sum(axis=-1)))


def standardised_distances(inputs: RoutingInputs) -> np.ndarray:
    """z_j = (log d_j - m_j) / s_j per task and sample [T, n]: how far beyond its own task's
    typical distance a sample lies, comparable across sub-networks."""
    if inputs.features is None or inputs.stats is None:
        raise RoutingError("this rule needs features and per-task statistics")
    out = np.empty(inputs.features.shape[:2])
    for j, stats in enumerate(inputs.stats):
        distance = min_distance(inputs.features[j], stats.means, stats.whiten)
        out[j] = (np.log(distance + 1e-12) - stats.calibration[2]) / stats.calibration[3]
    return out


def _route_pairwise(inputs: RoutingInputs) -> np.ndarray:
    if inputs.features is None or not inputs.stats or not stats_support(inputs.stats, "spaces"):
        raise RoutingError("this rule needs every task's statistics in the spaces it shares "
                           "with the others")
    modelled = min(len(s.views) for s in inputs.stats)
    given = 0 if inputs.more_views is None else len(inputs.more_views)
    more = [(inputs.more_views[k], [s.views[k] for s in inputs.stats])
            for k in range(min(modelled, given))]
    return _argmax(pairwise_scores(inputs.features, [s.spaces for s in inputs.stats], more))


RULES: dict[str, Rule] = {rule.name: rule for rule in (
    Rule(name="max_prob", needs="logits",
         summary="highest max softmax(logits / T) (the paper's rule)",
         route=lambda i: _argmax(_confidence(i))),
    Rule(name="entropy", needs="logits",
         summary="of the two most confident tasks, the lower entropy (the paper's alternative)",
         route=_route_entropy),
    Rule(name="max_logit", needs="logits", summary="highest maximum logit",
         route=lambda i: _argmax(i.logits.max(axis=-1))),
    Rule(name="energy", needs="logits", summary="highest T * logsumexp(logits / T)",
         route=lambda i: _argmax(_energy(i))),
    Rule(name="mahalanobis", needs="stats",
         summary="lowest standardised distance to the nearest class mean (feature statistics)",
         route=lambda i: _argmax(-standardised_distances(i))),
    Rule(name="pairwise", needs="spaces",
         summary="round robin of task pairs, each decided by likelihoods in a space both share",
         route=_route_pairwise),
)}
ROUTINGS = tuple(RULES)
# The paper's rule, and so the one a run routed with when its files name none (runs made
# before the rule was recorded).
PAPER_RULE = "max_prob"
SCORE_ONLY = tuple(name for name, rule in RULES.items() if rule.needs == "logits")


def stats_support(stats: list[TaskStats] | None, needs: str) -> bool:
    """Whether a run's statistics (one TaskStats per task, or None) give a rule what it needs."""
    if needs == "logits":
        return True
    if not stats:
        return False
    return needs == "stats" or has_spaces([s.spaces for s in stats])


def check_rule(name: str) -> Rule:
    if name not in RULES:
        raise RoutingError(f"inference.routing must be one of {', '.join(ROUTINGS)}; "
                           f"got {name!r}")
    return RULES[name]


def route(name: str, inputs: RoutingInputs) -> np.ndarray:
    rule = check_rule(name)
    if rule.needs_stats and (inputs.features is None
                             or not stats_support(inputs.stats, rule.needs)):
        raise RoutingError(f"routing rule {name!r} needs {MISSING[rule.needs]}, "
                           "which this run's checkpoints do not hold")
    return np.asarray(rule.route(inputs), dtype=np.int64)


MISSING = {"stats": "per-task feature statistics",
           "spaces": "every task's statistics in every sub-network's feature space (stats.spaces)"}
"""What a rule lacks when a run's checkpoints do not give it what it needs."""

WHY_MISSING = {
    "logits": "the run did not score it (it was made before the rule existed)",
    "stats": "the run's checkpoints hold no routing statistics (it was made before they were "
             "recorded; `mind eval RUN --refit-stats` fits them from its training data)",
    "spaces": "the run's checkpoints hold each task's statistics in its own sub-network only "
              "(stats.spaces was 0, or it was made before statistics in every sub-network; "
              "`mind eval RUN --refit-stats --set stats.spaces=16` fits them from its "
              "training data)"}
"""Why a finished run cannot score a rule, by what the rule needs: one line for the user."""


def why_unavailable(names: list[str]) -> str:
    """One line naming the rules a run cannot score and why, e.g. for `mind eval`."""
    # Without own-space statistics a run has none at all, whatever else a rule needs.
    none_at_all = any(RULES[name].needs == "stats" for name in names)
    groups: dict[str, list[str]] = {}
    for name in names:
        needs = "stats" if none_at_all and RULES[name].needs_stats else RULES[name].needs
        groups.setdefault(needs, []).append(name)
    return "; ".join(f"{', '.join(rules)} unavailable: {WHY_MISSING[needs]}"
                     for needs, rules in groups.items())


def available(stats: list[TaskStats] | None) -> tuple[str, ...]:
    """The rules a run's statistics (one TaskStats per task, or None) let it score."""
    return tuple(name for name, rule in RULES.items() if stats_support(stats, rule.needs))


def unavailable_rules(scored: dict) -> list[str]:
    """The rules an evaluation could not score (it had no statistics), in registry order."""
    return [name for name in ROUTINGS if name not in scored]


def check_enough_samples(rule: str, samples_per_task: list[int]) -> None:
    """A rule that needs statistics cannot route a run with a task too small to fit them."""
    smallest = min(samples_per_task, default=MIN_SAMPLES)
    if check_rule(rule).needs_stats and smallest < MIN_SAMPLES:
        task = samples_per_task.index(smallest)
        raise RoutingError(f"{rule} needs at least {MIN_SAMPLES} training "
                           f"samples per task to fit its statistics, task {task} has "
                           f"{smallest}: choose one of {', '.join(SCORE_ONLY)}")
