"""Routing accuracy and TAg of every routing rule after the latest evaluated task.

A run routes with one rule (config inference.routing) but every evaluation scores each rule
its checkpoints allow, so this table shows what the other rules would have given. The rows
come from the run's own events; the rule registry is asked only which rules are missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.format import pct
from tui.runstate import RuleScore, RunState

MARK = "●"  # before the run's own rule


@dataclass(frozen=True)
class RulesInfo:
    own: str  # the rule the run routes with
    scores: tuple[RuleScore, ...] = ()
    missing: tuple[str, ...] = ()  # known rules the run could not score
    when: str = ""  # "after task 2" / "final"; "" before the first evaluation


@cache
def known_rules() -> tuple[str, ...]:
    """Every rule the installed core knows (numpy only, imported once); () without it, when
    the table just cannot say which rules are missing."""
    try:
        from mind_core.routing import ROUTINGS
    except ImportError:
        return ()
    return tuple(ROUTINGS)


def unavailable_line(missing: tuple[str, ...]) -> str:
    """The core's one line of why a run cannot score these rules (what each needs)."""
    try:
        from mind_core.routing import why_unavailable
    except ImportError:
        return f"unavailable: {', '.join(missing)}"
    return why_unavailable(list(missing))


def rules_info(state: RunState) -> RulesInfo:
    if not state.evaluations:
        return RulesInfo(own=state.routing_rule)
    scores = state.rule_scores()
    scored = {name for name, _, _ in scores}
    missing = tuple(r for r in known_rules() if r not in scored) if scores else ()
    when = "final" if state.status == "finished" else f"after task {state.tasks_done}"
    return RulesInfo(own=state.routing_rule, scores=scores, missing=missing, when=when)


def rules_table(info: RulesInfo) -> Group | Text:
    if not info.when:
        return Text("Routing rules: no task evaluated yet", style="italic")
    if not info.scores:
        # Runs made before every rule was scored recorded only their own rule's numbers.
        return Text(f"Routing rules: only {info.own} was scored (the run predates comparing "
                    "them)", style="italic")
    table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False, show_edge=False,
                  header_style="bold")
    table.add_column("", no_wrap=True, width=1, min_width=1)
    table.add_column("rule", no_wrap=True)
    table.add_column("routing %", justify="right", no_wrap=True)
    table.add_column("TAg %", justify="right", no_wrap=True)
    for name, routing, tag in info.scores:
        own = name == info.own
        table.add_row(MARK if own else "", Text(name), pct(routing), pct(tag),  # not markup
                      style="bold" if own else "")
    parts: list[Text | Table] = [
        Text(f"Routing rules, {info.when} ({MARK} this run's rule)", style="bold"), table]
    if info.missing:
        parts.append(Text(unavailable_line(info.missing), style="italic"))
    return Group(*parts)


class RuleScores(Static):
    """Set `info`; the table re-renders when it changes."""

    DEFAULT_CSS = "RuleScores { width: 1fr; height: auto; padding: 1 1 0 1; }"

    info: reactive[RulesInfo] = reactive(RulesInfo(own=""))

    def watch_info(self, info: RulesInfo) -> None:
        self.update(rules_table(info))
