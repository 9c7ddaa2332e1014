"""The tf backend's process-wide runtime settings (backends/tf/runtime.py, issue 24): memory
growth on every visible GPU and both thread pools, set when the backend starts, before TF
does. No GPU here: TF's device functions are replaced by stand-ins that record the calls; what
a real GPU does with them is not run here (docs/sweeps.md says so)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from backends.tf import runtime  # noqa: E402
from backends.tf.backend import TFBackend, tf  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


class FakeGPU:
    def __init__(self, name: str):
        self.name, self.device_type = name, "GPU"


@pytest.fixture
def gpus(monkeypatch):
    """Two visible GPUs, memory growth off; returns the set_memory_growth calls."""
    devices = [FakeGPU("/physical_device:GPU:0"), FakeGPU("/physical_device:GPU:1")]
    growth: dict[str, bool] = {}
    calls: list[tuple[str, bool]] = []

    def set_memory_growth(device, enable):
        calls.append((device.name, enable))
        growth[device.name] = enable

    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: devices if kind in (None, "GPU") else [])
    monkeypatch.setattr(tf.config.experimental, "get_memory_growth",
                        lambda device: growth.get(device.name, False))
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", set_memory_growth)
    return calls


def test_the_backend_enables_memory_growth_on_every_visible_gpu(gpus):
    TFBackend(device="cpu")  # also on CPU: TF would take every visible GPU's memory at start
    assert gpus == [("/physical_device:GPU:0", True), ("/physical_device:GPU:1", True)]
    TFBackend(device="cpu")  # a second backend in the process (a sweep's worker): nothing to do
    assert len(gpus) == 2


def test_a_gpu_that_tf_started_on_already_is_one_warning(gpus, monkeypatch):
    def refused(device, enable):
        raise RuntimeError("Physical devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", refused)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runtime.enable_memory_growth()
    [warning] = caught
    assert warning.category is RuntimeWarning and "\n" not in str(warning.message)
    assert "GPU:0, /physical_device:GPU:1" in str(warning.message)


def test_threads_bound_both_the_intra_op_and_the_inter_op_pool(monkeypatch):
    threading = tf.config.threading
    pools = {"intra": 0, "inter": 0}
    for pool in pools:
        monkeypatch.setattr(threading, f"get_{pool}_op_parallelism_threads",
                            lambda pool=pool: pools[pool])
        monkeypatch.setattr(threading, f"set_{pool}_op_parallelism_threads",
                            lambda n, pool=pool: pools.__setitem__(pool, n))
    TFBackend(device="cpu", threads=3)
    assert pools == {"intra": 3, "inter": 3}


def test_in_a_new_process_both_are_set_before_tf_starts():
    # The stand-in for set_memory_growth asks TF's eager context whether its runtime has
    # started (a private attribute: there is no public question), as the real one would refuse.
    code = "\n".join([
        "from tensorflow.python.eager import context",
        "from backends.tf.backend import TFBackend, tf",
        "started = []",
        "tf.config.list_physical_devices = lambda kind=None: [tf.config.PhysicalDevice("
        "'/physical_device:GPU:0', 'GPU')]",
        "tf.config.experimental.get_memory_growth = lambda device: False",
        "tf.config.experimental.set_memory_growth = lambda device, on: started.append("
        "context.context()._context_handle is not None)",
        "TFBackend(device='cpu', threads=2)",
        "tf.constant(1.0) + 1  # TF's runtime runs from here on",
        "t = tf.config.threading",
        "print(started, t.get_intra_op_parallelism_threads(), "
        "t.get_inter_op_parallelism_threads())",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.split() == ["[False]", "2", "2"]
