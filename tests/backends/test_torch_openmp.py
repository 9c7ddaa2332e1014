"""OpenMP's wait policy is in the environment before torch loads its OpenMP runtime, and a
policy the user chose is kept (mind_core/openmp.py). Each case runs in a fresh interpreter:
the runtime reads the variables once, when torch is first imported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")

# Records both variables at the moment `import torch` first starts, then imports the backend.
PROBE = """
import os, sys
seen = []
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append((os.environ.get("OMP_WAIT_POLICY"), os.environ.get("GOMP_SPINCOUNT")))
        return None
sys.meta_path.insert(0, Watch())
import backends.torch
print(seen[0])
"""


def _when_torch_loads(**env: str) -> tuple[str | None, str | None]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, check=True,
                         capture_output=True, text=True, cwd=os.getcwd())
    return eval(out.stdout.strip().splitlines()[-1])  # a tuple the probe printed


def test_a_wait_policy_is_chosen_before_torch_is_imported():
    # Which one depends on this machine's load right now; one of the two, never neither.
    assert _when_torch_loads() in {("PASSIVE", None), (None, "10000")}


def test_a_policy_the_user_chose_is_kept():
    assert _when_torch_loads(OMP_WAIT_POLICY="ACTIVE") == ("ACTIVE", None)
    assert _when_torch_loads(GOMP_SPINCOUNT="5") == (None, "5")
