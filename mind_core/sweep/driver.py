"""The sweep's driver: connect to Ray (a local instance by default), run every trial that is
not finished as a Ray task with its share of CPUs and GPUs, follow them, stop them on request,
and write the summary. Trials write their run directories straight into the sweep directory,
which every node must see at the same path (docs/sweeps.md)."""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from mind_core.config import config_to_dict
from mind_core.errors import MindError
from mind_core.events import write_json_atomic
from mind_core.outputs import output_dir
from mind_core.process import usable_cpus
from mind_core.rundir import LOCK_FILE, STOP_FILE, RunDirLock
from mind_core.sweep.grid import (
    SWEEP_JSON,
    Grid,
    Trial,
    expand,
    grid_difference,
    method_table,
    read_sweep,
    sweep_record,
)
from mind_core.sweep.preflight import preflight
from mind_core.sweep.progress import Progress, eta_seconds
from mind_core.sweep.summary import write_plots, write_summary
from mind_core.sweep.trial import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    PENDING,
    is_finished,
    run_trial,
    write_error,
)


class SweepError(MindError):
    """Bad input to a sweep (its directory, Ray's address, resources): one line, exit 2,
    nothing written."""


def import_ray():
    from mind_core.extras import require

    return require("ray", "sweep", "mind sweep")


@attrs.frozen(kw_only=True)
class Resources:
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    address: str | None = None  # an existing cluster; None: a local Ray
    cpus: int | None = None  # a local Ray's CPUs (None: those this process may use)

    @property
    def threads(self) -> int:
        """A trial's framework threads: its whole CPUs, at least one."""
        return max(1, math.floor(self.cpus_per_trial))


@attrs.frozen(kw_only=True)
class SweepResult:
    out: Path
    rows: list[dict[str, Any]]
    plots: list[Path]
    notes: list[str]
    interrupted: bool
    # This invocation's trials: what each task returned (status, seconds inside the task,
    # error, resumed, host) and wall_seconds, from its submission to its result.
    outcomes: dict[str, dict[str, Any]] = attrs.Factory(dict)

    def count(self, status: str) -> int:
        return sum(row["status"] == status for row in self.rows)


def check_sweep_dir(out: Path, grid_json: Mapping[str, Any]) -> dict[str, Any] | None:
    """The sweep.json a rerun finds (None for a new sweep); a SweepError for a directory that
    holds another sweep, or anything that is not a sweep's, or lies in a run or sweep
    directory."""
    output_dir(out, "--out", reuse=True)
    if not out.exists():
        return None
    record = read_sweep(out)
    if record is None:
        if (out / SWEEP_JSON).exists():
            raise SweepError(f"{out / SWEEP_JSON} is unreadable: choose another --out")
        # The driver's own lock file and a stale STOP are no other sweep's.
        found = sorted(p.name for p in out.iterdir() if p.name not in (LOCK_FILE, STOP_FILE))
        if found:
            shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
            raise SweepError(f"--out {out} is not empty and holds no sweep ({shown}): choose a "
                             "new or empty directory")
        return None
    recorded = record.get("grid") or {}
    differ = grid_difference(recorded, grid_json)
    if differ:
        seeds = recorded.get("seeds")
        grow = (f"; seeds may be added, keeping the recorded ones (--seeds "
                f"{','.join(map(str, seeds))},...)" if differ == ["seeds"] and seeds
                and isinstance(seeds, list) else "")
        raise SweepError(f"{out} holds another sweep (its {SWEEP_JSON} records other "
                         f"{', '.join(differ)}): rerun it with the same grid to continue it"
                         f"{grow}, or choose another --out")
    return record


def probe_address(address: str, timeout: float = 5.0) -> None:
    """A SweepError unless something answers at host:port (ray.init itself would retry for
    minutes); `auto` is left to Ray, which fails at once without a local cluster."""
    if address == "auto":
        return
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise SweepError(f"--address {address}: expected HOST:PORT (the head node's GCS "
                         "address, e.g. 10.0.0.5:6379) or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise SweepError(f"--address {address}: no Ray cluster answers there "
                         f"({exc.strerror or exc}); start one with `ray start --head` or "
                         "leave out --address for a local Ray") from None


