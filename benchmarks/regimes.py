"""check_batch throughput in every regime of the seed network, and the problems it re-checks one by one.

For each task and regime, ``--problems`` correct problems (inputs 2, hidden 3,
batch 8; the large_batch regime has 2,048 samples per problem, and runs
``--large`` problems) are checked in one `check_batch` call, on each path:

- NumPy: the stacked references by `_references.StackedEvaluation` (what a batch takes until it
  has done `COMPILE_AFTER_WORK` at a shape);
- compiled: the batched references jitted by XLA, timed after a first call
  that compiles them.

"careful" counts the problems re-checked one by one by `check_gradients` (the most in one run;
`BatchReport.rechecked`: zero for a correct closed form is the goal: doubtful problems are refined
in the batch). The floor is one NumPy loss plus one closed form on the whole
stack, the least any check must compute.

Run: python benchmarks/regimes.py [--problems 2048] [--large 64] [--markdown]
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from typing import Any

import numpy as np

from gradcheck import BatchReport, _references, check_batch, mlp, problems


def stack(probs: list[problems.Problem]) -> tuple[mlp.Params, np.ndarray, np.ndarray]:
    params = mlp.Params(*(np.stack([getattr(p.params, f) for p in probs]) for f in mlp.Params._fields))
    return params, np.stack([p.x for p in probs]), np.stack([p.y for p in probs])


def _recorded(reports: list[BatchReport], *args: Any) -> None:
    """`check_batch` on `args`, its report appended to `reports`."""
    reports.append(check_batch(*args))


def timed(fn, repeats: int = 1) -> float:  # type: ignore[no-untyped-def]
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def floor_work(task: mlp.Task, params: mlp.Params, x: np.ndarray, y: np.ndarray) -> None:
    """What any check must compute at least once: the loss and the closed form, on the whole stack."""
    mlp.loss(params, x, y, task=task)
    mlp.closed_form_gradients(params, x, y, task=task)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=2048)
    parser.add_argument("--large", type=int, default=64)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    header = ("task", "regime", "problems", "NumPy problems/s", "compiled problems/s", "careful", "x floor (compiled)")
    rows = []
    for task in mlp.TASKS:
        loss, grad = partial(mlp.loss, task=task), partial(mlp.closed_form_gradients, task=task)
        for regime in problems.REGIMES:
            n = args.large if regime == "large_batch" else args.problems
            probs = [problems.sample(np.random.default_rng([1, i]), task=task, regime=regime) for i in range(n)]
            params, x, y = stack(probs)
            floor = timed(partial(floor_work, task, params, x, y), repeats=5)
            reports = []
            check = partial(_recorded, reports, loss, grad, params, x, y)

            with _references.forced("numpy"):
                numpy_s = timed(check)
            with _references.forced("xla"):
                check()  # compiles
                compiled_s = timed(check, repeats=2)
            careful = max(r.rechecked for r in reports)  # the most of any run, on either path
            rows.append(
                (
                    task,
                    regime,
                    str(n),
                    f"{n / numpy_s:,.0f}",
                    f"{n / compiled_s:,.0f}",
                    str(careful),
                    f"{compiled_s / floor:.0f}",
                )
            )
            if not args.markdown:
                print("  ".join(rows[-1]), flush=True)
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
