"""Adversarial inputs, second pass (issue 26): the Python API's argument types, a network
without values, and sweep settings that could only fail inside every trial. Each is one line
(MindError, or exit 2) before anything is written or started."""

from __future__ import annotations

import numpy as np
import pytest

import mind_core as mind
from mind_core.cli import main
from tests.cli.cli_helpers import TRUST, one_line

X = np.zeros((4, 8, 8), np.uint8)
Y = np.arange(4) % 2


@pytest.mark.parametrize("arguments, message", [
    ({"settings": ["tasks=2"]}, "settings must be a dict of dotted setting names"),
    ({"settings": {1: 2}}, "settings must be a dict of dotted setting names"),
    ({"data": (X, Y, X)}, "data must be mind.arrays(x_train, y_train, x_test, y_test) or a "
                          "dataset name, not a tuple of 3"),
    ({"data": (X, Y, X, Y, 5)}, "data must be mind.arrays"),
    ({"data": 5}, "data must be mind.arrays"),
    ({"out": 123}, "out must be a path (str or pathlib.Path), not int 123"),
    ({"tensorboard": 123}, "tensorboard must be a path"),
    ({"config": 3}, "config must be a path"),
    ({"preset": 3}, "preset must be a string"),
    ({"device": 3}, "device must be a string"),
    ({"on_event": 3}, "on_event must be a function"),
])
def test_fit_refuses_arguments_of_the_wrong_type_in_one_line(tmp_path, monkeypatch,
                                                              arguments, message):
    monkeypatch.chdir(tmp_path)  # a default run directory would land here
    given = {"data": "synthetic", "backend": TRUST[1], "preset": "smoke",
             "out": tmp_path / "run", **arguments}
    with pytest.raises(mind.MindError) as caught:
        mind.fit(None, **given)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert not any(tmp_path.iterdir())


def test_resume_and_load_refuse_data_and_paths_of_the_wrong_type(tmp_path):
    with pytest.raises(mind.MindError, match=r"^data must be mind.arrays\(x_train, y_train, "
                       r"x_test, y_test\), not str 'synthetic'"):
        mind.resume(tmp_path, data="synthetic")
    with pytest.raises(mind.MindError, match="^run_dir must be a path"):
        mind.load(5)
    with pytest.raises(mind.MindError, match="^tensorboard must be a path"):
        mind.resume(tmp_path, tensorboard=1)


def test_a_backend_that_is_not_a_class_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", "--backend", "os:system", "--dataset",
                 "synthetic", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and "'os:system' is a builtin_function_or_method, not a backend " \
        "class" in err, err
