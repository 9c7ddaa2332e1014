"""Every ```python block of README.md and docs/*.md runs as a user would paste it, on tiny
data: the blocks of one file run in order in one namespace (a later block builds on an
earlier one's names), in a fresh working directory.

What a block takes from the user's side is given here: x_train, y_train, x_test, y_test,
x_new (tiny uint8 28x28x1 images of 10 classes) and model (None: the preset's network). So
that the blocks take seconds, mind.fit starts from TINY, 1-epoch phases, under the block's
own settings: a block's settings still apply, and still have to resolve.

Exceptions, each with its reason (the block must still compile):
"""

from __future__ import annotations

import importlib.util
import re

import pytest

import mind_core.api
from tests.doc_blocks import ROOT, blocks
from tests.fakes import tiny_dataset

# file -> why its Python blocks are compiled, not run.
NOT_RUN = {
    "docs/sweeps.md": "a grid of 12 demo runs on Ray: tests/sweep drives the same driver on "
                      "a fake backend",
}
__doc__ += "".join(f"- {path}: {why}\n" for path, why in NOT_RUN.items())

TINY = {"teacher.epochs": 1, "distill.epochs": 1, "teacher.batch_size": 32,
        "distill.batch_size": 32}
FILES = sorted({path.relative_to(ROOT).as_posix() for path, _ in blocks("python")})
IMPORTED = re.compile(r"^\s*(?:from|import)\s+(\w+)", re.MULTILINE)


def _user_side() -> dict:
    data = tiny_dataset(classes=10, per_class=6, size=28)
    return {"x_train": data.x_train, "y_train": data.y_train, "x_test": data.x_test,
            "y_test": data.y_test, "x_new": data.x_test[:4], "model": None}


def test_the_docs_have_python_blocks():
    assert "README.md" in FILES and "docs/python-api.md" in FILES


@pytest.mark.parametrize("where", FILES)
def test_a_documents_python_blocks_run(where, tmp_path, monkeypatch):
    codes = [code for path, code in blocks("python") if path.relative_to(ROOT).as_posix() == where]
    compiled = [compile(code, f"{where} block {i + 1}", "exec") for i, code in enumerate(codes)]
    if where in NOT_RUN:
        pytest.skip(f"compiled only: {NOT_RUN[where]}")
    for module in sorted({m for code in codes for m in IMPORTED.findall(code)}):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{where} needs {module}")
    fit = mind_core.api.fit

    def tiny_fit(*args, settings=None, **kwargs):
        return fit(*args, settings={**TINY, **(settings or {})}, **kwargs)

    monkeypatch.setattr(mind_core.api, "fit", tiny_fit)
    monkeypatch.chdir(tmp_path)
    namespace = _user_side()
    for code in compiled:
        exec(code, namespace)
