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


def mind(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "mind_core.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_smoke_run_writes_the_documented_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "TAg" in printed and "Accuracy matrix (TAW)" in printed and str(out) in printed
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
    assert main(["eval", str(out), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated == json.loads((out / "metrics.json").read_text())


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
    assert main(["eval", str(out)]) == 2
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
    assert main(["resume", str(out)]) == 2
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
    resumed = mind("resume", str(out), "--quiet")
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
    assert main(["eval", str(out), "--routing", "all"]) == 0
    table = capsys.readouterr().out
    from mind_core.routing import ROUTINGS
    rows = [line.split()[0] for line in table.splitlines()[1:] if line.strip()]
    assert rows == list(ROUTINGS) and "(the run's rule)" in table
    assert main(["eval", str(out), "--routing", "all", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "metrics.json").read_text())
    assert data["routing_rule"] == saved["routing_rule"] and data["unavailable"] == []
    assert {r["rule"]: r["tag"] for r in data["rules"]} == \
        {name: v["tag"] for name, v in saved["final"]["rules"].items()}
    # The same checkpoints under another rule: that rule's numbers become the headline.
    assert main(["eval", str(out), "--set", "inference.routing=mahalanobis", "--json"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["routing_rule"] == "mahalanobis"
    assert other["final"]["tag"] == saved["final"]["rules"]["mahalanobis"]["tag"]


def strip_statistics(run_dir: Path) -> None:
    """Make a run look like one written before routing statistics existed."""
    import attrs

    from mind_core import checkpoint
    for path in (run_dir / "checkpoint").glob("task-*.safetensors"):
        checkpoint.save(path, attrs.evolve(checkpoint.load(path), stats=[]))


def test_a_run_without_statistics_evaluates_with_the_score_only_rules(tmp_path, capsys):
    out = tmp_path / "run"
    main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet"])
    strip_statistics(out)
    capsys.readouterr()
    assert main(["eval", str(out), "--routing", "all"]) == 0
    printed = capsys.readouterr().out
    from mind_core.routing import SCORE_ONLY
    table_rows = [line.split()[0] for line in printed.split("\n\n")[0].splitlines()[1:]]
    assert table_rows == list(SCORE_ONLY)
    assert "mahalanobis unavailable: this run's checkpoints hold no routing statistics" \
        in printed
    assert main(["eval", str(out), "--set", "inference.routing=mahalanobis"]) == 2
    err = capsys.readouterr().err
    assert "inference.routing=mahalanobis is unavailable" in err and err.count("\n") == 1


@pytest.mark.parametrize("setting, message", [
    ("inference.routing=nearest", "inference.routing: must be one of max_prob, entropy"),
    ("tasks=3", "only inference.* settings can change"),
    ("inference.temperature=0", "inference.temperature"),
])
def test_eval_refuses_bad_settings_in_one_line(tmp_path, capsys, setting, message):
    out = tmp_path / "run"
    main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet"])
    capsys.readouterr()
    assert main(["eval", str(out), "--set", setting]) == 2
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
    assert main(["eval", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "stats/1" in err and "'whiten'" in err and err.count("\n") == 1
