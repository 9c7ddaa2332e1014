"""`mind-tui`'s command line: its arguments and its checks, before Textual is imported.

Textual comes with the optional `tui` extra; without it the command says in one line how to
get it (exit 2, as for any bad input) instead of failing with an ImportError's traceback. So
this module imports nothing of Textual's, nor anything that does, until the checks pass.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mind_core.errors import EXIT_BAD_INPUT
from mind_core.extras import MissingExtra, require
from mind_core.rundir import CONFIG, EVENTS, OUTPUT_LOG

# What `import tui.app` needs from the tui extra (pyproject's optional-dependencies).
TUI_MODULES = ("textual", "textual_plotext")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mind-tui",
        description="Launch MIND runs, watch them learn task by task, and compare results.",
    )
    parser.add_argument("--backend", default="torch",
                        help='framework for new runs: "torch", "tf" or "module:Class" '
                             "(default: torch; changeable on the launch screen)")
    parser.add_argument("--runs", default="runs", metavar="DIR",
                        help="directory holding the run directories, where new runs go "
                             "(default: ./runs)")
    parser.add_argument("--sweeps", default="sweeps", metavar="DIR",
                        help="directory holding `mind sweep` directories, listed beside the "
                             "runs (default: ./sweeps, mind sweep's own)")
    parser.add_argument("--attach", metavar="DIR",
                        help="open the monitor on an existing run directory (e.g. one started "
                             "with `mind run --out DIR`)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> Any:
    args = parse_args(argv)
    try:
        for module in TUI_MODULES:
            require(module, "tui", "mind-tui")
    except MissingExtra as exc:
        print(f"mind-tui: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.attach and not Path(args.attach).is_dir():
        print(f"mind-tui: no run directory at {args.attach}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.attach and not any((Path(args.attach) / name).exists()
                               for name in (CONFIG, EVENTS, OUTPUT_LOG)):
        print(f"mind-tui: {args.attach} is not a run directory (it has no {CONFIG} or "
              f"{EVENTS}; `mind run --out DIR` makes one)", file=sys.stderr)
        return EXIT_BAD_INPUT
    from tui.app import MindApp, run_app

    return run_app(MindApp(backend=args.backend, runs_dir=args.runs, attach=args.attach,
                           sweeps_dir=args.sweeps))


if __name__ == "__main__":
    sys.exit(main())
