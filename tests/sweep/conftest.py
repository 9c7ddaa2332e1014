"""The sweep's tests share one local Ray (2 CPUs) per module: Ray takes seconds to start.

Ray is the `sweep` extra: where it is missing these tests are skipped, except under the nox
`sweep` session (MIND_SWEEP_TESTS=1), where a missing Ray is a failure."""

from __future__ import annotations

import logging
import os

import pytest

from tests.sweep.sweep_fakes import MARKERS


def require_ray():
    if os.environ.get("MIND_SWEEP_TESTS") == "1":
        import ray  # noqa: F401  (fails the test run loudly)
    return pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    """A local Ray with 2 CPUs for the whole module; the sweep reuses it (and leaves it
    running). Its workers see MARKERS, a folder the fake backends write marker files in."""
    ray = require_ray()
    markers = tmp_path_factory.mktemp("markers")
    os.environ[MARKERS] = str(markers)  # before Ray starts: its workers inherit it
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             logging_level=logging.ERROR, log_to_driver=False)
    try:
        yield markers
    finally:
        ray.shutdown()
        os.environ.pop(MARKERS, None)
