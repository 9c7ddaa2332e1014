"""examples/keras_own_network.py runs as a user would run it and learns (about 30 s)."""

from tests.backends.examples import check_example


def test_the_keras_example_trains_its_own_model(tmp_path):
    check_example("keras_own_network.py", "Functional", tmp_path / "run")
