"""Dead channels counted on data: per conv layer of small_cnn, how many output channels of one
sub-network are exactly 0 after BN and ReLU on every pixel of every image given.

The Backend protocol has no method for intermediate activations (predict returns logits and
the classifier's input only), so this test helper reaches into each framework's small_cnn for
the outputs of its BN layers, bn1..bn3 (docs/models.md: conv{i} -> bn{i} -> ReLU). Everything
else is the backends' own code: gates and BN are set with backend.set_gates/set_bn and the
images normalised with the dataset's mean/std exactly as backend.predict does at evaluation.
"""

from __future__ import annotations

import numpy as np

from mind_core.protocol import Subnet

CONVS = ("conv1", "conv2", "conv3")  # small_cnn's conv layers; conv{i} feeds bn{i}


def dead_channels(backend, model, subnet: Subnet, x: np.ndarray, mean: tuple[float, ...],
                  std: tuple[float, ...], batch_size: int = 256) -> dict[str, int]:
    """{conv layer: number of its output channels whose post-BN-post-ReLU activation is 0 for
    every pixel of every image in x (uint8 NHWC)}, with sub-network `subnet` (gates, BN
    snapshot) in place. As mind_core.masks.dead_rows does, only channels the sub-network uses
    (at least one gated-in weight in their row) count: a row without any is 0 everywhere but
    was never the sub-network's to use. Leaves the model with the sub-network's gates and BN
    set, as backend.predict does."""
    if backend.name == "torch":
        alive = _alive_torch(backend, model, subnet, x, mean, std, batch_size)
    elif backend.name == "tf":
        alive = _alive_tf(backend, model, subnet, x, mean, std, batch_size)
    else:
        raise NotImplementedError(f"no activation probe for backend {backend.name!r}")
    counts = {}
    for i, conv in enumerate(CONVS, 1):
        gate = np.asarray(subnet.gates[conv])
        used = gate.reshape(gate.shape[0], -1).any(axis=1)
        counts[conv] = int((used & ~alive[f"bn{i}"]).sum())
    return counts


def _alive_torch(backend, model, subnet, x, mean, std, batch_size) -> dict[str, np.ndarray]:
    """Forward hooks on the BN modules while backend.predict runs the sub-network itself
    (its gates, BN, normalisation and eval mode)."""
    import torch

    alive: dict[str, np.ndarray] = {}

    def hook(name):
        def record(_module, _args, out):
            seen = (torch.relu(out) != 0).any(dim=(0, 2, 3)).cpu().numpy()  # NCHW
            alive[name] = alive.get(name, np.zeros_like(seen)) | seen
        return record

    names = [f"bn{i}" for i in range(1, len(CONVS) + 1)]
    handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    try:
        backend.predict(model, x, [subnet], batch_size, mean, std)
    finally:
        for handle in handles:
            handle.remove()
    return alive


def _alive_tf(backend, model, subnet, x, mean, std, batch_size) -> dict[str, np.ndarray]:
    """backend.predict runs a compiled tf.function, which a Python wrapper would see once at
    trace time only; so the same forward (model.features, kernel * gate, BN in inference mode)
    runs eagerly here, with each BN layer's `call` wrapped on the instance for the duration."""
    from backends.tf import tf_import
    from backends.tf.augment import normalise

    tf, _ = tf_import()
    backend.set_gates(model, subnet.gates)
    backend.set_bn(model, subnet.bn)
    alive: dict[str, np.ndarray] = {}

    def wrap(name, layer):
        original = layer.call

        def record(inputs, training=False):
            out = original(inputs, training=training)
            seen = tf.reduce_any(tf.nn.relu(out) != 0, axis=(0, 1, 2)).numpy()  # NHWC
            alive[name] = alive.get(name, np.zeros_like(seen)) | seen
            return out
        layer.call = record

    layers = {name: model.bn[name] for name in (f"bn{i}" for i in range(1, len(CONVS) + 1))}
    channels = x.shape[-1]
    mean_t = tf.constant(np.broadcast_to(np.asarray(mean, np.float32), (channels,)))
    std_t = tf.constant(np.broadcast_to(np.asarray(std, np.float32), (channels,)))
    for name, layer in layers.items():
        wrap(name, layer)
    try:
        with tf.device(backend.device):
            for start in range(0, len(x), batch_size):
                batch = tf.convert_to_tensor(np.ascontiguousarray(x[start:start + batch_size],
                                                                  dtype=np.uint8))
                model.features(normalise(batch, mean_t, std_t), training=False)
    finally:
        for layer in layers.values():
            del layer.call  # the class's own call again
    return alive
