"""Helpers of the serving tests."""

from __future__ import annotations

import time


def wait_until(predicate, seconds: float = 30.0) -> None:
    """Poll ``predicate`` until it holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
