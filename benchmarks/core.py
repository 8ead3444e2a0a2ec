"""Speed and sensitivity of one `check_gradients` call on the seed network, on the compiled path.

Reports, for inputs 2, hidden 3, batch 8 (both tasks), with the references
forced onto the compiled path (a shape checked often; benchmarks/cold.py
measures the NumPy path that new shapes take):
- the cold call (tracing and compiling the references for a new shape);
- the warm call (compiled functions cached across calls for the same shapes);
- the smallest relative error in the largest gradient entry that the check
  flags, found by bisection on log10(error) over typical problems.

Run: python benchmarks/core.py [--problems 20] [--repeats 200]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

from gradcheck import _references, check_gradients, mlp, problems


def smallest_flagged(prob: problems.Problem) -> float:
    loss = partial(mlp.loss, task=prob.task)
    g = mlp.closed_form_gradients(*prob[:3], task=prob.task)
    leaf = max(range(4), key=lambda k: float(np.abs(g[k]).max()))
    index = np.unravel_index(np.argmax(np.abs(g[leaf])), g[leaf].shape)

    def flagged(rel: float) -> bool:
        def nudged(p, x, y):  # type: ignore[no-untyped-def]
            out = [a.copy() for a in mlp.closed_form_gradients(p, x, y, task=prob.task)]
            out[leaf][index] *= 1 + rel
            return mlp.Params(*out)

        return check_gradients(loss, nudged, *prob[:3]).verdict == "mismatch"

    lo, hi = -17.0, -2.0  # log10 of the relative error
    assert flagged(10**hi)
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if flagged(10**mid) else (mid, hi)
    return float(10**hi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    for task in mlp.TASKS:
        loss = partial(mlp.loss, task=task)
        grads = partial(mlp.closed_form_gradients, task=task)
        prob = problems.sample(np.random.default_rng(0), task=task)
        _references.clear_caches()
        with _references.forced("xla"):
            t0 = time.perf_counter()
            check_gradients(loss, grads, *prob[:3])
            cold = time.perf_counter() - t0
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                check_gradients(loss, grads, *prob[:3])
                times.append(time.perf_counter() - t0)
        limits = [smallest_flagged(problems.sample(np.random.default_rng(s), task=task)) for s in range(args.problems)]
        print(
            f"{task:<15} cold {cold * 1e3:7.0f} ms   warm median {np.median(times) * 1e3:5.2f} ms"
            f" (min {min(times) * 1e3:4.2f})   smallest relative error flagged: median {np.median(limits):.1e},"
            f" worst {max(limits):.1e} over {args.problems} typical problems"
        )


if __name__ == "__main__":
    main()
