"""Accuracy of MIND, its ablations and baselines: mean and std over seeds of the final TAg, TAw
and routing accuracy, written to --out as results.md, results.json and one PNG per setting.

    python -m benchmarks.accuracy --settings demo --methods mind,finetune,joint --seeds 0,1
        --backends torch --epochs-scale 0.35 --out benchmarks/results

Settings: demo (built-in fmnist-mini, preset demo), fmnist (full Fashion-MNIST 5x2, preset
fmnist-quick), fmnist-resnet32 (Fashion-MNIST 5x2 with ResNet-32 on issue 12's 4+4-epoch protocol,
where students can collapse), synbols-subset (a generated 50-class Synbols subset, 10 tasks x 5,
small_cnn; rendered once into --data-dir), synbols-selection (the same classes rendered with
another seed: where settings are chosen, so that none is chosen on the subset's test split), or
any preset name, e.g. cifar100 or synbols for the paper's
settings on a GPU machine. Methods: mind_core/methods.py (benchmarks/baselines.py).
Each setting and backend runs as one `mind sweep` (needs the sweep extra) into
--out/sweeps/<setting>-<backend>/, --threads CPUs a run, runs side by side: run the same
command again and finished runs are skipped, interrupted ones resumed (--resume also keeps
earlier invocations in results.json's meta). --merge combines the results.json of several
invocations (other settings, scales or machines) into one table."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from benchmarks.accuracy_tables import invocations, markdown, run_key, summarise
from benchmarks.baselines import METHODS, method_overrides
from benchmarks.plots import plot
from mind_core.config import RunConfig, list_presets, resolve_config, scaled_milestones
from mind_core.data import DatasetError, default_root, prepare_synbols
from mind_core.events import read_events
from mind_core.registry import get_backend
from mind_core.routing import PAPER_RULE
from mind_core.rundir import EVENTS, METRICS
from mind_core.runner import read_run_config
from mind_core.sweep.driver import Resources, run_sweep
from mind_core.sweep.grid import Grid, Trial, expand, safe_part
from mind_core.sweep.trial import read_metrics


@attrs.frozen
class Setting:
    preset: str
    overrides: tuple[str, ...] = ()
    prepare: Callable[[argparse.Namespace], list[str]] | None = None  # -> extra overrides


def _synbols_rendering(args: argparse.Namespace, render_seed: int) -> list[str]:
    """Render (once) a 50-class Synbols subset with `render_seed`; point the run at it."""
    train, test = args.synbols_per_class
    suffix = f"-render{render_seed}" if render_seed else ""
    folder = Path(args.data_dir or default_root()) / f"synbols-50c-{train}-{test}{suffix}"
    if not (folder / "synbols.npz").exists():
        print(f"rendering Synbols 50 classes x {train}+{test} into {folder}", file=sys.stderr)
        prepare_synbols(folder / "synbols.npz", classes=50, per_class_train=train,
                        per_class_test=test, seed=render_seed)
    return [f"data_dir={folder}"]


def synbols_subset(args: argparse.Namespace) -> list[str]:
    return _synbols_rendering(args, render_seed=0)


def synbols_selection(args: argparse.Namespace) -> list[str]:
    """The same 50 classes, other images: settings are chosen here, never on the benchmark's
    own test split (docs/algorithm.md, rules every improvement follows)."""
    return _synbols_rendering(args, render_seed=1)


# ResNet-32 at the paper's 25+25 epochs is GPU work; on a CPU the subset is learnt by the small
# CNN with smaller batches (more optimiser steps per epoch on 2,500 images a task). Every
# routing rule is scored, so the statistics of every space are fitted (the preset, a paper
# one, fits none).
SYNBOLS_SUBSET = ("tasks=10", "model=small_cnn", "teacher.epochs=8", "distill.epochs=8",
                  "teacher.batch_size=64", "distill.batch_size=64", "distill.lr=0.01",
                  "stats.spaces=16")

# Issue 12's protocol for collapsed students: ResNet-32 on Fashion-MNIST 5x2, 4+4 epochs, lr
# 0.005 / 0.035, batch 256, the lr halved for the last epoch of each phase.
FMNIST_RESNET32 = ("model=resnet32", "teacher.epochs=4", "distill.epochs=4", "teacher.lr=0.005",
                   "distill.lr=0.035", "teacher.milestones=[3]", "distill.milestones=[3]",
                   "teacher.batch_size=256", "distill.batch_size=256")

SETTINGS = {
    "demo": Setting("demo"),
    "fmnist": Setting("fmnist-quick"),
    "fmnist-resnet32": Setting("fmnist", FMNIST_RESNET32),
    "synbols-subset": Setting("synbols-quick", SYNBOLS_SUBSET, synbols_subset),
    "synbols-selection": Setting("synbols-quick", SYNBOLS_SUBSET, synbols_selection),
}


def setting_for(name: str) -> Setting:
    if name in SETTINGS:
        return SETTINGS[name]
    presets = [p.name for p in list_presets()]
    if name not in presets:
        raise SystemExit(f"unknown setting {name!r}: use {', '.join(SETTINGS)} or a preset "
                         f"({', '.join(presets)})")
    return Setting(name)


def scaled_epochs(cfg: RunConfig, scale: float) -> list[str]:
    """Overrides multiplying both phases' epochs by scale (at least 1); milestones scale too
    and those that would fall on or past the last epoch are dropped."""
    out = []
    for phase in ("teacher", "distill"):
        pc = getattr(cfg, phase)
        epochs = max(1, round(pc.epochs * scale))
        miles = scaled_milestones(pc.milestones, scale, epochs)
        out += [f"{phase}.epochs={epochs}", f"{phase}.milestones={miles}"]
    return out


# The recorded results are fp32 whatever the presets' default (auto): a row means the same
# arithmetic on every machine. bf16 is compared by adding precision=bf16 (docs/precision.md).
PINNED = ("precision=fp32",)


def make_config(setting: Setting, extra: list[str], method: str, backend: str, seed: int,
                scale: float, device: str) -> RunConfig:
    overrides = [*PINNED, *setting.overrides, *extra, *method_overrides(method),
                 f"backend={backend}", f"seed={seed}", f"device={device}"]
    cfg = resolve_config(setting.preset, overrides)
    if scale != 1.0:
        cfg = resolve_config(setting.preset, overrides + scaled_epochs(cfg, scale))
    return cfg


def setting_grid(setting: Setting, extra: list[str], backend: str, args: argparse.Namespace
                 ) -> Grid:
    """The sweep of one setting and backend: the setting's own overrides and the scaled
    epochs are one-valued --set entries; methods and seeds are the grid's."""
    cfg = make_config(setting, extra, "mind", backend, 0, args.epochs_scale, args.device)
    fixed = [o for o in [*PINNED, *setting.overrides, *extra] if not o.startswith("data_dir=")]
    if args.epochs_scale != 1.0:
        fixed += scaled_epochs(resolve_config(setting.preset, [*setting.overrides, *extra]),
                               args.epochs_scale)
    sets = tuple((key, (value,)) for key, _, value in (o.partition("=") for o in fixed))
    return Grid(presets=(setting.preset,), methods=tuple(args.methods),
                seeds=tuple(args.seeds), sets=sets, backend=backend, device=args.device,
                data_dir=cfg.data_dir or args.data_dir)


