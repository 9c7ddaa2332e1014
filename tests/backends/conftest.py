"""The `backend` fixture of the conformance suite.

MIND_TEST_BACKEND picks the backend ("torch" by default, "tf", or "module:Class");
MIND_TEST_DEVICE its device ("cpu" by default, so the determinism tests run everywhere).
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import pytest

# The models here are tiny: intra-op threads only add OpenMP spin-waiting, which on a busy
# 2-core runner made this suite 15x slower. Set before any framework is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

FRAMEWORKS = {"torch": "torch", "tf": "tensorflow"}


def make_backend(name: str, device: str):
    framework = FRAMEWORKS.get(name)
    if framework and importlib.util.find_spec(framework) is None:
        pytest.skip(f"backend {name!r} needs {framework}, which is not installed here")
    from mind_core.registry import get_backend

    return get_backend(name, device=device)


@pytest.fixture(scope="session")
def backend():
    name = os.environ.get("MIND_TEST_BACKEND", "torch")
    return make_backend(name, os.environ.get("MIND_TEST_DEVICE", "cpu"))
