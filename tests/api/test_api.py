"""The Python API (mind_core/api.py) on the numpy fake backend: fit on arrays, metrics,
task-agnostic predictions that agree with the run's own evaluation, load, and bad input as one
MindError with nothing written."""

from __future__ import annotations

import numpy as np
import pytest

import mind_core as mind
from mind_core.schedule import make_tasks, test_set
from tests.fakes import FakeNetwork, tiny_dataset

FAKE = "tests.fakes:FakeBackend"
SETTINGS = {"teacher.epochs": 2, "distill.epochs": 2}


def _arrays(seed: int = 0):
    data = tiny_dataset(classes=6, per_class=30, size=6, seed=seed)
    return data, mind.arrays(data.x_train, data.y_train, data.x_test, data.y_test, name="tiny")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    raw, data = _arrays()
    events = []
    run = mind.fit(None, data, tasks=3, backend=FAKE, preset="smoke", settings=SETTINGS,
                   out=tmp_path_factory.mktemp("api") / "run", on_event=events.append)
    return raw, data, run, events


def test_fit_trains_every_task_and_reports_events(trained):
    _, _, run, events = trained
    assert run.metrics["tasks_done"] == 3
    assert run.metrics["precision"] == "fp32"  # what it trained in, `auto` resolved
    assert run.config.tasks == 3 and run.config.backend == FAKE
    types = [e["type"] for e in events]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert types.count("evaluated") == 3


def test_predictions_match_the_runs_own_evaluation(trained):
    raw, data, run, _ = trained
    classes, tasks = run.predict(raw.x_test)
    # The run evaluated the same images with the same rule: the share of right classes is its
    # final TAg, the share of right tasks its routing accuracy. The labels come back in the
    # dataset's own ids (the run relabels classes in its seeded order internally).
    final = run.metrics["final"]
    assert np.mean(classes == raw.y_test) == pytest.approx(final["tag"], abs=1e-9)
    relabelled = make_tasks(data, 3, "class", run.config.seed)
    x, _, true_task = test_set(relabelled)
    order = np.concatenate([np.flatnonzero(np.isin(raw.y_test, t.classes))
                            for t in relabelled])
    assert np.array_equal(raw.x_test[order], x)
    assert np.mean(tasks[order] == true_task) == pytest.approx(final["routing"], abs=1e-9)
    assert classes.dtype == np.int64 and tasks.dtype == np.int64


def test_predictions_have_scores_and_names(trained):
    raw, _, run, _ = trained
    found = run.predictions(raw.x_test[:5])
    assert np.all((found.scores > 0) & (found.scores <= 1))
    assert found.names() == [str(c) for c in found.classes]


def test_load_gives_the_same_predictions(trained):
    raw, _, run, _ = trained
    again = mind.load(run.path, backend=FAKE)
    assert np.array_equal(again.predict(raw.x_test)[0], run.predict(raw.x_test)[0])
    assert again.metrics == run.metrics


def test_evaluate_with_another_rule_needs_the_arrays_again(trained):
    _, data, run, _ = trained
    with pytest.raises(mind.MindError, match="tiny"):
        mind.load(run.path, backend=FAKE).evaluate(routing="energy")
    metrics = mind.load(run.path, backend=FAKE, data=data).evaluate(routing="energy")
    assert metrics["routing_rule"] == "energy"
    assert metrics["final"]["tag"] == run.metrics["final"]["rules"]["energy"]["tag"]


def test_own_network_is_trained_and_needed_again_to_load(tmp_path):
    raw, data = _arrays()
    run = mind.fit(FakeNetwork(outputs=6), data, tasks=3, preset="smoke", settings=SETTINGS,
                   out=tmp_path / "own")
    assert run.config.model == "custom" and run.config.backend == FAKE
    assert len(run.predict(raw.x_test)[0]) == len(raw.x_test)
    with pytest.raises(mind.MindError, match="mind.load"):
        mind.load(run.path, backend=FAKE).predict(raw.x_test)
    loaded = mind.load(run.path, FakeNetwork(outputs=6))
    assert np.array_equal(loaded.predict(raw.x_test)[0], run.predict(raw.x_test)[0])
    # The shell cannot pass the network either: `mind eval` says so as `mind predict` does.
    said = []
    for command in (["eval", str(run.path)], ["predict", str(run.path), str(tmp_path / "x.npz")]):
        np.savez(tmp_path / "x.npz", x=raw.x_test)
        said.append(_mind_error(command, FAKE))
    assert said[0] == said[1] and "only Python can pass" in said[0]


def _mind_error(argv: list[str], backend: str) -> str:
    """The one line `mind ARGV --backend backend` prints on stderr, after checking it exits 2."""
    import contextlib
    import io

    from mind_core.cli import main

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert main([*argv, "--backend", backend]) == 2
    return stderr.getvalue()


def test_mind_eval_on_a_run_of_arrays_says_they_come_from_python(trained):
    _, _, run, _ = trained
    said = _mind_error(["eval", str(run.path)], FAKE)
    assert "arrays passed from Python" in said and "mind.load(RUN, data=" in said
    assert "unknown dataset" not in said


