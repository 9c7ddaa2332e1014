"""Bad input to `mind sweep` is one line and exit 2, and nothing is written: an invalid grid
value, no Ray, an unreachable cluster, a directory holding something else. No Ray starts."""

from __future__ import annotations

import socket
import sys

import pytest

from mind_core.cli import main
from tests.sweep.conftest import require_ray
from tests.sweep.helpers import FAKES

FAKE = ["--backend", f"{FAKES}:ThreadsBackend"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("mind: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("grid, message", [
    (["--set", "distill.beta=1,abc"],
     "--set distill.beta=abc: distillation.beta: cannot read 'abc' as float"),
    (["--set", "distill.epochs=1,0", "--set", "distill.beta=5"], "--set distill.epochs=0"),
    (["--set", "variant=mind,nope"], "--set variant=nope: variant: must be one of"),
    (["--set", "nonsense=1"], "--set nonsense=1: nonsense: unknown setting"),
    (["--set", "seed=1,2"], "--set seed: a sweep sets seed with --seeds"),
    (["--set", "distill.beta"], "expected KEY=V1,V2"),
    (["--seeds", "0,x"], "--seeds: expected whole numbers"),
    (["--seeds", "0,0"], "--seeds: '0' is given twice"),
    (["--methods", "mind,nope"], "--methods nope: unknown method; choose from mind,"),
    (["--presets", "smoke,nope"], "--presets nope: preset: unknown preset 'nope'"),
    (["--cpus-per-trial", "0"], "--cpus-per-trial must be > 0"),
])
def test_an_invalid_grid_value_is_one_line_naming_it_and_nothing_is_written(
        tmp_path, capsys, grid, message):
    require_ray()
    out = tmp_path / "sweep"
    assert main(["sweep", "--presets", "smoke", *FAKE, *grid, "--out", str(out)]) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()


def test_without_ray_the_command_names_the_extra_and_writes_nothing(tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    out = tmp_path / "sweep"
    assert main(["sweep", "--presets", "smoke", *FAKE, "--out", str(out)]) == 2
    err = one_line_error(capsys)
    assert "mind sweep needs ray" in err and "pip install -e '.[sweep]'" in err
    assert not out.exists()


def test_an_unreachable_cluster_address_is_one_line(tmp_path, capsys):
    ray = require_ray()
    assert not ray.is_initialized()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "sweep"
    code = main(["sweep", "--presets", "smoke", *FAKE, "--out", str(out),
                 "--address", f"127.0.0.1:{port}"])
    assert code == 2
    assert f"--address 127.0.0.1:{port}: no Ray cluster answers there" in one_line_error(capsys)
    assert not out.exists() and not ray.is_initialized()


def test_a_directory_holding_something_else_or_another_sweep_is_refused(tmp_path, capsys):
    require_ray()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["sweep", "--presets", "smoke", *FAKE, "--out", str(other)]) == 2
    assert "is not empty and holds no sweep (notes.txt)" in one_line_error(capsys)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]

    done = tmp_path / "done"
    done.mkdir()
    (done / "sweep.json").write_text('{"id": "x", "grid": {"presets": ["demo"]}}')
    assert main(["sweep", "--presets", "smoke", *FAKE, "--out", str(done)]) == 2
    assert "holds another sweep (its sweep.json records other" in one_line_error(capsys)
