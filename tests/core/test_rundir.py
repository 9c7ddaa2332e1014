"""The run directory lock (mind_core.rundir): one process per run directory, dropped by the
OS when that process ends, however it ends."""

import subprocess
import sys
from pathlib import Path

import pytest

from mind_core.rundir import (
    LOCK_FILE,
    RunDirError,
    RunDirLock,
    is_locked,
    remove_stale_temp_files,
)

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from mind_core.rundir import RunDirLock
lock = RunDirLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_the_lock_is_exclusive_and_released(tmp_path):
    assert not is_locked(tmp_path)
    with RunDirLock(tmp_path):
        assert is_locked(tmp_path)
        with pytest.raises(RunDirError, match="in use by another mind process"):
            RunDirLock(tmp_path).acquire()
    assert not is_locked(tmp_path)
    assert (tmp_path / LOCK_FILE).exists()  # the file stays; only the OS lock goes
    RunDirLock(tmp_path).acquire().release()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert is_locked(tmp_path)
        with pytest.raises(RunDirError):
            RunDirLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert not is_locked(tmp_path)
    RunDirLock(tmp_path).acquire().release()


def test_only_temp_files_of_atomic_writes_are_removed(tmp_path):
    (tmp_path / "checkpoint").mkdir()
    stale = [tmp_path / ".metrics.json.12.tmp", tmp_path / "checkpoint" / ".task-0.safetensors.7.tmp"]
    kept = [tmp_path / "notes.tmp", tmp_path / ".hidden", tmp_path / "checkpoint" / "task-0.safetensors"]
    for path in stale + kept:
        path.write_bytes(b"")
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