@pytest.mark.parametrize("call, message", [
    (lambda d, out: mind.fit(FakeNetwork(outputs=5), d, tasks=3, preset="smoke", out=out),
     "has 5 outputs but the data has 6 classes"),
    (lambda d, out: mind.fit(None, d, tasks=4, backend=FAKE, preset="smoke", out=out),
     "do not split into 4 equal tasks"),
    (lambda d, out: mind.fit(None, d, tasks=3, backend=FAKE, preset="smoke", out=out,
                             settings={"distill.betta": 1}), "unknown setting"),
    *[(lambda d, out, v=variant: mind.fit(None, d, tasks=3, backend=FAKE, out=out, settings={
        "variant": v, "distill.epochs": 0}), "distill.epochs: must be > 0")
      for variant in ("teacher_slice", "packnet")],
    (lambda d, out: mind.fit(object(), d, out=out), "torch nn.Module or a Keras model"),
    (lambda d, out: mind.fit(FakeNetwork(outputs=6), d, backend="tf", out=out),
     "backend='tf'"),
    (lambda d, out: mind.fit(None, "no-such-data", backend=FAKE, out=out), "no-such-data"),
])
def test_bad_input_is_one_mind_error_and_writes_nothing(tmp_path, call, message):
    _, data = _arrays()
    out = tmp_path / "never"
    with pytest.raises(mind.MindError, match=message) as info:
        call(data, out)
    assert "\n" not in str(info.value)
    assert not out.exists()


@pytest.mark.parametrize("x, message", [
    (np.zeros((2, 6, 6, 1), np.float32), "uint8"),
    (np.zeros((2, 7, 7, 1), np.uint8), "trained on 6x6x1"),
    (np.zeros((2, 6, 6, 2), np.uint8), "1 or 3 channels"),
])
def test_bad_images_to_predict_are_one_mind_error(trained, x, message):
    _, _, run, _ = trained
    with pytest.raises(mind.MindError, match=message):
        run.predict(x)


def test_bad_arrays_are_one_mind_error():
    raw = tiny_dataset()
    with pytest.raises(mind.MindError, match="labels"):
        mind.arrays(raw.x_train, raw.y_train[:-1], raw.x_test, raw.y_test)


def test_load_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(mind.MindError, match="no run directory"):
        mind.load(tmp_path / "missing")


def test_the_package_exports_the_api_lazily():
    from mind_core import api

    assert mind.fit is api.fit and mind.Run is api.Run
    with pytest.raises(AttributeError):
        mind.nothing_here  # noqa: B018


def test_tensorboard_scalars_and_config_files_from_python(tmp_path):
    from tests.core.test_tensorboard import read_scalars

    raw, data = _arrays()
    config = tmp_path / "mine.toml"
    config.write_text('tasks = 3\nmodel = "small_cnn"\n[teacher]\nepochs = 2\n'
                      '[distill]\nepochs = 1\n', encoding="utf-8")
    run = mind.fit(None, data, backend=FAKE, config=config, out=tmp_path / "run",
                   tensorboard=tmp_path / "tb")
    assert run.config.name == "mine" and run.config.teacher.epochs == 2
    scalars = read_scalars(tmp_path / "tb")
    assert scalars["eval/tag"][-1][1] == pytest.approx(run.metrics["final"]["tag"], rel=1e-6)
    assert len(scalars["task2/distill/loss"]) == 1


def test_a_config_file_with_an_unknown_key_is_one_mind_error(tmp_path):
    _, data = _arrays()
    config = tmp_path / "bad.toml"
    config.write_text("[distill]\nepocs = 2\n", encoding="utf-8")
    with pytest.raises(mind.MindError, match=r"bad.toml: distill.epocs: unknown setting "
                                             r"\(did you mean distill.epochs"):
        mind.fit(None, data, backend=FAKE, config=config, out=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_an_interrupted_own_network_run_resumes_to_the_same_numbers(tmp_path):
    from mind_core.engine import Interrupted

    _, data = _arrays()
    whole = mind.fit(FakeNetwork(outputs=6), data, tasks=3, preset="smoke", settings=SETTINGS,
                     out=tmp_path / "whole")
    out = tmp_path / "cut"

    def stop_after_first_task(event):
        if event["type"] == "evaluated" and event["task"] == 0:
            (out / "STOP").touch()

    with pytest.raises(Interrupted):
        mind.fit(FakeNetwork(outputs=6), data, tasks=3, preset="smoke", settings=SETTINGS,
                 out=out, on_event=stop_after_first_task)
    assert mind.load(out, FakeNetwork(outputs=6)).metrics["tasks_done"] == 1
    with pytest.raises(mind.MindError, match="mind.load"):
        mind.resume(out, data=data, backend=FAKE)  # the network is needed again
    resumed = mind.resume(out, FakeNetwork(outputs=6), data)
    assert resumed.metrics["final"] == whole.metrics["final"]


def test_fit_prints_the_commands_progress_unless_quiet(tmp_path, capsys):
    _, data = _arrays()
    mind.fit(None, data, tasks=3, backend=FAKE, preset="smoke", settings=SETTINGS,
             out=tmp_path / "loud")
    printed = capsys.readouterr().out
    assert "Task 3/3" in printed and "  teacher  epoch 2/2" in printed
    assert printed.splitlines()[-1] == f"Run directory: {tmp_path / 'loud'}"
    mind.fit(None, data, tasks=3, backend=FAKE, preset="smoke", settings=SETTINGS,
             out=tmp_path / "quiet", quiet=True)
    assert capsys.readouterr().out == ""
