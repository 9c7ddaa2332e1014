"""The MIND loop over the Backend protocol: per task teacher -> allocate -> distill -> BN
snapshot -> evaluate -> checkpoint (docs/algorithm.md "One task, step by step").

The engine never opens a model: it moves numpy weights, ownership arrays, gates and BN
snapshots across the protocol. A resume checkpoint is written at every epoch boundary and after
every step, so an interrupted run loses at most the epoch in flight and, resumed, ends with the
same numbers as an uninterrupted one (all randomness is derived from the loop position).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from mind_core import checkpoint, masks
from mind_core.checkpoint_match import check_fit, check_run, trained_as
from mind_core.config import ConfigError, RunConfig, check_tasks_split
from mind_core.data.base import Dataset
from mind_core.evaluation import evaluate_task, fit_routing_stats, teacher_accuracy
from mind_core.events import EventLog, write_json_atomic
from mind_core.loop_state import PHASES, Diverged, Interrupted, LoopState
from mind_core.metrics import STUDENT_GAP
from mind_core.plan import Plan, derive_seed, model_spec, phase_spec
from mind_core.precision import backend_precision
from mind_core.protocol import Backend, Penalty, PhaseSpec, thread_counts
from mind_core.routing import RoutingError, check_enough_samples
from mind_core.run_checkpoints import stats_before
from mind_core.rundir import (
    CHECKPOINT_DIR,
    EVENTS,
    METRICS,
    RESUME_CHECKPOINT,
    STOP_FILE,
    task_checkpoint,
)
from mind_core.schedule import make_tasks, task_started_fields
from mind_core.task_stats import MIN_SAMPLES, TaskStats
from mind_core.views import Views


class Engine:
    def __init__(self, cfg: RunConfig, backend: Backend, dataset: Dataset,
                 run_dir: Path | None = None, observers: list[Callable] | None = None,
                 should_stop: Callable[[], bool] | None = None):
        check_tasks_split(cfg, dataset.num_classes,
                          None if dataset.domains_train is None
                          else int(dataset.domains_train.max()) + 1)
        self.cfg, self.backend, self.dataset = cfg, backend, dataset
        self.plan = Plan.from_config(cfg)
        self.run_dir = Path(run_dir) if run_dir else None
        self.ckpt_dir = self.run_dir / CHECKPOINT_DIR if self.run_dir else None
        self._external_stop = should_stop or (lambda: False)
        self.events = EventLog(self.run_dir / EVENTS if self.run_dir else None, observers)
        # The data of each task (cfg.tasks is their number).
        self.task_data = make_tasks(dataset, cfg.tasks, cfg.scenario, cfg.seed)
        self.spec = model_spec(cfg, dataset.image_shape, dataset.num_classes)
        self.views = Views.from_config(cfg)  # label augmentation: one row per (class, view)
        try:
            check_enough_samples(cfg.inference.routing,
                                 [len(t.x_train) for t in self.task_data])
        except RoutingError as exc:
            raise ConfigError("inference.routing", str(exc)) from None
        self.model = backend.build_model(self.spec, derive_seed(cfg.seed, "model"))
        self.layers = backend.layers(self.model)
        self.owner = masks.new_ownership(self.layers, cfg.tasks)
        self.bn_snapshots: list[dict] = []
        self.stats: list[TaskStats] = []  # routing statistics, one per finished task
        # Test-set outputs of finished sub-networks, which no later task changes: each task's
        # evaluation computes only its new ones (evaluation.predict_blocks).
        self.eval_memo: dict = {}
        # How many of them the last task checkpoint holds: the resume file, rewritten every
        # epoch, refers to that file for them instead of copying them again.
        self.stats_in_task_file = 0
        self.initial_bn = backend.get_bn(self.model)
        self.teacher: Any = None
        self.importance: dict[str, np.ndarray] | None = None  # EWC's (baselines.py)
        self.trainer_state: dict[str, np.ndarray] | None = None
        self.state = LoopState()

    # ------------------------------------------------------------------ public
    def should_stop(self) -> bool:
        stop_file = self.run_dir is not None and (self.run_dir / STOP_FILE).exists()
        return bool(self._external_stop() or stop_file)

    def restore(self, ckpt: checkpoint.Checkpoint, path: Path | str) -> None:
        """Continue from a resume checkpoint written by this engine (same config), read from
        `path` (its task files beside it give the statistics it leaves to them). A checkpoint
        that does not fit this run (task count, loop position, shapes) is a CheckpointError
        naming `path` and the field, before anything is changed."""
        self._check_fits(ckpt, path)
        kept = stats_before(ckpt, path)  # may fail too: before anything changes
        self.backend.set_weights(self.model, ckpt.weights)
        self.owner = {k: v.astype(self.owner[k].dtype) for k, v in ckpt.owner.items()}
        self.bn_snapshots = ckpt.bn_snapshots
        self.stats = kept + ckpt.stats
        self.stats_in_task_file = len(kept)
        self.backend.set_bn(self.model, ckpt.live_bn or self.initial_bn)
        self.state = LoopState.from_json(ckpt.state)
        self.trainer_state = ckpt.trainer
        self.importance = ckpt.importance
        if ckpt.teacher_weights is not None:
            self.teacher = self.backend.build_model(self.spec, 0)
            self.backend.set_weights(self.teacher, ckpt.teacher_weights)
            self.backend.set_bn(self.teacher, ckpt.teacher_bn or {})

    def _check_fits(self, ckpt: checkpoint.Checkpoint, path: Path | str) -> None:
        cfg = self.cfg
        check_run(ckpt, path, cfg.tasks, resume=True,
                  epochs={"teacher": cfg.teacher.epochs, "distill": cfg.distill.epochs})
        lo, hi = self.task_data[0].class_range
        if ckpt.classes_per_task and ckpt.classes_per_task != hi - lo:
            raise checkpoint.CheckpointError(
                f"{path}: metadata 'classes_per_task' is {ckpt.classes_per_task} but the run "
                f"has {hi - lo} classes per task")
        check_fit(ckpt, path, {layer.name: tuple(layer.shape) for layer in self.layers},
                  self.initial_bn, f"a {cfg.model} model")

    def run(self, resumed: bool = False) -> dict[str, Any]:
        cfg = self.cfg
        start = time.time()
        self.events.emit("run_started", name=cfg.name, backend=cfg.backend,
                         dataset=cfg.dataset, tasks=cfg.tasks, variant=cfg.variant,
                         method=cfg.method, model=cfg.model, pid=_pid(), resumed=resumed,
                         device=self.backend.device, threads=thread_counts(self.backend),
                         precision=backend_precision(self.backend))
        try:
            if not resumed:
                self._save_resume()  # so even a run stopped in its first epoch can resume
            while self.state.task < cfg.tasks:
                self._run_task(self.state.task)
            metrics = self._metrics()
            self.events.emit("run_finished", tag=metrics["final"]["tag"],
                             taw=metrics["final"]["taw"], routing=metrics["final"]["routing"],
                             seconds=round(time.time() - start, 2))
            return metrics
        except (Interrupted, KeyboardInterrupt):
            self.events.emit("run_failed", reason="interrupted",
                             message="stopped on request; continue with `mind resume`")
            raise
        except Diverged as exc:
            self.events.emit("run_failed", reason="diverged", task=exc.task, phase=exc.phase,
                             epoch=exc.epoch, message=str(exc))
            raise
        except BaseException as exc:
            self.events.emit("run_failed", reason="error", message=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.events.close()

    # ------------------------------------------------------------------ the loop
    def _run_task(self, t: int) -> None:
        st = self.state
        task = self.task_data[t]
        if st.phase not in PHASES:  # never loop for ever on a state no step handles
            raise ValueError(f"unknown loop phase {st.phase!r}; expected one of "
                             f"{', '.join(PHASES)}")
        if st.phase == "teacher":
            if st.next_epoch == 0:
                self.events.emit("task_started", task=t, tasks=self.cfg.tasks,
                                 **task_started_fields(task, self.dataset.class_names))
                self.teacher = self._new_teacher(t)
            self._train(t, "teacher", self.teacher, trainable=self._teacher_trainable())
            st.phase, st.next_epoch = "allocate", 0
        if st.phase == "allocate":
            st.teacher_taw = teacher_accuracy(self.backend, self.teacher, self.layers,
                                              self.task_data[t], self.cfg, self.dataset)
            self._allocate(t)
            st.phase, st.next_epoch = "distill", 0
            self._save_resume()
        if st.phase == "distill":
            if st.next_epoch == 0:
                self.backend.set_bn(self.model, self._bn_before(t))
            self.backend.set_gates(self.model, masks.gates(self.owner, t, self.plan.weight_sharing))
            self._train(t, "distill", self.model, trainable=masks.trainable(self.owner, t),
                        teacher=self.teacher)
            self.bn_snapshots.append(self.backend.get_bn(self.model))
            self.teacher = None
            st.phase, st.next_epoch = "evaluate", 0
        if st.phase == "evaluate":
            self._evaluate(t)
            st.task, st.phase, st.next_epoch = t + 1, "teacher", 0
            self._save_task_checkpoint(t)
            self._write_metrics()  # after the checkpoint: it claims no task that is not saved
            self._save_resume()
        self._check_stop()

    def _new_teacher(self, t: int) -> Any:
        if not self.plan.self_teacher:
            return self.backend.build_model(self.spec, derive_seed(self.cfg.seed, "teacher_init", t))
        weights = self.backend.get_weights(self.model)
        if self.plan.reinit_free and t > 0:
            rng = np.random.default_rng(derive_seed(self.cfg.seed, "reinit", t))
            free = masks.free(self.owner)
            weights = {k: np.where(free[k], masks.he_normal(w.shape, rng), w).astype(np.float32)
                       for k, w in weights.items()}
        teacher = self.backend.build_model(self.spec, 0)
        self.backend.set_weights(teacher, weights)
        self.backend.set_bn(teacher, self._bn_before(t))
        return teacher

    def _bn_before(self, t: int):
        """BN state every task starts from: the previous task's snapshot (fresh for task 0)."""
        return self.bn_snapshots[t - 1] if t else self.initial_bn

    def _teacher_trainable(self):
        return masks.free(self.owner) if self.plan.self_teacher else None

    def _train(self, t: int, kind: str, model: Any, trainable, teacher: Any = None) -> None:
        task = self.task_data[t]
        spec = phase_spec(self.cfg, kind, self.views.widen(task.class_range),
                          train_bn=self._trains_bn(t, kind),
                          mean=self.dataset.mean, std=self.dataset.std,
                          augment=self.views.backend_augment(self.dataset.augment),
                          with_teacher=teacher is not None)
        if kind == "teacher":
            self.backend.set_gates(model, None)
        teacher = teacher if spec.distils else None  # distillation.beta = 0: no teacher
        self._run_phase(t, kind, spec, model, trainable, teacher, task.x_train, task.y_train)

    def _run_phase(self, t: int, kind: str, spec: PhaseSpec, model: Any, trainable,
                   teacher: Any, x: np.ndarray, y: np.ndarray,
                   penalty: Penalty | None = None) -> None:
        """The epochs of one phase from state.next_epoch on, with a resume checkpoint after
        each; kind names the phase in events, seeds and the config (teacher.* / distill.*)."""
        self.events.emit("phase_started", task=t, phase=kind, epochs=spec.epochs)
        # Without a penalty, the call every backend knows (a module:Class backend written
        # before penalties existed still trains MIND).
        trainer = self.backend.start_phase(model, spec, trainable, teacher, penalty) \
            if penalty is not None else self.backend.start_phase(model, spec, trainable, teacher)
        if self.trainer_state is not None and self.state.next_epoch > 0:
            self.backend.load_trainer_state(trainer, self.trainer_state)
        self.trainer_state = None
        for epoch in range(self.state.next_epoch, spec.epochs):
            self._check_stop()
            x_epoch, y_epoch = self._epoch_data(t, kind, epoch, x, y)
            result = self.backend.train_epoch(
                trainer, x_epoch, y_epoch, epoch, derive_seed(self.cfg.seed, kind, t, epoch),
                progress=self._progress_fn(t, kind, epoch, spec.epochs),
                should_stop=self.should_stop)
            if result.stopped:
                raise Interrupted.of_run(self.run_dir)
            for value in (result.loss, result.ce, result.distill):
                if not math.isfinite(value):  # nothing of this epoch is saved
                    raise Diverged(t, kind, epoch, value, getattr(self.cfg, kind).lr)
            self.events.emit("epoch_ended", task=t, phase=kind, epoch=epoch, epochs=spec.epochs,
                             loss=result.loss, ce=result.ce,
                             # null when the phase has no distillation term (beta 0, teacher)
                             distill=result.distill if spec.distils else None,
                             accuracy=result.accuracy, lr=spec.lr_at(epoch),
                             seconds=round(result.seconds, 3),
                             images_per_s=round(result.images / max(result.seconds, 1e-9), 1))
            self.state.next_epoch = epoch + 1
            self._save_resume(trainer=self.backend.trainer_state(trainer))

    def _epoch_data(self, t: int, kind: str, epoch: int, x: np.ndarray, y: np.ndarray):
        """The images and labels of one epoch: with label augmentation, their views (drawn
        from the loop position, so a resumed run draws the same)."""
        if self.views.count == 1:
            return x, y
        return self.views.training_set(x, y, derive_seed(self.cfg.seed, f"{kind}_views", t, epoch),
                                       self.dataset.augment.hflip)

    def _trains_bn(self, t: int, kind: str) -> bool:
        fresh_teacher = kind == "teacher" and not self.plan.self_teacher
        return fresh_teacher or self.plan.train_bn(t)

    def _progress_fn(self, t: int, kind: str, epoch: int, epochs: int):
        started = time.time()

        def progress(batch: int, batches: int, loss: float) -> None:
            elapsed = time.time() - started
            per_batch = elapsed / max(batch, 1)
            remaining = (batches - batch) + (epochs - epoch - 1) * batches
            self.events.emit("progress", task=t, phase=kind, epoch=epoch, epochs=epochs,
                             batch=batch, batches=batches, loss=round(float(loss), 5),
                             eta_s=round(per_batch * remaining, 1))
        return progress

    def _allocate(self, t: int) -> None:
        self.events.emit("phase_started", task=t, phase="allocate", epochs=0)
        cfg, plan = self.cfg, self.plan
        teacher_weights = self.backend.get_weights(self.teacher) if self.teacher else None
        rng = np.random.default_rng(derive_seed(cfg.seed, "allocate", t))
        class_range = self.views.widen(self.task_data[t].class_range) \
            if cfg.scenario == "class" else None
        new_owner = masks.allocate(self.owner, t, layers=self.layers, num_tasks=cfg.tasks,
                                   mode=plan.allocation, rng=rng,
                                   teacher_weights=teacher_weights, class_range=class_range)
        weights = self.backend.get_weights(self.model)
        source = masks.initial_values(plan.init, t, weights, teacher_weights,
                                      plan.weight_sharing, rng)
        if source is not None:
            weights = masks.fill_owned(weights, source, new_owner, t)
        weights = masks.zero_free(weights, new_owner)
        self.backend.set_weights(self.model, weights)
        self.owner = new_owner
        self.events.emit("allocated", task=t,
                         layers=masks.ownership_counts(self.owner, cfg.tasks))

    def _fit_stats(self, t: int) -> None:
        """Routing statistics of task t (evaluation.fit_routing_stats). A run resumed from a
        checkpoint written before statistics existed has none for its earlier tasks (their
        data is gone), so it goes on without them."""
        if len(self.stats) == t and len(self.task_data[t].x_train) >= MIN_SAMPLES:
            self.stats.append(fit_routing_stats(self.backend, self.model, self.task_data[:t + 1],
                                                self.owner, self.bn_snapshots, self.plan,
                                                self.cfg, self.dataset))

    def _evaluate(self, t: int) -> None:
        self.events.emit("phase_started", task=t, phase="evaluate", epochs=0)
        self._fit_stats(t)
        stats = self.stats if len(self.stats) == t + 1 else None
        evaluation = evaluate_task(self.backend, self.model, self.task_data[:t + 1],
                                   self.owner, self.bn_snapshots, self.plan, self.cfg,
                                   self.dataset, stats, self.eval_memo)
        self.state.history.add(attrs.evolve(evaluation, teacher_taw=self.state.teacher_taw))
        metrics = self.state.history.metrics()
        self.events.emit("evaluated", task=t, **self.state.history.event_fields())
        behind = [b for b in metrics["students_behind"] if b["task"] == t]
        if behind:
            self.events.emit("student_behind", **behind[0], gap=STUDENT_GAP)

    def _metrics(self) -> dict[str, Any]:
        """metrics.json: the history, and the threads and the precision (`auto` resolved)
        this process trains with, on which results depend (a resumed run records its own
        threads, which may differ from config.json's). A re-evaluation (`mind eval`) trains
        nothing and has neither."""
        return {**self.state.history.metrics(), "threads": thread_counts(self.backend),
                "precision": backend_precision(self.backend)}

    def _write_metrics(self) -> None:
        if self.run_dir:
            write_json_atomic(self.run_dir / METRICS, self._metrics())

    # ------------------------------------------------------------------ persistence
    def _check_stop(self) -> None:
        if self.should_stop():
            raise Interrupted.of_run(self.run_dir)

    def _snapshot(self, with_loop: bool, trainer=None) -> checkpoint.Checkpoint:
        teacher = self.teacher if with_loop else None
        # A resume file holds only the statistics the last task file does not (see
        # stats_before); they never change once fitted.
        held = self.stats_in_task_file if with_loop else 0
        return checkpoint.Checkpoint(
            weights=self.backend.get_weights(self.model), owner=self.owner,
            bn_snapshots=self.bn_snapshots, stats=self.stats[held:],
            live_bn=self.backend.get_bn(self.model) if with_loop else None,
            teacher_weights=self.backend.get_weights(teacher) if teacher is not None else None,
            teacher_bn=self.backend.get_bn(teacher) if teacher is not None else None,
            importance=self.importance if with_loop else None,
            trainer=trainer, tasks=self.cfg.tasks,
            classes_per_task=_width(self.task_data[0].class_range),
            state={**self.state.to_json(), **trained_as(self.cfg),
                   **({checkpoint.STATS_IN_TASK_FILE: [len(self.bn_snapshots) - 1, held]} if held else {})}
            if with_loop else {
                "tasks_done": len(self.bn_snapshots),
                "teacher_taw": [row.get("teacher_taw") for row in self.state.history.rows]})

    def _save_resume(self, trainer=None) -> None:
        if self.ckpt_dir:
            checkpoint.save(self.ckpt_dir / RESUME_CHECKPOINT, self._snapshot(True, trainer))

    def _save_task_checkpoint(self, t: int) -> None:
        if self.ckpt_dir:
            path = self.ckpt_dir / task_checkpoint(t)
            checkpoint.save(path, self._snapshot(False))
            self.stats_in_task_file = len(self.stats)
            self.events.emit("checkpoint_saved", task=t, path=str(path.relative_to(self.run_dir)))


def _width(class_range: tuple[int, int]) -> int:
    return class_range[1] - class_range[0]


def _pid() -> int:
    import os
    return os.getpid()
