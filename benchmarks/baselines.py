"""The methods the accuracy benchmark compares, all over the same Backend protocol and data.

- MIND, PackNet, self-distillation and every ablation are configurations of the one engine:
  ENGINE_METHODS maps each name to its `key=value` config overrides.
- finetune and joint are one dense model trained with cross-entropy (the teacher phase's
  recipe: epochs, lr, milestones, batch size, logit masking). finetune: task after task with
  no protection. joint (upper bound): after task t a fresh model trained on the union of the
  training data of tasks 0..t. Both are evaluated by backend.predict with one identical dense
  sub-network per seen task; TAw takes the argmax within the true task's slice, TAg the argmax
  over the concatenation of every slice (one head has no routing rule: the task whose slice
  holds the winning logit is reported as its "routing", and tag_entropy equals tag).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from mind_core.config import RunConfig
from mind_core.data.base import Dataset
from mind_core.engine import Engine
from mind_core.evaluation import History
from mind_core.metrics import Evaluation, evaluate_logits
from mind_core.plan import derive_seed, model_spec, phase_spec
from mind_core.protocol import Backend, Subnet
from mind_core.schedule import TaskData, make_tasks, test_set

# Outlier Exposure's weight for its auxiliary uniform-target loss (Hendrycks, Mazeika and
# Dietterich, ICLR 2019, lambda = 0.5); not tuned here.
OUTLIER_WEIGHT = 0.5

ENGINE_METHODS: dict[str, list[str]] = {
    "mind": [],
    "packnet": ["variant=packnet"],
    "self_distill": ["variant=self_distill"],
    "no_distill": ["distillation.beta=0"],
    "shared_bn": ["bn=shared"],
    "no_sharing": ["allocation.weight_sharing=false"],
    "loss_true_js": ["distillation.loss=true_js"],
    "loss_kl": ["distillation.loss=kl"],
    "loss_cosine": ["distillation.loss=cosine"],
    "loss_l2": ["distillation.loss=l2"],
    # Students (beyond the paper): where newly owned weights start, routing-aware training.
    "init_teacher": ["allocation.init=teacher"],
    "init_scaled_normal": ["allocation.init=scaled_normal"],
    "outliers": [f"distillation.outlier_weight={OUTLIER_WEIGHT}"],
    "teacher_outliers": ["allocation.init=teacher",
                         f"distillation.outlier_weight={OUTLIER_WEIGHT}"],
}
DENSE_METHODS = ("finetune", "joint")
METHODS = ("mind", "finetune", "joint", *[m for m in ENGINE_METHODS if m != "mind"])


def method_overrides(method: str) -> list[str]:
    """Config overrides of an engine method; [] for the dense baselines."""
    if method in DENSE_METHODS:
        return []
    if method not in ENGINE_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    return list(ENGINE_METHODS[method])


def run_method(method: str, cfg: RunConfig, backend: Backend, dataset: Dataset) -> dict[str, Any]:
    """Run one method to the end; returns metrics.json's shape (mind_core.evaluation.History).
    cfg must already include method_overrides(method)."""
    if method in DENSE_METHODS:
        return run_dense(cfg, backend, dataset, joint=method == "joint")
    method_overrides(method)  # validates the name
    return Engine(cfg, backend, dataset).run()


def run_dense(cfg: RunConfig, backend: Backend, dataset: Dataset, joint: bool) -> dict[str, Any]:
    tasks = make_tasks(dataset, cfg.tasks, cfg.scenario, cfg.seed)
    spec = model_spec(cfg, dataset.image_shape, dataset.num_classes)
    history = History()
    model = None
    for t, task in enumerate(tasks):
        if joint or model is None:
            model = backend.build_model(spec, derive_seed(cfg.seed, "model"))
        backend.set_gates(model, None)
        seen = tasks[:t + 1] if joint else [task]
        x = np.concatenate([s.x_train for s in seen])
        y = np.concatenate([s.y_train for s in seen])
        class_range = (min(s.class_range[0] for s in seen), max(s.class_range[1] for s in seen))
        phase = phase_spec(cfg, "teacher", class_range, train_bn=True, mean=dataset.mean,
                           std=dataset.std, augment=dataset.augment, with_teacher=False)
        trainer = backend.start_phase(model, phase, None)
        for epoch in range(phase.epochs):
            backend.train_epoch(trainer, x, y, epoch, derive_seed(cfg.seed, "teacher", t, epoch))
        history.add(evaluate_dense(backend, model, tasks[:t + 1], cfg, dataset))
    return history.metrics()


def evaluate_dense(backend: Backend, model: Any, tasks: list[TaskData], cfg: RunConfig,
                   dataset: Dataset) -> Evaluation:
    x, y, true_task = test_set(tasks)
    ranges = [task.class_range for task in tasks]
    dense = {layer.name: np.ones(layer.shape, dtype=bool) for layer in backend.layers(model)}
    bn = backend.get_bn(model)
    subnets = [Subnet(gates=dense, bn=bn, class_range=r) for r in ranges]
    logits = backend.predict(model, x, subnets, cfg.inference.batch_size, dataset.mean,
                             dataset.std)
    # One head routes by its argmax, not by a routing rule: TAw comes from the slices.
    scored = evaluate_logits(logits, y, true_task, ranges, cfg.inference.temperature)
    return attrs.evolve(scored, routing_rule="single_head", rules={},
                        **single_head_tag(logits, y, true_task, ranges))


def single_head_tag(logits: np.ndarray, labels: np.ndarray, true_tasks: np.ndarray,
                    class_ranges: list[tuple[int, int]]) -> dict[str, Any]:
    """TAg of one head: argmax over the slices [T, n, c] laid side by side."""
    num_tasks, n, width = logits.shape
    flat = np.transpose(logits, (1, 0, 2)).reshape(n, num_tasks * width).argmax(axis=1)
    routed = flat // width
    predicted = np.array([lo for lo, _ in class_ranges])[routed] + flat % width
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
