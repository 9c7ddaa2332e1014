"""Run directories (issue 14): one process at a time holds a run directory, a run never writes
into a folder it did not make, stop and temp files are cleared only by the lock's holder, and
resume imports a module:Class backend from config.json only when it is named again."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mind_core.cli import main
from tests.cli.cli_helpers import FAKE, ROOT, TRUST, mind, one_line

SLOW = ["--set", "teacher.epochs=200", "--set", "distill.epochs=200", "--set",
        "teacher.batch_size=4", "--set", "distill.batch_size=4"]


def interrupted_run(out: Path) -> None:
    """A fake-backend run stopped once its first task is done (task-0 and resume checkpoints)."""
    from mind_core.config import resolve_config
    from mind_core.engine import Interrupted
    from mind_core.runner import start_run

    cfg = resolve_config("smoke", [], backend=TRUST[1], dataset="synthetic")
    with pytest.raises(Interrupted):
        start_run(cfg, out, should_stop=(out / "checkpoint" / "task-0.safetensors").exists)


def starts(out: Path) -> list[bool]:
    from mind_core.events import read_events
    return [e["resumed"] for e in read_events(out / "events.jsonl") if e["type"] == "run_started"]


def test_a_run_directory_in_use_is_refused_and_its_lock_dies_with_its_process(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mind_core.cli", "run", "--preset", "smoke",
                             *FAKE, *SLOW, "--out", str(out), "--quiet"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (out / "checkpoint" / "resume.safetensors").exists():
            time.sleep(0.05)
        for args in (["resume", str(out), *TRUST], ["run", "--preset", "smoke", *FAKE,
                                                     "--out", str(out)]):
            second = mind(*args)
            assert second.returncode == 2, second.stderr
            assert "in use by another mind process" in second.stderr and one_line(second.stderr)
        assert proc.poll() is None, "the first run should still be training"
        assert starts(out) == [False]  # no second trainer wrote into the directory
    finally:
        proc.kill()  # a crash: the OS drops the lock with the process
        proc.wait(timeout=60)
    from mind_core.rundir import RunDirLock, is_locked
    assert not is_locked(out)
    RunDirLock(out).acquire().release()  # free again: `mind resume` may continue it


def test_two_runs_started_together_into_one_out_cannot_both_succeed(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "mind_core.cli", "run", "--preset", "smoke", *FAKE,
            "--out", str(out), "--quiet"]
    procs = [subprocess.Popen(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    err = next(err for code, err in results if code == 2)
    assert one_line(err) and ("in use by another mind process" in err or "mind resume" in err)
    assert starts(out) == [False]
    assert json.loads((out / "metrics.json").read_text())["tasks_done"] == 5


def test_a_held_run_directory_is_refused_before_data_or_framework_load(tmp_path, capsys):
    from mind_core.rundir import RunDirLock

    out = tmp_path / "run"
    out.mkdir()
    with RunDirLock(out):  # as another process would hold it
        # The dataset cannot be found either: the run directory is checked first.
        code = main(["run", "--preset", "smoke", "--dataset", "cifar100", "--data-dir",
                     str(tmp_path / "nowhere"), "--backend", "tests.fakes:FakeBackend",
                     "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and "in use by another mind process" in err and one_line(err)
    assert sorted(p.name for p in out.iterdir()) == ["run.lock"]


def test_out_into_a_directory_holding_other_files_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "task-0.safetensors").write_bytes(b"an older run's checkpoint")
    code = main(["run", "--preset", "smoke", *FAKE, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and one_line(err)
    assert f"--out {out} is not empty and holds no run (checkpoint/task-0.safetensors)" in err
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint"]  # nothing added or lost


def test_a_stale_stop_file_does_not_stop_a_new_run(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "output.log").write_text("$ mind run ...\n")  # what a launcher (the TUI) writes first
    (out / "STOP").touch()  # left by an earlier stop
    assert main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "metrics.json").read_text())["tasks_done"] == 5
    assert not (out / "STOP").exists()


def test_resume_clears_stop_and_temp_files_only_once_it_holds_the_lock(tmp_path, capsys):
    from mind_core.rundir import RunDirLock

    out = tmp_path / "run"
    interrupted_run(out)
    leftovers = [out / "checkpoint" / ".resume.safetensors.4242.tmp",
                 out / ".metrics.json.4242.tmp"]  # what a killed save leaves
    for path in [*leftovers, out / "STOP"]:
        path.write_bytes(b"")
    with RunDirLock(out):  # the run is still going in another process
        assert main(["resume", str(out), *TRUST]) == 2
        err = capsys.readouterr().err
        assert "in use by another mind process" in err and one_line(err)
        assert (out / "STOP").exists() and all(p.exists() for p in leftovers)
        assert starts(out) == [False]
    assert main(["resume", str(out), *TRUST, "--quiet"]) == 0  # not stopped by the old STOP
    assert starts(out) == [False, True]
    assert not (out / "STOP").exists() and not any(p.exists() for p in leftovers)
    assert not list(out.rglob("*.tmp"))


def test_a_run_without_a_resume_checkpoint_is_restarted_as_the_message_says(tmp_path, capsys):
    from mind_core.config import config_to_dict, resolve_config
    from mind_core.events import write_json_atomic

    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)  # killed before its first checkpoint was written
    cfg = resolve_config("smoke", [], backend=TRUST[1], dataset="synthetic")
    write_json_atomic(out / "config.json", {"name": "run", "config": config_to_dict(cfg)})
    (out / "checkpoint" / ".resume.safetensors.4242.tmp").write_bytes(b"half a checkpoint")
    assert main(["resume", str(out), *TRUST]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and f"start it again in place with `mind run --out {out}`" in err
    assert main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "metrics.json").read_text())["tasks_done"] == 5
    assert not list((out / "checkpoint").glob(".*.tmp"))


def test_a_module_backend_named_only_in_config_json_is_not_imported(tmp_path, capsys,
                                                                       monkeypatch):
    out = tmp_path / "run"
    interrupted_run(out)
    (tmp_path / "planted.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('IMPORTED').touch()\n"
        "from tests.fakes import FakeBackend as Backend\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = json.loads((out / "config.json").read_text())
    config["config"]["backend"] = "planted:Backend"
    (out / "config.json").write_text(json.dumps(config))
    for command in ("eval", "resume"):  # it has a task to evaluate, and one to resume
        assert main([command, str(out)]) == 2
        err = capsys.readouterr().err
        assert one_line(err) and f"pass --backend planted:Backend to `mind {command}`" in err
    assert not (tmp_path / "IMPORTED").exists() and "planted" not in sys.modules
    # A resumed run keeps its backend; passed again, the user's word is taken.
    assert main(["resume", str(out), "--backend", "torch"]) == 2
    assert "resumes only with it: pass --backend planted:Backend" in capsys.readouterr().err
    assert main(["resume", str(out), "--backend", "planted:Backend", "--quiet"]) == 0
    assert (tmp_path / "IMPORTED").exists()
    sys.modules.pop("planted", None)


def test_a_plain_backend_in_config_json_needs_no_flag(tmp_path):
    from mind_core.config import resolve_config
    from mind_core.registry import BACKENDS
    from mind_core.runner import trusted_backend

    for name in BACKENDS:
        cfg = resolve_config("smoke", [], backend=name)
        assert trusted_backend(cfg, tmp_path, None, "eval") == name
        assert trusted_backend(cfg, tmp_path, None, "resume") == name
