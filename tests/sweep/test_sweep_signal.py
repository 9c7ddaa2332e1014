"""Ctrl-C on a real `mind sweep` process: the running trials checkpoint and stop, the command
exits 130, and the same command again finishes every trial, resuming those that had started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.sweep.conftest import require_ray
from tests.sweep.helpers import FAKES, assert_summary_matches_metrics, resumed_flags

ROOT = Path(__file__).resolve().parents[2]


def test_ctrl_c_stops_the_sweep_at_checkpoints_and_the_same_command_continues_it(tmp_path):
    require_ray()
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "mind_core.cli", "sweep", "--presets", "smoke",
               "--seeds", "0,1,2", "--backend", f"{FAKES}:SlowBackend", "--cpus", "2",
               "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    names = [f"smoke-synthetic-mind-seed{s}" for s in range(3)]
    sweep = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not all((out / n / "events.jsonl").exists()  # both running trials mid-run
                      and b"epoch_ended" in (out / n / "events.jsonl").read_bytes()
                      for n in names[:2]):
            assert sweep.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        sweep.send_signal(signal.SIGINT)
        stdout, stderr = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 130, stderr
    assert "Stopping the sweep" in stderr and "run the same command" in stderr
    assert "3 trials: 0 finished, 0 failed, 3 not finished" in stdout
    assert not (out / "STOP").exists()
    started = [n for n in names if (out / n / "checkpoint" / "resume.safetensors").exists()]
    assert started == names[:2]  # two slots: the third never started
    for name in started:
        assert resumed_flags(out / name) == [False]
        assert b'"reason": "interrupted"' in (out / name / "events.jsonl").read_bytes()

    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert [resumed_flags(out / n) for n in names] == [[False, True], [False, True], [False]]
    rows = assert_summary_matches_metrics(out)
    assert {r["status"] for r in rows.values()} == {"finished"}
