"""Would torch.compile make a whole run faster? Its compile time against the steps it saves.

    python -m benchmarks.compile_probe [--json PATH] [--quick] [--threads 2]

For the two jobs whose speed issue 27 targets (the demo: small_cnn, 28x28x1, batch 128; the
Fashion-MNIST protocol: ResNet-32, 32x32x1, batch 256), in the precision `auto` resolves to
here: one training step (forward under autocast, cross-entropy, backward, fused AdamW) timed
eagerly and through `torch.compile` (inductor, the default mode). The first compiled step
includes the compilation; the steady-state figures are medians of interleaved repeats.
Then one step on the epoch's last, smaller batch, which makes torch compile again
(`recompile_s`). `break_even_steps` = (compile + recompile seconds) / seconds saved per step,
against the steps the whole run takes (`run_steps`): compiling pays only if the run has more
steps than that. The estimate favours compiling: a run compiles more often still (inference
mode for evaluation and statistics, each phase's own trainable tensors and gates). Inductor's
on-disk cache is a fresh folder, as on a new machine. Wall time, which is what a user waits
for (run it alone).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mind_core.protocol import ModelSpec

# (model spec, batch, the epoch's last batch, training steps of the whole run: tasks x epochs
# x batches per epoch)
JOBS = {
    # The demo: 5 tasks x (6 teacher + 8 student epochs) x 16 batches of 2,000 images.
    "demo": (ModelSpec(arch="small_cnn", input_shape=(28, 28, 1), num_classes=10), 128, 80,
             5 * 14 * 16),
    # The protocol: 5 tasks x (4 + 4 epochs) x 10 batches of 2,400 images.
    "protocol": (ModelSpec(arch="resnet32", input_shape=(32, 32, 1), num_classes=10), 256, 96,
                 5 * 8 * 10),
}


def step_fn(model, x, y, precision: str, device):
    """A training step on x[:n] (n: every image unless given)."""
    import torch
    import torch.nn.functional as F

    from backends.torch.amp import autocast

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)

    def step(n: int | None = None) -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = F.cross_entropy(model(x[:n]).float(), y[:n])
        loss.backward()
        optimizer.step()
    return step


def timed(step, *args) -> float:
    start = time.perf_counter()
    step(*args)
    return time.perf_counter() - start


def probe(name: str, repeats: int, compile_backend: str, scale: float = 1.0) -> dict:
    import torch

    from backends.torch.amp import resolve
    from backends.torch.backend import TorchBackend

    spec, batch, last, run_steps = JOBS[name]
    batch, last = max(2, int(batch * scale)), max(1, int(last * scale))
    device = torch.device("cpu")
    precision = resolve("auto", device)
    rng = np.random.default_rng(0)
    h, w, c = spec.input_shape
    x = torch.from_numpy(rng.normal(size=(batch, c, h, w)).astype(np.float32))
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(rng.integers(0, spec.num_classes, batch))
    backend = TorchBackend("cpu")
    eager_model = backend.build_model(spec, seed=0).train()
    compiled_model = torch.compile(backend.build_model(spec, seed=0).train(),
                                   backend=compile_backend)
    eager = step_fn(eager_model, x, y, precision, device)
    compiled = step_fn(compiled_model, x, y, precision, device)
    first_compiled = timed(compiled)  # compiles forward and backward, then runs the step
    timed(eager)  # warm-up
    samples = {"eager": [], "compiled": []}
    for _ in range(repeats):
        for kind, step in (("eager", eager), ("compiled", compiled)):
            samples[kind].append(timed(step))
    eager_s, compiled_s = (statistics.median(samples[k]) for k in ("eager", "compiled"))
    compile_s = max(first_compiled - compiled_s, 0.0)
    recompile_s = max(timed(compiled, last) - compiled_s * last / batch, 0.0)
    saved = eager_s - compiled_s
    break_even = (compile_s + recompile_s) / saved if saved > 0 else None
    return {"model": spec.arch, "batch": batch, "precision": precision,
            "compile_backend": compile_backend, "eager_step_s": round(eager_s, 4),
            "compiled_step_s": round(compiled_s, 4),
            "step_ratio_compiled_vs_eager": round(compiled_s / eager_s, 3),
            "compile_s": round(compile_s, 2), "last_batch": last,
            "recompile_s": round(recompile_s, 2), "run_steps": run_steps,
            "break_even_steps": None if break_even is None else round(break_even),
            "whole_run_faster": break_even is not None and run_steps > break_even}


@contextlib.contextmanager
def fresh_inductor_cache():
    """Inductor's on-disk cache in a new folder (what a new machine, or a new model, meets),
    unless TORCHINDUCTOR_CACHE_DIR is set; the environment is restored after."""
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        yield
        return
    with tempfile.TemporaryDirectory() as folder:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
        try:
            yield
        finally:
            del os.environ["TORCHINDUCTOR_CACHE_DIR"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--quick", action="store_true",
                        help="tiny batches, 2 repeats, dynamo's eager backend (no C++ "
                             "compilation): checks the script, measures nothing")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    repeats, backend, scale = (2, "eager", 1 / 64) if args.quick else (15, "inductor", 1.0)
    with fresh_inductor_cache():
        out = {"threads": args.threads, "torch": torch.__version__,
               "jobs": {name: probe(name, repeats, backend, scale) for name in JOBS}}
    for name, job in out["jobs"].items():
        print(f"{name}: step {job['eager_step_s']} s eager, {job['compiled_step_s']} s "
              f"compiled ({job['step_ratio_compiled_vs_eager']}x); compiling took "
              f"{job['compile_s']} s + {job['recompile_s']} s for the last batch, pays after "
              f"{job['break_even_steps']} steps; the run "
              f"has {job['run_steps']}: {'faster' if job['whole_run_faster'] else 'slower'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
