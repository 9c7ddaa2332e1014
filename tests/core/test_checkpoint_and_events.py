"""Checkpoint files (round trip and every way they can be broken) and the events log."""

import json

import numpy as np
import pytest

from mind_core import checkpoint
from mind_core.events import EventLog, read_events, write_json_atomic


def sample_checkpoint():
    rng = np.random.default_rng(0)
    bn = {"block.bn1": {f: rng.standard_normal(4).astype(np.float32)
                        for f in checkpoint.BN_FIELDS}}
    return checkpoint.Checkpoint(
        weights={"block.conv1": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                 "fc": rng.standard_normal((6, 4)).astype(np.float32)},
        owner={"block.conv1": rng.integers(-1, 3, (4, 3, 3, 3)).astype(np.int8),
               "fc": np.repeat(np.arange(3), 2)[:, None].repeat(4, 1).astype(np.int8)},
        bn_snapshots=[bn, bn], live_bn=bn, teacher_weights={"fc": np.ones((6, 4), np.float32)},
        teacher_bn=bn, trainer={"exp_avg.fc": np.zeros((6, 4), np.float32)},
        tasks=3, classes_per_task=2, state={"task": 1, "phase": "distill", "next_epoch": 2})


def test_round_trip_keeps_every_tensor_and_the_state(tmp_path):
    original = sample_checkpoint()
    checkpoint.save(tmp_path / "c.safetensors", original)
    loaded = checkpoint.load(tmp_path / "c.safetensors")
    assert loaded.state == original.state and loaded.tasks == 3 and loaded.classes_per_task == 2
    for name in original.weights:
        assert np.array_equal(loaded.weights[name], original.weights[name])
        assert loaded.owner[name].dtype == np.int8
        assert np.array_equal(loaded.owner[name], original.owner[name])
    assert len(loaded.bn_snapshots) == 2
    assert np.array_equal(loaded.bn_snapshots[1]["block.bn1"]["var"],
                          original.bn_snapshots[1]["block.bn1"]["var"])
    assert np.array_equal(loaded.teacher_weights["fc"], original.teacher_weights["fc"])
    assert set(loaded.trainer) == {"exp_avg.fc"}


def test_tensor_names_follow_the_documented_format(tmp_path):
    names = set(checkpoint.to_tensors(sample_checkpoint()))
    assert {"weight/block.conv1", "owner/fc", "bn/0/block.bn1/gamma", "bn/1/block.bn1/var",
            "live_bn/block.bn1/mean", "teacher/weight/fc", "trainer/exp_avg.fc"} <= names


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, sample_checkpoint())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="corrupt or truncated"):
        checkpoint.load(path)


def test_garbage_and_missing_files_are_clear_errors(tmp_path):
    path = tmp_path / "c.safetensors"
    path.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(checkpoint.CheckpointError, match="corrupt or truncated"):
        checkpoint.load(path)
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.load(tmp_path / "missing.safetensors")


def test_foreign_safetensors_file_is_refused(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(path), metadata={"format": "pt"})
    with pytest.raises(checkpoint.CheckpointError, match="not a MIND checkpoint"):
        checkpoint.load(path)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "ck" / "c.safetensors"
    checkpoint.save(path, sample_checkpoint())
    checkpoint.save(path, sample_checkpoint())
    assert [p.name for p in path.parent.iterdir()] == ["c.safetensors"]


def test_events_are_flushed_lines_and_progress_is_throttled(tmp_path):
    clock = iter([0.0, 0.1, 0.2, 0.7, 0.8, 5.0]).__next__
    seen = []
    log = EventLog(tmp_path / "events.jsonl", [seen.append], progress_interval=0.5, clock=clock)
    log.emit("run_started", name="x")
    for _ in range(4):
        log.emit("progress", batch=1)
    log.emit("run_finished", tag=1.0)
    events = list(read_events(tmp_path / "events.jsonl"))  # readable while still open
    assert [e["type"] for e in events] == ["run_started", "progress", "progress", "run_finished"]
    assert events == seen and events[1]["time"] == 0.1 and events[2]["time"] == 0.7
    with pytest.raises(ValueError):
        log.emit("nonsense")
    log.close()


def test_reader_skips_a_half_written_last_line(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"type": "run_started"}) + "\n" + '{"type": "progr')
    assert [e["type"] for e in read_events(path)] == ["run_started"]


def test_write_json_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"b": [1, 2]})
    assert json.loads(path.read_text()) == {"b": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
