"""The backend suite's fixture fails, never skips, when the backend it was asked for cannot be
loaded: a missing TensorFlow once made `MIND_TEST_BACKEND=tf` a green run of no tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ONE_TEST = "tests/backends/test_conformance.py::test_identity"
# pytest in a fresh interpreter where the module named in argv[1] (if any) is not installed:
# a None in sys.modules makes both importlib.util.find_spec and import say it is absent.
BOOT = """
import sys
if sys.argv[1]:
    sys.modules[sys.argv[1]] = None
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-x", sys.argv[2]]))
"""


def backend_suite(backend: str | None, hide: str = "", pythonpath: str = ""
                  ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MIND_TEST_BACKEND"}
    env.update({"MIND_TEST_BACKEND": backend} if backend else {})
    env.update({"PYTHONPATH": pythonpath} if pythonpath else {})
    return subprocess.run([sys.executable, "-c", BOOT, hide, ONE_TEST], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_failed(result: subprocess.CompletedProcess[str], name: str) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 1, out  # tests failed; a run of skips would exit 0
    assert "skipped" not in out and "passed" not in out, out
    assert f"MIND_TEST_BACKEND={name}: the backend cannot be loaded" in out, out
    return out


def test_an_unknown_backend_fails():
    assert_failed(backend_suite("nosuch"), "nosuch")


@pytest.mark.parametrize("name, module", [("torch", "torch"), ("tf", "tensorflow")])
def test_a_backend_whose_framework_is_not_installed_fails(name: str, module: str):
    out = assert_failed(backend_suite(name, hide=module), name)
    assert f"BackendError: the {name} backend needs {module}" in out, out


def test_a_backend_whose_framework_fails_to_import_fails(tmp_path: Path):
    """A broken build: the package is there, its import raises."""
    package = tmp_path / "tensorflow"
    package.mkdir()
    (package / "__init__.py").write_text(
        "raise ImportError('libtensorflow_framework.so.2: cannot open shared object file')\n")
    # Keras imports TensorFlow first thing: a stand-in does the same, so the broken build is
    # what the backend meets whether or not the real Keras is installed here.
    (tmp_path / "keras").mkdir()
    (tmp_path / "keras" / "__init__.py").write_text("import tensorflow\n")
    out = assert_failed(backend_suite("tf", pythonpath=os.pathsep.join([str(tmp_path), str(ROOT)])),
                        "tf")
    assert "cannot open shared object file" in out


def test_the_default_backend_is_skipped_only_when_nobody_asked_and_it_is_not_installed():
    result = backend_suite(None, hide="torch")
    assert result.returncode == 0 and "1 skipped" in result.stdout, result.stdout
