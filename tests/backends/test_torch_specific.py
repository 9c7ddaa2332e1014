"""What only the PyTorch backend has: device resolution, gate buffers, the effective-weight
cache, on-device augmentation and the exact model structure against plain torch code."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from backends.torch import backend as backend_module  # noqa: E402
from backends.torch.augment import EpochAugmenter, Normaliser  # noqa: E402
from backends.torch.backend import TorchBackend  # noqa: E402
from backends.torch.layers import GatedConv2d  # noqa: E402
from backends.torch.losses import LogitMask  # noqa: E402
from backends.torch.models import BasicBlock, gated_layers  # noqa: E402
from mind_core.numerics import log_softmax  # noqa: E402
from mind_core.protocol import Augment, ModelSpec, Penalty, PhaseSpec, Subnet  # noqa: E402

SPEC = ModelSpec(arch="small_cnn", input_shape=(8, 8, 3), num_classes=4)


@pytest.fixture
def tb():
    return TorchBackend("cpu")


def test_cuda_without_cuda_is_a_readable_value_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="sees 0 GPU"):
        TorchBackend("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        TorchBackend("tpu")
    auto = TorchBackend("auto")
    assert auto.device == "cpu" and "deterministic" in auto.capabilities
    assert auto.versions()["torch"] == torch.__version__


def test_cuda_index_is_checked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert backend_module.resolve_device("cuda") == "cuda:0"
    with pytest.raises(ValueError, match="sees 1 GPU"):
        backend_module.resolve_device("cuda:3")


def test_gates_are_buffers_and_all_ones_means_dense(tb):
    model = tb.build_model(SPEC, seed=0)
    gate = np.random.default_rng(0).random((32, 3, 3, 3)) < 0.5
    tb.set_gates(model, {"conv1": gate, "conv2": np.ones((64, 32, 3, 3), bool)})
    layers = gated_layers(model)
    assert torch.equal(model.state_dict()["conv1.gate"], torch.from_numpy(gate).float())
    assert layers["conv2"].gate is None and layers["fc"].gate is None
    tb.set_gates(model, None)
    assert all(layer.gate is None for layer in layers.values())
    with pytest.raises(ValueError, match="unknown layers"):
        tb.set_gates(model, {"conv9": gate})


def test_bad_weights_are_value_errors(tb):
    model = tb.build_model(SPEC, seed=0)
    with pytest.raises(ValueError, match="shape"):
        tb.set_weights(model, {"fc": np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match="unknown layer"):
        tb.set_weights(model, {"head": np.zeros((4, 128), np.float32)})


def test_predict_multiplies_once_per_subnet_and_never_copies(tb, monkeypatch):
    model = tb.build_model(SPEC, seed=0)
    calls = []
    original = GatedConv2d.cache_effective_weight
    monkeypatch.setattr(GatedConv2d, "cache_effective_weight",
                        lambda self: calls.append(self) or original(self))
    monkeypatch.setattr(copy, "deepcopy", lambda *a, **k: pytest.fail("model copied"))
    x = np.zeros((30, 8, 8, 3), np.uint8)
    subnets = [Subnet(gates={}, bn=tb.get_bn(model), class_range=(0, 2))] * 2
    tb.predict(model, x, subnets, batch_size=4, mean=(0.5,), std=(0.25,))
    assert len(calls) == 2 * 3  # 2 sub-networks x 3 convs, not x 8 batches
    assert all(layer._cached is None for layer in gated_layers(model).values())


def test_model_still_trains_after_predict(tb):
    # Gates set during predict must not be inference tensors, or backward would fail.
    model = tb.build_model(SPEC, seed=0)
    gates = {"conv1": np.random.default_rng(0).random((32, 3, 3, 3)) < 0.5}
    x = np.random.default_rng(1).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    tb.predict(model, x, [Subnet(gates=gates, bn=tb.get_bn(model), class_range=(0, 4))],
               batch_size=4, mean=(0.5,), std=(0.25,))
    ph = PhaseSpec(kind="teacher", epochs=1, lr=0.01, milestones=(), gamma=0.5,
                   weight_decay=0.0, batch_size=4, class_range=(0, 4))
    result = tb.train_epoch(tb.start_phase(model, ph, None), x, np.arange(8) % 4, 0, 0)
    assert np.isfinite(result.loss)


def test_distill_with_beta_needs_a_teacher_and_state_must_match(tb):
    model = tb.build_model(SPEC, seed=0)
    ph = PhaseSpec(kind="distill", epochs=1, lr=0.01, milestones=(), gamma=0.5,
                   weight_decay=0.0, batch_size=4, class_range=(0, 4), beta=5.0)
    with pytest.raises(ValueError, match="teacher"):
        tb.start_phase(model, ph, None)
    with pytest.raises(ValueError, match="separate model"):
        tb.start_phase(model, ph, None, teacher=model)
    teacher = tb.build_model(SPEC, seed=1)
    trainer = tb.start_phase(model, ph, {"fc": np.ones((4, 128), bool)}, teacher=teacher)
    with pytest.raises(ValueError, match="does not belong"):
        tb.load_trainer_state(trainer, {"adamw.conv1.weight.step": np.array(1.0)})


def test_forward_matches_plain_torch_small_cnn(tb):
    model = tb.build_model(SPEC, seed=0)
    x = torch.randn(5, 3, 12, 12)
    model.eval()
    w = {k: v.weight.detach() for k, v in gated_layers(model).items()}
    h = torch.relu(conv_fresh_bn(x, w["conv1"]))
    h = torch.nn.functional.max_pool2d(h, 2)
    h = torch.nn.functional.max_pool2d(torch.relu(conv_fresh_bn(h, w["conv2"])), 2)
    h = torch.relu(conv_fresh_bn(h, w["conv3"])).mean(dim=(2, 3))
    # Fresh BN in eval mode is x / sqrt(1 + eps).
    expected = h @ w["fc"].T
    torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)


def test_small_cnn_pools_before_its_relu_with_the_same_values_and_gradients(tb):
    """small_cnn computes "ReLU; max-pool" as max-pool then ReLU: in training mode, with BN
    scales of both signs, features and every gradient equal ReLU-then-pool's bit for bit."""
    model = tb.build_model(SPEC, seed=0).train()
    with torch.no_grad():
        for bn in (model.bn1, model.bn2, model.bn3):
            bn.weight.copy_(torch.linspace(-1.5, 1.5, bn.weight.numel()))
    x = torch.randn(6, 3, 9, 9)  # odd sizes: pooling floors them

    def relu_then_pool(x):
        h = torch.nn.functional.max_pool2d(torch.relu(model.bn1(model.conv1(x))), 2)
        h = torch.nn.functional.max_pool2d(torch.relu(model.bn2(model.conv2(h))), 2)
        return torch.relu(model.bn3(model.conv3(h))).mean(dim=(2, 3))

    results = []
    for features in (model.features, relu_then_pool):
        model.zero_grad(set_to_none=True)
        out = features(x)
        (out * torch.arange(out.shape[1])).sum().backward()
        results.append([out.detach()] + [p.grad.clone() for p in model.parameters()
                                         if p.grad is not None])
    assert len(results[0]) == len(results[1]) > 1
    for got, expected in zip(*results, strict=True):
        assert torch.equal(got, expected)


