"""mind_core must stay numpy + attrs: importing it and running the fake engine loads no framework."""

import subprocess
import sys
from pathlib import Path

import pytest

from mind_core.registry import BackendError, get_backend

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, tempfile
import mind_core, mind_core.cli, mind_core.config, mind_core.engine, mind_core.runner
from mind_core.config import resolve_config
from mind_core.runner import start_run
from tests.fakes import tiny_dataset
cfg = resolve_config("smoke", ["tasks=3", "backend=tests.fakes:FakeBackend"])
start_run(cfg, tempfile.mkdtemp() + "/run", load=lambda *_: tiny_dataset())
loaded = sorted(m for m in ("torch", "tensorflow", "keras", "textual") if m in sys.modules)
print(",".join(loaded) or "none")
"""


def test_core_and_fake_engine_load_no_framework():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "none"


def test_unknown_backend_names_are_readable_errors():
    with pytest.raises(BackendError, match="unknown backend 'jax'"):
        get_backend("jax")
    with pytest.raises(BackendError, match="cannot import backend module"):
        get_backend("no_such_module:Thing")
    with pytest.raises(BackendError, match="has no class"):
        get_backend("tests.fakes:Missing")


def test_device_the_backend_cannot_use_is_a_backend_error():
    with pytest.raises(BackendError, match="CPU only"):
        get_backend("tests.fakes:FakeBackend", device="cuda")


# The tf backend imports keras first: without the extra, the first missing module is keras.
@pytest.mark.parametrize("backend, missing, extra", [
    ("torch", "torch", "torch"), ("tf", "keras", "tf"), ("tf", "tensorflow", "tf")])
def test_a_missing_framework_says_which_extra_to_install(monkeypatch, backend, missing, extra):
    import re

    import mind_core.registry as registry
    from mind_core.extras import install_hint

    def absent(name):
        raise ModuleNotFoundError(f"No module named '{missing}'", name=missing)

    monkeypatch.setattr(registry.importlib, "import_module", absent)
    with pytest.raises(BackendError) as err:
        get_backend(backend)
    assert re.fullmatch(rf"the {backend} backend needs \w+, which is not installed: "
                        + re.escape(install_hint(extra)), str(err.value)), str(err.value)
    assert "checkout" in install_hint(extra) and "mind-cl" not in str(err.value)
