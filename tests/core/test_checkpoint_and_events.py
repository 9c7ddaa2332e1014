"""Checkpoint files (round trip and every way they can be broken) and the events log."""

import json

import numpy as np
import pytest

from mind_core import checkpoint
from mind_core.checkpoint_match import check_run
from mind_core.events import EventLog, read_events, write_json_atomic
from tests.fakes import event_fields


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


def test_save_fsyncs_the_checkpoint_before_the_rename_and_cleans_up_when_it_fails(
        tmp_path, monkeypatch):
    import os

    calls = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(src, dst):
        calls.append(("replace", os.path.basename(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, sample_checkpoint())
    tmp = f".c.safetensors.{os.getpid()}.tmp"
    assert calls.index(("fsync", tmp)) < calls.index(("replace", tmp))
    assert calls[-1] == ("fsync", tmp_path.name)  # the rename itself is made durable

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        checkpoint.save(path, sample_checkpoint())
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temp file left


def test_events_are_flushed_lines_and_progress_is_throttled(tmp_path):
    clock = iter([0.0, 0.1, 0.2, 0.7, 0.8, 5.0]).__next__
    seen = []
    log = EventLog(tmp_path / "events.jsonl", [seen.append], progress_interval=0.5, clock=clock)
    log.emit("run_started", **event_fields("run_started", name="x"))
    for _ in range(4):
        log.emit("progress", **event_fields("progress", batch=1))
    log.emit("run_finished", **event_fields("run_finished", tag=1.0))
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


# ----------------------------------------------------------------------------- strict JSON
def strict_loads(text):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token} in {text[:80]!r}")
    return json.loads(text, parse_constant=refuse)


def test_events_are_strict_json_with_null_for_non_finite_numbers(tmp_path):
    seen = []
    log = EventLog(tmp_path / "events.jsonl", [seen.append])
    log.emit("evaluated", **event_fields("evaluated", task=0, tag=float("nan"),
                                         per_task_tag=[0.5, float("nan")],
                                         rules={"max_prob": {"tag": float("inf")}},
                                         taw=np.float64("-inf")))
    log.close()
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    event = strict_loads(lines[0])
    assert event["tag"] is None and event["per_task_tag"] == [0.5, None]
    assert event["rules"] == {"max_prob": {"tag": None}} and event["taw"] is None
    assert np.isnan(seen[0]["tag"])  # observers in the process get the numbers as they are


def test_write_json_atomic_writes_null_for_non_finite_numbers(tmp_path):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"per_task": [float("nan"), 1.0], "bwt": float("inf"),
                             "rows": ({"x": float("-inf")},)})
    assert strict_loads(path.read_text()) == {"per_task": [None, 1.0], "bwt": None,
                                              "rows": [{"x": None}]}


def test_write_json_atomic_that_fails_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


# ----------------------------------------------------------------------------- checksums
def tensor_span(path, name):
    """Where tensor `name`'s bytes lie in a safetensors file: (start, end)."""
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    begin, end = json.loads(data[8:8 + size])[name]["data_offsets"]
    return 8 + size + begin, 8 + size + end


def flip_bit(path, name, bit=3):
    start, _ = tensor_span(path, name)
    data = bytearray(path.read_bytes())
    data[start] ^= 1 << bit
    path.write_bytes(bytes(data))


def test_every_tensor_has_a_checksum_in_the_metadata(tmp_path):
    from safetensors import safe_open

    path = tmp_path / "c.safetensors"
    checkpoint.save(path, sample_checkpoint())
    with safe_open(str(path), framework="numpy") as handle:
        meta = handle.metadata()
        stored = json.loads(meta["checksums"])
        assert meta["checksum"] == "crc32" and set(stored) == set(handle.keys())
        for name in handle.keys():
            assert stored[name] == checkpoint.tensor_checksum(handle.get_tensor(name))


@pytest.mark.parametrize("name", ["weight/fc", "owner/block.conv1", "bn/1/block.bn1/var",
                                  "trainer/exp_avg.fc"])
def test_a_flipped_bit_is_an_error_naming_the_file_and_tensor(tmp_path, name):
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, sample_checkpoint())
    flip_bit(path, name)
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load(path)
    message = str(err.value)
    assert str(path) in message and repr(name) in message and "checksum" in message
    assert "\n" not in message


