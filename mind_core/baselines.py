"""The single-head baselines MIND is compared with, as runs of their own (method = finetune |
joint | lwf | ewc): one dense network with one head that grows by each task's classes, trained
with the teacher phase's recipe (teacher.epochs, lr, milestones, batch size). They reuse the
MIND engine's run directory, events, resume checkpoints and evaluation; docs/baselines.md
gives each one's formulation and where its hyper-parameters come from.

finetune  task after task on the new data only, cross-entropy over the current task's classes
          with the old classifier rows frozen (FACIL's exemplar-free protocol).
joint     (upper bound) after task t a fresh network trained on the data of tasks 0..t.
lwf       finetune plus lwf.weight x KL between the previous network's and this one's
          softened (T = lwf.temperature) logits of the old classes (Li and Hoiem, 2016).
ewc       finetune plus ewc.weight / 2 x sum F (w - w_old)^2 over every parameter but the
          classifier's (BN gamma and beta included): F is the diagonal Fisher of the tasks so
          far, merged from 0 as alpha F_old + (1 - alpha) F_new (Kirkpatrick et al., 2017, as
          FACIL computes it).
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from mind_core.backend_checks import anchorable_values
from mind_core.config import RunConfig
from mind_core.engine import PHASES, Engine
from mind_core.evaluation import evaluate_single_head
from mind_core.plan import derive_seed, phase_spec
from mind_core.protocol import Penalty, PhaseSpec
from mind_core.schedule import task_started_fields

SINGLE_HEAD_MASKING = "slice"  # the head is the classes seen so far; the rest do not exist yet


def engine_class(cfg: RunConfig) -> type[Engine]:
    """The loop a run trains with."""
    return Engine if cfg.method == "mind" else BaselineEngine


def seen_range(cfg: RunConfig, class_range: tuple[int, int]) -> tuple[int, int]:
    """Every class seen up to a task: (0, hi) when tasks add classes, the task's own when
    every task has every class (domain-incremental)."""
    return (0, class_range[1]) if cfg.scenario == "class" else class_range


class BaselineEngine(Engine):
    """Per task: train (state phase "teacher", the teacher recipe), then evaluate."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # One dense network: every weight is task 0's, so every gate is all of it.
        self.owner = {name: np.zeros_like(o) for name, o in self.owner.items()}

    def _run_task(self, t: int) -> None:
        st = self.state
        if st.phase not in PHASES:
            raise ValueError(f"unknown loop phase {st.phase!r}")
        if st.phase == "teacher":
            if st.next_epoch == 0:
                self.events.emit("task_started", task=t, tasks=self.cfg.tasks,
                                 **task_started_fields(self.task_data[t],
                                                       self.dataset.class_names))
                self._start_task(t)
            self._train_task(t)
            self.bn_snapshots.append(self.backend.get_bn(self.model))
            if self.cfg.method == "ewc":
                self._update_importance(t)
            self.teacher = None
            st.phase, st.next_epoch = "evaluate", 0
        if st.phase == "evaluate":
            self.events.emit("phase_started", task=t, phase="evaluate", epochs=0)
            self._evaluate_single_head(t)
            st.task, st.phase, st.next_epoch = t + 1, "teacher", 0
            self._save_task_checkpoint(t)
            self._write_metrics()  # after the checkpoint, as the MIND loop
            self._save_resume()
        elif st.phase in ("allocate", "distill"):
            raise ValueError(f"a {self.cfg.method} run has no {st.phase} step")
        self._check_stop()

    def _start_task(self, t: int) -> None:
        method = self.cfg.method
        if method == "joint" and t > 0:  # a fresh network every task, trained on all the data
            self.model = self.backend.build_model(self.spec, derive_seed(self.cfg.seed, "model"))
        if method in ("lwf", "ewc") and t > 0:  # the network as it was after task t - 1
            self.teacher = self.backend.build_model(self.spec, 0)
            self.backend.set_weights(self.teacher, self.backend.get_weights(self.model))
            self.backend.set_bn(self.teacher, self.backend.get_bn(self.model))

    def _task_data(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        seen = self.task_data[:t + 1] if self.cfg.method == "joint" else [self.task_data[t]]
        if len(seen) == 1:
            return seen[0].x_train, seen[0].y_train
        return (np.concatenate([task.x_train for task in seen]),
                np.concatenate([task.y_train for task in seen]))

    def _phase(self, t: int) -> PhaseSpec:
        cfg = self.cfg
        class_range = self.task_data[t].class_range
        # The old classes: those of earlier tasks, or every class when each task has them all.
        old = (0, class_range[0]) if cfg.scenario == "class" else class_range
        # FACIL's exemplar-free protocol: the cross-entropy of the current task's head only
        # (joint, trained on every task's data, uses every class seen).
        ce_range = seen_range(cfg, class_range) if cfg.method == "joint" else class_range
        spec = phase_spec(cfg, "teacher", ce_range,
                          train_bn=True, mean=self.dataset.mean, std=self.dataset.std,
                          augment=self.dataset.augment, with_teacher=False)
        spec = attrs.evolve(spec, logit_masking=SINGLE_HEAD_MASKING)
        if cfg.method == "lwf" and self.teacher is not None and old[1] > old[0]:
            spec = attrs.evolve(spec, kind="distill", beta=cfg.lwf.weight, loss="kl",
                                distill_range=old, distill_temperature=cfg.lwf.temperature)
        return spec

    def _train_task(self, t: int) -> None:
        x, y = self._task_data(t)
        spec = self._phase(t)
        penalty = None
        if self.cfg.method == "ewc" and self.teacher is not None and self.importance:
            values = anchorable_values(self.backend.get_weights(self.teacher),
                                       self.backend.get_bn(self.teacher))
            penalty = Penalty(weight=self.cfg.ewc.weight,
                              anchor={name: values[name] for name in self.importance},
                              importance=self.importance)
        self.backend.set_gates(self.model, None)
        teacher = self.teacher if spec.distils else None
        self._run_phase(t, "teacher", spec, self.model, self._trainable(t), teacher, x, y,
                        penalty)

    def _trainable(self, t: int) -> dict[str, np.ndarray] | None:
        """Everything but the old tasks' classifier rows (0, lo), which FACIL's exemplar-free
        protocol leaves out of the optimiser: no step and no weight decay moves them. None
        (all of it) for joint, and where there are no old rows."""
        lo = self.task_data[t].class_range[0]
        if self.cfg.method == "joint" or lo == 0:
            return None
        trainable = {layer.name: np.ones(layer.shape, bool) for layer in self.layers}
        for layer in self.layers:
            if layer.classifier:  # rows are classes, for the weight and its bias alike
                trainable[layer.name][:lo] = False
        return trainable

    def _update_importance(self, t: int) -> None:
        """Merge task t's Fisher into the importance EWC anchors the next tasks with. As
        FACIL: on the task's training data in a seeded shuffled order (its loader shuffles;
        BN's batch statistics depend on which samples share a batch), the labels the model
        predicts, every class seen; every parameter but the classifier's (FACIL keeps none
        for its heads)."""
        task = self.task_data[t]
        order = np.random.default_rng(derive_seed(self.cfg.seed, "fisher", t)).permutation(
            len(task.x_train))
        self.backend.set_gates(self.model, None)
        fisher = self.backend.fisher(self.model, task.x_train[order], None,
                                     seen_range(self.cfg, task.class_range),
                                     self.cfg.teacher.batch_size, self.dataset.mean,
                                     self.dataset.std)
        head = {layer.name for layer in self.layers if layer.classifier}
        fisher = {name: f for name, f in fisher.items() if name not in head}
        # FACIL starts the running importance at 0, so task 0's merge already weighs its
        # Fisher by 1 - alpha.
        alpha = np.float32(self.cfg.ewc.alpha)
        old = self.importance or {name: np.zeros_like(f) for name, f in fisher.items()}
        self.importance = {name: (alpha * old[name] + (1 - alpha) * f).astype(np.float32)
                           for name, f in fisher.items()}

    def _evaluate_single_head(self, t: int) -> None:
        evaluation = evaluate_single_head(self.backend, self.model, self.task_data[:t + 1],
                                          self.bn_snapshots[-1], self.cfg, self.dataset)
        self.state.history.add(evaluation)
        self.events.emit("evaluated", task=t, **self.state.history.event_fields())
