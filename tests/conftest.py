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
import pytest
from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("dev", max_examples=15, **_COMMON)
settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("thorough", max_examples=10_000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Make JAX refuse implicit dtype promotion in everything the tests trace, so a
# silent float32 <-> float64 mix in our code fails loudly (as equinox does).
jax.config.update("jax_numpy_dtype_promotion", "strict")


# --- the mutation suite's kill rate ------------------------------------------------
# tests/test_mutants.py has one "always caught" test per mutant (of the
# network's gradient, and of the VJPs, JVPs, Jacobians, Hessians and custom
# rules): a mutant is killed when its test passes. The rate is printed at the
# end of the session (also under pytest-xdist, where reports reach the controller).

_KILL_TESTS = (
    "test_mutants.py::test_mutant_is_always_caught_on_generic_problems[",
    "test_mutants.py::test_rule_mutant_is_always_caught_and_the_right_rule_passes[",
    "test_mutants.py::test_slow_rule_mutant_is_always_caught_and_the_right_rule_passes[",
)
_mutants: dict[str, bool] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    killing = any(test in report.nodeid for test in _KILL_TESTS)
    if killing and (report.when == "call" or report.outcome != "passed"):
        name = report.nodeid.split("[", 1)[1].rstrip("]")
        _mutants[name] = _mutants.get(name, True) and report.outcome == "passed"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _mutants:
        return
    killed = sum(_mutants.values())
    survivors = sorted(name for name, dead in _mutants.items() if not dead)
    line = f"mutation suite: {killed}/{len(_mutants)} mutants killed ({100 * killed / len(_mutants):.0f}%)"
    terminalreporter.write_sep("=", line + (f"; survivors: {', '.join(survivors)}" if survivors else ""))
