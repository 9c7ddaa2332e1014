"""Every file a doc or a docstring names exists in the repository (issue 24): the links of
README.md, docs/*.md and benchmarks/README.md, and every repository path (`docs/x.md`,
`mind_core/x.py`, `benchmarks/x.py`, ...) written in those docs or anywhere in the Python
sources (docstrings, comments, messages). A cited file that is not in the repository, such as
a design note kept elsewhere, fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mind_core.config import VARIANTS, implied_settings

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md",
        *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = sorted(p for top in ("mind_core", "backends", "tui", "benchmarks", "examples", "scripts",
                               "docs") for p in (ROOT / top).rglob("*.py"))
# A markdown link's target: (target) or (target#anchor), not a web address.
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
# A path from the repository root, starting at one of its folders (a run directory's files,
# `runs/<name>/config.json`, start elsewhere and are not meant). Placeholders (<name>, *) end
# a match before the extension, so they are not taken for paths.
TOPS = "mind_core|backends|tui|tests|benchmarks|docs|examples|scripts"
PATH = re.compile(rf"(?<![\w/.-])(?:\.\./)*((?:{TOPS})/[\w/.-]*\w\.(?:py|md|toml|tcss|txt|json))\b")
# A markdown file named alone (`MIND-SPEC.md`, `design.md`): it must be beside the file that
# names it, at the root or in docs/. Except the ones runs write (a sweep's, a benchmark's).
BARE_MD = re.compile(r"(?<![\w/.-])([A-Za-z][\w.-]*\.md)\b")
WRITTEN = {"summary.md", "results.md"}


def _missing_links(doc: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8")
    return [target for target in LINK.findall(text)
            if "://" not in target and not target.startswith("mailto:")
            and not (doc.parent / target).exists()]


def _missing_paths(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    missing = {found for found in PATH.findall(text) if not (ROOT / found).exists()}
    missing |= {name for name in BARE_MD.findall(text) if name not in WRITTEN
                and not any((where / name).exists()
                            for where in (path.parent, ROOT, ROOT / "docs"))}
    return sorted(missing)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_of_a_doc_exists(doc):
    assert _missing_links(doc) == []


@pytest.mark.parametrize("path", DOCS + SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_a_doc_or_a_source_names_exists(path):
    assert _missing_paths(path) == []


def test_the_path_pattern_finds_what_it_is_for():
    text = ('see docs/own-network.md, [a](../mind_core/masks.py) and "benchmarks/speed.py"; '
            "not runs/<name>/config.json, docs/*.md or tests/<x>.py; MIND-SPEC.md \"Variants\"")
    assert PATH.findall(text) == ["docs/own-network.md", "mind_core/masks.py",
                                  "benchmarks/speed.py"]
    assert BARE_MD.findall(text) == ["MIND-SPEC.md"]


def _variants_named(text: str) -> set[str]:
    return set(re.findall(r"\w+", text)) & set(VARIANTS)


def test_the_algorithm_doc_gives_each_default_to_every_variant_that_has_it():
    # Issue 24: docs/algorithm.md gave magnitude allocation and teacher init to self_distill
    # and packnet only, and said no gated layer has a bias (a user network keeps its own).
    text = (ROOT / "docs" / "algorithm.md").read_text(encoding="utf-8")
    implied = {variant: implied_settings(variant) for variant in VARIANTS}
    magnitude = re.search(r"- `magnitude` \(the default for ([^)]*)\)", text).group(1)
    assert _variants_named(magnitude) == {
        v for v in VARIANTS if implied[v]["allocation.mode"] == "magnitude"}
    teacher = re.search(r"\n\| `teacher` \|[^\n]*\| ([^|\n]*) \|\n", text).group(1)
    assert _variants_named(teacher) == {
        v for v in VARIANTS if implied[v]["allocation.init"] == "teacher"}
    gated = re.search(r"\n\| gated layer \|([^\n]*)\n", text).group(1)
    assert "`<layer>.bias`" in gated and "all of them have no bias" not in gated
