"""A trained run on new images: the run's routing rule picks a sub-network for each image and
that sub-network names the class (task-agnostic prediction, no task id needed).

Everything comes from the run directory: config.json (settings, and the data's image shape,
classes and normalisation under "data") and the last task checkpoint (weights, ownership,
BN snapshots, routing statistics). Runs written before "data" was recorded load their dataset
once for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from mind_core.checkpoint_match import check_fit
from mind_core.data.base import DatasetError
from mind_core.data.checks import as_images
from mind_core.evaluation import SINGLE_HEAD, dense_subnets, single_head_choice, subnets_for
from mind_core.numerics import softmax
from mind_core.plan import Plan, derive_seed, model_spec
from mind_core.registry import get_backend
from mind_core.routing import RoutingInputs, check_rule, route
from mind_core.run_checkpoints import finished_tasks
from mind_core.run_data import read_data_facts
from mind_core.runner import (
    adopt,
    check_rule_available,
    eval_config,
    load_dataset,
    read_run_config,
    trusted_backend,
)
from mind_core.schedule import class_ranges, original_labels
from mind_core.views import Views


@attrs.frozen(kw_only=True, eq=False)
class Predictions:
    classes: np.ndarray  # int64 [n]: the dataset's own class ids
    tasks: np.ndarray  # int64 [n]: the task (sub-network) the routing rule chose
    scores: np.ndarray  # float64 [n]: that sub-network's softmax probability of the class
    class_names: tuple[str, ...]  # of every class id

    def names(self) -> list[str]:
        return [self.class_names[c] for c in self.classes]


def run_data_facts(run_dir: Path, cfg, load: Callable = load_dataset) -> dict[str, Any]:
    """config.json's "data", or the dataset's own facts for a run made before it was kept."""
    saved = read_data_facts(run_dir)  # checked: a file's numbers normalise every image
    if saved is not None:
        return saved
    return load(cfg.dataset, cfg.data_dir or None).facts()


class Predictor:
    """The final sub-networks of a run, ready to classify images of the run's shape."""

    def __init__(self, run_dir: Path, backend: str | None = None, device: str | None = None,
                 network: Any = None, load: Callable = load_dataset,
                 overrides: Mapping[str, str] | None = None):
        """overrides: inference settings to predict with instead of the run's own."""
        run_dir = Path(run_dir)
        self.cfg = cfg = eval_config(read_run_config(run_dir), overrides)
        backend_name = trusted_backend(cfg, run_dir, backend, "predict")
        paths, (ckpt,) = finished_tasks(run_dir, cfg, "predict with", last_only=True)
        path, learned = paths[-1], len(paths)
        self.single_head = cfg.method != "mind"  # a baseline: one head, no routing rule
        self.rule = check_rule(cfg.inference.routing)
        self.rule_name = SINGLE_HEAD if self.single_head else self.rule.name
        if not self.single_head:
            check_rule_available(cfg, ckpt.stats if len(ckpt.stats) == learned else None,
                                 run_dir)
        facts = run_data_facts(run_dir, cfg, load)
        self.image_shape = tuple(int(v) for v in facts["image_shape"])
        num_classes = int(facts["num_classes"])
        self.mean, self.std = tuple(facts["mean"]), tuple(facts["std"])
        names = facts.get("class_names") or [str(c) for c in range(num_classes)]
        self.class_names = tuple(str(n) for n in names)
        self.backend = get_backend(backend_name, device or cfg.device)
        adopt(self.backend, network, cfg, self.image_shape, num_classes)
        self.model = self.backend.build_model(
            model_spec(cfg, self.image_shape, num_classes), derive_seed(cfg.seed, "model"))
        expected = {layer.name: layer.shape for layer in self.backend.layers(self.model)}
        check_fit(ckpt, path, expected, self.backend.get_bn(self.model),
                  f"a {cfg.model} model for {facts.get('name', cfg.dataset)}")
        self.backend.set_weights(self.model, ckpt.weights)
        self.ranges = class_ranges(num_classes, cfg.tasks, cfg.scenario)[:learned]
        self.subnets = (dense_subnets(self.backend, self.model, ckpt.bn_snapshots[-1],
                                      self.ranges) if self.single_head else
                        subnets_for(ckpt.owner, ckpt.bn_snapshots, Plan.from_config(cfg),
                                    self.ranges))
        self.stats = ckpt.stats if self.rule.needs_stats and not self.single_head else None
        self.original = original_labels(num_classes, cfg.scenario, cfg.seed)
        self.views = Views.from_config(cfg)  # label augmentation: scores summed over views

    def predict(self, images: np.ndarray, batch_size: int | None = None) -> Predictions:
        """Classify uint8 images [n, h, w] or [n, h, w, c] of the run's image shape."""
        x = as_images(images, "images")
        if tuple(x.shape[1:]) != self.image_shape:
            raise DatasetError(f"images are {_shape(x.shape[1:])} but the run was trained on "
                               f"{_shape(self.image_shape)} images")
        out = self.views.predict(
            self.backend, self.model, x, self.subnets,
            self.cfg.inference.batch_size if batch_size is None else batch_size, self.mean,
            self.std, features=self.stats is not None)
        logits, features = out if self.stats is not None else (out, None)
        logits = np.asarray(logits, dtype=np.float64)
        if self.single_head:
            routed, relabelled, scores = single_head_choice(logits, self.ranges)
            return Predictions(classes=self.original[relabelled].astype(np.int64),
                               tasks=routed, scores=scores, class_names=self.class_names)
        temperature = self.cfg.inference.temperature
        routed = route(self.rule.name, RoutingInputs.of_views(logits, temperature, features,
                                                              self.stats))
        chosen = logits[routed, np.arange(len(x))]  # [n, c]: the routed sub-network's logits
        within = chosen.argmax(axis=-1)
        lows = np.array([lo for lo, _ in self.ranges], dtype=np.int64)
        probabilities = softmax(chosen / temperature)
        return Predictions(classes=self.original[lows[routed] + within].astype(np.int64),
                           tasks=routed.astype(np.int64),
                           scores=probabilities[np.arange(len(x)), within],
                           class_names=self.class_names)


def _shape(shape) -> str:
    return "x".join(str(int(v)) for v in shape)
