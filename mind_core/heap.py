"""Keep the memory a training step frees for the next step, instead of returning it to the OS.

glibc's malloc gives each allocation above its mmap threshold fresh pages from the kernel and
returns freed memory at the top of its heap to the kernel once more than the trim threshold
(twice the mmap threshold, which starts at 128 KiB and grows with what is freed) lies there.
A training step allocates and frees the same large activations and gradients every step, so
under those defaults the next step page-faults them in again: 1,300-2,400 faults a small_cnn
step of the demo, 6-20 % of a step's time with other processes running beside it, about 1 %
of a whole demo and 3 % of a ResNet-32 run on an idle machine (benchmarks/freed_memory.py,
benchmarks/README.md). With the mmap threshold at its ceiling (32 MiB on 64-bit glibc) and up
to 1 GiB of freed memory kept, a step reuses last step's pages (a handful of faults). The
cost: a process keeps the peak of what it used, up to that much more, until it exits.

`keep_freed_memory` sets both with `mallopt` on glibc (Linux) and does nothing elsewhere or
when the user set malloc's own variables (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_,
MALLOC_TOP_PAD_ or a glibc.malloc tunable). It changes where memory comes from, never what is
computed. The torch backend calls it when it is imported (backends/torch/__init__.py). The tf
backend does not: TensorFlow's CPU allocator keeps its own memory, and a tf demo faulted about
as often with it as without (124,000 / 142,000 times, no faster).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Mapping
from typing import Any

M_TRIM_THRESHOLD = -1  # mallopt parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc refuses more than HEAP_MAX_SIZE / 2 = 32 MiB on 64-bit
TRIM_THRESHOLD = 1 << 30
USER_KEYS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def user_tuned(environ: Mapping[str, str]) -> bool:
    """Whether the user chose malloc's thresholds themselves (then they are left alone)."""
    return (any(key in environ for key in USER_KEYS)
            or "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""))


def glibc() -> Any | None:
    """The C library when it is glibc (it has gnu_get_libc_version and mallopt), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt")):
        return None
    return libc


def keep_freed_memory(environ: Mapping[str, str] = os.environ, libc=glibc) -> bool:
    """Raise glibc's mmap and trim thresholds in this process; True when both were set."""
    if user_tuned(environ):
        return False
    lib = libc()
    if lib is None:
        return False
    # mallopt returns 1 on success; the mmap threshold first, since setting either one stops
    # glibc from moving both with what is freed.
    return bool(lib.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and lib.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
