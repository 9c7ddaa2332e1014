"""Memory of a MIND run against the model's own size (part of `python -m benchmarks.speed`).

Each probe runs in a fresh interpreter, because ru_maxrss is a process-wide high-water mark:
in the benchmark's own process it would mostly measure the timing jobs that ran before.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.reference import CLASS_RANGE, MEAN, STD, TASKS, PlainTorch
from benchmarks.tf_vs_torch import set_threads
from mind_core.protocol import ModelSpec, PhaseSpec, Subnet

REPO = Path(__file__).resolve().parent.parent


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> int:
    """Reset the process's RSS high-water mark to its current RSS (Linux: clear_refs 5);
    returns that RSS in bytes. Elsewhere falls back to ru_maxrss, which cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        pass
    current = _rss_kib("VmRSS")
    return current * 1024 if current is not None else _peak_rss_bytes()


def _peak_rss_bytes() -> int:
    peak = _rss_kib("VmHWM")
    if peak is not None:
        return peak * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _gpu_peak(backend_name: str, device: str) -> dict:
    """RSS misses GPU memory: add PyTorch's own peak when it ran on CUDA."""
    if backend_name != "torch" or device == "cpu":
        return {}
    import torch

    return {"cuda_peak_bytes": int(torch.cuda.max_memory_allocated())
            if torch.cuda.is_available() else None}


def _warm_up(backend) -> None:
    """Run a tiny model once, so that framework start-up (lazy imports, thread pools, kernel
    caches) is not counted as the run's memory."""
    spec = ModelSpec(arch="small_cnn", input_shape=(8, 8, 3), num_classes=2)
    model = backend.build_model(spec, 0)
    phase = PhaseSpec(kind="teacher", epochs=1, lr=1e-3, milestones=(), gamma=0.5,
                      weight_decay=0.0, batch_size=2, class_range=(0, 2), mean=MEAN, std=STD)
    x, y = np.zeros((2, 8, 8, 3), np.uint8), np.array([0, 1], dtype=np.int64)
    backend.train_epoch(backend.start_phase(model, phase, None), x, y, 0, 0)
    dense = {layer.name: np.ones(layer.shape, bool) for layer in backend.layers(model)}
    subnet = Subnet(gates=dense, bn=backend.get_bn(model), class_range=(0, 2))
    backend.predict(model, x, [subnet], 2, MEAN, STD)


def memory_probe(backend_name: str, device: str = "cpu", threads: int = 1, tasks: int = TASKS,
                 train_per_class: int = 8, test_per_class: int = 2,
                 batch_size: int = 64) -> dict:
    """A short MIND run (ResNet-32, `tasks` tasks of 10 random-image classes, 1+1 epochs, with
    checkpoints): its peak RSS growth and numpy-side peak (tracemalloc) against the bytes of
    the model's own state. Meant for a fresh process (ru_maxrss is a process-wide peak)."""
    import tracemalloc

    from mind_core.config import resolve_config
    from mind_core.data.base import Dataset
    from mind_core.engine import Engine
    from mind_core.registry import get_backend

    set_threads(threads, [backend_name])
    backend = get_backend(backend_name, device)
    classes, rng = 10 * tasks, np.random.default_rng(0)
    y_train = np.repeat(np.arange(classes), train_per_class)
    y_test = np.repeat(np.arange(classes), test_per_class)
    data = Dataset(name="random", num_classes=classes, mean=MEAN, std=STD,
                   x_train=rng.integers(0, 256, (len(y_train), 32, 32, 3), dtype=np.uint8),
                   y_train=y_train, y_test=y_test,
                   x_test=rng.integers(0, 256, (len(y_test), 32, 32, 3), dtype=np.uint8))
    cfg = resolve_config("smoke", [f"backend={backend_name}", "model=resnet32", f"tasks={tasks}",
                                   f"teacher.batch_size={batch_size}",
                                   f"distill.batch_size={batch_size}"])
    _warm_up(backend)
    before = _reset_peak_rss()
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(cfg, backend, data, Path(tmp) / "run")
        engine.run()
    numpy_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    growth = _peak_rss_bytes() - before
    weight_bytes = sum(int(np.prod(layer.shape)) * 4 for layer in engine.layers)
    snapshot_bytes = [sum(v.nbytes for bn in snap.values() for v in bn.values())
                      for snap in engine.bn_snapshots]
    model_bytes = weight_bytes + snapshot_bytes[0]
    owner_bytes = sum(a.nbytes for a in engine.owner.values())
    state_bytes = weight_bytes + owner_bytes + sum(snapshot_bytes)
    return {"backend": backend_name, "tasks": tasks, "batch_size": batch_size,
            "model_bytes": model_bytes, "weight_bytes": weight_bytes,
            "ownership_bytes": owner_bytes, "bn_snapshot_bytes": sum(snapshot_bytes),
            "state_bytes": state_bytes, "state_vs_model": round(state_bytes / model_bytes, 3),
            "peak_rss_growth_bytes": growth,
            "rss_growth_vs_model": round(growth / model_bytes, 1),
            "numpy_peak_bytes": numpy_peak,
            "numpy_peak_vs_model": round(numpy_peak / model_bytes, 2),
            **_gpu_peak(backend_name, device)}


def dense_memory_probe(device: str = "cpu", threads: int = 1, batch_size: int = 64) -> dict:
    """Peak RSS growth of plain dense training (2 steps) and one forward: the reference."""
    from backends.torch.backend import resolve_device

    set_threads(threads, ["torch"])
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2 * batch_size, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(*CLASS_RANGE, len(x)).astype(np.int64)
    warm = PlainTorch(resolve_device(device), 2, 2)  # start-up costs, as in _warm_up
    warm.train_epoch(x[:2], y[:2], 0)
    warm.forward(x[:2])
    del warm
    before = _reset_peak_rss()
    plain = PlainTorch(resolve_device(device), batch_size, 256)
    plain.train_epoch(x, y, 0)
    plain.forward(x)
    return {"peak_rss_growth_bytes": _peak_rss_bytes() - before, **_gpu_peak("torch", device)}


def in_subprocess(call: str) -> dict:
    """Run `call` (an expression over this module's names) in a fresh interpreter."""
    code = f"import json\nfrom benchmarks.memory import *\nprint(json.dumps({call}))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_memory(backends: list[str], device: str, threads: int, batch_size: int) -> dict:
    dense = in_subprocess(f"dense_memory_probe({device!r}, {threads}, {batch_size})")
    out = {"dense_training": dense}
    for name in backends:
        row = in_subprocess(f"memory_probe({name!r}, {device!r}, {threads}, "
                            f"batch_size={batch_size})")
        if "error" not in row and dense.get("peak_rss_growth_bytes"):
            row["rss_growth_vs_dense_training"] = round(
                row["peak_rss_growth_bytes"] / dense["peak_rss_growth_bytes"], 2)
        out[name] = row
    return out
