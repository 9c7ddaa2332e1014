"""Where datasets are looked for, and where decoded caches are written.

Search order (every location is tried, first hit wins):
  1. the ``data_dir`` argument (``--data-dir`` / config ``data_dir``), when given;
  2. the directory in the environment variable ``MIND_DATA_DIR``, when set;
  3. ``~/.cache/mind/data`` (also the default destination of ``download``).
Fashion-MNIST is additionally found where the Debian package dataset-fashion-mnist installs it.
Decoded caches go to ``<the root the data was found in>/cache``, or, when that is not
writable, to ``~/.cache/mind/data/cache``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mind_core.data.base import DatasetError

ENV_VAR = "MIND_DATA_DIR"
# Module-level so tests can point it elsewhere (the Debian files are installed on dev/CI boxes).
SYSTEM_FMNIST_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)


def default_root() -> Path:
    return Path.home() / ".cache" / "mind" / "data"


def search_roots(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The roots searched, in order, without duplicates (they need not exist)."""
    roots: list[Path] = []
    candidates = [data_dir, os.environ.get(ENV_VAR) or None, default_root()]
    for candidate in candidates:
        if candidate is None or str(candidate) == "":
            continue
        path = Path(candidate).expanduser()
        if path not in roots:
            roots.append(path)
    return roots


def describe_roots(roots: Sequence[Path]) -> str:
    return ", ".join(str(r) for r in roots)


def cache_dir(preferred_root: Path, name: str) -> Path:
    """A writable cache folder for ``name``: under the data's own root if possible."""
    for base in (preferred_root / "cache", default_root() / "cache"):
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(base, os.W_OK):
            return base / name
    raise DatasetError(f"no writable cache folder: tried {preferred_root / 'cache'} and "
                       f"{default_root() / 'cache'}; set {ENV_VAR} to a writable directory")