def conv_fresh_bn(x, weight):
    return torch.nn.functional.conv2d(x, weight, padding=1) / (1 + 1e-5) ** 0.5


def test_option_a_shortcut_subsamples_and_zero_pads_channels():
    block = BasicBlock(16, 32, stride=2).eval()
    with torch.no_grad():
        block.conv1.weight.zero_()
        block.conv2.weight.zero_()
    x = torch.randn(2, 16, 6, 6).relu()
    out = block(x)
    assert out.shape == (2, 32, 3, 3)
    torch.testing.assert_close(out[:, 8:24], x[:, :, ::2, ::2])
    assert torch.all(out[:, :8] == 0) and torch.all(out[:, 24:] == 0)


def test_crop_and_flip_match_a_numpy_reference():
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, 5, 7, 2), dtype=np.uint8))
    aug = EpochAugmenter(Augment(crop_pad=2, hflip=True), 10, 5, 7, seed=3,
                         device=torch.device("cpu"))
    out = aug.geometric(x, start=4).numpy()
    for i in range(6):
        dy, dx = aug.offsets[4 + i].tolist()
        ref = np.pad(x[i].numpy(), ((2, 2), (2, 2), (0, 0)))[dy:dy + 5, dx:dx + 7]
        if aug.flips[4 + i]:
            ref = ref[:, ::-1]
        np.testing.assert_array_equal(out[i], ref)
    assert aug.flips.any() and not aug.flips.all() and aug.offsets.max() > 0


