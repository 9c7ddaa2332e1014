"""A user's own nn.Module on the PyTorch backend: conversion into gated layers, the backend's
operations on the converted model, the one-line errors, and a 2-task run through the engine."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from backends.torch.backend import TorchBackend  # noqa: E402
from backends.torch.layers import GatedConv2d  # noqa: E402
from mind_core import checkpoint  # noqa: E402
from mind_core.config import resolve_config  # noqa: E402
from mind_core.engine import Engine  # noqa: E402
from mind_core.network import NO_NETWORK, NetworkError  # noqa: E402
from mind_core.protocol import ModelSpec, PhaseSpec, Subnet  # noqa: E402
from tests.fakes import tiny_dataset  # noqa: E402

SHAPE = (6, 6, 1)  # tiny_dataset's images
CLASSES = 4


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class ResNetLike(nn.Module):
    """The classifier is registered first but runs last: forward order must decide it."""

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.fc = nn.Linear(8, classes)
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                                  nn.ReLU())
        self.stages = nn.Sequential(Residual(4), nn.Conv2d(4, 8, 3, stride=2, padding=1),
                                    Residual(8))

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1).flatten(1))


class MLP(nn.Module):
    """The classifier is registered before the hidden layer: registration order would pick
    `hidden` (16 wide), forward order picks `out`."""

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.out = nn.Linear(16, classes)
        self.hidden = nn.Linear(36, 16)
        self.bn = nn.BatchNorm1d(16)

    def forward(self, x):
        return self.out(F.relu(self.bn(self.hidden(x.flatten(1)))))


def strided_cnn(classes: int = CLASSES) -> nn.Module:
    """A non-square kernel with stride 2, a conv bias and a flatten (a .view in disguise)."""
    return nn.Sequential(nn.Conv2d(1, 4, (3, 1), stride=2, padding=(1, 0)), nn.BatchNorm2d(4),
                         nn.ReLU(), nn.Flatten(), nn.Linear(4 * 3 * 3, classes))


class Containers(nn.Module):
    """Layers inside a ModuleList and a ModuleDict, and a dilated conv."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(1, 4, 3, padding=1),
                                    nn.Conv2d(4, 4, 3, padding=2, dilation=2)])
        self.heads = nn.ModuleDict({"main": nn.Linear(4, CLASSES)})

    def forward(self, x):
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.heads["main"](x.mean(dim=(2, 3)))


NETWORKS = {"resnet_like": ResNetLike, "mlp": MLP, "strided": strided_cnn,
            "containers": Containers}
SPEC = ModelSpec(arch="custom", input_shape=SHAPE, num_classes=CLASSES)


@pytest.fixture
def tb():
    return TorchBackend("cpu")


def adopted(tb, make=MLP, seed=0):
    torch.manual_seed(0)  # the user's own initial values; builds re-initialise anyway
    tb.adopt_network(make(), SHAPE, CLASSES)
    return tb.build_model(SPEC, seed)


def images(n=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *SHAPE), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_conversion_computes_the_users_function_and_leaves_it_untouched(tb, name):
    torch.manual_seed(1)
    network = NETWORKS[name]().train()
    before = copy.deepcopy(network.state_dict())
    types = [type(m) for m in network.modules()]
    tb.adopt_network(network, SHAPE, CLASSES)
    assert [type(m) for m in network.modules()] == types and network.training
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())
    assert not any(m._forward_hooks for m in network.modules())
    template = tb._template
    assert not any(type(m) in (nn.Conv2d, nn.Linear) for m in template.modules())
    assert any(isinstance(m, GatedConv2d) for m in template.modules()) or name == "mlp"
    x = torch.randn(3, 1, 6, 6)
    with torch.no_grad():  # the template holds the user's values: same function
        torch.testing.assert_close(template.eval()(x), network.eval()(x))


def test_describe_counts_the_layers_that_run(tb):
    assert tb.adopt_network(ResNetLike(), SHAPE, CLASSES) == \
        "ResNetLike: 6 conv, 1 linear, 5 BatchNorm layers"


