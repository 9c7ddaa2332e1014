"""What would fail inside every trial of a kind, found by the driver before Ray starts: an
unknown or missing dataset, a backend that cannot load, a device this machine lacks. Each
trial would otherwise start Ray, fail alone and leave a sweep of identical tracebacks."""

from __future__ import annotations

from collections.abc import Iterable

from mind_core.data.base import DatasetError
from mind_core.sweep.grid import Trial


def preflight(trials: Iterable[Trial], local: bool) -> None:
    """DatasetError or BackendError for the first dataset, backend or device of these trials
    that cannot work. local: the trials run on this machine (a local Ray), so its data,
    frameworks and devices are theirs; on a cluster only the dataset names are checked (the
    data, frameworks and GPUs are the nodes')."""
    from mind_core.data.registry import dataset_info
    from mind_core.registry import get_backend

    trials = list(trials)
    for dataset, data_dir in sorted({(t.config.dataset, t.config.data_dir) for t in trials}):
        if not local and ":" in dataset:
            continue  # a path on the nodes, which this machine may not see
        info = dataset_info(dataset, data_dir or None)
        if local and not info.available:
            raise DatasetError(f"--datasets: {dataset} is not available here: "
                               f"{info.how_to_get}")
    if local:
        for backend, device in sorted({(t.config.backend, t.config.device) for t in trials}):
            get_backend(backend, device)  # imports the framework once and checks the device
