"""How the cost of one `check_gradients` call scales, against the floor.

The floor is one NumPy loss plus one closed-form gradient
(`mlp.loss` + `mlp.closed_form_gradients`): what any check computes at least
once. Two tables, regression task, warm calls (compilation excluded, reported
apart):

- against the number of parameters: inputs 784, batch 64, hidden from 3 to
  4096 (2,359 to 3.2 million parameters). Up to `MAX_COORDINATES` (512)
  parameters the finite differences run along every coordinate; above it,
  along `DIRECTIONS` random directions;
- against the batch size: inputs 2, hidden 3 (13 parameters), batch from 1
  to 10,000.

Run: python benchmarks/scaling.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from gradcheck import _references, check_gradients, mlp


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def row(inputs: int, hidden: int, batch: int, repeats: int) -> str:
    rng = np.random.default_rng(0)
    params = mlp.init_params(0, inputs=inputs, hidden=hidden)
    x, y = rng.normal(size=(batch, inputs)), rng.normal(size=batch)
    loss, grads = partial(mlp.loss, task="regression"), partial(mlp.closed_form_gradients, task="regression")
    floor = median_time(lambda: (mlp.loss(params, x, y, task="regression"), grads(params, x, y)), max(repeats, 20))
    t0 = time.perf_counter()
    report = check_gradients(loss, grads, params, x, y)
    cold = time.perf_counter() - t0
    warm = median_time(lambda: check_gradients(loss, grads, params, x, y), repeats)
    p = sum(a.size for a in params)
    mode = "coordinates" if p <= _references.MAX_COORDINATES else f"{_references.DIRECTIONS} directions"
    return (
        f"| {inputs} | {hidden} | {batch} | {p:,} | {mode} | {floor * 1e3:.3g} ms | {cold:.2f} s |"
        f" {warm * 1e3:.3g} ms | {warm / floor:.3g} | {report.verdict} |"
    )


HEADER = (
    "| inputs | hidden | batch | parameters | finite differences | floor | cold | warm | warm / floor | verdict |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 7: the median of 3 moved by 2x between runs at 50,305 parameters. The batch-size rows take 20
    # (below COMPILE_AFTER, so every one runs on the NumPy path that a shape takes first).
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print("Against the number of parameters (inputs 784, batch 64):\n")
    print(HEADER)
    for hidden in (3, 64, 512, 4096):
        print(row(784, hidden, 64, args.repeats), flush=True)
    print("\nAgainst the batch size (inputs 2, hidden 3):\n")
    print(HEADER)
    for batch in (1, 10, 100, 1_000, 10_000):
        print(row(2, 3, batch, max(args.repeats, 20)), flush=True)


if __name__ == "__main__":
    main()
