"""The `backend` fixture of the conformance suite.

MIND_TEST_BACKEND picks the backend ("torch" by default, "tf", or "module:Class");
MIND_TEST_DEVICE its device ("cpu" by default, so the determinism tests run everywhere).
A backend that was asked for and cannot be loaded fails every test that needs it: a broken
framework install must never pass as a green run with no tests
(tests/core/test_backend_fixture.py).
"""

from __future__ import annotations

import importlib.util
import os

import pytest

# The models here are tiny: intra-op threads only add OpenMP spin-waiting, which on a busy
# 2-core runner made this suite 15x slower. Set before any framework is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

DEFAULT_BACKEND = "torch"


def make_backend(name: str, device: str, asked: bool = True, precision: str = "fp32"):
    """The backend, or a failed test saying why it cannot be loaded. Only the default, when
    nobody asked for it and its framework is not installed at all, is a skip."""
    from mind_core.registry import BACKENDS, get_backend

    framework = BACKENDS[name][1] if name in BACKENDS else None
    if not asked and framework and importlib.util.find_spec(framework) is None:
        pytest.skip(f"the default backend {name!r} needs {framework}, which is not installed "
                    "here; set MIND_TEST_BACKEND to test another backend")
    try:
        return get_backend(name, device=device, precision=precision)
    except Exception as exc:  # noqa: BLE001 - a broken install raises anything at import
        problem = f"{type(exc).__name__}: {exc}"
    pytest.fail(f"MIND_TEST_BACKEND={name}: the backend cannot be loaded ({problem})",
                pytrace=False)


def _backend(precision: str = "fp32"):
    asked = os.environ.get("MIND_TEST_BACKEND")
    return make_backend(asked or DEFAULT_BACKEND, os.environ.get("MIND_TEST_DEVICE", "cpu"),
                        asked=bool(asked), precision=precision)


@pytest.fixture(scope="session")
def backend():
    return _backend()


@pytest.fixture(scope="session")
def bf16_backend():
    """The same backend training and predicting in bfloat16 (test_precision.py)."""
    return _backend("bf16")
