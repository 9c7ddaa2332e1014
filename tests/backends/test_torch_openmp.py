"""OMP_WAIT_POLICY=PASSIVE is in the environment before torch loads its OpenMP runtime, and
only when the user has not chosen a policy (mind_core/openmp.py). Each case runs in a fresh
interpreter: the runtime reads the variable once, when torch is first imported."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")

# Records the policy at the moment `import torch` first starts, then imports the backend.
PROBE = """
import os, sys
seen = []
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("OMP_WAIT_POLICY"))
        return None
sys.meta_path.insert(0, Watch())
import backends.torch
print(seen[0])
"""


def _policy_when_torch_loads(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, check=True,
                         capture_output=True, text=True, cwd=os.getcwd())
    return out.stdout.strip().splitlines()[-1]


def test_passive_before_torch_is_imported():
    assert _policy_when_torch_loads() == "PASSIVE"


def test_a_policy_the_user_chose_is_kept():
    assert _policy_when_torch_loads(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
