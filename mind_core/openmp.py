"""OpenMP's wait policy for the frameworks MIND runs on.

By default an OpenMP runtime (libgomp, which the torch CPU wheels link) keeps an idle worker
spinning for a while before it sleeps. On a machine whose cores are shared with other
processes that spinning takes the time slices a busy thread needs, so a run slows more than
the cores it loses and burns CPU time doing nothing. `passive_wait_policy` asks the runtime to
sleep at once (OMP_WAIT_POLICY=PASSIVE) unless the user has chosen a policy. The runtime
reads the variable when it loads, so this must run before the framework is first imported;
afterwards it changes nothing. The policy changes when threads wait, never what they compute.
"""

from __future__ import annotations

import os


def passive_wait_policy() -> None:
    """Set OMP_WAIT_POLICY=PASSIVE in this process's environment, only if it is unset."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
