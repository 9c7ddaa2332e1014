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
from tests.cli.cli_helpers import FAKE, ROOT, TRUST, mind


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
