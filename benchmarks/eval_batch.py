"""Inference batch size: backend.predict (features too, as evaluation and the routing
statistics ask) at several `inference.batch_size` values, each backend, model and precision.

    python -m benchmarks.eval_batch [--json] [--quick] [--backends torch,tf] [--threads 2]

Why: evaluation and the statistics fit are forward passes only, whose activations for a
batch of 512 (small_cnn: 512 x 32 x 28 x 28 values after its first convolution) outgrow a CPU's
caches; the element-wise work (BatchNorm, pooling) then runs at memory speed. Every figure is
images per CPU second, the median of interleaved repeats; `ratio_vs_512` is the time of a
batch size against 512's (lower is better). Predictions are checked to agree at every batch
size, up to float rounding (in inference the forward pass is per image).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from benchmarks.tf_vs_torch import load as load_backend
from benchmarks.tf_vs_torch import set_threads
from mind_core.protocol import ModelSpec, Subnet

MODELS = {"small_cnn": (28, 28, 1), "resnet32": (32, 32, 3)}
SUBNETS = 2  # sub-networks per predict call (every one a full pass over the images)


def time_predict(backend, model, x, subnets, batch: int) -> tuple[float, np.ndarray]:
    start = time.process_time()
    logits, _ = backend.predict(model, x, subnets, batch, (0.3,) * x.shape[-1],
                                (0.35,) * x.shape[-1], features=True)
    return time.process_time() - start, logits


def run(backends: list[str], batches: list[int], images: int, repeats: int,
        threads: int) -> dict:
    set_threads(threads, backends)
    rng = np.random.default_rng(0)
    out: dict = {"config": {"images": images, "repeats": repeats, "threads": threads,
                            "subnets": SUBNETS, "batches": batches}, "results": {}}
    for name in backends:
        for precision in ("fp32", "bf16"):
            backend = load_backend(name, "cpu", precision)
            if backend is None:
                continue
            for arch, shape in MODELS.items():
                spec = ModelSpec(arch=arch, input_shape=shape, num_classes=10)
                model = backend.build_model(spec, seed=0)
                x = rng.integers(0, 256, (images, *shape), dtype=np.uint8)
                dense = {layer.name: np.ones(layer.shape, bool)
                         for layer in backend.layers(model)}
                subnets = [Subnet(gates=dense, bn=backend.get_bn(model), class_range=(0, 10))
                           ] * SUBNETS
                seconds: dict[int, list[float]] = {b: [] for b in batches}
                reference = None
                for repeat in range(repeats + 1):  # the first round warms up, untimed
                    for batch in batches[repeat % len(batches):] + batches[:repeat % len(batches)]:
                        spent, logits = time_predict(backend, model, x, subnets, batch)
                        if reference is None:
                            reference = logits
                        elif not np.allclose(logits, reference, rtol=1e-5, atol=1e-5):
                            raise AssertionError(f"{name} {arch} {precision}: batch {batch} "
                                                 "changed the predictions")
                        if repeat:
                            seconds[batch].append(spent)
                median = {b: statistics.median(v) for b, v in seconds.items()}
                key = f"{name}/{arch}/{precision}"
                out["results"][key] = {
                    "images_per_cpu_s": {b: round(SUBNETS * images / m, 1)
                                         for b, m in median.items()},
                    "ratio_vs_512": {b: round(m / median[512], 3) for b, m in median.items()}
                    if 512 in median else None}
                print(key, out["results"][key]["images_per_cpu_s"], flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    parser.add_argument("--quick", action="store_true", help="256 images, 1 repeat (for tests)")
    parser.add_argument("--backends", default="torch,tf", help="comma-separated: torch,tf")
    parser.add_argument("--threads", type=int, default=2,
                        help="intra-op threads (default 2: what `mind run` uses on 2 cores)")
    args = parser.parse_args(argv)
    images, repeats = (256, 1) if args.quick else (1024, 3)
    out = run([b.strip() for b in args.backends.split(",") if b.strip()],
              [64, 128, 256, 512], images, repeats, args.threads)
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
