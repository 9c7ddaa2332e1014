"""Class order and task splits: class-incremental (disjoint classes) and domain-incremental.

Class-incremental relabels classes so task t owns the contiguous label range [t*c, (t+1)*c)
(docs/algorithm.md "Terms": class range); every later part of the run works in that
relabelled space.
"""

from __future__ import annotations

import attrs
import numpy as np

from mind_core.data.base import Dataset

SCENARIOS = ("class", "domain")


class ScheduleError(ValueError):
    """The dataset cannot be split as asked; the message names the numbers involved."""


def class_order(num_classes: int, seed: int) -> np.ndarray:
    """The seeded permutation of original class ids; position i becomes new label i."""
    return np.random.default_rng(seed).permutation(num_classes)


def class_ranges(num_classes: int, num_tasks: int, scenario: str) -> list[tuple[int, int]]:
    """Each task's [lo, hi) in the relabelled space: contiguous equal blocks for "class",
    every class for "domain"."""
    if scenario == "domain":
        return [(0, num_classes)] * num_tasks
    per_task = num_classes // num_tasks
    return [(t * per_task, (t + 1) * per_task) for t in range(num_tasks)]


def original_labels(num_classes: int, scenario: str, seed: int) -> np.ndarray:
    """original_labels[new label] = the dataset's own class id (class-incremental runs
    relabel classes in their seeded order; domain-incremental runs keep them)."""
    if scenario == "domain":
        return np.arange(num_classes)
    return class_order(num_classes, seed)


@attrs.frozen(kw_only=True, eq=False)
class TaskData:
    index: int
    classes: tuple[int, ...]  # original class ids
    class_range: tuple[int, int]  # [lo, hi) in the relabelled space
    x_train: np.ndarray
    y_train: np.ndarray  # int64, relabelled (global new ids)
    x_test: np.ndarray
    y_test: np.ndarray


def class_incremental(dataset: Dataset, num_tasks: int, seed: int) -> list[TaskData]:
    """Split into num_tasks tasks of num_classes // num_tasks classes each, seeded order."""
    num_classes = dataset.num_classes
    if num_tasks < 1 or num_tasks > num_classes:
        raise ScheduleError(f"tasks must be between 1 and the {num_classes} classes of "
                            f"{dataset.name!r}, got {num_tasks}")
    if num_classes % num_tasks:
        raise ScheduleError(f"{num_classes} classes of {dataset.name!r} do not split into "
                            f"{num_tasks} equal tasks ({num_classes} % {num_tasks} = "
                            f"{num_classes % num_tasks})")
    _check_labels(dataset)
    order = class_order(num_classes, seed)
    relabel = np.empty(num_classes, dtype=np.int64)
    relabel[order] = np.arange(num_classes)
    y_train = relabel[dataset.y_train]
    y_test = relabel[dataset.y_test]
    tasks = []
    for t, (lo, hi) in enumerate(class_ranges(num_classes, num_tasks, "class")):
        train = (y_train >= lo) & (y_train < hi)
        test = (y_test >= lo) & (y_test < hi)
        tasks.append(TaskData(
            index=t, classes=tuple(int(c) for c in order[lo:hi]), class_range=(lo, hi),
            x_train=dataset.x_train[train], y_train=y_train[train],
            x_test=dataset.x_test[test], y_test=y_test[test]))
    return tasks


