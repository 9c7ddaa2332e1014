"""The first hour, again (issue 25): what `mind run` prints says what is true and no more —
no distillation column for a phase without one, --quiet prints the summary line, the summary
names the rules as the docs do — and `mind config` reads what `mind run` reads."""

from __future__ import annotations

import json
import re

import pytest

from mind_core.cli import main
from mind_core.events import read_events

FAKE = ["--backend", "tests.fakes:FakeBackend", "--dataset", "synthetic"]
DISTILL_COLUMN = re.compile(r"ce \d+\.\d+  distill \d")


def _run(tmp_path, capsys, *args: str) -> tuple[str, list[dict]]:
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", *FAKE, "--set", "tasks=2", "--out", str(out),
                 *args]) == 0
    return capsys.readouterr().out, list(read_events(out / "events.jsonl"))


def test_a_phase_without_distillation_has_no_distill_column(tmp_path, capsys):
    printed, events = _run(tmp_path, capsys, "--set", "variant=teacher_slice")
    epochs = [e for e in events if e["type"] == "epoch_ended"]
    assert {e["phase"] for e in epochs} == {"teacher", "distill"}
    assert all(e["distill"] is None for e in epochs)  # beta 0: there is no such term
    assert not DISTILL_COLUMN.search(printed)


def test_a_distilling_phase_keeps_its_distill_column(tmp_path, capsys):
    printed, events = _run(tmp_path, capsys, "--set", "variant=mind")
    assert all(isinstance(e["distill"], float) for e in events
               if e["type"] == "epoch_ended" and e["phase"] == "distill")
    assert all(e["distill"] is None for e in events
               if e["type"] == "epoch_ended" and e["phase"] == "teacher")
    assert len(DISTILL_COLUMN.findall(printed)) == 2  # the one distill epoch of each task


def test_quiet_prints_the_summary_line_and_where_the_run_is(tmp_path, capsys):
    printed, _ = _run(tmp_path, capsys, "--quiet")
    lines = [line for line in printed.splitlines() if not line.startswith("warning:")]
    assert len(lines) == 2, printed
    assert lines[0].startswith("TAg ") and lines[1] == f"Run directory: {tmp_path / 'run'}"


def test_the_summary_names_rules_as_the_docs_do(tmp_path, capsys):
    printed, _ = _run(tmp_path, capsys)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    paper = metrics["final"]["rules"]["max_prob"]["tag"]
    assert f"(paper's rule max_prob: TAg {100 * paper:5.1f}%)" in printed
    assert "entropy routing" not in printed
    assert "Accuracy matrix (TAg)" in printed and "Accuracy matrix (TAw)" in printed
    assert "TAG" not in printed and "TAW" not in printed


@pytest.mark.parametrize("flag", ["--config", "--from"])
def test_mind_config_reads_a_file_or_a_run_as_mind_run_does(tmp_path, capsys, flag):
    _run(tmp_path, capsys, "--set", "seed=7")
    source = tmp_path / "run"
    if flag == "--config":
        assert main(["presets", "--show", "smoke"]) == 0
        source = tmp_path / "mine.toml"
        source.write_text(capsys.readouterr().out.replace("seed = 0", "seed = 7"))
    # A run's module:Class backend is named again, as for every command reading a run.
    assert main(["config", flag, str(source), "--set", "tasks=3",
                 "--set", "backend=tests.fakes:FakeBackend"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["seed"], shown["tasks"]) == (7, 3)
    assert main(["config", flag, str(source), "--preset", "demo"]) == 2
    assert "cannot be used together" in capsys.readouterr().err
