"""Importing the torch backend makes its process keep freed memory (mind_core/heap.py): a
training step then reuses the last step's pages instead of faulting them in again."""

from __future__ import annotations

import pytest

from mind_core.heap import glibc
from tests.page_faults import KEPT, faults_a_round

pytest.importorskip("torch")


@pytest.mark.skipif(glibc() is None, reason="mallopt is glibc's (Linux)")
def test_the_torch_backend_keeps_freed_memory():
    assert faults_a_round("import backends.torch") < KEPT
