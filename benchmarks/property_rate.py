"""Examples per second of property-based tests.

Two measurements:

- ``--one-property N``: one property, in this process, as a user writes it:
  Hypothesis draws N problems of the seed network in every regime and with
  random shapes (`strategies.problems(regime="any")`, or one ``--regime``: inputs, hidden units,
  batch size and task all drawn), and each example runs one
  `check_gradients` on the correct closed form. Reports examples/s, all
  included (drawing, tracing new shape patterns, the check).
- otherwise: the whole suite once in a subprocess with Hypothesis statistics,
  counting the examples every property test ran (passing, failing and
  invalid) over the wall time of the run (which includes collection and the
  non-property tests, and properties that run several checks per example: a
  lower bound on the rate).

Run: python benchmarks/property_rate.py [--profile ci] | [--one-property 2000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci", help="Hypothesis profile (default ci)")
    parser.add_argument("--one-property", type=int, metavar="N", help="time one property of N examples instead")
    parser.add_argument("--regime", default="any", help="the property's regime (default any: every regime)")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest, e.g. a test file")
    args = parser.parse_args()
    if args.one_property:
        one_property(args.one_property, args.regime)
        return
    env = {**os.environ, "HYPOTHESIS_PROFILE": args.profile}
    command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider"]
    command.append("--hypothesis-show-statistics")
    start = time.perf_counter()
    done = subprocess.run([*command, *args.pytest_args], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    phases = re.findall(r"- (\d+) passing, (\d+) failing, and (\d+) invalid test cases", done.stdout)
    counts = [int(a) + int(b) + int(c) for a, b, c in phases]
    tests = len(re.findall(r"^tests/\S+::\S+:$", done.stdout, re.M))
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    print(f"profile {args.profile}: {summary}")
    print(
        f"{sum(counts)} examples in {seconds:.0f} s: {sum(counts) / seconds:.0f} examples/s (property tests: {tests})"
    )
    sys.exit(done.returncode)


def one_property(examples: int, regime: str) -> None:
    from functools import partial

    from hypothesis import HealthCheck, given, settings

    from gradcheck import check_gradients, mlp
    from gradcheck import strategies as gs

    shapes: set[tuple[int, ...]] = set()

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(gs.problems(regime=regime))
    def correct_gradients_pass(prob) -> None:  # type: ignore[no-untyped-def]
        shapes.add((*prob.params.w1.shape, *prob.x.shape))
        report = check_gradients(
            partial(mlp.loss, task=prob.task), partial(mlp.closed_form_gradients, task=prob.task), *prob[:3]
        )
        assert report.ok, str(report)

    start = time.perf_counter()
    correct_gradients_pass()
    seconds = time.perf_counter() - start
    print(
        f"one property (regime {regime}): {examples} examples, {len(shapes)} distinct shapes, in {seconds:.1f} s: "
        f"{examples / seconds:.0f} examples/s"
    )


if __name__ == "__main__":
    main()