def test_checkpoints_written_before_checksums_still_load(tmp_path):
    from safetensors.numpy import save_file

    original = sample_checkpoint()
    path = tmp_path / "old.safetensors"
    save_file(checkpoint.to_tensors(original), str(path), metadata={
        "format": checkpoint.FORMAT, "format_version": "1", "tasks": "3",
        "classes_per_task": "2", "state": json.dumps(original.state)})
    loaded = checkpoint.load(path)
    assert np.array_equal(loaded.weights["fc"], original.weights["fc"])


# ----------------------------------------------------------------------------- contents
def _set(obj, **fields):
    import attrs
    return attrs.evolve(obj, **fields)


def _bn_with(field, value):
    ckpt = sample_checkpoint()
    bn = {"block.bn1": {**ckpt.bn_snapshots[1]["block.bn1"], field: value}}
    return _set(ckpt, bn_snapshots=[ckpt.bn_snapshots[0], bn])


def _owner_with(fc):
    ckpt = sample_checkpoint()
    return _set(ckpt, owner={**ckpt.owner, "fc": fc})


BAD_CONTENTS = {
    "owner id past the last task": (lambda: _owner_with(np.full((6, 4), 3, np.int8)),
                                    "'owner/fc' holds owner id 3, outside -1..2"),
    "owner id below -1": (lambda: _owner_with(np.full((6, 4), -2, np.int8)),
                          "'owner/fc' holds owner id -2"),
    "owner ids that are not integers": (lambda: _owner_with(np.zeros((6, 4), np.float32)),
                                        "'owner/fc' has dtype float32"),
    "ownership of another shape": (lambda: _owner_with(np.zeros((6, 5), np.int8)),
                                   "'owner/fc' has shape (6, 5)"),
    "weights without ownership": (
        lambda: _set(sample_checkpoint(), owner={"fc": sample_checkpoint().owner["fc"]}),
        "'weight/block.conv1' has no matching 'owner/block.conv1'"),
    "a NaN weight": (lambda: _set(sample_checkpoint(), weights={
        **sample_checkpoint().weights, "fc": np.full((6, 4), np.nan, np.float32)}),
        "'weight/fc' holds non-finite values"),
    "an infinite teacher weight": (lambda: _set(sample_checkpoint(), teacher_weights={
        "fc": np.full((6, 4), np.inf, np.float32)}), "'teacher/weight/fc' holds non-finite"),
    "a NaN BN variance": (lambda: _bn_with("var", np.full(4, np.nan, np.float32)),
                          "'bn/1/block.bn1/var' holds non-finite values"),
    "an infinite live BN mean": (lambda: _set(sample_checkpoint(), live_bn={"block.bn1": {
        **sample_checkpoint().live_bn["block.bn1"], "mean": np.full(4, np.inf, np.float32)}}),
        "'live_bn/block.bn1/mean' holds non-finite values"),
    "a BN group of unequal vectors": (lambda: _bn_with("var", np.ones(5, np.float32)),
                                      "bn/1/block.bn1 must hold four vectors of one length"),
    "non-finite optimiser state": (lambda: _set(sample_checkpoint(), trainer={
        "exp_avg.fc": np.full((6, 4), np.nan, np.float32)}), "'trainer/exp_avg.fc' holds"),
    "more BN snapshots than tasks": (lambda: _set(sample_checkpoint(), tasks=1, owner={
        k: np.zeros_like(v) for k, v in sample_checkpoint().owner.items()}),
        "2 BN snapshots (bn/0..) for 1 tasks"),
    "no tasks": (lambda: _set(sample_checkpoint(), tasks=0), "metadata 'tasks'"),
    "an unknown phase": (lambda: _set(sample_checkpoint(), state={
        "task": 1, "phase": "bogus", "next_epoch": 0}), "state field 'phase' is 'bogus'"),
    "a negative next epoch": (lambda: _set(sample_checkpoint(), state={
        "task": 1, "phase": "distill", "next_epoch": -1}), "state field 'next_epoch' is -1"),
    "a next epoch that is not a number": (lambda: _set(sample_checkpoint(), state={
        "task": 1, "phase": "distill", "next_epoch": "2"}), "state field 'next_epoch' is '2'"),
    "a task past the last": (lambda: _set(sample_checkpoint(), state={
        "task": 4, "phase": "teacher", "next_epoch": 0}), "state field 'task' is 4"),
    "statistics kept in a task file past the last": (lambda: _set(sample_checkpoint(), state={
        "task": 1, "phase": "teacher", "next_epoch": 0, "stats_in_task_file": [3, 1]}),
        "state field 'stats_in_task_file' is [3, 1]"),
    "more statistics kept in a task file than tasks before it": (
        lambda: _set(sample_checkpoint(), state={"task": 1, "phase": "teacher", "next_epoch": 0,
                                                 "stats_in_task_file": [0, 2]}),
        "state field 'stats_in_task_file' is [0, 2]"),
    "a history that is not a list": (lambda: _set(sample_checkpoint(), state={
        "task": 1, "phase": "teacher", "next_epoch": 0, "history": {"a": 1}}),
        "state field 'history'"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONTENTS))
