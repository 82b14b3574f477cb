"""Fault injection for the crash tests and the robustness benchmark.

With ``XMC_KILL_AT=<point>[@<n>]`` in the environment, the process sends itself ``SIGKILL`` (the
signal ``kill -9`` sends) the n-th time (default: the first) it passes :func:`kill_point` with that
name. It lets a test stop ``xmc train`` at a chosen instant, during fitting or in the middle of a
save, and then check what a second run makes of what was left. Without the variable a kill point
costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "XMC_KILL_AT"
_passes: dict[str, int] = {}


def kill_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, nth = spec.partition("@")
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] == (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
