"""A newcomer's first hour with `mind` (issue 15): a missing framework names the extra to
install from the checkout; the final summary says what its numbers mean and what the run
directory holds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mind_core.cli import main
from mind_core.extras import install_hint

ROOT = Path(__file__).resolve().parents[2]
FAKE = ["--backend", "tests.fakes:FakeBackend", "--dataset", "synthetic"]


def mind_without(modules: tuple[str, ...], *args: str) -> subprocess.CompletedProcess:
    """`mind ARGS` in a fresh interpreter where importing any of `modules` fails as it does
    when the package is not installed (whether or not it is installed here)."""
    hide = "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    code = f"import sys\n{hide}from mind_core.cli import main\nsys.exit(main({list(args)!r}))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("first-hour") / "run"
    assert main(["run", "--preset", "smoke", *FAKE, "--set", "tasks=2", "--out", str(out),
                 "--quiet"]) == 0
    return out


# Without TensorFlow the tf backend's first failing import is keras (tf_import imports it
# first); hiding both covers a machine with neither, hiding tensorflow alone one with keras.
@pytest.mark.parametrize("backend, hidden, extra", [
    ("tf", ("keras", "tensorflow"), "tf"), ("tf", ("tensorflow",), "tf"),
    ("torch", ("torch",), "torch")])
def test_eval_with_a_framework_not_installed_names_the_extra(finished_run, backend, hidden,
                                                              extra):
    done = mind_without(hidden, "eval", str(finished_run), "--backend", backend)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert install_hint(extra) in done.stderr and "No module named" not in done.stderr


def test_the_run_summary_says_what_its_numbers_mean_and_lists_the_run_directory(tmp_path,
                                                                                  capsys):
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", *FAKE, "--set", "tasks=2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "TAg: accuracy when the task is not given" in printed
    assert "TAw: accuracy when it is given; routing: how often the rule picked the right task" \
        in printed
    listing = printed[printed.index(f"Run directory: {out}"):].splitlines()
    named = {line.split()[0] for line in listing[1:] if line.startswith("  ")}
    assert named == {"metrics.json", "config.json", "events.jsonl", "checkpoint/"}
    assert listing[-1] == f"Plots and CSV tables: mind report {out}"
    summary = printed[printed.index("Finished in"):]  # the progress lines name the backend
    assert max(len(line) for line in summary.splitlines()) <= 100  # an 100-column terminal


def test_resume_ends_with_the_same_summary(tmp_path, capsys):
    from mind_core.config import resolve_config
    from mind_core.engine import Interrupted
    from mind_core.runner import start_run

    out = tmp_path / "run"
    cfg = resolve_config("smoke", ["tasks=2"], backend=FAKE[1], dataset="synthetic")
    with pytest.raises(Interrupted):  # stopped once its first task is done
        start_run(cfg, out, should_stop=(out / "checkpoint" / "task-0.safetensors").exists)
    capsys.readouterr()
    assert main(["resume", str(out), *FAKE[:2]]) == 0
    printed = capsys.readouterr().out
    assert "TAw: accuracy when it is given" in printed and f"Run directory: {out}" in printed


def test_mind_tui_without_the_tui_extra_is_one_line_naming_it():
    """The installed `mind-tui` command (pyproject's entry point) with Textual missing."""
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts["mind-tui"].partition(":")
    code = ("import sys\nsys.modules['textual'] = None\nsys.modules['textual_plotext'] = None\n"
            f"from {module} import {func}\nsys.exit({func}([]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("mind-tui: error:") and install_hint("tui") in done.stderr
