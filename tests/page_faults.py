"""Page faults of a repeated large allocation in a fresh interpreter: how the tests see whether
a process keeps freed memory for reuse (mind_core/heap.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from mind_core.heap import USER_KEYS

# After SETUP, allocates four touched 4 MiB arrays and frees them, ten times (16 MiB a round,
# 4,096 pages); prints the page faults a round.
ROUNDS = """
import resource
import numpy as np
{setup}
def one_round():
    arrays = [np.ones(1 << 20, dtype=np.float32) for _ in range(4)]
    del arrays
one_round()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    one_round()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""

# glibc's defaults hand part of the 16 MiB back every round (~2,000 faults a round here);
# kept, a round reuses the last one's pages (none).
RETURNED = 500
KEPT = 50


def faults_a_round(setup: str = "") -> float:
    """Without the user's malloc variables, so that the process's own choice is measured."""
    env = {k: v for k, v in os.environ.items() if k not in (*USER_KEYS, "GLIBC_TUNABLES")}
    out = subprocess.run([sys.executable, "-c", ROUNDS.format(setup=setup)], env=env,
                         check=True, capture_output=True, text=True, cwd=os.getcwd())
    return float(out.stdout.split()[-1])
