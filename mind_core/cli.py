"""The `mind` command: run, resume and evaluate MIND; report a run's results as plots and
CSV tables; list presets and datasets.

Exit codes: 0 done, 1 the run failed, 2 bad input (config, data, run directory, checkpoint),
130 interrupted (the run checkpointed first; `mind resume DIR` continues it).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import traceback
from pathlib import Path

from mind_core.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    error_log_dir,
    write_error_log,
)
from mind_core.process import StopFlag, usable_cpus
from mind_core.version import __version__

# --threads of run and resume: what each backend bounds with it.
THREADS_HELP = ("the framework's threads: torch's intra-op pool, tf's intra-op and inter-op pools "
                "(default: the CPUs this process may use)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mind", description="MIND: replay-free class-incremental learning by "
        "multi-task network distillation (PyTorch or TensorFlow backend).")
    parser.add_argument("--version", action="version", version=f"mind {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="train MIND (default: the demo preset on built-in data)",
                         description="Train MIND task by task and evaluate after each task.")
    _add_config_source(run, "rerun that run's configuration (with --set and flags on top)")
    run.add_argument("--backend", help="torch (default), tf, or module:Class")
    run.add_argument("--dataset", help="dataset name (see `mind datasets`), npz:PATH (or "
                     "PATH.npz), folder:PATH")
    run.add_argument("--data-dir", help="where datasets are looked for (else $MIND_DATA_DIR)")
    run.add_argument("--seed", type=int, help="random seed (default from the preset: 0)")
    run.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    run.add_argument("--out", type=Path, help="run directory (default runs/<preset>-<backend>-<time>)")
    run.add_argument("--quiet", action="store_true", help="print only the final summary")
    run.add_argument("--threads", type=_threads, metavar="N", help=THREADS_HELP)
    run.add_argument("--tensorboard", type=Path, metavar="DIR", help="also log losses and "
                     "accuracies as TensorBoard scalars in DIR (pip install -e '.[tensorboard]')")

    resume = sub.add_parser("resume", help="continue an interrupted run",
                            description="Continue a run from its last checkpoint.")
    resume.add_argument("run_dir", type=Path)
    resume.add_argument("--backend", help="the run's backend, needed again when it is a "
                        "module:Class (never imported from config.json on its own)")
    resume.add_argument("--quiet", action="store_true")
    resume.add_argument("--threads", type=_threads, metavar="N", help=THREADS_HELP)
    resume.add_argument("--tensorboard", type=Path, metavar="DIR", help="log TensorBoard "
                        "scalars in DIR (the run's earlier log directory continues its curves)")

    ev = sub.add_parser("eval", help="re-evaluate a saved run from its checkpoints",
                        description="Evaluate every finished task of a run from its checkpoints, "
                        "with the run's backend or another one.")
    ev.add_argument("run_dir", type=Path)
    ev.add_argument("--backend", help="evaluate with this backend instead of the run's "
                    "(needed to use the run's own when it is a module:Class)")
    ev.add_argument("--device")
    ev.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    ev.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="evaluate with other inference settings, e.g. --set "
                    "inference.routing=mahalanobis --set inference.temperature=2")
    ev.add_argument("--routing", choices=["all"], help="`all`: one table of every routing "
                    "rule (routing accuracy, TAg, TAw) for the same checkpoints")
    ev.add_argument("--refit-stats", action="store_true",
                    help="fit the routing statistics again from the run's training data (as a "
                    "run with its stats.* settings, or those given with --set, fits them), "
                    "e.g. for a run made with stats.spaces=0; the run directory is not changed")

    pred = sub.add_parser("predict", help="classify new images with a trained run",
                          description="Classify images with a run's final sub-networks, "
                          "task-agnostically with the run's routing rule: one CSV row per image "
                          "(image, class = the dataset's class id, class_name, task = the "
                          "routed sub-network numbered from 1, score = its "
                          "softmax probability of that class).")
    pred.add_argument("run_dir", type=Path)
    pred.add_argument("images", type=Path, help="an .npz (array x, images or x_test) or a "
                      "folder of images of the run's size")
    pred.add_argument("--out", dest="csv_out", type=Path, metavar="FILE",
                      help="write the CSV here (default: standard output)")
    pred.add_argument("--backend", help="predict with this backend instead of the run's")
    pred.add_argument("--device")
    pred.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE", help="other inference settings, e.g. --set "
                      "inference.routing=energy")

    report = sub.add_parser("report", help="plots and CSV tables of a run's results",
                            description="Write PNG plots (accuracy after each task, accuracy "
                            "matrices, weights owned per layer) and CSV tables of a finished or "
                            "partly finished run (needs pip install -e '.[report]').")
    report.add_argument("run_dir", type=Path)
    report.add_argument("--out", dest="report_dir", type=Path, metavar="DIR",
                        help="where to write (default RUN/report)")

    presets = sub.add_parser("presets", help="list configuration presets")
    presets.add_argument("--show", metavar="NAME", help="print every setting of preset NAME "
                         "as TOML, to edit and pass to `mind run --config`")
    ds = sub.add_parser("datasets", help="list, download or generate datasets",
                        description="`mind datasets` lists every dataset and whether it is "
                        "available here; `mind datasets download cifar100|tinyimagenet|core50` "
                        "fetches one (checksum verified, zips unpacked); `mind datasets prepare "
                        "synbols` renders Synbols offline.")
    ds.add_argument("action", nargs="?", default="list", choices=["list", "download", "prepare"])
    ds.add_argument("name", nargs="?", help="dataset for download/prepare")
    ds.add_argument("--data-dir", help="target/search folder (else $MIND_DATA_DIR, "
                    "~/.cache/mind/data)")
    ds.add_argument("--classes", type=int, default=200, help="prepare synbols: classes")
    ds.add_argument("--per-class", type=int, default=500, help="prepare synbols: train images "
                    "per class (test: a tenth)")
    ds.add_argument("--seed", type=int, default=0)

    show = sub.add_parser("config", help="print the resolved configuration as JSON",
                          description="Resolve the settings `mind run` would train with, from "
                          "the same sources, and print them (or the error).")
    _add_config_source(show, "that run's configuration (with --set on top)")

    from mind_core.sweep.command import add_parser as add_sweep_parser

    add_sweep_parser(sub)
    return parser


def _add_config_source(parser: argparse.ArgumentParser, from_help: str) -> None:
    """Where a configuration comes from and what changes it, the same for `mind run` and
    `mind config` (one resolution: config_files.run_config)."""
    parser.add_argument("--preset", help="configuration preset (see `mind presets`; default "
                        "demo)")
    parser.add_argument("--config", type=Path, metavar="FILE.toml", help="a TOML file of "
                        "settings instead of a preset (`mind presets --show NAME` writes one)")
    parser.add_argument("--from", dest="from_run", type=Path, metavar="RUN_DIR", help=from_help)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a setting, e.g. --set tasks=5 "
                        "--set distill.beta=0")


def _threads(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _cmd_run(args) -> int:
    from mind_core.config_files import run_config
    from mind_core.console import ConsoleReporter, run_summary
    from mind_core.outputs import output_dir
    from mind_core.runner import default_run_dir, start_run
    from mind_core.tensorboard import tensorboard_observers

    cfg = run_config(args.preset, args.config, args.from_run, args.overrides,
                     backend=args.backend, dataset=args.dataset, seed=args.seed,
                     device=args.device, data_dir=args.data_dir)
    run_dir = args.out = args.out or default_run_dir(cfg)
    # Before the data and the framework load; never inside another run or sweep directory.
    output_dir(run_dir, "--out", reuse=True)
    stop = StopFlag()
    stop.install()
    with tensorboard_observers(args.tensorboard) as tensorboard:  # checks its extra first
        metrics = start_run(cfg, run_dir, [ConsoleReporter(quiet=args.quiet), *tensorboard],
                            stop, threads=args.threads or usable_cpus())
    print(run_summary(metrics, run_dir, args.quiet))
    return 0


def _cmd_resume(args) -> int:
    from mind_core.console import ConsoleReporter, run_summary
    from mind_core.runner import resume_run
    from mind_core.tensorboard import tensorboard_observers

    stop = StopFlag()
    stop.install()
    with tensorboard_observers(args.tensorboard) as tensorboard:
        metrics = resume_run(args.run_dir, [ConsoleReporter(quiet=args.quiet), *tensorboard],
                             stop, backend=args.backend,
                             threads=args.threads or usable_cpus())
    print(run_summary(metrics, args.run_dir, args.quiet))
    return 0


def _cmd_eval(args) -> int:
    from mind_core.config import parse_overrides
    from mind_core.console import metrics_table, rules_table
    from mind_core.events import dumps  # strict JSON: a missing accuracy is null, not NaN
    from mind_core.routing import unavailable_rules, why_unavailable
    from mind_core.runner import evaluate_run

    metrics = evaluate_run(args.run_dir, args.backend, args.device,
                           overrides=parse_overrides(args.overrides), refit=args.refit_stats)
    missing = unavailable_rules(metrics["final"]["rules"])
    if args.routing == "all":
        rows = rules_table_rows(metrics)
        print(dumps({"routing_rule": metrics["routing_rule"], "rules": rows,
                     "unavailable": missing}) if args.json else rules_table(metrics))
    else:
        print(dumps(metrics) if args.json else metrics_table(metrics))
    if missing and not args.json:
        print(f"\n{why_unavailable(missing)}.")
    return 0


def rules_table_rows(metrics: dict) -> list[dict]:
    final = metrics["final"]
    return [{"rule": name, "routing": values["routing"], "tag": values["tag"],
             "taw": final["taw"]} for name, values in final["rules"].items()]


def _cmd_report(args) -> int:
    from mind_core.report import write_report

    written, notes = write_report(args.run_dir, args.report_dir)
    for path in written:
        print(path)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _cmd_presets(args) -> int:
    from mind_core.config import list_presets

    if args.show:
        from mind_core.config_files import config_to_toml, resolve_config

        print(config_to_toml(resolve_config(args.show)), end="")
        return 0
    presets = list_presets()
    width = max(len(p.name) for p in presets)
    rule_width = max(len(p.routing) for p in presets)
    print(f"{'preset':<{width}}  {'routing':<{rule_width}}  description")
    for p in presets:
        departs = ", ".join(f"{k}={v}" for k, v in p.beyond_paper.items())
        recipe = f"beyond the paper: {departs}" if departs else "the paper's recipe"
        print(f"{p.name:<{width}}  {p.routing:<{rule_width}}  {p.description} ({recipe})")
    return 0


def _cmd_datasets(args) -> int:
    from mind_core.console import DownloadProgress
    from mind_core.data import DatasetError, download, list_datasets, prepare_synbols, search_roots

    if args.action != "list" and args.data_dir:  # it writes there: never in a run directory
        from mind_core.outputs import output_dir

        output_dir(Path(args.data_dir).expanduser(), "--data-dir")
    if args.action == "download":
        if not args.name:
            raise DatasetError("say which dataset to download, e.g. `mind datasets download "
                               "cifar100`")
        progress = DownloadProgress(args.name)
        try:
            path = download(args.name, args.data_dir, progress=progress)
        finally:
            progress.close()
        print(f"{args.name} is ready (md5 verified): {path}")
        return 0
    if args.action == "prepare":
        if args.name != "synbols":
            raise DatasetError("only synbols can be prepared: `mind datasets prepare synbols`")
        root = Path(args.data_dir).expanduser() if args.data_dir else search_roots()[0]
        print(f"Rendering Synbols: {args.classes} classes x {args.per_class} train + "
              f"{max(args.per_class // 10, 1)} test images (this takes a while)...", flush=True)
        path = prepare_synbols(root / "synbols.npz", classes=args.classes,
                               per_class_train=args.per_class,
                               per_class_test=max(args.per_class // 10, 1), seed=args.seed)
        print(f"Wrote {path}")
        return 0
    for info in list_datasets(args.data_dir):
        shape = "x".join(str(s) for s in info.image_shape)
        status = "available" if info.available else f"missing: {info.how_to_get}"
        print(f"{info.name:<14} {info.classes:>4} classes  {shape:<9} {status}")
    return 0


def _cmd_predict(args) -> int:
    from mind_core.config import parse_overrides
    from mind_core.inference import Predictor
    from mind_core.outputs import output_file
    from mind_core.prediction_files import predictions_csv, read_images, save_csv

    # Before the model loads: a wrong --out costs nothing and replaces nothing.
    csv_out = None if args.csv_out is None else output_file(args.csv_out, "--out",
                                                            inputs=[args.images])
    predictor = Predictor(args.run_dir, args.backend, args.device,
                          overrides=parse_overrides(args.overrides))
    ids, images = read_images(args.images, predictor.image_shape)
    text = predictions_csv(ids, predictor.predict(images))
    if csv_out is None:
        sys.stdout.write(text)
        return 0
    save_csv(csv_out, text)
    print(f"{len(ids)} predictions ({predictor.rule_name} routing) written to {args.csv_out}")
    return 0


def _cmd_config(args) -> int:
    from mind_core.config import config_to_dict
    from mind_core.config_files import run_config

    cfg = run_config(args.preset, args.config, args.from_run, args.overrides)
    print(json.dumps(config_to_dict(cfg), indent=2))
    return 0


def _cmd_sweep(args) -> int:
    from mind_core.sweep.command import cmd_sweep

    return cmd_sweep(args)


COMMANDS = {"run": _cmd_run, "resume": _cmd_resume, "eval": _cmd_eval, "report": _cmd_report,
            "sweep": _cmd_sweep,
            "predict": _cmd_predict,
            "presets": _cmd_presets, "datasets": _cmd_datasets, "config": _cmd_config}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0
    from mind_core.bad_input import bad_input_errors
    from mind_core.engine import Diverged, Interrupted

    try:
        return COMMANDS[args.command](args)
    except bad_input_errors() as exc:  # includes a missing optional extra, named
        print(f"mind: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Diverged as exc:  # the run's own numbers failed: exit 1, no traceback to read
        print(f"mind: run failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (Interrupted, KeyboardInterrupt):
        run_dir = getattr(args, "out", None) or getattr(args, "run_dir", None)
        hint = f" `mind resume {run_dir}` continues it." if run_dir else ""
        print(f"mind: interrupted; the last checkpoint is saved.{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a failing run: one line here, the traceback in a file
        run_dir = getattr(args, "out", None) or getattr(args, "run_dir", None)
        log = write_error_log(traceback.format_exc(), error_log_dir(args.command, run_dir))
        print(f"mind: run failed: {type(exc).__name__}: {exc} (traceback in {log})",
              file=sys.stderr)
        return EXIT_FAILED


def command() -> None:
    """The `mind` program: main, then exit with its code. Freezing the garbage collector's
    objects first skips the collections Python runs over everything torch or TF loaded as it
    shuts down (0.9 s of a 1 s exit after a torch run); files are closed and atexit handlers
    run as ever. main() itself leaves the collector alone: tests call it many times in one
    process."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    command()
