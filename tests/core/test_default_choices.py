"""docs/algorithm.md says, for every default that departs from the paper's MIND, on which data
it was chosen (issue 24): a default promoted without a row there fails here."""

from __future__ import annotations

from pathlib import Path

from mind_core.config import (
    DEFAULT_VARIANT,
    PAPER_VALUES,
    config_to_dict,
    flatten,
    implied_settings,
    resolve_config,
)

ALGORITHM = Path(__file__).resolve().parents[2] / "docs" / "algorithm.md"
HEADING = "### Where each default was chosen"


def chosen_table() -> str:
    text = ALGORITHM.read_text(encoding="utf-8")
    assert HEADING in text
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    return "\n".join(line for line in section.splitlines() if line.startswith("|"))


def test_every_default_beyond_the_paper_says_where_it_was_chosen():
    # The demo preset runs the code's defaults: its variant's settings that differ from the
    # paper's MIND, and the paper's values of other settings it does not keep.
    flat = flatten(config_to_dict(resolve_config("demo", [])))
    implied, paper = implied_settings(DEFAULT_VARIANT), implied_settings("mind")
    departures = ["variant", *(key for key in implied if implied[key] != paper[key]),
                  *(key for key, value in PAPER_VALUES.items()
                    if key not in implied and flat[key] != value)]
    assert {"variant", "allocation.mode", "allocation.init", "distillation.beta",
            "inference.routing"} <= set(departures)
    table = chosen_table()
    missing = [key for key in departures if f"`{key}" not in table]
    assert not missing, missing
    assert "test split" in table  # and it says where a choice was made on test data
