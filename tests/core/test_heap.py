"""Freed memory is kept for reuse (mind_core/heap.py): both glibc thresholds are raised, never
over the user's own malloc settings, nothing happens without glibc, and in a real process a
repeated allocation of large arrays stops page-faulting."""

from __future__ import annotations

import pytest

from mind_core import heap
from tests.page_faults import KEPT, RETURNED, faults_a_round


class FakeLibc:
    def __init__(self, accepts: bool = True) -> None:
        self.calls: list[tuple[int, int]] = []
        self.accepts = accepts

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return int(self.accepts)


def test_both_thresholds_are_raised_the_mmap_one_first():
    libc = FakeLibc()
    assert heap.keep_freed_memory({}, lambda: libc) is True
    assert libc.calls == [(heap.M_MMAP_THRESHOLD, heap.MMAP_THRESHOLD),
                          (heap.M_TRIM_THRESHOLD, heap.TRIM_THRESHOLD)]


def test_a_refused_threshold_is_reported():
    assert heap.keep_freed_memory({}, lambda: FakeLibc(accepts=False)) is False


@pytest.mark.parametrize("environ", [
    {"MALLOC_TRIM_THRESHOLD_": "131072"},
    {"MALLOC_MMAP_THRESHOLD_": "65536"},
    {"MALLOC_TOP_PAD_": "0"},
    {"GLIBC_TUNABLES": "glibc.rtld.nns=2:glibc.malloc.trim_threshold=1"},
])
def test_the_users_own_malloc_settings_are_left_alone(environ):
    libc = FakeLibc()
    assert heap.keep_freed_memory(environ, lambda: libc) is False
    assert libc.calls == []


def test_other_tunables_do_not_count_as_malloc_settings():
    assert not heap.user_tuned({"GLIBC_TUNABLES": "glibc.rtld.nns=2"})


def test_without_glibc_nothing_is_done():
    assert heap.keep_freed_memory({}, lambda: None) is False


@pytest.mark.skipif(heap.glibc() is None, reason="mallopt is glibc's (Linux)")
def test_a_repeated_large_allocation_stops_page_faulting():
    assert faults_a_round() > RETURNED
    assert faults_a_round("from mind_core.heap import keep_freed_memory\n"
                          "assert keep_freed_memory()") < KEPT
