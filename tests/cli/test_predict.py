"""`mind predict`: a trained run classifies an .npz or a folder of images into a CSV."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mind_core.cli import main
from mind_core.data import load_dataset
from mind_core.inference import Predictor

FAKE = ["--backend", "tests.fakes:FakeBackend"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "run"
    assert main(["run", "--preset", "smoke", *FAKE, "--dataset", "synthetic", "--set",
                 "tasks=5", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def test_images():
    data = load_dataset("synthetic")
    return data.x_test[:40], data.y_test[:40]


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_npz_predictions_are_the_runs_classes(run_dir, test_images, tmp_path, capsys):
    x, y = test_images
    np.savez(tmp_path / "imgs.npz", x=x)
    out = tmp_path / "preds.csv"
    assert main(["predict", str(run_dir), str(tmp_path / "imgs.npz"), *FAKE,
                 "--out", str(out)]) == 0
    assert "40 predictions (pairwise routing)" in capsys.readouterr().out
    rows = _rows(out)
    expected = Predictor(run_dir, FAKE[1]).predict(x)
    assert [int(r["class"]) for r in rows] == expected.classes.tolist()
    assert [int(r["task"]) for r in rows] == (expected.tasks + 1).tolist()  # from 1
    assert [r["image"] for r in rows] == [str(i) for i in range(40)]
    assert all(0 < float(r["score"]) <= 1 for r in rows)
    # The run learned the synthetic set well beyond chance (10 classes): the classes are real.
    assert np.mean(expected.classes == y) > 0.3


def test_a_folder_of_pngs_gives_the_same_predictions(run_dir, test_images, tmp_path, capsys):
    from PIL import Image

    x, _ = test_images
    folder = tmp_path / "pngs"
    (folder / "sub").mkdir(parents=True)
    for i, image in enumerate(x[:6]):
        target = folder / ("sub" if i % 2 else "") / f"img{i}.png"
        Image.fromarray(image[..., 0]).save(target)
    assert main(["predict", str(run_dir), str(folder), *FAKE]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    by_name = {r["image"]: int(r["class"]) for r in rows}
    expected = Predictor(run_dir, FAKE[1]).predict(x[:6]).classes
    for i in range(6):
        assert by_name[f"{'sub/' if i % 2 else ''}img{i}.png"] == expected[i]


def test_another_routing_rule_can_be_asked_for(run_dir, test_images, tmp_path, capsys):
    x, _ = test_images
    np.savez(tmp_path / "imgs.npz", images=x)
    assert main(["predict", str(run_dir), str(tmp_path / "imgs.npz"), *FAKE, "--set",
                 "inference.routing=energy", "--out", str(tmp_path / "p.csv")]) == 0
    assert "(energy routing)" in capsys.readouterr().out
    energy = Predictor(run_dir, FAKE[1], overrides={"inference.routing": "energy"}).predict(x)
    assert [int(r["task"]) for r in _rows(tmp_path / "p.csv")] == (energy.tasks + 1).tolist()


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.npz", "does not exist"),
    (lambda d: (np.savez(d / "a.npz", x=np.zeros((2, 5, 5), np.uint8)), d / "a.npz")[1],
     "trained on 12x12x1"),
    (lambda d: (np.savez(d / "f.npz", x=np.zeros((2, 12, 12), np.float32)), d / "f.npz")[1],
     "uint8"),
    (lambda d: (np.savez(d / "two.npz", a=np.zeros(2), b=np.zeros(2)), d / "two.npz")[1],
     "name the images array"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "holds no images"),
])
def test_bad_images_exit_2_with_one_line(run_dir, tmp_path, capsys, make, message):
    path = make(tmp_path)
    out = tmp_path / "never.csv"
    assert main(["predict", str(run_dir), str(path), *FAKE, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_a_run_of_a_users_own_network_needs_python(run_dir, tmp_path, capsys):
    own = tmp_path / "own"
    own.mkdir()
    (own / "checkpoint").mkdir()
    for item in (run_dir / "checkpoint").iterdir():
        (own / "checkpoint" / item.name).write_bytes(item.read_bytes())
    config = json.loads((run_dir / "config.json").read_text())
    config["config"]["model"] = "custom"
    (own / "config.json").write_text(json.dumps(config))
    np.savez(tmp_path / "imgs.npz", x=np.zeros((2, 12, 12), np.uint8))
    assert main(["predict", str(own), str(tmp_path / "imgs.npz"), *FAKE]) == 2
    assert "mind.load(RUN, model=...)" in capsys.readouterr().err


def test_training_settings_cannot_change_at_prediction(run_dir, tmp_path, capsys):
    np.savez(tmp_path / "imgs.npz", x=np.zeros((2, 12, 12), np.uint8))
    assert main(["predict", str(run_dir), str(tmp_path / "imgs.npz"), *FAKE, "--set",
                 "distill.beta=0"]) == 2
    assert "only inference.* settings" in capsys.readouterr().err
