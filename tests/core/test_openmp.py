"""The wait-policy rule (mind_core/openmp.py): a short spin on an idle machine, sleeping at once
beside busy processes or where the load cannot be read, never over the user's own choice."""

from __future__ import annotations

import os

import pytest

from mind_core import openmp

STAT = """cpu  {a} 0 0 {i} 0 0 0 0 0 0
cpu0 {a0} 1 2 {i0} 4 0 6 0 0 0
cpu1 {a1} 0 0 {i1} 0 0 0 0 0 0
intr 12345
"""


def stat(a0: int, i0: int, a1: int, i1: int) -> str:
    return STAT.format(a=a0 + a1, i=i0 + i1, a0=a0, i0=i0, a1=a1, i1=i1)


def test_cpu_ticks_count_the_given_cpus_and_leave_idle_and_iowait_out():
    # cpu0: user 10, nice 1, system 2, idle 50, iowait 4, softirq 6 -> busy 19 of 73.
    assert openmp.cpu_ticks(stat(10, 50, 7, 3), {0}) == (19, 73)
    assert openmp.cpu_ticks(stat(10, 50, 7, 3), {0, 1}) == (26, 83)
    assert openmp.cpu_ticks(stat(10, 50, 7, 3), {5}) == (0, 0)


class TwoReads:
    """A stand-in for /proc/stat that reads differently the second time."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)

    def read_text(self) -> str:
        return self.texts.pop(0)


def test_busy_cores_is_the_busy_share_of_the_usable_cpus(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    # Between the reads cpu0 was busy 10 of 10 ticks and cpu1 idle: one core of two.
    reads = TwoReads(stat(100, 100, 100, 100), stat(110, 100, 100, 110))
    assert openmp.busy_cores(0.0, reads) == pytest.approx(1.0)
    assert openmp.busy_cores(0.0, TwoReads(stat(1, 1, 1, 1), stat(1, 1, 1, 1))) is None


def test_an_unreadable_proc_stat_is_no_measurement(tmp_path):
    assert openmp.busy_cores(0.0, tmp_path / "missing") is None


@pytest.fixture
def clean_env(monkeypatch):
    for key in openmp.USER_KEYS:
        monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize("cores, chosen", [(0.0, ("GOMP_SPINCOUNT", "10000")),
                                           (0.49, ("GOMP_SPINCOUNT", "10000")),
                                           (0.5, ("OMP_WAIT_POLICY", "PASSIVE")),
                                           (1.7, ("OMP_WAIT_POLICY", "PASSIVE")),
                                           (None, ("OMP_WAIT_POLICY", "PASSIVE"))])
def test_the_choice_follows_the_other_processes_load(clean_env, cores, chosen):
    assert openmp.choose_wait_policy(lambda: cores) == chosen
    key, value = chosen
    assert os.environ[key] == value
    assert [k for k in openmp.USER_KEYS if k in os.environ] == [key]


@pytest.mark.parametrize("key", openmp.USER_KEYS)
def test_the_users_own_setting_is_left_alone_and_nothing_is_measured(clean_env, monkeypatch,
                                                                      key):
    monkeypatch.setenv(key, "ACTIVE" if key == "OMP_WAIT_POLICY" else "7")

    def measure():
        raise AssertionError("measured although the user chose")
    assert openmp.choose_wait_policy(measure) is None
    assert [k for k in openmp.USER_KEYS if k in os.environ] == [key]
