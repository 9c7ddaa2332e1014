"""examples/torch_own_network.py runs as a user would run it and learns (about 20 s)."""

from tests.backends.examples import check_example


def test_the_torch_example_trains_its_own_network(tmp_path):
    check_example("torch_own_network.py", "SmallNet", tmp_path / "run")
