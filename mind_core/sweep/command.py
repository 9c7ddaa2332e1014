"""`mind sweep`: its flags (registered by mind_core/cli.py) and the command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mind_core.errors import EXIT_FAILED, EXIT_INTERRUPTED
from mind_core.process import StopFlag
from mind_core.rundir import ERROR_LOG


def add_parser(sub) -> argparse.ArgumentParser:
    sweep = sub.add_parser(
        "sweep", help="run a grid of runs on Ray (pip install -e '.[sweep]')",
        description="Run every combination of presets x datasets x methods x --set values x "
        "seeds as an ordinary run directory SWEEP/<trial>/, trials side by side as Ray tasks "
        "(a local Ray by default). Running the same command again skips finished trials and "
        "resumes interrupted ones. Writes SWEEP/summary.csv, summary.md and plots/.")
    sweep.add_argument("--presets", help="comma-separated presets (default demo)")
    sweep.add_argument("--datasets", help="comma-separated datasets (default: each preset's)")
    sweep.add_argument("--methods", help="comma-separated methods from mind_core.methods "
                       "(default mind), e.g. mind,packnet,finetune")
    sweep.add_argument("--seeds", help="comma-separated seeds (default: the preset's, 0)")
    sweep.add_argument("--set", dest="sets", action="append", default=[],
                       metavar="KEY=V1,V2", help="a setting and its values, e.g. --set "
                       "distill.beta=1,5 (lists in brackets: --set teacher.milestones=[2,4],[3])")
    sweep.add_argument("--backend", help="torch (default), tf, or module:Class")
    sweep.add_argument("--device", help="auto, cpu, cuda... (default: cpu without "
                       "--gpus-per-trial, else auto)")
    sweep.add_argument("--data-dir", help="where datasets are looked for (on every node)")
    sweep.add_argument("--out", type=Path, help="the sweep directory (default "
                       "sweeps/<presets>-<backend>-<time>); every node must see it at the "
                       "same path")
    sweep.add_argument("--cpus-per-trial", type=float, default=1.0, metavar="N",
                       help="CPUs each trial reserves, and its framework threads (default 1)")
    sweep.add_argument("--gpus-per-trial", type=float, default=0.0, metavar="N",
                       help="GPUs each trial reserves (default 0; 0.5 puts two on one GPU)")
    sweep.add_argument("--address", help="join this Ray cluster (HOST:PORT or auto) instead "
                       "of starting a local Ray")
    sweep.add_argument("--cpus", type=int, metavar="N", help="the local Ray's CPUs (default: "
                       "those this process may use)")
    sweep.add_argument("--quiet", action="store_true", help="no progress line")
    return sweep


def _positive(flag: str, value: float, zero_ok: bool = False) -> None:
    from mind_core.sweep.driver import SweepError

    if not (value >= 0 if zero_ok else value > 0):
        raise SweepError(f"{flag} must be {'>= 0' if zero_ok else '> 0'}, got {value:g}")


def default_out(presets: tuple[str, ...], backend: str) -> Path:
    from mind_core.rundir import run_dir_name, unused_run_dir

    return unused_run_dir(Path("sweeps"), run_dir_name("+".join(presets), backend))


def cmd_sweep(args) -> int:
    from mind_core.console import plural
    from mind_core.sweep.driver import Resources, import_ray, run_sweep
    from mind_core.sweep.grid import parse_grid
    from mind_core.sweep.progress import Progress
    from mind_core.sweep.trial import FAILED, FINISHED

    import_ray()  # first: without the extra, one line and nothing else
    _positive("--cpus-per-trial", args.cpus_per_trial)
    _positive("--gpus-per-trial", args.gpus_per_trial, zero_ok=True)
    if args.cpus is not None:
        _positive("--cpus", args.cpus)
    grid = parse_grid(args.presets, args.datasets, args.methods, args.seeds, args.sets,
                      backend=args.backend, device=args.device, data_dir=args.data_dir)
    out = args.out or default_out(grid.presets, grid.backend or "torch")
    resources = Resources(cpus_per_trial=args.cpus_per_trial,
                          gpus_per_trial=args.gpus_per_trial, address=args.address,
                          cpus=args.cpus)

    # First Ctrl-C / SIGTERM: every running trial checkpoints and stops, nothing new starts;
    # a second one aborts the running trials at once. The progress line says which.
    stop = StopFlag(message=None)
    stop.install()
    command = " ".join(["mind sweep", *sys.argv[2:]]) if sys.argv[1:2] == ["sweep"] \
        else "mind sweep"
    result = run_sweep(grid, out, resources, command=command, should_stop=stop,
                       progress=Progress(0, quiet=args.quiet))
    finished, failed = result.count(FINISHED), result.count(FAILED)
    print(f"{plural(len(result.rows), 'trial')}: {finished} finished, {failed} failed, "
          f"{len(result.rows) - finished - failed} not finished. Results: "
          f"{result.out / 'summary.md'}, {result.out / 'summary.csv'}")
    for row in result.rows:
        if row["status"] == FAILED:
            print(f"  failed: {row['trial']}: {row['error']} "
                  f"(traceback in {result.out / row['trial'] / ERROR_LOG})")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if finished + failed < len(result.rows):  # stopped (or a trial stopped on its own)
        print(f"mind: sweep stopped; run the same command (--out {result.out}) again to "
              "continue it.", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else 0
