"""Every `mind` and `mind-tui` command line of README.md and docs/*.md parses as the commands
parse it, and every `mind run` or `mind config` one that names its settings resolves them:
a flag or setting renamed in the code fails here before a user pastes the old one. The
commands are not run (most train for minutes or need data); the Python blocks run in
tests/parity/test_doc_examples.py."""

from __future__ import annotations

import contextlib
import io

import pytest

from mind_core.cli import _parser
from mind_core.config_files import run_config
from tests.doc_blocks import ROOT, SHELL, blocks, commands
from tui.cli import parse_args as tui_args

LINES = [(path.relative_to(ROOT).as_posix(), argv) for path, code in blocks(SHELL)
         for argv in commands(code)]


def test_the_docs_have_commands_to_check():
    assert len(LINES) > 20


def _parse(argv: list[str]):
    """The namespace the program would get; argparse's own message on a bad line."""
    program, *args = argv
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return _parser().parse_args(args) if program == "mind" else tui_args(args)
    except SystemExit:
        pytest.fail(f"`{' '.join(argv)}` does not parse: {stderr.getvalue().strip()}")


@pytest.mark.parametrize("where, argv", LINES, ids=[f"{w}:{' '.join(a[:3])}" for w, a in LINES])
def test_a_documented_command_parses(where, argv):
    args = _parse(argv)
    # A run's settings resolve as the command would resolve them (a --config FILE or --from
    # RUN of the docs is a placeholder that does not exist here).
    if argv[:2] in (["mind", "run"], ["mind", "config"]) and not (
            getattr(args, "config", None) or getattr(args, "from_run", None)):
        run_config(args.preset, None, None, args.overrides,
                   **{key: getattr(args, key, None) for key in ("backend", "dataset", "seed")})
