"""Download helper for the datasets that have an official direct link (CIFAR-100,
TinyImageNet, CORe50).

The file is written as ``<name>.part`` and only renamed once its checksum matches, so a
failed or tampered download never leaves a file a loader would pick up. Zip archives are then
unpacked into a hidden folder and moved into place in one rename, for the same reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import attrs

from mind_core.data.base import DatasetError
from mind_core.data.locations import search_roots


@attrs.frozen
class Source:
    url: str
    md5: str
    filename: str
    unpacks_to: str | None = None  # a zip's top folder, which the loader looks for


# Overridable (tests use a file:// URL; a mirror can be set here or passed to download()).
SOURCES: dict[str, Source] = {
    "cifar100": Source(url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                       md5="eb9058c3a382ffc7106e4002c42a8d85",
                       filename="cifar-100-python.tar.gz"),
    "tinyimagenet": Source(url="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
                           md5="90528d7ca1a48142e341f4ef8d21d0de",
                           filename="tiny-imagenet-200.zip", unpacks_to="tiny-imagenet-200"),
    "core50": Source(url="http://bias.csr.unibo.it/maltoni/download/core50/core50_128x128.zip",
                     md5="745f3373fed08d69343f1058ee559e13", filename="core50_128x128.zip",
                     unpacks_to="core50_128x128"),
}
SOURCES["core50-frames"] = SOURCES["core50"]
Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)
CHUNK = 1 << 20


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(name: str, dest: str | os.PathLike[str] | None = None, *, url: str | None = None,
             md5: str | None = None, timeout: float = 60.0,
             progress: Progress | None = None) -> Path:
    """Fetch dataset ``name`` into folder ``dest`` (default: the first data root, see
    mind_core.data.locations), verify its md5 and unpack it if it is a zip. Returns the path
    the loader reads (the archive, or the unpacked folder). A file already there with the right
    checksum is kept. A mismatch removes the file and raises DatasetError.
    """
    if name not in SOURCES:
        raise DatasetError(f"no download is available for {name!r}; downloadable: "
                           f"{', '.join(sorted(SOURCES))}")
    source = SOURCES[name]
    url = url or source.url
    md5 = (md5 or source.md5).lower()
    folder = Path(dest).expanduser() if dest is not None else search_roots()[0]
    target = folder / source.filename
    if source.unpacks_to and (folder / source.unpacks_to).is_dir():
        return folder / source.unpacks_to
    if not (target.is_file() and md5_of(target) == md5):
        fetch(name, url, md5, target, timeout, progress)
    return unpack(target, folder, source.unpacks_to) if source.unpacks_to else target


def fetch(name: str, url: str, md5: str, target: Path, timeout: float,
          progress: Progress | None) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create the download folder {target.parent}: {exc}") from exc
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, \
                open(partial, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise DatasetError(f"downloading {name} from {url} failed: {exc}") from exc
    actual = md5_of(partial)
    if actual != md5:
        partial.unlink(missing_ok=True)
        raise DatasetError(f"checksum mismatch for {name} from {url}: md5 {actual}, expected "
                           f"{md5}; the file was removed, try again or use another mirror")
    os.replace(partial, target)


def unpack(archive: Path, folder: Path, top: str) -> Path:
    """Extract the zip's ``top`` folder into ``folder`` (other members, e.g. __MACOSX/, are
    skipped; a member that would land outside it, e.g. ``top/../x``, is an error)."""
    staging = folder / f".{top}.unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = []
            for member in zf.namelist():
                parts = PurePosixPath(member).parts
                if parts[:1] != (top,):
                    continue
                if ".." in parts:
                    raise DatasetError(f"{archive} holds {member!r}, which points outside "
                                       f"{top}/: not unpacked")
                members.append(member)
            if not members:
                raise DatasetError(f"{archive} has no {top}/ folder: not the expected archive "
                                   "(remove it and download it again)")
            zf.extractall(staging, members)
        os.replace(staging / top, folder / top)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"cannot unpack {archive}: {exc} (remove it and download it "
                           "again)") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / top
