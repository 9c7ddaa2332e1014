"""A user's network trained with one backend and predicted with the other: the same
architecture built in each framework with the same layer names loads the same checkpoint."""

import numpy as np
import pytest

import mind_core as mind
from tests.fakes import tiny_dataset

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 6)

    def forward(self, x):
        return self.fc(torch.relu(self.bn1(self.conv1(x))).mean(dim=(2, 3)))


def keras_net():
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn1")(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(6, name="fc")(x))


def test_a_torch_trained_own_network_predicts_the_same_in_keras(tmp_path):
    raw = tiny_dataset(classes=6, per_class=30, size=6)
    data = mind.arrays(raw.x_train, raw.y_train, raw.x_test, raw.y_test, name="tiny")
    run = mind.fit(TorchNet(), data, tasks=3, preset="smoke", out=tmp_path / "run",
                   settings={"teacher.epochs": 2, "distill.epochs": 2})
    in_torch = run.predictions(raw.x_test)
    in_keras = mind.load(run.path, keras_net()).predictions(raw.x_test)
    assert np.mean(in_torch.classes == in_keras.classes) >= 0.98  # float32 near-ties may flip
    assert np.allclose(in_torch.scores, in_keras.scores, atol=1e-3)
    assert np.mean(in_torch.classes == raw.y_test) > 1 / 6  # it learned something


def test_a_different_architecture_in_the_other_backend_is_one_error(tmp_path):
    raw = tiny_dataset(classes=6, per_class=30, size=6)
    data = mind.arrays(raw.x_train, raw.y_train, raw.x_test, raw.y_test, name="tiny")
    run = mind.fit(TorchNet(), data, tasks=3, preset="smoke", out=tmp_path / "run",
                   settings={"teacher.epochs": 1, "distill.epochs": 1})
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, name="conv1")(inputs))
    other = keras.Model(inputs, keras.layers.Dense(6, name="fc")(x))
    with pytest.raises(mind.MindError, match="conv1"):
        mind.load(run.path, other).predict(raw.x_test)
