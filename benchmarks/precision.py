"""Derivation or precision: the sweep of the issue's confident classifiers, and what the wider evaluation costs.

- **The sweep.** ``--problems`` confident classifiers built as the issue built
  them (labels that agree with the network, output layer times 30), checked
  with the textbook closed form written with ``0.5 * (1 + tanh(z/2))`` (right,
  but it cancels for z << 0) and with ``1 / (1 + exp(-z))``: the verdicts
  counted, and the fewest digits the tanh form keeps.
- **The cost.** Milliseconds per check, medians, in one run: a check that
  passes (no wider evaluation), a check that is "imprecise" (decided at 256
  bits), a real mistake (a factor 1.1 on ``w1`` of the tanh form: decided at
  256 and 1024 bits), and the same mistake with arbitrary precision turned off
  (long double alone), and with neither wider type (the float64 verdict, as before
  the wider evaluation existed). The ratio is to the passing check.

The main job never pays it: its closed form is the built-in one, which passes
(``gradcheck --json`` counts no mismatch).

Run: python benchmarks/precision.py [--problems 40] [--repeats 15] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from gradcheck import _precision, check_gradients, mlp
from tests.derivations import confident, sig_exp, sig_tanh, textbook

LOSS = partial(mlp.loss, task="classification")


def _ms(run: Callable[[], Any], repeats: int) -> float:
    run()  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    tanh, exp, digits = Counter(), Counter(), []
    for seed in range(args.problems):
        report = check_gradients(LOSS, textbook(sig_tanh), *confident(seed))
        tanh[report.verdict] += 1
        digits += [p.digits_kept for p in report.params if p.status == "imprecise"]
        exp[check_gradients(LOSS, textbook(sig_exp), *confident(seed)).verdict] += 1
    print(f"sweep of {args.problems} confident classifiers:")
    print(f"  tanh form: {dict(tanh)}; fewest digits kept {min(digits, default=float('nan')):.1f}")
    print(f"  exp form:  {dict(exp)}")

    imprecise = next(
        s
        for s in range(args.problems)
        if check_gradients(LOSS, textbook(sig_tanh), *confident(s)).verdict == "imprecise"
    )
    problem = confident(imprecise)
    rows = [
        ("pass (exp form): no wider evaluation", lambda: check_gradients(LOSS, textbook(sig_exp), *problem)),
        ("imprecise (tanh form): 256 bits", lambda: check_gradients(LOSS, textbook(sig_tanh), *problem)),
        ("mistake (w1 x 1.1): 256 + 1024 bits", lambda: check_gradients(LOSS, textbook(sig_tanh, 1.1), *problem)),
    ]
    timed = [(label, _ms(run, args.repeats)) for label, run in rows]
    limit, wide = _precision.MP_MAX_ENTRIES, _precision.WIDE
    try:
        _precision.MP_MAX_ENTRIES = 0
        timed.append(
            (
                "mistake, long double alone",
                _ms(lambda: check_gradients(LOSS, textbook(sig_tanh, 1.1), *problem), args.repeats),
            )
        )
        _precision.WIDE = np.float64  # neither wider type: the float64 verdict, as before this step
        timed.append(
            (
                "mistake, no wider evaluation",
                _ms(lambda: check_gradients(LOSS, textbook(sig_tanh, 1.1), *problem), args.repeats),
            )
        )
    finally:
        _precision.MP_MAX_ENTRIES, _precision.WIDE = limit, wide
    base = timed[0][1]
    if args.markdown:
        print(f"\n| check (problem {imprecise}: N = 21, H = 2) | ms per check | x pass |\n|---|---|---|")
        for label, ms in timed:
            print(f"| {label} | {ms:.2f} | {ms / base:.2f} |")
    else:
        for label, ms in timed:
            print(f"{label:40s} {ms:8.2f} ms  {ms / base:5.2f}x")


if __name__ == "__main__":
    main()
