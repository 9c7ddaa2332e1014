"""Bad input to `mind` is exit 2 and one line (issue 14): an --out that cannot be written, a
gone working directory, user data the network cannot take, a config.json of wrong types; and
a failing run's traceback always lands somewhere, even where the working directory refuses it."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mind_core.cli import main
from tests.cli.cli_helpers import FAKE, ROOT, one_line

# Neither can load: an --out check that passes would fail on them instead.
UNLOADABLE = ["--backend", "no_such_module_anywhere:Backend", "--dataset", "npz:/nonexistent.npz"]


def mind(*args: str, cwd: Path = ROOT, env: dict | None = None, prelude: str = ""):
    """`mind ARGS` in a fresh interpreter (prelude: Python run first, e.g. a memory limit)."""
    code = f"{prelude}\nimport sys\nfrom mind_core.cli import main\nsys.exit(main({list(args)!r}))"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def user_npz(path: Path, size: int = 8, y_train=(0, 1, 2, 3, 4, 0, 1, 2, 3, 4)) -> Path:
    rng = np.random.default_rng(0)
    y_train = np.asarray(y_train)
    np.savez(path, x_train=rng.integers(0, 256, (len(y_train), size, size), dtype=np.uint8),
             y_train=y_train, x_test=rng.integers(0, 256, (5, size, size), dtype=np.uint8),
             y_test=np.arange(5))
    return path


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_an_out_that_is_or_sits_under_a_file_is_exit_2_before_anything_loads(tmp_path, capsys,
                                                                              where):
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    out = afile if where == "file" else afile / "run"
    code = main(["run", "--preset", "smoke", *UNLOADABLE, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and one_line(err), err
    assert (f"--out {out} is a file" if where == "file" else f"{afile} is a file") in err
    assert afile.read_text() == "mine"


def test_an_out_on_a_read_only_file_system_is_exit_2_before_anything_loads(tmp_path, capsys,
                                                                           monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)  # the probe meets EROFS
    out = tmp_path / "mounted" / "run"
    code = main(["run", "--preset", "smoke", *UNLOADABLE, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and one_line(err), err
    assert f"--out {out} is not writable: cannot create files in {tmp_path}" in err
    assert "Read-only file system" in err and not out.parent.exists()


def test_an_out_in_a_folder_that_refuses_files_is_exit_2(tmp_path):
    refusing = Path("/sys")  # sysfs: no new files, even for root
    try:
        tempfile.TemporaryFile(dir=refusing).close()
        pytest.skip("/sys takes new files here")
    except OSError:
        pass
    result = mind("run", "--preset", "smoke", *FAKE, "--out", str(refusing / "mind-run"))
    assert result.returncode == 2 and one_line(result.stderr), result.stderr
    assert "--out /sys/mind-run is not writable" in result.stderr


def test_a_working_directory_that_is_gone_is_exit_2(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    prelude = f"import os\nos.chdir({str(gone)!r})\nos.rmdir({str(gone)!r})"
    result = mind("run", "--preset", "smoke", *FAKE, cwd=tmp_path, prelude=prelude)
    assert result.returncode == 2 and one_line(result.stderr), result.stderr
    assert "the working directory is gone" in result.stderr


def test_the_error_log_falls_back_when_it_cannot_be_written_where_it_belongs(tmp_path):
    """A failing run whose error.log and ./mind-error.log are both unwritable (folders of that
    name): the traceback goes to a file in the temp folder, and the line says which."""
    out = tmp_path / "run"
    (out / "error.log").mkdir(parents=True)
    (tmp_path / "mind-error.log").mkdir()
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = mind("run", "--preset", "smoke", "--backend", "tests.fakes:CrashingBackend",
                  "--dataset", "synthetic", "--out", str(out), "--quiet", cwd=tmp_path,
                  env={"TMPDIR": str(temp)})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    logs = list(temp.glob("mind-error-*.log"))
    assert len(logs) == 1 and f"(traceback in {logs[0]})" in result.stderr
    assert "RuntimeError: simulated backend crash" in logs[0].read_text()


def test_labels_far_beyond_the_images_are_exit_2_without_a_huge_allocation(tmp_path):
    """y_train with label 3e9: sizing anything by label value would allocate 22 GiB; under a
    1 GiB address-space limit that would be a MemoryError, not this one line."""
    data = user_npz(tmp_path / "huge.npz", y_train=[0, 1, 2, 3, 4, 3_000_000_000])
    limit = "import resource\nresource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))"
    result = mind("run", "--preset", "smoke", "--backend", "tests.fakes:FakeBackend",
                  "--dataset", f"npz:{data}", "--out", str(tmp_path / "run"), prelude=limit,
                  env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2 and one_line(result.stderr), result.stderr
    assert "y_train has label 3000000000 but only 6 training images" in result.stderr


@pytest.mark.parametrize("model, size", [("small_cnn", 3), ("small_cnn", 2)])
def test_images_too_small_for_the_network_are_exit_2(tmp_path, capsys, model, size):
    data = user_npz(tmp_path / "tiny.npz", size=size)
    out = tmp_path / "run"
    code = main(["run", "--preset", "smoke", "--backend", "tests.fakes:FakeBackend",
                 "--dataset", f"npz:{data}", "--set", f"model={model}", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and one_line(err), err
    assert f"{model} needs images of at least 4x4 pixels" in err and f"are {size}x{size}" in err
    assert not out.exists()


def test_the_minimum_image_size_is_each_models_own():
    from mind_core.config import ConfigError, resolve_config
    from mind_core.plan import model_spec

    small = resolve_config("smoke", [])
    assert model_spec(small, (4, 4, 1), 10).input_shape == (4, 4, 1)
    with pytest.raises(ConfigError, match=r"at least 4x4 pixels .*are 32x3"):
        model_spec(small, (32, 3, 3), 10)
    resnet = resolve_config("smoke", ["model=resnet32"])
    assert model_spec(resnet, (1, 1, 3), 10).input_shape == (1, 1, 3)


@pytest.mark.parametrize("edit, message", [
    (lambda c: {**c, "config": {**c["config"], "dataset": None}},
     "holds an invalid config: dataset: expected a string, got None"),
    (lambda c: {**c, "config": {**c["config"], "teacher": 3}},
     "holds an invalid config: teacher: expected a table of settings, got 3"),
    (lambda c: {**c, "config": {**c["config"], "tasks": "five"}},
     "holds an invalid config: tasks: cannot read 'five' as int"),
    (lambda c: {**c, "config": ["not", "a", "table"]}, 'is unreadable (no "config" table'),
    (lambda c: [c], 'is unreadable (no "config" table'),
])
def test_a_config_json_with_wrong_types_is_exit_2(tmp_path, capsys, edit, message):
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet"]) == 0
    config = out / "config.json"
    config.write_text(json.dumps(edit(json.loads(config.read_text()))))
    capsys.readouterr()
    for command in ("eval", "resume"):
        assert main([command, str(out), *FAKE[:2]]) == 2
        err = capsys.readouterr().err
        assert one_line(err) and f"{config} {message}" in err, err


@pytest.mark.parametrize("settings, words", [
    (["label_aug.transform=channels"], "channels needs colour images"),
    (["label_aug.transform=rotation", "method=ewc"], "method=mind"),
])
def test_label_augmentation_the_run_cannot_use_is_exit_2_and_writes_nothing(tmp_path, capsys,
                                                                           settings, words):
    out = tmp_path / "run"
    args = ["run", *FAKE, "--out", str(out)]
    for setting in settings:
        args += ["--set", setting]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert one_line(err) and "label_aug.transform" in err and words in err
    assert not out.exists()
