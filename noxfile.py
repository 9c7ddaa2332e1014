"""The test matrix: lint, core (no framework), each backend, cross-backend parity, the TUI.

A plain `nox` runs every session. Every install goes through constraints.txt: the frameworks,
and the Textual and ruff versions whose output the snapshot and lint runs compare against."""

import nox

nox.options.sessions = ["lint", "core", "synbols", "backend", "parity", "tui", "sweep"]
nox.options.reuse_existing_virtualenvs = True

CONSTRAINTS = ("-c", "constraints.txt")
TEST_DEPS = ("pytest>=8", "hypothesis>=6.100", "pillow")
EXTRAS = {"torch": "torch", "tf": "tf-cpu"}


def install(session, extras=""):
    target = f".[{extras}]" if extras else "."
    session.install(*CONSTRAINTS, target, *TEST_DEPS)


def pytest(session, *paths, env=None):
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths,
                *session.posargs, env={"HYPOTHESIS_PROFILE": "ci", **(env or {})})


@nox.session
def lint(session):
    session.install(*CONSTRAINTS, "ruff")
    session.run("ruff", "check", ".")


@nox.session
def core(session):
    """Core, property tests, data loaders, engine and CLI with the numpy fake backend; with
    the report and TensorBoard extras (their missing-extra tests simulate the absence)."""
    install(session, "report,tensorboard")
    pytest(session, "tests/core", "tests/properties", "tests/data", "tests/cli", "tests/api")


@nox.session
def synbols(session):
    """Synbols rendering with the optional extra (needs libcairo2-dev, pkg-config, fonts)."""
    install(session, "synbols")
    pytest(session, "tests/data/test_synbols.py")


@nox.session
@nox.parametrize("framework", ["torch", "tf"], ids=["torch", "tf"])
def backend(session, framework):
    """The one conformance suite, run against one backend in its own venv."""
    install(session, EXTRAS[framework])
    other = "tf" if framework == "torch" else "torch"
    # test_<framework>_*.py hold one framework's own tests (its layers, its users' networks).
    pytest(session, "tests/backends", f"--ignore-glob=tests/backends/test_{other}_*.py",
           env={"MIND_TEST_BACKEND": framework})


@nox.session
def parity(session):
    """Both frameworks: same checkpoint -> same logits; train with one, evaluate with the other.
    Also the benchmark scripts' smoke tests, which need both, and Ray (benchmarks.accuracy
    runs its settings as sweeps)."""
    install(session, "torch,tf-cpu,sweep")
    pytest(session, "tests/parity", "tests/benchmarks")


@nox.session
def tui(session):
    install(session, "tui")
    session.install(*CONSTRAINTS, "pytest-textual-snapshot")
    pytest(session, "tests/tui")


@nox.session
def sweep(session):
    """`mind sweep` on a local Ray (2 CPUs) with the numpy fake backends, and the plots
    (report extra). MIND_SWEEP_TESTS=1: a missing Ray fails the tests instead of skipping."""
    install(session, "sweep,report")
    pytest(session, "tests/sweep", env={"MIND_SWEEP_TESTS": "1"})
