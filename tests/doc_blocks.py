"""The code blocks of the user-facing docs (README.md and docs/*.md), for the tests that keep
them working: tests/cli/test_doc_commands.py parses every shell command line, and
tests/parity/test_doc_examples.py runs every Python block."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL = ("sh", "bash", "shell", "console")
# What ends one command of a shell line and starts the next (the rest is a redirection's
# target or the next command).
OPERATORS = {"&&", "||", ";", "|", ">", ">>", "<"}


def blocks(language: str | tuple[str, ...]) -> list[tuple[Path, str]]:
    """(file, code) of every fenced block of the language(s), in document order."""
    languages = (language,) if isinstance(language, str) else language
    return [(path, match.group(2)) for path in DOCS
            for match in FENCE.finditer(path.read_text(encoding="utf-8"))
            if match.group(1) in languages]


def commands(code: str, programs: tuple[str, ...] = ("mind", "mind-tui")) -> list[list[str]]:
    """The argument lists of every command of a shell block that runs one of programs, with
    comments and line continuations read as the shell reads them (operators must stand
    apart, as the docs write them)."""
    found: list[list[str]] = []
    for line in code.replace("\\\n", " ").splitlines():
        current: list[str] = []
        redirected = False  # after > or <, the rest of the command is not its arguments
        for token in [*shlex.split(line, comments=True), ";"]:
            if token in OPERATORS:
                if current and current[0] in programs:
                    found.append(current)
                current, redirected = [], token in (">", ">>", "<")
            elif not redirected:
                current.append(token)
    return found
