"""Metrics of a MIND run, and numpy reference versions (oracles) of every distillation loss.

The oracles define the losses exactly; the backends' implementations are tested against them.
All losses take teacher and student logits [batch, classes] and return a float averaged over
the batch.
"""

from __future__ import annotations

import attrs
import numpy as np

from mind_core.numerics import log_softmax, softmax  # noqa: F401  (re-exported)
from mind_core.routing import PAPER_RULE, RULES, RoutingInputs, available, route


def _kl_rows(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """KL(p || q) per row, from log-probabilities."""
    return (np.exp(log_p) * (log_p - log_q)).sum(axis=-1)


def kl_loss(teacher: np.ndarray, student: np.ndarray) -> float:
    """KL(p_T || p_S)."""
    return float(_kl_rows(log_softmax(teacher), log_softmax(student)).mean())


def sym_kl_loss(teacher: np.ndarray, student: np.ndarray) -> float:
    """1/2 KL(p_T || p_S) + 1/2 KL(p_S || p_T): the paper's 'Jensen-Shannon' (the default)."""
    lt, ls = log_softmax(teacher), log_softmax(student)
    return float((0.5 * _kl_rows(lt, ls) + 0.5 * _kl_rows(ls, lt)).mean())


def true_js_loss(teacher: np.ndarray, student: np.ndarray) -> float:
    """Jensen-Shannon divergence with the mixture M = (p_T + p_S) / 2."""
    lt, ls = log_softmax(teacher), log_softmax(student)
    log_m = np.logaddexp(lt, ls) - np.log(2.0)  # stable where both probabilities underflow
    return float((0.5 * _kl_rows(lt, log_m) + 0.5 * _kl_rows(ls, log_m)).mean())


def cosine_loss(teacher: np.ndarray, student: np.ndarray, eps: float = 1e-8) -> float:
    """1 - cosine similarity of the logit vectors."""
    num = (teacher * student).sum(axis=-1)
    den = np.maximum(np.linalg.norm(teacher, axis=-1) * np.linalg.norm(student, axis=-1), eps)
    return float((1.0 - num / den).mean())


def l2_loss(teacher: np.ndarray, student: np.ndarray) -> float:
    """Mean squared difference of the logits (over batch and classes)."""
    return float(((teacher - student) ** 2).mean())


LOSS_ORACLES = {
    "sym_kl": sym_kl_loss,
    "true_js": true_js_loss,
    "kl": kl_loss,
    "cosine": cosine_loss,
    "l2": l2_loss,
}


# --- Metrics (docs/algorithm.md "Inference" and "Metrics") ---------------------------------

Matrix = list[list[float]]
"""Accuracy matrix, lower-triangular: row t holds accuracy on tasks 0..t after task t."""


@attrs.frozen(kw_only=True)
class Evaluation:
    """One evaluation after a task, on the test data of every task seen so far."""

    tag: float  # task-agnostic accuracy with the chosen routing rule (micro-averaged)
    taw: float  # task-aware accuracy
    routing: float  # fraction of samples routed to their true task (chosen rule)
    tag_entropy: float  # task-agnostic accuracy with the entropy rule, always reported
    per_task_tag: list[float]  # indexed by true task; NaN for a task without samples
    per_task_taw: list[float]
    per_task_routing: list[float]
    confusion: list[list[int]]  # [true task][routed task], chosen rule
    routing_rule: str = PAPER_RULE  # the chosen rule
    rules: dict[str, dict[str, float]] = attrs.Factory(dict)  # every rule: {routing, tag}
    teacher_taw: float | None = None  # the newest task's teacher on that task's test data


def evaluate_logits(logits: np.ndarray, labels: np.ndarray, true_tasks: np.ndarray,
                    class_ranges: list[tuple[int, int]], temperature: float,
                    routing: str = PAPER_RULE, features: np.ndarray | None = None,
                    stats: list | None = None) -> Evaluation:
    """Score what every sub-network gave over its own classes: logits [T, n, c] and, for the
    statistics rules, features [T, n, d] (or [views, T, n, d], label augmentation's views
    with the images as they are first) with one task_stats.TaskStats per task.

    TAw: the true task's argmax. TAg: route each sample with the chosen rule
    (mind_core.routing), predict the routed task's argmax. Every rule the inputs allow is
    scored too (`rules`), so one evaluation compares them all.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    true_tasks = np.asarray(true_tasks, dtype=np.int64)
    lows = _check_inputs(logits, labels, true_tasks, class_ranges, temperature, routing)
    num_tasks, n = logits.shape[:2]
    samples = np.arange(n)

    predicted = logits.argmax(axis=-1) + lows[:, None]  # [T, n]: each task's class guess
    taw_ok = predicted[true_tasks, samples] == labels
    has_stats = stats is not None and features is not None
    inputs = RoutingInputs.of_views(logits, temperature, features if has_stats else None,
                                    list(stats) if has_stats else None)
    routes = {name: route(name, inputs) for name in available(inputs.stats)}
    routed = routes[routing] if routing in routes else route(routing, inputs)  # raises why

    tag_ok = predicted[routed, samples] == labels
    tag_entropy_ok = predicted[routes["entropy"], samples] == labels
    route_ok = routed == true_tasks
    confusion = np.zeros((num_tasks, num_tasks), dtype=np.int64)
    np.add.at(confusion, (true_tasks, routed), 1)
    return Evaluation(
        tag=_mean(tag_ok), taw=_mean(taw_ok), routing=_mean(route_ok),
        tag_entropy=_mean(tag_entropy_ok),
        per_task_tag=_per_task(tag_ok, true_tasks, num_tasks),
        per_task_taw=_per_task(taw_ok, true_tasks, num_tasks),
        per_task_routing=_per_task(route_ok, true_tasks, num_tasks),
        confusion=[[int(v) for v in row] for row in confusion],
        routing_rule=routing,
        rules={name: {"routing": _mean(r == true_tasks),
                      "tag": _mean(predicted[r, samples] == labels)}
               for name, r in routes.items()},
    )


def _check_inputs(logits, labels, true_tasks, class_ranges, temperature, routing) -> np.ndarray:
    if routing not in RULES:
        raise ValueError(f"routing must be one of {tuple(RULES)}, got {routing!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if logits.ndim != 3:
        raise ValueError(f"logits must be [tasks, samples, classes], got shape {logits.shape}")
    num_tasks, n, width = logits.shape
    if len(class_ranges) != num_tasks:
        raise ValueError(f"{len(class_ranges)} class ranges for logits of {num_tasks} tasks")
    if any(hi - lo != width for lo, hi in class_ranges):
        raise ValueError(f"every class range must span the {width} logits, got {class_ranges}")
    if labels.shape != (n,) or true_tasks.shape != (n,):
        raise ValueError(f"labels {labels.shape} and true_tasks {true_tasks.shape} must be ({n},)")
    if n and (true_tasks.min() < 0 or true_tasks.max() >= num_tasks):
        raise ValueError(f"true_tasks must be in 0..{num_tasks - 1}")
    return np.array([lo for lo, _ in class_ranges], dtype=np.int64)


def _mean(ok: np.ndarray) -> float:
    return float(ok.mean()) if ok.size else float("nan")


def _per_task(ok: np.ndarray, true_tasks: np.ndarray, num_tasks: int) -> list[float]:
    return [_mean(ok[true_tasks == j]) for j in range(num_tasks)]


STUDENT_GAP = 0.10
"""A student more than this far below its teacher (test accuracy on its task) is reported."""


def students_behind(evaluations: list[Evaluation]) -> list[dict]:
    """Tasks whose student, right after learning the task, ended more than STUDENT_GAP below
    its teacher: [{"task", "teacher", "student"}]."""
    out = []
    for t, e in enumerate(evaluations):
        student = e.per_task_taw[t]
        if e.teacher_taw is not None and student < e.teacher_taw - STUDENT_GAP:
            out.append({"task": t, "teacher": e.teacher_taw, "student": student})
    return out


def add_row(matrix: Matrix, row: list[float]) -> Matrix:
    """A new matrix with the accuracies on tasks 0..t after task t appended."""
    if len(row) != len(matrix) + 1:
        raise ValueError(f"row {len(matrix)} must have {len(matrix) + 1} entries, got {len(row)}")
    return [list(r) for r in matrix] + [[float(v) for v in row]]


def accuracy_matrix(evaluations: list[Evaluation], kind: str = "tag") -> Matrix:
    """Stack per-task accuracies of evaluations after tasks 0..t (kind "tag" or "taw")."""
    matrix: Matrix = []
    for evaluation in evaluations:
        matrix = add_row(matrix, getattr(evaluation, f"per_task_{kind}"))
    return matrix


def forgetting(matrix: Matrix) -> tuple[list[float], float]:
    """f_j = max over l < last of A[l][j] minus A[last][j], for j < last; and their mean."""
    _check_matrix(matrix)
    last = len(matrix) - 1
    per_task = [max(matrix[row][j] for row in range(j, last)) - matrix[last][j]
                for j in range(last)]
    return per_task, (float(np.mean(per_task)) if per_task else 0.0)


def backward_transfer(matrix: Matrix) -> float:
    """Mean over j < last of A[last][j] - A[j][j]; 0.0 with a single task."""
    _check_matrix(matrix)
    last = len(matrix) - 1
    if last == 0:
        return 0.0
    return float(np.mean([matrix[last][j] - matrix[j][j] for j in range(last)]))


def _check_matrix(matrix: Matrix) -> None:
    if not matrix:
        raise ValueError("accuracy matrix is empty")
    for t, row in enumerate(matrix):
        if len(row) != t + 1:
            raise ValueError(f"row {t} of the accuracy matrix has {len(row)} entries, not {t + 1}")


def summary(evaluations: list[Evaluation]) -> dict:
    """The metrics.json content after len(evaluations) tasks (one evaluation per task)."""
    if not evaluations:
        raise ValueError("no evaluations to summarise")
    final = evaluations[-1]
    matrices = {kind: accuracy_matrix(evaluations, kind) for kind in ("tag", "taw")}
    result: dict = {
        "tasks_done": len(evaluations),
        "final": {k: getattr(final, k) for k in ("tag", "taw", "routing", "tag_entropy")},
        "tag": [e.tag for e in evaluations],
        "taw": [e.taw for e in evaluations],
        "routing": [e.routing for e in evaluations],
        "tag_entropy": [e.tag_entropy for e in evaluations],
        "acc_matrix_tag": matrices["tag"],
        "acc_matrix_taw": matrices["taw"],
        "forgetting": {},
        "bwt": {},
        "confusion": final.confusion,
        "routing_rule": final.routing_rule,
        "teacher_taw": [e.teacher_taw for e in evaluations],
        "student_taw": [e.per_task_taw[t] for t, e in enumerate(evaluations)],
        "students_behind": students_behind(evaluations),
        "rules": {name: {key: [e.rules.get(name, {}).get(key, float("nan"))
                              for e in evaluations] for key in ("routing", "tag")}
                  for name in final.rules},
    }
    result["final"]["rules"] = final.rules
    for kind, matrix in matrices.items():
        per_task, average = forgetting(matrix)
        result["forgetting"][kind] = {"per_task": per_task, "average": average}
        result["bwt"][kind] = backward_transfer(matrix)
    return result
