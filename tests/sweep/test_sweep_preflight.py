"""Sweeps refuse what would mix or lose results before Ray starts (issue 26): settings that
could only fail inside every trial, values the config reads as one, a directory claimed while
the lock was awaited, an --out inside a run. One line, exit 2, nothing written. In the sweep
session, where Ray is installed (the core session has none)."""

from __future__ import annotations

import pytest

from mind_core.cli import main
from tests.cli.cli_helpers import TRUST, one_line
from tests.cli.test_trust import finished, snapshot  # noqa: F401 (fixture)


@pytest.mark.parametrize("flags, message", [
    (["--datasets", "nope"], "unknown dataset 'nope'"),
    (["--datasets", "cifar100", "--data-dir", "{tmp}/empty"], "cifar100 is not available here"),
    (["--datasets", "npz:{tmp}/absent.npz"], "does not exist"),
    (["--device", "cuda:0"], "the fake backend runs on the CPU only"),
    (["--backend", "os:system"], "is a builtin_function_or_method, not a backend class"),
])
def test_sweep_settings_that_fail_in_every_trial_are_found_before_ray_starts(
        tmp_path, capsys, monkeypatch, flags, message):
    from mind_core.sweep import driver

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(driver, "connect", no_ray)
    (tmp_path / "empty").mkdir()
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    backend = [] if "--backend" in flags else TRUST
    out = tmp_path / "sweep"
    assert main(["sweep", "--presets", "smoke", *backend, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and message in err, err
    assert not out.exists()


@pytest.mark.parametrize("grid, message", [
    (["--seeds", "1,01"], "--seeds: '1' and '01' are the same value"),
    (["--seeds", "10,1_0"], "--seeds: '10' and '1_0' are the same value"),
    (["--set", "tasks=10,1_0"], "--set tasks: '10' and '1_0' are the same value"),
    (["--set", "distill.beta=1,1.0"], "--set distill.beta: '1' and '1.0' are the same value"),
    (["--set", "allocation.weight_sharing=true,yes"], "'true' and 'yes' are the same value"),
])
def test_sweep_values_that_the_config_reads_as_one_are_refused(tmp_path, capsys, grid,
                                                               message):
    from mind_core.sweep.grid import parse_grid

    out = tmp_path / "sweep"
    assert main(["sweep", "--presets", "smoke", *TRUST, *grid, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and message in err and not out.exists()
    assert parse_grid(seeds="1,2", sets=["distill.beta=1,abc"]).seeds == (1, 2)  # read later


def test_the_sweep_directory_is_checked_again_under_its_lock(tmp_path, monkeypatch):
    """Another driver may claim the directory between the first check and the lock."""
    from mind_core.rundir import RunDirLock
    from mind_core.sweep import driver
    from mind_core.sweep.grid import parse_grid

    out = tmp_path / "sweep"
    rival = '{"id": "rival", "grid": {"presets": ["demo"]}}'

    class Raced(RunDirLock):
        def acquire(self):
            (out / "sweep.json").write_text(rival)  # the other driver got there first
            return super().acquire()

    monkeypatch.setattr(driver, "RunDirLock", Raced)
    monkeypatch.setattr(driver, "connect", lambda ray, resources: False)  # no Ray started
    monkeypatch.setattr(driver, "trial_slots", lambda ray, resources: 1)
    grid = parse_grid("smoke", backend=TRUST[1], sets=["tasks=2"])
    with pytest.raises(driver.SweepError, match="holds another sweep"):
        driver.run_sweep(grid, out)
    assert (out / "sweep.json").read_text() == rival


def test_sweep_out_inside_a_run_directory_is_refused(finished, capsys):  # noqa: F811
    before = snapshot(finished)
    assert main(["sweep", "--presets", "smoke", *TRUST, "--out", str(finished / "sweep")]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and "is inside" in err and snapshot(finished) == before
