"""The `mind` command end to end with the numpy fake backend: files, exit codes, messages."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mind_core.cli import main

ROOT = Path(__file__).resolve().parents[2]
FAKE = ["--backend", "tests.fakes:FakeBackend", "--dataset", "synthetic"]
TRUST = FAKE[:2]  # eval and resume import a module:Class backend only when it is named again


def mind(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "mind_core.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_smoke_run_writes_the_documented_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "TAg" in printed and "Accuracy matrix (TAw)" in printed and str(out) in printed
    assert {p.name for p in out.iterdir()} >= {"config.json", "events.jsonl", "metrics.json",
                                               "checkpoint"}
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["seed"] == 3 and config["config"]["dataset"] == "synthetic"
    assert {"python", "numpy", "mind", "backend"} <= set(config["versions"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tasks_done"] == 5 and len(metrics["acc_matrix_tag"][-1]) == 5


def test_eval_json_reproduces_the_runs_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet"])
    capsys.readouterr()
    assert main(["eval", str(out), *TRUST, "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "metrics.json").read_text())
    saved.pop("threads"), saved.pop("precision")  # the training process's; eval trains nothing
    assert evaluated == saved


def test_the_thread_count_is_recorded_and_printed(tmp_path, capsys):
    """Results on CPU depend on the framework's threads: config.json, metrics.json and the
    header line of `mind run` say how many the run used."""
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--threads", "3"]) == 0
    assert "backend tests.fakes:FakeBackend on cpu in fp32, threads 3 intra-op, dataset" in \
        capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["threads"] == {"intra_op": 3}
    assert json.loads((out / "metrics.json").read_text())["threads"] == {"intra_op": 3}
    # and the precision it trained in (docs/precision.md): a backend without the setting, fp32
    assert json.loads((out / "metrics.json").read_text())["precision"] == "fp32"


def test_same_command_twice_gives_the_same_metrics(tmp_path):
    for name in ("a", "b"):
        assert main(["run", "--preset", "smoke", *FAKE, "--out", str(tmp_path / name),
                     "--quiet"]) == 0
    assert (tmp_path / "a" / "metrics.json").read_text() == \
        (tmp_path / "b" / "metrics.json").read_text()


@pytest.mark.parametrize("args, message", [
    (["run", "--preset", "nope"], "unknown preset 'nope'"),
    (["run", "--preset", "smoke", "--set", "tasks=3", *FAKE], "do not split into 3 equal tasks"),
    (["run", "--preset", "smoke", "--set", "distill.beta=-1", *FAKE], "distillation.beta"),
    (["run", "--preset", "smoke", "--set", "bogus", *FAKE], "expected key=value"),
    (["run", "--preset", "smoke", "--dataset", "cifar100", "--data-dir", "/nonexistent",
      "--backend", "tests.fakes:FakeBackend"], "cifar"),
    (["run", "--preset", "smoke", "--backend", "jax"], "unknown backend"),
    (["resume", "/nonexistent/run"], "no run directory"),
    (["eval", "/nonexistent/run"], "no run directory"),
    (["datasets", "download"], "say which dataset"),
    (["datasets", "download", "fmnist-mini"], "no download is available"),
    (["datasets", "prepare", "cifar100"], "only synbols"),
])
def test_bad_input_is_one_readable_line_and_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    code = main([*args, "--out", str(out)] if args[0] == "run" else args)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert err.startswith("mind: error:")
    assert not out.exists()  # nothing half-made


def test_corrupt_checkpoint_is_a_clear_error_and_is_not_touched(tmp_path, capsys):
    out = tmp_path / "run"
    main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet"])
    bad = out / "checkpoint" / "task-2.safetensors"
    bad.write_bytes(bad.read_bytes()[:100])
    before = bad.read_bytes()
    capsys.readouterr()
    assert main(["eval", str(out), *TRUST]) == 2
    err = capsys.readouterr().err
    assert "task-2.safetensors is corrupt or truncated" in err and "Traceback" not in err
    assert bad.read_bytes() == before


def test_run_into_an_existing_run_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet"])
    metrics = (out / "metrics.json").read_text()
    assert main(["run", "--preset", "smoke", *FAKE, "--out", str(out)]) == 2
    assert "mind resume" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == metrics


def test_resume_of_a_finished_run_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet"])
    assert main(["resume", str(out), *TRUST]) == 2
    assert "already finished" in capsys.readouterr().err


def test_sigint_checkpoints_exits_130_and_resume_finishes_identically(tmp_path):
    slow = ["--set", "teacher.epochs=30", "--set", "distill.epochs=30", "--set",
            "teacher.batch_size=4", "--set", "distill.batch_size=4"]
    reference = tmp_path / "straight"
    assert mind("run", "--preset", "smoke", *FAKE, *slow, "--out", str(reference),
                "--quiet").returncode == 0
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mind_core.cli", "run", "--preset", "smoke",
                             *FAKE, *slow, "--out", str(out)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "checkpoint" / "task-0.safetensors").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "mind resume" in err and "Traceback" not in err
    assert not (out / "metrics.json").exists() or \
        json.loads((out / "metrics.json").read_text())["tasks_done"] < 5
    resumed = mind("resume", str(out), *TRUST, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "metrics.json").read_text()) == \
        json.loads((reference / "metrics.json").read_text())


def test_presets_datasets_version_and_help(capsys):
    assert main(["presets"]) == 0
    listing = capsys.readouterr().out
    assert "demo" in listing and "cifar100-quick" in listing
    assert main(["datasets"]) == 0
    assert "fmnist-mini" in capsys.readouterr().out
    for sub in ("run", "resume", "eval", "presets", "datasets", "config"):
        with pytest.raises(SystemExit) as exit_:
            main([sub, "--help"])
        assert exit_.value.code == 0
        assert "usage: mind" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert "mind 0.1.0" in capsys.readouterr().out


def test_eval_compares_every_routing_rule_on_the_same_checkpoints(tmp_path, capsys):
    out = tmp_path / "run"
    main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet"])
    capsys.readouterr()
    assert main(["eval", str(out), *TRUST, "--routing", "all"]) == 0
    table = capsys.readouterr().out
    from mind_core.routing import ROUTINGS
    rows = [line.split()[0] for line in table.splitlines()[1:] if line.strip()]
    assert rows == list(ROUTINGS) and "(the run's rule)" in table
    assert main(["eval", str(out), *TRUST, "--routing", "all", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "metrics.json").read_text())
    assert data["routing_rule"] == saved["routing_rule"] and data["unavailable"] == []
    assert {r["rule"]: r["tag"] for r in data["rules"]} == \
        {name: v["tag"] for name, v in saved["final"]["rules"].items()}
    # The same checkpoints under another rule: that rule's numbers become the headline.
    assert main(["eval", str(out), *TRUST, "--set", "inference.routing=mahalanobis", "--json"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["routing_rule"] == "mahalanobis"
    assert other["final"]["tag"] == saved["final"]["rules"]["mahalanobis"]["tag"]


@pytest.mark.parametrize("setting, message", [
    ("inference.routing=nearest", "inference.routing: must be one of max_prob, entropy"),
    ("tasks=3", "only inference.* settings (and stats.* with --refit-stats) can change"),
    ("inference.temperature=0", "inference.temperature"),
])
def test_eval_refuses_bad_settings_in_one_line(tmp_path, capsys, setting, message):
    out = tmp_path / "run"
    main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet"])
    capsys.readouterr()
    assert main(["eval", str(out), *TRUST, "--set", setting]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_corrupt_routing_statistics_are_one_line_naming_file_and_tensor(tmp_path, capsys):
    import attrs
    import numpy as np

    from mind_core import checkpoint
    out = tmp_path / "run"
    main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet"])
    path = out / "checkpoint" / "task-2.safetensors"
    ckpt = checkpoint.load(path)
    bad = attrs.evolve(ckpt.stats[1], whiten=np.full_like(ckpt.stats[1].whiten, np.inf))
    checkpoint.save(path, attrs.evolve(ckpt, stats=[ckpt.stats[0], bad, *ckpt.stats[2:]]))
    capsys.readouterr()
    assert main(["eval", str(out), *TRUST]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "stats/1" in err and "'whiten'" in err and err.count("\n") == 1


# ---------------------------------------------------------------- run directories (issue 14)
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


def one_line(err: str) -> bool:
    return err.startswith("mind: error:") and err.count("\n") == 1 and "Traceback" not in err


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


# ----------------------------------------------------------------------------- trust (issue 14)
def strict_json_lines(path: Path) -> list[dict]:
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token} in {path.name}")
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_a_diverged_run_stops_with_one_line_and_exit_1(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--preset", "smoke", "--backend", "tests.fakes:DivergingBackend",
                 "--dataset", "synthetic", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("mind: run failed: the loss diverged (nan) in the distill phase of "
                          "task 1, epoch 0: lower distill.lr")
    failed = strict_json_lines(out / "events.jsonl")[-1]
    assert (failed["type"], failed["reason"], failed["task"], failed["phase"],
            failed["epoch"]) == ("run_failed", "diverged", 1, "distill", 0)


@pytest.mark.parametrize("setting, key", [
    ("beta=nan", "distillation.beta"), ("teacher.lr=inf", "teacher.lr"),
    ("distill.gamma=nan", "distill.gamma"), ("teacher.weight_decay=nan", "teacher.weight_decay"),
    ("temperature=nan", "inference.temperature"),
    ("distillation.outlier_weight=-inf", "distillation.outlier_weight"),
    ("distill.epochs=0", "distill.epochs"),
])
def test_non_finite_settings_and_a_distillation_without_epochs_are_exit_2(tmp_path, capsys,
                                                                          setting, key):
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", *FAKE, "--set", setting, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mind: error: {key}: ") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("variant", ["teacher_slice", "packnet"])
def test_a_variant_without_distillation_still_needs_distill_epochs(tmp_path, capsys, variant):
    # Issue 24: beta 0 does not make the distill phase optional: it trains the task's slice
    # and estimates its BatchNorm statistics.
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", *FAKE, "--set", f"variant={variant}", "--set",
                 "distill.epochs=0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mind: error: distill.epochs: must be > 0") and err.count("\n") == 1
    assert not out.exists()


def test_a_flipped_bit_in_a_checkpoint_is_exit_2_naming_file_and_tensor(tmp_path, capsys):
    out = tmp_path / "run"
    main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet"])
    path = out / "checkpoint" / "task-1.safetensors"
    data = bytearray(path.read_bytes())
    header = int.from_bytes(data[:8], "little")
    start = 8 + header + json.loads(data[8:8 + header])["weight/fc"]["data_offsets"][0]
    data[start] ^= 0x10
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["eval", str(out), *TRUST]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "'weight/fc' fails its crc32 checksum" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_resume_state_with_an_unknown_phase_is_exit_2(tmp_path):
    import attrs

    from mind_core import checkpoint
    out = tmp_path / "run"
    slow = ["--set", "teacher.epochs=30", "--set", "teacher.batch_size=4"]
    proc = subprocess.Popen([sys.executable, "-m", "mind_core.cli", "run", "--preset", "smoke",
                             *FAKE, *slow, "--out", str(out), "--quiet"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    resume = out / "checkpoint" / "resume.safetensors"
    deadline = time.time() + 60
    while time.time() < deadline and not resume.exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    ckpt = checkpoint.load(resume)
    checkpoint.save(resume, attrs.evolve(ckpt, state={**ckpt.state, "phase": "bogus"}))
    resumed = mind("resume", str(out), *TRUST, "--quiet", timeout=60)  # it used to spin
    assert resumed.returncode == 2 and "Traceback" not in resumed.stderr
    assert resumed.stderr == (f"mind: error: {resume}: state field 'phase' is 'bogus'; "
                              "expected one of teacher, allocate, distill, evaluate\n")