def test_normalise_and_brightness():
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 3, 2), dtype=np.uint8)
    norm = Normaliser((0.5, 0.25), (0.2, 0.4), torch.device("cpu"))
    expected = ((x / 255.0 - [0.5, 0.25]) / [0.2, 0.4]).transpose(0, 3, 1, 2)
    out = norm(torch.from_numpy(x))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    aug = EpochAugmenter(Augment(brightness=0.3), 4, 3, 3, seed=0, device=torch.device("cpu"))
    shift = (aug.photometric(out, 0) - out).numpy()
    assert np.allclose(shift, shift[:, :1, :1, :1], atol=1e-6)  # one shift per image
    assert np.all(np.abs(shift) <= 0.3) and np.ptp(shift[:, 0, 0, 0]) > 0


def test_logit_mask_modes():
    logits = torch.arange(12.0).reshape(2, 6)
    zero = LogitMask("zero", (2, 4), 6, "cpu")
    assert torch.equal(zero.logits(logits)[0], torch.tensor([0.0, 0, 2, 3, 0, 0]))
    sliced = LogitMask("slice", (2, 4), 6, "cpu")
    assert torch.equal(sliced.logits(logits), logits[:, 2:4])
    assert torch.equal(sliced.labels(torch.tensor([2, 3])), torch.tensor([0, 1]))
    with pytest.raises(ValueError):
        LogitMask("zero", (4, 7), 6, "cpu")


def test_threads_sets_torchs_intra_op_threads():
    before = torch.get_num_threads()
    try:
        TorchBackend("cpu", threads=2)
        assert torch.get_num_threads() == 2
        TorchBackend("cpu")  # None leaves the setting alone
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="positive whole number") as caught:
            TorchBackend("cpu", threads=0)
        assert "\n" not in str(caught.value) and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_fisher_leaves_no_gradient_flags_or_modes_behind(tb):
    model = tb.build_model(SPEC, seed=0)
    ph = PhaseSpec(kind="teacher", epochs=1, lr=0.01, milestones=(), gamma=0.5,
                   weight_decay=0.0, batch_size=4, class_range=(0, 4), train_bn=False)
    tb.start_phase(model, ph, {"fc": np.ones((4, 128), bool)})  # freezes the convs
    model.train()
    model.bn2.eval()
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    modes = {name: m.training for name, m in model.named_modules()}
    x = np.random.default_rng(0).integers(0, 256, (9, 8, 8, 3), dtype=np.uint8)
    fisher = tb.fisher(model, x, np.arange(9) % 4, (0, 4), 4, (0.5,), (0.25,))
    assert all(np.any(f > 0) for f in fisher.values())  # frozen for training, not for F
    assert all(p.grad is None for p in model.parameters())
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    assert {name: m.training for name, m in model.named_modules()} == modes


def test_fisher_rejects_labels_outside_the_class_range_and_empty_data(tb):
    model = tb.build_model(SPEC, seed=0)
    x = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="outside"):
        tb.fisher(model, x, np.array([0, 1, 2, 3]), (0, 2), 4, (0.5,), (0.25,))
    with pytest.raises(ValueError, match="at least one"):
        tb.fisher(model, x[:0], np.zeros(0, np.int64), (0, 2), 4, (0.5,), (0.25,))


def test_penalty_is_on_the_device_once_and_weight_zero_is_no_penalty(tb):
    model = tb.build_model(SPEC, seed=0)
    ph = PhaseSpec(kind="teacher", epochs=1, lr=0.01, milestones=(), gamma=0.5,
                   weight_decay=0.0, batch_size=4, class_range=(0, 4))
    fc = tb.get_weights(model)["fc"]
    anchor, importance = {"fc": fc.copy()}, {"fc": np.ones_like(fc)}
    trainer = tb.start_phase(model, ph, None, penalty=Penalty(weight=2.0, anchor=anchor,
                                                              importance=importance))
    assert [a.device.type for a in trainer.penalty.anchors] == [tb._device.type]
    anchor["fc"] += 5.0  # the trainer holds its own copy, made when the phase started
    assert float(trainer.penalty().detach()) == 0.0
    for empty in (Penalty(weight=0.0, anchor=anchor, importance=importance),
                  Penalty(weight=2.0, anchor={}, importance={})):
        assert tb.start_phase(model, ph, None, penalty=empty).penalty is None


def biased_network():
    """A user's network with a conv bias and a linear bias (each its own gated tensor)."""
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 6 * 6, 4))


