"""What the backend conformance tests share: tiny model specs, learnable images, phases,
random ownership and BN, and short training runs (through the protocol alone, numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from mind_core.protocol import Augment, ModelSpec, PhaseSpec, Subnet

CLASSES = 6
SMALL = ModelSpec(arch="small_cnn", input_shape=(8, 8, 3), num_classes=CLASSES)
RESNET = ModelSpec(arch="resnet32", input_shape=(8, 8, 3), num_classes=CLASSES)
MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)
AUGMENT = Augment(crop_pad=2, hflip=True, brightness=0.2)


def images(n: int, seed: int = 0, classes=range(CLASSES)) -> tuple[np.ndarray, np.ndarray]:
    """Learnable data: a fixed random prototype per class plus noise."""
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(99).integers(0, 256, (CLASSES, 8, 8, 3))
    y = rng.choice(np.asarray(list(classes)), n).astype(np.int64)
    x = np.clip(prototypes[y] + rng.integers(-40, 41, (n, 8, 8, 3)), 0, 255)
    return x.astype(np.uint8), y


def phase(**fields) -> PhaseSpec:
    defaults = dict(kind="teacher", epochs=1, lr=0.01, milestones=(), gamma=0.5,
                    weight_decay=0.0, batch_size=8, class_range=(0, CLASSES), mean=MEAN, std=STD)
    return PhaseSpec(**{**defaults, **fields})


def task1_masks(backend, model, seed: int = 0):
    """Random ownership in {-1 free, 0, 1}: the gates and trainable masks of task 1."""
    rng = np.random.default_rng(seed)
    owners = {info.name: rng.integers(-1, 2, info.shape) for info in backend.layers(model)}
    return ({k: o >= 0 for k, o in owners.items()}, {k: o == 1 for k, o in owners.items()})


def ones(backend, model):
    return {info.name: np.ones(info.shape, bool) for info in backend.layers(model)}


def logits(backend, model, x, gates, bn, class_range=(0, CLASSES)) -> np.ndarray:
    subnet = Subnet(gates=gates, bn=bn, class_range=class_range)
    return backend.predict(model, x, [subnet], batch_size=7, mean=MEAN, std=STD)[0]


def random_bn(backend, model, seed: int):
    rng = np.random.default_rng(seed)
    return {name: {key: (rng.uniform(0.5, 1.5, v.shape) if key in ("gamma", "var")
                         else rng.normal(0, 0.3, v.shape)).astype(np.float32)
                   for key, v in values.items()}
            for name, values in backend.get_bn(model).items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            assert_same(a[key], b[key])
        else:
            assert np.array_equal(a[key], b[key]), key


def needs_determinism(backend) -> None:
    if "deterministic" not in backend.capabilities:
        pytest.skip(f"backend on {backend.device} does not claim bit-exact repeatability")


def expected_layers(spec: ModelSpec) -> tuple[list[tuple[str, tuple]], list[str]]:
    c = spec.input_shape[2]
    if spec.arch == "small_cnn":
        convs = [("conv1", (32, c, 3, 3)), ("conv2", (64, 32, 3, 3)), ("conv3", (128, 64, 3, 3))]
        return convs + [("fc", (spec.num_classes, 128))], ["bn1", "bn2", "bn3"]
    layers, bns, in_planes = [("conv1", (16, c, 3, 3))], ["bn1"], 16
    for stage, planes in enumerate((16, 32, 64), start=1):
        for block in range(5):
            p = f"layer{stage}.{block}"
            layers += [(f"{p}.conv1", (planes, in_planes, 3, 3)),
                       (f"{p}.conv2", (planes, planes, 3, 3))]
            bns += [f"{p}.bn1", f"{p}.bn2"]
            in_planes = planes
    return layers + [("fc", (spec.num_classes, 64))], bns


def two_subnets(backend, model) -> list[Subnet]:
    """Sub-networks 0 and 1 with their own gates, BN and classes (0-2 and 3-5)."""
    return [Subnet(gates=task1_masks(backend, model, seed=j)[0],
                   bn=random_bn(backend, model, seed=j), class_range=(3 * j, 3 * j + 3))
            for j in range(2)]


def train(backend, model, ph, trainable=None, teacher=None, n=32, epochs=None, **kw):
    trainer = backend.start_phase(model, ph, trainable, teacher)
    x, y = images(n, classes=range(*ph.class_range))
    return [backend.train_epoch(trainer, x, y, epoch=e, seed=e, **kw)
            for e in range(ph.epochs if epochs is None else epochs)]