def test_same_seed_same_model_other_seed_another(tb):
    first, again, other = (adopted(tb, strided_cnn, seed) for seed in (3, 3, 4))
    a, b, c = (tb.get_weights(m) for m in (first, again, other))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0"], c["0"]) and not np.array_equal(a["4"], c["4"])
    assert np.all(a["0.bias"] == 0) and np.all(a["4.bias"] == 0)  # biases start at 0
    assert abs(a["4"].std() - np.sqrt(2 / 36)) < 0.05  # He-normal, fan_in 36
    bn = tb.get_bn(first)["1"]
    assert np.all(bn["gamma"] == 1) and np.all(bn["var"] == 1) and not bn["mean"].any()
    assert first.spec == SPEC and next(first.parameters()).device.type == "cpu"


class SmallCNNReplica(nn.Module):
    """The built-in small_cnn written as a user would (docs/models.md)."""

    def __init__(self) -> None:
        super().__init__()
        for index, (cin, cout) in enumerate([(3, 32), (32, 64), (64, 128)], start=1):
            setattr(self, f"conv{index}", nn.Conv2d(cin, cout, 3, padding=1, bias=False))
            setattr(self, f"bn{index}", nn.BatchNorm2d(cout))
        self.fc = nn.Linear(128, CLASSES, bias=False)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(F.relu(self.bn3(self.conv3(x))).mean(dim=(2, 3)))


def test_a_replica_of_small_cnn_builds_exactly_the_built_in(tb):
    shape = (8, 8, 3)
    tb.adopt_network(SmallCNNReplica(), shape, CLASSES)
    custom = tb.build_model(ModelSpec(arch="custom", input_shape=shape, num_classes=CLASSES), 5)
    builtin = tb.build_model(ModelSpec(arch="small_cnn", input_shape=shape, num_classes=CLASSES),
                             5)
    assert tb.layers(custom) == tb.layers(builtin)
    mine, theirs = tb.get_weights(custom), tb.get_weights(builtin)
    assert all(np.array_equal(mine[k], theirs[k]) for k in theirs)
    x = np.random.default_rng(0).integers(0, 256, (5, *shape), dtype=np.uint8)
    subnets = [Subnet(gates={}, bn=tb.get_bn(builtin), class_range=(0, CLASSES))]
    ours, our_feats = tb.predict(custom, x, subnets, 5, (0.5,), (0.25,), features=True)
    ref, ref_feats = tb.predict(builtin, x, subnets, 5, (0.5,), (0.25,), features=True)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(our_feats, ref_feats, rtol=1e-5, atol=1e-5)


def test_layers_list_biases_in_registration_order_and_flag_the_classifier(tb):
    model = adopted(tb, MLP)
    assert [(i.name, i.shape, i.kind, i.classifier) for i in tb.layers(model)] == [
        ("out", (CLASSES, 16), "linear", True), ("out.bias", (CLASSES,), "bias", True),
        ("hidden", (16, 36), "linear", False), ("hidden.bias", (16,), "bias", False)]
    assert tb.bn_layers(model) == ["bn"]
    resnet = adopted(tb, ResNetLike)
    infos = tb.layers(resnet)
    assert [i.name for i in infos if i.classifier] == ["fc", "fc.bias"]
    assert infos[0].name == "fc" and "stages.1.bias" in [i.name for i in infos]
    assert "stages.2.conv2" in [i.name for i in infos]
    assert tb.bn_layers(resnet)[:2] == ["stem.1", "stages.0.bn1"]


def test_weights_and_bn_round_trip(tb):
    model = adopted(tb, MLP)
    rng = np.random.default_rng(0)
    weights = {k: rng.standard_normal(v.shape).astype(np.float32)
               for k, v in tb.get_weights(model).items()}
    tb.set_weights(model, weights)
    assert all(np.array_equal(v, weights[k]) for k, v in tb.get_weights(model).items())
    bn = {"bn": {key: rng.random(16).astype(np.float32) + 0.5
                 for key in ("gamma", "beta", "mean", "var")}}
    tb.set_bn(model, bn)
    assert all(np.array_equal(tb.get_bn(model)["bn"][k], bn["bn"][k]) for k in bn["bn"])
    with pytest.raises(ValueError, match="shape"):
        tb.set_weights(model, {"out.bias": np.zeros(3, np.float32)})


