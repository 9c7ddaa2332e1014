"""Hypothesis profiles: a quick "default" for local runs, a thorough "ci" one.

Select with the HYPOTHESIS_PROFILE environment variable (e.g. HYPOTHESIS_PROFILE=ci).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# No deadline: timings on a loaded 2-core CI runner are noise, not a property of the code.
settings.register_profile("default", max_examples=25, stateful_step_count=12, deadline=None)
settings.register_profile(
    "ci", max_examples=300, stateful_step_count=40, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