def test_bad_contents_are_one_line_naming_the_file_and_the_field(tmp_path, case):
    make, message = BAD_CONTENTS[case]
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, make())  # valid checksums: the contents themselves are wrong
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_gap_in_the_bn_snapshots_is_an_error(tmp_path):
    from safetensors.numpy import save_file

    ckpt = sample_checkpoint()
    tensors = {(k.replace("bn/0/", "bn/2/", 1) if k.startswith("bn/0/") else k): v
               for k, v in checkpoint.to_tensors(ckpt).items()}
    path = tmp_path / "c.safetensors"
    save_file(tensors, str(path), metadata={
        "format": checkpoint.FORMAT, "format_version": "1", "tasks": "3",
        "classes_per_task": "2", "state": "{}",
        "checksums": json.dumps(checkpoint.checksums(tensors))})
    with pytest.raises(checkpoint.CheckpointError, match=r"tensors bn/0/\.\.\. are missing"):
        checkpoint.load(path)


def resume_state(**fields):
    return {"task": 1, "phase": "distill", "next_epoch": 2, "history": [
        {"tag": 1.0, "taw": 1.0, "routing": 1.0, "tag_entropy": 1.0, "per_task_tag": [1.0],
         "per_task_taw": [1.0], "per_task_routing": [1.0], "confusion": [[3]]}], **fields}


@pytest.mark.parametrize("tasks, state, epochs, message", [
    (5, resume_state(), None, "metadata 'tasks' is 3 but the run has tasks=5"),
    (3, resume_state(next_epoch=4), {"teacher": 2, "distill": 3},
     "'next_epoch' is 4, past the distill phase's 3 epochs"),
    (3, resume_state(phase="allocate", next_epoch=1), {"teacher": 2, "distill": 3},
     "past the allocate phase's 0 epochs"),
    (3, {"tasks_done": 2}, None, "state field 'task' is missing: not a resume checkpoint"),
    (3, resume_state(task=2, history=[]), None,
     "1 BN snapshots (bn/0..) but state field 'task' is 2"),
    (3, resume_state(history=[]), None, "'history' has 0 evaluations but 'task' is 1"),
    (3, resume_state(history=[{"tag": 1.0}]), None, "'history' row 0 is malformed"),
])
def test_a_resume_checkpoint_must_fit_the_run(tmp_path, tasks, state, epochs, message):
    ckpt = _set(sample_checkpoint(), bn_snapshots=sample_checkpoint().bn_snapshots[:1],
                state=state)
    path = tmp_path / "resume.safetensors"
    checkpoint.save(path, ckpt)
    loaded = checkpoint.load(path)
    with pytest.raises(checkpoint.CheckpointError) as err:
        check_run(loaded, path, tasks, resume=True, epochs=epochs)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_a_resume_checkpoint_that_fits_the_run_passes(tmp_path):
    ckpt = _set(sample_checkpoint(), bn_snapshots=sample_checkpoint().bn_snapshots[:1],
                state=resume_state(next_epoch=3))
    checkpoint.save(tmp_path / "resume.safetensors", ckpt)
    loaded = checkpoint.load(tmp_path / "resume.safetensors")
    check_run(loaded, "resume", 3, resume=True, epochs={"teacher": 2, "distill": 3})
