"""Users' networks that MIND cannot train, through the Python API in both frameworks: one
MindError of one line naming the problem, and no run directory."""

import pytest

import mind_core as mind
from tests.fakes import tiny_dataset

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")
nn = torch.nn


def _keras(middle, head):
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(middle(x))
    return keras.Model(inputs, head(x))


NETWORKS = {
    "torch LayerNorm": (lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(),
                                              nn.LayerNorm(64), nn.Linear(64, 6)),
                        r"'2' \(LayerNorm\) is not supported"),
    "torch transposed conv": (lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.ConvTranspose2d(
        4, 4, 3), nn.Flatten(), nn.Linear(144, 6)), r"'1' \(ConvTranspose2d\) is not supported"),
    "torch classifier width": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(36, 5)),
                               "has 5 outputs but the data has 6 classes"),
    "torch softmax": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(36, 6), nn.Softmax(1)),
                      "logits"),
    "keras LayerNormalization": (lambda: _keras(keras.layers.LayerNormalization(name="ln"),
                                                keras.layers.Dense(6)), "'ln'"),
    # The classifier's own softmax is removed with a warning; one inside the network is not.
    "keras hidden softmax": (lambda: _keras(keras.layers.ReLU(), lambda x: keras.layers.Dense(
        6)(keras.layers.Dense(8, activation="softmax", name="h")(x))),
                             "'h' applies softmax: only the classifier"),
    "keras classifier width": (lambda: _keras(keras.layers.ReLU(), keras.layers.Dense(4)),
                               "has 4 outputs but the data has 6 classes"),
}


@pytest.mark.parametrize("name", NETWORKS)
def test_an_unusable_network_is_one_mind_error_and_nothing_is_written(tmp_path, name):
    make, message = NETWORKS[name]
    raw = tiny_dataset(classes=6, per_class=12, size=6)
    data = mind.arrays(raw.x_train, raw.y_train, raw.x_test, raw.y_test)
    with pytest.raises(mind.MindError, match=message) as info:
        mind.fit(make(), data, tasks=3, preset="smoke", out=tmp_path / "run")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()
