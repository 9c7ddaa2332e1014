"""TensorBoard scalars from the event stream (mind_core.tensorboard), read back from the
event files tensorboardX writes."""

import json
import struct
import sys

import pytest

from mind_core.cli import main
from mind_core.events import read_events
from mind_core.rundir import RunDirError

FAKE = ["--backend", "tests.fakes:FakeBackend", "--dataset", "synthetic"]


def read_scalars(log_dir):
    """{tag: [(step, value, wall_time), ...]} from every event file in log_dir. An event file
    is a TFRecord stream: length (uint64), its CRC, an Event protobuf, the data's CRC."""
    from tensorboardX.proto.event_pb2 import Event

    scalars = {}
    files = sorted(log_dir.glob("events.out.tfevents.*"))
    assert files, f"no event file in {log_dir}"
    for path in files:
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            record = data[offset + 12:offset + 12 + length]
            offset += 12 + length + 4
            event = Event.FromString(record)
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append(
                    (event.step, value.simple_value, event.wall_time))
    return scalars


def close_to(stored, value):
    return stored == pytest.approx(value, rel=1e-6)  # TensorBoard stores float32


def test_a_run_logs_every_epoch_and_evaluation(tmp_path):
    pytest.importorskip("tensorboardX")
    out, logs = tmp_path / "run", tmp_path / "tb"
    assert main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet",
                 "--tensorboard", str(logs)]) == 0
    scalars = read_scalars(logs)
    events = list(read_events(out / "events.jsonl"))
    epochs = [e for e in events if e["type"] == "epoch_ended"]
    assert epochs
    for e in epochs:
        prefix = f"task{e['task'] + 1}/{e['phase']}"  # tags count tasks from 1
        fields = ["loss", "ce", "accuracy", "lr"] + (["distill"] if e["phase"] == "distill"
                                                      else [])
        for field in fields:
            (step, value, wall_time), = [p for p in scalars[f"{prefix}/{field}"]
                                         if p[0] == e["epoch"] + 1]
            assert close_to(value, e[field]) and wall_time == pytest.approx(e["time"])
    assert "task1/teacher/distill" not in scalars and not any(
        tag.startswith(("task0/", "eval_per_task/task0/")) for tag in scalars)

    last = epochs[-1]
    assert close_to(scalars[f"task{last['task'] + 1}/{last['phase']}/loss"][-1][1], last["loss"])
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("tag", "taw", "routing", "tag_entropy"):
        assert [step for step, _, _ in scalars[f"eval/{key}"]] == [1, 2, 3, 4, 5]
        assert all(close_to(v, m) for (_, v, _), m in zip(scalars[f"eval/{key}"], metrics[key],
                                                          strict=True))
    assert close_to(scalars["eval/tag"][-1][1], metrics["final"]["tag"])
    final = [e for e in events if e["type"] == "evaluated"][-1]
    for j in range(5):
        assert close_to(scalars[f"eval_per_task/task{j + 1}/routing"][-1][1],
                        final["per_task_routing"][j])
        assert [s for s, _, _ in scalars[f"eval_per_task/task{j + 1}/tag"]] == \
            list(range(j + 1, 6))


def test_logger_skips_missing_numbers_and_creates_nothing_before_its_first_scalar(tmp_path):
    pytest.importorskip("tensorboardX")
    from mind_core.tensorboard import TensorBoardLogger

    logs = tmp_path / "tb"
    logger = TensorBoardLogger(logs)
    logger({"type": "run_started", "time": 1.0, "tasks": 2})
    logger({"type": "phase_started", "time": 1.0, "task": 0, "phase": "teacher"})
    assert not logs.exists()
    logger({"type": "evaluated", "time": 2.0, "task": 0, "tag": 0.5, "taw": float("nan"),
            "routing": None, "tag_entropy": 0.25, "per_task_tag": [0.5, None]})
    logger.close()
    logger.close()  # twice is harmless
    scalars = read_scalars(logs)
    assert set(scalars) == {"eval/tag", "eval/tag_entropy", "eval_per_task/task1/tag"}
    assert scalars["eval/tag"] == [(1, 0.5, 2.0)]


def test_a_log_directory_that_is_a_file_is_refused(tmp_path):
    pytest.importorskip("tensorboardX")
    from mind_core.tensorboard import TensorBoardLogger

    target = tmp_path / "tb"
    target.write_text("not a folder")
    with pytest.raises(RunDirError, match="is a file"):
        TensorBoardLogger(target)


def test_without_tensorboardx_one_line_names_the_extra_before_anything_is_written(
        tmp_path, monkeypatch, capsys):
    """Runs whether or not tensorboardX is installed: its import is made to fail."""
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # `import tensorboardX` raises
    out, logs = tmp_path / "run", tmp_path / "tb"
    assert main(["run", "--preset", "smoke", *FAKE, "--out", str(out),
                 "--tensorboard", str(logs)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "tensorboardX" in lines[0]
    assert "pip install -e '.[tensorboard]'" in lines[0]
    assert "epoch" not in captured.out  # nothing was trained
    assert not out.exists() and not logs.exists()


def test_the_python_api_can_import_the_logger_without_tensorboardx(monkeypatch):
    """Importing the module needs nothing; only constructing a logger needs the extra."""
    import importlib

    from mind_core.extras import MissingExtra

    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    module = importlib.import_module("mind_core.tensorboard")
    with pytest.raises(MissingExtra, match=r"\.\[tensorboard\]"):
        module.TensorBoardLogger("unused")
