"""Regenerate mind_core/data/builtin/fmnist_mini.npz bit-identically from Fashion-MNIST.

Source: the IDX files of the Debian package dataset-fashion-mnist
(/usr/share/datasets/fashion-mnist). Selection, per split and class: the PER_CLASS indices
with the smallest sha256(f"fmnist-mini:{seed}:{split}:{index}"), then sorted by index. A hash
instead of a numpy RNG keeps the choice identical on every numpy version. The .npz is written
with fixed zip timestamps and attributes (np.savez_compressed stamps the current time), so the
same input gives the same bytes.

    python scripts/make_builtin_fmnist.py [--source DIR] [--out FILE] [--seed N]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a plain script from a checkout
    sys.path.insert(0, str(REPO))

from mind_core.data.idx import CLASS_NAMES, load_idx_folder  # noqa: E402

PER_CLASS = {"train": 1000, "test": 200}
DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_OUT = REPO / "mind_core" / "data" / "builtin" / "fmnist_mini.npz"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
UNIX = 3  # zip "created by" system; ZipInfo would otherwise use 0 on Windows


def select(labels: np.ndarray, per_class: int, seed: int, split: str) -> np.ndarray:
    """Sorted indices of a class-balanced subset chosen by hash rank."""
    chosen = []
    for c in range(len(CLASS_NAMES)):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise SystemExit(f"class {c} of {split} has only {len(members)} images")
        ranks = [hashlib.sha256(f"fmnist-mini:{seed}:{split}:{i}".encode()).digest()
                 for i in members]
        order = sorted(range(len(members)), key=ranks.__getitem__)
        chosen.append(members[order[:per_class]])
    return np.sort(np.concatenate(chosen))


def build_arrays(source: Path, seed: int) -> dict[str, np.ndarray]:
    full = load_idx_folder(source)
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        index = select(full[f"y_{split}"], PER_CLASS[split], seed, split)
        arrays[f"x_{split}"] = np.ascontiguousarray(full[f"x_{split}"][index][..., None])
        arrays[f"y_{split}"] = full[f"y_{split}"][index].astype(np.uint8)
    arrays["class_names"] = np.array(CLASS_NAMES)
    return arrays


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An np.load-compatible .npz whose bytes depend only on the arrays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for key in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, arrays[key], allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_TIME)
            info.create_system = UNIX
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=6)
    tmp.replace(path)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE,
                        help="folder with the four Fashion-MNIST IDX files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_npz(args.out, build_arrays(args.source, args.seed))
    print(f"{args.out}  sha256 {sha256_of(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
