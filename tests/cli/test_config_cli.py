"""`mind run --config FILE.toml`, `mind run --from RUN_DIR` and `mind presets --show NAME` with
the numpy fake backend: round trips, settings on top, and one line (exit 2) for bad input."""

from __future__ import annotations

import json

import pytest

from mind_core.cli import main
from mind_core.config import config_from_dict, list_presets, resolve_config
from mind_core.config_files import run_config

FAKE = ["--backend", "tests.fakes:FakeBackend", "--dataset", "synthetic"]
TINY = ["--set", "tasks=2", "--set", "teacher.batch_size=64", "--set", "distill.batch_size=64"]


def one_line(err: str) -> bool:
    return err.startswith("mind: error:") and err.count("\n") == 1 and "Traceback" not in err


def saved_config(run_dir):
    return config_from_dict(json.loads((run_dir / "config.json").read_text())["config"])


@pytest.mark.parametrize("preset", [p.name for p in list_presets()])
def test_presets_show_writes_toml_that_config_reads_back_to_the_same_config(tmp_path, capsys,
                                                                            preset):
    assert main(["presets", "--show", preset]) == 0
    path = tmp_path / "saved.toml"
    path.write_text(capsys.readouterr().out)
    assert run_config(config_file=path) == resolve_config(preset)


def test_a_run_from_a_config_file_with_set_on_top(tmp_path, capsys):
    assert main(["presets", "--show", "smoke"]) == 0
    path = tmp_path / "mine.toml"
    path.write_text(capsys.readouterr().out.replace('name = "smoke"\n', ""))
    out = tmp_path / "run"
    assert main(["run", "--config", str(path), *FAKE, *TINY, "--set", "distill.beta=2",
                 "--seed", "4", "--out", str(out), "--quiet"]) == 0
    cfg = saved_config(out)
    assert cfg == resolve_config("smoke", [*TINY[1::2], "distill.beta=2"], name="mine", seed=4,
                                 backend=FAKE[1], dataset="synthetic")
    assert cfg.name == "mine"  # the file's stem when the file has no name


def test_from_reruns_a_runs_config_with_a_new_seed(tmp_path, monkeypatch):
    source = tmp_path / "first"
    assert main(["run", "--preset", "smoke", *FAKE, *TINY, "--set", "variant=packnet",
                 "--set", "allocation.init=zero", "--out", str(source), "--quiet"]) == 0
    again = tmp_path / "again"
    assert main(["run", "--from", str(source), "--set", "seed=1", "--backend", FAKE[1],
                 "--out", str(again), "--quiet"]) == 0
    before, after = saved_config(source), saved_config(again)
    assert after.seed == 1 and before.seed == 0
    assert after.allocation.init == "zero"  # the run's own setting, not packnet's default
    assert config_from_dict({**json.loads((again / "config.json").read_text())["config"],
                             "seed": 0}) == before
    # without --out: a new run directory named after the run, beside the first
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--from", str(source), "--backend", FAKE[1], "--quiet"]) == 0
    [made] = (tmp_path / "runs").iterdir()
    assert made.name.startswith("smoke-FakeBackend-") and saved_config(made) == before


def test_set_variant_on_a_saved_run_or_a_shown_toml_brings_the_variants_settings(tmp_path,
                                                                                 capsys):
    # Issue 24: a teacher_slice run (beta 0, magnitude, teacher init) switched to mind is the
    # paper's MIND, as the same switch on the demo preset gives, not mind with beta 0.
    paper_mind = (5.0, "random", "zero")
    source = tmp_path / "slice"
    assert main(["run", "--preset", "demo", *FAKE, *TINY, "--out", str(source), "--quiet"]) == 0
    assert saved_config(source).variant == "teacher_slice"
    again = tmp_path / "mind"
    assert main(["run", "--from", str(source), "--set", "variant=mind", "--backend", FAKE[1],
                 "--out", str(again), "--quiet"]) == 0
    cfg = saved_config(again)
    assert (cfg.distillation.beta, cfg.allocation.mode, cfg.allocation.init) == paper_mind
    capsys.readouterr()
    assert main(["presets", "--show", "demo"]) == 0
    path = tmp_path / "demo.toml"
    path.write_text(capsys.readouterr().out)
    cfg = run_config(config_file=path, overrides=["variant=mind"])
    assert (cfg.distillation.beta, cfg.allocation.mode, cfg.allocation.init) == paper_mind


def file_with(text: str):
    def make(tmp_path):
        path = tmp_path / "my.toml"
        path.write_text(text)
        return ["--config", str(path)]
    return make


def finished_run(tmp_path):
    run = tmp_path / "done"
    assert main(["run", "--preset", "smoke", *FAKE, *TINY, "--out", str(run), "--quiet"]) == 0
    return ["--from", str(run)]


def broken_run(tmp_path):
    run = tmp_path / "broken"
    run.mkdir()
    (run / "config.json").write_text("{not json")
    return ["--from", str(run)]


@pytest.mark.parametrize("make, message", [
    (file_with("[distillation]\nbetta = 2\n"),
     "my.toml: distillation.betta: unknown setting (did you mean distillation.beta?)"),
    (file_with("tasks = \n"), "my.toml: not TOML: Invalid value (at line 1, column 9)"),
    (file_with("teacher = 3\n"), "my.toml: teacher: expected a table of settings"),
    (file_with("[tasks]\nx = 1\n"), "my.toml: tasks.x: unknown setting (tasks is one value"),
    (file_with("tasks = -2\n"), "my.toml: tasks: must be > 0, got -2"),
    (lambda tmp: ["--config", str(tmp / "absent.toml")], "absent.toml: no such file"),
    (lambda tmp: ["--config", str(tmp)], "is a directory, not a TOML file"),
    (lambda tmp: ["--set", "distill.betta=1"],
     "distill.betta: unknown setting (did you mean distill.beta?)"),
    (lambda tmp: ["--set", "epochs=1"], "(did you mean teacher.epochs or distill.epochs?)"),
    (lambda tmp: [*file_with("tasks = 2\n")(tmp), "--preset", "smoke"],
     "--preset and --config cannot be used together"),
    (lambda tmp: [*finished_run(tmp), *file_with("tasks = 2\n")(tmp)],
     "--config and --from cannot be used together"),
    (lambda tmp: ["--from", str(tmp / "nowhere")], "no run directory at"),
    (lambda tmp: ["--from", str(tmp)], "is not a run directory (no config.json)"),
    (broken_run, "config.json is unreadable"),
])
def test_bad_config_input_is_one_line_exit_2_and_no_run_directory(tmp_path, capsys, monkeypatch,
                                                                  make, message):
    args = make(tmp_path)
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)  # where a default run directory (runs/...) would appear
    out = tmp_path / "out"
    code = main(["run", *args, *FAKE, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and one_line(err), err
    assert message in err
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_presets_show_of_an_unknown_preset_is_one_line(capsys):
    assert main(["presets", "--show", "nope"]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and "unknown preset 'nope'" in err
