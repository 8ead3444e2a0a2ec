"""Throughput of `check_batch` on the seed network: fully checked problems per second.

Each problem is checked in full: the closed form against float64 autodiff
with the measured tolerance (8 Monte Carlo samples), and finite differences
along `BATCH_DIRECTIONS` random directions with their error bounds; a problem
that does not pass is re-checked along every coordinate. Problems are
distinct (seeded draws, inputs 2, hidden 3, batch 8). Reported per task: the
warm time of one `check_batch` call over B problems, problems per second, and
the same with the problems sharded over 2 host devices (a second process with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``).

Run: python benchmarks/batched.py [--problems 8192] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from functools import partial

import numpy as np


def measure(b: int, repeats: int) -> None:
    import jax

    from gradcheck import check_batch, mlp, problems

    for task in mlp.TASKS:
        probs = [problems.sample(np.random.default_rng([7, i]), task=task) for i in range(b)]
        params = mlp.Params(*(np.stack([p.params[k] for p in probs]) for k in range(4)))
        x, y = np.stack([p.x for p in probs]), np.stack([p.y for p in probs])
        loss, grads = partial(mlp.loss, task=task), partial(mlp.closed_form_gradients, task=task)
        t0 = time.perf_counter()
        report = check_batch(loss, grads, params, x, y)
        cold = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            check_batch(loss, grads, params, x, y)
            times.append(time.perf_counter() - t0)
        warm = statistics.median(times)
        print(
            f"{task:<15} devices {len(jax.devices())}  B {b:>6}  cold {cold:5.2f} s  warm {warm * 1e3:7.1f} ms"
            f"  {b / warm:>9,.0f} problems/s  ({warm / b * 1e6:5.1f} µs each; verdict {report.verdict},"
            f" {len(report.failures)} re-checked)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    measure(args.problems, args.repeats)
    if not args.inner:
        env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
        argv = [sys.executable, __file__, "--problems", str(args.problems), "--repeats", str(args.repeats), "--inner"]
        subprocess.run(argv, env=env, check=True)


if __name__ == "__main__":
    main()
