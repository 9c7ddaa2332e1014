"""The example of the backend under test (examples/) runs as a user would run it — a fresh
Python process from the checkout — and learns (about 20-30 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# backend -> (script, the class name the run records for the user's network)
EXAMPLES = {"torch": ("torch_own_network.py", "SmallNet"),
            "tf": ("keras_own_network.py", "Functional")}


def test_the_backends_example_trains_its_own_network(tmp_path, backend):
    script, network = EXAMPLES[backend.name]
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, f"examples/{script}", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    final = json.loads((out / "metrics.json").read_text())["final"]
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["model"] == "custom"
    assert config["network"].startswith(network)
    # 5 tasks of 2 classes: chance is 50 % task-aware and 10 % task-agnostic.
    assert final["taw"] > 0.7 and final["tag"] > 0.3
    assert f"TAg {100 * final['tag']:.1f}%" in done.stdout
    assert done.stdout.count("predicted ") == 5
