"""mind_core.data is numpy-only: listing and loading array datasets imports no framework,
no image decoder and no optional extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys
from mind_core.data import list_datasets, load_dataset
list_datasets()
load_dataset("fmnist-mini")
load_dataset("synthetic")
heavy = ("torch", "tensorflow", "keras", "textual", "PIL", "synbols", "cairo")
print(",".join(sorted(m for m in heavy if m in sys.modules)) or "none")
"""


def test_listing_and_loading_arrays_imports_nothing_heavy():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "none"
