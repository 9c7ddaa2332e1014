"""A torch network without values (built on the meta device) is one line, before anything is
written (issue 26). In the torch session, where torch is installed: the core session has none."""

from __future__ import annotations

import pytest

import mind_core as mind


def test_a_torch_network_on_the_meta_device_is_one_line(tmp_path):
    import torch

    with torch.device("meta"):
        network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(144, 10))
    with pytest.raises(mind.MindError, match=r"^the network's tensors are on the meta device"):
        mind.fit(network, "synthetic", preset="smoke", out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