def distill_phase(weight_decay=0.1):
    return PhaseSpec(kind="distill", epochs=2, lr=0.05, milestones=(), gamma=0.5,
                     weight_decay=weight_decay, batch_size=4, class_range=(0, 2), beta=1.0)


def test_distill_keeps_every_frozen_entry_bit_identical(tb):
    student, teacher = adopted(tb, ResNetLike, 0), tb.build_model(SPEC, 1)
    rng = np.random.default_rng(0)
    tb.set_weights(student, {k: rng.standard_normal(v.shape).astype(np.float32)
                             for k, v in tb.get_weights(student).items()})  # nonzero biases
    before = tb.get_weights(student)
    trainable = {k: rng.random(v.shape) < 0.5 for k, v in before.items()}
    trainable["fc"][2:] = trainable["fc.bias"][2:] = False
    del trainable["stem.0"]  # not listed: frozen whole
    trainer = tb.start_phase(student, distill_phase(), trainable, teacher=teacher)
    x, y = images(), np.arange(8) % 2
    for epoch in range(2):
        tb.train_epoch(trainer, x, y, epoch, seed=epoch)
    after = tb.get_weights(student)
    for name, w in before.items():
        mask = trainable.get(name, np.zeros(w.shape, bool))
        assert np.array_equal(after[name][~mask], w[~mask]), name
    assert not np.array_equal(after["fc.bias"][:2], before["fc.bias"][:2])
    assert not np.array_equal(after["stages.1.bias"], before["stages.1.bias"])
    state = tb.trainer_state(trainer)
    moment = state["adamw.stages.1.bias.exp_avg"]
    assert np.all(moment[~trainable["stages.1.bias"]] == 0)
    again = tb.start_phase(student, distill_phase(), trainable, teacher=teacher)
    tb.load_trainer_state(again, state)
    assert all(np.array_equal(v, state[k]) for k, v in tb.trainer_state(again).items())


def test_predict_is_the_forward_and_features_are_the_classifiers_input(tb):
    model = adopted(tb, MLP)
    x = images(10)
    tb.train_epoch(tb.start_phase(model, PhaseSpec(
        kind="teacher", epochs=1, lr=0.05, milestones=(), gamma=0.5, weight_decay=0.0,
        batch_size=5, class_range=(0, CLASSES)), None), x, np.arange(10) % CLASSES, 0, 0)
    rng = np.random.default_rng(1)
    gates = {k: rng.random(v.shape) < 0.6 for k, v in tb.get_weights(model).items()}
    bn = tb.get_bn(model)
    logits, feats = tb.predict(model, x, [Subnet(gates=gates, bn=bn, class_range=(2, 4))],
                               batch_size=4, mean=(0.5,), std=(0.25,), features=True)
    tb.set_gates(model, gates)
    tb.set_bn(model, bn)
    model.eval()
    inputs = (torch.from_numpy(x).float().permute(0, 3, 1, 2) / 255 - 0.5) / 0.25
    with torch.no_grad():
        hidden = F.relu(model.bn(model.hidden(inputs.flatten(1))))
        expected = model(inputs)
    np.testing.assert_allclose(logits[0], expected[:, 2:4].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(feats[0], hidden.numpy(), rtol=1e-5, atol=1e-6)
    assert logits.shape == (1, 10, 2) and feats.shape == (1, 10, 16)


def test_a_model_that_views_its_activations_trains(tb):
    class Viewing(nn.Module):  # .view() fails on channels_last activations
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.fc = nn.Linear(72, CLASSES)

        def forward(self, x):
            h = F.relu(self.conv(x))
            return self.fc(h.view(h.size(0), -1))

    model = adopted(tb, Viewing)
    phase = PhaseSpec(kind="teacher", epochs=1, lr=0.05, milestones=(), gamma=0.5,
                      weight_decay=0.0, batch_size=4, class_range=(0, CLASSES))
    result = tb.train_epoch(tb.start_phase(model, phase, None), images(), np.arange(8) % 4, 0, 0)
    assert np.isfinite(result.loss)


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x * self.scale


def wrap(*layers, classes=CLASSES):
    """layers then global pooling and a classifier of `classes` outputs."""
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes))


