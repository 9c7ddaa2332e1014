"""Adversarial inputs, the data (issue 26, second pass): a saved run is never continued or
evaluated on data other than its own, and config.json's "data" block is checked before any
of its numbers normalises an image. docs/design.md's "What a run directory may do"."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import mind_core as mind
from mind_core.cli import main
from tests.cli.cli_helpers import TRUST, one_line
from tests.cli.test_trust import TINY


def save_npz(path, data, **changed):
    np.savez(path, **{**{key: getattr(data, key) for key in ("x_train", "y_train", "x_test",
                                                             "y_test")}, **changed})


def stopped_run(out, dataset: str = "synthetic", load=None, settings=()) -> None:
    """A fake-backend run stopped once its first task is done (task-0 and resume files)."""
    from mind_core.config import resolve_config
    from mind_core.engine import Interrupted
    from mind_core.runner import load_dataset, start_run

    cfg = resolve_config("smoke", ["tasks=2", "teacher.batch_size=64",
                                   "distill.batch_size=64", *settings], backend=TRUST[1],
                         dataset=dataset)
    with pytest.raises(Interrupted):
        start_run(cfg, out, load=load or load_dataset,
                  should_stop=(out / "checkpoint" / "task-0.safetensors").exists)


@pytest.fixture
def npz_run(tmp_path):
    from mind_core.data import load_dataset

    data = load_dataset("synthetic")
    path = tmp_path / "data.npz"
    save_npz(path, data)
    out = tmp_path / "run"
    stopped_run(out, f"npz:{path}")
    return out, path, data


@pytest.mark.parametrize("change, what", [
    (lambda d: {"x_train": 255 - d.x_train}, "the train split's contents differ"),
    (lambda d: {"x_test": d.x_test[:-5], "y_test": d.y_test[:-5]},
     "the test split's shapes differ (was 200x12x12x1"),
    (lambda d: {"y_train": (d.y_train + 1) % 10}, "the train split's labels differ"),
])
def test_resume_and_eval_refuse_an_npz_file_replaced_under_the_run(npz_run, capsys, change,
                                                                   what):
    out, path, data = npz_run
    original = path.read_bytes()
    save_npz(path, data, **change(data))
    for command in ("resume", "eval"):
        assert main([command, str(out), *TRUST]) == 2
        err = capsys.readouterr().err
        assert one_line(err) and what in err and "give the run its own data" in err, err
    path.write_bytes(original)  # its own data again: it continues
    assert main(["resume", str(out), *TRUST, "--quiet"]) == 0


def test_the_api_refuses_other_arrays_for_a_run(tmp_path):
    from tests.fakes import tiny_dataset

    raw = tiny_dataset(classes=6, per_class=30, size=6)
    own = mind.arrays(raw.x_train, raw.y_train, raw.x_test, raw.y_test, name="tiny")
    out = tmp_path / "run"
    stopped_run(out, "tiny", load=lambda name, data_dir=None: own)
    other = tiny_dataset(classes=6, per_class=30, size=6, seed=1)
    others = mind.arrays(other.x_train, other.y_train, other.x_test, other.y_test, name="tiny")
    with pytest.raises(mind.MindError, match="train split's contents differ"):
        mind.resume(out, data=others, backend=TRUST[1])
    with pytest.raises(mind.MindError, match="train split's contents differ"):
        mind.load(out, backend=TRUST[1], data=others).evaluate()
    assert mind.resume(out, data=own, backend=TRUST[1]).metrics["tasks_done"] == 2


@pytest.mark.parametrize("name", ["synthetic", "fmnist-mini", "npz:x.npz", "folder:/tmp", "",
                                  3])
def test_arrays_never_take_a_name_that_loads_other_data(name):
    from tests.fakes import tiny_dataset

    raw = tiny_dataset()
    with pytest.raises(mind.MindError, match="cannot name arrays"):
        mind.arrays(raw.x_train, raw.y_train, raw.x_test, raw.y_test, name=name)


# -------------------------------------------------- config.json's "data" block is checked
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("trust-data") / "run"
    assert main(["run", "--preset", "smoke", *TRUST, *TINY, "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture
def images(tmp_path):
    from mind_core.data import load_dataset

    path = tmp_path / "images.npz"
    np.savez(path, x=load_dataset("synthetic").x_test[:8])
    return path


def with_data(finished, tmp_path, edit) -> object:
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    config = json.loads((copy / "config.json").read_text())
    edit(config)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


@pytest.mark.parametrize("field, value", [
    ("std", [0]), ("std", [float("nan")]), ("std", [-0.25]), ("std", ["0.25"]),
    ("std", [0.25, 0.25]), ("mean", [float("inf")]), ("mean", 0.5),
    ("image_shape", "12x12x1"), ("image_shape", [12, 12]), ("image_shape", [12, 12, 2]),
    ("num_classes", True), ("num_classes", 0), ("class_names", [1, 2]),
    ("fingerprint", {"train": 1}),
])
def test_predict_and_eval_refuse_a_malformed_data_block(finished, tmp_path, images, capsys,
                                                        field, value):
    def edit(config):
        config["data"][field] = value

    copy = with_data(finished, tmp_path, edit)
    for command in (["predict", str(copy), str(images)], ["eval", str(copy)]):
        assert main([*command, *TRUST]) == 2
        err = capsys.readouterr().err
        assert one_line(err) and f"\"data\" field '{field}'" in err, err


def test_a_data_block_that_is_not_a_table_or_lacks_a_fact_is_refused(finished, tmp_path,
                                                                     images, capsys):
    for edit, message in ((lambda c: c.update(data="x"), "expected a table"),
                          (lambda c: c["data"].pop("std"), '"data" lacks std')):
        copy = with_data(finished, tmp_path, edit)
        assert main(["predict", str(copy), str(images), *TRUST]) == 2
        err = capsys.readouterr().err
        assert one_line(err) and message in err, err
        shutil.rmtree(copy)


def test_a_run_without_a_data_block_still_predicts_from_its_dataset(finished, tmp_path,
                                                                   images, capsys):
    """Runs made before the block was kept: their dataset is loaded for its facts."""
    copy = with_data(finished, tmp_path, lambda c: c.pop("data"))
    assert main(["predict", str(copy), str(images), *TRUST]) == 0
    assert main(["eval", str(copy), *TRUST]) == 0
