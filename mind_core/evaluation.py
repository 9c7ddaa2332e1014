"""Evaluation after a task: every learned sub-network on the test data of tasks 0..t (MIND),
or the one head of a single-head baseline; and the running history of results that becomes
metrics.json. Also what the MIND loop measures and fits at a task's end besides: its teacher's
accuracy and its routing statistics."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from mind_core import masks
from mind_core.config import RunConfig
from mind_core.data.base import Dataset
from mind_core.metrics import Evaluation, evaluate_logits, summary
from mind_core.numerics import softmax
from mind_core.plan import Plan, derive_seed
from mind_core.protocol import Backend, Subnet
from mind_core.routing import PAPER_RULE
from mind_core.schedule import TaskData, test_labels, test_set
from mind_core.spaces import space_ids
from mind_core.task_stats import TaskStats, fit_stats
from mind_core.views import Views


def subnets_for(owner, bn_snapshots, plan: Plan,
                class_ranges: list[tuple[int, int]]) -> list[Subnet]:
    """One Subnet per learned task (class_ranges[j]: task j's classes)."""
    latest = len(bn_snapshots) - 1
    return [Subnet(gates=masks.gates(owner, j, plan.weight_sharing),
                   bn=bn_snapshots[plan.bn_for_inference(j, latest)],
                   class_range=class_range)
            for j, class_range in enumerate(class_ranges)]


Block = tuple[np.ndarray, np.ndarray | None]  # one sub-network on one task's test data


def evaluate_task(backend: Backend, model, tasks: list[TaskData], owner, bn_snapshots,
                  plan: Plan, cfg: RunConfig, dataset: Dataset,
                  stats: list[TaskStats] | None = None,
                  memo: dict[tuple[int, int], Block] | None = None) -> Evaluation:
    """Evaluate the model after learning tasks[-1] (t + 1 forward passes per sample). With
    one TaskStats per task, the features come from the same passes and every routing rule is
    scored; without, the score-only rules. memo (kept by the caller across tasks) saves the
    blocks of sub-networks that can no longer change (predict_blocks)."""
    y, true_task = test_labels(tasks)
    subnets = subnets_for(owner, bn_snapshots, plan, [t.class_range for t in tasks])
    logits, features = predict_blocks(
        backend, model, [t.x_test for t in tasks], subnets, cfg, dataset, stats is not None,
        memo if plan.subnets_final_once_learned else None)
    return evaluate_logits(logits, y, true_task, [t.class_range for t in tasks],
                           cfg.inference.temperature, cfg.inference.routing, features, stats)


def predict_blocks(backend: Backend, model, test_sets: list[np.ndarray], subnets: list[Subnet],
                   cfg: RunConfig, dataset: Dataset, features: bool,
                   memo: dict[tuple[int, int], Block] | None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """Every sub-network j on every task i's test images, one predict per block (j, i), laid
    out as one predict of the concatenated test sets: logits [s, n, classes] and, with
    features, [views, s, n, d]. A block is always computed alone, so a remembered one is bit
    for bit what computing it again gives (after a resume too). With a memo, every block is
    remembered: the caller passes one only while every sub-network evaluated is final
    (Plan.subnets_final_once_learned), which makes the evaluation after task t compute
    2t + 1 blocks instead of (t + 1)^2."""
    views = Views.from_config(cfg)
    # A task without test images adds nothing; with none at all, one (empty) block each.
    indices = [i for i, x in enumerate(test_sets) if len(x)] or [0]
    rows: list[list[Block]] = []
    for j, subnet in enumerate(subnets):
        row = []
        for i in indices:
            x = test_sets[i]
            block = None if memo is None else memo.get((j, i))
            if block is None or (features and block[1] is None):
                out = views.predict(backend, model, x, [subnet], cfg.inference.batch_size,
                                    dataset.mean, dataset.std, features=features)
                logits, feats = out if features else (out, None)
                block = (np.asarray(logits)[0], None if feats is None
                         else np.asarray(feats)[:, 0])
                if memo is not None:
                    memo[(j, i)] = block
            row.append(block)
        rows.append(row)
    logits = np.stack([np.concatenate([b[0] for b in row]) for row in rows])
    if not features:
        return logits, None
    return logits, np.stack([np.concatenate([b[1] for b in row], axis=1) for row in rows],
                            axis=1)


def teacher_accuracy(backend: Backend, teacher, layers, task: TaskData, cfg: RunConfig,
                     dataset: Dataset) -> float | None:
    """A trained teacher's accuracy on its task's test data (within the task's classes), to
    compare its student with; None without a teacher or test data. layers: the model's
    (backend.layers), which the teacher shares."""
    if teacher is None or not len(task.x_test):
        return None
    dense = {layer.name: np.ones(layer.shape, bool) for layer in layers}
    subnet = Subnet(gates=dense, bn=backend.get_bn(teacher), class_range=task.class_range)
    logits = Views.from_config(cfg).predict(backend, teacher, task.x_test, [subnet],
                                            cfg.inference.batch_size, dataset.mean, dataset.std)
    return float(np.mean(logits[0].argmax(axis=1) + task.class_range[0] == task.y_test))


def fit_routing_stats(backend: Backend, model, tasks: list[TaskData], owner, bn_snapshots,
                      plan: Plan, cfg: RunConfig, dataset: Dataset) -> TaskStats:
    """Routing statistics of the task just learned, t (tasks[-1]), from its training data
    while it is at hand: in sub-network t's own space, and in the first stats.spaces
    sub-networks' (all frozen now, so these never go stale; mind_core.spaces)."""
    t, task = len(tasks) - 1, tasks[-1]
    spaces = sorted({*space_ids(t, cfg.stats.spaces), t})
    subnets = subnets_for(owner, bn_snapshots, plan, [task.class_range for task in tasks])
    features = Views.from_config(cfg).features(backend, model, task.x_train,
                                               [subnets[j] for j in spaces],
                                               cfg.inference.batch_size, dataset.mean,
                                               dataset.std, cfg.stats.views)
    return fit_stats(features, spaces, t, task.y_train, task.class_range,
                     derive_seed(cfg.seed, "stats", t), cfg.stats.spaces, cfg.stats.covariance,
                     cfg.stats.transform)


def evaluate_single_head(backend: Backend, model, tasks: list[TaskData], bn, cfg: RunConfig,
                         dataset: Dataset) -> Evaluation:
    """A single-head baseline after tasks[-1]: one dense network, its latest BN. TAw is the
    argmax within the true task's classes, TAg the argmax over every class seen; there is no
    routing rule, so the task whose classes hold the winning logit counts as the "routing"."""
    x, y, true_task = test_set(tasks)
    ranges = [task.class_range for task in tasks]
    logits = backend.predict(model, x, dense_subnets(backend, model, bn, ranges),
                             cfg.inference.batch_size, dataset.mean, dataset.std)
    scored = evaluate_logits(logits, y, true_task, ranges, cfg.inference.temperature)
    return attrs.evolve(scored, routing_rule=SINGLE_HEAD, rules={},
                        **single_head_tag(logits, y, true_task, ranges))


SINGLE_HEAD = "single_head"  # metrics.json's routing_rule of a baseline


def dense_subnets(backend: Backend, model, bn, class_ranges) -> list[Subnet]:
    """The whole network once per task, each over that task's classes: side by side, the
    slices are the one head."""
    dense = {layer.name: np.ones(layer.shape, dtype=bool) for layer in backend.layers(model)}
    return [Subnet(gates=dense, bn=bn, class_range=r) for r in class_ranges]


def single_head_choice(logits: np.ndarray, class_ranges: list[tuple[int, int]]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(task, class, probability) per sample: the argmax over the slices [T, n, c] laid side
    by side, and its softmax probability over every class seen."""
    num_tasks, n, width = logits.shape
    flat = np.transpose(logits, (1, 0, 2)).reshape(n, num_tasks * width).astype(np.float64)
    best = flat.argmax(axis=1)
    routed = best // width
    predicted = np.array([lo for lo, _ in class_ranges], dtype=np.int64)[routed] + best % width
    probabilities = softmax(flat)[np.arange(n), best] if n else np.zeros(0)
    return routed.astype(np.int64), predicted, probabilities


def single_head_tag(logits: np.ndarray, labels: np.ndarray, true_tasks: np.ndarray,
                    class_ranges: list[tuple[int, int]]) -> dict[str, Any]:
    num_tasks, n = logits.shape[:2]
    routed, predicted, _ = single_head_choice(logits, class_ranges)
    tag_ok, route_ok = predicted == labels, routed == true_tasks
    confusion = np.zeros((num_tasks, num_tasks), dtype=np.int64)
    np.add.at(confusion, (true_tasks, routed), 1)

    def per_task(ok: np.ndarray) -> list[float]:
        return [float(ok[true_tasks == j].mean()) if (true_tasks == j).any() else float("nan")
                for j in range(num_tasks)]
    tag = float(tag_ok.mean()) if n else float("nan")
    return {"tag": tag, "tag_entropy": tag,
            "routing": float(route_ok.mean()) if n else float("nan"),
            "per_task_tag": per_task(tag_ok), "per_task_routing": per_task(route_ok),
            "confusion": [[int(v) for v in row] for row in confusion]}


@attrs.define
class History:
    """One Evaluation per finished task, in order."""

    rows: list[dict[str, Any]] = attrs.Factory(list)

    def add(self, evaluation: Evaluation) -> None:
        self.rows.append(attrs.asdict(evaluation))

    def to_json(self) -> list[dict[str, Any]]:
        return self.rows

    @classmethod
    def from_json(cls, rows: list[dict[str, Any]]) -> History:
        return cls(rows=list(rows))

    def _matrix(self, key: str) -> list[list[float]]:
        return [list(row[key]) for row in self.rows]

    def event_fields(self) -> dict[str, Any]:
        last = self.rows[-1]
        return {"tag": last["tag"], "taw": last["taw"], "routing": last["routing"],
                "tag_entropy": last["tag_entropy"],
                "routing_rule": last.get("routing_rule", PAPER_RULE),
                "rules": last.get("rules", {}), "teacher_taw": last.get("teacher_taw"),
                "per_task_tag": last["per_task_tag"],
                "per_task_taw": last["per_task_taw"],
                "per_task_routing": last["per_task_routing"],
                "acc_matrix_tag": self._matrix("per_task_tag"),
                "acc_matrix_taw": self._matrix("per_task_taw")}

    def metrics(self) -> dict[str, Any]:
        """metrics.json's content."""
        if not self.rows:
            return {"tasks_done": 0, "final": {}}
        return summary([Evaluation(**row) for row in self.rows])
