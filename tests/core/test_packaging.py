"""What the packaging promises is what the code and CI keep: the lowest Python claimed is one
the code runs on and the one ruff lints for; the pins CI and the quick start depend on exist."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def lowest_python() -> tuple[int, int]:
    match = re.fullmatch(r">=\s*3\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert match, "requires-python is expected to be a plain lower bound"
    return 3, int(match.group(1))


def test_requires_python_is_what_ruff_targets_and_what_runs_here():
    major, minor = lowest_python()
    assert PYPROJECT["tool"]["ruff"]["target-version"] == f"py{major}{minor}"
    # CI (nox on the runner's python3, 3.11) tests this interpreter: claim nothing older.
    assert sys.version_info[:2] >= (major, minor)


def test_a_stdlib_module_newer_than_the_lowest_python_is_not_imported():
    # tomllib is 3.11+; the project has no fallback (tomli), so it cannot claim 3.10.
    uses_tomllib = any(re.search(r"^import tomllib", path.read_text(encoding="utf-8"), re.M)
                       for path in (ROOT / "mind_core").rglob("*.py"))
    assert not uses_tomllib or lowest_python() >= (3, 11)


def test_the_readme_names_the_lowest_python():
    major, minor = lowest_python()
    assert f"Python {major}.{minor} or newer" in (ROOT / "README.md").read_text(encoding="utf-8")


def pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    found = [re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip()) for line in lines]
    return {m.group(1).lower(): m.group(2) for m in found if m}


def test_what_the_snapshot_and_lint_runs_compare_against_is_pinned():
    assert {"torch", "tensorflow-cpu", "textual", "pytest-textual-snapshot", "ruff"} <= set(pins())


def test_installed_pinned_packages_are_the_pinned_versions():
    """nox installs through the constraints, so in its sessions this holds for every pin; a
    stale pin (or a venv that drifted from it) shows here before a snapshot differs."""
    from importlib.metadata import PackageNotFoundError, version

    for name, pinned in pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue
        assert installed.split("+")[0] == pinned, f"{name} {installed} is not the pinned {pinned}"


class _Session:
    def __init__(self):
        self.installs: list[tuple[str, ...]] = []
        self.posargs: list[str] = []

    def install(self, *args: str) -> None:
        self.installs.append(args)

    def run(self, *args, **kwargs) -> None:
        pass


def test_every_nox_session_installs_through_the_constraints(monkeypatch):
    """noxfile.py imported with a stand-in for nox (not installed in the test venvs): each
    session's installs are recorded and each must pass -c constraints.txt."""
    import importlib.util
    import types

    fake = types.SimpleNamespace(options=types.SimpleNamespace(),
                                 session=lambda f: f, parametrize=lambda *a, **k: lambda f: f)
    monkeypatch.setitem(sys.modules, "nox", fake)
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    sessions = {name: getattr(noxfile, name) for name in fake.options.sessions}
    assert {"lint", "tui", "core"} <= set(sessions)
    for name, func in sessions.items():
        session = _Session()
        if name == "backend":
            func(session, "torch")
        else:
            func(session)
        assert session.installs, name
        for args in session.installs:
            assert args[:2] == ("-c", "constraints.txt"), (name, args)
