"""Render a Synbols .npz with the optional ``synbols`` package (the ``synbols`` extra).

The package's predefined alphabets read locale files that only exist in its Docker image, so
this builds an explicit alphabet: a fixed, ordered pool of visually distinct symbols (Latin,
Greek, Cyrillic, Armenian, Georgian, arrows, shapes, math), and the installed fonts (via
fontconfig's ``fc-list``) that have a glyph for every chosen symbol. Each image follows the
package's default attribute distribution: gradient foreground and background, random font,
bold, slant, rotation ~N(0, 0.3), scale 0.6*exp(N(0, 0.2)), translation U(-0.9, 0.9).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from mind_core.data.base import DatasetError
from mind_core.extras import install_hint

INSTALL_HINT = (f"{install_hint('synbols')} (the synbols package and pycairo; building "
                "pycairo needs the apt packages libcairo2-dev and pkg-config, and rendering needs "
                "fonts, e.g. fonts-dejavu-core, and fontconfig)")


def _chars(first: int, last: int, skip: str = "") -> str:
    return "".join(chr(c) for c in range(first, last + 1) if chr(c) not in skip)


# Order matters: the first `classes` symbols are used. Look-alikes across scripts and
# case-only pairs (scale is normalised, so c/C would be one class) are left out, as are
# Cyrillic б and з (digits 6 and 3).
SYMBOL_POOL = (
    "abcdefghijklmnopqrstuvwxyz" "23456789" "ABDEFGHJKLMNPQRTUY"
    "αβγδεζηθλμξπστφψω" "ΓΔΘΛΞΠΣΦΨΩ" "джийлцчшщъыьэюя"
    + _chars(0x0561, 0x0586, skip="\u0570\u0578\u057d\u0582\u0585\u0581")  # Armenian
    + _chars(0x10D0, 0x10F0)  # Georgian
    + "←↑→↓↔↕↖↗↘↙⇐⇑⇒⇓⇔" "■□▲△▼▽◆◇●○◐◑◒◓◢◣◤◥" "∀∃∇∈∑∞∫≈≠≤≥⊂⊃⊕⊗∂√"
)


def _import_synbols():
    try:
        from synbols.drawing import Gradient, Image, Symbol
        from synbols.utils import Alphabet
    except ImportError as exc:
        raise DatasetError(f"generating Synbols needs the optional synbols package ({exc}); "
                           f"install it with {INSTALL_HINT}") from None
    return Gradient, Image, Symbol, Alphabet


def _codepoints(charset: str) -> set[int]:
    covered: set[int] = set()
    for item in charset.split():
        lo, _, hi = item.partition("-")
        covered.update(range(int(lo, 16), int(hi or lo, 16) + 1))
    return covered


def installed_fonts(symbols: str) -> list[str]:
    """Font families (fontconfig names) whose every style has a glyph for every symbol."""
    if shutil.which("fc-list") is None:
        raise DatasetError("fc-list (fontconfig) is not installed, so no fonts can be found; "
                           "apt-get install fontconfig fonts-dejavu-core, or pass fonts=[...]")
    listing = subprocess.run(["fc-list", "--format", "%{family}|%{charset}\n"],
                             capture_output=True, text=True, check=False).stdout
    families: dict[str, set[int]] = {}
    for line in listing.splitlines():
        family, _, charset = line.partition("|")
        name = family.split(",")[-1].strip()  # the most specific name, e.g. "... Condensed"
        cover = _codepoints(charset)
        families[name] = families[name] & cover if name in families else cover
    needed = {ord(s) for s in symbols}
    fonts = sorted(name for name, cover in families.items() if name and needed <= cover)
    if not fonts:
        raise DatasetError(f"no installed font covers all {len(symbols)} symbols; install "
                           "fonts-dejavu-core (or pass fonts=[...]) or use fewer classes")
    return fonts


def _sampler(rng: np.random.RandomState, alphabet, char: str, size: int, classes):
    gradient, image_cls, symbol_cls = classes
    seed = lambda: int(rng.randint(np.iinfo(np.uint32).max))  # noqa: E731
    symbol = symbol_cls(alphabet=alphabet, char=char, font=str(rng.choice(alphabet.fonts)),
                        foreground=gradient(seed=seed()), is_slant=bool(rng.rand() < 0.5),
                        is_bold=bool(rng.rand() < 0.5), rotation=float(rng.randn() * 0.3),
                        scale=float(0.6 * np.exp(rng.randn() * 0.2)),
                        translation=tuple(rng.rand(2) * 1.8 - 0.9))
    return image_cls([symbol], resolution=(size, size), background=gradient(seed=seed()),
                     inverse_color=bool(rng.rand() < 0.5), pixel_noise_scale=0.01,
                     max_contrast=True, seed=seed())


def prepare_synbols(out_path: str | os.PathLike[str], classes: int = 200,
                    per_class_train: int = 500, per_class_test: int = 50, seed: int = 0,
                    size: int = 32, fonts: list[str] | None = None) -> Path:
    """Render ``classes`` symbols x (train + test) images of size x size x 3 into an .npz
    readable by the "synbols" dataset. Deterministic for a seed and a set of fonts."""
    if not 1 <= classes <= len(SYMBOL_POOL):
        raise DatasetError(f"classes must be 1..{len(SYMBOL_POOL)}, got {classes}")
    gradient, image_cls, symbol_cls, alphabet_cls = _import_synbols()
    symbols = SYMBOL_POOL[:classes]
    alphabet = alphabet_cls("mind", sorted(fonts or installed_fonts(symbols)), list(symbols))
    rng = np.random.RandomState(seed)
    per_class = per_class_train + per_class_test
    images = np.empty((classes, per_class, size, size, 3), dtype=np.uint8)
    for label, char in enumerate(symbols):
        for i in range(per_class):
            image = _sampler(rng, alphabet, char, size, (gradient, image_cls, symbol_cls))
            images[label, i] = image.make_image()
    labels = np.repeat(np.arange(classes, dtype=np.int64), per_class).reshape(classes, -1)
    out = Path(out_path).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        x_train=images[:, :per_class_train].reshape(-1, size, size, 3),
        y_train=labels[:, :per_class_train].reshape(-1),
        x_test=images[:, per_class_train:].reshape(-1, size, size, 3),
        y_test=labels[:, per_class_train:].reshape(-1),
        class_names=np.array([f"{c} U+{ord(c):04X}" for c in symbols]),
        fonts=np.array(alphabet.fonts))
    tmp.replace(out)
    return out