class Softmaxed(MLP):
    def forward(self, x):
        return F.softmax(super().forward(x), dim=1)


class ThreeD(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, CLASSES)

    def forward(self, x):
        return self.fc(x[:, 0]).mean(dim=1)


ERRORS = {
    "layer_norm": (lambda: wrap(nn.Conv2d(1, 4, 3), nn.LayerNorm([4, 4, 4])),
                   r"layer '1' \(LayerNorm\) is not supported"),
    "own_parameter": (lambda: wrap(nn.Conv2d(1, 4, 3), Scaled()),
                      r"layer '1' \(Scaled with tensors of its own: scale\)"),
    "bn_without_affine": (lambda: wrap(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, affine=False)),
                          r"BatchNorm2d with affine=False"),
    "wrong_width": (lambda: wrap(nn.Conv2d(1, 4, 3), classes=7),
                    r"classifier .*'3'.* has 7 outputs but the data has 4 classes"),
    "softmax_after": (Softmaxed, r"output is not the classifier's \('out'\)"),
    "fails_on_shape": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(50, CLASSES)),
                       r"fails on a batch of 6x6x1 images: .*shapes cannot be multiplied"),
    "three_d_input": (ThreeD, r"classifier 'fc' takes input of shape \(2, 6, 6\)"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_unsupported_networks_are_one_line_network_errors(tb, case):
    make, message = ERRORS[case]
    with pytest.raises(NetworkError, match=message) as caught:
        tb.adopt_network(make(), SHAPE, CLASSES)
    assert "\n" not in str(caught.value)
    assert tb._template is None  # nothing adopted


def test_build_custom_without_an_adopted_network(tb):
    with pytest.raises(NetworkError) as caught:
        tb.build_model(SPEC, 0)
    assert str(caught.value) == NO_NETWORK
    tb.adopt_network(MLP(), SHAPE, CLASSES)
    tb.adopt_network(strided_cnn(), SHAPE, CLASSES)  # the last adopted wins
    assert [i.name for i in tb.layers(tb.build_model(SPEC, 0))] == ["0", "0.bias", "4", "4.bias"]
    with pytest.raises(NetworkError, match="adopt it again"):
        tb.build_model(ModelSpec(arch="custom", input_shape=SHAPE, num_classes=6), 0)


class UserCNN(nn.Module):
    def __init__(self, classes: int = 6) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8),
                                      nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def test_engine_trains_a_users_cnn_for_two_tasks(tb, tmp_path):
    torch.manual_seed(0)
    tb.adopt_network(UserCNN(), SHAPE, 6)
    cfg = resolve_config("smoke", {"model": "custom", "tasks": 2, "backend": "torch",
                                   "device": "cpu", "teacher.epochs": 8, "distill.epochs": 8,
                                   "teacher.batch_size": 16, "distill.batch_size": 16,
                                   "teacher.lr": 0.05, "distill.lr": 0.05})
    metrics = Engine(cfg, tb, tiny_dataset(), tmp_path).run()
    assert metrics["tasks_done"] == 2
    assert metrics["final"]["taw"] > 0.8  # 3 classes per task: chance is 1/3
    saved = checkpoint.load(tmp_path / "checkpoint" / "task-1.safetensors")
    assert set(saved.weights) == {"features.0", "features.0.bias", "head", "head.bias"}
    assert set(saved.bn_snapshots[0]) == {"features.1"}
    first, second = (snap["features.1"]["mean"] for snap in saved.bn_snapshots)
    assert not np.array_equal(first, second)  # per-task BN
    owner = saved.owner["head.bias"]
    assert list(owner) == [0, 0, 0, 1, 1, 1]  # classifier bias allocated by class rows