def run_all(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """Every setting x backend as one `mind sweep` (mind_core/sweep: the project's one loop
    over runs) into out_dir/sweeps/<setting>-<backend>/; its trials become the rows. A sweep
    run again skips its finished trials and resumes interrupted ones."""
    results_path = out_dir / "results.json"
    rows: list[dict] = []
    earlier: list[dict] = []
    if args.resume and results_path.exists():
        previous = read_results(results_path)
        earlier = invocations(previous["meta"])
    this = {"command": " ".join(["python -m benchmarks.accuracy", *sys.argv[1:]]),
            "settings": args.settings, "methods": args.methods, "seeds": args.seeds,
            "backends": args.backends, "epochs_scale": args.epochs_scale,
            "device": args.device, "threads": args.threads, "python": platform.python_version(),
            "machine": platform.platform(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    this["versions"] = {name: get_backend(name, args.device).versions()
                        for name in args.backends}
    meta = {"merged": [*earlier, this]} if earlier else this
    resources = Resources(cpus_per_trial=max(1, args.threads))
    for setting_name in args.settings:
        setting = setting_for(setting_name)
        try:
            extra = setting.prepare(args) if setting.prepare else []
        except DatasetError as exc:
            print(f"skipping setting {setting_name}: {exc}", file=sys.stderr)
            rows.append({"setting": setting_name, "backend": "-", "method": "-", "seed": -1,
                         "error": str(exc)})
            continue
        for backend in args.backends:
            grid = setting_grid(setting, extra, backend, args)
            sweep_dir = out_dir / "sweeps" / safe_part(f"{setting_name}-{backend}")
            result = run_sweep(grid, sweep_dir, resources, command="benchmarks.accuracy")
            trials = {trial.name: trial for trial in expand(grid)}
            rows += [trial_result(setting_name, backend, trials[row["trial"]], sweep_dir, row)
                     for row in result.rows]
            write_json(results_path, {"meta": meta, "runs": rows, "summary": summarise(rows)})
            if result.interrupted:
                raise KeyboardInterrupt
    this["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    results = {"meta": meta, "runs": rows, "summary": summarise(rows)}
    write_json(results_path, results)
    return results


def trial_result(setting: str, backend: str, trial: Trial, sweep_dir: Path,
                 row: dict[str, Any]) -> dict[str, Any]:
    """A benchmark row from a sweep trial's own metrics.json."""
    cfg = trial.config
    out: dict[str, Any] = {"setting": setting, "backend": backend, "method": trial.method,
                           "seed": trial.seed, "epochs": [cfg.teacher.epochs, cfg.distill.epochs],
                           "trial": trial.name}
    metrics = read_metrics(sweep_dir / trial.name)
    if row["status"] != "finished" or not metrics:
        out["error"] = row.get("error") or f"trial {row['status']}"
        return out
    return metrics_row(out, metrics, row["seconds"])


def collected_result(spec: str) -> dict[str, Any]:
    """A benchmark row from a run made outside the benchmark (`mind run`), given as
    SETTING:METHOD:RUN_DIR[:METRICS_JSON]; METRICS_JSON: `mind eval RUN --json` output to use
    instead of the run's metrics.json (e.g. with --refit-stats)."""
    setting, method, run_dir, *other = spec.split(":")
    cfg = read_run_config(Path(run_dir))
    metrics = json.loads(Path(other[0] if other else Path(run_dir) / METRICS).read_text())
    finished = [e for e in read_events(Path(run_dir) / EVENTS)
                if e.get("type") == "run_finished"]
    out: dict[str, Any] = {"setting": setting, "backend": cfg.backend, "method": method,
                           "seed": cfg.seed, "epochs": [cfg.teacher.epochs, cfg.distill.epochs],
                           "trial": Path(run_dir).name}
    return metrics_row(out, metrics, finished[-1]["seconds"] if finished else None)


def metrics_row(out: dict[str, Any], metrics: dict[str, Any], seconds) -> dict[str, Any]:
    out["seconds"] = seconds
    out.update(routing_rule=metrics.get("routing_rule", PAPER_RULE),
               final=metrics["final"], tag=metrics["tag"], taw=metrics["taw"],
               routing=metrics["routing"], acc_matrix_tag=metrics["acc_matrix_tag"],
               acc_matrix_taw=metrics["acc_matrix_taw"],
               forgetting_tag=metrics["forgetting"]["tag"]["average"],
               teacher_taw=metrics.get("teacher_taw"), student_taw=metrics.get("student_taw"))
    return out


def read_results(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not {"runs", "meta"} <= data.keys():
        raise SystemExit(f"{path} is not a results.json written by benchmarks.accuracy")
    return data


def merge(paths: list[Path]) -> dict[str, Any]:
    """One results dict from several: a run present in more than one file (same setting,
    backend, method, seed and epochs) is taken from the last file that has it."""
    rows: dict[tuple, dict] = {}
    metas: list[dict] = []
    for path in paths:
        data = read_results(path)
        metas += invocations(data["meta"])
        for row in data["runs"]:
            if "error" not in row:
                rows[(*run_key(row), tuple(row["epochs"]))] = row
    runs = list(rows.values())
    return {"meta": {"merged": metas}, "runs": runs, "summary": summarise(runs)}


def collect(args: argparse.Namespace) -> dict[str, Any]:
    """--out's results with the collected runs added (a run already there is replaced)."""
    path = args.out / "results.json"
    earlier = read_results(path) if path.exists() else {"meta": {"merged": []}, "runs": []}
    meta = {"command": " ".join(["python -m benchmarks.accuracy", *sys.argv[1:]]),
            "machine": platform.platform(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    new = [collected_result(spec) for spec in args.collect]
    keys = {(*run_key(r), tuple(r["epochs"])) for r in new}
    runs = [r for r in earlier["runs"] if (*run_key(r), tuple(r.get("epochs", ()))) not in keys]
    runs += new
    return {"meta": {"merged": [*invocations(earlier["meta"]), meta]}, "runs": runs,
            "summary": summarise(runs)}


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=True))
    tmp.replace(path)


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=comma_list, default=["demo", "fmnist", "synbols"])
    parser.add_argument("--methods", type=comma_list, default=list(METHODS))
    parser.add_argument("--seeds", type=lambda s: [int(v) for v in comma_list(s)],
                        default=[0, 1, 2])
    parser.add_argument("--backends", type=comma_list, default=["torch"])
    parser.add_argument("--epochs-scale", type=float, default=1.0,
                        help="multiply every phase's epochs (min 1) and milestones by this")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default=None, help="where datasets are (and Synbols goes)")
    parser.add_argument("--synbols-per-class", type=lambda s: [int(v) for v in comma_list(s)],
                        default=[500, 100], help="train,test images per class of the subset")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPUs (and framework threads) per run; runs share the machine's "
                        "CPUs side by side (mind sweep --cpus-per-trial)")
    parser.add_argument("--resume", action="store_true", help="keep finished runs in --out")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="RESULTS_JSON",
                        help="run nothing: combine these results.json files into --out")
    parser.add_argument("--collect", nargs="+", metavar="SETTING:METHOD:RUN[:EVAL_JSON]",
                        help="run nothing: rows from runs made with `mind run` (and their "
                        "`mind eval --json` output where given), merged into --out's results")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        results = merge(args.merge)
        write_json(args.out / "results.json", results)
    elif args.collect:
        results = collect(args)
        write_json(args.out / "results.json", results)
    else:
        results = run_all(args, args.out)
    (args.out / "results.md").write_text(markdown(results))
    pngs = plot(results, args.out)
    print(markdown(results))
    print(f"wrote {args.out / 'results.md'}, {args.out / 'results.json'}"
          + (f", {', '.join(pngs)}" if pngs else ""), file=sys.stderr)
    return 1 if any("error" in r for r in results["runs"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