def domain_incremental(dataset: Dataset, num_tasks: int) -> list[TaskData]:
    """Task d holds the samples of domain d; every task has every class, labels unchanged."""
    if dataset.domains_train is None or dataset.domains_test is None:
        raise ScheduleError(f"dataset {dataset.name!r} has no domain ids; the domain scenario "
                            "needs one (e.g. core50 sessions), use scenario 'class' instead")
    if num_tasks < 1:
        raise ScheduleError(f"tasks must be at least 1, got {num_tasks}")
    _check_labels(dataset)
    domains_train = np.asarray(dataset.domains_train)
    domains_test = np.asarray(dataset.domains_test)
    for split, domains in (("train", domains_train), ("test", domains_test)):
        present = set(int(d) for d in np.unique(domains))
        missing = sorted(set(range(num_tasks)) - present)
        extra = sorted(present - set(range(num_tasks)))
        if missing:
            raise ScheduleError(f"{num_tasks} domain tasks need domains 0..{num_tasks - 1}, but "
                                f"the {split} split of {dataset.name!r} lacks {missing}")
        if extra:
            raise ScheduleError(f"the {split} split of {dataset.name!r} has domains {extra} "
                                f"beyond the {num_tasks} tasks; their samples would be dropped")
    class_range = (0, dataset.num_classes)
    classes = tuple(range(dataset.num_classes))
    y_train = np.asarray(dataset.y_train, dtype=np.int64)
    y_test = np.asarray(dataset.y_test, dtype=np.int64)
    return [
        TaskData(index=d, classes=classes, class_range=class_range,
                 x_train=dataset.x_train[domains_train == d], y_train=y_train[domains_train == d],
                 x_test=dataset.x_test[domains_test == d], y_test=y_test[domains_test == d])
        for d in range(num_tasks)
    ]


def make_tasks(dataset: Dataset, num_tasks: int, scenario: str = "class",
               seed: int = 0) -> list[TaskData]:
    if scenario == "class":
        return class_incremental(dataset, num_tasks, seed)
    if scenario == "domain":
        return domain_incremental(dataset, num_tasks)
    raise ScheduleError(f"scenario must be one of {SCENARIOS}, got {scenario!r}")


def test_set(tasks: list[TaskData], upto: int | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test data of tasks 0..upto (all when None) as (x, y, true task id per sample)."""
    upto = len(tasks) - 1 if upto is None else upto
    if not 0 <= upto < len(tasks):
        raise ValueError(f"upto must be in 0..{len(tasks) - 1}, got {upto}")
    seen = tasks[:upto + 1]
    return (np.concatenate([t.x_test for t in seen]), *test_labels(seen))


def test_labels(tasks: list[TaskData]) -> tuple[np.ndarray, np.ndarray]:
    """test_set's (y, true task id per sample) of these tasks, without copying their images."""
    y = np.concatenate([t.y_test for t in tasks]).astype(np.int64)
    task_ids = np.concatenate([np.full(len(t.y_test), t.index, dtype=np.int64) for t in tasks])
    return y, task_ids


test_set.__test__ = False  # their names start with "test": keep pytest from collecting them
test_labels.__test__ = False


def _check_labels(dataset: Dataset) -> None:
    for split, y in (("train", dataset.y_train), ("test", dataset.y_test)):
        y = np.asarray(y)
        if y.size and (y.min() < 0 or y.max() >= dataset.num_classes):
            raise ScheduleError(f"{split} labels of {dataset.name!r} span {y.min()}..{y.max()}, "
                                f"outside 0..{dataset.num_classes - 1}")


# ----------------------------------------------------------------------------- what a person reads
SHOWN_CLASSES = 6  # a task header lists this many classes, then how many there are


def task_started_fields(task: TaskData, class_names: tuple[str, ...] = ()) -> dict:
    """A task_started event's class fields: class_range in the relabelled space (what the
    core works in) and the task's classes as the dataset numbers them, with their names where
    the dataset has them, else null (what a person knows the classes by)."""
    return {"class_range": list(task.class_range), "classes": [int(c) for c in task.classes],
            "class_names": [str(class_names[c]) for c in task.classes] if class_names else None}


def classes_text(classes: list[int], names: list[str] | None = None) -> str:
    """`3 Dress, 7 Sneaker` (the dataset's class ids, and names where known), the first
    SHOWN_CLASSES only, then how many there are in all."""
    shown = [f"{c} {n}" if names else str(c)
             for c, n in zip(classes, names or [None] * len(classes), strict=True)]
    more = f", … ({len(classes)} classes)" if len(shown) > SHOWN_CLASSES else ""
    return ", ".join(shown[:SHOWN_CLASSES]) + more
