"""The `mind` program (cli.command): main, then its exit code, after freezing the garbage
collector so that the interpreter's shutdown skips collecting what torch or TF loaded."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from mind_core import cli


def test_command_exits_with_mains_code_after_freezing_the_collector(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "main", lambda: calls.append("main") or 3)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    with pytest.raises(SystemExit) as exit_info:
        cli.command()
    assert exit_info.value.code == 3 and calls == ["main", "freeze"]


@pytest.mark.parametrize("args, code", [(["presets"], 0), (["run", "--set", "nope=1"], 2)])
def test_python_dash_m_runs_the_program_with_its_exit_codes(args, code):
    done = subprocess.run([sys.executable, "-m", "mind_core.cli", *args], capture_output=True,
                          text=True)
    assert done.returncode == code, done.stderr
    assert ("nope" in done.stderr) == (code == 2)
