"""The `precision` setting (mind_core.precision): choices, `auto` on stubbed devices, the
refusals, the paper presets, and where a run records what it used. No framework needed."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mind_core.runner
from mind_core import checkpoint
from mind_core.config import (
    ConfigError,
    beyond_paper,
    config_from_dict,
    config_to_dict,
    list_presets,
    resolve_config,
)
from mind_core.console import device_text
from mind_core.precision import (
    DEFAULT_PRECISION,
    PRECISIONS,
    backend_precision,
    cpu_flags,
    cpu_runs_bf16,
    resolve_precision,
    scaler_entries,
    split_scaler_entries,
)
from mind_core.registry import BackendError, get_backend
from mind_core.runner import start_run
from tests.fakes import FakeBackend, tiny_dataset

FAKE = "tests.fakes:FakeBackend"


def test_default_is_auto_the_paper_and_test_presets_fp32_and_every_choice_is_accepted():
    assert resolve_config("demo").precision == DEFAULT_PRECISION == "auto"
    assert resolve_config("cifar100").precision == resolve_config("smoke").precision == "fp32"
    for choice in PRECISIONS:
        if choice != "fp16":  # fp16 with device=auto is the backend's to judge
            assert resolve_config("smoke", [f"precision={choice}"]).precision == choice


def test_a_bad_value_is_one_line_naming_the_key():
    with pytest.raises(ConfigError) as caught:
        resolve_config("smoke", ["precision=half"])
    assert caught.value.key == "precision" and "bf16" in str(caught.value)


def test_fp16_on_a_cpu_device_is_refused_by_the_config():
    resolve_config("smoke", ["precision=fp16", "device=cuda"])
    with pytest.raises(ConfigError, match="^precision: fp16 runs on a GPU only"):
        resolve_config("smoke", ["precision=fp16", "device=cpu"])


def test_paper_presets_stay_fp32_and_bf16_counts_as_a_departure():
    paper = [p for p in list_presets() if resolve_config(p.name).variant == "mind"
             and resolve_config(p.name).inference.routing == "max_prob"]
    assert paper and all(resolve_config(p.name).precision == "fp32" for p in paper)
    assert all("precision" not in p.beyond_paper for p in paper)
    cfg = resolve_config(paper[0].name, ["precision=bf16"])
    assert beyond_paper(cfg)["precision"] == "bf16"


@pytest.mark.parametrize("gpu,native,expected", [(False, True, "bf16"), (False, False, "fp32"),
                                                 (True, True, "bf16"), (True, False, "fp32")])
def test_auto_picks_bf16_only_where_the_device_runs_it_natively(gpu, native, expected):
    assert resolve_precision("auto", gpu=gpu, bf16_native=native) == expected


def test_explicit_choices_and_the_refusals():
    assert resolve_precision("fp32", gpu=False, bf16_native=False) == "fp32"
    assert resolve_precision("bf16", gpu=False, bf16_native=False) == "bf16"  # emulated, slow
    assert resolve_precision("fp16", gpu=True, bf16_native=False) == "fp16"
    with pytest.raises(ValueError, match="^precision: fp16 runs on a GPU only"):
        resolve_precision("fp16", gpu=False, bf16_native=True)
    with pytest.raises(ValueError, match="^precision: this GPU has no bfloat16"):
        resolve_precision("bf16", gpu=True, bf16_native=False)
    with pytest.raises(ValueError, match="^precision: must be one of"):
        resolve_precision("fp8", gpu=True, bf16_native=True)


def test_cpu_flags_come_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu sse avx512f avx512_bf16\n")
    assert "avx512_bf16" in cpu_flags(info)
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert cpu_runs_bf16(frozenset({"avx512f", "amx_bf16"}))
    assert not cpu_runs_bf16(frozenset({"avx512f", "avx2"}))


def test_a_backend_without_the_setting_runs_fp32_and_refuses_others():
    backend = get_backend(FAKE, "cpu")  # fp32 is not passed: older backends still load
    assert backend_precision(backend) == "fp32"
    # auto, the default, is not passed to such a backend either: it runs fp32
    assert backend_precision(get_backend(FAKE, "cpu", precision="auto")) == "fp32"
    with pytest.raises(BackendError, match="^precision: the backend .* takes no precision"):
        get_backend(FAKE, "cpu", precision="bf16")


class Bf16Fake(FakeBackend):
    precision = "bf16"


def test_a_run_records_device_and_resolved_precision(tmp_path, monkeypatch):
    cfg = resolve_config("smoke", ["tasks=2", "teacher.epochs=1", "distill.epochs=1",
                                   f"backend={FAKE}", "precision=auto"])
    run_dir = tmp_path / "run"
    monkeypatch.setattr(mind_core.runner, "get_backend", lambda *args: Bf16Fake())
    start_run(cfg, run_dir, load=lambda *_: tiny_dataset())
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["config"]["precision"] == "auto"  # what was asked, resumed as asked
    assert saved["versions"]["precision"] == "bf16"  # what it resolved to here
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["precision"] == "bf16"  # what it trained in, beside the threads
    started = json.loads((run_dir / "events.jsonl").read_text().splitlines()[0])
    assert (started["device"], started["precision"]) == ("cpu", "bf16")
    assert device_text(started) == " on cpu in bf16"
    assert device_text({}) == ""  # events written before these fields


def test_loss_scaler_entries_survive_a_checkpoint_and_split_from_adamw(tmp_path):
    adamw = {"adamw.fc.weight.exp_avg": np.zeros((2, 3), np.float32)}
    trainer = {**adamw, **scaler_entries({"scale": 65536.0, "growth_tracker": 3.0})}
    path = tmp_path / "resume.safetensors"
    checkpoint.save(path, checkpoint.Checkpoint(
        weights={"fc": np.zeros((2, 3), np.float32)}, owner={"fc": np.zeros((2, 3), np.int8)},
        bn_snapshots=[], trainer=trainer, tasks=1))
    scaler, rest = split_scaler_entries(checkpoint.load(path).trainer)
    assert scaler == {"scale": 65536.0, "growth_tracker": 3.0} and rest.keys() == adamw.keys()


def test_a_saved_config_without_precision_reads_as_fp32_not_the_default():
    """A run made before the setting existed trained in fp32: resuming or re-running it must
    not switch it to the default (auto) and so to bf16."""
    saved = config_to_dict(resolve_config("demo"))
    assert saved.pop("precision") == "auto"
    assert config_from_dict(saved).precision == "fp32"
    assert config_from_dict({**saved, "precision": "bf16"}).precision == "bf16"
