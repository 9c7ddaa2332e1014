"""A user's nn.Module whose forward would bypass MIND's gates (backends/torch/convert_watch.py),
or that carries a setting MIND would drop (a frozen layer), is refused at conversion;
test_tf_network_gates.py is the Keras mirror.

Such a network used to convert silently: its layer was owned and allocated, but its gate never
applied, so later tasks' training leaked into earlier sub-networks (task 0's TAw fell to
chance after task 1 with `F.linear(h, self.hidden.weight, ...)`)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from backends.torch.backend import TorchBackend  # noqa: E402
from backends.torch.layers import GATED_TYPES  # noqa: E402
from mind_core.network import NetworkError  # noqa: E402

SHAPE = (6, 6, 1)
CLASSES = 4


class Net(nn.Module):
    """flatten -> hidden (16) -> relu -> out; `mode` picks how forward uses `hidden`."""

    def __init__(self, mode: str = "call") -> None:
        super().__init__()
        self.mode = mode
        self.hidden = nn.Linear(36, 16)
        self.bn = nn.BatchNorm1d(16)
        self.out = nn.Linear(16, CLASSES)

    def forward(self, x):
        x = x.flatten(1)
        if self.mode == "functional":
            h = F.linear(x, self.hidden.weight, self.hidden.bias)
        elif self.mode == "transposed":
            h = x @ self.hidden.weight.t()
        elif self.mode == "data":
            h = F.linear(x, self.hidden.weight.data)
        elif self.mode == "skipped":
            h = x[:, :16]
        else:
            # Reading metadata only, then calling the layer (twice: a shared layer) is fine.
            x = x.to(self.hidden.weight) + torch.zeros_like(self.hidden.weight)[0]
            h = self.hidden(x.view(-1, self.hidden.weight.shape[1]))
            h = h + 0 * self.hidden(x)
        if self.mode == "functional_bn":
            h = F.batch_norm(h, self.bn.running_mean, self.bn.running_var, self.bn.weight,
                             self.bn.bias, training=False)
        else:
            h = self.bn(h)
        return self.out(F.relu(h))


class Listed(nn.Module):
    """Hidden layers kept in a plain Python list: torch does not register them."""

    def __init__(self, alias: bool = False) -> None:
        super().__init__()
        if alias:  # registered too, but forward runs the list's (never converted) copy
            self.first = nn.Linear(36, 16)
            self.blocks = [self.first]
        else:
            self.blocks = [nn.Linear(36, 16), nn.ReLU()]
        self.out = nn.Linear(16, CLASSES)

    def forward(self, x):
        x = x.flatten(1)
        for block in self.blocks:
            x = block(x)
        return self.out(x)


def frozen(layer: str) -> nn.Module:
    network = Net()
    getattr(network, layer).requires_grad_(False)
    return network


def parametrized() -> nn.Module:
    """A constraint on a weight (Keras's kernel_constraint) is a parametrization in torch."""
    network = Net()
    torch.nn.utils.parametrize.register_parametrization(network.hidden, "weight", nn.ReLU())
    return network


REFUSED = {
    "F.linear on its weight": (lambda: Net("functional"),
                               r"uses the tensors of layer 'hidden' directly \(in linear\(\)\)"),
    "weight transposed": (lambda: Net("transposed"), r"tensors of layer 'hidden' directly"),
    "weight.data": (lambda: Net("data"), r"layer 'hidden' directly \(in \.data\)"),
    "BatchNorm run functionally": (lambda: Net("functional_bn"),
                                   r"tensors of layer 'bn' directly \(in batch_norm\(\)\)"),
    "a layer that never runs": (lambda: Net("skipped"), r"layer 'hidden' never runs"),
    "layers in a plain list": (Listed, r"layer 'blocks\[0\]' holds parameters that the "
                                       r"network does not register .* nn.ModuleList"),
    "a registered layer run from a plain list": (
        lambda: Listed(alias=True), r"layer 'blocks\[0\]' holds parameters"),
    "frozen Linear": (lambda: frozen("hidden"), r"layer 'hidden' is frozen \(requires_grad="
                                                 r"False on weight, bias\)"),
    "frozen BatchNorm": (lambda: frozen("bn"), r"layer 'bn' is frozen"),
    "parametrized weight": (parametrized, r"layer 'hidden' \(ParametrizedLinear"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_layer_bypassing_its_gate_or_a_dropped_setting_is_one_network_error(case):
    make, message = REFUSED[case]
    backend = TorchBackend("cpu")
    with pytest.raises(NetworkError, match=message) as caught:
        backend.adopt_network(make(), SHAPE, CLASSES)
    assert "\n" not in str(caught.value)
    assert backend._template is None


def test_calling_layers_and_reading_their_shapes_is_accepted_and_gates_end_dense():
    backend = TorchBackend("cpu")
    assert backend.adopt_network(Net(), SHAPE, CLASSES) == \
        "Net: 0 conv, 2 linear, 1 BatchNorm layers"
    gated = [m for m in backend._template.modules() if isinstance(m, GATED_TYPES)]
    assert gated and all(m.gate is None and m.bias_gate is None for m in gated)


def test_a_converted_layer_with_a_zero_gate_changes_the_output():
    """What the refusals protect: in an accepted network a zero gate silences its layer."""
    backend = TorchBackend("cpu")
    backend.adopt_network(Net(), SHAPE, CLASSES)
    model = backend._template.eval()
    x = torch.randn(3, 1, 6, 6)
    with torch.no_grad():
        dense = model(x)
        model.hidden.set_gate(torch.zeros_like(model.hidden.weight))
        model.hidden.set_gate(torch.zeros_like(model.hidden.bias), "bias")
        gated = model(x)
    assert not torch.allclose(dense, gated)
