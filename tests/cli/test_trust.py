"""Adversarial inputs (issue 26): what a run directory, a config file or a user-named output
may make `mind` do. The rules are docs/design.md's "What a run directory may do"; a new
command that reads a run directory or writes a user-named path belongs here too.

Every refusal on the command line is one line, exit 2, no traceback, and nothing lost."""

from __future__ import annotations

import json
import sys

import pytest

import mind_core as mind
from mind_core.cli import main
from tests.cli.cli_helpers import TRUST, one_line

TINY = ["--dataset", "synthetic", "--set", "tasks=2", "--set", "teacher.batch_size=64",
        "--set", "distill.batch_size=64"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-task fake-backend run (read, never changed, by the tests below)."""
    out = tmp_path_factory.mktemp("trust") / "run"
    assert main(["run", "--preset", "smoke", *TRUST, *TINY, "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """An importable module that leaves a file behind when imported: its backend name."""
    (tmp_path / "planted.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('IMPORTED').touch()\n"
        "from tests.fakes import FakeBackend as Backend\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "planted:Backend"
    sys.modules.pop("planted", None)


def imported(tmp_path) -> bool:
    return (tmp_path / "IMPORTED").exists() or "planted" in sys.modules


# ------------------------------------------------- 1. a file never names code to import
def planted_run(finished, tmp_path, backend: str):
    """A copy of a finished run whose config.json names `backend`."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    config = json.loads((copy / "config.json").read_text())
    config["config"]["backend"] = backend
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_run_from_a_directory_naming_a_module_backend_imports_nothing(finished, tmp_path,
                                                                      capsys, planted):
    source = planted_run(finished, tmp_path, planted)
    out = tmp_path / "again"
    assert main(["run", "--from", str(source), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and f"pass --backend {planted}" in err and "config.json" in err
    assert not imported(tmp_path) and not out.exists()
    # Named again on the command line, the user's word is taken.
    assert main(["run", "--from", str(source), "--backend", planted, "--out", str(out),
                 "--quiet"]) == 0
    assert (tmp_path / "IMPORTED").exists()


def test_run_config_naming_os_system_calls_nothing(tmp_path, capsys, monkeypatch):
    import os

    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    path = tmp_path / "evil.toml"
    path.write_text('backend = "os:system"\ndataset = "synthetic"\n')
    out = tmp_path / "run"
    assert main(["run", "--config", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and "evil.toml names the backend 'os:system'" in err
    assert "pass --backend os:system" in err and not calls and not out.exists()


def test_a_builtin_backend_in_a_file_needs_no_flag(tmp_path):
    from mind_core.config_files import run_config

    path = tmp_path / "plain.toml"
    path.write_text('backend = "tf"\n')
    assert run_config(config_file=path).backend == "tf"
    path.write_text('backend = "x:Y"\n')  # vouched for by --set as well as --backend
    assert run_config(config_file=path, overrides=["backend=x:Y"]).backend == "x:Y"
    assert run_config(config_file=path, backend="x:Y").backend == "x:Y"


def test_fit_with_a_config_naming_a_module_backend_imports_nothing(tmp_path, planted):
    path = tmp_path / "mine.toml"
    path.write_text(f'backend = "{planted}"\ndataset = "synthetic"\ntasks = 2\n')
    with pytest.raises(mind.MindError, match=rf"pass backend='{planted}' to mind.fit"):
        mind.fit(config=path, out=tmp_path / "never")
    assert not imported(tmp_path) and not (tmp_path / "never").exists()


def test_the_tui_launch_always_names_the_backend_it_was_given():
    """The launch screen's child is `mind run --preset P --backend B`: the backend is the one
    the user chose in the form (from `mind-tui --backend`), never one read from a file."""
    from tui.process import run_command

    args = run_command(preset="smoke", backend="planted:Backend", dataset="synthetic",
                       overrides=[], out="runs/x")
    assert args[args.index("--backend") + 1] == "planted:Backend" and "--from" not in args


# ------------------------------------------- 3. numbers at the API's and protocol's boundary
@pytest.mark.parametrize("batch_size", [-3, 0, 2.5, True, "4", float("nan"), None])
def test_run_predict_refuses_a_batch_size_that_is_not_a_whole_number_above_0(finished,
                                                                            batch_size):
    from mind_core.data import load_dataset

    x = load_dataset("synthetic").x_test[:10]
    run = mind.load(finished, backend=TRUST[1])
    if batch_size is None:  # the run's own
        assert len(run.predict(x)[0]) == 10
        return
    with pytest.raises(mind.MindError, match=r"^batch_size must be"):
        run.predict(x, batch_size=batch_size)


def test_a_numpy_whole_number_is_a_batch_size(finished):
    import numpy as np

    from mind_core.data import load_dataset

    x = load_dataset("synthetic").x_test[:10]
    run = mind.load(finished, backend=TRUST[1])
    assert (run.predict(x, batch_size=np.int64(3))[0] == run.predict(x)[0]).all()


@pytest.mark.parametrize("settings", [{"tasks": 2.5}, {"tasks": True}, {"tasks": -1},
                                      {"seed": 2.5}, {"seed": -1}, {"seed": "x"}])
def test_fit_refuses_numbers_that_are_not_settings(tmp_path, settings):
    with pytest.raises(mind.MindError, match=rf"^{next(iter(settings))}: "):
        mind.fit(None, "synthetic", backend=TRUST[1], preset="smoke", out=tmp_path / "n",
                 **settings)
    assert not (tmp_path / "n").exists()


@pytest.mark.parametrize("value", [True, "x", float("nan"), -1])
def test_evaluate_refuses_a_temperature_that_is_not_a_number(finished, value):
    run = mind.load(finished, backend=TRUST[1])
    with pytest.raises(mind.MindError, match="inference.temperature"):
        run.evaluate(temperature=value)


# ------------------------------------------------ 4. sweeps count each trial once, and only done
def test_a_run_killed_between_its_metrics_and_last_checkpoint_is_not_finished(tmp_path,
                                                                            monkeypatch):
    """metrics.json is written after the task's checkpoint, and a sweep counts a trial
    finished only when its last task checkpoint is there."""
    from mind_core.config import resolve_config
    from mind_core.engine import Engine
    from mind_core.runner import start_run
    from mind_core.sweep.trial import is_finished

    cfg = resolve_config("smoke", ["tasks=2", "teacher.batch_size=64",
                                   "distill.batch_size=64"], backend=TRUST[1],
                         dataset="synthetic")
    save = Engine._save_task_checkpoint

    def crash_on_the_last(self, t):
        if t == cfg.tasks - 1:
            raise OSError("disk full")
        save(self, t)

    monkeypatch.setattr(Engine, "_save_task_checkpoint", crash_on_the_last)
    out = tmp_path / "run"
    with pytest.raises(OSError):
        start_run(cfg, out)
    assert json.loads((out / "metrics.json").read_text())["tasks_done"] == 1
    assert not is_finished(out, cfg.tasks)
    # metrics.json from an older engine that wrote it first: still not finished.
    metrics = json.loads((out / "metrics.json").read_text())
    (out / "metrics.json").write_text(json.dumps({**metrics, "tasks_done": 2}))
    assert not is_finished(out, cfg.tasks)


# ------------------------------------- 2. a user-named output never replaces what a run owns
@pytest.fixture
def images(tmp_path):
    import numpy as np

    from mind_core.data import load_dataset

    path = tmp_path / "images.npz"
    np.savez(path, x=load_dataset("synthetic").x_test[:8])
    return path


def snapshot(folder) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("target", [
    lambda run, images: run / "checkpoint" / "task-1.safetensors",
    lambda run, images: run / "config.json",
    lambda run, images: run / "run.lock",
    lambda run, images: run / "new.csv",  # anything inside a run directory
    lambda run, images: run / "checkpoint",
    lambda run, images: images,
    lambda run, images: __import__("pathlib").Path("/dev/null"),
    lambda run, images: images.parent / "nowhere" / "p.csv",
])
def test_predict_out_never_replaces_a_run_file_the_input_or_a_device(finished, images,
                                                                      capsys, target):
    out = target(finished, images)
    before, data = snapshot(finished), images.read_bytes()
    assert main(["predict", str(finished), str(images), *TRUST, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and str(out) in err
    assert snapshot(finished) == before and images.read_bytes() == data


def test_predict_out_through_a_symlink_is_checked_where_it_points(finished, images, tmp_path,
                                                                  capsys):
    """Links are followed: the checks apply to the file actually written, and a link to a
    plain file writes that file and stays a link."""
    link = tmp_path / "link.csv"
    link.symlink_to(finished / "config.json")
    before = snapshot(finished)
    assert main(["predict", str(finished), str(images), *TRUST, "--out", str(link)]) == 2
    assert "is inside" in capsys.readouterr().err and snapshot(finished) == before
    link.unlink()
    (tmp_path / "real.csv").write_text("old")
    link.symlink_to(tmp_path / "real.csv")
    assert main(["predict", str(finished), str(images), *TRUST, "--out", str(link)]) == 0
    assert link.is_symlink() and (tmp_path / "real.csv").read_text().startswith("image,class")


def test_report_out_stays_out_of_run_directories_but_its_own_report_folder(finished,
                                                                          tmp_path, capsys):
    pytest.importorskip("matplotlib")
    before = snapshot(finished)
    for out in (finished, finished / "checkpoint", finished / "config.json"):
        assert main(["report", str(finished), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert one_line(err) and str(out) in err
    assert snapshot(finished) == before
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    assert main(["report", str(copy), "--out", str(copy / "report")]) == 0
    assert main(["report", str(copy), "--out", str(tmp_path / "elsewhere")]) == 0


def test_tensorboard_that_cannot_be_written_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = tmp_path / "run"
    for logs in (blocker, blocker / "tb"):
        assert main(["run", "--preset", "smoke", *TRUST, *TINY, "--out", str(out),
                     "--tensorboard", str(logs)]) == 2
        err = capsys.readouterr().err
        assert one_line(err) and f"--tensorboard {logs}" in err
        assert not out.exists()


# ------------------------------- 10. only the process that owns a run writes its error.log
@pytest.mark.parametrize("command, target", [
    ("predict", "mind_core.inference.Predictor.predict"),
    ("eval", "mind_core.runner.evaluate_run"),
    ("report", "mind_core.report.write_report"),
])
def test_a_failing_reader_leaves_the_runs_error_log_alone(finished, images, tmp_path, capsys,
                                                          monkeypatch, command, target):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    (copy / "error.log").write_text("the real failure's traceback\n")

    def boom(*args, **kwargs):
        raise RuntimeError("reader crashed")

    monkeypatch.setattr(target, boom)
    monkeypatch.chdir(tmp_path)
    extra = {"predict": [str(images), *TRUST], "eval": TRUST, "report": []}[command]
    assert main([command, str(copy), *extra]) == 1
    err = capsys.readouterr().err
    assert "reader crashed" in err and "mind-error.log" in err
    assert (copy / "error.log").read_text() == "the real failure's traceback\n"
    assert "reader crashed" in (tmp_path / "mind-error.log").read_text()


def test_a_failing_run_still_writes_its_own_error_log(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", "--backend", "tests.fakes:CrashingBackend",
                 *TINY, "--out", str(out)]) == 1
    assert "simulated backend crash" in (out / "error.log").read_text()


def test_a_run_or_a_dataset_is_never_written_inside_a_run_directory(finished, tmp_path,
                                                                   capsys):
    before = snapshot(finished)
    for args in (["run", "--preset", "smoke", *TRUST, *TINY, "--out", str(finished / "sub")],
                 ["datasets", "prepare", "synbols", "--data-dir", str(finished)],
                 ["datasets", "download", "cifar100", "--data-dir", str(finished / "data")]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert one_line(err) and "is inside" in err
    with pytest.raises(mind.MindError, match="is inside"):
        mind.fit(None, "synthetic", backend=TRUST[1], preset="smoke", out=finished / "sub")
    assert snapshot(finished) == before and not (finished / "sub").exists()
