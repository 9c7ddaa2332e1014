"""mind eval and the routing statistics a run holds: one line says which rules a run cannot
score and why, and --refit-stats fits them again exactly from the run's training data."""

from __future__ import annotations

import json
from pathlib import Path

from mind_core.cli import main
from tests.cli.cli_helpers import FAKE, TRUST


def strip_statistics(run_dir: Path) -> None:
    """Make a run look like one written before routing statistics existed."""
    import attrs

    from mind_core import checkpoint
    for path in (run_dir / "checkpoint").glob("task-*.safetensors"):
        checkpoint.save(path, attrs.evolve(checkpoint.load(path), stats=[]))


def test_a_run_without_statistics_evaluates_with_the_score_only_rules(tmp_path, capsys):
    out = tmp_path / "run"  # as a run made before statistics: the paper's rule, none stored
    main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet",
          "--set", "inference.routing=max_prob"])
    strip_statistics(out)
    capsys.readouterr()
    assert main(["eval", str(out), *TRUST, "--routing", "all"]) == 0
    printed = capsys.readouterr().out
    from mind_core.routing import SCORE_ONLY
    table_rows = [line.split()[0] for line in printed.split("\n\n")[0].splitlines()[1:]]
    assert table_rows == list(SCORE_ONLY)
    assert "mahalanobis, pairwise unavailable: the run's checkpoints hold no routing " \
        "statistics" in printed
    assert main(["eval", str(out), *TRUST, "--set", "inference.routing=mahalanobis"]) == 2
    err = capsys.readouterr().err
    assert "inference.routing=mahalanobis is unavailable" in err and err.count("\n") == 1


def test_eval_explains_a_missing_pairwise_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet",
          "--set", "stats.spaces=0", "--set", "inference.routing=mahalanobis"])
    capsys.readouterr()
    assert main(["eval", str(out), *TRUST, "--routing", "all"]) == 0
    printed = capsys.readouterr().out
    assert "mahalanobis" in printed.split("\n\n")[0]
    assert "pairwise unavailable: the run's checkpoints hold each task's statistics in its " \
           "own sub-network only (stats.spaces was 0" in printed
    assert main(["eval", str(out), *TRUST, "--set", "inference.routing=pairwise"]) == 2
    err = capsys.readouterr().err
    assert "inference.routing: pairwise needs statistics in other sub-networks' spaces" in err
    assert err.count("\n") == 1


def test_eval_refit_stats_scores_pairwise_on_a_run_that_fitted_its_own_spaces_only(
        tmp_path, capsys):
    out, full = tmp_path / "own", tmp_path / "full"
    main(["run", "--preset", "smoke", *FAKE, "--out", str(out), "--quiet",
          "--set", "stats.spaces=0", "--set", "inference.routing=mahalanobis"])
    main(["run", "--preset", "smoke", *FAKE, "--out", str(full), "--quiet"])
    capsys.readouterr()
    assert main(["eval", str(out), *TRUST, "--json", "--refit-stats",
                 "--set", "stats.spaces=16", "--set", "inference.routing=pairwise"]) == 0
    refitted = json.loads(capsys.readouterr().out)
    saved = json.loads((full / "metrics.json").read_text())  # the same run, fitted in-loop
    assert refitted["routing_rule"] == "pairwise"
    assert refitted["rules"] == saved["rules"]
    assert main(["eval", str(out), *TRUST, "--set", "stats.spaces=16"]) == 2
    assert "stats.* with --refit-stats" in capsys.readouterr().err