def connect(ray, resources: Resources) -> bool:
    """Start a local Ray or join a cluster; False when this process already had Ray
    initialised (then it is left running afterwards)."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no prompt, no network call
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if resources.address:
        probe_address(resources.address)
        try:
            ray.init(address=resources.address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            hint = "" if os.environ.get("RAY_AUTH_MODE") else (
                "; a cluster with token authentication (`ray start`'s default) needs "
                "RAY_AUTH_MODE=token and its token (~/.ray/auth_token or RAY_AUTH_TOKEN)")
            raise SweepError(f"--address {resources.address}: cannot join the Ray cluster "
                             f"({str(exc).splitlines()[0] if str(exc) else exc}){hint}"
                             ) from None
    else:
        # Trials at the priority of `mind run` (Ray's default nices its workers to 15, so on a
        # busy machine every other process would go first).
        os.environ.setdefault("RAY_worker_niceness", "0")
        # address="local": a new Ray of our own, even where `ray start` left a cluster (or
        # its address file) on this machine, which a plain ray.init() would try to join.
        ray.init(address="local", num_cpus=resources.cpus or usable_cpus(),
                 include_dashboard=False, **quiet)
    return True


def trial_slots(ray, resources: Resources) -> int:
    """How many trials the cluster runs at once; a SweepError where one trial does not fit."""
    total = ray.cluster_resources()
    cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    if resources.cpus_per_trial > cpus:
        raise SweepError(f"--cpus-per-trial {resources.cpus_per_trial:g}: the Ray cluster has "
                         f"{cpus:g} CPUs")
    if resources.gpus_per_trial > gpus:
        raise SweepError(f"--gpus-per-trial {resources.gpus_per_trial:g}: the Ray cluster has "
                         f"{gpus:g} GPUs")
    slots = math.floor(cpus / resources.cpus_per_trial) if resources.cpus_per_trial else 10**6
    if resources.gpus_per_trial:
        slots = min(slots, math.floor(gpus / resources.gpus_per_trial))
    return max(1, slots)


def _device(trial: Trial, resources: Resources) -> Trial:
    """A trial given no GPU runs on the CPU: device auto would take any GPU the node has,
    which Ray does not hide from a task that asked for none."""
    if resources.gpus_per_trial or trial.config.device != "auto":
        return trial
    return attrs.evolve(trial, config=attrs.evolve(trial.config, device="cpu"))


def run_sweep(grid: Grid, out: Path, resources: Resources = Resources(), *,
              command: str = "mind sweep", should_stop: Callable[[], bool] = lambda: False,
              progress: Progress | None = None,
              methods: Mapping[str, Mapping[str, Any]] | None = None) -> SweepResult:
    """Run a sweep to the end (or until should_stop). Bad input (no Ray, an invalid grid value,
    another sweep in `out`, an unreachable address) raises before anything is written. A
    KeyboardInterrupt while trials run aborts them at once (they resume from their last
    checkpoint on the next run of the sweep)."""
    ray = import_ray()
    methods = method_table() if methods is None else methods
    trials = expand(grid, methods)
    out = Path(out).absolute()
    check_sweep_dir(out, grid.to_json(methods))  # before Ray starts: a wrong --out fails fast
    trials = [_device(t, resources) for t in trials]
    to_run = [t for t in trials if not is_finished(out / t.name, t.config.tasks)]
    preflight(to_run, local=resources.address is None)  # before Ray: fails once, not per trial
    started = connect(ray, resources) if to_run else False  # all done: no Ray needed
    try:
        slots = trial_slots(ray, resources) if to_run else 1
        out.mkdir(parents=True, exist_ok=True)
        with RunDirLock(out):  # one driver per sweep directory
            # Again under the lock: another driver may have claimed it since the first check.
            earlier = check_sweep_dir(out, grid.to_json(methods))
            (out / STOP_FILE).unlink(missing_ok=True)
            record = sweep_record(grid, trials, methods, attrs.asdict(resources), command,
                                  earlier)
            write_json_atomic(out / SWEEP_JSON, record)
            progress = progress or Progress(len(trials))
            progress.total = len(trials)
            outcomes, interrupted = _schedule(ray, trials, out, record, resources, slots,
                                              should_stop, progress)
            (out / STOP_FILE).unlink(missing_ok=True)
            rows = write_summary(out, trials, record, outcomes)
            set_keys = [k for k, _ in grid.sets]
            plots, notes = write_plots(out, rows, set_keys)
    finally:
        if started:
            ray.shutdown()
    return SweepResult(out=out, rows=rows, plots=plots, notes=notes, interrupted=interrupted,
                       outcomes=outcomes)


def _job(trial: Trial, out: Path, record: Mapping[str, Any], resources: Resources
         ) -> dict[str, Any]:
    return {"name": trial.name, "run_dir": str(out / trial.name), "sweep_dir": str(out),
            "sweep_id": record["id"], "config": config_to_dict(trial.config),
            "backend": trial.config.backend, "threads": resources.threads}


def _schedule(ray, trials: list[Trial], out: Path, record: Mapping[str, Any],
              resources: Resources, slots: int, should_stop: Callable[[], bool],
              progress: Progress) -> tuple[dict[str, dict[str, Any]], bool]:
    """Submit trials as slots free up, collect their outcomes, rewrite the summary after each.
    Returns the outcomes of this invocation's trials and whether the sweep was stopped."""
    remote = ray.remote(run_trial)
    skipped = {t.name for t in trials if is_finished(out / t.name, t.config.tasks)}
    queue = [t for t in trials if t.name not in skipped]
    outcomes: dict[str, dict[str, Any]] = {}
    running: dict[Any, tuple[Trial, float]] = {}
    durations: list[float] = []
    stopping = False

    def show(force: bool = False) -> None:
        statuses = [o["status"] for o in outcomes.values()]
        now = time.monotonic()
        eta = eta_seconds(durations, len(queue), [now - t0 for _, t0 in running.values()],
                          slots)
        progress.update(statuses.count(FINISHED) + len(skipped), len(skipped), len(running),
                        statuses.count(FAILED), len(queue), None if stopping else eta, force)

    try:
        show(force=True)
        while running or (queue and not stopping):
            if not stopping and should_stop():
                stopping = True
                (out / STOP_FILE).touch()  # every running trial checkpoints and stops
                progress.note(f"Stopping the sweep: {len(running)} running trials save a "
                              "checkpoint and stop (Ctrl-C again to abort them at once); "
                              "run the same command again to continue.")
            while queue and len(running) < slots and not stopping:
                trial = queue.pop(0)
                options = {"num_cpus": resources.cpus_per_trial, "max_retries": 0,
                           "num_gpus": resources.gpus_per_trial, "name": f"mind:{trial.name}"}
                ref = remote.options(**options).remote(_job(trial, out, record, resources))
                running[ref] = (trial, time.monotonic())
            show()
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in ready:
                trial, t0 = running.pop(ref)
                outcome = _outcome(ray, ref, trial, out)
                outcome["wall_seconds"] = round(time.monotonic() - t0, 3)
                outcomes[trial.name] = outcome
                if outcome["status"] == FINISHED:
                    durations.append(time.monotonic() - t0)
                write_summary(out, trials, record, outcomes)
    except KeyboardInterrupt:  # the second Ctrl-C: abort the running trials at once
        for ref, (trial, _) in running.items():
            ray.cancel(ref, force=True)
            outcomes[trial.name] = {"name": trial.name, "status": INTERRUPTED, "error": None}
        # Until their workers are gone (and with them the trials' run locks), 10 s at most.
        if running:
            ray.wait(list(running), num_returns=len(running), timeout=10)
        running.clear()
        stopping = True
        progress.note("Aborted: the running trials continue from their last checkpoint "
                      "when the sweep runs again.")
    show(force=True)
    progress.close()
    for trial in queue:
        outcomes.setdefault(trial.name, {"name": trial.name, "status": PENDING, "error": None})
    return outcomes, stopping


def _outcome(ray, ref, trial: Trial, out: Path) -> dict[str, Any]:
    """A finished task's outcome; a task that died (its worker killed, out of memory) is a
    failed trial, recorded in its error.log like any other failure."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        line = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        write_error(out / trial.name, f"{exc}\n{line}\n")
        return {"name": trial.name, "status": FAILED, "error": line}