def test_fisher_and_penalty_cover_a_user_networks_biases(tb):
    tb.adopt_network(biased_network(), (6, 6, 1), 4)
    model = tb.build_model(ModelSpec(arch="custom", input_shape=(6, 6, 1), num_classes=4), 0)
    rng = np.random.default_rng(0)
    tb.set_weights(model, {"4.bias": rng.normal(0, 1, 4).astype(np.float32)})
    x = rng.integers(0, 256, (10, 6, 6, 1), dtype=np.uint8)
    y = rng.integers(1, 4, 10)
    fisher = tb.fisher(model, x, y, (1, 4), 4, (0.5,), (0.25,))
    assert list(fisher) == ["0", "0.bias", "4", "4.bias", "1.gamma", "1.beta"]
    # dL/db[c] of the classifier's bias is the batch mean of softmax - onehot over [1, 4),
    # from a training-mode forward (batch statistics) of the two full batches of 4.
    twin = copy.deepcopy(model).train()
    normalise = Normaliser((0.5,), (0.25,), "cpu", channels_last=False)
    expected = np.zeros(4)
    for s in (0, 4):
        with torch.no_grad():
            z = twin(normalise(torch.from_numpy(x[s:s + 4])))[:, 1:4].double().numpy()
        delta = np.exp(log_softmax(z))
        delta[np.arange(4), y[s:s + 4] - 1] -= 1
        expected[1:] += delta.mean(0) ** 2
    np.testing.assert_allclose(fisher["4.bias"], expected / 2, rtol=1e-4, atol=1e-9)
    # A strong pull on the classifier's bias holds it at its anchor.
    anchor = tb.get_weights(model)["4.bias"]
    ph = PhaseSpec(kind="teacher", epochs=1, lr=0.05, milestones=(), gamma=0.5,
                   weight_decay=0.0, batch_size=5, class_range=(1, 4))
    penalty = Penalty(weight=1e4, anchor={"4.bias": anchor},
                      importance={"4.bias": np.ones(4, np.float32)})
    moved = {}
    for pull in (None, penalty):
        tb.set_weights(model, {"4.bias": anchor})
        trainer = tb.start_phase(model, ph, None, penalty=pull)
        for epoch in range(3):
            tb.train_epoch(trainer, x, y, epoch, epoch)
        moved[pull is None] = np.abs(tb.get_weights(model)["4.bias"] - anchor).max()
    assert moved[False] < 0.25 * moved[True]


def test_fused_adamw_is_torch_optims_fused_adamw_bit_for_bit():
    """backends/torch/optim.py calls the kernel torch.optim.AdamW(fused=True) calls: the same
    weights and moments after steps with two groups, a changed rate, a parameter without a
    gradient, and a state saved and loaded midway."""
    from backends.torch.optim import FusedAdamW

    def params():
        generator = torch.Generator().manual_seed(0)
        return [torch.nn.Parameter(torch.randn(shape, generator=generator))
                for shape in ((4, 3, 3, 3), (5,), (2, 4))]

    ours, theirs = params(), params()
    groups = lambda ps: [{"params": ps[:2], "weight_decay": 0.1},  # noqa: E731
                         {"params": ps[2:], "weight_decay": 0.0}]
    mine = FusedAdamW(groups(ours), lr=0.01)
    reference = torch.optim.AdamW(groups(theirs), lr=0.01, fused=True)
    generator = torch.Generator().manual_seed(1)
    for step in range(4):
        grads = [torch.randn(p.shape, generator=generator) for p in ours]
        for optimizer, ps in ((mine, ours), (reference, theirs)):
            optimizer.zero_grad()
            for index, (p, g) in enumerate(zip(ps, grads, strict=True)):
                p.grad = None if (step == 1 and index == 1) else g.clone()
            for group in optimizer.param_groups:
                group["lr"] = 0.01 / (step + 1)
            optimizer.step()
        if step == 2:  # a resumed optimiser goes on identically
            saved = {i: {k: v.clone() for k, v in fields.items()}
                     for i, fields in mine.state_dict()["state"].items()}
            mine = FusedAdamW(groups(ours), lr=0.01)
            mine.load_state_dict({"state": saved})
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    ref_state = reference.state_dict()["state"]
    for index, fields in mine.state_dict()["state"].items():
        for key, value in fields.items():
            assert torch.equal(value, ref_state[index][key]), (index, key)
