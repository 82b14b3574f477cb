"""Hypothesis profiles: ``xmc`` keeps the fuzz tests inside the normal test time; ``xmc-slow``
(``XMC_FUZZ_PROFILE=xmc-slow ./run test tests/fuzz``) tries thirty times as many inputs."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
settings.register_profile("xmc", max_examples=60, **_COMMON)
settings.register_profile("xmc-slow", max_examples=2000, **_COMMON)
settings.load_profile(os.environ.get("XMC_FUZZ_PROFILE", "xmc"))
