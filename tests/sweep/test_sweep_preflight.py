"""Sweep settings that could only fail inside every trial are found before Ray starts
(issue 26): one line, exit 2, nothing written. In the sweep session, where Ray is installed."""

from __future__ import annotations

import pytest

from mind_core.cli import main
from tests.cli.test_trust import FAKE, one_line


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
    backend = [] if "--backend" in flags else FAKE
    out = tmp_path / "sweep"
    assert main(["sweep", "--presets", "smoke", *backend, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and message in err, err
    assert not out.exists()
