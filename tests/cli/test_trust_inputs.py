"""Adversarial inputs, second pass (issue 26): settings a saved run cannot change, and inputs
that used to end in a traceback. Every refusal on the command line is one line, exit 2."""

from __future__ import annotations

import json

import pytest

from mind_core.cli import main
from tests.cli.cli_helpers import TRUST, one_line
from tests.cli.test_trust_data import stopped_run


def edit_config(run, **changes) -> None:
    path = run / "config.json"
    saved = json.loads(path.read_text())
    saved["config"].update(changes)
    path.write_text(json.dumps(saved))


@pytest.mark.parametrize("started, edited", [
    (["method=lwf"], {"method": "ewc"}),
    (["method=ewc"], {"method": "lwf"}),
    ([], {"method": "finetune"}),
    (["variant=mind"], {"variant": "teacher_slice"}),
])
def test_resume_refuses_a_method_or_variant_edited_in_config_json(tmp_path, capsys, started,
                                                                  edited):
    out = tmp_path / "run"
    stopped_run(out, settings=started)
    original = (out / "config.json").read_text()
    edit_config(out, **edited)
    assert main(["resume", str(out), *TRUST]) == 2
    err = capsys.readouterr().err
    key = next(iter(edited))
    assert one_line(err) and f"state field '{key}'" in err and "resumes only as it" in err, err
    (out / "config.json").write_text(original)
    assert main(["resume", str(out), *TRUST, "--quiet"]) == 0


# ------------------------------------------------------------- 5. numbers, files, messages
def test_numpy_scalars_are_numbers_as_settings(tmp_path):
    import numpy as np

    import mind_core as mind

    run = mind.fit(None, "synthetic", backend=TRUST[1], preset="smoke", tasks=np.int64(2),
                   seed=np.int32(1), settings={"distill.beta": np.float32(0.5),
                                               "teacher.batch_size": np.uint16(64)},
                   out=tmp_path / "run")
    cfg = run.config
    assert (cfg.tasks, cfg.seed, cfg.distillation.beta, cfg.teacher.batch_size) == (2, 1, 0.5,
                                                                                    64)
    for value in (np.float32(2.5), np.bool_(True), np.float64("nan")):
        with pytest.raises(mind.MindError, match="^tasks: "):
            mind.fit(None, "synthetic", backend=TRUST[1], preset="smoke", tasks=value,
                     out=tmp_path / "never")
    assert not (tmp_path / "never").exists()


@pytest.fixture(params=["text", "npy"])
def not_npz(request, tmp_path):
    import numpy as np

    path = tmp_path / "data.npz"
    if request.param == "text":
        path.write_text("not a zip\n")
    else:  # a single .npy array under an .npz name: numpy would return a bare array
        with path.open("wb") as handle:
            np.save(handle, np.zeros((4, 8, 8), np.uint8))
    return path


def test_a_file_that_is_not_an_npz_archive_says_so(tmp_path, capsys, not_npz):
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", *TRUST, "--dataset", f"npz:{not_npz}", "--out",
                 str(out)]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and "is not an .npz archive" in err and "pickle" not in err, err


def test_predict_on_a_file_that_is_not_an_npz_or_holds_no_images_is_one_line(tmp_path,
                                                                             capsys, not_npz):
    import numpy as np

    run = tmp_path / "run"
    stopped_run(run)
    zero_d = tmp_path / "zero.npz"
    np.savez(zero_d, x=np.uint8(3))
    for images, message in ((not_npz, "is not an .npz archive"),
                            (zero_d, "must have shape [n, h, w] or [n, h, w, c]")):
        assert main(["predict", str(run), str(images), *TRUST]) == 2
        err = capsys.readouterr().err
        assert one_line(err) and message in err and "pickle" not in err, err


