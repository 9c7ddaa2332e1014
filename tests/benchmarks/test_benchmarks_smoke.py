"""Tiny runs of the benchmark scripts' core functions, so that they do not rot.

No timing is asserted: only that the documented keys come back with sane values.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os

import pytest

from benchmarks import accuracy
from benchmarks.accuracy_tables import worst_student_gap
from benchmarks.baselines import METHODS, method_overrides
from mind_core.config import resolve_config

# As in tests/backends: tiny models only lose to OpenMP spin-waiting on a busy 2-core runner.
os.environ.setdefault("OMP_NUM_THREADS", "1")

FAKE = "tests.fakes:FakeBackend"
HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.mark.skipif(not HAS_TORCH, reason="the speed benchmark's reference model is torch")
def test_speed_returns_documented_keys():
    from benchmarks.speed import BACKEND_RATIOS, run_speed

    # threads=0 leaves the process's thread settings alone for the tests that follow.
    out = run_speed(["torch"], batch_size=2, batches=1, repeats=1, eval_images=2,
                    eval_batch=2, threads=0)
    assert "train_ratio_bf16_vs_fp32" in BACKEND_RATIOS
    for key in BACKEND_RATIOS:
        assert out[key] > 0
        assert out[key] == out["per_backend"]["torch"][key]
    for key in ("tf_vs_torch_train", "tf_vs_torch_eval"):
        assert out[key] is None  # tf was not asked for
    assert out["config"]["clock"] == "cpu"
    for clock in ("wall", "cpu"):
        assert set(out["raw_seconds"][clock]) == {"dense_step", "dense_forward",
                                                  "torch_teacher_step", "torch_distill_step",
                                                  "torch_predict", "torch_eval_max_prob",
                                                  "torch_eval_mahalanobis",
                                                  "torch_distill_outlier_step",
                                                  "torch_self_teacher_step",
                                                  "torch_distill_labels_step",
                                                  "torch_eval_pairwise", "torch_fit_stats_0",
                                                  "torch_fit_stats_10",
                                                  "torch_bf16_teacher_step",
                                                  "torch_bf16_distill_step"}
    assert out["stats_bytes_last_task"] > 0
    assert out["eval_limit_seconds"] == pytest.approx(
        10 * out["raw_seconds"]["cpu"]["dense_forward"], rel=1e-3)
    assert out["meets_targets"]["tf_vs_torch_eval"] is None
    assert isinstance(out["meets_targets"]["teacher_step_ratio"], bool)
    assert {"platform", "cpu_count", "torch", "threads"} <= out["machine"].keys()


@pytest.mark.skipif(not HAS_TORCH, reason="the label augmentation benchmark trains with torch")
def test_label_aug_cost_writes_its_documented_keys(tmp_path, capsys):
    """benchmarks/label_aug_cost.py at its --quick size: the JSON's keys, finite and positive;
    no timing asserted."""
    from benchmarks import label_aug_cost

    path = tmp_path / "label-aug-cost.json"
    # --threads 0 leaves the process's thread settings alone for the tests that follow.
    assert label_aug_cost.main(["--quick", "--threads", "0", "--json", str(path)]) == 0
    out, printed = json.loads(path.read_text()), capsys.readouterr().out
    for key in (*label_aug_cost.RATIOS, *label_aug_cost.BYTES):
        assert math.isfinite(out[key]) and out[key] > 0, key
        assert out[key] == out["per_backend"]["torch"][key]
        assert key in printed
    # Every view's statistics hold 4 views' spaces where the image's hold one.
    assert out["stats_bytes_last_task_views_all"] > out["stats_bytes_last_task_views_image"]
    assert set(out["meets_targets"]) == set(label_aug_cost.TARGETS)
    assert out["config"]["quick"] and out["config"]["views"] == 4
    assert set(out["raw_seconds"]["cpu"]) == {
        f"torch_{job}" for job in ("train_plain", "train_one", "train_all", "fit_all",
                                   "fit_image", "eval_max_prob", "eval_pairwise_views")}


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_memory_probe_counts_the_model_state():
    from benchmarks.memory import memory_probe

    out = memory_probe("torch", threads=0, tasks=2, train_per_class=1, test_per_class=1,
                       batch_size=4)
    # int8 ownership: one byte per gated weight, a quarter of the float32 weights.
    assert out["ownership_bytes"] * 4 == out["weight_bytes"]
    snapshot = out["model_bytes"] - out["weight_bytes"]
    assert out["bn_snapshot_bytes"] == 2 * snapshot > 0
    assert out["state_bytes"] == (out["weight_bytes"] + out["ownership_bytes"]
                                  + out["bn_snapshot_bytes"])
    assert out["peak_rss_growth_bytes"] >= 0 and out["numpy_peak_bytes"] > 0


def test_scaled_epochs_shrinks_epochs_and_milestones():
    cfg = resolve_config("demo")  # teacher 6 epochs [4], distill 8 epochs [6]
    half = accuracy.make_config(accuracy.Setting("demo"), [], "mind", "torch", 0, 0.5, "cpu")
    assert (half.teacher.epochs, half.teacher.milestones) == (3, (2,))
    assert (half.distill.epochs, half.distill.milestones) == (4, (3,))
    tiny = accuracy.scaled_epochs(cfg, 0.05)
    assert "teacher.epochs=1" in tiny and "teacher.milestones=[]" in tiny


def test_every_method_resolves_to_a_valid_config():
    for method in METHODS:
        cfg = accuracy.make_config(accuracy.Setting("smoke"), [], method, FAKE, 1, 1.0, "cpu")
        assert cfg.seed == 1
    assert accuracy.make_config(accuracy.Setting("smoke"), [], "packnet", FAKE, 0, 1.0,
                                "cpu").variant == "packnet"
    assert accuracy.make_config(accuracy.Setting("smoke"), [], "lwf", FAKE, 0, 1.0,
                                "cpu").method == "lwf"
    with pytest.raises(ValueError, match="unknown method"):
        method_overrides("icarl")


def test_accuracy_driver_on_synthetic_with_the_fake_backend(tmp_path):
    methods = ["mind", "finetune", "joint", "packnet"]
    argv = ["--settings", "smoke", "--backends", FAKE, "--seeds", "0",
            "--methods", ",".join(methods), "--out", str(tmp_path)]
    assert accuracy.main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    runs = {r["method"]: r for r in results["runs"]}
    assert sorted(runs) == sorted(methods)
    for run in runs.values():
        assert len(run["tag"]) == len(run["acc_matrix_tag"]) == 5  # smoke: 5 tasks
        assert 0 <= run["final"]["tag"] <= run["final"]["taw"] <= 1  # TAg <= TAw
    # joint sees every task's data at once, finetune only the last task's.
    assert runs["joint"]["final"]["tag"] > runs["finetune"]["final"]["tag"]
    assert {e["method"] for e in results["summary"]} == set(methods)
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {m} |" in table for m in methods)
    # MIND records its teachers: its row has a worst gap; the dense baselines' rows have none.
    by_method = {e["method"]: e for e in results["summary"]}
    assert by_method["mind"]["worst_student_gap"] is not None
    assert by_method["finetune"]["worst_student_gap"] is None
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "smoke-tests.fakes_FakeBackend.png").stat().st_size > 0

    # --resume keeps the finished runs instead of running them again.
    assert accuracy.main(argv + ["--resume"]) == 0
    again = json.loads((tmp_path / "results.json").read_text())
    assert [r["seconds"] for r in again["runs"]] == [r["seconds"] for r in results["runs"]]
    assert [m["command"] for m in again["meta"]["merged"]] == [results["meta"]["command"]] * 2


def test_synbols_subset_is_the_cpu_setting_and_synbols_the_papers():
    subset = accuracy.make_config(accuracy.setting_for("synbols-subset"), [], "mind", FAKE, 0,
                                  1.0, "cpu")
    assert (subset.tasks, subset.model, subset.teacher.epochs) == (10, "small_cnn", 8)
    paper = accuracy.make_config(accuracy.setting_for("synbols"), [], "mind", FAKE, 0, 1.0,
                                 "cpu")
    assert (paper.model, paper.teacher.epochs, paper.distill.epochs) == ("resnet32", 25, 25)
    with pytest.raises(SystemExit, match="unknown setting"):
        accuracy.setting_for("cifar10")


def test_synbols_selection_renders_other_images_of_the_same_setting(tmp_path, monkeypatch):
    rendered = {}

    def fake_render(path, classes, per_class_train, per_class_test, seed):
        rendered[seed] = path
        return path

    monkeypatch.setattr(accuracy, "prepare_synbols", fake_render)
    args = argparse.Namespace(synbols_per_class=(500, 100), data_dir=str(tmp_path))
    folders = {name: accuracy.setting_for(name).prepare(args)
               for name in ("synbols-subset", "synbols-selection")}
    assert set(rendered) == {0, 1}  # one rendering each, from different seeds
    assert folders["synbols-subset"] != folders["synbols-selection"]
    configs = [accuracy.make_config(accuracy.setting_for(name), [], "mind", FAKE, 0, 1.0, "cpu")
               for name in ("synbols-subset", "synbols-selection")]
    assert configs[0] == configs[1]  # the same training recipe; only the images differ


def test_fmnist_resnet32_is_issue_12s_protocol():
    cfg = accuracy.make_config(accuracy.setting_for("fmnist-resnet32"), [], "mind", FAKE, 0, 1.0,
                               "cpu")
    assert (cfg.dataset, cfg.tasks, cfg.model) == ("fmnist", 5, "resnet32")
    assert (cfg.teacher.epochs, cfg.teacher.lr, cfg.teacher.milestones) == (4, 0.005, (3,))
    assert (cfg.distill.epochs, cfg.distill.lr, cfg.distill.milestones) == (4, 0.035, (3,))
    assert cfg.teacher.batch_size == cfg.distill.batch_size == 256


def test_worst_student_gap_is_the_largest_over_tasks_and_seeds():
    runs = [{"teacher_taw": [0.9, 0.95], "student_taw": [0.88, 0.5]},
            {"teacher_taw": [None, 1.0], "student_taw": [0.7, 0.97]}]
    assert worst_student_gap(runs) == pytest.approx(0.45)
    # A student above its teacher is a negative gap, not hidden as 0.
    assert worst_student_gap([{"teacher_taw": [0.8], "student_taw": [0.9]}]) == (
        pytest.approx(-0.1))
    assert worst_student_gap([{"final": {}}]) is None  # runs made before it existed


def test_merge_combines_invocations_and_keeps_other_epochs_apart(tmp_path, capsys):
    common = ["--settings", "smoke", "--backends", FAKE, "--seeds", "0"]
    first, second, merged = tmp_path / "a", tmp_path / "b", tmp_path / "merged"
    assert accuracy.main(common + ["--methods", "mind,finetune", "--out", str(first)]) == 0
    assert accuracy.main(common + ["--methods", "mind", "--epochs-scale", "2",
                                   "--out", str(second)]) == 0
    assert accuracy.main(["--merge", str(first / "results.json"),
                          str(second / "results.json"), "--out", str(merged)]) == 0
    results = json.loads((merged / "results.json").read_text())
    assert len(results["meta"]["merged"]) == 2
    assert sorted((r["method"], tuple(r["epochs"])) for r in results["runs"]) == sorted(
        [("mind", (1, 1)), ("finetune", (1, 1)), ("mind", (2, 2))])
    # The two mind runs differ in epochs: two summary rows, never one average of both.
    assert sorted(e["epochs"] for e in results["summary"] if e["method"] == "mind") == [
        [1, 1], [2, 2]]
    table = (merged / "results.md").read_text()
    assert table.count("python -m benchmarks.accuracy") == 2 and "| 2+2 |" in table

    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read"):
        accuracy.main(["--merge", str(tmp_path / "broken.json"), "--out", str(merged)])


@pytest.mark.skipif(not HAS_TORCH, reason="the whole-run benchmark trains with torch")
def test_precision_run_writes_its_documented_keys(tmp_path):
    """benchmarks/precision_run.py end to end at its --quick size (two tiny protocol runs and
    the demo shrunk alike, each a `mind run` child): the JSON's keys, no timing asserted."""
    from benchmarks import precision_run

    out = tmp_path / "precision-run.json"
    assert precision_run.main(["--quick", "--precisions", "fp32,bf16", "--demo", "auto",
                               "--demo-repeats", "2", "--threads", "1",
                               "--work", str(tmp_path / "work"), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["runs"]) == {"fp32", "bf16"} and set(result["demo"]) == {"auto"}
    walls = result["demo_walls"]["auto"]
    assert len(walls) == 2 and result["demo"]["auto"]["wall_s"] == min(walls)  # lower middle
    for run in [*result["runs"].values(), *result["demo"].values()]:
        assert run["wall_s"] > 0 and run["cpu_s"] > 0
        assert 0 <= run["tag"] <= run["taw"] <= 1
        assert run["threads"]["intra_op"] == 1  # --threads reached each run
    assert [result["runs"][p]["precision"] for p in ("fp32", "bf16")] == ["fp32", "bf16"]
    assert result["demo"]["auto"]["precision"] in ("fp32", "bf16")  # resolved, never "auto"
    assert result["protocol"]["data"]["image_shape"] == [32, 32, 1]
    assert result["ratios"]["wall_bf16_vs_fp32"] > 0
    assert result["ratios"]["wall_auto_vs_fp32"] is None  # auto's protocol run was not asked
    assert set(result["met"]) == {"protocol_fp32", "protocol_bf16", "demo_auto"}
    assert {"protocol_wall_s", "demo_wall_s", "reference_fastest_s"} <= set(result["targets"])


@pytest.mark.skipif(not HAS_TORCH, reason="needs a backend with both models")
def test_eval_batch_times_every_batch_size_and_checks_the_predictions_agree():
    from benchmarks.eval_batch import MODELS, run

    out = run(["torch"], [2, 3, 512], images=6, repeats=1, threads=0)
    assert set(out["results"]) == {f"torch/{m}/{p}" for m in MODELS for p in ("fp32", "bf16")}
    for result in out["results"].values():
        assert set(result["images_per_cpu_s"]) == {2, 3, 512}
        assert all(v > 0 for v in result["images_per_cpu_s"].values())
        assert result["ratio_vs_512"][512] == 1.0


@pytest.mark.skipif(not HAS_TORCH, reason="torch.compile is torch's")
def test_compile_probe_reports_both_jobs(tmp_path):
    """--quick compiles with dynamo's eager backend (no C++ compiler), tiny batches."""
    from benchmarks import compile_probe

    out = tmp_path / "compile.json"
    assert compile_probe.main(["--quick", "--threads", "1", "--json", str(out)]) == 0
    jobs = json.loads(out.read_text())["jobs"]
    assert set(jobs) == set(compile_probe.JOBS)
    for job in jobs.values():
        assert job["eager_step_s"] > 0 and job["compiled_step_s"] > 0
        assert job["compile_s"] >= 0 and job["recompile_s"] >= 0
        assert job["whole_run_faster"] == (job["break_even_steps"] is not None
                                           and job["run_steps"] > job["break_even_steps"])


@pytest.mark.skipif(not HAS_TORCH, reason="the demo trains with torch")
def test_freed_memory_compares_kept_with_glibcs_defaults(tmp_path):
    """benchmarks/freed_memory.py at its --quick size: both modes each round, the same results
    (only where memory comes from differs), the documented ratios; no timing asserted."""
    from benchmarks import freed_memory

    out = tmp_path / "freed.json"
    assert freed_memory.main(["--quick", "--repeats", "1", "--threads", "1",
                              "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    (one,) = result["rounds"]
    assert set(one) == set(freed_memory.MODES)
    assert result["same_results"] is True
    for run in one.values():
        assert run["wall_s"] > 0 and run["page_faults"] > 0 and run["peak_rss_mb"] > 0
    assert set(result["ratios"]) == {"wall_s_ratio", "cpu_s_ratio", "peak_rss_mb_ratio",
                                     "page_faults_ratio"}
    assert set(result["met"]) == {"wall", "peak_rss"}
