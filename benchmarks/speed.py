"""Speed of the MIND backends against a plain dense model: ResNet-32, 32x32x3, 10 tasks.

    python -m benchmarks.speed [--json] [--quick] [--backends torch,tf] [--device cpu]

Everything is timed side by side in one process; jobs are interleaved (their order rotates
every repeat), warmed up first, and each figure is the median of the repeats. Ratios (lower is
better; targets in TARGETS):
  teacher_step_ratio   backend teacher-phase step (dense, gates=None, trainable=None) / plain
                       stock-torch ResNet-32 step (nn.Conv2d, same shapes, AdamW, same batches)
  distill_step_ratio   backend distill step of the last of 10 tasks (gated student, frozen
                       earlier weights, dense teacher forward, beta 5) / the same plain step
  eval_ratio_vs_limit  backend.predict with 10 sub-networks / 10 x one plain dense forward
  train_ratio_outliers_vs_paper  (teacher step + distill step with routing-aware training) /
                       (teacher step + distill step): a run's cost with outlier_weight > 0
  train_ratio_self_teacher_vs_paper  (self-teacher step + distill step) / (teacher step +
                       distill step): a run's cost with a teacher trained inside the network
                       (variant self_distill: only the free weights of task 5 of 10 train)
  train_ratio_teacher_slice_vs_paper  (self-teacher step + distill step on the labels alone,
                       no teacher forward) / (teacher step + distill step): the cost of the
                       default variant outside the paper presets, teacher_slice
  train_ratio_bf16_vs_fp32  (teacher step + distill step in precision=bf16) / (the same in
                       fp32): a run's training cost in bfloat16, each backend against itself
  eval_ratio_stats_vs_maxprob  evaluation routed by `mahalanobis` (predict with features +
                       standardised distances to 10 tasks' statistics) / evaluation routed by
                       the paper's `max_prob` (predict + max softmax), same images
  eval_ratio_pairwise_vs_maxprob  evaluation routed by `pairwise` (predict with features +
                       a round robin over 10 tasks' statistics in every space, one covariance
                       per class) / evaluation routed by `max_prob`
  train_ratio_spaces_vs_teacher_slice  a task's training with statistics in every space at
                       its end / with its own space's only, for the last of 10 tasks (fitting
                       in 10 spaces): (8 self-teacher + 8 label-student epochs + predict with
                       features through 10 sub-networks + fitting) / (the same epochs +
                       predict through its own + fitting), the Synbols subset's 8+8 epochs
  stats_bytes_last_task  float32 bytes of the last task's statistics in its 10 spaces
  tf_vs_torch_*        tf backend time / torch backend time for the same job
Memory (each probe in a fresh subprocess, so peak RSS means this run only): bytes of the
model's weights, int8 ownership arrays and 10 BN snapshots, and the peak RSS growth of a short
10-task MIND run against that of plain dense training at the same batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from benchmarks.reference import CLASS_RANGE, MEAN, NUM_CLASSES, STD, TASKS, PlainTorch
from benchmarks.tf_vs_torch import load as load_backend
from benchmarks.tf_vs_torch import set_threads
from mind_core import masks
from mind_core.protocol import ModelSpec, PhaseSpec, Subnet
from mind_core.routing import RULES, RoutingInputs, route
from mind_core.task_stats import MIN_SAMPLES, fit_stats

SPEC = ModelSpec(arch="resnet32", input_shape=(32, 32, 3), num_classes=NUM_CLASSES)
LAST = TASKS - 1  # the distill phase timed is the last task's: the most frozen weights
TARGETS = {"teacher_step_ratio": 1.10, "eval_ratio_vs_limit": 1.3, "tf_vs_torch_train": 1.5,
           "tf_vs_torch_eval": 1.5, "eval_ratio_stats_vs_maxprob": 1.2,
           "train_ratio_outliers_vs_paper": 1.3, "train_ratio_self_teacher_vs_paper": 1.3,
           "train_ratio_teacher_slice_vs_paper": 1.3, "eval_ratio_pairwise_vs_maxprob": 5.0,
           "train_ratio_spaces_vs_teacher_slice": 2.0,
           # bf16 pays only where the CPU has native bf16 (AVX512_BF16 / AMX) or on a GPU.
           "train_ratio_bf16_vs_fp32": 0.7}
SPACES_EPOCHS = 8  # of each phase: the Synbols subset's recipe (benchmarks/accuracy.py)
# The ratios every backend gets (per_backend); the top-level figure is the torch one.
BACKEND_RATIOS = ("teacher_step_ratio", "distill_step_ratio", "eval_ratio_vs_limit",
                  "eval_ratio_stats_vs_maxprob", "train_ratio_outliers_vs_paper",
                  "train_ratio_self_teacher_vs_paper", "train_ratio_teacher_slice_vs_paper",
                  "eval_ratio_pairwise_vs_maxprob", "train_ratio_spaces_vs_teacher_slice",
                  "train_ratio_bf16_vs_fp32")


def simulated_ownership(layers, tasks: int = TASKS) -> dict[str, np.ndarray]:
    """Ownership after allocating the first `tasks` of 10 at random (classifier rows by
    class)."""
    owner, rng = masks.new_ownership(layers, TASKS), np.random.default_rng(0)
    for t in range(tasks):
        owner = masks.allocate(owner, t, layers=layers, num_tasks=TASKS, rng=rng,
                               class_range=(10 * t, 10 * t + 10))
    return owner


class BackendBench:
    """One backend's teacher-phase trainer, distill-phase trainer and 10 inference sub-networks,
    all through the protocol as the engine drives them."""

    def __init__(self, backend, batch_size: int, eval_batch: int) -> None:
        self.backend, self.eval_batch, self.epoch = backend, eval_batch, 0
        common = dict(epochs=1, lr=1e-3, milestones=(), gamma=0.5, weight_decay=0.0,
                      batch_size=batch_size, class_range=CLASS_RANGE, mean=MEAN, std=STD)
        self.teacher = backend.build_model(SPEC, seed=1)
        backend.set_gates(self.teacher, None)
        self.teacher_trainer = backend.start_phase(
            self.teacher, PhaseSpec(kind="teacher", **common), None)
        # A self-teacher (self_distill) is the same dense forward training only the entries
        # no task owns yet: at task 5 of 10, half of them.
        halfway = simulated_ownership(backend.layers(self.teacher), TASKS // 2)
        self.self_teacher_trainer = backend.start_phase(
            self.teacher, PhaseSpec(kind="teacher", **common), masks.free(halfway))
        self.student = backend.build_model(SPEC, seed=0)
        owner = simulated_ownership(backend.layers(self.student))
        self.gates = masks.gates(owner, LAST)
        backend.set_gates(self.student, self.gates)
        self.distill_trainer = backend.start_phase(
            self.student, PhaseSpec(kind="distill", beta=5.0, **common),
            masks.trainable(owner, LAST), teacher=self.teacher)
        self.outlier_trainer = backend.start_phase(
            self.student, PhaseSpec(kind="distill", beta=5.0, outlier_weight=0.5, **common),
            masks.trainable(owner, LAST), teacher=self.teacher)
        # teacher_slice's student learns from the labels alone: no teacher takes part.
        self.label_trainer = backend.start_phase(
            self.student, PhaseSpec(kind="distill", beta=0.0, **common),
            masks.trainable(owner, LAST))
        bn = backend.get_bn(self.student)
        self.subnets = [Subnet(gates=masks.gates(owner, j), bn=bn,
                               class_range=(10 * j, 10 * j + 10)) for j in range(TASKS)]
        width = next(info.shape[1] for info in backend.layers(self.student) if info.classifier)
        rng = np.random.default_rng(0)
        self.stats = [fit_stats(rng.random((t + 1, 500, width)), list(range(t + 1)), t,
                                rng.integers(0, 10, 500), (0, 10), seed=t, fit_spaces=TASKS)
                      for t in range(TASKS)]

    def fit_statistics(self, x, y, spaces: int) -> None:
        """The end of the last task: its training data through its own sub-network or all
        ten (one predict call, features), then its statistics fitted in each."""
        ids = list(range(TASKS)) if spaces else [LAST]
        _, features = self.backend.predict(self.student, x, [self.subnets[j] for j in ids],
                                           self.eval_batch, MEAN, STD, features=True)
        fit_stats(features, ids, LAST, y - CLASS_RANGE[0], (0, 10), seed=0,
                  fit_spaces=TASKS if spaces else 0)

    def teacher_epoch(self, x, y, inside: bool = False) -> None:
        self.epoch += 1
        trainer = self.self_teacher_trainer if inside else self.teacher_trainer
        self.backend.train_epoch(trainer, x, y, epoch=0, seed=self.epoch)

    def distill_epoch(self, x, y, kind: str = "distill") -> None:
        self.epoch += 1
        trainer = {"distill": self.distill_trainer, "outliers": self.outlier_trainer,
                   "labels": self.label_trainer}[kind]
        self.backend.train_epoch(trainer, x, y, epoch=0, seed=self.epoch)

    def predict(self, x) -> None:
        self.backend.predict(self.student, x, self.subnets, self.eval_batch, MEAN, STD)

    def evaluate(self, x, rule: str) -> None:
        """Predict and route, as evaluation does, with the paper's rule or the statistics
        rule (which asks predict for features from the same forward pass)."""
        needs_stats = RULES[rule].needs_stats
        out = self.backend.predict(self.student, x, self.subnets, self.eval_batch, MEAN, STD,
                                   features=needs_stats)
        logits, features = out if needs_stats else (out, None)
        route(rule, RoutingInputs(logits=logits, temperature=1.0, features=features,
                                  stats=self.stats if needs_stats else None))

    def restore_gates(self) -> None:
        """predict() leaves the last sub-network's gates behind (untimed, once per phase in
        a real run)."""
        self.backend.set_gates(self.student, self.gates)


class Job:
    """Something to time: `run` (divided by `per` to give a per-step figure), after an
    untimed `setup`."""

    def __init__(self, run: Callable[[], None], per: int = 1,
                 setup: Callable[[], None] | None = None) -> None:
        self.run, self.per, self.setup = run, per, setup

    def __call__(self) -> tuple[float, float]:
        if self.setup is not None:
            self.setup()
        wall, cpu = time.perf_counter(), time.process_time()
        self.run()
        return ((time.perf_counter() - wall) / self.per, (time.process_time() - cpu) / self.per)


def measure(jobs: dict[str, Job], repeats: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, cpu) seconds per repeat of every job. Jobs are warmed up once (TF compiles,
    allocators and caches fill) and then interleaved, their order rotating every repeat."""
    for job in jobs.values():
        job()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in jobs}
    names = list(jobs)
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(jobs[name]())
    return samples


