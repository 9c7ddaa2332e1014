"""Download helper for the datasets that have an official direct link (CIFAR-100).

The file is written as ``<name>.part`` and only renamed once its checksum matches, so a
failed or tampered download never leaves a file a loader would pick up.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import attrs

from mind_core.data.base import DatasetError
from mind_core.data.locations import search_roots


@attrs.frozen
class Source:
    url: str
    md5: str
    filename: str


# Overridable (tests use a file:// URL; a mirror can be set here or passed to download()).
SOURCES: dict[str, Source] = {
    "cifar100": Source(url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                       md5="eb9058c3a382ffc7106e4002c42a8d85",
                       filename="cifar-100-python.tar.gz"),
}
CHUNK = 1 << 20


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(name: str, dest: str | os.PathLike[str] | None = None, *, url: str | None = None,
             md5: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch dataset ``name`` into folder ``dest`` (default: the first data root, see
    mind_core.data.locations) and verify its md5. Returns the file's path; a file already
    there with the right checksum is kept. A mismatch removes the file and raises DatasetError.
    """
    if name not in SOURCES:
        raise DatasetError(f"no download is available for {name!r}; downloadable: "
                           f"{', '.join(sorted(SOURCES))}")
    source = SOURCES[name]
    url = url or source.url
    md5 = (md5 or source.md5).lower()
    folder = Path(dest).expanduser() if dest is not None else search_roots()[0]
    target = folder / source.filename
    if target.is_file() and md5_of(target) == md5:
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create the download folder {folder}: {exc}") from exc
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, \
                open(partial, "wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise DatasetError(f"downloading {name} from {url} failed: {exc}") from exc
    actual = md5_of(partial)
    if actual != md5:
        partial.unlink(missing_ok=True)
        raise DatasetError(f"checksum mismatch for {name} from {url}: md5 {actual}, expected "
                           f"{md5}; the file was removed, try again or use another mirror")
    os.replace(partial, target)
    return target
