"""The routing rule of a run and the per-rule scores: RunState, the table, the log lines.

Recorded finished-3tasks routes with mahalanobis and scores every rule; interrupted-4tasks
was recorded before rules were compared (no routing_rule, no rules in its events).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mind_core.routing import ROUTINGS
from tests.tui.tui_helpers import (
    DATA,
    recorded_variant,
    rendered,
    replay,
    without_statistics,
)
from tui.format import event_line, pct
from tui.rundir import run_events
from tui.runstate import RunState
from tui.widgets.rules import RulesInfo, known_rules, rules_info, rules_table


def test_a_run_that_scored_every_rule_shows_them_all_and_marks_its_own():
    state = replay(DATA / "finished-3tasks")
    recorded = [e for e in run_events(DATA / "finished-3tasks") if e["type"] == "evaluated"]
    assert state.routing_rule == "mahalanobis"
    assert state.rule_scores() == tuple(
        (name, v["routing"], v["tag"]) for name, v in recorded[-1]["rules"].items())
    info = rules_info(state)
    assert (info.own, info.missing, info.when) == ("mahalanobis", (), "final")
    lines = rendered(rules_table(info)).splitlines()
    assert lines[0] == "Routing rules, final (● this run's rule)"
    for name, v in recorded[-1]["rules"].items():
        row = next(line for line in lines if f" {name} " in line)
        assert row.split()[-2:] == [pct(v["routing"]), pct(v["tag"])]
        assert row.startswith("●") == (name == "mahalanobis")
    assert "unavailable" not in "\n".join(lines)


def test_a_run_without_statistics_names_the_rules_it_could_not_score(tmp_path: Path):
    run = recorded_variant("finished-3tasks", tmp_path / "no-stats", without_statistics(),
                           routing="max_prob")
    state = replay(run)
    info = rules_info(state)
    scored = [name for name, _, _ in info.scores]
    assert info.own == "max_prob" and "mahalanobis" not in scored
    assert info.missing == tuple(r for r in ROUTINGS if r not in scored)
    shown = rendered(rules_table(info))
    assert "mahalanobis, pairwise unavailable: the run's checkpoints hold no routing" in shown
    assert next(line for line in shown.splitlines() if " max_prob " in line).startswith("●")


def test_a_run_from_before_the_rules_routes_with_its_config_rule_or_max_prob():
    assert replay(DATA / "interrupted-4tasks").routing_rule == "max_prob"
    state = replay(DATA / "interrupted-4tasks", config_rule="entropy")
    assert state.routing_rule == "entropy" and state.rule_scores() == ()
    assert rendered(rules_table(rules_info(state))).strip() == (
        "Routing rules: only entropy was scored (the run predates comparing them)")
    assert rules_info(state).when == "after task 2"
    assert "no task evaluated yet" in rendered(rules_table(rules_info(RunState())))


def test_malformed_rule_fields_do_not_break_the_state_or_the_table():
    state = RunState()
    good = {"type": "evaluated", "time": 1.0, "task": 0, "tag": 0.5, "routing": 0.25}
    for bad in ({"routing_rule": 7, "rules": "all"}, {"rules": [1, 2]},
                {"tag": "high", "routing": None, "routing_rule": ""}):
        state.apply({**good, **bad})
        assert state.routing_rule == "max_prob" and state.rule_scores() == ()
        rules_table(rules_info(state))
        assert event_line({**good, **bad}, 0.0, state.routing_rule)
    assert state.latest_metrics == {}  # the last one's numbers were not numbers
    state.apply({"type": "evaluated", "time": 2.0})  # no task: not placed anywhere
    state.apply({**good, "rules": {"odd": 3, "nan": {"routing": float("nan"), "tag": True},
                                   "energy": {"routing": 0.5}, "[/b]": {}}})
    assert state.rule_scores() == (("nan", None, None), ("energy", 0.5, None),
                                   ("[/b]", None, None))
    shown = rendered(rules_table(rules_info(state)))
    assert "nan" in shown and "–" in shown and "50.0" in shown and "[/b]" in shown
    assert "odd" not in shown


def test_without_the_rule_registry_the_table_only_cannot_name_missing_rules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    run = recorded_variant("finished-3tasks", tmp_path / "no-stats", without_statistics())
    monkeypatch.setitem(sys.modules, "mind_core.routing", None)  # importing it fails
    known_rules.cache_clear()
    try:
        info = rules_info(replay(run))
    finally:
        known_rules.cache_clear()
    assert info.missing == () and len(info.scores) == 4
    info = RulesInfo(own="new_rule", scores=(("new_rule", 0.9, 0.8),), when="after task 1")
    assert "●  new_rule       90.0   80.0" in rendered(rules_table(info))


def test_log_lines_name_the_rule_beside_a_routing_accuracy():
    evaluated, finished = (next(e for e in run_events(DATA / "finished-3tasks")
                                if e["type"] == kind) for kind in ("evaluated", "run_finished"))
    assert "routing 100.0% (mahalanobis)" in event_line(evaluated, 1.7e9, "max_prob")
    old = {k: v for k, v in evaluated.items() if k != "routing_rule"}
    assert "routing 100.0% (entropy)" in event_line(old, 1.7e9, "entropy")
    assert event_line(old, 1.7e9).endswith("routing 100.0%")
    assert "routing 84.5% (mahalanobis)" in event_line(finished, 1.7e9, "mahalanobis")


def test_the_recorded_metrics_agree_with_the_recorded_events():
    """The fixture's metrics.json has the shape mind_core.metrics.summary writes now."""
    metrics = json.loads((DATA / "finished-3tasks" / "metrics.json").read_text())
    evaluated = [e for e in run_events(DATA / "finished-3tasks") if e["type"] == "evaluated"]
    assert metrics["routing_rule"] == evaluated[-1]["routing_rule"] == "mahalanobis"
    assert metrics["final"]["rules"] == evaluated[-1]["rules"]
    for name, series in metrics["rules"].items():
        assert series["routing"] == [e["rules"][name]["routing"] for e in evaluated]
        assert series["tag"] == [e["rules"][name]["tag"] for e in evaluated]


def test_a_distill_epoch_without_a_distillation_term_shows_no_distill_value():
    """teacher_slice (beta 0) writes distill null: no "distill 0.0000" on every epoch."""
    epoch = {"type": "epoch_ended", "task": 0, "phase": "distill", "epoch": 0, "epochs": 2,
             "loss": 0.5, "ce": 0.5, "accuracy": 0.9, "time": 1.7e9}
    assert "distill" not in event_line({**epoch, "distill": None}, 1.7e9).split(": ", 1)[1]
    assert "ce 0.5000 distill 0.2500" in event_line({**epoch, "distill": 0.25}, 1.7e9)
