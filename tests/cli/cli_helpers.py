"""What the `mind` command tests share: the fake backend's flags and the one-line error rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAKE = ["--backend", "tests.fakes:FakeBackend", "--dataset", "synthetic"]
TRUST = FAKE[:2]  # eval and resume import a module:Class backend only when it is named again


def one_line(err: str) -> bool:
    """Bad input's contract: one readable line on stderr, no traceback."""
    return err.startswith("mind: error:") and err.count("\n") == 1 and "Traceback" not in err


def mind(*args, timeout=120):
    """`python -m mind_core.cli ARGS` in a fresh interpreter, from the repository root."""
    return subprocess.run([sys.executable, "-m", "mind_core.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