def test_a_stopped_fit_says_how_to_continue(tmp_path):
    import mind_core as mind
    from mind_core.engine import Interrupted

    out = tmp_path / "run"

    def stop_after_an_epoch(event):
        if event["type"] == "epoch_ended":
            (out / "STOP").touch()

    with pytest.raises(Interrupted, match=rf"`mind resume {out}` \(or mind.resume\)"):
        mind.fit(None, "synthetic", backend=TRUST[1], preset="smoke", tasks=2, out=out,
                 on_event=stop_after_an_epoch)


@pytest.mark.parametrize("key", ["tasks", "seed", "dataset"])
def test_a_saved_config_without_the_settings_that_define_the_run_is_refused(tmp_path, capsys,
                                                                            key):
    run = tmp_path / "run"
    stopped_run(run)
    saved = json.loads((run / "config.json").read_text())
    del saved["config"][key]
    (run / "config.json").write_text(json.dumps(saved))
    for command in ("eval", "resume"):
        assert main([command, str(run), *TRUST]) == 2
        err = capsys.readouterr().err
        assert one_line(err) and f"{key}: missing" in err, err


# ----------------------------------------------- 4. inputs that ended in a traceback, exit 1
@pytest.mark.parametrize("text", ["a = " + "[" * 5000 + "]" * 5000,
                                  "a = " + "{b = " * 5000 + "1" + "}" * 5000])
def test_a_toml_file_nested_thousands_deep_is_one_line(tmp_path, capsys, text):
    import mind_core as mind

    path = tmp_path / "deep.toml"
    path.write_text(text + "\n")
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and "nested too deeply" in err, err
    with pytest.raises(mind.MindError, match="nested too deeply"):
        mind.fit(config=path, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    from tests.cli.test_trust import TINY

    out = tmp_path_factory.mktemp("trust-inputs") / "run"
    assert main(["run", "--preset", "smoke", *TRUST, *TINY, "--out", str(out), "--quiet"]) == 0
    return out


def tampered(finished, tmp_path, name, edit):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    path = copy / name
    if name == "metrics.json":
        metrics = json.loads(path.read_text())
        edit(metrics)
        path.write_text(json.dumps(metrics))  # json.dumps writes Infinity and NaN tokens
    else:
        path.write_text("".join(edit(line) for line in path.read_text().splitlines(True)))
    return copy


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["tag"].__setitem__(0, float("inf")), "tag[0] is inf"),
    (lambda m: m["taw"].__setitem__(1, float("nan")), "taw[1] is nan"),
    (lambda m: m["acc_matrix_tag"].__setitem__(1, [0.5]), "acc_matrix_tag row 1 has 1"),
    (lambda m: m.__setitem__("acc_matrix_taw", [[0.5]]), "acc_matrix_taw has 1 entries"),
    (lambda m: m.__setitem__("tasks_done", -1), "tasks_done is -1"),
    (lambda m: m.__setitem__("tasks_done", 10**6), "for its 1000000 finished tasks"),
    (lambda m: m.__setitem__("tasks_done", "2"), "tasks_done is '2'"),
    (lambda m: m["acc_matrix_tag"].__setitem__(0, "x"), "acc_matrix_tag[0][0] is 'x'"),
    (lambda m: m["routing"].__setitem__(0, "0.5"), "routing[0] is '0.5'"),
    (lambda m: m["tag"].__setitem__(0, -0.5), "tag[0] is -0.5"),
])
def test_report_refuses_a_tampered_metrics_json_in_one_line(finished, tmp_path, capsys, edit,
                                                            message):
    pytest.importorskip("matplotlib")
    copy = tampered(finished, tmp_path, "metrics.json", edit)
    assert main(["report", str(copy), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and message in err, err
    assert not (tmp_path / "report").exists()


def test_report_refuses_negative_weight_counts_in_the_events(finished, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    copy = tampered(finished, tmp_path, "events.jsonl",
                    lambda line: line.replace('"total": ', '"total": -'))
    assert main(["report", str(copy), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and "whole numbers >= 0" in err, err
