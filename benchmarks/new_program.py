"""The first check of a loss whose program is new: what tracing it costs, beside a check of a known one.

Each of ``--losses`` losses is a user's own ``jax.numpy`` seed-network loss that differs from the others by a
constant, so that its jaxpr is new and `gradcheck._references._trace.program` traces its programs afresh
(value and gradient, batched loss; the Monte Carlo form only once a check needs the noise measured). Each
is checked once, then again on a new problem at the same shape (its program known by then), and the
medians are printed side by side with their ratio.

Run: python benchmarks/new_program.py [--losses 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

from gradcheck import check_gradients, mlp


def own_loss(k: int) -> Callable[..., Any]:
    """A regression loss written with jax.numpy, plus the constant 1e-9 (k + 1): a jaxpr of its own."""

    def loss(p: mlp.Params, x: Any, y: Any) -> Any:
        a1 = 1 / (1 + jnp.exp(-(x @ p.w1.T + p.b1)))
        z2 = (a1 @ p.w2.T + p.b2)[:, 0]
        return 0.5 * jnp.mean((z2 - y) ** 2) + 1e-9 * (k + 1)

    return loss


def grads(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
    return mlp.closed_form_gradients(p, x, y, task="regression")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", type=int, default=30, help="new losses to check (default 30)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    problems = [(mlp.init_params(s), rng.normal(size=(8, 2)), rng.normal(size=8)) for s in range(2)]
    check_gradients(own_loss(-1), grads, *problems[0])  # imports and first-use costs out of the way
    new, known = [], []
    for k in range(args.losses):
        loss = own_loss(k)
        for times, problem in ((new, problems[0]), (known, problems[1])):
            start = time.perf_counter()
            report = check_gradients(loss, grads, *problem)
            times.append((time.perf_counter() - start) * 1e3)
            assert report.ok, report
    first, again = statistics.median(new), statistics.median(known)
    print(f"{'check':<38} {'ms (median)':>12}")
    print(f"{'first, of a new program (traced)':<38} {first:>12.1f}")
    print(f"{'again, its program known':<38} {again:>12.1f}")
    print(f"tracing a new program costs {first / again:.1f} x a check of a known one")


if __name__ == "__main__":
    main()
