"""Test-suite settings: Hypothesis profiles and strict JAX dtype promotion.

Hypothesis profiles, chosen with the HYPOTHESIS_PROFILE environment variable:

- ``dev`` (default): fast, for the edit-test loop.
- ``ci``: derandomized (the same examples every run), more examples, no
  deadline (JAX compiles on the first call for each new shape). `.ci/run`
  uses it.
- ``thorough``: 10,000 examples per property; see docs/testing.md for its
  measured run time.
"""

from __future__ import annotations

import os

import jax
from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("dev", max_examples=15, **_COMMON)
settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("thorough", max_examples=10_000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Make JAX refuse implicit dtype promotion in everything the tests trace, so a
# silent float32 <-> float64 mix in our code fails loudly (as equinox does).
jax.config.update("jax_numpy_dtype_promotion", "strict")
