"""`mind` sets OMP_WAIT_POLICY=PASSIVE before any command imports a framework, only when
the user has not set it (mind_core/openmp.py). A fresh interpreter for each case."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = ("import os, sys; from mind_core.cli import main; main([]); "
         "print('torch' in sys.modules, os.environ.get('OMP_WAIT_POLICY'))")


def _run(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def test_main_sets_passive_before_any_framework():
    assert _run() == "False PASSIVE"


def test_main_keeps_the_users_policy():
    assert _run(OMP_WAIT_POLICY="ACTIVE") == "False ACTIVE"
