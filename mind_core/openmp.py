"""How OpenMP's idle threads wait, chosen from what else the machine is doing.

An OpenMP runtime (libgomp, which the torch CPU wheels link) lets a worker that has finished
its share of one parallel region wait for the next one by spinning, then by sleeping. A training
step is a chain of short regions with a few microseconds of Python between them, so:
- beside busy processes, spinning takes the time slices a busy thread needs: a run slows more
  than the cores it loses and burns CPU time doing nothing (the runtime's default spin of about
  3 ms made the demo 2.2x slower beside one busy process, at 1.7x the CPU time);
- on an idle machine, sleeping at once costs a wake-up at every region, which a spin of
  about 0.1 ms (GOMP_SPINCOUNT=10000) saves: 10-18 % of the demo's wall time.
`choose_wait_policy` therefore looks at the other processes' CPU use for a tenth of a second:
with less than half a core busy it sets that short spin, else it asks for sleeping at once
(OMP_WAIT_POLICY=PASSIVE). A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is never overridden.
The runtime reads the variables when it loads, so this runs before torch is first imported
(backends/torch/__init__.py); afterwards it changes nothing. Only when threads wait changes,
never what they compute. benchmarks/under_load.py measures both cases.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from mind_core.process import usable_cpu_ids

USER_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
IDLE_SPIN = ("GOMP_SPINCOUNT", "10000")  # libgomp counts ~100,000 spins a millisecond
BUSY_POLICY = ("OMP_WAIT_POLICY", "PASSIVE")
BUSY_CORES = 0.5  # other processes' CPU use, in cores, from which threads sleep at once
SAMPLE_S = 0.1
PROC_STAT = Path("/proc/stat")


def cpu_ticks(stat_text: str, cpus: set[int]) -> tuple[int, int]:
    """(busy, total) clock ticks of the given CPUs from /proc/stat's text; idle and iowait
    count as not busy."""
    busy = total = 0
    for line in stat_text.splitlines():
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        values = [int(v) for v in fields[:8]]
        total += sum(values)
        busy += sum(values) - values[3] - values[4]
    return busy, total


def busy_cores(sample_s: float = SAMPLE_S, stat: Path = PROC_STAT) -> float | None:
    """Cores kept busy by other processes (this one sleeps while it measures), or None where
    /proc/stat cannot be read (not Linux)."""
    cpus = usable_cpu_ids()
    try:
        before = cpu_ticks(stat.read_text(), cpus)
        time.sleep(sample_s)
        after = cpu_ticks(stat.read_text(), cpus)
    except (OSError, ValueError, IndexError):
        return None
    total = after[1] - before[1]
    return None if total <= 0 else len(cpus) * (after[0] - before[0]) / total


def choose_wait_policy(measure=busy_cores) -> tuple[str, str] | None:
    """Put the chosen (variable, value) into this process's environment and return it; None
    when the user set either variable (nothing is changed then)."""
    if any(key in os.environ for key in USER_KEYS):
        return None
    cores = measure()
    key, value = IDLE_SPIN if cores is not None and cores < BUSY_CORES else BUSY_POLICY
    os.environ[key] = value
    return key, value
