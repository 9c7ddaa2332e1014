"""Starting, stopping and resuming `mind` runs as child processes of the TUI.

The child is `python -m mind_core.cli ...` with stdout and stderr appended to
<run>/output.log. It runs in its own session so a Ctrl-C meant for the terminal never reaches
it; on quit the app asks whether to leave it running (attach again with `mind-tui --attach
DIR`) or stop it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from mind_core.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from mind_core.rundir import safe_dir_name, unused_run_dir
from tui.rundir import OUTPUT_LOG, STOP_FILE


def run_command(*, preset: str, backend: str, dataset: str, overrides: list[str],
                out: Path, data_dir: str = "") -> list[str]:
    """Arguments of `mind run` (without the interpreter)."""
    args = ["run", "--preset", preset, "--backend", backend, "--dataset", dataset]
    if data_dir:
        args += ["--data-dir", data_dir]
    for item in overrides:
        args += ["--set", item]
    return args + ["--out", str(out)]


def resume_command(run_dir: Path, backend: str | None = None) -> list[str]:
    """Arguments of `mind resume`; backend: the run's own, when the user vouched for it (a
    `module:Class` named only in config.json is not imported)."""
    return ["resume", str(run_dir)] + (["--backend", backend] if backend else [])


def display_command(args: list[str]) -> str:
    """How a person would type it."""
    return " ".join(["mind", *(_quote(a) for a in args)])


def _quote(arg: str) -> str:
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def new_run_dir(runs_dir: Path, name: str) -> Path:
    """A fresh directory under runs_dir named after `name` (suffixed -2, -3... if taken). An
    unnamed run's name is rundir.run_dir_name's, as for `mind run` (the launch screen)."""
    path = unused_run_dir(runs_dir, safe_dir_name(name))
    path.mkdir(parents=True)
    return path


def _child_env() -> dict[str, str]:
    """Our environment, unchanged but for unbuffered output (output.log follows the run live).
    The child is the same interpreter in the same working directory, so it imports what we
    would; a module:Class backend must be importable from there (e.g. via PYTHONPATH)."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class RunProcess:
    """One child process working on one run directory."""

    def __init__(self, run_dir: Path, args: list[str], popen: subprocess.Popen[bytes]) -> None:
        self.run_dir = run_dir
        self.args = args
        self.popen = popen
        self.stop_requested = False

    @classmethod
    def start(cls, run_dir: Path, args: list[str]) -> RunProcess:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / OUTPUT_LOG, "ab") as log:
            log.write(f"$ {display_command(args)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                [sys.executable, "-m", "mind_core.cli", *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=_child_env(), start_new_session=True,
            )
        return cls(run_dir, args, popen)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    @property
    def alive(self) -> bool:
        return self.poll() is None

    def interrupt(self) -> None:
        """Graceful stop: the run checkpoints, writes run_failed(interrupted) and exits with
        EXIT_INTERRUPTED."""
        if self.alive:
            self.stop_requested = True
            self.popen.send_signal(signal.SIGINT)


def request_stop(run_dir: Path) -> None:
    """Ask a run this TUI did not start to stop (the engine polls for the file)."""
    (run_dir / STOP_FILE).touch()


def exit_meaning(code: int) -> str:
    if code == 0:
        return "finished"
    if code == EXIT_INTERRUPTED or code == -signal.SIGINT:
        return "interrupted"
    if code == EXIT_BAD_INPUT:
        return "bad input (config, usage or data)"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return "error"
