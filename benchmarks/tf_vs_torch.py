"""TF vs PyTorch backend speed on ResNet-32, side by side in one process, through the protocol.

    python -m benchmarks.tf_vs_torch [--json] [--batches 8] [--repeats 3] [--device cpu]

Train: images/s of a teacher epoch (dense, CE, AdamW, batch 64, 32x32x3, 10 classes; the
first epoch, which compiles, is not timed). Eval: images/s of predict() with one sub-network.
Epochs of the two backends are interleaved so both see the same machine load; the median of
the repeats is reported.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time

import numpy as np

from mind_core.protocol import Augment, ModelSpec, PhaseSpec, Subnet
from mind_core.registry import BACKENDS

SPEC = ModelSpec(arch="resnet32", input_shape=(32, 32, 3), num_classes=10)
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def load(name: str, device: str, precision: str = "fp32"):
    module, _, cls = BACKENDS[name][0].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)(device=device, precision=precision)
    except ImportError as error:
        print(f"skipping {name}: {error}", file=sys.stderr)
        return None


class Bench:
    """One backend's model, trainer and data, ready for timed epochs and predictions."""

    def __init__(self, backend, batch_size: int, batches: int, augment: bool, eval_batch: int):
        self.backend = backend
        rng = np.random.default_rng(0)
        n = batch_size * batches
        self.x = rng.integers(0, 256, (n, *SPEC.input_shape), dtype=np.uint8)
        self.y = rng.integers(0, SPEC.num_classes, n).astype(np.int64)
        self.model = backend.build_model(SPEC, seed=0)
        aug = Augment(crop_pad=4, hflip=True, brightness=0.1) if augment else Augment()
        phase = PhaseSpec(kind="teacher", epochs=1, lr=1e-3, milestones=(), gamma=0.5,
                          weight_decay=0.0, batch_size=batch_size,
                          class_range=(0, SPEC.num_classes), mean=MEAN, std=STD, augment=aug)
        self.trainer = backend.start_phase(self.model, phase, None)
        layers = backend.layers(self.model)
        self.subnet = Subnet(gates={i.name: np.ones(i.shape, bool) for i in layers},
                             bn=backend.get_bn(self.model), class_range=(0, SPEC.num_classes))
        self.eval_batch = eval_batch
        self.epoch = 0

    def train(self) -> float:
        result = self.backend.train_epoch(self.trainer, self.x, self.y, epoch=self.epoch,
                                          seed=self.epoch)
        self.epoch += 1
        return result.images / result.seconds

    def predict(self) -> float:
        start = time.perf_counter()
        self.backend.predict(self.model, self.x, [self.subnet], self.eval_batch, MEAN, STD)
        return len(self.x) / (time.perf_counter() - start)


def set_threads(threads: int, names: list[str]) -> None:
    """Same intra-op thread count for both frameworks (before either runs an op)."""
    if threads <= 0:
        return
    if "tf" in names:
        try:
            from backends.tf import tf_import

            tf, _ = tf_import()
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except ImportError:
            pass
    if "torch" in names:
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            pass


def run(args) -> dict:
    set_threads(args.threads, args.backends)
    benches = {}
    for name in args.backends:
        backend = load(name, args.device)
        if backend is not None:
            benches[name] = Bench(backend, args.batch_size, args.batches, args.augment,
                                  args.eval_batch)
    for bench in benches.values():  # compile / warm up, untimed
        bench.train()
        bench.predict()
    train = {name: [] for name in benches}
    evals = {name: [] for name in benches}
    for _ in range(args.repeats):
        for name, bench in benches.items():
            train[name].append(bench.train())
            evals[name].append(bench.predict())
    out = {"config": {"model": "resnet32", "input": list(SPEC.input_shape),
                      "classes": SPEC.num_classes, "batch_size": args.batch_size,
                      "batches": args.batches, "eval_batch": args.eval_batch,
                      "augment": args.augment, "repeats": args.repeats, "device": args.device,
                      "threads": args.threads},
           "backends": {}}
    for name, bench in benches.items():
        out["backends"][name] = {
            "device": bench.backend.device, "versions": bench.backend.versions(),
            "train_images_per_s": round(statistics.median(train[name]), 1),
            "eval_images_per_s": round(statistics.median(evals[name]), 1),
        }
    if {"tf", "torch"} <= benches.keys():
        tf_, torch_ = out["backends"]["tf"], out["backends"]["torch"]
        out["torch_over_tf"] = {
            "train": round(torch_["train_images_per_s"] / tf_["train_images_per_s"], 3),
            "eval": round(torch_["eval_images_per_s"] / tf_["eval_images_per_s"], 3),
        }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--backends", nargs="+", default=["tf", "torch"], choices=BACKENDS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=8, help="batches per timed epoch")
    parser.add_argument("--eval-batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--augment", action="store_true", help="crop 4 + flip + brightness")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads for both frameworks (0: their defaults)")
    args = parser.parse_args(argv)
    out = run(args)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for name, row in out["backends"].items():
            print(f"{name:6s} train {row['train_images_per_s']:8.1f} img/s   "
                  f"eval {row['eval_images_per_s']:8.1f} img/s   ({row['device']})")
        if "torch_over_tf" in out:
            print(f"torch/tf speed ratio: train {out['torch_over_tf']['train']}, "
                  f"eval {out['torch_over_tf']['eval']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
