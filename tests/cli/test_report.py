"""`mind report`: PNG plots and CSV tables from a run directory, with the numpy fake backend."""

import csv
import json
import shutil
import sys

import pytest

from mind_core.cli import main
from mind_core.events import read_events

FAKE = ["--backend", "tests.fakes:FakeBackend", "--dataset", "synthetic"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = {"accuracy.png", "acc_matrix_taw.png", "acc_matrix_tag.png", "ownership.png"}
TABLES = {"per_task_accuracy.csv", "summary.csv", "ownership.csv"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished smoke run (5 tasks of 2 synthetic classes: the set's 10 classes do not split
    into 3); tests that change it work on a copy."""
    out = tmp_path_factory.mktemp("report") / "run"
    assert main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path):
    return shutil.copytree(finished_run, tmp_path / "run")


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def events_of(run, kind):
    return [e for e in read_events(run / "events.jsonl") if e["type"] == kind]


def test_report_writes_matplotlib_pngs_and_prints_every_file(run_copy, capsys):
    pytest.importorskip("matplotlib")
    assert main(["report", str(run_copy)]) == 0
    printed = capsys.readouterr().out.split()
    report = run_copy / "report"
    assert sorted(printed) == sorted(str(report / name) for name in PLOTS | TABLES)
    for name in PLOTS:
        data = (report / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000, name
        assert b"Matplotlib" in data  # the Software text chunk matplotlib writes


def test_csv_rows_are_the_runs_numbers(run_copy, capsys):
    pytest.importorskip("matplotlib")
    assert main(["report", str(run_copy)]) == 0
    metrics = json.loads((run_copy / "metrics.json").read_text())
    evaluated = events_of(run_copy, "evaluated")
    report = run_copy / "report"

    rows = read_csv(report / "per_task_accuracy.csv")
    assert len(rows) == 5 * 6 // 2  # tasks 1..t after each task t
    for row in rows:  # numbered from 1; metrics.json's lists from 0
        t, j = int(row["after_task"]) - 1, int(row["task"]) - 1
        assert float(row["taw"]) == metrics["acc_matrix_taw"][t][j]
        assert float(row["tag"]) == metrics["acc_matrix_tag"][t][j]
        assert float(row["routing"]) == evaluated[t]["per_task_routing"][j]

    summary = read_csv(report / "summary.csv")
    assert [int(r["after_task"]) for r in summary] == [1, 2, 3, 4, 5]
    for key in ("tag", "taw", "routing", "tag_entropy"):
        assert [float(r[key]) for r in summary] == metrics[key]

    allocated = events_of(run_copy, "allocated")[-1]["layers"]
    ownership = read_csv(report / "ownership.csv")
    assert [r["layer"] for r in ownership] == list(allocated)
    for row in ownership:
        layer = allocated[row["layer"]]
        assert int(row["free"]) == layer["free"] and int(row["total"]) == layer["total"]
        assert [int(row[f"task{t}"]) for t in range(1, 6)] == layer["owned"]


def test_partly_finished_run_without_metrics_is_reported_from_its_events(run_copy, tmp_path,
                                                                         capsys):
    """A run stopped after its third task, metrics.json gone: the events give the numbers."""
    pytest.importorskip("matplotlib")
    metrics = json.loads((run_copy / "metrics.json").read_text())
    lines = (run_copy / "events.jsonl").read_text().splitlines(keepends=True)
    third = [i for i, line in enumerate(lines) if '"type": "evaluated"' in line][2]
    (run_copy / "events.jsonl").write_text("".join(lines[:third + 1]))
    (run_copy / "metrics.json").unlink()
    out = tmp_path / "elsewhere"
    assert main(["report", str(run_copy), "--out", str(out)]) == 0
    assert not (run_copy / "report").exists()
    summary = read_csv(out / "summary.csv")
    assert [float(r["tag"]) for r in summary] == metrics["tag"][:3]
    assert [float(r["taw"]) for r in summary] == metrics["taw"][:3]
    allocated = events_of(run_copy, "allocated")[-1]
    assert allocated["task"] == 2
    assert [int(r["task3"]) for r in read_csv(out / "ownership.csv")] == \
        [layer["owned"][2] for layer in allocated["layers"].values()]


def test_without_events_ownership_comes_from_the_newest_checkpoint(run_copy, capsys):
    pytest.importorskip("matplotlib")
    from mind_core import checkpoint, masks

    (run_copy / "events.jsonl").unlink()
    assert main(["report", str(run_copy)]) == 0
    err = capsys.readouterr().err
    assert "routing accuracy not recorded" in err  # it is only in the events
    ckpt = checkpoint.load(run_copy / "checkpoint" / "resume.safetensors")
    counts = masks.ownership_counts(ckpt.owner, ckpt.tasks)
    rows = read_csv(run_copy / "report" / "ownership.csv")
    assert {r["layer"]: [int(r[f"task{t}"]) for t in range(1, 6)] for r in rows} == \
        {name: layer["owned"] for name, layer in counts.items()}
    assert "routing" not in read_csv(run_copy / "report" / "per_task_accuracy.csv")[0]
    assert (run_copy / "report" / "ownership.png").read_bytes().startswith(PNG_SIGNATURE)


def test_without_matplotlib_one_line_names_the_extra_and_nothing_is_written(
        run_copy, tmp_path, monkeypatch, capsys):
    """Runs whether or not matplotlib is installed: its import is made to fail."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises
    before = sorted(p.name for p in run_copy.iterdir())
    for args in ([], ["--out", str(tmp_path / "report")]):
        assert main(["report", str(run_copy), *args]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and "matplotlib" in lines[0]
        assert "pip install -e '.[report]'" in lines[0]
    assert sorted(p.name for p in run_copy.iterdir()) == before
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "no run directory"),
    (lambda d: d.mkdir(), "not a run directory"),
    (lambda d: (d.mkdir(), (d / "events.jsonl").write_text(
        '{"type": "run_started", "time": 1.0}\n')), "no finished task to report yet"),
])
def test_a_run_without_results_is_one_line_and_exit_2(tmp_path, capsys, setup, message):
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    setup(run)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("mind: error:") and "Traceback" not in err
    assert not (run / "report").exists()


def test_help_lists_report(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "report" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert "RUN/report" in capsys.readouterr().out


def test_plot_titles_stay_inside_their_figures(finished_run, tmp_path, monkeypatch):
    """A run's title holds its directory's name and its backend's: a default run name with a
    module:Class backend ran off both edges of the narrow heatmaps."""
    pytest.importorskip("matplotlib")
    from mind_core import report_plots

    run_copy = shutil.copytree(finished_run, tmp_path / "run")
    config = json.loads((run_copy / "config.json").read_text())
    config["name"] = "smoke-tests.fakes:FakeBackend-20261127-101500"  # as `mind run` names it
    (run_copy / "config.json").write_text(json.dumps(config))
    saved = []
    save = report_plots._save
    monkeypatch.setattr(report_plots, "_save",
                        lambda fig, path: saved.append(fig) or save(fig, path))
    assert main(["report", str(run_copy)]) == 0
    assert len(saved) == len(PLOTS)
    for fig in saved:
        renderer = fig.canvas.get_renderer()
        titles = [fig.get_suptitle() and fig._suptitle, *(ax.title for ax in fig.axes)]
        for text in filter(None, titles):
            extent = text.get_window_extent(renderer)
            assert fig.bbox.x0 <= extent.x0 and extent.x1 <= fig.bbox.x1 \
                and extent.y1 <= fig.bbox.y1, text.get_text()
