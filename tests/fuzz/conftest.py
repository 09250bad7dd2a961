"""Hypothesis settings of the property tests: reproducible and quick on a loaded machine.

Examples are derived from each test's name (``derandomize``), nothing is stored between
runs, and no per-example deadline applies (a busy CI box must not turn into a failure).
``HYPOTHESIS_PROFILE=fuzz-long`` runs many more examples, randomly, when hunting bugs.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz", derandomize=True, database=None, deadline=None, max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=False,
)
settings.register_profile(
    "fuzz-long", database=None, deadline=None, max_examples=1000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fuzz"))
