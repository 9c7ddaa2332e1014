"""What `mind sweep` costs and gains on this machine, as ratios measured within one run:

(a) a sweep of N small trials with 1 CPU each, Ray's start and stop included / N x one trial
    alone (`mind run --threads 1`, a process of its own as a user would run it; the median of
    three)                                                              target <= 0.6 on 2 CPUs
(b) Ray's overhead per trial: each task's wall time from submission to result less the time
    inside the task, plus Ray's start-up and shut-down spread over the N trials   target <= 2 s
(c) two `mind run --threads 1` side by side / one alone (medians of two and three)
                                                                                 target <= 1.3

    python -m benchmarks.sweep_speed [--trials 8] [--epochs 3] [--backend torch] [--json]

The trials are the smoke preset (the synthetic 12x12 set, small CNN, 5 tasks) with --epochs
epochs per phase, seeds 0..N-1; one trial alone is seed 0. Results: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def settings(epochs: int) -> list[str]:
    return [f"teacher.epochs={epochs}", f"distill.epochs={epochs}"]


def run_command(out: Path, backend: str, epochs: int, threads: int, seed: int = 0) -> list[str]:
    command = [sys.executable, "-m", "mind_core.cli", "run", "--preset", "smoke", "--backend",
               backend, "--seed", str(seed), "--device", "cpu", "--threads", str(threads),
               "--out", str(out), "--quiet"]
    for item in settings(epochs):
        command += ["--set", item]
    return command


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_alone(tmp: Path, backend: str, epochs: int, threads: int = 1) -> tuple[float, float]:
    """Wall and CPU seconds of one `mind run` process, from its start to its exit."""
    out = tmp / f"alone-{time.monotonic_ns()}"
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run(run_command(out, backend, epochs, threads), check=True, cwd=ROOT,
                   env=_env(), capture_output=True)
    return time.perf_counter() - start, _children_cpu() - cpu


def time_side_by_side(tmp: Path, backend: str, epochs: int) -> tuple[float, float]:
    """Wall seconds until both of two `mind run --threads 1` started together have ended, and
    the CPU seconds of each (their mean)."""
    cpu, start = _children_cpu(), time.perf_counter()
    children = [subprocess.Popen(run_command(tmp / f"pair-{i}-{time.monotonic_ns()}", backend,
                                             epochs, 1, seed=i), cwd=ROOT, env=_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for i in range(2)]
    for child in children:
        if child.wait() != 0:
            raise RuntimeError(f"mind run exited {child.returncode}")
    return time.perf_counter() - start, (_children_cpu() - cpu) / 2


def measure_sweep(tmp: Path, backend: str, epochs: int, trials: int, cpus: int = 2
                  ) -> dict[str, Any]:
    """A sweep of `trials` seeds with 1 CPU each, in this process: Ray's start-up, the sweep,
    Ray's shut-down (none of either where Ray was already running: then both are 0)."""
    import ray

    from mind_core.sweep.driver import Resources, connect, run_sweep
    from mind_core.sweep.grid import parse_grid
    from mind_core.sweep.progress import Progress

    start = time.perf_counter()
    own = connect(ray, Resources(cpus=cpus))  # the local Ray `mind sweep` starts
    init_s = time.perf_counter() - start if own else 0.0
    grid = parse_grid("smoke", seeds=",".join(map(str, range(trials))), backend=backend,
                      sets=settings(epochs))
    begin = time.perf_counter()
    result = run_sweep(grid, tmp / f"sweep-{time.monotonic_ns()}", Resources(cpus_per_trial=1),
                       command="benchmarks.sweep_speed", progress=Progress(0, quiet=True))
    run_s = time.perf_counter() - begin
    end = time.perf_counter()
    if own:
        ray.shutdown()
    shutdown_s = time.perf_counter() - end if own else 0.0
    outcomes = list(result.outcomes.values())
    if len(outcomes) != trials or any(o["status"] != "finished" for o in outcomes):
        raise RuntimeError(f"the sweep did not finish every trial: {outcomes}")
    task_overhead = statistics.mean(o["wall_seconds"] - o["seconds"] for o in outcomes)
    return {"trials": trials, "ray_init_s": round(init_s, 3), "sweep_run_s": round(run_s, 3),
            "ray_shutdown_s": round(shutdown_s, 3),
            "sweep_s": round(init_s + run_s + shutdown_s, 3),
            "ray_task_overhead_s": round(task_overhead, 3),
            "ray_overhead_per_trial_s": round(task_overhead + (init_s + shutdown_s) / trials, 3),
            "seconds_inside_tasks": [round(o["seconds"], 3) for o in outcomes]}


