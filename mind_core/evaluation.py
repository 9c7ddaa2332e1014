"""Evaluation after a task: every learned sub-network on the test data of tasks 0..t, and the
running history of results that becomes metrics.json."""

from __future__ import annotations

from typing import Any

import attrs

from mind_core import masks
from mind_core.config import RunConfig
from mind_core.data.base import Dataset
from mind_core.metrics import Evaluation, evaluate_logits, summary
from mind_core.plan import Plan
from mind_core.protocol import Backend, Subnet
from mind_core.routing import PAPER_RULE, TaskStats
from mind_core.schedule import TaskData, test_set


def subnets_for(owner, bn_snapshots, plan: Plan,
                class_ranges: list[tuple[int, int]]) -> list[Subnet]:
    """One Subnet per learned task (class_ranges[j]: task j's classes)."""
    latest = len(bn_snapshots) - 1
    return [Subnet(gates=masks.gates(owner, j, plan.weight_sharing),
                   bn=bn_snapshots[plan.bn_for_inference(j, latest)],
                   class_range=class_range)
            for j, class_range in enumerate(class_ranges)]


def evaluate_task(backend: Backend, model, tasks: list[TaskData], owner, bn_snapshots,
                  plan: Plan, cfg: RunConfig, dataset: Dataset,
                  stats: list[TaskStats] | None = None) -> Evaluation:
    """Evaluate the model after learning tasks[-1] (t + 1 forward passes per sample). With
    one TaskStats per task, the features come from the same passes and every routing rule is
    scored; without, the score-only rules."""
    x, y, true_task = test_set(tasks)
    subnets = subnets_for(owner, bn_snapshots, plan, [t.class_range for t in tasks])
    out = backend.predict(model, x, subnets, cfg.inference.batch_size, dataset.mean,
                          dataset.std, features=stats is not None)
    logits, features = out if stats is not None else (out, None)
    return evaluate_logits(logits, y, true_task, [t.class_range for t in tasks],
                           cfg.inference.temperature, cfg.inference.routing, features, stats)


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
