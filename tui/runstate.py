"""What a run looks like so far, rebuilt from its events.jsonl one event at a time.

Pure Python (no Textual): the monitor feeds every event it reads to `RunState.apply` and
renders the derived values. Tasks are 0-based here, as in the events; screens show them 1-based.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mind_core.eta import TRAINING_PHASES
from mind_core.metrics import STUDENT_GAP  # the default: a student_behind event states its own
from mind_core.routing import PAPER_RULE as DEFAULT_RULE  # for runs that record no rule
from tui.fields import PROBLEMS, clean_event, problems_of

MAX_CURVE_POINTS = 4000  # a long run emits ~2 progress events per second; keep plots light

MAX_NOTES = 50  # notes on malformed input kept (the count goes on)
RuleScore = tuple[str, float | None, float | None]  # (rule, routing accuracy, TAg); None: unknown


def fraction(value: Any) -> float | None:
    """An accuracy read from a run's files: a finite number, else None (missing or malformed;
    bool is a number to Python but never an accuracy)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def task_index(value: Any) -> int | None:
    """A 0-based task number read from an event; None when it is not one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@dataclass(frozen=True)
class TeacherRow:
    """One task's teacher and student, each on that task's test data right after it was learned
    (the student's TAw: the diagonal of the TAw matrix). None: unknown (runs made before
    teachers were scored, variants without a teacher, malformed events)."""

    task: int  # 0-based
    teacher: float | None
    student: float | None
    behind: bool  # the student ended more than the run's gap below its teacher

    @property
    def gap(self) -> float | None:
        """Student minus teacher (negative: the student is behind)."""
        if self.teacher is None or self.student is None:
            return None
        return self.student - self.teacher


@dataclass
class Curve:
    """Loss of one (task, phase): live points from progress events, one point per epoch."""

    live: list[tuple[float, float]] = field(default_factory=list)  # (epoch progress, loss)
    epochs: list[dict[str, Any]] = field(default_factory=list)  # epoch_ended events

    def add_live(self, x: float, loss: float) -> None:
        # A resumed phase starts again from its checkpoint: drop what it will redo.
        while self.live and self.live[-1][0] >= x:
            self.live.pop()
        self.live.append((x, loss))
        if len(self.live) > MAX_CURVE_POINTS:
            self.live = self.live[::2]

    def add_epoch(self, event: dict[str, Any]) -> None:
        epoch = event.get("epoch", 0)  # a count: events are cleaned (tui.fields) first
        self.epochs = [e for e in self.epochs if e.get("epoch", 0) < epoch]
        self.epochs.append(event)


@dataclass
class RunState:
    info: dict[str, Any] = field(default_factory=dict)  # the latest run_started event
    status: str = "waiting"  # waiting | running | finished | failed | interrupted
    tasks: int = 0
    task: int | None = None
    class_range: tuple[int, int] | None = None
    phase: str | None = None
    phase_epochs: int = 0
    epoch: int = 0  # epochs completed in the current phase
    batch: int = 0
    batches: int = 0
    loss: float | None = None
    eta_s: float | None = None
    planned_epochs: dict[str, int] = field(default_factory=dict)  # phase -> epochs per task
    curves: dict[tuple[int, str], Curve] = field(default_factory=dict)
    ownership: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluations: dict[int, dict[str, Any]] = field(default_factory=dict)
    behind: dict[int, dict[str, Any]] = field(default_factory=dict)  # student_behind events
    student_gap: float = STUDENT_GAP  # as the latest student_behind event states it
    final: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    checkpoints: int = 0
    config_rule: str | None = None  # config.json's inference.routing, once read
    started_at: float | None = None
    last_time: float | None = None
    events_seen: int = 0
    # What was wrong in the run's files: events with malformed fields (each field dropped,
    # the rest applied), lines that hold no event, and config.json's mistyped settings.
    malformed: list[str] = field(default_factory=list)  # the first MAX_NOTES notes
    malformed_count: int = 0
    config_problems: tuple[str, ...] = ()

    def apply(self, event: dict[str, Any]) -> None:
        event = event if PROBLEMS in event else clean_event(event)
        kind = event.get("type")
        handler = getattr(self, f"_on_{kind}", None) if isinstance(kind, str) else None
        self.events_seen += 1
        for note in problems_of(event):
            self.note(note)
        time = event.get("time")
        if isinstance(time, (int, float)):
            self.last_time = float(time)
            if self.started_at is None:
                self.started_at = float(time)
        if handler is not None:
            try:
                handler(event)
            except Exception as exc:  # noqa: BLE001 - a bad event must never stop the monitor
                self.note(f"{kind} event not understood ({type(exc).__name__}: {exc})")

    def note(self, message: str) -> None:
        """Record something malformed in the run's files (the monitor shows it)."""
        self.malformed_count += 1
        if len(self.malformed) < MAX_NOTES:
            self.malformed.append(message)

    def problems(self) -> list[str]:
        """config.json's problems, then the events'."""
        return [*self.config_problems, *self.malformed]

    def _on_run_started(self, e: dict[str, Any]) -> None:
        self.info = dict(e)
        self.tasks = e.get("tasks") or self.tasks
        self.status = "running"
        self.failure = None
        self.final = None
        self.eta_s = None

    # Handlers: the event is cleaned (tui.fields), so a field holds its kind or is absent.

    def _on_task_started(self, e: dict[str, Any]) -> None:
        if "task" not in e:
            return  # which task started is unknown (the cleaning noted it)
        self.task = e["task"]
        self.tasks = e.get("tasks") or self.tasks
        lo_hi = e.get("class_range")
        self.class_range = (lo_hi[0], lo_hi[1]) if lo_hi else None
        self.phase = None
        self._reset_phase_progress(0)

    def _on_phase_started(self, e: dict[str, Any]) -> None:
        self.task = e.get("task", self.task or 0)
        self.phase = e.get("phase", "?")
        epochs = e.get("epochs") or 0
        if self.phase in TRAINING_PHASES and epochs:
            self.planned_epochs[self.phase] = epochs
        self._reset_phase_progress(epochs)

    def _reset_phase_progress(self, epochs: int) -> None:
        self.phase_epochs = epochs
        self.epoch = 0
        self.batch = 0
        self.batches = 0

    def _on_progress(self, e: dict[str, Any]) -> None:
        self.task = e.get("task", self.task or 0)
        self.phase = e.get("phase", self.phase)
        self.epoch = e.get("epoch", 0)
        self.phase_epochs = e.get("epochs") or self.phase_epochs
        self.batch = e.get("batch", 0)
        self.batches = e.get("batches", 0)
        self.eta_s = e.get("eta_s")
        loss = e.get("loss")
        if loss is not None and self.phase is not None:
            self.loss = float(loss)
            x = self.epoch + (self.batch / self.batches if self.batches else 0.0)
            self._curve(self.task, self.phase).add_live(x, self.loss)

    def _on_epoch_ended(self, e: dict[str, Any]) -> None:
        self.task = e.get("task", self.task or 0)
        self.phase = e.get("phase", self.phase)
        self.epoch = e.get("epoch", 0) + 1
        self.phase_epochs = e.get("epochs") or self.phase_epochs
        self.batch = self.batches = 0
        if self.phase is not None:
            self._curve(self.task, self.phase).add_epoch(e)

    def _on_allocated(self, e: dict[str, Any]) -> None:
        self.ownership = dict(e.get("layers") or {})

    def _on_evaluated(self, e: dict[str, Any]) -> None:
        task = task_index(e.get("task"))
        if task is None:
            return  # an evaluation of no known task cannot be placed in the matrices
        # A resumed run evaluates again from this task on: what it said before is replaced.
        self.evaluations = {t: v for t, v in self.evaluations.items() if t < task}
        self.behind = {t: v for t, v in self.behind.items() if t < task}
        self.evaluations[task] = e

    def _on_student_behind(self, e: dict[str, Any]) -> None:
        task = task_index(e.get("task"))
        if task is None:
            return
        self.behind[task] = e
        gap = fraction(e.get("gap"))
        if gap is not None:
            self.student_gap = gap

    def _on_checkpoint_saved(self, e: dict[str, Any]) -> None:
        self.checkpoints += 1

    def _on_run_finished(self, e: dict[str, Any]) -> None:
        self.status = "finished"
        self.final = dict(e)
        self.eta_s = 0.0

    def _on_run_failed(self, e: dict[str, Any]) -> None:
        reason = e.get("reason", "error")
        self.status = "interrupted" if reason == "interrupted" else "failed"
        self.failure = {"reason": reason, "message": e.get("message", "")}
        self.eta_s = None

    def _curve(self, task: int, phase: str) -> Curve:
        return self.curves.setdefault((task, phase), Curve())

    # Derived values the screens show.

    @property
    def tasks_done(self) -> int:
        return len(self.evaluations)

    @property
    def elapsed_s(self) -> float:
        if self.started_at is None or self.last_time is None:
            return 0.0
        return self.last_time - self.started_at

    def phase_fraction(self) -> float:
        if self.phase not in TRAINING_PHASES or not self.phase_epochs:
            return 1.0 if self.phase == "evaluate" else 0.0
        within = self.batch / self.batches if self.batches else 0.0
        return min(1.0, (self.epoch + within) / self.phase_epochs)

    def task_fraction(self) -> float:
        """How much of the current task is done, weighting the phases by their epochs."""
        if self.task is None or self.task < self.tasks_done:
            return 0.0
        teacher = self.planned_epochs.get("teacher", 1)
        distill = self.planned_epochs.get("distill", 1)
        done = {"teacher": 0.0, "allocate": teacher, "distill": teacher, "evaluate": teacher + distill}
        base = done.get(self.phase or "", 0.0)
        if self.phase in TRAINING_PHASES:
            base += self.phase_fraction() * (teacher if self.phase == "teacher" else distill)
        return min(1.0, base / max(1, teacher + distill))

    def run_fraction(self) -> float:
        if self.status == "finished":
            return 1.0
        if not self.tasks:
            return 0.0
        return min(1.0, (self.tasks_done + self.task_fraction()) / self.tasks)

    def matrix(self, kind: str) -> tuple[tuple[float, ...], ...]:
        """The latest accuracy matrix, "tag" or "taw" (row t = after task t, lower-triangular)."""
        if not self.evaluations:
            return ()
        latest = self.evaluations[max(self.evaluations)]
        rows = latest.get(f"acc_matrix_{kind}") or []
        return tuple(tuple(float(v) for v in row) for row in rows)

    def per_task(self, metric: str) -> tuple[float, ...]:
        """tag / taw / routing after each task learned so far (0.0 where an evaluation lacks a
        readable value: the plots need a number at every task)."""
        return tuple(fraction(self.evaluations[t].get(metric)) or 0.0
                     for t in sorted(self.evaluations))

    def teacher_rows(self) -> tuple[TeacherRow, ...]:
        """Every evaluated task's teacher beside its student. A task is behind when the run
        said so (a student_behind event) or its numbers do (the same test as the core's)."""
        rows = []
        for t in sorted(self.evaluations):
            e, said = self.evaluations[t], self.behind.get(t, {})
            teacher = fraction(e.get("teacher_taw"))
            teacher = teacher if teacher is not None else fraction(said.get("teacher"))
            student = _own_task(e, t)
            student = student if student is not None else fraction(said.get("student"))
            behind = bool(said) or (teacher is not None and student is not None
                                    and student < teacher - self.student_gap)
            rows.append(TeacherRow(t, teacher, student, behind))
        return tuple(rows)

    def students_behind(self) -> tuple[TeacherRow, ...]:
        return tuple(row for row in self.teacher_rows() if row.behind)

    def curve(self, task: int, phase: str) -> Curve:
        return self.curves.get((task, phase), Curve())

    def loss_tasks(self) -> list[int]:
        return sorted({t for t, _ in self.curves})

    @property
    def latest_metrics(self) -> dict[str, float]:
        source = self.final or (self.evaluations[max(self.evaluations)] if self.evaluations else {})
        values = {k: fraction(source.get(k)) for k in ("tag", "taw", "routing")}
        return {k: v for k, v in values.items() if v is not None}

    @property
    def routing_rule(self) -> str:
        """The rule the run routes with: as its latest evaluation records it, else as its
        config sets it (runs made before evaluations named it), else the default."""
        if self.evaluations:
            rule = self.evaluations[max(self.evaluations)].get("routing_rule")
            if isinstance(rule, str) and rule:
                return rule
        return self.config_rule or DEFAULT_RULE

    def rule_scores(self) -> tuple[RuleScore, ...]:
        """Routing accuracy and TAg of every rule the latest evaluation scored, in the order it
        lists them; () when it scored none (a run made before rules were compared)."""
        if not self.evaluations:
            return ()
        rules = self.evaluations[max(self.evaluations)].get("rules")
        if not isinstance(rules, dict):
            return ()
        return tuple((str(name), fraction(v.get("routing")), fraction(v.get("tag")))
                     for name, v in rules.items() if isinstance(v, dict))


def _own_task(evaluation: dict[str, Any], task: int) -> float | None:
    """The student's TAw on its own task in the evaluation right after it: per_task_taw[task],
    else the matrix diagonal; None where neither holds a readable number."""
    for values in (evaluation.get("per_task_taw"),
                   _row(evaluation.get("acc_matrix_taw"), task)):
        if isinstance(values, list) and len(values) > task:
            value = fraction(values[task])
            if value is not None:
                return value
    return None


def _row(matrix: Any, index: int) -> Any:
    return matrix[index] if isinstance(matrix, list) and len(matrix) > index else None
