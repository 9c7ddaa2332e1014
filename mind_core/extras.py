"""Optional dependencies (pyproject's extras): import one, or say in one line how to get it.

The package is installed from a checkout (it is not published on PyPI), so the advice is the
editable install of the extra there.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(Exception):
    """A feature needs an optional dependency that is not installed (the CLI: exit 2)."""


def install_hint(extra: str) -> str:
    return f"pip install -e '.[{extra}]' in the mind checkout"


def require(module: str, extra: str, feature: str) -> ModuleType:
    """The imported module, or MissingExtra naming the extra that provides it. Only the
    top-level package is imported here, so a half-present install fails later, with its own
    error, rather than being reported as missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{feature} needs {module}, which is not installed: "
                           f"{install_hint(extra)}") from None