def run(trials: int, epochs: int, backend: str) -> dict[str, Any]:
    load_before, neighbours = os.getloadavg(), busiest_processes()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        # Interleaved, so that a change in the neighbours' load shows in the repeats.
        alone = [time_alone(tmp, backend, epochs)]
        sweep = measure_sweep(tmp, backend, epochs, trials)
        alone.append(time_alone(tmp, backend, epochs))
        pairs = [time_side_by_side(tmp, backend, epochs)]
        alone.append(time_alone(tmp, backend, epochs))
        pairs.append(time_side_by_side(tmp, backend, epochs))
        alone_two_threads = time_alone(tmp, backend, epochs, threads=2)
    one, pair = statistics.median(a for a, _ in alone), statistics.median(p for p, _ in pairs)
    one_cpu = statistics.median(c for _, c in alone)
    pair_cpu = statistics.median(c for _, c in pairs)
    return {
        "sweep_ratio": round(sweep["sweep_s"] / (trials * one), 3),
        "sweep_ratio_without_ray_start": round(sweep["sweep_run_s"] / (trials * one), 3),
        "ray_overhead_per_trial_s": sweep["ray_overhead_per_trial_s"],
        "side_by_side_ratio": round(pair / one, 3),
        # CPU seconds of one run side by side / alone: ~1 means the pair did the same work,
        # and any wall-time slowdown came from CPU the neighbours took.
        "side_by_side_cpu_ratio": round(pair_cpu / one_cpu, 3),
        "one_alone_s": round(one, 3), "one_alone_runs_s": [round(a, 3) for a, _ in alone],
        "one_alone_cpu_s": round(one_cpu, 3),
        "one_alone_threads2_s": round(alone_two_threads[0], 3),
        "side_by_side_s": round(pair, 3),
        "side_by_side_runs_s": [round(p, 3) for p, _ in pairs],
        "side_by_side_cpu_per_run_s": round(pair_cpu, 3),
        "sweep": sweep,
        "targets": {"sweep_ratio": 0.6, "ray_overhead_per_trial_s": 2.0,
                    "side_by_side_ratio": 1.3},
        "config": {"preset": "smoke", "backend": backend, "epochs_per_phase": epochs,
                   "trials": trials, "cpus_per_trial": 1, "ray_cpus": 2},
        "machine": {"cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
                    "loadavg_before": [round(v, 2) for v in load_before],
                    "loadavg_after": [round(v, 2) for v in os.getloadavg()],
                    "busiest_other_processes_at_start": neighbours,
                    "python": platform.python_version(), "platform": platform.platform(),
                    "versions": _versions(backend)},
    }


def busiest_processes(count: int = 5) -> list[str]:
    """The processes using the most CPU when the benchmark starts (ps's %CPU, an average over
    each process's life, and its command), to say what else was running."""
    try:
        listing = subprocess.run(["ps", "-eo", "pid,pcpu,args", "--sort=-pcpu", "--no-headers"],
                                 capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [line.split(None, 1)[1] for line in listing.splitlines() if len(line.split()) > 2
            and line.split()[0] != str(os.getpid()) and "ps -eo" not in line]
    return [" ".join(row.split())[:100] for row in rows[:count]]


def _versions(backend: str) -> dict[str, str]:
    import ray

    versions = {"ray": ray.__version__}
    if backend == "torch":
        import torch

        versions["torch"] = torch.__version__
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per phase")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.trials, args.epochs, args.backend)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key in ("sweep_ratio", "sweep_ratio_without_ray_start", "ray_overhead_per_trial_s",
                    "side_by_side_ratio", "one_alone_s"):
            print(f"{key}: {results[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
