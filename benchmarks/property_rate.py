"""Examples per second of the property-based test suite.

Runs the whole suite once in a subprocess with Hypothesis statistics, counts
the examples every property test ran (passing, failing and invalid), and
divides by the wall time of the run (which includes JAX compilation for each
new shape, collection and the non-property tests: a lower bound on the rate).

Run: python benchmarks/property_rate.py [--profile ci]
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
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest, e.g. a test file")
    args = parser.parse_args()
    env = {**os.environ, "HYPOTHESIS_PROFILE": args.profile}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics"]
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


if __name__ == "__main__":
    main()