def machine_info(threads: int, backends: dict) -> dict:
    import torch

    info = {"platform": platform.platform(), "processor": platform.processor(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "threads": threads, "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__}
    for name, bench in backends.items():
        info[f"{name}_device"] = bench.backend.device
        info.update(bench.backend.versions())
    return info


def run_speed(backends: list[str], device: str = "cpu", batch_size: int = 64,
              batches: int = 8, repeats: int = 5, eval_images: int = 512,
              eval_batch: int = 256, threads: int = 1) -> dict:
    """The timing part of the benchmark (no memory probes); see the module docstring."""
    from backends.torch.backend import resolve_device

    set_threads(threads, ["torch", *backends])
    rng = np.random.default_rng(0)
    n = batch_size * batches
    x = rng.integers(0, 256, (n, *SPEC.input_shape), dtype=np.uint8)
    y = rng.integers(*CLASS_RANGE, n).astype(np.int64)
    x_eval = rng.integers(0, 256, (eval_images, *SPEC.input_shape), dtype=np.uint8)
    # Statistics are fitted from the epoch's images (repeated up to the fewest a fit takes,
    # for the tests' tiny configurations).
    fit_n = max(n, MIN_SAMPLES)
    x_fit, y_fit = np.resize(x, (fit_n, *x.shape[1:])), np.resize(y, fit_n)
    plain = PlainTorch(resolve_device(device), batch_size, eval_batch)
    benches = {name: BackendBench(b, batch_size, eval_batch) for name in backends
               if (b := load_backend(name, device)) is not None}
    # The same jobs in bf16, timed in the same interleaved rounds as their fp32 twins.
    low = {name: BackendBench(load_backend(name, device, "bf16"), batch_size, eval_batch)
           for name in benches}
    seeds = iter(range(10**9))
    jobs = {"dense_step": Job(lambda: plain.train_epoch(x, y, next(seeds)), batches),
            "dense_forward": Job(lambda: plain.forward(x_eval))}
    for name, bench in benches.items():
        jobs[f"{name}_teacher_step"] = Job(lambda b=bench: b.teacher_epoch(x, y), batches)
        jobs[f"{name}_self_teacher_step"] = Job(lambda b=bench: b.teacher_epoch(x, y, True),
                                                batches)
        jobs[f"{name}_distill_step"] = Job(lambda b=bench: b.distill_epoch(x, y), batches,
                                           setup=bench.restore_gates)
        jobs[f"{name}_distill_outlier_step"] = Job(
            lambda b=bench: b.distill_epoch(x, y, "outliers"), batches, setup=bench.restore_gates)
        jobs[f"{name}_distill_labels_step"] = Job(
            lambda b=bench: b.distill_epoch(x, y, "labels"), batches, setup=bench.restore_gates)
        jobs[f"{name}_predict"] = Job(lambda b=bench: b.predict(x_eval))
        for spaces in (0, TASKS):
            jobs[f"{name}_fit_stats_{spaces}"] = Job(
                lambda b=bench, k=spaces: b.fit_statistics(x_fit, y_fit, k),
                setup=bench.restore_gates)
        for rule in ("max_prob", "mahalanobis", "pairwise"):
            jobs[f"{name}_eval_{rule}"] = Job(lambda b=bench, r=rule: b.evaluate(x_eval, r))
        jobs[f"{name}_bf16_teacher_step"] = Job(lambda b=low[name]: b.teacher_epoch(x, y),
                                                batches)
        jobs[f"{name}_bf16_distill_step"] = Job(lambda b=low[name]: b.distill_epoch(x, y),
                                                batches, setup=low[name].restore_gates)
    samples = measure(jobs, repeats)
    # Process CPU time is what a job costs; on a shared CPU box wall time mostly measures the
    # neighbours. On a GPU the host's CPU time means little, so wall time decides there.
    clock = "cpu" if plain.device.type == "cpu" else "wall"
    pick = ("wall", "cpu").index(clock)
    medians = {kind: {name: statistics.median(s[i] for s in v) for name, v in samples.items()}
               for i, kind in enumerate(("wall", "cpu"))}
    out: dict = {"machine": machine_info(threads, benches),
                 "config": {"model": "resnet32", "input": list(SPEC.input_shape),
                            "tasks": TASKS, "classes": SPEC.num_classes,
                            "batch_size": batch_size, "batches_per_epoch": batches,
                            "repeats": repeats, "eval_images": eval_images,
                            "eval_batch": eval_batch, "device": device, "clock": clock},
                 "raw_seconds": {kind: {k: round(v, 5) for k, v in m.items()}
                                 for kind, m in medians.items()},
                 "raw_spread": {k: [round(min(s[pick] for s in v), 5),
                                    round(max(s[pick] for s in v), 5)]
                                for k, v in samples.items()}}
    last = next(iter(benches.values()), None)
    out["stats_bytes_last_task"] = None if last is None else int(sum(
        v.size * 4 for v in last.stats[LAST].arrays().values()))
    return {**out, **ratios(medians[clock], list(benches), batch_size, eval_images, batches)}


def ratios(raw: dict[str, float], backends: list[str], batch_size: int,
           eval_images: int, batches: int = 8) -> dict:
    limit = TASKS * raw["dense_forward"]
    out: dict = {"eval_limit_seconds": round(limit, 5), "per_backend": {}}
    for name in backends:
        # Step jobs are per batch; the fitting jobs cover the whole epoch's images.
        slice_task = SPACES_EPOCHS * batches * (raw[f"{name}_self_teacher_step"]
                                                + raw[f"{name}_distill_labels_step"])
        out["per_backend"][name] = {
            "teacher_step_ratio": round(raw[f"{name}_teacher_step"] / raw["dense_step"], 3),
            "distill_step_ratio": round(raw[f"{name}_distill_step"] / raw["dense_step"], 3),
            "eval_ratio_vs_limit": round(raw[f"{name}_predict"] / limit, 3),
            "eval_ratio_stats_vs_maxprob": round(raw[f"{name}_eval_mahalanobis"]
                                                 / raw[f"{name}_eval_max_prob"], 3),
            # A run with as many distill as teacher epochs, with routing-aware training
            # (outlier_weight > 0) against the paper's recipe.
            "train_ratio_outliers_vs_paper": round(
                (raw[f"{name}_teacher_step"] + raw[f"{name}_distill_outlier_step"])
                / (raw[f"{name}_teacher_step"] + raw[f"{name}_distill_step"]), 3),
            "train_ratio_self_teacher_vs_paper": round(
                (raw[f"{name}_self_teacher_step"] + raw[f"{name}_distill_step"])
                / (raw[f"{name}_teacher_step"] + raw[f"{name}_distill_step"]), 3),
            "train_ratio_teacher_slice_vs_paper": round(
                (raw[f"{name}_self_teacher_step"] + raw[f"{name}_distill_labels_step"])
                / (raw[f"{name}_teacher_step"] + raw[f"{name}_distill_step"]), 3),
            "eval_ratio_pairwise_vs_maxprob": round(raw[f"{name}_eval_pairwise"]
                                                    / raw[f"{name}_eval_max_prob"], 3),
            "train_ratio_spaces_vs_teacher_slice": round(
                (slice_task + raw[f"{name}_fit_stats_{TASKS}"])
                / (slice_task + raw[f"{name}_fit_stats_0"]), 3),
            "train_ratio_bf16_vs_fp32": round(
                (raw[f"{name}_bf16_teacher_step"] + raw[f"{name}_bf16_distill_step"])
                / (raw[f"{name}_teacher_step"] + raw[f"{name}_distill_step"]), 3),
            "teacher_images_per_s": round(batch_size / raw[f"{name}_teacher_step"], 1),
            "distill_images_per_s": round(batch_size / raw[f"{name}_distill_step"], 1),
            "eval_images_per_s": round(eval_images / raw[f"{name}_predict"], 1)}
    main = "torch" if "torch" in backends else next(iter(backends), None)
    for key in BACKEND_RATIOS:
        out[key] = out["per_backend"][main][key] if main else None
    both = {"tf", "torch"} <= set(backends)
    for key, parts in (("teacher", ["teacher_step"]), ("distill", ["distill_step"]),
                       ("train", ["teacher_step", "distill_step"]), ("eval", ["predict"])):
        out[f"tf_vs_torch_{key}"] = round(sum(raw[f"tf_{p}"] for p in parts)
                                          / sum(raw[f"torch_{p}"] for p in parts),
                                          3) if both else None
    out["targets"] = TARGETS
    out["meets_targets"] = {k: None if out[k] is None else out[k] <= v
                            for k, v in TARGETS.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="4 batches, 3 repeats, 256 images")
    parser.add_argument("--backends", default="torch,tf", help="comma-separated: torch,tf")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads for every framework (default 1: on a shared "
                             "2-core box more threads spin-wait and time mostly noise)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    args = parser.parse_args(argv)
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    batches, repeats, images = (4, 3, 256) if args.quick else (8, 5, 512)
    out = run_speed(names, args.device, args.batch_size, batches, repeats, images,
                    threads=args.threads)
    if not args.no_memory:
        from benchmarks.memory import run_memory

        out["memory"] = run_memory([n for n in names if n in out["per_backend"]],
                                   args.device, args.threads, args.batch_size)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for key in (*BACKEND_RATIOS, "tf_vs_torch_train", "tf_vs_torch_eval"):
        target = TARGETS.get(key)
        print(f"{key:22s} {out[key]!s:>8}" + (f"   (target <= {target})" if target else ""))
    clock = out["config"]["clock"]
    for key, value in out["raw_seconds"][clock].items():
        print(f"  {key:22s} {value:.4f} s ({clock})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
